"""Bad and unusual checkpoints: each problem gives an error that names it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from minibert_ner import CheckpointError, ConfigError, load_model

from .helpers.checkpoints import load_reference, make_reference_checkpoint


@pytest.fixture()
def ckpt(tmp_path) -> Path:
    return make_reference_checkpoint(tmp_path / "model", "bert")


def rewrite(folder: Path, edit) -> None:
    """Apply `edit` to the checkpoint's tensors and save them back."""
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def test_missing_weights_file(ckpt) -> None:
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="holds no model.safetensors"):
        load_model(ckpt)


def test_pickle_only_checkpoint_is_refused(ckpt) -> None:
    (ckpt / "model.safetensors").rename(ckpt / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="reads safetensors only"):
        load_model(ckpt)


def test_missing_config(ckpt) -> None:
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(ckpt)


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.0001])
def test_truncated_file(ckpt, keep) -> None:
    path = ckpt / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(ckpt)


def test_corrupt_header(ckpt) -> None:
    (ckpt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage header}")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(ckpt)


def test_wrong_shape_is_named(ckpt) -> None:
    key = "bert.encoder.layer.1.intermediate.dense.weight"
    rewrite(ckpt, lambda t: t.__setitem__(key, torch.zeros(100, 64)))
    with pytest.raises(
        CheckpointError,
        match=r"wrong shape: layers\.1\.ffn\.intermediate\.weight: checkpoint \(100, 64\), model \(128, 64\)",
    ):  # noqa: E501
        load_model(ckpt)


def test_missing_and_unexpected_keys_are_named(ckpt) -> None:
    def edit(t):
        del t["bert.encoder.layer.0.attention.self.key.bias"]
        t["bert.encoder.layer.7.output.dense.weight"] = torch.zeros(64, 128)  # a 3rd layer
        t["bert.something.else"] = torch.zeros(1)

    rewrite(ckpt, edit)
    with pytest.raises(CheckpointError) as e:
        load_model(ckpt)
    message = str(e.value)
    assert "missing 1 tensor(s): layers.0.attention.key.bias" in message
    assert (
        "unexpected 2 tensor(s): bert.encoder.layer.7.output.dense.weight, bert.something.else"
        in message
    )


def test_unknown_model_type(ckpt) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    families = "distilbert, bert, roberta, xlm-roberta, camembert, electra, deberta-v2"
    with pytest.raises(ConfigError, match=f"model_type 'gpt2'.*{families}"):
        load_model(ckpt)


def test_family_that_does_not_fit_the_weights(ckpt) -> None:
    """A config that names another family than the weights are: every tensor reported."""
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(config | {"model_type": "roberta"}))
    with pytest.raises(
        CheckpointError, match="does not fit the roberta model.*missing.*unexpected"
    ):
        load_model(ckpt)


def test_unsupported_activation_and_positions(ckpt) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(config | {"hidden_act": "mish"}))
    with pytest.raises(ConfigError, match="activation 'mish' is not supported"):
        load_model(ckpt)
    (ckpt / "config.json").write_text(
        json.dumps(config | {"position_embedding_type": "relative_key"})
    )
    with pytest.raises(ConfigError, match="position_embedding_type 'relative_key'"):
        load_model(ckpt)


def test_legacy_names_stored_buffers_and_heads_load(ckpt) -> None:
    """gamma/beta LayerNorm names, stored position_ids, pooler and MLM heads: all handled."""
    expected = load_model(ckpt)

    def edit(t):
        for key in [k for k in t if k.endswith("LayerNorm.weight")]:
            t[key.replace(".weight", ".gamma")] = t.pop(key)
        for key in [k for k in t if k.endswith("LayerNorm.bias")]:
            t[key.replace(".bias", ".beta")] = t.pop(key)
        t["bert.embeddings.position_ids"] = torch.arange(512)[None]
        t["bert.pooler.dense.weight"] = torch.zeros(64, 64)
        t["cls.predictions.bias"] = torch.zeros(10)

    rewrite(ckpt, edit)
    model = load_model(ckpt)
    ids = torch.tensor([[1, 5, 9, 2]])
    assert torch.equal(model(ids).logits, expected(ids).logits)


def test_sharded_checkpoint(tmp_path) -> None:
    """model.safetensors.index.json + shards, as transformers writes large models."""
    src = make_reference_checkpoint(tmp_path / "src", "distilbert")
    ref = load_reference(src)
    ref.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ours = load_model(tmp_path / "sharded")
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.inference_mode():
        assert (ours(ids).logits - ref(input_ids=ids).logits).abs().max() <= 1e-5


def test_config_without_labels_takes_head_size(ckpt) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    del config["id2label"], config["label2id"]
    (ckpt / "config.json").write_text(json.dumps(config))
    model = load_model(ckpt)
    assert model.id2label == {i: f"LABEL_{i}" for i in range(9)}


def test_new_labels_give_a_fresh_head(ckpt) -> None:
    model = load_model(ckpt, id2label={0: "O", 1: "B-X", 2: "I-X"})
    assert model.classifier.weight.shape == (3, 64)
    assert model.id2label == {0: "O", 1: "B-X", 2: "I-X"}


def test_a_sequence_classifier_is_not_a_token_classifier(ckpt) -> None:
    """Its head is named `classifier` too, and of a shape that would fit: config.json's
    `architectures` tells them apart."""
    config = json.loads((ckpt / "config.json").read_text())
    config["architectures"] = ["BertForSequenceClassification"]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="is a BertForSequenceClassification, not a token"):
        load_model(ckpt)
    assert load_model(ckpt, id2label={0: "O", 1: "B-X", 2: "I-X"}).config.num_labels == 3
