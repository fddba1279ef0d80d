"""DeBERTa-v2/v3: numerics equal `transformers` on checkpoints it builds and saves (both layouts),
the relative-position bucket formula, loading (fp16, extra tensors, bad configs) and saving.
The measured max |diff| is printed (run with -s to see it)."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from minibert_ner import ConfigError, DebertaTokenClassifier, load_model, save_model
from minibert_ner.checkpoint import CheckpointError
from minibert_ner.config import ModelConfig
from minibert_ner.deberta import log_bucket, relative_positions

from .helpers.assertions import assert_same_outputs, max_diff
from .helpers.deberta import V2_STYLE, V3_STYLE, make_deberta_checkpoint
from .test_model_parity import TOL, padded_batch

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]

CASES = {
    "v3": V3_STYLE,
    "v2": V2_STYLE,
    # one term only, separate projection; and relative attention off (content only, but the
    # scale still counts the terms pos_att_type names, as transformers does)
    "c2p-only": V2_STYLE | {"pos_att_type": ["c2p"], "conv_kernel_size": 0},
    "p2c-only-shared": V3_STYLE | {"pos_att_type": ["p2c"], "norm_rel_ebd": "none"},
    "no-relative": V2_STYLE | {"relative_attention": False, "conv_act": "tanh"},
}


# deberta-v3-base's encoder (768 wide, 12 layers, 12 heads, 2 x 256 relative rows), small vocabulary
BASE_SHAPE = {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "vocab_size": 1000}
V3_BASE = V3_STYLE | {"position_buckets": 256, "max_position_embeddings": 512}


@pytest.mark.parametrize("case", [*CASES, pytest.param("v3-base-shape", marks=pytest.mark.slow)])
def test_parity_with_transformers(case, tmp_path) -> None:
    from .helpers.checkpoints import load_reference

    if case == "v3-base-shape":
        folder = make_deberta_checkpoint(tmp_path, V3_BASE, labels=LABELS, **BASE_SHAPE)
    else:
        folder = make_deberta_checkpoint(tmp_path, CASES[case], labels=LABELS)
    ref = load_reference(folder)
    ours = load_model(folder)
    assert isinstance(ours, DebertaTokenClassifier) and ours.id2label == dict(enumerate(LABELS))

    # T = 40 > 2 x 8 buckets (log region) and > max_relative_positions 16 (clamping).
    ids, mask = padded_batch(ours.config.vocab_size, [40, 5, 23, 3])
    # SDPA: the position terms as its bias. Attention maps compared in every entry, padded query
    # rows included (transformers' pairwise mask spreads them evenly).
    assert_same_outputs(ref, ours, ids, mask, f"deberta {case}", TOL)

    # Short texts reach only some rows of the relative table (ours projects only those).
    ids, mask = padded_batch(ours.config.vocab_size, [6, 2], seed=1)
    with torch.inference_mode():
        r = ref(input_ids=ids, attention_mask=mask, output_attentions=True)
        o = ours(ids, mask, output_attentions=True)
    assert max_diff(r.logits, ours(ids, mask).logits, mask) <= TOL
    assert max(max_diff(a, b) for a, b in zip(r.attentions, o.attentions, strict=True)) <= TOL


def test_v3_has_no_position_limit_and_padding_does_not_change_results(tmp_path) -> None:
    """Without absolute positions, inputs longer than max_position_embeddings (64) run, as in
    transformers; a sentence alone equals itself in a padded batch."""
    from .helpers.checkpoints import load_reference

    folder = make_deberta_checkpoint(tmp_path, "v3", labels=LABELS)
    ours, ref = load_model(folder), load_reference(folder)
    assert ours.config.max_positions is None
    ids, mask = padded_batch(ours.config.vocab_size, [100, 9])
    with torch.inference_mode():
        batched = ours(ids, mask).logits
        alone = ours(ids[1:, :9]).logits
        theirs = ref(input_ids=ids, attention_mask=mask).logits
    assert max_diff(batched, theirs, mask) <= TOL
    assert max_diff(batched[1, :9], alone[0]) <= 1e-5

    v2 = load_model(make_deberta_checkpoint(tmp_path / "v2", "v2", labels=LABELS))
    assert v2.config.max_positions == 64
    with pytest.raises(ValueError, match="only 64 positions"):
        v2(torch.ones(1, 65, dtype=torch.long))


@settings(max_examples=60, deadline=None)
@given(
    buckets=st.integers(2, 300),
    max_position=st.integers(3, 2048),
    distances=st.lists(st.integers(-5000, 5000), min_size=1, max_size=50),
)
def test_log_bucket_equals_transformers(buckets, max_position, distances) -> None:
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    if buckets // 2 >= max_position - 1 or buckets // 2 < 1:
        return  # log((max_position - 1) / mid) <= 0: no config uses it (nor could transformers)
    r = torch.tensor(distances)
    theirs = make_log_bucket_position(r, buckets, max_position).long()
    assert torch.equal(log_bucket(r, buckets, max_position), theirs)
    mid = buckets // 2
    near = r.abs() <= mid
    assert torch.equal(log_bucket(r, buckets, max_position)[near], r[near])  # kept as is


def test_relative_positions_are_query_minus_key() -> None:
    rel = relative_positions(5, -1, -1)
    assert rel[4, 1] == 3 and rel[1, 4] == -3 and rel.diagonal().eq(0).all()
    bucketed = relative_positions(64, 8, 64)  # distances up to max_position - 1 = 63
    assert bucketed.max() == 7 and bucketed.min() == -7  # mid 4 + (mid - 1) at the far end
    assert torch.equal(bucketed, -bucketed.T)


def test_fp16_checkpoint_loads_as_asked(tmp_path) -> None:
    folder = make_deberta_checkpoint(tmp_path, "v3", labels=LABELS)
    full = load_model(folder)
    tensors = {k: v.half() for k, v in load_file(folder / "model.safetensors").items()}
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    model = load_model(folder)
    assert model.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    ids, mask = padded_batch(model.config.vocab_size, [12, 6])
    with torch.inference_mode():
        d = max_diff(model(ids, mask).logits, full(ids, mask).logits, mask)
    assert d < 0.05  # only the fp16 rounding of the weights
    bf16 = load_model(folder, dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    with torch.inference_mode():
        assert torch.isfinite(bf16(ids, mask).logits.float()).all()


def test_save_round_trip_loads_in_both_libraries(tmp_path) -> None:
    from .helpers.checkpoints import load_reference

    for style in ("v3", "v2"):
        ours = load_model(make_deberta_checkpoint(tmp_path / style, style, labels=LABELS))
        save_model(ours, tmp_path / f"{style}-out")
        again = load_model(tmp_path / f"{style}-out")
        ref = load_reference(tmp_path / f"{style}-out")
        assert again.config.to_dict() == ours.config.to_dict()
        ids, mask = padded_batch(ours.config.vocab_size, [30, 7])
        with torch.inference_mode():
            a, b = ours(ids, mask).logits, again(ids, mask).logits
            c = ref(input_ids=ids, attention_mask=mask).logits
        assert torch.equal(a, b) and max_diff(a, c, mask) <= TOL
        saved = json.loads((tmp_path / f"{style}-out" / "config.json").read_text())
        assert saved["architectures"] == ["DebertaV2ForTokenClassification"]


def test_pretraining_heads_and_unused_position_table_are_skipped(tmp_path) -> None:
    """deberta-v3-base's own files carry an absolute position table its config never uses and
    the pre-training heads; both are known and skipped. Anything else unknown is an error."""
    folder = make_deberta_checkpoint(tmp_path, "v3", labels=LABELS)
    tensors = load_file(folder / "model.safetensors")
    reference = load_model(folder)
    tensors |= {
        "deberta.embeddings.position_embeddings.weight": torch.zeros(64, 32),
        "lm_predictions.lm_head.bias": torch.zeros(300),
        "mask_predictions.classifier.weight": torch.zeros(1, 32),
    }
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    model = load_model(folder)
    assert torch.equal(model.classifier.weight, reference.classifier.weight)
    tensors["deberta.encoder.layer.0.attention.self.pos_key_proj.weight"] = torch.zeros(32, 32)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="unexpected 1 tensor.*pos_key_proj"):
        load_model(folder)


def test_base_model_gets_a_fresh_head(tmp_path) -> None:
    folder = make_deberta_checkpoint(tmp_path, "v3", labels=LABELS)
    tensors = load_file(folder / "model.safetensors")
    base = {k.removeprefix("deberta."): v for k, v in tensors.items() if k.startswith("deberta.")}
    save_file(base, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="is a base model.*id2label"):
        load_model(folder)
    model = load_model(folder, id2label={0: "O", 1: "B-X", 2: "I-X"})
    assert model.classifier.weight.shape == (3, 32)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pos_att_type": ["c2p", "p2p"]}, "pos_att_type .* unknown term"),
        ({"conv_act": "mish", "conv_kernel_size": 3}, "conv_act 'mish' is not supported"),
        ({"attention_head_size": 4}, "attention_head_size 4 x 4 heads"),
        ({"relative_attention": True, "position_buckets": 256, "max_relative_positions": 100},
         "position_buckets 256 cannot bucket distances up to 99"),
        ({"relative_attention": True, "position_buckets": 1}, "position_buckets 1 cannot"),
    ],
)  # fmt: skip
def test_bad_configs_are_clear_errors(change, message) -> None:
    raw = {"model_type": "deberta-v2", "hidden_size": 32, "num_attention_heads": 4}
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(raw | change)


def test_config_defaults_are_transformers_defaults() -> None:
    transformers = pytest.importorskip("transformers")
    ours = ModelConfig.from_dict({"model_type": "deberta-v2"})
    theirs = transformers.DebertaV2Config()
    assert ours.layer_norm_eps == theirs.layer_norm_eps == 1e-7
    assert ours.type_vocab_size == theirs.type_vocab_size == 0
    assert ours.relative_attention is theirs.relative_attention is False
    assert ours.position_biased_input is theirs.position_biased_input is True
    assert ours.max_relative_positions == theirs.max_relative_positions == -1
    assert ours.pos_att_type == () and not theirs.pos_att_type
    shape = (ours.vocab_size, ours.hidden_size, ours.num_layers, ours.num_heads)
    assert shape == (theirs.vocab_size, theirs.hidden_size, theirs.num_hidden_layers,
                     theirs.num_attention_heads)  # fmt: skip
    assert ours.intermediate_size == theirs.intermediate_size
    assert ours.activation == theirs.hidden_act and ours.embedding_width == theirs.hidden_size
    # What the model code reads with getattr(config, name, default):
    assert (ours.position_buckets, ours.share_att_key, ours.norm_rel_ebd) == (-1, False, "none")
    assert (ours.conv_kernel_size, ours.conv_groups, ours.conv_act) == (0, 1, "tanh")
    assert ours.classifier_dropout == ours.hidden_dropout == theirs.hidden_dropout_prob


def test_inspect_shows_the_position_terms_share(tmp_path, minilm) -> None:
    """inspect's attention maps are the model's (all terms); each head also reports the share
    of its scores that c2p + p2c make, recomputed here from the terms by hand."""
    from minibert_ner import Tokenizer
    from minibert_ner.study.interventions import capture
    from minibert_ner.study.lens import inspect_text

    from .helpers.checkpoints import copy_tokenizer

    text = "Ada Lovelace met Charles Babbage in London."
    models = {}
    for style in ("v3", "no-relative"):
        folder = make_deberta_checkpoint(tmp_path / style, CASES[style], labels=LABELS,
                                         vocab_size=30522)  # fmt: skip
        copy_tokenizer(minilm, folder)
        models[style] = load_model(folder)
    tokenizer = Tokenizer.from_pretrained(tmp_path / "v3")
    model = models["v3"]
    inspection = inspect_text(model, tokenizer, text)
    batch = tokenizer.to_tensors([tokenizer.encode(text)])
    with torch.inference_mode(), capture(model, ["layers.1"]) as seen:
        out = model(**batch, output_attentions=True)
        attention = model.layers[1].attention
        x = seen.inputs["layers.1"]
        terms = attention.score_terms(x, model.relative_positions(x.shape[1], None, x.device))
    assert torch.equal(inspection.attentions[1], out.attentions[1][0])
    position = (terms["c2p"] + terms["p2c"])[0].abs()  # (nh, T, T)
    expected = (position.sum(-1) / (terms["c2c"][0].abs() + position).sum(-1)).mean(-1)
    torch.testing.assert_close(inspection.position_shares[1], expected)
    assert all(0 < s.position_share < 1 for s in inspection.head_summaries())
    assert "position" in inspection.render()

    plain = inspect_text(models["no-relative"], tokenizer, text)
    assert plain.position_shares is None and "position" not in plain.attention_table()


def test_fresh_weights_as_transformers_initialises_them() -> None:
    """init_weights, as TokenClassifier's: N(0, initializer_range), biases 0, LayerNorm 1/0, the
    padding row 0; every module of the v2 layout covered (embed_proj has no bias)."""
    from minibert_ner.checkpoint import build_model

    raw = {"model_type": "deberta-v2", "hidden_size": 64, "num_attention_heads": 4,
           "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 500,
           "initializer_range": 0.5, "id2label": {"0": "O", "1": "B-X"}} | V2_STYLE  # fmt: skip
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict(raw))
    model.init_weights()
    weights = [
        m.weight for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))
    ]
    assert all(abs(w.std().item() - 0.5) < 0.1 for w in weights if w.numel() > 500)
    assert model.embeddings.embed_proj.bias is None and model.conv is not None
    assert torch.equal(model.embeddings.word_embeddings.weight[0], torch.zeros(24))
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
        if getattr(m, "bias", None) is not None:
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
