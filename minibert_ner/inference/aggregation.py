"""Token predictions -> entities, by the rules of `transformers`' token-classification pipeline.

The rules below were read from `transformers/pipelines/token_classification.py` (5.x) and are
checked against it by `tests/test_pipeline_parity.py`. Each lives in one function here:

1. Tokens (`gather_tokens`). Special tokens ([CLS], [SEP], and special tokens written in the
   text) are dropped. A token is a *sub-word* (it continues the previous token's word) when the
   tokenizer has a continuing-subword prefix ("##") and the token's string is not as long as the
   text it covers: "##ing" covers 3 characters but has 5. `[UNK]` is never a sub-word and takes
   its `word` from the text it covers. Tokenizers without a prefix fall back to transformers'
   heuristic: a sub-word has no space right before it.
2. Words (`word_units`, strategies `first`, `average`, `max` only). A word is a token plus the
   sub-words after it; it gets one label, so a word is never split between two entities.
   `first`: the first token's label and probability. `max`: the label and probability of the
   token whose best probability is highest (the first such token on ties). `average`: the mean
   of the tokens' probability vectors, then its best label and that mean probability.
   `simple` takes every token as it is; `none` stops here and returns one dict per token.
3. Groups (`group_units`). A label without a `B-`/`I-` prefix counts as `I-`. A unit (token or
   word) joins the current group when its tag equals the group's and its label is not `B-`;
   otherwise it starts a new group. So `B-PER B-PER` are two entities, `I-LOC` after `O` starts
   one, and `B-LOC I-LOC I-LOC` over three words is one. A group's `entity_group` is its first
   label after the first `-`, its `score` the mean of its units' scores, its `word` the units'
   strings joined by the tokenizer's decoder (so "Jean - Baptiste" for "Jean-Baptiste"; use
   `start`/`end` for the exact text).
4. `ignore_labels` (default `("O",)`) removes groups whose `entity_group` is listed, and with
   `none` tokens whose full label (`B-PER`) is listed. `O` groups are built like any other and
   removed afterwards, which is why an `O` between two `I-PER` tokens splits them.

Rule 1's heuristic for tokenizers without "##" (RoBERTa, XLM-RoBERTa, CamemBERT) is the spec and
the default, with its quirks: a newline or a tab is not a space, so "Berlin\nParis" is one word;
a lone "Ġ" token (the second of two spaces) is a word of its own, whose entity can have the
`word` " " and an empty span; every RoBERTa `word` but the text's first starts with a space
(" Merkel"). `word_grouping="word_ids"` is the documented way out:

5. Word ids (`word_grouping="word_ids"`, not transformers' behaviour). A token continues the
   previous token's word when the tokenizer put them in the same word (`Encoding.word_ids`:
   its pre-tokenizer's split, or the caller's words when the input is pre-split); a token's span
   is trimmed of whitespace, and a token that covers no text but whitespace is dropped (it has
   nothing to label). Every `word` is then the text itself, `text[start:end]`, for every
   strategy: no entity is empty, whitespace-only, or glued across a space.

Scores are plain Python floats (transformers returns numpy.float32, which JSON cannot write).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, TypedDict, get_args, get_type_hints

__all__ = [
    "STRATEGIES",
    "WORD_GROUPINGS",
    "Entity",
    "LabelScheme",
    "Strategy",
    "TokenEntity",
    "WordGrouping",
    "aggregate",
    "entity_fields",
    "gather_tokens",
]

Strategy = Literal["none", "simple", "first", "average", "max"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
WORD_STRATEGIES = ("first", "average", "max")
# What a word is: "transformers" (rule 1, the reference's) or "word_ids" (rule 5).
WordGrouping = Literal["transformers", "word_ids"]
WORD_GROUPINGS: tuple[WordGrouping, ...] = get_args(WordGrouping)


class Entity(TypedDict):
    """One entity, as every strategy but "none" returns it (and transformers' pipeline)."""

    entity_group: str  # the label without its B-/I- prefix: "PER"
    score: float  # mean probability of its units
    word: str  # its tokens joined by the tokenizer's decoder ("Jean - Baptiste")
    start: int  # character offsets into the text: text[start:end] is the entity
    end: int


class TokenEntity(TypedDict):
    """One token, as strategy "none" returns it."""

    entity: str  # the full label: "B-PER"
    score: float  # its probability
    index: int  # the token's position in the encoding (special tokens counted)
    word: str  # the token: "##ing"
    start: int
    end: int


def entity_fields(strategy: str) -> tuple[tuple[str, type], ...]:
    """The fields of the dicts that `strategy` gives, in order, with their Python types: those
    of TokenEntity for "none", of Entity for the others. Writers that declare a schema (Parquet
    output, Ray's Arrow blocks) take it from here."""
    return tuple(get_type_hints(TokenEntity if strategy == "none" else Entity).items())


@dataclass(frozen=True)
class LabelScheme:
    """What grouping needs to know about each label id; built once per model."""

    names: tuple[str, ...]  # id -> full label, "B-PER"
    tags: tuple[str, ...]  # id -> tag that must match to continue a group: "PER"
    begins: tuple[bool, ...]  # id -> the label starts a new entity ("B-")
    groups: tuple[str, ...]  # id -> `entity_group`: the label after its first "-"

    @classmethod
    def from_id2label(cls, id2label: dict[int, str]) -> LabelScheme:
        names = tuple(id2label[i] for i in range(len(id2label)))
        # "B-X" and "I-X" have tag "X"; any other label is its own tag and counts as "I-".
        tags = tuple(n[2:] if n.startswith(("B-", "I-")) else n for n in names)
        return cls(
            names=names,
            tags=tags,
            begins=tuple(n.startswith("B-") for n in names),
            # transformers splits at the first "-" whatever precedes it: "X-Y" -> "Y".
            groups=tuple(n.split("-", 1)[-1] for n in names),
        )


@dataclass
class TokenPredictions:
    """One text's tokens (special tokens removed) and what the model predicted for each."""

    text: str  # what the offsets index
    verbatim: bool  # words are text[start:end] (rule 5), not decoded tokens
    tokens: list[str]  # token strings; [UNK] replaced by the text it stands for
    starts: list[int]  # character offsets into the text
    ends: list[int]
    index: list[int]  # position in the model input, [CLS] counting as 0
    subword: list[bool]  # continues the previous token's word
    labels: list[int]  # best label id
    scores: list[float]  # its probability
    probs: list[list[float]] | None  # every label's probability; only `average` needs them


def gather_tokens(
    text: str,
    tokens: Sequence[str],
    offsets: Sequence[tuple[int, int]],
    special: Sequence[int],
    ids: Sequence[int],
    labels: Sequence[int],
    scores: Sequence[float],
    probs: Sequence[list[float]] | None,
    *,
    first_index: int,
    unk_id: int | None,
    subword_prefix: str | None,
    word_ids: Sequence[int | None] | None = None,
) -> TokenPredictions:
    """Rule 1: drop special tokens, mark sub-words, give [UNK] its text (rule 5 instead when
    the tokenizer's `word_ids` are given).

    All sequences are aligned, one item per token of the text (the template's [CLS]/[SEP] left
    out); `first_index` is the model-input position of the first of them.
    """
    verbatim = word_ids is not None
    out = TokenPredictions(
        text, verbatim, [], [], [], [], [], [], [], [] if probs is not None else None
    )
    previous_word: int | None = None
    for i, (token, (start, end), is_special, token_id) in enumerate(
        zip(tokens, offsets, special, ids, strict=True)
    ):
        if is_special:
            continue
        if word_ids is not None:  # rule 5
            span = text[start:end]
            start, end = start + len(span) - len(span.lstrip()), start + len(span.rstrip())
            if start >= end:
                continue  # only whitespace (a lone "▁"): nothing to label
            word = word_ids[i]
            subword = word is not None and word == previous_word
            previous_word = word
            if token_id == unk_id:
                token = text[start:end]
        elif subword_prefix:
            subword = len(token) != end - start
        else:  # transformers' fallback for tokenizers that do not mark sub-words
            subword = start > 0 and " " not in text[start - 1 : start + 1]
        if word_ids is None and token_id == unk_id:
            token, subword = text[start:end], False
        out.tokens.append(token)
        out.starts.append(start)
        out.ends.append(end)
        out.index.append(first_index + i)
        out.subword.append(subword)
        out.labels.append(labels[i])
        out.scores.append(scores[i])
        if probs is not None:
            out.probs.append(probs[i])
    return out


@dataclass
class Units:
    """What groups are built from: tokens (`simple`) or words (`first`/`average`/`max`)."""

    labels: list[int]
    scores: list[float]
    spans: list[tuple[int, int]]  # each unit's [first, last + 1) range of tokens


def word_units(p: TokenPredictions, strategy: str) -> Units:
    """Rule 2: one label per word, chosen by `strategy` ("first", "average" or "max")."""
    n = len(p.tokens)
    bounds = [i for i in range(n) if i == 0 or not p.subword[i]] + [n]
    units = Units([], [], [])
    for s, e in pairwise(bounds):
        if strategy == "first" or e - s == 1:
            label, score = p.labels[s], p.scores[s]
        elif strategy == "max":
            best = max(range(s, e), key=p.scores.__getitem__)  # first maximum, like max()
            label, score = p.labels[best], p.scores[best]
        elif strategy == "average":
            assert p.probs is not None, "average needs every label's probability"
            mean = [sum(column) / (e - s) for column in zip(*p.probs[s:e], strict=True)]
            label = max(range(len(mean)), key=mean.__getitem__)
            score = mean[label]
        else:
            raise ValueError(f"{strategy!r} is not a word strategy; use one of {WORD_STRATEGIES}")
        units.labels.append(label)
        units.scores.append(score)
        units.spans.append((s, e))
    return units


def group_units(
    p: TokenPredictions,
    units: Units,
    scheme: LabelScheme,
    ignore_labels: Collection[str],
    decode: Callable[[list[str]], str],
    *,
    words_are_tokens: bool,
) -> list[Entity]:
    """Rules 3 and 4: adjacent units with the same tag become one entity; ignored ones go.

    A unit's string is its token (`words_are_tokens`) or its decoded tokens; a group's `word`
    decodes its units' strings again, exactly as transformers does (rule 5: the text it spans).
    Strings are only built for groups that are kept.
    """
    labels, tags, begins = units.labels, scheme.tags, scheme.begins
    n = len(labels)
    entities: list[Entity] = []
    first = 0  # the current group's first unit
    for u in range(1, n + 1):
        if u < n and tags[labels[u]] == tags[labels[u - 1]] and not begins[labels[u]]:
            continue  # unit u joins the current group
        name = scheme.groups[labels[first]]
        if name not in ignore_labels:
            spans = units.spans[first:u]
            start, end = p.starts[spans[0][0]], p.ends[spans[-1][1] - 1]
            if p.verbatim:
                word = p.text[start:end]
            elif words_are_tokens:
                word = decode([p.tokens[s] for s, _ in spans])
            else:
                word = decode([decode(p.tokens[s:e]) for s, e in spans])
            entities.append(
                {
                    "entity_group": name,
                    "score": sum(units.scores[first:u]) / (u - first),
                    "word": word,
                    "start": start,
                    "end": end,
                }
            )
        first = u
    return entities


def aggregate(
    p: TokenPredictions,
    strategy: str,
    scheme: LabelScheme,
    ignore_labels: Collection[str],
    decode: Callable[[list[str]], str],
) -> list[Entity] | list[TokenEntity]:
    """Entities of one text, as transformers' pipeline returns them for `strategy`."""
    if strategy == "none":
        return [
            {
                "entity": scheme.names[label],
                "score": score,
                "index": index,
                "word": p.text[start:end] if p.verbatim else word,
                "start": start,
                "end": end,
            }  # fmt: skip
            for label, score, index, word, start, end in zip(
                p.labels, p.scores, p.index, p.tokens, p.starts, p.ends, strict=True
            )
            if scheme.names[label] not in ignore_labels
        ]
    if strategy == "simple":
        units = Units(p.labels, p.scores, [(i, i + 1) for i in range(len(p.tokens))])
        return group_units(p, units, scheme, ignore_labels, decode, words_are_tokens=True)
    units = word_units(p, strategy)
    return group_units(p, units, scheme, ignore_labels, decode, words_are_tokens=False)
