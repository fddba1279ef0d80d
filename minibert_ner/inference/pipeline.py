"""The NER pipeline: text in, entities out.

    >>> import minibert_ner
    >>> ner = minibert_ner.pipeline("dslim/distilbert-NER")
    >>> ner("My name is Wolfgang and I live in Berlin")
    [{'entity_group': 'PER', 'score': 0.99..., 'word': 'Wolfgang', 'start': 11, 'end': 19}, ...]

The output equals `transformers`' `pipeline("token-classification")` for every aggregation
strategy (the rules are written down in `aggregation.py`), except that long text is never cut:
it runs as overlapping windows (`windows.py`).

How a call runs:
1. the inputs are checked and every text is tokenized at once (`encode_batch`: the Rust side
   works in parallel);
2. the runner (`runner.py`) puts every token through the model, in windows and length-sorted
   batches under a token budget, and returns one label (and probability) per token;
3. `aggregation.aggregate` turns each text's token labels into entities.

Options (`options.PipelineOptions`) are checked once, when the pipeline is made.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import torch
from tokenizers import Encoding

from ..checkpoint import MODEL_CLASSES, load_model, resolve_dtype
from ..errors import InputError
from ..families import Model
from ..tokenizer import Tokenizer
from .aggregation import Entity, LabelScheme, TokenEntity, aggregate, gather_tokens
from .options import DEFAULT_MODEL, PipelineOptions, canonical_device
from .quantize import quantize_int8
from .runner import Prediction, WindowRunner

__all__ = ["CALL_OPTIONS", "TASKS", "NERPipeline", "pipeline", "resolve_device"]

# The options a call may change, as transformers' pipeline call takes them; the others decide
# how the model loads or is compiled, and belong to `pipeline()`.
CALL_OPTIONS = (
    "aggregation_strategy", "ignore_labels", "word_grouping", "stride", "max_length",
    "batch_size", "max_batch_tokens",
)  # fmt: skip
RUNNER_OPTIONS = (
    "stride",
    "max_length",
    "batch_size",
    "max_batch_tokens",
)  # of those, the runner's
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
Entities = list[Entity] | list[TokenEntity]  # one text's: Entity, or TokenEntity with "none"


# The devices a model can run on here, by torch's device type.
DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | int | torch.device | None) -> torch.device:
    """`device` checked against what PyTorch sees; None picks CUDA when there is a GPU, else CPU.
    Integers as transformers reads them: -1 the CPU, N the GPU N."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = canonical_device(device)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from e
    if resolved.type not in DEVICE_TYPES:
        raise InputError(f"device {device!r} cannot run a model here; use cpu, cuda, cuda:N or mps")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {device!r}: PyTorch sees no CUDA GPU here; use cpu")
        if resolved.index is not None and resolved.index >= count:
            raise InputError(f"device {device!r}: PyTorch sees only {count} CUDA GPU(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r}: the Apple MPS backend is not available here")
    return resolved


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
    if not is_split_into_words:
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise InputError(
                    f"input {i} is a {type(text).__name__}, not a str; for pre-split words "
                    "pass is_split_into_words=True"
                )
        return False, list(inputs)
    if all(isinstance(word, str) for word in inputs):
        return True, [list(inputs)]
    for i, words in enumerate(inputs):
        if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
            raise InputError(f"input {i} is not a list of words (str)")
    return False, [list(words) for words in inputs]


def join_words(
    words: Sequence[str], offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]
) -> tuple[str, list[tuple[int, int]]]:
    """Pre-split words as transformers reports them: the text is the words joined by single
    spaces, and each token's offsets (within its word) move into that text."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
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
    `ner.label_words(sentences)` -> one label per word (the first-subword rule CoNLL uses).

    Build one with `minibert_ner.pipeline(...)`, or around objects already loaded:
    `NERPipeline(model, tokenizer, stride=64)`. Of the options it uses those that run the model
    and make entities (the loading ones, device, dtype, quantize, revision, token, are
    `pipeline()`'s).
    """

    def __init__(
        self,
        model: Model,
        tokenizer: Tokenizer,
        options: PipelineOptions | None = None,
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
        self.scheme = LabelScheme.from_id2label(model.id2label)
        self.runner = WindowRunner(model, tokenizer, options)

    def __repr__(self) -> str:
        c, o = self.model.config, self.options
        return (
            f"NERPipeline({c.model_type}, {c.num_layers} layers x {c.hidden_size}, "
            f"labels={list(self.scheme.names)}, aggregation_strategy={o.aggregation_strategy!r}, "
            f"device={self.model.device}, dtype={self.model.dtype}, window={self.window_size}, "
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
        call, runner = self._call_options(overrides)
        single, batch = as_batch(inputs, is_split_into_words)
        encodings = self.tokenizer.encode_batch(batch, is_pretokenized=is_split_into_words)
        average = call.aggregation_strategy == "average"  # needs every label's probability
        predictions = runner.run(encodings, "probs" if average else "scores")

        results = [
            self.entities(item, enc, pred, call)
            for item, enc, pred in zip(batch, encodings, predictions, strict=True)
        ]
        return results[0] if single else results

    def entities(
        self,
        item: str | Sequence[str],
        encoding: Encoding,
        prediction: Prediction,
        options: PipelineOptions,
    ) -> Entities:
        """One input's entities from its encoding and the runner's prediction for it, made by
        `options`' aggregation_strategy, ignore_labels and word_grouping (step 3 of a call; the
        server runs steps 1-2 for many requests at once, then this per request).
        `item`: the text, or its pre-split words."""
        tok = self.tokenizer
        P, end = tok.template.prefix, len(encoding.ids) - tok.template.suffix
        text, offsets = item, encoding.offsets[P:end]
        if not isinstance(item, str):
            text, offsets = join_words(item, offsets, encoding.word_ids[P:end])
        by_word_ids = options.word_grouping == "word_ids"
        tokens = gather_tokens(
            text, encoding.tokens[P:end], offsets, encoding.special_tokens_mask[P:end],
            encoding.ids[P:end], prediction.labels, prediction.scores, prediction.probs,
            first_index=P, unk_id=tok.unk_token_id, subword_prefix=tok.subword_prefix,
            word_ids=encoding.word_ids[P:end] if by_word_ids else None,
        )  # fmt: skip
        return aggregate(
            tokens, options.aggregation_strategy, self.scheme, options.ignore_labels,
            tok.tokens_to_string,
        )  # fmt: skip

    def _call_options(self, overrides: dict[str, Any]) -> tuple[PipelineOptions, WindowRunner]:
        """The options of one call and the runner that applies them (None values: unchanged)."""
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
            return self.options, self.runner
        call = self.options.replace(**given)
        runner = self.runner
        if any(getattr(call, name) != getattr(self.options, name) for name in RUNNER_OPTIONS):
            runner = self.runner.with_options(call)
        return call, runner

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
    options: PipelineOptions | None = None,
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
        there): pass an object, or fields by name (`pipeline(m, aggregation_strategy="first",
        device="cuda")`), or both (the names change the object's fields). `device` also takes
        transformers' integers (-1: CPU, N: GPU N), `torch_dtype` is `dtype`'s transformers name.
        An unknown name or a bad value is an InputError, raised before anything loads.

    A loaded model is used as it is; with device, dtype or quantize given, a copy of it is
    converted and the caller's model stays unchanged.
    """
    model = model_of(task, model)
    if "torch_dtype" in changes:
        if changes.get("dtype") is not None:
            raise InputError("give dtype or torch_dtype, not both")
        changes["dtype"] = changes.pop("torch_dtype")
    options = (options or PipelineOptions()).replace(**changes)
    dtype = resolve_dtype(options.dtype)
    if isinstance(model, MODEL_CLASSES):
        if tokenizer is None:
            raise InputError("a loaded model needs its tokenizer: pass tokenizer=")
        if options.device is not None or dtype is not None or options.quantize is not None:
            model = copy.deepcopy(model)  # converted below; the caller's stays as it was
            if options.device is not None:
                model.to(device=resolve_device(options.device))
            if dtype is not None:
                model.to(dtype=dtype)
    else:
        if tokenizer is None:
            tokenizer = model
        model = load_model(
            model,
            revision=options.revision,
            token=options.token,
            device=resolve_device(options.device),
            dtype=dtype,
        )
    if not isinstance(tokenizer, Tokenizer):
        tokenizer = Tokenizer.from_pretrained(
            tokenizer, revision=options.revision, token=options.token
        )
    if options.quantize == "int8":
        model = quantize_int8(model)  # at the call site, like compile: the model class is unchanged
    return NERPipeline(model, tokenizer, options)
