"""Faults, for real: the batch command killed (SIGKILL) mid-way and started again, a Ray worker
killed mid-run, an output that cannot be written part-way, two runs into one folder at once,
Ctrl-C. Each run is the command in a process of its own; afterwards every record is in the
output exactly once, as an uninterrupted run writes it."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minibert_ner.batch import run_batch
from minibert_ner.batch.folder import JOURNAL
from minibert_ner.cli import main

from .helpers.corpora import assert_same_written, read_jsonl
from .helpers.data import REPO, conll_sentences

FILES, PER_FILE = 16, 100


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faults") / "corpus"
    folder.mkdir()
    sentences = [" ".join(w) for w in conll_sentences("test", limit=FILES * PER_FILE)]
    for i in range(FILES):
        part = sentences[i * PER_FILE : (i + 1) * PER_FILE]
        (folder / f"part-{i:02d}.txt").write_text("\n".join(part) + "\n", "utf-8")
    return folder


@pytest.fixture(scope="module")
def reference(corpus, small_distilbert, tmp_path_factory) -> dict[str, list[dict]]:
    """What an uninterrupted run writes, per output file."""
    out = tmp_path_factory.mktemp("reference")
    run_batch(corpus, out, small_distilbert)
    return written(out)


def written(out: Path) -> dict[str, list[dict]]:
    return {p.name: read_jsonl(p) for p in sorted(out.glob("part-*.jsonl"))}


def start(argv: list[str], **popen) -> subprocess.Popen:
    """`minibert-ner <argv>` in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "minibert_ner", *argv],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip


def wait_for_files(process: subprocess.Popen, out: Path, n: int, timeout: float = 180) -> int:
    """Wait until the run has finished at least `n` files (journal lines); returns how many."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journal = out / JOURNAL
        done = len(journal.read_text().splitlines()) if journal.exists() else 0
        if done >= n:
            return done
        if process.poll() is not None:
            raise AssertionError(f"the run ended first: {process.communicate()}")
        time.sleep(0.005)
    process.kill()
    raise AssertionError(f"no {n} files finished within {timeout} s")


def batch_argv(corpus: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["batch", "--input", str(corpus), "--output", str(out), "--model", str(model), *extra]


# One text per forward pass: the small model then labels slowly enough (seconds) that a fault
# is sure to land while most of the work is still to do.
SLOW = ["--batch-size", "1"]


def assert_every_record_once(out: Path, reference: dict[str, list[dict]]) -> None:
    got = written(out)
    for name, rows in got.items():
        assert [r["line"] for r in rows] == list(range(1, PER_FILE + 1)), name
    assert_same_written(got, reference)
    assert not list(out.rglob("*.tmp")) and not (out / JOURNAL).exists()


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_killed_run_resumes_with_every_record_once(
    request, engine, corpus, small_distilbert, reference, tmp_path
):
    extra = []
    if engine == "ray":
        extra = ["--engine", "ray", "--address", request.getfixturevalue("ray_address"),
                 "--num-actors", "1"]  # fmt: skip
    out = tmp_path / "out"
    process = start(batch_argv(corpus, out, small_distilbert, *extra, *SLOW))
    done = wait_for_files(process, out, 2)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert done <= FILES // 2  # killed mid-way
    # Whatever the kill left (a journal, a temporary file, an output not yet recorded), the
    # next run finishes the job.
    resumed = start(batch_argv(corpus, out, small_distilbert, *extra))
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    skipped = int(stdout.split(" files labelled, ")[1].split(" already done")[0])
    assert done <= skipped < FILES
    assert f"all {FILES} files: {FILES * PER_FILE} records = {FILES * PER_FILE} written" in stdout
    assert_every_record_once(out, reference)


def ray_workers() -> list[int]:
    """Process ids of the Ray actors that label batches (Ray titles them after the operator)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"MapWorker(MapBatches(EntityTagger))" in title:
            found.append(int(pid))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's workers through /proc")
def test_a_killed_ray_worker_is_replaced_and_no_record_is_lost(
    ray_address, corpus, small_distilbert, reference, tmp_path
):
    out = tmp_path / "out"
    process = start(batch_argv(corpus, out, small_distilbert, "--engine", "ray", "--address",
                               ray_address, "--num-actors", "1", *SLOW))  # fmt: skip
    done = wait_for_files(process, out, 1)
    workers = ray_workers()
    assert workers, "no Ray worker found to kill"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
    assert done <= FILES // 2  # most batches were still to label, some on the killed actor
    assert process.returncode == 0, stderr
    assert f"{FILES} files labelled, 0 already done; {FILES * PER_FILE} records" in stdout
    assert_every_record_once(out, reference)


def test_an_output_that_cannot_be_written_leaves_no_file_that_looks_complete(
    tmp_path, small_distilbert
):
    """Files may not grow past 256 KiB in the command's process (RLIMIT_FSIZE, which holds for
    root too): the second input's output outgrows it part-way, as on a full disk."""
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()
    sentences = [" ".join(w) for w in conll_sentences("test", limit=400)]
    (corpus / "a-small.txt").write_text("\n".join(sentences[:10]) + "\n")
    (corpus / "b-large.txt").write_text("\n".join(sentences) + "\n")
    (corpus / "c-small.txt").write_text("\n".join(sentences[10:20]) + "\n")
    limit = 256 * 1024

    def small_files() -> None:  # in the child, before it runs the command
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process = start(batch_argv(corpus, out, small_distilbert), preexec_fn=small_files)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"minibert-ner: error: cannot write {out / 'b-large.jsonl'}: File too large"
    )
    assert "run again to resume" in last and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["a-small.jsonl", "manifest.json"]
    # Room again: the rest is done, the finished file kept.
    summary = run_batch(corpus, out, small_distilbert)
    assert (summary.skipped, summary.files, summary.exit_status) == (1, 2, 0)
    assert len(read_jsonl(out / "b-large.jsonl")) == 400


def test_a_second_run_into_the_same_folder_is_refused(
    corpus, small_distilbert, reference, tmp_path, capsys
):
    out = tmp_path / "out"
    first = start(batch_argv(corpus, out, small_distilbert, *SLOW))
    wait_for_files(first, out, 1)
    assert main(batch_argv(corpus, out, small_distilbert)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"minibert-ner: error: {out} is in use by another minibert-ner batch run; wait for it "
        "to end, or pass another --output"
    ]
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert_every_record_once(out, reference)


def test_ctrl_c_says_how_to_resume(corpus, small_distilbert, reference, tmp_path):
    out = tmp_path / "out"
    process = start(batch_argv(corpus, out, small_distilbert, *SLOW))
    wait_for_files(process, out, 1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert "interrupted: " in last and " files finished and kept" in last
    assert last.endswith("run the same command again to resume (finished files are skipped)")
    resumed = start(batch_argv(corpus, out, small_distilbert))
    resumed.communicate(timeout=300)
    assert resumed.returncode == 0
    assert_every_record_once(out, reference)
