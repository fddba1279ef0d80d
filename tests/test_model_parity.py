"""Numerical parity with `transformers` on checkpoints it creates (random weights) and on the real
all-MiniLM-L6-v2 weights. The measured max |diff| is printed (run with -s to see it)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from minibert_ner import Tokenizer, load_model, save_model

from .helpers.assertions import assert_same_outputs, max_diff
from .helpers.checkpoints import (
    BERT_NER_LABELS,
    DISTILBERT_NER_LABELS,
    FAMILIES,
    load_reference,
    make_reference_checkpoint,
)

TOL = 1e-4


def padded_batch(
    vocab_size: int, lengths: list[int], seed: int = 0, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids, padded with `pad_id` to the longest length; the mask marks the real tokens.
    The first row's fourth token is `pad_id` too, attended: the RoBERTa family does not count
    it as a position."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.randint(
        1000 if vocab_size > 2000 else 5, vocab_size, (len(lengths), T), generator=g
    )
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    ids[0, 3] = pad_id
    return ids.masked_fill(mask == 0, pad_id), mask


CASES = [
    # (id, model_type, size, labels, config overrides)
    ("distilbert-published-shape", "distilbert", "published", DISTILBERT_NER_LABELS, {}),
    ("distilbert-small", "distilbert", "small", DISTILBERT_NER_LABELS, {}),
    (
        "distilbert-sinusoidal",
        "distilbert",
        "small",
        DISTILBERT_NER_LABELS,
        {"sinusoidal_pos_embds": True},
    ),
    ("bert-base-shape", "bert", "published", BERT_NER_LABELS, {}),
    ("bert-small", "bert", "small", BERT_NER_LABELS, {}),
    ("bert-small-relu", "bert", "small", BERT_NER_LABELS, {"hidden_act": "relu"}),
    # roberta-base's shape: 768 wide, 12 layers, 50265 tokens, 514 positions
    pytest.param(
        ("roberta-base-shape", "roberta", "published", BERT_NER_LABELS, {}),
        marks=pytest.mark.slow,
        id="roberta-base-shape",
    ),
    ("roberta-small", "roberta", "small", DISTILBERT_NER_LABELS, {}),
    ("xlm-roberta-small", "xlm-roberta", "small", BERT_NER_LABELS, {}),
    ("camembert-small", "camembert", "small", DISTILBERT_NER_LABELS, {}),
    # transformers' own defaults: 512 rows, two token types, <pad> = 1, eps 1e-12
    (
        "roberta-class-defaults",
        "roberta",
        "small",
        BERT_NER_LABELS,
        {"max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12},
    ),
    ("roberta-pad-0", "roberta", "small", BERT_NER_LABELS, {"pad_token_id": 0}),
    ("electra-small-projected", "electra", "small", DISTILBERT_NER_LABELS, {}),
    ("electra-small-same-width", "electra", "small", BERT_NER_LABELS, {"embedding_size": 64}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_parity_with_transformers(case, tmp_path) -> None:
    name, model_type, size, labels, overrides = case
    folder = make_reference_checkpoint(tmp_path, model_type, labels=labels, size=size, **overrides)
    ref = load_reference(folder)
    ours = load_model(folder)
    assert ours.id2label == dict(enumerate(labels))

    ids, mask = padded_batch(
        ours.config.vocab_size, [37, 5, 20, 1 + 2], pad_id=ours.config.pad_token_id
    )
    assert_same_outputs(ref, ours, ids, mask, name, TOL)


def test_batch_padding_does_not_change_results(tmp_path) -> None:
    """A sentence gives the same logits alone and inside a padded batch."""
    folder = make_reference_checkpoint(tmp_path, "bert")
    model = load_model(folder)
    ids, mask = padded_batch(model.config.vocab_size, [30, 9])
    with torch.inference_mode():
        batched = model(ids, mask).logits
        alone = model(ids[1:, :9]).logits
    assert max_diff(batched[1, :9], alone[0]) <= 1e-5


def test_base_model_load_needs_labels_and_gets_fresh_head(minilm) -> None:
    with pytest.raises(Exception, match="is a base model: it has no NER head"):
        load_model(minilm)
    model = load_model(minilm, id2label=dict(enumerate(DISTILBERT_NER_LABELS)))
    assert model.classifier.weight.shape == (9, 384)
    assert model.config.model_type == "bert" and model.config.num_layers == 6


def test_real_minilm_hidden_states_equal_transformers(minilm) -> None:
    """all-MiniLM-L6-v2's published weights: our encoder's last hidden state equals BertModel's."""
    transformers = pytest.importorskip("transformers")
    ref = transformers.BertModel.from_pretrained(minilm, attn_implementation="eager").eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(minilm)
    ours = load_model(minilm, num_labels=2)
    tok = Tokenizer.from_pretrained(minilm)
    sentences = [
        "My name is Wolfgang and I live in Berlin.",
        "EU rejects German call to boycott British lamb.",
        "Peter Blackburn",
        "The European Commission said on Thursday it disagreed with German advice to consumers "
        "to shun British lamb until scientists determine whether mad cow disease can be "
        "transmitted to sheep.",
    ]
    batch = tok.to_tensors(tok.encode_batch(sentences))
    ref_batch = ref_tok(sentences, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], ref_batch["input_ids"])
    with torch.inference_mode():
        r = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        o = ours(**batch, output_hidden_states=True)
    d = max_diff(r.last_hidden_state, o.hidden_states[-1], batch["attention_mask"])
    print(f"\nall-MiniLM-L6-v2 last hidden state max|diff| {d:.2e}")
    assert d <= TOL


def test_save_pretrained_round_trip_loads_in_both_libraries(tmp_path) -> None:
    folder = make_reference_checkpoint(tmp_path / "src", "distilbert")
    ours = load_model(folder)
    save_model(ours, tmp_path / "out")
    again = load_model(tmp_path / "out")
    ref = load_reference(tmp_path / "out")
    ids, mask = padded_batch(ours.config.vocab_size, [12, 7])
    with torch.inference_mode():
        a, b, c = (
            ours(ids, mask).logits,
            again(ids, mask).logits,
            ref(input_ids=ids, attention_mask=mask).logits,
        )
    assert torch.equal(a, b)
    assert max_diff(a, c, mask) <= TOL
    assert ref.config.id2label == ours.id2label


def test_dtype_and_device_options(tmp_path) -> None:
    folder = make_reference_checkpoint(tmp_path, "distilbert")
    model = load_model(folder, dtype="bfloat16", device="cpu")
    assert model.dtype == torch.bfloat16 and not model.training
    ids, mask = padded_batch(model.config.vocab_size, [10, 4])
    with torch.inference_mode():
        logits = model(ids, mask).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    with pytest.raises(ValueError, match="unknown dtype"):
        load_model(folder, dtype="float8")


def test_too_long_input_is_a_clear_error(tmp_path) -> None:
    folder = make_reference_checkpoint(tmp_path, "distilbert")
    model = load_model(folder)
    with pytest.raises(ValueError, match="only 512 positions"):
        model(torch.ones(1, 513, dtype=torch.long))


NEW_FAMILIES = ["roberta", "xlm-roberta", "camembert", "electra"]


@pytest.mark.parametrize("model_type", NEW_FAMILIES)
def test_family_loads_both_ways_and_base_models_get_a_fresh_head(model_type, tmp_path) -> None:
    """Each family: our save loads in transformers (same class, same logits) and back in ours;
    a base checkpoint (no head, no prefix: what `XxxModel.save_pretrained` writes) loads with a
    fresh head, its encoder equal to transformers'; the position table's usable length is the
    window length (RoBERTa family: 514 rows, 512 positions)."""
    transformers = pytest.importorskip("transformers")
    folder = make_reference_checkpoint(tmp_path / "src", model_type, labels=BERT_NER_LABELS)
    ours = load_model(folder)
    save_model(ours, tmp_path / "out")
    ref = load_reference(tmp_path / "out")
    again = load_model(tmp_path / "out")
    assert type(ref).__name__ == ours.config.family.architecture
    assert dataclasses.replace(again.config, extra={}) == dataclasses.replace(ours.config, extra={})
    ids, mask = padded_batch(ours.config.vocab_size, [12, 7], pad_id=ours.config.pad_token_id)
    with torch.inference_mode():
        a = ours(ids, mask).logits
        b = again(ids, mask).logits
        c = ref(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(a, b) and max_diff(a, c, mask) <= TOL

    base = getattr(transformers, FAMILIES[model_type].base_class).from_pretrained(folder).eval()
    base.save_pretrained(tmp_path / "base")
    with pytest.raises(Exception, match="is a base model: it has no NER head"):
        load_model(tmp_path / "base")
    fresh = load_model(tmp_path / "base", id2label=dict(enumerate(DISTILBERT_NER_LABELS)))
    assert fresh.classifier.weight.shape == (9, ours.config.hidden_size)
    with torch.inference_mode():
        r = base(input_ids=ids, attention_mask=mask).last_hidden_state
        o = fresh(ids, mask, output_hidden_states=True).hidden_states[-1]
    assert max_diff(r, o, mask) <= TOL

    expected = 512 if model_type == "electra" else 514 - 2
    assert ours.config.max_positions == expected
    with torch.inference_mode():
        ours(torch.full((1, expected), 5))
    with pytest.raises(ValueError, match=f"only {expected} positions"):
        ours(torch.full((1, expected + 1), 5))
