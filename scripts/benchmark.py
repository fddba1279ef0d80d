"""Speed, load time and memory of minibert-ner beside transformers, in one run.

    python scripts/benchmark.py --data ../shared/data/conll2003/test.txt [--limit N] [--json OUT]
    python scripts/benchmark.py --family roberta   # a RoBERTa-shape model (byte-level BPE)
    python scripts/benchmark.py --startup          # CLI start-up: process start to first output

Each engine runs in its own child process (so that its peak RSS and load time are its own), on the
same texts (CoNLL sentences, words joined by spaces), after a warm-up:

- `forward`: our bare model forward pass on length-sorted batches of the tokenized texts (the floor
  for any pipeline: no tokenization, no decoding);
- `ours`: `minibert_ner.pipeline` end to end, text in, entities out;
- `hf-bs1`, `hf-bs32`: transformers' token-classification pipeline, batch_size 1 and 32.

FLOPs are counted per wordpiece from the shapes (projections, feed-forward, attention scores), and
the machine's fp32 matmul ceiling is measured, so that GFLOP/s can be read against what is possible.
Default model: dslim/distilbert-NER if it is in the local cache, else a random model of its shape
(with all-MiniLM-L6-v2's WordPiece vocabulary, the cased one being unavailable offline);
`--family roberta`: a random model in the roberta-base shape with a byte-level BPE vocabulary
learnt from CoNLL-2003 train.
`--family deberta-v3`: a random DeBERTa-v3 in the deberta-v3-base shape, built by transformers,
with MiniLM's WordPiece vocabulary (its relative-position terms counted in the FLOPs).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, default_model, random_deberta_model, random_model, read_texts


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def flops_per_sequence(config, T: int) -> float:
    """Forward FLOPs of one sequence of T wordpieces (multiply-add = 2 FLOPs)."""
    H, I, L = config.hidden_size, config.intermediate_size, config.num_layers
    per_token = L * (4 * 2 * H * H + 2 * 2 * H * I + 2 * 2 * T * H) + 2 * H * config.num_labels
    flops = per_token * T
    if config.model_type == "deberta-v2" and config.relative_attention:
        # c2p and p2c: every query (key) against the relative rows its distances reach (at most
        # 2T - 1); the rows' projection, once per batch, is left out as batch overhead.
        rows, terms = min(2 * T - 1, 2 * config.relative_span), len(config.pos_att_type)
        flops += L * terms * 2 * T * rows * H
    return flops


def matmul_ceiling() -> float:
    """fp32 GFLOP/s of a large matmul of the model's shape on this machine, current threads."""
    import torch

    a, b = torch.randn(4096, 768), torch.randn(768, 3072)
    for _ in range(3):
        a @ b
    n, t0 = 20, time.perf_counter()
    for _ in range(n):
        a @ b
    return n * 2 * 4096 * 768 * 3072 / (time.perf_counter() - t0) / 1e9


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def worker(engine: str, model: str, texts: list[str], batch_size: int) -> dict:
    """Runs in a child process: load, warm up, time one engine over all texts."""
    import torch

    result: dict = {"engine": engine, "threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    if engine in ("ours", "ours-int8", "forward"):
        from minibert_ner import pipeline

        ner = pipeline(model, quantize="int8" if engine == "ours-int8" else None)
        result["load_s"] = time.perf_counter() - t0
        if engine != "forward":
            ner(texts[:64])  # warm-up
            result["seconds"] = timed(lambda: ner(texts))
        else:
            tok, net = ner.tokenizer, ner.model
            enc = sorted(tok.encode_batch(texts), key=lambda e: len(e.ids))
            batches = [
                tok.to_tensors(enc[i : i + batch_size]) for i in range(0, len(enc), batch_size)
            ]
            result["wordpieces"] = sum(len(e.ids) for e in enc)
            result["flops"] = sum(flops_per_sequence(net.config, len(e.ids)) for e in enc)

            def run() -> None:
                with torch.inference_mode():
                    for b in batches:
                        net(**b)

            with torch.inference_mode():
                net(**batches[0])  # warm-up
            result["seconds"] = timed(run)
    else:
        from transformers import pipeline as hf_pipeline

        bs = 1 if engine == "hf-bs1" else 32
        hf = hf_pipeline("token-classification", model=model, aggregation_strategy="simple")
        result["load_s"] = time.perf_counter() - t0
        hf(texts[:64], batch_size=bs)
        result["seconds"] = timed(lambda: hf(texts, batch_size=bs))
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def run_child(engine: str, model: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", engine, "--model", model, "--data", str(args.data)]
    cmd += ["--batch-size", str(args.batch_size)] + (
        ["--limit", str(args.limit)] if args.limit else []
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def startup(model: str, repeat: int) -> dict:
    """Process start to printed entities for one sentence: our CLI vs transformers' pipeline."""
    sentence = "My name is Wolfgang and I live in Berlin"
    ours = [sys.executable, "-m", "minibert_ner", "--model", model, sentence]
    hf_code = (
        "import sys; from transformers import pipeline; "
        f"print(pipeline('token-classification', model={model!r}, "
        f"aggregation_strategy='simple')({sentence!r}))"
    )
    theirs = [sys.executable, "-c", hf_code]
    out = {}
    for name, cmd in (("ours", ours), ("transformers", theirs)):
        subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
        out[name] = timed(lambda c=cmd: subprocess.run(c, capture_output=True, check=True), repeat)
    out["ratio"] = out["transformers"] / out["ours"]
    return out


def agreement(model: str, data: Path, limit: int | None) -> dict:
    """int8 against float32 on a CoNLL file: word-label agreement and both F1 scores."""
    from minibert_ner import pipeline
    from minibert_ner.training.conll import read_conll
    from minibert_ner.training.metrics import evaluate

    sentences = read_conll(data)[:limit]
    words, gold = [s.words for s in sentences], [s.labels for s in sentences]
    out: dict = {}
    for name, quantize in (("float32", None), ("int8", "int8")):
        ner = pipeline(model, quantize=quantize)
        t0 = time.perf_counter()
        pred = ner.label_words(words)
        report = evaluate(gold, pred)
        out[name] = {"seconds": time.perf_counter() - t0, "f1": report.f1, "labels": pred}
    same = sum(
        a == b
        for x, y in zip(out["float32"]["labels"], out["int8"]["labels"], strict=True)
        for a, b in zip(x, y, strict=True)
    )
    total = sum(len(x) for x in words)
    for name in ("float32", "int8"):
        del out[name]["labels"]
    out["word_label_agreement"] = same / total
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=None, help="model id or folder (default: see above)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL file (default: test)")
    p.add_argument("--limit", type=int, default=None, help="first N sentences only")
    p.add_argument("--batch-size", type=int, default=32, help="texts per batch for `forward`")
    p.add_argument("--engines", default="forward,ours,hf-bs1,hf-bs32")
    p.add_argument(
        "--family",
        choices=("distilbert", "roberta", "deberta-v3"),
        default="distilbert",
        help="the random model's family and shape when no --model is given: dslim/distilbert-NER "
        "(WordPiece), roberta-base (byte-level BPE learnt from CoNLL train) or deberta-v3-base",
    )
    p.add_argument("--startup", action="store_true", help="measure CLI start-up instead")
    p.add_argument(
        "--agreement", action="store_true", help="int8 vs float32 labels and F1 on --data instead"
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        texts = read_texts(args.data, args.limit)
        print(json.dumps(worker(args.worker, args.model, texts, args.batch_size)))
        return

    tmp = tempfile.TemporaryDirectory()
    shapes = {"distilbert": "dslim/distilbert-NER", "roberta": "roberta-base",
              "deberta-v3": "deberta-v3-base"}  # fmt: skip
    named = args.model or (default_model() if args.family == "distilbert" else "")
    if named:
        model = named
    elif args.family == "deberta-v3":
        model = str(random_deberta_model(Path(tmp.name)))
    else:
        model = str(random_model(Path(tmp.name), family=args.family))
    report: dict = {"model": named or f"random {shapes[args.family]} shape"}
    if args.startup:
        report["startup_s"] = startup(model, repeat=3)
        print(json.dumps(report, indent=2))
    elif args.agreement:
        report["agreement"] = agreement(model, args.data, args.limit)
        print(json.dumps(report, indent=2))
    else:
        report["matmul_ceiling_gflops"] = matmul_ceiling()
        report["sentences"] = len(read_texts(args.data, args.limit))
        engines = [e for e in args.engines.split(",") if e]
        results = {e: run_child(e, model, args) for e in engines}
        report["engines"] = results
        fwd = results.get("forward")
        print(f"model: {report['model']}; {report['sentences']} sentences")
        print(f"fp32 matmul ceiling: {report['matmul_ceiling_gflops']:.0f} GFLOP/s")
        print(f"{'engine':<10}{'seconds':>9}{'sent/s':>9}{'wp/s':>9}{'GFLOP/s':>9}"
              f"{'x forward':>11}{'load s':>8}{'peak MB':>9}")  # fmt: skip
        for name, r in results.items():
            sps = report["sentences"] / r["seconds"]
            wps = fwd["wordpieces"] / r["seconds"] if fwd else float("nan")
            gf = fwd["flops"] / r["seconds"] / 1e9 if fwd else float("nan")
            rel = r["seconds"] / fwd["seconds"] if fwd else float("nan")
            r.update(sentences_per_s=sps, wordpieces_per_s=wps, gflops=gf, vs_forward=rel)
            print(f"{name:<10}{r['seconds']:>9.2f}{sps:>9.1f}{wps:>9.0f}{gf:>9.1f}"
                  f"{rel:>10.2f}x{r['load_s']:>8.2f}{r['peak_rss_mb']:>9.0f}")  # fmt: skip
        if "ours" in results:
            for hf in ("hf-bs1", "hf-bs32"):
                if hf in results:
                    ratio = results[hf]["seconds"] / results["ours"]["seconds"]
                    report[f"speedup_vs_{hf}"] = ratio
                    print(f"ours is {ratio:.2f}x faster than transformers {hf}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    tmp.cleanup()


if __name__ == "__main__":
    main()
