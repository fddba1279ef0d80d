"""`GLiNER`: zero-shot NER with labels named at call time, a drop-in for `gliner.GLiNER`'s
inference (`from_pretrained`, `predict_entities`, `inference`), on text of any length.

    from minibert_ner import GLiNER
    model = GLiNER.from_pretrained("urchade/gliner_small-v2.1")    # a hub id or a folder
    model.predict_entities("Ada Lovelace was born in London.", ["person", "city"])
    [{'start': 0, 'end': 12, 'text': 'Ada Lovelace', 'label': 'person', 'score': 0.97}, ...]

How a text runs:
1. Words: gliner's whitespace splitter, the regex `\\w+(?:[-_]\\w+)*|\\S`, with character offsets.
2. Prompt: `<<ENT>> label ... <<ENT>> label <<SEP>>` then the words, tokenized as pre-split
   words (each label one "word"). The first subtoken of each text word carries its 1-based index.
3. Windows: gliner cuts a text at `max_len` words (384) and its tokens at the tokenizer's
   `model_max_length`. Here a text runs as windows of whole words that fit both with the prompt,
   overlapping by a quarter (at least `max_width` words, so every span lies whole in some window);
   each span (token model: each word) is scored by the window that gives it the most context,
   min(words before it, words after it) inside the window (the text's own ends count as
   unlimited), and the text is decoded once. A text that fits is one window: gliner's input,
   gliner's answer.
4. Labels: a prompt longer than half the window is split into groups of labels, each run as above
   (its labels then see only each other in the encoder, as they would in separate calls); the
   groups' scores are joined along the label axis and decoded once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Encoding

from ..errors import InputError
from ..inference.windows import window_length
from ..tokenizer import Tokenizer
from .checkpoint import GLiNERConfig, load_gliner
from .decoding import Candidate, decode_spans, decode_tokens
from .model import GLiNERModel

__all__ = ["GLiNER", "split_words"]

WORDS = re.compile(r"\w+(?:[-_]\w+)*|\S")  # gliner's WhitespaceTokenSplitter
_UNLIMITED = 1 << 30  # the context a text's own end gives


def split_words(text: str) -> list[tuple[str, int, int]]:
    """gliner's whitespace splitter: (word, start, end) character offsets."""
    return [(m.group(), m.start(), m.end()) for m in WORDS.finditer(text)]


@dataclass(frozen=True)
class _Job:
    """One window of one text under one label group: a row of a forward pass."""

    text: int  # which text
    group: int  # which label group
    start: int  # first word
    end: int  # one past the last word
    num_labels: int  # labels in the group
    prompt_words: int  # words before the text's (each <<ENT>>, each label, <<SEP>>)


def _words_mask(encoding: Encoding, prompt_words: int) -> list[int]:
    """gliner's prepare_word_mask ("first" pooling): the 1-based index of each text word at its
    first subtoken, counting words by changes of word id as gliner does."""
    mask, seen, previous = [], 0, None
    for wid in encoding.word_ids:
        first = wid is not None and wid != previous
        if first:
            seen += 1
        mask.append(seen - prompt_words if first and seen > prompt_words else 0)
        previous = wid
    return mask


class GLiNER:
    """A GLiNER model: `from_pretrained`, then `predict_entities` or `inference`."""

    def __init__(self, model: GLiNERModel, tokenizer: Tokenizer, config: GLiNERConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.max_tokens = window_length(
            model.backbone.config.max_positions, tokenizer.model_max_length
        )
        # Tokens the tokenizer adds around a text ([CLS] ... [SEP]).
        bare = tokenizer.backend.encode_batch(
            [["a"]], is_pretokenized=True, add_special_tokens=False
        )
        whole = tokenizer.encode_batch([["a"]], is_pretokenized=True)
        self.special_tokens = len(whole[0].ids) - len(bare[0].ids)
        self.tokens_run = 0  # tokens through the model since loading, padding left out (metrics)

    def __repr__(self) -> str:
        return f"GLiNER({self.config.span_mode}, backbone={self.model.backbone.config.model_type})"

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> GLiNER:
        """Load a GLiNER model: a folder, or a hub id through the Hugging Face cache."""
        return cls(
            *load_gliner(name_or_path, revision=revision, token=token, device=device, dtype=dtype)
        )

    # -----------------------------------------------------------------------------------------
    # The public calls

    def predict_entities(
        self,
        text: str,
        labels: Sequence[str] | Mapping[str, str] | str,
        flat_ner: bool = True,
        threshold: float = 0.5,
        multi_label: bool = False,
    ) -> list[dict[str, Any]]:
        """Entities in one text: dicts of start, end (characters), text, label, score."""
        if not isinstance(text, str):
            raise InputError(f"text must be a str, got {type(text).__name__}")
        return self.inference([text], labels, flat_ner, threshold, multi_label)[0]

    def inference(
        self,
        texts: Sequence[str] | str,
        labels: Sequence[str] | Mapping[str, str] | Sequence[Sequence[str]] | str,
        flat_ner: bool = True,
        threshold: float = 0.5,
        multi_label: bool = False,
        batch_size: int = 8,
    ) -> list[list[dict[str, Any]]]:
        """Entities in each text, as gliner's `inference` returns them, in gliner's order.

        labels: one list for every text, a {name: description} mapping (the description is the
        prompt, the name the output's label), or one list per text. Duplicate labels count once
        (the first), as in gliner. Empty or whitespace-only texts give [].
        """
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
            raise InputError("texts must be a str or a list of str")
        label_sets = self._label_sets(labels, len(texts))
        if (
            not isinstance(threshold, (int, float))
            or isinstance(threshold, bool)
            or not 0.0 <= threshold <= 1.0
        ):
            raise InputError(f"threshold must be in [0, 1], got {threshold}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        for name, value in (("flat_ner", flat_ner), ("multi_label", multi_label)):
            if not isinstance(value, bool):
                raise InputError(f"{name} must be True or False, got {value!r}")
        words = [split_words(t) if t.strip() else [] for t in texts]
        scores = self.scores(
            [[w for w, _, _ in ws] for ws in words], [p for p, _ in label_sets], batch_size
        )
        decode = decode_tokens if self.config.span_mode == "token_level" else decode_spans
        out = []
        for text, ws, (_, names), logits in zip(texts, words, label_sets, scores, strict=True):
            found: list[Candidate] = (
                decode(logits, float(threshold), flat_ner, multi_label) if ws else []
            )
            out.append([
                {"start": ws[c.start][1], "end": ws[c.end][2],
                 "text": text[ws[c.start][1] : ws[c.end][2]], "label": names[c.label],
                 "score": c.score}
                for c in found
            ])  # fmt: skip
        return out

    # -----------------------------------------------------------------------------------------
    # Labels, windows, scores

    def _label_sets(self, labels: object, num_texts: int) -> list[tuple[list[str], list[str]]]:
        """Each text's (prompts, names), deduplicated in order, checked."""
        if isinstance(labels, str):
            labels = [labels]
        per_text = (
            isinstance(labels, Sequence)
            and labels
            and all(isinstance(s, (Sequence, Mapping)) and not isinstance(s, str) for s in labels)
        )
        sets = list(labels) if per_text else [labels] * num_texts  # type: ignore[arg-type,list-item]
        if per_text and len(sets) != num_texts:
            raise InputError(f"per-text labels: {len(sets)} label lists for {num_texts} texts")
        return [self._label_set(s) for s in sets]

    def _label_set(self, labels: object) -> tuple[list[str], list[str]]:
        if isinstance(labels, Mapping):
            names, prompts = list(labels), list(labels.values())
        elif isinstance(labels, Sequence) and not isinstance(labels, str):
            names = prompts = list(labels)
        else:
            raise InputError(
                f"labels must be a list of str (or one list per text), got {type(labels).__name__}"
            )
        if not prompts:
            raise InputError("labels is empty: name at least one entity type, e.g. ['person']")
        for label in (*names, *prompts):
            if not isinstance(label, str) or not label.strip():
                raise InputError(f"each label must be a non-empty str, got {label!r}")
        first: dict[str, str] = {}  # prompt -> its name; a repeated label counts once
        for prompt, name in zip(prompts, names, strict=True):
            first.setdefault(prompt, name)
        return list(first), list(first.values())

    def _groups(self, prompts: list[str]) -> list[list[str]]:
        """Labels in groups whose prompt takes at most half the window (one group if it fits)."""
        budget = self.max_tokens // 2 - 1 - self.special_tokens  # <<SEP>>, [CLS] ... [SEP]
        groups: list[list[str]] = [[]]
        used = 0
        for label, size in zip(prompts, self._prompt_sizes(prompts), strict=True):
            if size > budget:
                raise InputError(
                    f"label {label[:40]!r} takes {size - 1} tokens; labels must fit in half of "
                    f"the model's {self.max_tokens}-token window: shorten it"
                )
            if groups[-1] and used + size > budget:
                groups.append([])
                used = 0
            groups[-1].append(label)
            used += size
        return groups

    def _prompt_sizes(self, prompts: list[str]) -> list[int]:
        """Tokens each label adds to the prompt: <<ENT>> and the label."""
        encodings = self.tokenizer.backend.encode_batch(
            [[self.config.ent_token, p] for p in prompts],
            is_pretokenized=True,
            add_special_tokens=False,
        )
        return [len(e.ids) for e in encodings]

    def _windows(self, word_tokens: list[int], room: int) -> list[tuple[int, int]]:
        """Word windows [a, b) of at most max_len words and `room` tokens (a single longer
        word still makes a window), overlapping by a quarter of a window and at least
        max_width words; the last ends at the text's end."""
        n, K = len(word_tokens), self.config.max_width
        windows: list[tuple[int, int]] = []
        a = 0
        while True:
            b, used = a, 0
            while (
                b < n and b - a < self.config.max_len and (b == a or used + word_tokens[b] <= room)
            ):
                used += word_tokens[b]
                b += 1
            windows.append((a, b))
            if b >= n:
                return windows
            a = max(a + 1, b - max(K, (b - a) // 4))

    def scores(
        self, texts: list[list[str]], label_sets: list[list[str]], batch_size: int = 8
    ) -> list[torch.Tensor]:
        """Each text's scores over all its words: span logits (n, K, C), or for token_level
        word logits (n, C, 3); windows merged by most context, label groups joined in order."""
        # First every text whole under each label group (one window, as gliner runs it); the
        # texts that do not fit then go again, as windows.
        groups_of: dict[tuple[str, ...], list[list[str]]] = {}
        whole: list[tuple[int, int, list[str], list[str]]] = []  # text, group, labels, prompt
        for t, (words, prompts) in enumerate(zip(texts, label_sets, strict=True)):
            key = tuple(prompts)
            if key not in groups_of:
                groups_of[key] = self._groups(prompts)  # checks the labels, even for no words
            for g, group in enumerate(groups_of[key] if words else []):
                prompt = [x for label in group for x in (self.config.ent_token, label)]
                whole.append((t, g, group, [*prompt, self.config.sep_token]))
        rows = [prompt + texts[t] for t, _, _, prompt in whole]
        first = self.tokenizer.encode_batch(rows, is_pretokenized=True) if rows else []
        jobs: list[_Job] = []
        encodings: list[Encoding] = []
        long_jobs: list[_Job] = []
        long_rows: list[list[str]] = []
        for (t, g, group, prompt), encoding in zip(whole, first, strict=True):
            words = texts[t]
            if len(encoding.ids) <= self.max_tokens and len(words) <= self.config.max_len:
                jobs.append(_Job(t, g, 0, len(words), len(group), len(prompt)))
                encodings.append(encoding)
                continue
            word_tokens = [
                len(e.ids)
                for e in self.tokenizer.backend.encode_batch(
                    [[w] for w in words], is_pretokenized=True, add_special_tokens=False
                )
            ]
            room = self.max_tokens - sum(self._prompt_sizes(group)) - 1 - self.special_tokens
            for a, b in self._windows(word_tokens, room):
                long_jobs.append(_Job(t, g, a, b, len(group), len(prompt)))
                long_rows.append(prompt + words[a:b])
        if long_rows:
            jobs += long_jobs
            encodings += self.tokenizer.encode_batch(long_rows, is_pretokenized=True)
        logits = self._run(jobs, encodings, batch_size)
        by_text: list[list[tuple[_Job, torch.Tensor]]] = [[] for _ in texts]
        for job, scores in zip(jobs, logits, strict=True):
            by_text[job.text].append((job, scores))
        return [self._merge(len(words), by_text[t]) for t, words in enumerate(texts)]

    @torch.inference_mode()
    def _run(
        self, jobs: list[_Job], encodings: list[Encoding], batch_size: int
    ) -> list[torch.Tensor]:
        """Every job's logits over its own words and labels, in batches of similar lengths."""
        order = sorted(range(len(jobs)), key=lambda i: len(encodings[i].ids))
        results: list[torch.Tensor] = [torch.empty(0)] * len(jobs)
        device = self.model.device
        token_level = self.config.span_mode == "token_level"
        for lo in range(0, len(order), batch_size):
            chunk = order[lo : lo + batch_size]
            T = max(len(encodings[i].ids) for i in chunk)
            ids = torch.full((len(chunk), T), self.tokenizer.pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), T), dtype=torch.long)
            words_mask = torch.zeros((len(chunk), T), dtype=torch.long)
            for r, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[r, :n] = torch.tensor(encodings[i].ids)
                attention[r, :n] = 1
                words_mask[r, :n] = torch.tensor(_words_mask(encodings[i], jobs[i].prompt_words))
            lengths = torch.tensor([jobs[i].end - jobs[i].start for i in chunk])
            self.tokens_run += int(attention.sum())
            out = (
                self.model(
                    ids.to(device), attention.to(device), words_mask.to(device), lengths.to(device)
                )
                .float()
                .cpu()
            )  # (b, W, K, C) or (b, W, C, 3)
            for r, i in enumerate(chunk):
                n, C = jobs[i].end - jobs[i].start, jobs[i].num_labels
                results[i] = out[r, :n, :C] if token_level else out[r, :n, :, :C]
        return results

    def _merge(self, n: int, parts: list[tuple[_Job, torch.Tensor]]) -> torch.Tensor:
        """One text's windows -> its scores over all n words: each span (token model: each word)
        from the window that gives it the most context; label groups side by side."""
        token_level = self.config.span_mode == "token_level"
        K = self.config.max_width
        groups: dict[int, list[tuple[_Job, torch.Tensor]]] = {}
        for job, scores in parts:
            groups.setdefault(job.group, []).append((job, scores))
        merged_groups = []
        for g in sorted(groups):
            windows = groups[g]
            if len(windows) == 1:  # the text fits: gliner's own scores
                merged_groups.append(windows[0][1])
                continue
            merged = windows[0][1].new_zeros((n, *windows[0][1].shape[1:]))
            best = torch.full((n,) if token_level else (n, K), -1)  # context of each choice
            for job, scores in windows:
                a, b = job.start, job.end
                first = torch.arange(a, b)  # (w,): a word, or a span's first word
                if not token_level:
                    first = first[:, None].expand(-1, K)  # (w, K)
                last = first if token_level else first + torch.arange(K)  # span's last word
                left = first - a if a > 0 else torch.full_like(first, _UNLIMITED)
                right = b - 1 - last if b < n else torch.full_like(last, _UNLIMITED)
                # a span must lie whole in the window to be scored by it
                context = torch.where(last < b, torch.minimum(left, right), -1)
                better = context > best[a:b]
                merged[a:b][better] = scores[better]
                best[a:b][better] = context[better]
            merged_groups.append(merged)
        if not merged_groups:
            return torch.empty(0)
        return torch.cat(merged_groups, dim=1 if token_level else -1)
