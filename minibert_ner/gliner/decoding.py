"""Scores over a whole text -> entities, by gliner's greedy rules (gliner/decoding/decoder.py).

Span model: every (start, width, label) whose probability is strictly above the threshold and
whose span ends inside the text is a candidate, taken in row-major order (start, width, label);
candidates are then taken best first (a stable sort, so ties keep that order), each kept unless
it clashes with one already kept, and the kept ones sorted by start (stable again). A clash is:
- flat_ner: any overlap; nested (flat_ner=False): a partial overlap (nesting is allowed);
- the same span twice, unless multi_label (then one span may carry several labels).
Token model: a candidate is a start and a later (or the same) end word of the same label, both
above the threshold, with every word from start to end at least the threshold as "inside"; its
score the least of those.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

import torch

__all__ = ["Candidate", "decode_spans", "decode_tokens", "greedy"]


class Candidate(NamedTuple):
    start: int  # first word
    end: int  # last word (inclusive)
    label: int  # index into the labels
    score: float


def _clash(a: Candidate, b: Candidate, flat_ner: bool, multi_label: bool) -> bool:
    """gliner's has_overlapping (flat) and has_overlapping_nested."""
    if (a.start, a.end) == (b.start, b.end):
        return not multi_label
    disjoint = a.start > b.end or b.start > a.end
    if flat_ner:
        return not disjoint
    nested = (a.start <= b.start and a.end >= b.end) or (b.start <= a.start and b.end >= a.end)
    return not (disjoint or nested)


def greedy(candidates: list[Candidate], flat_ner: bool, multi_label: bool) -> list[Candidate]:
    """Best first, each kept unless it clashes with a kept one; the kept sorted by start.

    Only spans that share a word can clash, so each candidate is checked against the kept
    spans covering its words (gliner checks all of them: the same answer, quadratic on long
    text)."""
    kept: list[Candidate] = []
    ordered = sorted(candidates, key=lambda c: -c.score)
    if flat_ner and not multi_label:  # any shared word is a clash: mark the words taken
        taken: set[int] = set()
        for c in ordered:
            span = range(c.start, c.end + 1)
            if taken.isdisjoint(span):
                kept.append(c)
                taken.update(span)
        return sorted(kept, key=lambda c: c.start)
    covering: dict[int, list[Candidate]] = {}  # word -> kept spans over it
    for c in ordered:
        near = {k for w in range(c.start, c.end + 1) for k in covering.get(w, ())}
        if not any(_clash(c, k, flat_ner, multi_label) for k in near):
            kept.append(c)
            for w in range(c.start, c.end + 1):
                covering.setdefault(w, []).append(c)
    return sorted(kept, key=lambda c: c.start)


def decode_spans(
    logits: torch.Tensor, threshold: float, flat_ner: bool, multi_label: bool
) -> list[Candidate]:
    """logits (n, K, C) over a text of n words -> the kept spans."""
    probs = torch.sigmoid(logits.float())  # (n, K, C)
    s, k, c = torch.where(probs > threshold)
    inside = s + k < logits.shape[0]
    s, k, c = s[inside], k[inside], c[inside]
    scores = probs[s, k, c].tolist()
    candidates = [
        Candidate(a, a + w, label, score)
        for a, w, label, score in zip(s.tolist(), k.tolist(), c.tolist(), scores, strict=True)
    ]
    return greedy(candidates, flat_ner, multi_label)


def decode_tokens(
    logits: torch.Tensor, threshold: float, flat_ner: bool, multi_label: bool
) -> list[Candidate]:
    """logits (n, C, 3) (start, end, inside) over a text of n words -> the kept spans."""
    probs = torch.sigmoid(logits.float())  # (n, C, 3)
    start, end, inside = probs.unbind(-1)  # (n, C) each
    ends_of: dict[int, list[int]] = {}  # label -> its end words, ascending
    for pos, label in zip(*(t.tolist() for t in torch.where(end > threshold)), strict=True):
        ends_of.setdefault(label, []).append(pos)
    start_l, end_l, inside_l = start.tolist(), end.tolist(), inside.tolist()
    candidates = []
    for st, label in zip(*(t.tolist() for t in torch.where(start > threshold)), strict=True):
        low, pos = float("inf"), st  # the least inside score of words st..pos-1
        ends = ends_of.get(label, [])
        for ed in ends[bisect_left(ends, st) :]:
            while pos <= ed:
                low = min(low, inside_l[pos][label])
                pos += 1
            # gliner tests every end; once a word fails "inside", every later end fails too,
            # so stopping gives the same candidates in the same order, in linear time.
            if low < threshold:
                break
            score = min(low, start_l[st][label], end_l[ed][label])
            candidates.append(Candidate(st, ed, label, score))
    return greedy(candidates, flat_ner, multi_label)
