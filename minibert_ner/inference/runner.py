"""The inference runner: every text's tokens through the model, one prediction per token back.

    runner = WindowRunner(model, tokenizer, options)
    predictions = runner.run(encodings, "scores")   # one Prediction per encoding, in order

How it runs: texts longer than a window become several rows (windows.py); all rows, sorted by
length, go through the model in batches bounded by a row count and a padded-token budget
(steady memory). A batch runs packed (packing.py): every matmul sees only real tokens, so rows of
any lengths share one forward pass. Compiled, it runs padded instead (one graph per shape), its
rows then at most 10% shorter than the longest. Softmax and argmax run on the whole batch tensor,
which becomes Python lists once per batch; each text's rows are then stitched back together, one
result per token, each token's result taken from the one window that labels it.

Windows, batches and stitching are the same for every engine; one batch's forward pass
(`_forward_batch`) is the engine's own. This class runs PyTorch models; the ONNX engine
(onnx_engine.py) runs an exported graph with onnxruntime and numpy. torch is imported where the
PyTorch engine runs, not with this module, so that the ONNX engine never loads it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal, NamedTuple

from tokenizers import Encoding

from ..errors import InputError, MiniBertError
from ..families import Model
from ..tokenizer import Tokenizer
from .options import PipelineOptions
from .windows import plan_windows, window_length

if TYPE_CHECKING:
    import torch

__all__ = ["Output", "Prediction", "WindowRunner", "length_groups"]

# What a run returns per token: the label only, its probability too, or every label's.
Output = Literal["labels", "scores", "probs"]
# One batch's results, one list per row: best label ids, their probabilities, every label's.
BatchResult = tuple[list[list[int]], list[list[float]] | None, list[list[list[float]]] | None]
# packing.py's: rows padded together are at most 10% (or 8 tokens) shorter than the longest.
PADDING_FRACTION, PADDING_SLACK = 0.1, 8


# Copied from minibert_ner.packing.length_groups
def length_groups(
    lengths: Sequence[int],
    max_rows: int | None = None,
    max_tokens: int | None = None,
    *,
    similar: bool = True,
) -> list[list[int]]:
    """Row indices in groups, longest rows first, each padded to its first (longest) row.

    With `similar`, a group's rows are at most 10% (or 8 tokens) shorter than its longest, so
    that a few long rows do not pad many short ones. With limits, a group also holds at most
    `max_rows` rows and `max_tokens` padded tokens (rows x its longest; a row over that budget is
    a group alone).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    groups: list[list[int]] = []
    for i in order:
        group = groups[-1] if groups else []
        longest = lengths[group[0]] if group else 0
        if (
            group
            and (max_rows is None or len(group) < max_rows)
            and (max_tokens is None or (len(group) + 1) * longest <= max_tokens)
            and (
                not similar
                or longest - lengths[i] <= max(PADDING_SLACK, PADDING_FRACTION * longest)
            )
        ):
            group.append(i)
        else:
            groups.append([i])
    return groups


class Prediction(NamedTuple):
    """The model's verdict on one text's tokens (those between the template's special tokens)."""

    labels: list[int]  # best label id per token
    scores: list[float] | None  # its probability (None when only labels were asked for)
    probs: list[list[float]] | None  # every label's probability (only for output "probs")

    @staticmethod
    def concat(parts: list[Prediction], output: Output) -> Prediction:
        """One text's windows, each cut to the tokens it labels, back to back."""
        if len(parts) == 1:
            return parts[0]
        return Prediction(
            [x for p in parts for x in p.labels],
            None if output == "labels" else [x for p in parts for x in p.scores or []],
            [x for p in parts for x in p.probs or []] if output == "probs" else None,
        )


class WindowRunner:
    """Runs a token classifier over tokenized texts, in windows and length-sorted batches.

    Uses the options that decide how the model runs: `batch_size`, `max_batch_tokens`, `stride`,
    `max_length` and `compile` (torch.compile at the call site: the model stays a plain module).
    """

    def __init__(self, model: Model, tokenizer: Tokenizer, options: PipelineOptions):
        self.model = model
        self.options = options
        self.template = tokenizer.template
        self.pad_token_id = tokenizer.pad_token_id
        self.tokenizer_max_length = tokenizer.model_max_length
        self._forward = model
        if options.compile:
            from .compile import compile_model

            self._forward = compile_model(model)
        self.window_content()  # refuse a window too small to hold a token now, not mid-run

    def with_options(self, options: PipelineOptions) -> WindowRunner:
        """This runner with other options for one call (not `compile`: the model is shared)."""
        assert options.compile == self.options.compile
        runner = copy.copy(self)
        runner.options = options
        runner.window_content()
        return runner

    @property
    def window_size(self) -> int:
        """Tokens per forward pass, special tokens included: the smallest of the model's usable
        positions (`config.max_positions`: RoBERTa's 514 rows hold 512; DeBERTa-v3: no limit),
        the tokenizer's `model_max_length` and `max_length` (`windows.window_length`). Read at
        every call, so that an intervention that shortens the position table takes effect."""
        return window_length(
            self.model.config.max_positions, self.tokenizer_max_length, self.options.max_length
        )

    def window_content(self) -> int:
        """Text tokens per window: the window less the template's special tokens."""
        special = self.template.prefix + self.template.suffix
        size = self.window_size - special
        if size < 1:
            raise InputError(
                f"a window of {self.window_size} tokens leaves no room for text next to the "
                f"{special} special tokens; use a larger max_length"
            )
        return size

    def run(self, encodings: Sequence[Encoding], output: Output) -> list[Prediction]:
        """One Prediction per encoding (a text with its special tokens), for the tokens between
        the template's special tokens.

        Texts longer than a window become several rows (windows.py); each token's result is
        kept from the one row that labels it, so every text gets exactly one result per token.
        """
        size = self.window_content()
        # At most half a window of overlap: more would only repeat work (see windows.py).
        stride = min(self.options.stride, size // 2)
        P, Q = self.template.prefix, self.template.suffix
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
                else:  # the window's tokens between the template's special tokens
                    rows.append(ids[:P] + ids[P + w.start : P + w.end] + ids[P + n :])
                keep.append((P + w.keep_start - w.start, P + w.keep_end - w.start))

        results = self._run_rows(rows, keep, output)
        return [Prediction.concat([results[r] for r in mine], output) for mine in rows_of_text]

    def _padded_length(self, n: int) -> int:
        """Compiled graphs are specialised per shape: round lengths up to a few buckets."""
        if not self.options.compile:
            return n
        from .compile import LENGTH_BUCKET

        return min(-(-n // LENGTH_BUCKET) * LENGTH_BUCKET, self.window_size)

    def _packs_rows(self) -> bool:
        """Whether rows of any lengths share a batch (packed), rather than similar ones (padded)."""
        return not self.options.compile

    def _run_rows(
        self, rows: list[list[int]], keep: list[tuple[int, int]], output: Output
    ) -> list[Prediction]:
        """Forward passes over `rows` in length-sorted batches; results back in row order."""
        results: list[Prediction] = [Prediction([], None, None)] * len(rows)
        if not rows:
            return results
        options = self.options
        lengths = [self._padded_length(len(row)) for row in rows]
        # Packed, rows of any lengths share a batch; padded, only similar lengths.
        batches = length_groups(
            lengths, options.batch_size, options.max_batch_tokens, similar=not self._packs_rows()
        )
        with self._inference():
            for batch in batches:
                found = self._forward_batch([rows[i] for i in batch], lengths[batch[0]], output)
                labels, scores, probs = found
                for j, i in enumerate(batch):
                    a, b = keep[i]
                    results[i] = Prediction(
                        labels[j][a:b],
                        scores[j][a:b] if scores is not None else None,
                        probs[j][a:b] if probs is not None else None,
                    )
        return results

    @contextmanager
    def _inference(self) -> Iterator[None]:
        """Dropout off and no autograd while the batches run."""
        import torch

        # A model mid-training goes back to training after. Only when needed: eval() and
        # train() walk every module, a third of a small model's call.
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            if was_training:
                self.model.train()

    def _forward_batch(self, rows: list[list[int]], T: int, output: Output) -> BatchResult:
        """One batch of rows, padded to T tokens, through the model: per row, per token, the
        best label, its probability and (for output "probs") every label's."""
        import torch

        options, pad, device = self.options, self.pad_token_id, self.model.device
        ids = [row + [pad] * (T - len(row)) for row in rows]
        n_real = [len(row) for row in rows]
        if options.compile:  # a fixed batch shape per length: one graph per bucket
            B = min(options.batch_size, max(1, options.max_batch_tokens // T))
            ids += [[pad] * T] * (B - len(rows))
            n_real += [0] * (B - len(rows))
        input_ids = torch.tensor(ids, dtype=torch.long).to(device)  # (B, T)
        mask = None  # no padding: SDPA may pick its fastest kernel
        if options.compile or min(n_real) < T:
            mask = (torch.arange(T) < torch.tensor(n_real)[:, None]).long().to(device)
        logits = self._logits(input_ids, mask)  # (B, T, num_labels)
        if output == "labels":
            return logits.argmax(-1).cpu().tolist(), None, None
        # float32 softmax, as transformers (fp16/bf16 logits are cast first)
        p = logits.float().softmax(-1)  # (B, T, num_labels)
        best, label = p.max(-1)  # (B, T): first maximum on ties, like argmax
        probs = p.cpu().tolist() if output == "probs" else None
        return label.cpu().tolist(), best.cpu().tolist(), probs

    def _logits(self, input_ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        import torch

        try:
            logits = self._forward(
                input_ids, attention_mask=mask, packed=not self.options.compile
            ).logits
        except Exception as e:
            if not self.options.compile:
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
