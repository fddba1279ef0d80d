"""The batch command over many small files: how its cost per file grows with the number of files,
for this checkout and, side by side in the same run, for an earlier revision.

    python scripts/many_files.py --files 1000 10000 --before c26d686

Each size N makes N text files of one CoNLL test sentence each (cycling through the sentences)
and runs `python -m minibert_ner batch --input corpus --output out` on them, local engine, in a
fresh process into a fresh output folder, once per version. `--before REV` extracts that
revision (`git archive`) and runs it the same way (PYTHONPATH first, so that its package is the
one imported). A job whose cost per file is constant shows the same ms/file at every N; one
that rewrites a growing manifest after each file shows ms/file growing with N.

The model is a small random DistilBERT (64 wide, 2 layers, MiniLM's tokenizer), so that the
job's own cost per file shows rather than the model's; `--model` names another.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, REPO, random_model, read_texts


def write_files(folder: Path, texts: list[str], n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"doc-{i:06d}.txt").write_text(texts[i % len(texts)] + "\n", "utf-8")
    return folder


def run(code: Path, corpus: Path, out: Path, model: str) -> tuple[float, str]:
    """Seconds from process start to exit, and the command's last line."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "minibert_ner", "batch", "--input", str(corpus),
            "--output", str(out), "--model", model]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=code)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--before", metavar="REV", help="also run this git revision")
    parser.add_argument("--model", help="hub id or folder (default: a small random model)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL file")
    args = parser.parse_args()

    texts = read_texts(args.data, None)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or str(random_model(tmp / "model", small=True))
        versions = {"this checkout": REPO}
        if args.before:
            before = tmp / "before"
            before.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.before], capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
            versions = {f"before ({args.before})": before, **versions}
        print(f"local engine, 1 torch thread; model {'small random' if not args.model else model}")
        print("| files | version | seconds | ms per file | last line |")
        print("|---|---|---|---|---|")
        for n in args.files:
            corpus = write_files(tmp / f"corpus-{n}", texts, n)
            for name, code in versions.items():
                out = tmp / f"out-{n}-{len(name)}"
                seconds, last = run(code, corpus, out, model)
                records = re.search(r"(\d+) records = ", last)
                assert records and int(records.group(1)) == n, last
                print(f"| {n:,} | {name} | {seconds:.1f} | {1000 * seconds / n:.2f} | {last} |",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
