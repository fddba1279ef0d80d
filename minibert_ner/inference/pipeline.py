"""The NER pipeline: text in, entities out.

    >>> import minibert_ner
    >>> ner = minibert_ner.pipeline("dslim/distilbert-NER")
    >>> ner("My name is Wolfgang and I live in Berlin")
    [{'entity_group': 'PER', 'score': 0.99..., 'word': 'Wolfgang', 'start': 11, 'end': 19}, ...]

The output equals `transformers`' `pipeline("token-classification")` for every aggregation
strategy (the rules are written down in `aggregation.py`), except that long text is never cut:
it runs as overlapping windows (`windows.py`).

How a call runs:
1. every text is tokenized at once (`encode_batch`: the Rust side works in parallel);
2. `_predict` cuts long texts into windows, sorts all windows by length and runs them in
   batches bounded by a row count and a padded-token budget (little padding, steady memory);
   softmax and argmax run on the whole batch tensor, which becomes Python lists once per batch;
   each text's windows are then stitched back together, one label per token;
3. `aggregation.aggregate` turns each text's token labels into entities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from tokenizers import Encoding

from ..checkpoint import load_model, resolve_dtype
from ..errors import InputError, MiniBertError
from ..model import TokenClassifier
from ..tokenizer import Tokenizer
from .aggregation import STRATEGIES, LabelScheme, aggregate, gather_tokens
from .compile import LENGTH_BUCKET, compile_model
from .quantize import QUANTIZATIONS, quantize_int8
from .windows import plan_windows

DEFAULT_MODEL = "dslim/distilbert-NER"
DEFAULT_BATCH_SIZE = 32  # rows (texts or windows) per forward pass, at most
DEFAULT_MAX_BATCH_TOKENS = 16384  # padded tokens (rows x longest row) per forward pass, at most
DEFAULT_STRIDE = 128  # tokens shared by neighbouring windows over long text, at least
PADDING_FRACTION, PADDING_SLACK = 0.1, 8  # a batch's rows: at most 10% (or 8 tokens) padding
NO_TOKEN_LABEL = "O"  # label_words: a word the tokenizer drops entirely (e.g. only a NUL)


class Prediction(NamedTuple):
    """The model's verdict on one text's tokens (those between the template's [CLS] and [SEP])."""

    labels: list[int]  # best label id per token
    scores: list[float] | None  # its probability (None when only labels were asked for)
    probs: list[list[float]] | None  # every label's probability (only for `average`)

    @staticmethod
    def concat(parts: list[Prediction], output: str) -> Prediction:
        """One text's windows, each cut to the tokens it labels, back to back."""
        if len(parts) == 1:
            return parts[0]
        return Prediction(
            [x for p in parts for x in p.labels],
            None if output == "labels" else [x for p in parts for x in p.scores],
            [x for p in parts for x in p.probs] if output == "probs" else None,
        )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device` checked against what PyTorch sees; None picks CUDA when there is a GPU, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from e
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {device!r}: PyTorch sees no CUDA GPU here; use cpu")
        if resolved.index is not None and resolved.index >= count:
            raise InputError(f"device {device!r}: PyTorch sees only {count} CUDA GPU(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r}: the Apple MPS backend is not available here")
    return resolved


def check_strategy(strategy: str) -> str:
    """An aggregation strategy name, lower-cased, or a clear error."""
    name = strategy.lower() if isinstance(strategy, str) else strategy
    if name not in STRATEGIES:
        raise InputError(
            f"unknown aggregation_strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}"
        )
    return name


def check_ignore_labels(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):  # ignore_labels="O" would ignore the letter, not the label
        raise InputError(f"ignore_labels must be a list of labels, e.g. [{labels!r}], not a str")
    if not all(isinstance(label, str) for label in labels):
        raise InputError(f"ignore_labels must hold label names (str), got {labels!r}")
    return tuple(labels)


def as_batch(inputs: object, is_split_into_words: bool) -> tuple[bool, list]:
    """(single, batch): `inputs` as a list of texts (str) or of pre-split sentences (word lists).

    One text, or one list of words when `is_split_into_words`, is a single input.
    """
    if isinstance(inputs, str):
        if is_split_into_words:
            raise TypeError("is_split_into_words=True expects a list of words, got a str")
        return True, [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"expected a str or a list of str, got {type(inputs).__name__}")
    if not is_split_into_words:
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise TypeError(
                    f"input {i} is a {type(text).__name__}, not a str; for pre-split words "
                    "pass is_split_into_words=True"
                )
        return False, list(inputs)
    if all(isinstance(word, str) for word in inputs):
        return True, [list(inputs)]
    for i, words in enumerate(inputs):
        if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
            raise TypeError(f"input {i} is not a list of words (str)")
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


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Row indices in batches, longest rows first.

    A batch holds at most `batch_size` rows and `max_tokens` padded tokens (rows x its first,
    longest row; a row over budget runs alone), and its rows are at most 10% (or 8 tokens)
    shorter than its longest: padding costs as much as text on a CPU, so a few long texts do not
    pad a batch of short ones.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else []
        longest = lengths[batch[0]] if batch else 0
        if (
            0 < len(batch) < batch_size
            and (len(batch) + 1) * longest <= max_tokens
            and longest - lengths[i] <= max(PADDING_SLACK, PADDING_FRACTION * longest)
        ):
            batch.append(i)
        else:
            batches.append([i])
    return batches


class NERPipeline:
    """A token classifier and its tokenizer, run as `transformers`' NER pipeline runs them.

    `ner(text)` -> list of entity dicts; `ner([text, ...])` -> one such list per text, in input
    order; `ner(words, is_split_into_words=True)` for one pre-split sentence, or a list of them.
    `ner.label_words(sentences)` -> one label per word (the first-subword rule CoNLL uses).

    Build one with `minibert_ner.pipeline(...)`, or around objects already loaded:
    `NERPipeline(model, tokenizer)`.
    """

    def __init__(
        self,
        model: TokenClassifier,
        tokenizer: Tokenizer,
        *,
        aggregation_strategy: str = "simple",
        ignore_labels: Sequence[str] = ("O",),
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        stride: int = DEFAULT_STRIDE,
        max_length: int | None = None,
        compile: bool = False,
    ) -> None:
        for name, value, low in [
            ("batch_size", batch_size, 1),
            ("max_batch_tokens", max_batch_tokens, 1),
            ("stride", stride, 0),
            ("max_length", 2 if max_length is None else max_length, 2),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
        if not model.id2label:
            raise InputError("the model has no labels (id2label is empty); is it a classifier?")
        if tokenizer.backend.get_vocab_size() > model.config.vocab_size:
            raise InputError(
                f"the tokenizer knows {tokenizer.backend.get_vocab_size()} tokens but the model "
                f"only {model.config.vocab_size}: they do not belong together"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.aggregation_strategy = check_strategy(aggregation_strategy)
        self.ignore_labels = check_ignore_labels(ignore_labels)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.stride = stride
        self.max_length = max_length
        self.compile = compile
        self.scheme = LabelScheme.from_id2label(model.id2label)

        # The template's special tokens around a text: for BERT one [CLS] before, one [SEP] after.
        n_special = len(tokenizer.encode("").ids)
        mask = tokenizer.encode("a").special_tokens_mask
        self._prefix = mask.index(0) if 0 in mask else n_special
        self._suffix = n_special - self._prefix
        unk = getattr(tokenizer.backend.model, "unk_token", None)
        self._unk_id = tokenizer.backend.token_to_id(unk) if unk else None
        self._subword_prefix = tokenizer.subword_prefix
        # torch.compile at the call site: the model stays a plain module.
        self._forward = compile_model(model) if compile else model
        self._window_content()  # refuse a window too small to hold a token now, not mid-run

    def __repr__(self) -> str:
        c = self.model.config
        return (
            f"NERPipeline({c.model_type}, {c.num_layers} layers x {c.hidden_size}, "
            f"labels={list(self.scheme.names)}, aggregation_strategy={self.aggregation_strategy!r}, "
            f"device={self.model.device}, dtype={self.model.dtype}, window={self.window_size}, "
            f"stride={self.stride})"
        )

    @property
    def window_size(self) -> int:
        """Tokens per forward pass, special tokens included: the smallest of the model's position
        table, the tokenizer's `model_max_length` and `max_length`. Read at every call, so that
        an intervention that shortens the position table takes effect."""
        limits = (
            self.model.config.max_position_embeddings,
            self.tokenizer.model_max_length,
            self.max_length,
        )
        return min(limit for limit in limits if limit)

    def _window_content(self) -> int:
        """Text tokens per window: the window less the template's special tokens."""
        size = self.window_size - self._prefix - self._suffix
        if size < 1:
            raise InputError(
                f"a window of {self.window_size} tokens leaves no room for text next to the "
                f"{self._prefix + self._suffix} special tokens; use a larger max_length"
            )
        return size

    def __call__(
        self,
        inputs: str | Sequence[str] | Sequence[Sequence[str]],
        *,
        is_split_into_words: bool = False,
        aggregation_strategy: str | None = None,
        ignore_labels: Sequence[str] | None = None,
    ) -> list[dict] | list[list[dict]]:
        """Entities of one text (a list of dicts) or of many (a list of such lists, in order).

        Keys as in transformers: `entity_group`, `score`, `word`, `start`, `end` (and with
        aggregation_strategy="none" one dict per token: `entity`, `score`, `index`, `word`,
        `start`, `end`). `start`/`end` are character offsets into the text; for pre-split words
        into the words joined by single spaces. `aggregation_strategy` and `ignore_labels`
        override the pipeline's settings for this call.
        """
        strategy = check_strategy(aggregation_strategy or self.aggregation_strategy)
        ignore = self.ignore_labels if ignore_labels is None else check_ignore_labels(ignore_labels)
        single, batch = as_batch(inputs, is_split_into_words)
        encodings = self.tokenizer.encode_batch(batch) if batch else []
        predictions = self._predict(encodings, "probs" if strategy == "average" else "scores")

        P = self._prefix
        results = []
        for item, enc, pred in zip(batch, encodings, predictions, strict=True):
            end = len(enc.ids) - self._suffix
            text, offsets = item, enc.offsets[P:end]
            if not isinstance(item, str):
                text, offsets = join_words(item, offsets, enc.word_ids[P:end])
            tokens = gather_tokens(
                text, enc.tokens[P:end], offsets, enc.special_tokens_mask[P:end], enc.ids[P:end],
                pred.labels, pred.scores, pred.probs,
                first_index=P, unk_id=self._unk_id, subword_prefix=self._subword_prefix,
            )  # fmt: skip
            results.append(
                aggregate(tokens, strategy, self.scheme, ignore, self.tokenizer.tokens_to_string)
            )
        return results[0] if single else results

    def label_words(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """One label per word of each pre-split sentence: the label of the word's first token
        (the first-subword rule CoNLL evaluation uses). Long sentences run as windows.

        A word that yields no token at all (empty, or only characters the tokenizer removes,
        such as NUL) gets "O".
        """
        if isinstance(sentences, str) or not isinstance(sentences, (list, tuple)):
            raise TypeError("label_words expects a list of sentences, each a list of words")
        for i, words in enumerate(sentences):
            if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
                raise TypeError(f"sentence {i} is not a list of words (str)")
        batch = [list(words) for words in sentences]
        encodings = self.tokenizer.encode_batch(batch) if batch else []
        predictions = self._predict(encodings, "labels")
        names = self.scheme.names
        out = []
        for words, enc, pred in zip(batch, encodings, predictions, strict=True):
            labels = [NO_TOKEN_LABEL] * len(words)
            word_ids = enc.word_ids[self._prefix : len(enc.ids) - self._suffix]
            # Backwards, so that each word ends up with its first token's label.
            for w, label in zip(reversed(word_ids), reversed(pred.labels), strict=True):
                if w is not None:
                    labels[w] = names[label]
            out.append(labels)
        return out

    def _predict(self, encodings: Sequence[Encoding], output: str) -> list[Prediction]:
        """Run the model over every text's tokens; `output` is "labels", "scores" or "probs".

        Texts longer than a window become several rows (windows.py); each token's result is
        kept from the one row that labels it, so every text gets exactly one result per token.
        """
        size = self._window_content()
        # At most half a window of overlap: more would only repeat work (see windows.py).
        stride = min(self.stride, size // 2)
        P, Q = self._prefix, self._suffix
        rows: list[list[int]] = []  # input ids of each row (a whole text or one window)
        keep: list[tuple[int, int]] = []  # [from, to) positions of a row whose results we keep
        rows_of_text: list[range] = []  # which rows hold each text, in order
        for enc in encodings:
            ids, n = enc.ids, len(enc.ids) - P - Q
            windows = plan_windows(n, size, stride) if n > 0 else []
            rows_of_text.append(range(len(rows), len(rows) + len(windows)))
            for w in windows:
                if len(windows) == 1:
                    rows.append(ids)  # the text as it is
                else:  # the window's tokens between the template's [CLS] and [SEP]
                    rows.append(ids[:P] + ids[P + w.start : P + w.end] + ids[P + n :])
                keep.append((P + w.keep_start - w.start, P + w.keep_end - w.start))

        results = self._run_rows(rows, keep, output)
        return [Prediction.concat([results[r] for r in mine], output) for mine in rows_of_text]

    def _padded_length(self, n: int) -> int:
        """Compiled graphs are specialised per shape: round lengths up to a few buckets."""
        if not self.compile:
            return n
        return min(-(-n // LENGTH_BUCKET) * LENGTH_BUCKET, self.window_size)

    def _run_rows(
        self, rows: list[list[int]], keep: list[tuple[int, int]], output: str
    ) -> list[Prediction]:
        """Forward passes over `rows` in length-sorted batches; results back in row order."""
        results: list[Prediction] = [Prediction([], None, None)] * len(rows)
        if not rows:
            return results
        lengths = [self._padded_length(len(row)) for row in rows]
        pad = self.tokenizer.pad_token_id
        device = self.model.device
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for batch in length_batches(lengths, self.batch_size, self.max_batch_tokens):
                    T = lengths[batch[0]]
                    ids = [rows[i] + [pad] * (T - len(rows[i])) for i in batch]
                    n_real = [len(rows[i]) for i in batch]
                    if self.compile:  # a fixed batch shape per length: one graph per bucket
                        B = min(self.batch_size, max(1, self.max_batch_tokens // T))
                        ids += [[pad] * T] * (B - len(batch))
                        n_real += [0] * (B - len(batch))
                    input_ids = torch.tensor(ids, dtype=torch.long).to(device)  # (B, T)
                    mask = None  # no padding: SDPA may pick its fastest kernel
                    if self.compile or min(n_real) < T:
                        mask = (torch.arange(T) < torch.tensor(n_real)[:, None]).long().to(device)
                    logits = self._logits(input_ids, mask)  # (B, T, num_labels)
                    if output == "labels":
                        labels, scores, probs = logits.argmax(-1).cpu().tolist(), None, None
                    else:
                        # float32 softmax, as transformers (fp16/bf16 logits are cast first)
                        p = logits.float().softmax(-1)  # (B, T, num_labels)
                        best, label = p.max(-1)  # (B, T): first maximum on ties, like argmax
                        labels, scores = label.cpu().tolist(), best.cpu().tolist()
                        probs = p.cpu().tolist() if output == "probs" else None
                    for j, i in enumerate(batch):
                        a, b = keep[i]
                        results[i] = Prediction(
                            labels[j][a:b],
                            scores[j][a:b] if scores is not None else None,
                            probs[j][a:b] if probs is not None else None,
                        )
        finally:
            self.model.train(was_training)
        return results

    def _logits(self, input_ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        try:
            logits = self._forward(input_ids, attention_mask=mask).logits
        except Exception as e:
            if not self.compile:
                raise
            first_line = (str(e).strip().splitlines() or [""])[0][:300]
            raise MiniBertError(
                f"torch.compile could not compile the model ({type(e).__name__}: {first_line}); "
                "run without compile"
            ) from e
        if not torch.isfinite(logits).all():
            raise MiniBertError(
                f"the model produced NaN or infinite scores in {self.model.dtype} "
                "(activations can overflow in float16); run it in float32 or bfloat16"
            )
        return logits


def pipeline(
    model: str | Path | TokenClassifier = DEFAULT_MODEL,
    *,
    tokenizer: str | Path | Tokenizer | None = None,
    aggregation_strategy: str = "simple",
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    stride: int = DEFAULT_STRIDE,
    ignore_labels: Sequence[str] = ("O",),
    compile: bool = False,
    max_length: int | None = None,
    quantize: str | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
) -> NERPipeline:
    """Load a token classifier and its tokenizer, ready to label text.

    model: a hub id ("dslim/distilbert-NER"), a local folder, or a loaded `TokenClassifier`
        (then pass `tokenizer`). tokenizer: defaults to the model's own folder.
    aggregation_strategy: "none", "simple" (default), "first", "average" or "max", as in
        transformers (see aggregation.py).
    device: "cpu", "cuda", "cuda:1", "mps"; None picks CUDA when PyTorch sees a GPU.
    dtype: None (float32), torch.bfloat16 / "bfloat16", torch.float16 / "float16".
    batch_size, max_batch_tokens: a forward pass runs at most this many rows (texts or windows)
        and this many padded tokens; texts are sorted by length first, so padding stays small.
    stride: tokens that neighbouring windows over a long text share, at least (128; capped at
        half a window). Text is never truncated; see windows.py for which window labels a token.
    ignore_labels: entity groups (tokens, with "none") to leave out; ("O",) by default.
    compile: run the model through torch.compile (lengths padded to multiples of 64).
    max_length: tokens per window, special tokens included; default: the model's positions
        (and the tokenizer's model_max_length if smaller).
    quantize: None (exact), or "int8": int8 dynamic quantization of the encoder's linear layers
        (torchao; faster on CPU, labels agree with float32 on most tokens; see quantize.py).
    revision, token: for hub ids: a branch/tag/commit, and an access token for private models.
    """
    check_strategy(aggregation_strategy)  # fail before a slow load
    if quantize not in QUANTIZATIONS:
        raise InputError(f"unknown quantize={quantize!r}; use None or one of {QUANTIZATIONS[1:]}")
    try:
        torch_dtype = resolve_dtype(dtype)
    except ValueError as e:
        raise InputError(str(e)) from e
    if isinstance(model, TokenClassifier):
        if tokenizer is None:
            raise InputError("a loaded model needs its tokenizer: pass tokenizer=")
        moves = {"device": resolve_device(device) if device is not None else None}
        moves["dtype"] = torch_dtype
        model = model.to(**{k: v for k, v in moves.items() if v is not None})
    else:
        if tokenizer is None:
            tokenizer = model
        model = load_model(
            model, revision=revision, token=token, device=resolve_device(device), dtype=torch_dtype
        )
    if not isinstance(tokenizer, Tokenizer):
        tokenizer = Tokenizer.from_pretrained(tokenizer, revision=revision, token=token)
    if quantize == "int8":
        model = quantize_int8(model)  # at the call site, like compile: the model class is unchanged
    return NERPipeline(
        model,
        tokenizer,
        aggregation_strategy=aggregation_strategy,
        ignore_labels=ignore_labels,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        stride=stride,
        max_length=max_length,
        compile=compile,
    )
