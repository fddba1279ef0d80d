"""Precision modes (inference/precision.py): each mode's entities against float32's on every
family's random fixture, dtype="auto"'s choice on made-up CPUs, loading and quantizing without a
second copy of the weights, and auto through the command line and the server's /info."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import pytest
import torch
from torch import nn

import minibert_ner
from minibert_ner.checkpoint import convert_model, load_model, read_safetensors
from minibert_ner.errors import InputError
from minibert_ner.inference.options import PipelineOptions
from minibert_ner.inference.precision import (
    FIGURES,
    MODES,
    TRUSTED,
    Figures,
    choose,
    cpu_features,
    resolve,
)

from .helpers.checkpoints import (
    BERT_NER_LABELS,
    calibrate_head,
    copy_tokenizer,
    make_ner_checkpoint,
    tokenizer_vocab_size,
)
from .helpers.cli import run_in_process
from .helpers.data import conll_sentences

SLICE = 100  # CoNLL test sentences each mode labels
# The share of the slice's sentences whose entities must equal float32's, per mode. The random
# fixtures' heads are calibrated to sit on the fence between labels (about half the tokens "O"),
# so that any rounding shows: a trained model's margins are wider (docs/benchmarks.md).
# (scripts/precision_modes.py --families --limit 300: mixed 99-100%, bfloat16 79-95%, int8
# 85-100%, docs/benchmarks.md.) The fixtures have 2 blocks: mixed runs the second in bfloat16.
RATES = {"bfloat16-mixed": 0.95, "bfloat16": 0.75, "int8": 0.8}
FAMILY_TOKENIZERS = {  # family -> the conftest fixture of its tokenizer
    "distilbert": "minilm",
    "bert": "minilm",
    "roberta": "bpe_tokenizer",
    "xlm-roberta": "unigram_tokenizer",
    "camembert": "camembert_tokenizer",
    "electra": "minilm",
    "deberta-v3": "minilm",
    "deberta-v2": "minilm",
    "modernbert": "modernbert_tokenizer",
}


@pytest.fixture(scope="module", params=list(FAMILY_TOKENIZERS))
def family_model(request, tmp_path_factory) -> tuple[str, Path]:
    """(family, a random head-calibrated NER checkpoint of it, made by transformers)."""
    family = request.param
    folder = tmp_path_factory.mktemp(family)
    tokenizer = request.getfixturevalue(FAMILY_TOKENIZERS[family])
    if family == "modernbert":
        from .helpers.modernbert import modernbert_ner_checkpoint

        return family, modernbert_ner_checkpoint(folder, tokenizer)
    if not family.startswith("deberta"):
        return family, make_ner_checkpoint(folder, family, tokenizer_from=tokenizer)
    from .helpers.deberta import make_deberta_checkpoint

    style = family.removeprefix("deberta-")
    make_deberta_checkpoint(folder, style, labels=BERT_NER_LABELS, max_position_embeddings=512,
                            vocab_size=tokenizer_vocab_size(tokenizer))  # fmt: skip
    copy_tokenizer(tokenizer, folder)
    return family, calibrate_head(folder)


def entity_spans(ner, texts: list[str]) -> list[set[tuple]]:
    return [{(e["entity_group"], e["start"], e["end"]) for e in es} for es in ner(texts)]


def test_each_mode_agrees_with_float32(family_model) -> None:
    family, folder = family_model
    texts = [" ".join(words) for words in conll_sentences("test", limit=SLICE)]
    reference = entity_spans(minibert_ner.pipeline(folder), texts)
    assert sum(map(len, reference)) > SLICE  # the fixture predicts entities
    modes = dict(RATES)
    try:
        import torchao  # noqa: F401
    except ImportError:
        del modes["int8"]
    identical = {}
    for mode in modes:
        options = {"quantize": "int8"} if mode == "int8" else {"dtype": mode}
        ner = minibert_ner.pipeline(folder, **options)
        got = entity_spans(ner, texts)
        identical[mode] = sum(a == b for a, b in zip(reference, got, strict=True)) / SLICE
    print(f"\n{family}: sentences whose entities equal float32's: {identical}")
    for mode, rate in modes.items():
        assert identical[mode] >= rate, (mode, identical)
    # Keeping LayerNorm, softmax and the residual stream in float32 is what buys the agreement.
    assert identical["bfloat16-mixed"] > identical["bfloat16"]


def test_mixed_mode_runs_the_matmuls_in_bfloat16_and_the_rest_in_float32(ner_model_dir) -> None:
    ner = minibert_ner.pipeline(ner_model_dir, dtype="bf16-mixed")
    assert ner.options.dtype == "bfloat16-mixed" and ner.precision.mode.name == "bfloat16-mixed"
    # bfloat16: the blocks' linear layers but the first block's (ner_model_dir has 2 blocks)
    for name, module in ner.model.named_modules():
        for p in module.parameters(recurse=False):
            linear = isinstance(module, nn.Linear) and name.startswith("layers.1.")
            assert p.dtype == (torch.bfloat16 if linear else torch.float32), name
    # A loaded model converted by pipeline() is the same model; the caller's stays float32.
    exact = load_model(ner_model_dir)
    tok = minibert_ner.Tokenizer.from_pretrained(ner_model_dir)
    converted = minibert_ner.pipeline(exact, tokenizer=tok, dtype="bfloat16-mixed")
    assert exact.layers[0].ffn.intermediate.weight.dtype == torch.float32
    ids = torch.tensor([tok.encode("EU rejects German call to boycott British lamb .").ids])
    with torch.inference_mode():
        a, b = ner.model(ids).logits, converted.model(ids).logits
    assert a.dtype == torch.float32 and torch.equal(a, b)
    assert "precision=bfloat16-mixed (as asked)" in repr(ner)


# --- dtype="auto": the choice ---------------------------------------------------------------

AVX512_BF16 = {"avx512", "avx512f", "avx2", "avx512_bf16", "avx512_vnni"}


def test_auto_picks_the_fastest_trusted_mode_this_cpu_runs_fast() -> None:
    # The figures measured here: on this project's AVX512-BF16 CPU, and on an AVX2-only one.
    picked = choose(AVX512_BF16)
    trusted = [m for m, f in FIGURES.items() if TRUSTED.met_by(f) and f.speed > 1]
    assert picked.mode.name == max(trusted, key=lambda m: FIGURES[m].speed)
    assert picked.reason.startswith("auto: ")
    avx2 = choose({"avx2"})
    assert avx2.mode.name == "float32" and "not fast here" in avx2.reason
    assert choose(set()).mode.name == "float32"
    # Made-up figures: the fastest trusted one wins, the untrusted and the slow never do.
    made_up = {
        "bfloat16": Figures(speed=2.0, identical=0.99, f1_delta=0.0),  # too few identical
        "bfloat16-mixed": Figures(speed=1.5, identical=0.999, f1_delta=-0.05),
        "int8": Figures(speed=1.8, identical=0.998, f1_delta=-0.02),
    }
    assert choose(AVX512_BF16, figures=made_up).mode.name == "int8"
    assert choose({"avx512_bf16"}, figures=made_up).mode.name == "bfloat16-mixed"
    assert choose({"avx_vnni"}, figures=made_up).mode.name == "int8"  # AVX2 with VNNI
    assert (
        choose(AVX512_BF16, figures=made_up, available=["float32", "bfloat16-mixed"]).mode
        == (MODES["bfloat16-mixed"])
    )
    lossy = {"bfloat16-mixed": Figures(speed=1.8, identical=0.999, f1_delta=-0.11)}
    assert choose(AVX512_BF16, figures=lossy).mode.name == "float32"
    slow = {"bfloat16-mixed": Figures(speed=0.9, identical=1.0, f1_delta=0.0)}
    assert choose(AVX512_BF16, figures=slow).mode.name == "float32"


def test_cpu_features_are_read_not_assumed(tmp_path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma avx_vnni\n\n")
    capability = torch.backends.cpu.get_cpu_capability().lower()
    assert cpu_features(cpuinfo) == {capability, "avx2", "avx_vnni"}
    assert cpu_features(tmp_path / "missing") == {capability}  # not Linux: torch's level only
    assert resolve("auto", None, "cuda").mode.name == "float32"
    assert resolve("bfloat16", None, "cpu").reason == "as asked"
    assert resolve("auto", None, "cpu", features={"avx2"}).mode.name == "float32"


def test_dtype_option_values() -> None:
    assert PipelineOptions(dtype="bf16-mixed").dtype == "bfloat16-mixed"
    assert PipelineOptions(dtype="auto").dtype == "auto"
    with pytest.raises(InputError, match="auto picks the quantization too"):
        PipelineOptions(dtype="auto", quantize="int8")
    with pytest.raises(InputError, match="choose one"):
        PipelineOptions(dtype="bfloat16-mixed", quantize="int8")
    with pytest.raises(InputError, match="unsupported dtype 'float64'"):
        PipelineOptions(dtype="float64")


# --- never two copies of the weights --------------------------------------------------------


def test_converted_tensors_are_read_one_at_a_time(ner_model_dir) -> None:
    """Each tensor as the file holds it is gone before the next is read: a model loaded in a
    smaller dtype never holds the file's copy of more than one tensor."""
    alive_at_read: list[int] = []
    originals: list[weakref.ref] = []

    def convert(key: str, tensor: torch.Tensor) -> torch.Tensor:
        alive_at_read.append(sum(ref() is not None for ref in originals))
        originals.append(weakref.ref(tensor))
        return tensor.to(torch.bfloat16)

    tensors = read_safetensors(ner_model_dir, convert=convert)
    assert len(alive_at_read) == len(tensors) > 10 and max(alive_at_read) == 0
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())


def test_int8_quantization_keeps_no_float_copy(ner_model_dir) -> None:
    pytest.importorskip("torchao", reason="pip install 'minibert-ner[quant]'")
    from minibert_ner.inference.quantize import quantize_int8

    model = load_model(ner_model_dir)
    weights = [
        weakref.ref(m.weight)
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n != "classifier"
    ]
    quantize_int8(model)
    gc.collect()
    assert weights and all(ref() is None for ref in weights)  # every float weight freed
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear) and n != "classifier":
            assert type(m.weight) is not nn.Parameter  # torchao's int8 tensor in its place


def test_convert_model_converts_each_parameter_once(ner_model_dir) -> None:
    model = load_model(ner_model_dir)
    embeddings = model.embeddings.word_embeddings.weight
    mixed = convert_model(model, torch.float32, torch.bfloat16, from_block=1)
    assert mixed.config.matmul_dtype == "bfloat16" and model.config.matmul_dtype is None
    # float32 parameters are the same tensors, not copies
    assert mixed.embeddings.word_embeddings.weight.data_ptr() == embeddings.data_ptr()
    assert mixed.layers[0].attention.query.weight.dtype == torch.float32
    assert mixed.layers[1].attention.query.weight.dtype == torch.bfloat16


# --- auto through the command line and the server -------------------------------------------


def test_label_command_with_dtype_auto_says_what_it_picked(ner_model_dir, capsys) -> None:
    picked = resolve("auto", None, "cpu")
    args = ["label", "--model", str(ner_model_dir), "--dtype", "auto", "--device", "cpu",
            "--verbose", "--format", "jsonl", "My name is Wolfgang and I live in Berlin"]  # fmt: skip
    code, out, err = run_in_process(args, capsys)
    assert code == 0 and err == f"minibert-ner: precision {picked}\n"
    expected = minibert_ner.pipeline(ner_model_dir, dtype=picked.mode.name, device="cpu")
    got = json.loads(out)["entities"]
    assert [(e["entity_group"], e["start"], e["end"]) for e in got] == [
        (e["entity_group"], e["start"], e["end"])
        for e in expected("My name is Wolfgang and I live in Berlin")
    ]
    code, _, err = run_in_process(["label", "--dtype", "auto", "--quantize", "int8", "x"], capsys)
    assert code == 2 and "auto picks the quantization too" in err and "Traceback" not in err


def test_server_info_says_what_auto_picked(ner_model_dir) -> None:
    pytest.importorskip("uvicorn", reason="pip install -e '.[serve]'")
    from minibert_ner.serve import ServeLimits, create_app

    from .helpers.server import request, serve_thread

    ner = minibert_ner.pipeline(ner_model_dir, dtype="auto", device="cpu")
    app = create_app(lambda: ner, ner.options, ServeLimits(), model_name="test")
    with serve_thread(app) as url:
        for _ in range(500):
            status, _, body = request(url, path="/info")
            if status == 200:
                break
    info = json.loads(body)
    assert info["options"]["dtype"] == "auto"
    assert info["precision"] == {"mode": ner.precision.mode.name, "reason": ner.precision.reason}
    assert info["precision"]["reason"].startswith("auto: ")


def test_train_takes_torch_dtypes_only(tiny_base, conll_dir, tmp_path, capsys) -> None:
    valid = str(conll_dir / "valid.txt")
    args = ["train", "--model", str(tiny_base), "--train", valid, "--valid", valid,
            "--output", str(tmp_path / "out"), "--dtype", "auto"]  # fmt: skip
    code, _, err = run_in_process(args, capsys)
    assert code == 2 and "train --dtype auto is for labelling" in err and "Traceback" not in err
