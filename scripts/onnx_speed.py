"""The ONNX engine beside our PyTorch engine and optimum, in one run: speed, memory, start-up.

    python scripts/onnx_speed.py [--limit N] [--rounds R] [--json OUT]   # dslim shape, random
    python scripts/onnx_speed.py --agreement runs/minilm-conll  # int8/fp16 against fp32: labels, F1

Rows, each in its own child process (its peak RSS and start-up its own), on the same texts
(CoNLL-2003 test sentences, words joined by spaces), entities out, aggregation "simple":

- `torch-fp32`, `torch-int8`: `minibert_ner.pipeline(model)`, and with quantize="int8" (torchao);
- `onnx-fp32`, `onnx-optimized`, `onnx-int8`: `minibert_ner.pipeline(export)` on folders written by
  `export_onnx` (plain; `optimize=True`; `optimize=True, quantize="int8"`), no torch imported;
- `optimum-bs1`, `optimum-bs32`: optimum's `ORTModelForTokenClassification` (exported from the same
  folder) in transformers' token-classification pipeline, batch size 1 and 32, run by the Python
  of a separate environment (`--optimum-python`, default /work/venvs/optimum/bin/python: optimum
  pins transformers 4.x).

`startup_s` is process start to the first entity of one sentence (imports, loading, one call);
`seconds` the time over all texts after that (and a warm-up on 64 of them).

The model: a random DistilBERT in dslim/distilbert-NER's shape (6 layers x 768, scripts/common.py)
with all-MiniLM-L6-v2's WordPiece tokenizer. --agreement MODEL instead exports MODEL in float32,
float16 and int8 and reports, on CoNLL test, each one's word labels that equal float32's and its
entity F1 (the PyTorch engine and torchao int8 beside them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()  # before any import: start-up counts from here

from common import DEFAULT_DATA, random_model, read_texts  # noqa: E402

ROWS = ("torch-fp32", "torch-int8", "onnx-fp32", "onnx-optimized", "onnx-int8",
        "optimum-bs1", "optimum-bs32")  # fmt: skip
EXPORTS = {  # row -> export_onnx options
    "onnx-fp32": {},
    "onnx-optimized": {"optimize": True},
    "onnx-int8": {"optimize": True, "quantize": "int8"},
}
SENTENCE = "My name is Wolfgang and I live in Berlin"
OPTIMUM = """
import json, sys, time
t0 = time.perf_counter()
from optimum.onnxruntime import ORTModelForTokenClassification
from transformers import AutoTokenizer, pipeline
folder, texts_file, bs, sentence = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
model = ORTModelForTokenClassification.from_pretrained(folder, export=True)
ner = pipeline("token-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(folder),
               aggregation_strategy="simple")
ner(sentence)
startup = time.perf_counter() - t0
texts = json.load(open(texts_file))
ner(texts[:64], batch_size=bs)
t = time.perf_counter()
entities = ner(texts, batch_size=bs)
seconds = time.perf_counter() - t
print(json.dumps({"startup_s": startup, "seconds": seconds,
                  "entities": sum(map(len, entities)),
                  "peak_rss_mb": [int(l.split()[1]) / 1024 for l in open("/proc/self/status")
                                  if l.startswith("VmHWM:")][0]}))
"""


def peak_rss_mb() -> float:
    """This process's peak resident memory: /proc's VmHWM (getrusage's ru_maxrss survives exec,
    so a child would report its parent's peak when that was higher)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def worker(row: str, folder: str, texts_file: str) -> dict:
    """In a child process: start-up to the first entity, then every text."""
    import minibert_ner

    ner = minibert_ner.pipeline(folder, quantize="int8" if row == "torch-int8" else None)
    ner(SENTENCE)
    result = {"row": row, "startup_s": time.perf_counter() - T0}
    texts = json.loads(Path(texts_file).read_text("utf-8"))
    ner(texts[:64])  # warm-up
    start = time.perf_counter()
    entities = ner(texts)
    result["seconds"] = time.perf_counter() - start
    result["entities"] = sum(map(len, entities))
    result["peak_rss_mb"] = peak_rss_mb()
    result["torch_imported"] = "torch" in sys.modules
    return result


def run_row(row: str, folder: Path, texts_file: Path, optimum_python: str) -> dict:
    if row.startswith("optimum"):
        bs = "1" if row == "optimum-bs1" else "32"
        cmd = [optimum_python, "-c", OPTIMUM, str(folder), str(texts_file), bs, SENTENCE]
    else:
        cmd = [sys.executable, __file__, "--worker", row, str(folder), str(texts_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"row": row, "error": done.stderr.strip().splitlines()[-1][-300:]}
    return {"row": row} | json.loads(done.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace) -> dict:
    import minibert_ner

    work = Path(tempfile.mkdtemp(prefix="onnx_speed_"))
    model = random_model(work / "model")  # dslim shape
    texts = read_texts(args.data, args.limit)
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(texts), "utf-8")
    folders = {row: model for row in ROWS}
    for row, options in EXPORTS.items():
        start = time.perf_counter()
        minibert_ner.export_onnx(model, work / row, **options)
        print(f"export {row}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        folders[row] = work / row
    # Rows take turns, round after round; each row keeps its fastest round (the machine is
    # shared: the minimum is the run least disturbed). optimum's rows run once (slow to start).
    best: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for row in args.rows:
            if round_ and row.startswith("optimum"):
                continue
            result = run_row(row, folders[row], texts_file, args.optimum_python)
            print(json.dumps(result), file=sys.stderr)
            if row not in best or result.get("seconds", 1e9) < best[row].get("seconds", 1e9):
                best[row] = result
    return {"texts": len(texts), "rounds": args.rounds, "rows": [best[row] for row in args.rows]}


def agreement(args: argparse.Namespace) -> dict:
    """Word labels of each form against float32's (PyTorch engine), and entity F1, on CoNLL."""
    import minibert_ner
    from minibert_ner.training.conll import read_conll
    from minibert_ner.training.metrics import evaluate

    sentences = read_conll(args.data)
    if args.limit:
        sentences = sentences[: args.limit]
    words = [s.words for s in sentences]
    work = Path(tempfile.mkdtemp(prefix="onnx_agreement_"))
    forms = {
        "torch-fp32": (args.agreement, {}),
        "torch-int8": (args.agreement, {"quantize": "int8"}),
        "onnx-fp32": (work / "fp32", {}),
        "onnx-fp16": (work / "fp16", {}),
        "onnx-int8": (work / "int8", {}),
    }
    minibert_ner.export_onnx(args.agreement, work / "fp32")
    minibert_ner.export_onnx(args.agreement, work / "fp16", dtype="float16")
    minibert_ner.export_onnx(args.agreement, work / "int8", optimize=True, quantize="int8")
    labels, report = {}, {"model": str(args.agreement), "sentences": len(sentences)}
    for name, (folder, options) in forms.items():
        ner = minibert_ner.pipeline(folder, **options)
        labels[name] = ner.label_words(words)
        report[name] = {"f1": evaluate([s.labels for s in sentences], labels[name]).f1}
    reference = labels["torch-fp32"]
    total = sum(map(len, reference))
    for name in forms:
        same = sum(
            a == b
            for x, y in zip(labels[name], reference, strict=True)
            for a, b in zip(x, y, strict=True)
        )
        report[name]["labels_equal"] = same / total
        report[name]["f1_vs_fp32"] = evaluate(reference, labels[name]).f1
    return report


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(*sys.argv[2:5])))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL file (default: test)")
    p.add_argument("--limit", type=int, help="only the first N sentences")
    p.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="rows to run")
    p.add_argument("--rounds", type=int, default=1, help="turns per row; each keeps its best")
    p.add_argument("--optimum-python", default="/work/venvs/optimum/bin/python")
    p.add_argument("--agreement", type=Path, help="a trained model: agreement instead of speed")
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args()
    report = agreement(args) if args.agreement else speed(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    main()
