"""Long text as overlapping windows, and the rule that merges them back.

A model knows a fixed number of positions (512 for the dslim models: [CLS] + 510 tokens + [SEP]);
one without absolute positions (DeBERTa-v3) was still trained on windows of its tokenizer's
`model_max_length` (`window_length` decides). `transformers`' pipeline silently cuts longer text
there. We run it as windows of `size` tokens
that overlap by at least `stride` tokens, spread evenly so that the last one ends at the text's
end:

    tokens    0 .............................................................. n
    window 0  [=================)
    window 1               [=================)
    window 2                             [=================)
    labels    |- from 0 ---||-- from 1 ---||---- from 2 ----|

Every token is labelled by exactly one window: the one that gives it the most context on both
sides, i.e. maximises min(tokens to its left, tokens to its right) inside the window. All windows
have the same size, so that is the window whose centre is nearest, and the cut between two
neighbours is the midpoint of their centres. With the default `stride` of 128 and 510-token
windows, each token is labelled with at least 64 tokens of context on each side (fewer only near
the ends of the text, where no window can give more).

The merge happens per token, before tokens are grouped into entities, so an entity that crosses
a window edge is built from one consistent label sequence. (transformers, with `stride` set,
groups each window separately and then keeps the longer of two overlapping entities, which can
keep a truncated entity cut at a window edge.)
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

__all__ = [
    "TRAINED_LENGTH",
    "Window",
    "plan_windows",
    "window_length",
]

# The length models are trained on when nothing says otherwise (transformers' usual
# model_max_length): the window of a model without absolute positions and a tokenizer without one.
TRAINED_LENGTH = 512


def window_length(
    model_limit: int | None, tokenizer_limit: int | None, max_length: int | None = None
) -> int:
    """Tokens per window, special tokens included: the smallest of the model's position limit,
    the tokenizer's `model_max_length` and the caller's `max_length`. A model without a limit
    (None: relative positions only) runs windows of the length it was trained on, the tokenizer's
    `model_max_length`, or `TRAINED_LENGTH` when that is unset too."""
    if model_limit is None and tokenizer_limit is None:
        tokenizer_limit = TRAINED_LENGTH
    return min(limit for limit in (model_limit, tokenizer_limit, max_length) if limit)


@dataclass(frozen=True)
class Window:
    """One window over a text's tokens (special tokens not counted)."""

    start: int  # first token the window sees
    end: int  # one past the last token it sees
    keep_start: int  # first token it labels
    keep_end: int  # one past the last token it labels


def plan_windows(n: int, size: int, stride: int) -> list[Window]:
    """Windows of `size` tokens covering `n` tokens, overlapping by at least `stride`.

    n <= size gives one window: a text that fits is run exactly as a short text.
    """
    if size < 1:
        raise ValueError(f"a window must hold at least one token, got size {size}")
    if not 0 <= stride < size:
        raise ValueError(
            f"stride must be in 0..{size - 1} for windows of {size} tokens, got {stride}"
        )
    if n <= size:
        return [Window(0, n, 0, n)]
    step = size - stride
    k = -(-(n - size) // step)  # steps needed: ceil((n - size) / step)
    # Spread the k + 1 starts evenly over 0 .. n - size: every step is <= `step`, so every
    # overlap is >= stride, and the last window ends exactly at n.
    starts = [(j * (n - size) + k // 2) // k for j in range(k + 1)]
    # Token p goes to the window whose centre (start + (size - 1) / 2) is nearest; between
    # neighbours a and b the cut is ceil of the midpoint (a + b + size - 1) / 2.
    cuts = [0] + [(a + b + size) // 2 for a, b in pairwise(starts)] + [n]
    return [Window(s, s + size, lo, hi) for s, (lo, hi) in zip(starts, pairwise(cuts), strict=True)]
