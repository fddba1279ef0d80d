"""Packed forward passes (packing.py): every layer on the real tokens only, attention per group of
rows of similar length. The proof is the padded forward pass: for every family, any lengths and
any mask, each real token gets the same logits and hidden states."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert_ner.checkpoint import build_model
from minibert_ner.config import FIELD_NAMES, ModelConfig
from minibert_ner.packing import PADDING_FRACTION, PADDING_SLACK, Packing, length_groups

from .helpers.deberta import STYLES

# Our field names, written in each family's config.json names (FIELD_NAMES).
SMALL = {"vocab_size": 50, "hidden_size": 32, "num_layers": 2, "num_heads": 4,
         "intermediate_size": 48, "max_position_embeddings": 64}  # fmt: skip
FAMILIES = {  # config.json keys of each family beyond SMALL
    "distilbert": {"model_type": "distilbert"},
    "bert": {"model_type": "bert", "type_vocab_size": 2},
    "roberta": {"model_type": "roberta", "type_vocab_size": 1, "pad_token_id": 1},
    "electra": {"model_type": "electra", "embedding_size": 16},
    "deberta-v3": {"model_type": "deberta-v2", **STYLES["v3"]},
    "deberta-v2": {"model_type": "deberta-v2", **STYLES["v2"], "conv_kernel_size": 3},
}


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    built = {}
    for name, fields in FAMILIES.items():
        torch.manual_seed(0)
        names = FIELD_NAMES[fields["model_type"]]
        raw = {names[ours]: value for ours, value in SMALL.items()}
        config = ModelConfig.from_dict({**raw, **fields, "id2label": {0: "O", 1: "B-PER"}})
        model = build_model(config)
        model.init_weights()
        built[name] = model.eval()
    return built


# Rows of a batch: each a length and, sometimes, padding inside the row as well as after it.
rows = st.lists(
    st.tuples(st.integers(0, 40), st.lists(st.integers(0, 39), max_size=3)), min_size=1, max_size=9
)


def batch_of(spec: list[tuple[int, list[int]]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(max(n for n, _ in spec), 1)
    g = torch.Generator().manual_seed(len(spec) * 1000 + T)
    ids = torch.randint(2, 50, (len(spec), T), generator=g)  # (B, T)
    mask = torch.zeros(len(spec), T, dtype=torch.long)
    for r, (n, holes) in enumerate(spec):
        mask[r, :n] = 1
        for h in holes:
            if h < n and n > 1:
                mask[r, h] = 0
    ids[mask == 0] = pad
    return ids, mask


def row_spans(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: each row's positions up to its last real token (what a Packing keeps)."""
    j = torch.arange(mask.shape[1])
    last = torch.where(mask.bool(), j, -1).max(1).values
    return j <= last[:, None]


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=25, deadline=None)
@given(spec=rows)
def test_packed_forward_equals_padded_for_real_tokens(models, family, spec) -> None:
    model = models[family]
    ids, mask = batch_of(spec, model.config.pad_token_id)
    with torch.inference_mode():
        padded = model(ids, attention_mask=mask, output_hidden_states=True)
        packed = model(ids, attention_mask=mask, output_hidden_states=True, packed=True)
    real = mask.bool()
    assert packed.logits.shape == padded.logits.shape
    torch.testing.assert_close(packed.logits[real], padded.logits[real], atol=2e-5, rtol=1e-5)
    assert not packed.logits[~row_spans(mask)].any()  # after a row's last real token: zeros
    for a, b in zip(packed.hidden_states, padded.hidden_states, strict=True):
        torch.testing.assert_close(a[real], b[real], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["distilbert", "deberta-v3"])
def test_packed_forward_refuses_attention_maps_and_ignores_a_missing_mask(models, family) -> None:
    model = models[family]
    ids = torch.randint(2, 50, (2, 7))
    with pytest.raises(ValueError, match="packed=False"):
        model(ids, attention_mask=torch.ones_like(ids), packed=True, output_attentions=True)
    with torch.inference_mode():  # no mask: nothing to pack, the padded path
        assert torch.equal(model(ids, packed=True).logits, model(ids).logits)


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 600), max_size=60),
    max_rows=st.none() | st.integers(1, 40),
    max_tokens=st.none() | st.integers(1, 5000),
    similar=st.booleans(),
)
def test_length_groups(lengths, max_rows, max_tokens, similar) -> None:
    groups = length_groups(lengths, max_rows, max_tokens, similar=similar)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))  # each row once
    firsts = [lengths[g[0]] for g in groups]
    assert firsts == sorted(firsts, reverse=True)  # longest first
    for g in groups:
        longest = lengths[g[0]]
        assert all(lengths[i] <= longest for i in g)
        if len(g) > 1:  # a row alone may exceed any budget
            assert max_rows is None or len(g) <= max_rows
            assert max_tokens is None or len(g) * longest <= max_tokens
        if similar:
            assert all(
                longest - lengths[i] <= max(PADDING_SLACK, PADDING_FRACTION * longest) for i in g
            )


@settings(max_examples=100, deadline=None)
@given(spec=rows)
def test_pack_unpack_and_groups_cover_every_real_token_once(spec) -> None:
    ids, mask = batch_of(spec, 0)
    packing = Packing(mask)
    x = torch.randn(*mask.shape, 3)
    kept = row_spans(mask)
    assert torch.equal(packing.pack(x), x[kept])  # row after row
    assert torch.equal(packing.unpack(packing.pack(x)), x * kept[..., None])
    covered = torch.cat([g.tokens for g in packing.groups]) if packing.groups else torch.zeros(0)
    assert sorted(covered.tolist()) == list(range(int(kept.sum())))  # each token in one group
    for g in packing.groups:  # each group's mask is the batch's, for its rows
        assert g.mask is None or g.mask.shape == (g.rows, g.length)
    # attention as the identity: every token comes back in its place
    y = packing.attend(lambda block, keep: block, packing.pack(x))
    assert torch.equal(y, x[kept])


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (2, 4)])
def test_a_batch_without_real_tokens_packs_to_nothing(shape) -> None:
    packing = Packing(torch.zeros(shape, dtype=torch.long))
    assert packing.size == 0 and packing.groups == []
    x = torch.randn(*shape, 3)
    assert packing.pack(x).shape == (0, 3)
    assert torch.equal(packing.unpack(packing.pack(x)), torch.zeros(*shape, 3))
    assert packing.attend(lambda block, keep: block, packing.pack(x)).shape == (0, 3)
