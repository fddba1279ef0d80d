"""The offline pipeline of this checkout beside another checkout's, in one run: is a change slower?

    git worktree add /tmp/base main~1                      # the code to compare against
    python scripts/compare_checkouts.py --base /tmp/base [--shape dslim] [--texts 1000] [--rounds 5]

Each round runs `ner(texts)` (CoNLL-2003 test sentences, words joined by spaces) once per
checkout, each in a fresh child process whose `PYTHONPATH` is that checkout, on the same random
model (the --shape of scripts/serve_load.py, built once here) after a warm-up; the order of the two
alternates from round to round, so that a machine whose load drifts favours neither. Each child
also labels the texts one call per text (`ner(text)`, the first --single of them), the path a
lone request takes. Reported: each round's seconds and the median ratio this / base (below 1:
this checkout is faster). The entities of both checkouts are compared (exactly: labels, words,
offsets; scores within 1e-6), and so is the tensor work, which no load on the machine changes:
every aten operation the pipeline runs, with its input shapes, over the first 100 texts in one
call and the first 10 one by one (counted with a TorchDispatchMode).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, REPO, SHAPES, random_model, read_texts


def tensor_work(ner, texts: list[str]) -> list[tuple[str, tuple]]:
    """Every aten operation (with its tensor inputs' shapes) of ner(texts[:100]) and of ner(text)
    for the first 10 texts."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[tuple[str, tuple]] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
            self.ops.append((str(func), shapes))
            return func(*args, **(kwargs or {}))

    with Record() as record:
        ner(texts[:100])
        for text in texts[:10]:
            ner(text)
    return record.ops


def worker(model: str, data: Path, texts: int, single: int, out: Path) -> None:
    """In the child: time ner(texts) and ner(text) per text; write the timings, entities and
    tensor work."""
    import torch

    import minibert_ner

    torch.manual_seed(0)
    sentences = read_texts(data, texts)
    ner = minibert_ner.pipeline(model, device="cpu")
    ner(sentences[:64])  # warm-up
    start = time.perf_counter()
    batched = ner(sentences)
    batch_s = time.perf_counter() - start
    start = time.perf_counter()
    for text in sentences[:single]:
        ner(text)
    single_s = time.perf_counter() - start
    out.write_text(
        json.dumps(
            {
                "package": str(Path(minibert_ner.__file__).parent),
                "batch_s": batch_s,
                "single_s": single_s,
                "entities": batched,
                "tensor_work": tensor_work(ner, sentences),
            }
        )
    )


def run_child(checkout: Path, args: argparse.Namespace, model: str, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    subprocess.run(
        [sys.executable, __file__, "--worker", model, "--texts", str(args.texts),
         "--single", str(args.single), "--data", str(args.data), "--out", str(out)],
        env=env, check=True, cwd=checkout,
    )  # fmt: skip
    result = json.loads(out.read_text())
    if Path(result["package"]) != checkout / "minibert_ner":
        raise SystemExit(f"the child imported {result['package']}, not {checkout}'s package")
    return result


def same_entities(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if [{k: v for k, v in e.items() if k != "score"} for e in x] != [
            {k: v for k, v in e.items() if k != "score"} for e in y
        ]:
            return False
        if any(abs(e["score"] - f["score"]) > 1e-6 for e, f in zip(x, y, strict=True)):
            return False
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", type=Path, help="the other checkout (a git worktree)")
    p.add_argument("--shape", choices=sorted(SHAPES), default="dslim")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL file (default: test)")
    p.add_argument("--texts", type=int, default=1000, help="sentences per batched call")
    p.add_argument("--single", type=int, default=200, help="sentences labelled one call each")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.texts, args.single, args.out)
        return
    if args.base is None:
        p.error("--base is required")

    this, base = REPO.resolve(), args.base.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        model = str(random_model(Path(tmp) / "model", shape=args.shape))
        rows, agree, same_work = [], True, True
        for r in range(args.rounds):
            order = [("this", this), ("base", base)][:: 1 if r % 2 == 0 else -1]
            got = {name: run_child(path, args, model, Path(tmp) / f"{name}.json")
                   for name, path in order}  # fmt: skip
            agree = agree and same_entities(got["this"]["entities"], got["base"]["entities"])
            same_work = same_work and got["this"]["tensor_work"] == got["base"]["tensor_work"]
            work = len(got["this"]["tensor_work"]), len(got["base"]["tensor_work"])
            rows.append({name: {k: got[name][k] for k in ("batch_s", "single_s")} for name in got})
            t, b = rows[-1]["this"], rows[-1]["base"]
            print(
                f"round {r + 1}: ner(texts) this {t['batch_s']:.2f} s, base {b['batch_s']:.2f} s;"
                f" ner(text) x{args.single} this {t['single_s']:.2f} s, base {b['single_s']:.2f} s",
                flush=True,
            )
    for key, what in (("batch_s", f"ner(texts), {args.texts} sentences"),
                      ("single_s", f"ner(text), {args.single} calls")):  # fmt: skip
        ratio = statistics.median(row["this"][key] / row["base"][key] for row in rows)
        print(f"{what}: this / base = {ratio:.3f} (median of {args.rounds} rounds)")
    print(f"entities equal: {agree}")
    print(f"tensor work equal: {same_work} (this {work[0]}, base {work[1]} aten operations)")


if __name__ == "__main__":
    main()
