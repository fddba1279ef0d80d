"""The NER pipeline: text in, entities out.

    >>> import minibert_ner
    >>> ner = minibert_ner.pipeline("dslim/distilbert-NER")
    >>> ner("My name is Wolfgang and I live in Berlin")
    [{'entity_group': 'PER', 'score': 0.99..., 'word': 'Wolfgang', 'start': 11, 'end': 19}, ...]

The output equals `transformers`' `pipeline("token-classification")` for every aggregation
strategy (the rules are written down in `aggregation.py`), except that long text is never cut:
it runs as overlapping windows (`windows.py`).

Every way of labelling goes through one entry, `NERPipeline.label(items, options)`: a call
(`ner(texts, **overrides)`), the server's batches (each text with its request's options) and both
batch engines. It runs:
1. every item is tokenized at once (`encode_batch`: the Rust side works in parallel);
2. the items are grouped by the runner they need (`runner.py`; a call's or request's stride,
   max_length, batch_size, max_batch_tokens), and each group's tokens go through the model in one
   run, in windows and length-sorted batches under a token budget: one label (and probability)
   per token. A text that fits one window runs the same whatever its stride, so it joins any
   group of its window; the options decide what the run returns (`output_for`);
3. each item's entities are made with its own options (`NERPipeline.entities`, `aggregation.py`).

Options (`options.PipelineOptions`) are checked once, when made; those a call may change are
`CALL_OPTIONS`, read from the fields' groups.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple, overload

from tokenizers import Encoding

from ..devices import resolve_device
from ..errors import InputError
from ..families import Model
from ..tokenizer import Tokenizer
from .aggregation import Entity, LabelScheme, TokenEntity, aggregate, gather_tokens
from .options import DEFAULT_MODEL, ENTITY, RUNNER, PipelineOptions, fields_in
from .precision import Choice, describe, resolve
from .runner import Output, Prediction, WindowRunner

__all__ = [
    "CALL_OPTIONS",
    "RUNNER_OPTIONS",
    "TASKS",
    "Labelled",
    "NERPipeline",
    "output_for",
    "pipeline",
    "resolve_device",
]

# The options a call may change, as transformers' pipeline call takes them: the entity and
# runner groups. The others (the loading group) decide how the model loads or is compiled, and
# belong to `pipeline()`.
RUNNER_OPTIONS = fields_in(RUNNER)
CALL_OPTIONS = fields_in(ENTITY) + RUNNER_OPTIONS
# The runner's options but stride: those that set its window and batches.
WINDOW_AND_BATCH = tuple(name for name in RUNNER_OPTIONS if name != "stride")
MAX_RUNNERS = 64  # runners with other options kept for the next calls; more: start again
# transformers' names for this pipeline's task; `pipeline()` takes them as its first argument.
TASKS = ("ner", "token-classification")
# transformers' other tasks: named as pipeline()'s first argument they are a mistake, not a model.
OTHER_TASKS = frozenset(
    [
        "audio-classification",
        "automatic-speech-recognition",
        "depth-estimation",
        "document-question-answering",
        "feature-extraction",
        "fill-mask",
        "image-classification",
        "image-feature-extraction",
        "image-segmentation",
        "image-text-to-text",
        "image-to-image",
        "image-to-text",
        "mask-generation",
        "object-detection",
        "question-answering",
        "sentiment-analysis",
        "summarization",
        "table-question-answering",
        "text-classification",
        "text-generation",
        "text-to-audio",
        "text-to-speech",
        "text2text-generation",
        "translation",
        "video-classification",
        "visual-question-answering",
        "zero-shot-audio-classification",
        "zero-shot-classification",
        "zero-shot-image-classification",
        "zero-shot-object-detection",
    ]
)
NO_TOKEN_LABEL = "O"  # label_words: a word the tokenizer drops entirely (e.g. only a NUL)
# Which code runs the model: PyTorch (model.py, deberta.py) or onnxruntime on an exported folder
# (onnx_engine.py, no torch). None: onnxruntime for an export folder, else PyTorch.
ENGINES = ("torch", "onnx")
Entities = list[Entity] | list[TokenEntity]  # one text's: Entity, or TokenEntity with "none"


class Labelled(NamedTuple):
    """What `NERPipeline.label` returns."""

    entities: list[Entities]  # one list per item, in order
    tokens: int  # the items' tokens, special tokens included


def runner_key(options: PipelineOptions) -> tuple[int, tuple]:
    """What a runner for `options` is made with: (stride, the WINDOW_AND_BATCH values)."""
    return options.stride, tuple(getattr(options, name) for name in WINDOW_AND_BATCH)


def output_for(options: Iterable[PipelineOptions]) -> Output:
    """What a run must return for entities made with each of `options`: every label's
    probability when one of them averages them ("average"), else the best label's."""
    return "probs" if any(o.aggregation_strategy == "average" for o in options) else "scores"


def as_batch(inputs: object, is_split_into_words: bool) -> tuple[bool, list]:
    """(single, batch): `inputs` as a list of texts (str) or of pre-split sentences (word lists).

    One text, or one list of words when `is_split_into_words`, is a single input.
    """
    if isinstance(inputs, str):
        if is_split_into_words:
            raise InputError("is_split_into_words=True expects a list of words, got a str")
        return True, [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise InputError(f"expected a str or a list of str, got {type(inputs).__name__}")
    if is_split_into_words and all(isinstance(word, str) for word in inputs):
        return True, [list(inputs)]
    return False, checked_items(inputs, is_split_into_words)


def checked_items(items: object, is_split_into_words: bool) -> list:
    """`items` as a list of texts (str), or of pre-split sentences (word lists)."""
    if isinstance(items, str) or not isinstance(items, (list, tuple)):
        what = "lists of words" if is_split_into_words else "texts (str)"
        raise InputError(f"expected a list of {what}, got {type(items).__name__}")
    if not is_split_into_words:
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise InputError(
                    f"input {i} is a {type(text).__name__}, not a str; for pre-split words "
                    "pass is_split_into_words=True"
                )
        return list(items)
    for i, words in enumerate(items):
        if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
            raise InputError(f"input {i} is not a list of words (str)")
    return [list(words) for words in items]


def join_words(
    words: Sequence[str],
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    spaced: bool = False,
) -> tuple[str, list[tuple[int, int]]]:
    """Pre-split words as transformers reports them: the text is the words joined by single
    spaces, and each token's offsets (within its word) move into that text. `spaced`: the
    tokenizer saw each word after the first with its space (`Tokenizer.spaced_words`), so
    its offsets count from that space."""
    starts, position = [], 0
    for j, word in enumerate(words):
        starts.append(position - (1 if spaced and j else 0))
        position += len(word) + 1
    moved = [
        (start + starts[w], end + starts[w]) if w is not None else (start, end)
        for (start, end), w in zip(offsets, word_ids, strict=True)
    ]
    return " ".join(words), moved


class NERPipeline:
    """A token classifier and its tokenizer, run as `transformers`' NER pipeline runs them.

    `ner(text)` -> list of entity dicts; `ner([text, ...])` -> one such list per text, in input
    order; `ner(words, is_split_into_words=True)` for one pre-split sentence, or a list of them.
    `ner.label(texts, options)` -> the same for many texts, each with options of its own (the
    entry every way of labelling takes). `ner.label_words(sentences)` -> one label per word (the
    first-subword rule CoNLL uses).

    Build one with `minibert_ner.pipeline(...)`, or around objects already loaded:
    `NERPipeline(model, tokenizer, stride=64)`. Of the options it uses the entity and runner
    groups, and compile (the other loading ones, device, dtype, quantize, revision, token, are
    `pipeline()`'s). `precision` says which mode the model runs in and why (`pipeline()` passes
    its choice, precision.py; by default it is read from the model's dtypes).
    """

    def __init__(
        self,
        model: Model,
        tokenizer: Tokenizer,
        options: PipelineOptions | None = None,
        *,
        precision: Choice | None = None,
        **changes: Any,
    ) -> None:
        options = (options or PipelineOptions()).replace(**changes)
        if not model.id2label:
            raise InputError("the model has no labels (id2label is empty); is it a classifier?")
        if tokenizer.vocab_size > model.config.vocab_size:
            raise InputError(
                f"the tokenizer knows {tokenizer.vocab_size} tokens but the model only "
                f"{model.config.vocab_size}: they do not belong together"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        if precision is None:
            dtype = str(model.dtype).removeprefix("torch.")
            matmul = model.config.matmul_dtype
            mode = describe(dtype if matmul is None else "bfloat16-mixed")
            precision = Choice(mode, "the model's own dtypes")
        self.precision = precision
        self.scheme = LabelScheme.from_id2label(model.id2label)
        # The ONNX engine's model brings its own runner (onnx_engine.OnnxRunner).
        self.runner = getattr(model, "runner_class", WindowRunner)(model, tokenizer, options)
        # Runners with other RUNNER_OPTIONS values (by runner_key), sharing the model.
        self._runners: dict[tuple[int, tuple], WindowRunner] = {}

    def __repr__(self) -> str:
        c, o = self.model.config, self.options
        return (
            f"NERPipeline({c.model_type}, {c.num_layers} layers x {c.hidden_size}, "
            f"labels={list(self.scheme.names)}, aggregation_strategy={o.aggregation_strategy!r}, "
            f"device={self.model.device}, precision={self.precision}, window={self.window_size}, "
            f"stride={o.stride})"
        )

    @property
    def window_size(self) -> int:
        """Tokens per forward pass, special tokens included (see `WindowRunner.window_size`)."""
        return self.runner.window_size

    @overload
    def __call__(
        self,
        inputs: str,
        *,
        is_split_into_words: Literal[False] = False,
        **overrides: Any,
    ) -> Entities: ...
    @overload
    def __call__(
        self,
        inputs: Sequence[str],
        *,
        is_split_into_words: Literal[True],
        **overrides: Any,
    ) -> Entities: ...
    @overload
    def __call__(
        self,
        inputs: Sequence[str] | Sequence[Sequence[str]],
        *,
        is_split_into_words: bool = False,
        **overrides: Any,
    ) -> list[Entities]: ...
    def __call__(
        self,
        inputs: str | Sequence[str] | Sequence[Sequence[str]],
        *,
        is_split_into_words: bool = False,
        **overrides: Any,
    ) -> Entities | list[Entities]:
        """Entities of one text (a list of dicts) or of many (a list of such lists, in order).

        Keys as in transformers (`aggregation.Entity`): `entity_group`, `score`, `word`,
        `start`, `end`; with aggregation_strategy="none" one dict per token
        (`aggregation.TokenEntity`): `entity`, `score`, `index`, `word`, `start`, `end`.
        `start`/`end` are character offsets into the text; for pre-split words into the words
        joined by single spaces.

        overrides: options for this call only, as transformers takes them (`CALL_OPTIONS`):
        `aggregation_strategy`, `ignore_labels`, `word_grouping`, `stride`, `max_length`,
        `batch_size`, `max_batch_tokens`.
        """
        options = self._call_options(overrides)
        single, batch = as_batch(inputs, is_split_into_words)
        labelled = self._label(batch, [options] * len(batch), is_split_into_words)
        return labelled.entities[0] if single else labelled.entities

    def label(
        self,
        items: Sequence[str] | Sequence[Sequence[str]],
        options: PipelineOptions | Sequence[PipelineOptions] | None = None,
        *,
        is_split_into_words: bool = False,
    ) -> Labelled:
        """The entities of many texts (or pre-split sentences), each with options of its own, all
        run together: `label(items, options).entities[i]` equals
        `ner(items[i], **overrides_i)`. Returns `Labelled(entities, tokens)`, the tokens counted
        with special tokens.

        options: one `PipelineOptions` per item, or one for all (None: the pipeline's). Of each,
        the `CALL_OPTIONS` fields apply (how entities are made, how the text runs through the
        model); the loading ones were fixed when the pipeline was made and are the pipeline's.
        """
        batch = checked_items(items, is_split_into_words)
        if options is None or isinstance(options, PipelineOptions):
            per_item = [self.options if options is None else options] * len(batch)
        else:
            per_item = list(options)
            if len(per_item) != len(batch):
                raise InputError(
                    f"{len(per_item)} options for {len(batch)} items: give one per item, or "
                    "one for all"
                )
            for i, o in enumerate(per_item):
                if not isinstance(o, PipelineOptions):
                    raise InputError(f"options {i} is a {type(o).__name__}, not PipelineOptions")
        return self._label(batch, per_item, is_split_into_words)

    def _label(
        self, batch: list, options: list[PipelineOptions], is_split_into_words: bool
    ) -> Labelled:
        """`label`, on checked items and one options object per item."""
        # What each options object needs, worked out once per object (most often one for all):
        # its runner's WINDOW_AND_BATCH values, the window's text tokens, the stride it runs.
        needs: dict[int, tuple[tuple, int, int]] = {}
        for o in options:
            if id(o) not in needs:
                stride, rest = runner_key(o)
                size = self._runner(stride, rest).window_content()
                # At most half a window of overlap: the runner uses no more (runner.py).
                needs[id(o)] = (rest, size, min(stride, size // 2))
        encodings = self.tokenizer.encode_batch(batch, is_pretokenized=is_split_into_words)
        P, Q = self.tokenizer.template.prefix, self.tokenizer.template.suffix
        runs: dict[tuple[int, tuple], list[int]] = {}  # runner_key -> the items run with it
        fits: dict[tuple[int, tuple], list[int]] = {}  # idem, for texts of one window
        for i, (encoding, o) in enumerate(zip(encodings, options, strict=True)):
            rest, size, stride = needs[id(o)]
            if len(encoding) - P - Q <= size:
                fits.setdefault((o.stride, rest), []).append(i)
            else:
                runs.setdefault((stride, rest), []).append(i)
        # A text of one window runs the same whatever the stride: it joins a run of its window.
        for key, members in fits.items():
            joined = next((k for k in runs if k[1] == key[1]), key)
            runs[joined] = sorted(runs.get(joined, []) + members)

        predictions: list[Prediction] = [None] * len(batch)  # type: ignore[list-item]
        for key, members in runs.items():
            found = self._runner(*key).run(
                [encodings[i] for i in members], output_for(options[i] for i in members)
            )
            for i, prediction in zip(members, found, strict=True):
                predictions[i] = prediction
        entities = [
            self.entities(item, encoding, prediction, o)
            for item, encoding, prediction, o in zip(
                batch, encodings, predictions, options, strict=True
            )
        ]
        return Labelled(entities, sum(len(encoding) for encoding in encodings))

    def entities(
        self,
        item: str | Sequence[str],
        encoding: Encoding,
        prediction: Prediction,
        options: PipelineOptions,
    ) -> Entities:
        """One input's entities from its encoding and the runner's prediction for it, made by
        `options`' aggregation_strategy, ignore_labels and word_grouping (step 3 of `label`).
        `item`: the text, or its pre-split words."""
        tok = self.tokenizer
        P, end = tok.template.prefix, len(encoding.ids) - tok.template.suffix
        text, offsets = item, encoding.offsets[P:end]
        if not isinstance(item, str):
            text, offsets = join_words(item, offsets, encoding.word_ids[P:end], tok.spaced_words)
        by_word_ids = options.word_grouping == "word_ids"
        tokens = gather_tokens(
            text, tok.vocabulary_tokens(encoding, P, end), offsets,
            encoding.special_tokens_mask[P:end], encoding.ids[P:end], prediction.labels, prediction.scores, prediction.probs,
            first_index=P, unk_id=tok.unk_token_id, subword_prefix=tok.subword_prefix,
            word_ids=encoding.word_ids[P:end] if by_word_ids else None,
        )  # fmt: skip
        return aggregate(
            tokens, options.aggregation_strategy, self.scheme, options.ignore_labels,
            tok.tokens_to_string,
        )  # fmt: skip

    def _call_options(self, overrides: dict[str, Any]) -> PipelineOptions:
        """The options of one call (None values: unchanged)."""
        given = {name: value for name, value in overrides.items() if value is not None}
        fixed = sorted(set(given) - set(CALL_OPTIONS))
        if fixed:
            known = {f.name for f in dataclasses.fields(PipelineOptions)}
            what = "decide how the model loads and runs" if set(fixed) <= known else "are unknown"
            raise InputError(
                f"{', '.join(fixed)} {what}: pass them to pipeline(), not to the call; a call "
                f"takes {', '.join(CALL_OPTIONS)}"
            )
        if not given:
            return self.options
        options = self.options.replace(**given)
        self._runner(*runner_key(options))  # a window too small for any text: refused now
        return options

    def _runner(self, stride: int, rest: tuple) -> WindowRunner:
        """The runner with this stride and these WINDOW_AND_BATCH values: the pipeline's own, or
        a copy of it (sharing its model and compiled forward), kept for the next calls."""
        own = self.runner.options
        if (stride, rest) == runner_key(own):
            return self.runner
        runner = self._runners.get((stride, rest))
        if runner is None:
            if len(self._runners) >= MAX_RUNNERS:
                self._runners.clear()
            changes = dict(zip(WINDOW_AND_BATCH, rest, strict=True))
            runner = self.runner.with_options(own.replace(stride=stride, **changes))
            self._runners[stride, rest] = runner
        return runner

    def label_words(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """One label per word of each pre-split sentence: the label of the word's first token
        (the first-subword rule CoNLL evaluation uses). Long sentences run as windows.

        A word that yields no token at all (empty, or only characters the tokenizer removes,
        such as NUL) gets "O".
        """
        if isinstance(sentences, str) or not isinstance(sentences, (list, tuple)):
            raise InputError("label_words expects a list of sentences, each a list of words")
        for i, words in enumerate(sentences):
            if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
                raise InputError(f"sentence {i} is not a list of words (str)")
        batch = [list(words) for words in sentences]
        encodings = self.tokenizer.encode_batch(batch, is_pretokenized=True)
        predictions = self.runner.run(encodings, "labels")
        names = self.scheme.names
        P, Q = self.tokenizer.template.prefix, self.tokenizer.template.suffix
        out = []
        for words, enc, pred in zip(batch, encodings, predictions, strict=True):
            labels = [NO_TOKEN_LABEL] * len(words)
            word_ids = enc.word_ids[P : len(enc.ids) - Q]
            # Backwards, so that each word ends up with its first token's label.
            for w, label in zip(reversed(word_ids), reversed(pred.labels), strict=True):
                if w is not None:
                    labels[w] = names[label]
            out.append(labels)
        return out


def model_of(
    task: str | Path | Model | None, model: str | Path | Model | None
) -> str | Path | Model:
    """The model that `pipeline(task, model)` names: `task` may be a task of transformers' (this
    pipeline's, or a mistake) or, in our own shorter call, the model."""
    if isinstance(task, str) and task in TASKS:
        task = None
    elif isinstance(task, str) and task in OTHER_TASKS and not Path(task).exists():
        raise InputError(
            f"task {task!r} is not one minibert-ner runs: it runs named-entity recognition "
            f"(transformers' {' / '.join(repr(t) for t in TASKS)})"
        )
    if task is not None and model is not None:
        raise InputError(
            f"pipeline() got the model twice ({task!r} and model={model!r}); the first argument "
            f"is a task ({', '.join(TASKS)}) or the model"
        )
    return model if model is not None else task if task is not None else DEFAULT_MODEL


def pipeline(
    task: str | Path | Model | None = None,
    model: str | Path | Model | None = None,
    *,
    tokenizer: str | Path | Tokenizer | None = None,
    options: PipelineOptions | Mapping[str, Any] | None = None,
    engine: str | None = None,
    **changes: Any,
) -> NERPipeline:
    """Load a token classifier and its tokenizer, ready to label text.

        pipeline("dslim/distilbert-NER")                   # the model alone
        pipeline("ner", model="dslim/distilbert-NER", device=0)   # as transformers takes it

    task: "ner" or "token-classification" (transformers' names for this task), or the model
        itself; neither: DEFAULT_MODEL.
    model: a hub id ("dslim/distilbert-NER"), a local folder, or a loaded model
        (`TokenClassifier`, `DebertaTokenClassifier`; then pass `tokenizer`). tokenizer: defaults
        to the model's own folder.
    options, **changes: the pipeline's options (`PipelineOptions`, each field documented
        there): pass an object or a dict of fields, or fields by name (`pipeline(m,
        aggregation_strategy="first", device="cuda")`), or both (the names win). `device` takes
        transformers' integers (-1: CPU, N: GPU N); None: CUDA when there is a GPU, else the CPU
        (devices.py). `torch_dtype` is `dtype`'s transformers name. An unknown name or a bad
        value is an InputError, raised before anything loads.

    engine: "torch" (PyTorch: model.py, deberta.py) or "onnx" (onnxruntime on a folder written
        by `export_onnx` / `minibert-ner export`, without torch: docs/onnx.md); None: "onnx"
        for such a folder, else "torch".

    A loaded model is used as it is; with device, dtype or quantize given, a copy of it is
    converted and the caller's model stays unchanged. dtype="auto" runs the fastest mode this CPU
    can trust (precision.py); `ner.precision` says which, and why.
    """
    model = model_of(task, model)
    if engine not in (None, *ENGINES):
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if isinstance(options, Mapping):  # fields by name, as **changes (which win)
        options, changes = None, {**options, **changes}
    elif options is not None and not isinstance(options, PipelineOptions):
        raise InputError(
            f"options is a {type(options).__name__}; give a PipelineOptions, a dict of its "
            "fields, or the fields by name"
        )
    if "torch_dtype" in changes:
        if changes.get("dtype") is not None:
            raise InputError("give dtype or torch_dtype, not both")
        changes["dtype"] = changes.pop("torch_dtype")
    options = (options or PipelineOptions()).replace(**changes)
    from .onnx_engine import is_export, load_onnx  # torch-free

    if engine == "onnx" or (engine is None and is_export(model)):
        if not is_export(model):
            raise InputError(
                f"{model!r} is not an export folder (it has no pipeline.json); make one with "
                "minibert-ner export --model M --output DIR"
            )
        if tokenizer is not None:
            raise InputError("an export folder brings its own tokenizer: leave tokenizer out")
        onnx_model, onnx_tokenizer = load_onnx(model, options)
        return NERPipeline(onnx_model, onnx_tokenizer, options)  # type: ignore[arg-type]
    if is_export(model):
        raise InputError(
            f"{model} is an ONNX export, without PyTorch weights: run it with engine='onnx' "
            "(the default for such a folder)"
        )
    # The PyTorch engine: torch loads here, never on the ONNX engine's path.
    from ..checkpoint import MODEL_CLASSES, convert_model, load_model
    from ..devices import resolve_dtype
    from .quantize import quantize_int8

    loaded = isinstance(model, MODEL_CLASSES)
    if loaded and tokenizer is None:
        raise InputError("a loaded model needs its tokenizer: pass tokenizer=")
    device = resolve_device(options.device)
    if loaded and options.device is None:
        device = model.device  # type: ignore[union-attr]
    precision = resolve(options.dtype, options.quantize, device.type)
    mode = precision.mode
    dtype, matmul = resolve_dtype(mode.dtype), resolve_dtype(mode.matmul_dtype)
    if loaded:
        if options.device is not None or options.dtype is not None or mode.quantize is not None:
            model = copy.deepcopy(model)  # converted below; the caller's stays as it was
            model.to(device=device)
            if matmul is not None:
                model = convert_model(model, dtype, matmul, mode.matmul_from_block)  # type: ignore[arg-type]
            elif options.dtype is not None:
                model.to(dtype=dtype)
    else:
        if tokenizer is None:
            tokenizer = model
        model = load_model(
            model,
            revision=options.revision,
            token=options.token,
            device=device,
            dtype=dtype,
            matmul_dtype=matmul,
            matmul_from_block=mode.matmul_from_block,
        )
    if not isinstance(tokenizer, Tokenizer):
        tokenizer = Tokenizer.from_pretrained(
            tokenizer, revision=options.revision, token=options.token
        )
    if mode.quantize == "int8":
        model = quantize_int8(model)  # at the call site, like compile: the model class is unchanged
    return NERPipeline(model, tokenizer, options, precision=precision)
