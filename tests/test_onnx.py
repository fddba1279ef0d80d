"""ONNX export and the torch-free ONNX engine (export/onnx_export.py, inference/onnx_engine.py).

Every family's random checkpoint (made by transformers) is exported; the ONNX engine's entities
equal the PyTorch pipeline's for all five aggregation strategies (scores within 1e-4), over CoNLL
sentences, the hard Unicode texts, long text in windows and small batches. The engine's path
runs in a process where torch cannot be imported. Each bad input is one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import minibert_ner
from minibert_ner.errors import CheckpointError, InputError
from minibert_ner.inference.aggregation import STRATEGIES
from minibert_ner.modernbert import queries_per_chunk

from .helpers.assertions import assert_same_entities
from .helpers.checkpoints import BERT_NER_LABELS, DISTILBERT_NER_LABELS, make_ner_checkpoint
from .helpers.cli import run_in_process
from .helpers.data import conll_sentences
from .test_deberta_pipeline import LABELS as DEBERTA_LABELS
from .test_deberta_pipeline import deberta_ner_checkpoint
from .test_modernbert import LABELS as MODERNBERT_LABELS
from .test_modernbert import modernbert_ner_checkpoint

pytest.importorskip("onnxruntime", reason="pip install 'minibert-ner[onnx]'")
onnx = pytest.importorskip("onnx", reason="pip install 'minibert-ner[onnx-export]'")

ROOT = Path(__file__).resolve().parents[1]
HARD_TEXTS = [
    "",
    " ",
    "Jean-Baptiste O'Neill (U.S.A.) paid $3.5bn to Crème Brûlée Ltd. -- 'quoted' \"twice\"",
    "北京大学 and 東京 met 서울 officials in 上海 with Angela Merkel.",
    "Emoji 😀 next to names: Anna 👩‍🔬 Smith 🇫🇷 visited Paris 🗼.",
    "Control\tchars\x00 and \x07 bell \u200b zero-width \ufeff BOM\r\nnew line in New York",
    "[CLS] [SEP] [MASK] [PAD] [UNK] <s> </s> <pad> as text, and ## ##ing markers",
    "Peter Blackburn",  # short rows: within ModernBERT's local window below
    "EU rejects it",
]
# family -> (model type or DeBERTa style, labels, tokenizer fixture)
FAMILIES = {
    "distilbert": ("distilbert", DISTILBERT_NER_LABELS, "cased_tokenizer"),
    "bert": ("bert", BERT_NER_LABELS, "cased_tokenizer"),
    "roberta": ("roberta", DISTILBERT_NER_LABELS, "bpe_tokenizer"),
    "xlm-roberta": ("xlm-roberta", BERT_NER_LABELS, "unigram_tokenizer"),
    "camembert": ("camembert", DISTILBERT_NER_LABELS, "camembert_tokenizer"),
    "electra": ("electra", BERT_NER_LABELS, "cased_tokenizer"),
    "deberta-v3": ("v3", DEBERTA_LABELS, "deberta_tokenizer"),
    "deberta-v2": ("v2", DEBERTA_LABELS, "deberta_tokenizer"),
    "modernbert": ("modernbert", MODERNBERT_LABELS, "modernbert_tokenizer"),
}
# ModernBERT's local blocks see 8 tokens each side: the short texts' rows lie within that reach
# (global attention in PyTorch), CoNLL's beyond (a band mask), the long text's unwindowed row
# beyond 256 + 2 x 8 tokens (local attention in chunks of queries); the graph has one path.
MODERNBERT_LOCAL_ATTENTION = 16


def make_checkpoint(family: str, folder: Path, request) -> Path:
    kind, labels, tokenizer_fixture = FAMILIES[family]
    tokenizer = request.getfixturevalue(tokenizer_fixture)
    if family.startswith("deberta"):
        return deberta_ner_checkpoint(folder, tokenizer, kind)
    if family == "modernbert":
        return modernbert_ner_checkpoint(
            folder, tokenizer, local_attention=MODERNBERT_LOCAL_ATTENTION
        )
    return make_ner_checkpoint(folder, kind, tokenizer_from=tokenizer, labels=labels)


@pytest.fixture(scope="module")
def distilbert(tmp_path_factory, request) -> Path:
    return make_checkpoint("distilbert", tmp_path_factory.mktemp("onnx_distilbert"), request)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, distilbert) -> Path:
    out = tmp_path_factory.mktemp("onnx_distilbert_export") / "exported"
    minibert_ner.export_onnx(distilbert, out)
    return out


def texts() -> list[str]:
    sentences = conll_sentences("test", limit=45)
    joined = [" ".join(" ".join(w) for w in sentences[i : i + 3]) for i in range(0, 45, 3)]
    return joined + HARD_TEXTS


@pytest.mark.parametrize("family", list(FAMILIES))
def test_entities_equal_the_pytorch_pipeline(family, tmp_path, request) -> None:
    if family == "distilbert":  # the module's own, exported once for the other tests too
        folder, exported = (
            request.getfixturevalue("distilbert"),
            request.getfixturevalue("exported"),
        )
    else:
        folder, exported = make_checkpoint(family, tmp_path / "model", request), tmp_path / "out"
        # ModernBERT has no onnxruntime fusions: --optimize leaves its graph as it is
        optimize = family == "modernbert"
        report = minibert_ner.export_onnx(folder, exported, optimize=optimize)
        assert report.max_abs_diff <= 1e-4 and report.label_agreement == 1.0
        description = json.loads((exported / "pipeline.json").read_text("utf-8"))
        assert description["graph"]["optimized"] is False
    torch_ner = minibert_ner.pipeline(folder)
    onnx_ner = minibert_ner.pipeline(exported)
    assert type(onnx_ner.model).__name__ == "OnnxModel"
    assert onnx_ner.window_size == torch_ner.window_size
    batch = texts()
    long_text = " ".join(batch[:12])  # hundreds of tokens: several windows of 64
    if family == "modernbert":  # rows within the local window's reach, and beyond the chunks'
        lengths = [len(e.ids) for e in torch_ner.tokenizer.encode_batch([*batch, long_text])]
        assert min(lengths) <= MODERNBERT_LOCAL_ATTENTION // 2 + 1
        assert queries_per_chunk(max(lengths), MODERNBERT_LOCAL_ATTENTION // 2) is not None
    compared = 0
    for strategy in STRATEGIES:
        got = onnx_ner(batch, aggregation_strategy=strategy, batch_size=4)
        compared += assert_same_entities(got, torch_ner(batch, aggregation_strategy=strategy))
        windows = {"aggregation_strategy": strategy, "max_length": 64, "stride": 16}
        got = onnx_ner([long_text], **windows)
        compared += assert_same_entities(got, torch_ner([long_text], **windows))
        if family == "modernbert":  # its window (8192 tokens) holds the long text in one row
            got = onnx_ner([long_text], aggregation_strategy=strategy)
            compared += assert_same_entities(
                got, torch_ner([long_text], aggregation_strategy=strategy)
            )
    words = [s for s in conll_sentences("test", limit=20)]
    assert onnx_ner.label_words(words) == torch_ner.label_words(words)
    print(f"\n{family}: {compared} entities equal")
    assert compared > 0


def test_export_folder_and_description(exported, distilbert) -> None:
    names = {p.name for p in exported.iterdir()}
    assert names == {"model.onnx", "model.onnx.data", "tokenizer.json", "tokenizer_config.json",
                     "config.json", "pipeline.json"}  # fmt: skip
    description = json.loads((exported / "pipeline.json").read_text("utf-8"))
    assert description["labels"] == DISTILBERT_NER_LABELS
    assert description["tokenizer"]["template"] == {"prefix": 1, "suffix": 1}
    assert description["word_rule"]["name"] == "subword_prefix"
    assert description["windows"]["length"] == 512
    model = onnx.load(str(exported / "model.onnx"))
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in model.graph.input]  # fmt: skip
    assert dims == [["batch", "sequence"]] * 2
    # A second export into the same folder replaces it; other files there stay.
    (exported / "notes.txt").write_text("mine", "utf-8")
    minibert_ner.export_onnx(distilbert, exported)
    assert (exported / "notes.txt").read_text("utf-8") == "mine"
    (exported / "notes.txt").unlink()


# Random weights make many near ties between labels, which int8 flips: the agreement a trained
# model keeps is in docs/onnx.md. These check that each export runs and stays close.
@pytest.mark.parametrize(
    ("options", "agreement"),
    [({"quantize": "int8"}, 0.7), ({"dtype": "float16"}, 0.95)],
)
def test_quantized_and_float16_exports_run(options, agreement, distilbert, tmp_path) -> None:
    report = minibert_ner.export_onnx(distilbert, tmp_path / "out", **options)
    assert report.label_agreement >= agreement, report
    ner = minibert_ner.pipeline(tmp_path / "out")
    reference = minibert_ner.pipeline(distilbert)
    batch = texts()
    got = ner(batch, aggregation_strategy="none", ignore_labels=[])
    expected = reference(batch, aggregation_strategy="none", ignore_labels=[])
    assert [len(x) for x in got] == [len(y) for y in expected]
    pairs = [(a, b) for x, y in zip(got, expected, strict=True) for a, b in zip(x, y, strict=True)]
    same = sum(a["entity"] == b["entity"] for a, b in pairs)
    assert same >= agreement * sum(map(len, expected))


def test_optimized_export_is_exact(distilbert, tmp_path) -> None:
    minibert_ner.export_onnx(distilbert, tmp_path / "out", optimize=True)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "out" / "model.onnx")).graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= ops  # onnxruntime's fusions took
    batch = texts()
    got = minibert_ner.pipeline(tmp_path / "out")(batch, aggregation_strategy="average")
    expected = minibert_ner.pipeline(distilbert)(batch, aggregation_strategy="average")
    assert_same_entities(got, expected)


BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"No module named {{name!r}} (blocked)")
sys.meta_path.insert(0, Block())
"""


def run_blocked(blocked: set[str], code: str) -> subprocess.CompletedProcess:
    script = BLOCK.format(blocked=blocked) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_the_onnx_engine_runs_without_torch(exported, distilbert) -> None:
    text = "EU rejects German call to boycott British lamb . Peter Blackburn in Brussels"
    done = run_blocked({"torch"}, f"""
        import json, minibert_ner
        from minibert_ner.cli import main
        ner = minibert_ner.pipeline({str(exported)!r})
        print(json.dumps(ner([{text!r}], aggregation_strategy="first")))
        assert "torch" not in sys.modules
        sys.exit(main(["--model", {str(exported)!r}, "-a", "first", {text!r}]))
    """)  # fmt: skip
    assert done.returncode == 0, done.stderr
    api, cli = done.stdout.splitlines()
    expected = minibert_ner.pipeline(distilbert)([text], aggregation_strategy="first")
    assert_same_entities(json.loads(api), expected)
    assert_same_entities([json.loads(cli)["entities"]], expected)


def test_batch_command_takes_an_export(exported, distilbert, tmp_path, capsys) -> None:
    lines = [" ".join(words) for words in conll_sentences("test", limit=30)]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", "utf-8")
    code, _, err = run_in_process(
        ["batch", "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out"),
         "--model", str(exported)], capsys)  # fmt: skip
    assert code == 0, err
    written = [
        json.loads(line) for line in (tmp_path / "out" / "in.jsonl").read_text().splitlines()
    ]
    expected = minibert_ner.pipeline(distilbert)(lines)
    assert_same_entities([r["entities"] for r in written], expected)


def test_missing_onnxruntime_names_the_extra(exported) -> None:
    done = run_blocked({"onnxruntime"}, f"""
        from minibert_ner.cli import main
        sys.exit(main(["--model", {str(exported)!r}, "text"]))
    """)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "minibert-ner: error: the ONNX engine needs onnxruntime: pip install 'minibert-ner[onnx]'"
    )


def copy_export(exported: Path, to: Path) -> Path:
    to.mkdir()
    for path in exported.iterdir():
        (to / path.name).write_bytes(path.read_bytes())
    return to


def other_graph(inputs: list[str], outputs: list[str]) -> bytes:
    """A valid ONNX graph from elsewhere: Identity from each input to each output."""
    helper, TensorProto = onnx.helper, onnx.TensorProto
    nodes = [helper.make_node("Identity", [i], [o]) for i, o in zip(inputs, outputs, strict=True)]
    graph = helper.make_graph(
        nodes, "other",
        [helper.make_tensor_value_info(i, TensorProto.INT64, ["b", "t"]) for i in inputs],
        [helper.make_tensor_value_info(o, TensorProto.INT64, ["b", "t"]) for o in outputs],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def with_opset(exported: Path, opset: int) -> bytes:
    model = onnx.load(str(exported / "model.onnx"))
    model.opset_import[0].version = opset
    return model.SerializeToString()


BAD_MODELS = {
    "missing": (None, "has no model.onnx; export the model again"),
    "corrupt": (lambda e: b"not an onnx file" * 10, "cannot load"),
    "other-inputs": (
        lambda e: other_graph(["x"], ["y"]),
        "is not a minibert-ner export: it takes x -> y; an export takes input_ids, attention_mask",
    ),
    "other-outputs": (
        lambda e: other_graph(["input_ids", "attention_mask"], ["ids", "mask"]),
        "is not a minibert-ner export",
    ),
    "opset-too-new": (lambda e: with_opset(e, 99), "needs a newer onnxruntime than"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_file_is_one_line(case, exported, tmp_path, capsys) -> None:
    folder = copy_export(exported, tmp_path / "export")
    make, message = BAD_MODELS[case]
    if make is None:
        (folder / "model.onnx").unlink()
    else:
        (folder / "model.onnx").write_bytes(make(exported))
    with pytest.raises(CheckpointError, match=message) as raised:
        minibert_ner.pipeline(folder)
    assert "\n" not in str(raised.value)
    code, out, err = run_in_process(["--model", str(folder), "text"], capsys)
    assert (code, out) == (2, "") and err.count("\n") == 1 and message in err


def test_bad_options_and_folders(exported, distilbert, tmp_path, capsys) -> None:
    with pytest.raises(InputError, match="export it with --quantize int8"):
        minibert_ner.pipeline(exported, quantize="int8")
    with pytest.raises(InputError, match="not an export folder"):
        minibert_ner.pipeline(distilbert, engine="onnx")
    with pytest.raises(InputError, match="unknown engine"):
        minibert_ner.pipeline(exported, engine="tensorflow")
    with pytest.raises(InputError, match="ONNX export, without PyTorch weights"):
        minibert_ner.pipeline(exported, engine="torch")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me", "utf-8")
    code, out, err = run_in_process(
        ["export", "--model", str(distilbert), "--output", str(taken)], capsys
    )
    assert code == 2 and err.count("\n") == 1 and "not empty and holds no earlier export" in err
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]
    gliner = Path(__file__).parent / "fixtures" / "gliner" / "deberta_span"
    code, out, err = run_in_process(
        ["export", "--model", str(gliner), "--output", str(tmp_path / "g")], capsys
    )
    assert code == 2 and err.count("\n") == 1 and "is a GLiNER model" in err
    assert not (tmp_path / "g").exists()
    (exported / "pipeline.json").write_text("{", "utf-8")
    try:
        with pytest.raises(minibert_ner.ConfigError, match="cannot read"):
            minibert_ner.pipeline(exported)
    finally:
        minibert_ner.export_onnx(distilbert, exported)


def test_serve_takes_an_export(exported, distilbert) -> None:
    pytest.importorskip("uvicorn", reason="pip install 'minibert-ner[serve]'")
    from .helpers.server import post_json, request, serve_process

    text = "EU rejects German call to boycott British lamb . Peter Blackburn in Brussels"
    with serve_process("--model", str(exported)) as (url, process):
        status, body = post_json(
            url, {"inputs": text, "parameters": {"aggregation_strategy": "max"}}
        )
        assert status == 200
        assert_same_entities(
            [body], [minibert_ner.pipeline(distilbert)(text, aggregation_strategy="max")]
        )
        status, _, info = request(url, path="/info")
        assert status == 200 and json.loads(info)["family"] == "distilbert"
        process.terminate()
        assert process.wait(30) == 0


def test_the_runners_batching_is_packings() -> None:
    """runner.py carries a marked copy of packing.length_groups (packing imports torch; the
    runner must not): its constants are the same too (test_copies checks the function)."""
    from minibert_ner import packing
    from minibert_ner.inference import runner

    assert (runner.PADDING_FRACTION, runner.PADDING_SLACK) == (
        packing.PADDING_FRACTION,
        packing.PADDING_SLACK,
    )
