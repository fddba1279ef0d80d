"""Assertions shared by the tests."""

from __future__ import annotations


def assert_same_entities(got: list, expected: list, what: str = "", tolerance: float = 1e-4) -> int:
    """Pipeline outputs (lists of entity lists) equal but for float rounding of scores: the same
    keys in the same order, every other field equal, scores plain Python floats within
    `tolerance`. Returns how many entities were compared."""
    assert len(got) == len(expected), what
    n = 0
    for i, (ours, theirs) in enumerate(zip(got, expected, strict=True)):
        assert len(ours) == len(theirs), f"{what}, text {i}: {ours} != {theirs}"
        for a, b in zip(ours, theirs, strict=True):
            assert type(a["score"]) is float, "scores must be plain Python floats"
            assert list(a) == list(b), f"{what}, text {i}: keys {list(a)} != {list(b)}"
            assert {k: v for k, v in a.items() if k != "score"} == {
                k: v for k, v in b.items() if k != "score"
            }, f"{what}, text {i}"
            assert abs(a["score"] - float(b["score"])) <= tolerance, f"{what}, text {i}: {a} {b}"
            n += 1
    return n
