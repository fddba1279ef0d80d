"""Records per second of `minibert-ner batch`, local engine against Ray Data, on this machine.

    python scripts/batch_throughput.py [--model M] [--data test.txt] [--files 4]

The CoNLL test sentences (words joined by spaces, one text a line) are split over `--files` text
files and labelled by the command, each configuration in a fresh process into a fresh output
folder: the local engine (torch's default threads, and one thread), and Ray with actors of 1 CPU
(as many as the machine has CPUs) and one actor holding every CPU. Each runs twice, on the whole
corpus and on a few records, so that the fixed cost (process start, model load, Ray start-up)
and the steady rate can be told apart:

    steady records/s = (N - n) / (T_N - T_n)

Default model: dslim/distilbert-NER if it is in the local cache, else a random model of its shape
(as scripts/benchmark.py makes it: the speed is the same, the entities are not).
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

from common import DEFAULT_DATA, default_model, random_model, read_texts

SMALL = 8  # records in the fixed-cost run


def write_corpus(folder: Path, texts: list[str], files: int) -> Path:
    folder.mkdir(parents=True)
    per_file = -(-len(texts) // files)  # ceil
    for i in range(files):
        part = texts[i * per_file : (i + 1) * per_file]
        (folder / f"part-{i}.txt").write_text("".join(t + "\n" for t in part), "utf-8")
    return folder


def run(corpus: Path, out: Path, model: str, extra: list[str], env: dict) -> tuple[float, int]:
    """Seconds from process start to exit, and the records the command reports."""
    argv = [sys.executable, "-m", "minibert_ner", "batch", "--input", str(corpus),
            "--output", str(out), "--model", model, *extra]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    records = int(re.search(r"; (\d+) records = ", done.stdout).group(1))
    return seconds, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="hub id or folder (default: see above)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL file")
    parser.add_argument("--files", type=int, default=4, help="input files to split it into")
    args = parser.parse_args()

    cpus = os.cpu_count() or 1
    texts = read_texts(args.data, None)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or default_model() or str(random_model(tmp / "model"))
        full = write_corpus(tmp / "full", texts, args.files)
        small = write_corpus(tmp / "small", texts[:SMALL], 1)
        ray = ["--engine", "ray", "--num-actors"]
        # name: (command options, environment)
        configs = {
            f"local ({cpus} torch threads)": (["--engine", "local"], {}),
            "local (1 torch thread)": (["--engine", "local"], {"OMP_NUM_THREADS": "1"}),
            f"ray, {cpus} actors x 1 CPU": ([*ray, str(cpus)], {}),
            f"ray, 1 actor x {cpus} CPUs": ([*ray, "1", "--cpus-per-actor", str(cpus)], {}),
        }
        print(f"model {model}; {len(texts)} CoNLL test sentences in {args.files} files; "
              f"{cpus} CPUs", flush=True)  # fmt: skip
        print("| engine | total s | records/s end to end | fixed cost s | steady records/s |")
        print("|---|---|---|---|---|")
        for i, (name, (extra, env)) in enumerate(configs.items()):
            t_small, n_small = run(small, tmp / f"out-small-{i}", model, extra, env)
            t_full, n_full = run(full, tmp / f"out-full-{i}", model, extra, env)
            steady = (n_full - n_small) / (t_full - t_small)
            fixed = t_small - n_small / steady
            print(f"| {name} | {t_full:.1f} | {n_full / t_full:.0f} | {fixed:.1f} | {steady:.0f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
