"""Assertions shared by the tests."""

from __future__ import annotations

import torch


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


def max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    d = (a - b).abs()
    if mask is not None:  # compare real tokens only: padded rows are never used
        d = d[mask.bool()]
    return d.max().item()


def assert_same_outputs(
    ref, ours, ids: torch.Tensor, mask: torch.Tensor, name: str, tolerance: float
) -> None:
    """Our model equals the transformers model `ref` on a padded batch: logits (explicit path,
    SDPA, and packed: real tokens only), every hidden state on real tokens, every attention map
    entry (padded query rows included), each within `tolerance`; prints the largest
    differences."""
    with torch.inference_mode():
        r = ref(
            input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True
        )
        o = ours(ids, mask, output_hidden_states=True, output_attentions=True)
        fast = ours(ids, mask)  # SDPA path, no attentions asked
        packed = ours(ids, mask, packed=True)  # real tokens only (packing.py)

    d_logits = max_diff(r.logits, o.logits, mask)
    d_fast = max_diff(r.logits, fast.logits, mask)
    d_packed = max_diff(r.logits, packed.logits, mask)
    d_hidden = max(
        max_diff(a, b, mask) for a, b in zip(r.hidden_states, o.hidden_states, strict=True)
    )
    d_attn = max(max_diff(a, b) for a, b in zip(r.attentions, o.attentions, strict=True))
    print(f"\n{name}: max|diff| logits {d_logits:.2e} (SDPA {d_fast:.2e}, packed "
          f"{d_packed:.2e}), hidden {d_hidden:.2e}, attentions {d_attn:.2e}")  # fmt: skip
    assert len(o.hidden_states) == len(r.hidden_states) == ours.config.num_layers + 1
    assert len(o.attentions) == ours.config.num_layers
    assert d_logits <= tolerance and d_fast <= tolerance and d_packed <= tolerance
    assert d_hidden <= tolerance and d_attn <= tolerance
    real = mask.bool()
    assert torch.equal(r.logits.argmax(-1)[real], fast.logits.argmax(-1)[real])
    assert torch.equal(r.logits.argmax(-1)[real], packed.logits.argmax(-1)[real])
    assert not torch.isnan(fast.logits).any()  # padded rows too
