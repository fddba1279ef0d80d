"""The command line as users run it: the `minibert-ner` console script and `python -m
minibert_ner`, each in a subprocess; output compared with the Python API on the same model."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import torch

import minibert_ner

from .helpers.assertions import assert_same_entities
from .helpers.checkpoints import CALIBRATION_TEXTS
from .helpers.cli import run_in_process

SCRIPT = Path(sys.executable).parent / "minibert-ner"
TEXTS = ["My name is Wolfgang and I live in Berlin.", "Jean-Baptiste 😀 Zürich", "", "北京 ok"]


def cli(
    *args: str, stdin: bytes | None = None, module: bool = False, stderr: int | None = None
) -> subprocess.CompletedProcess:
    if not module and not SCRIPT.is_file():
        pytest.skip(f"console script {SCRIPT} not installed (pip install -e .)")
    command = [sys.executable, "-m", "minibert_ner"] if module else [str(SCRIPT)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # never reach out to the hub from tests
    return subprocess.run(
        command + list(args),
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr is None else stderr,
        env=env,
        timeout=600,
    )


def records(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode("utf-8").splitlines()]


@pytest.fixture(scope="module")
def ner(ner_model_dir):
    return minibert_ner.pipeline(ner_model_dir)


def test_texts_as_arguments(ner, ner_model_dir) -> None:
    r = cli("-m", str(ner_model_dir), "--format", "jsonl", "-a", "first", *TEXTS)
    assert r.returncode == 0, r.stderr
    assert b"\r" not in r.stderr  # no progress bar: stderr is not a terminal (nor are these files)
    got = records(r.stdout)
    assert [x["text"] for x in got] == TEXTS
    expected = ner(TEXTS, aggregation_strategy="first")
    assert assert_same_entities([x["entities"] for x in got], expected, "cli") >= 3


def test_standard_input_one_text_per_line(ner, ner_model_dir) -> None:
    lines = ["EU rejects German call", "", "line with\x00NUL and \x07 bell", "Peter 😀 Blackburn"]
    data = ("\ufeff" + "\n".join(lines[:2]) + "\r\n" + "\n".join(lines[2:]) + "\n").encode()
    r = cli("-m", str(ner_model_dir), "--format", "json", stdin=data, module=True)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert [x["text"] for x in got] == lines  # byte-order mark and line endings gone
    assert_same_entities([x["entities"] for x in got], ner(lines), "stdin")


def test_file_as_table_and_conll(ner, ner_model_dir, tmp_path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n", "utf-8")
    table = cli("-m", str(ner_model_dir), "--file", str(path), "--format", "table")
    assert table.returncode == 0, table.stderr
    out = table.stdout.decode()
    for text, entities in zip(TEXTS, ner(TEXTS), strict=True):
        assert " ".join(text.split()) in out
        for e in entities:
            assert f"{e['start']}:{e['end']}  {e['word']}" in out
    assert "(no entities)" in out  # the empty line

    conll = cli("-m", str(ner_model_dir), "--file", str(path), "--format", "conll")
    assert conll.returncode == 0, conll.stderr
    blocks = conll.stdout.decode().split("\n\n")
    expected = ner.label_words([text.split() for text in TEXTS])
    got = [[line.split(" ")[1] for line in block.splitlines()] for block in blocks[:2]]
    assert got == expected[:2]


def test_document_is_one_text(ner, ner_model_dir, tmp_path) -> None:
    text = "\n".join(CALIBRATION_TEXTS * 40) + "\n"  # ~2000 tokens: several windows
    path = tmp_path / "document.txt"
    path.write_text(text, "utf-8")
    r = cli("-m", str(ner_model_dir), "--file", str(path), "--document", "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    [got] = records(r.stdout)
    assert got["text"] == text
    assert_same_entities([got["entities"]], [ner(text)], "document")
    assert got["entities"][-1]["end"] > len(text) - 100


def test_one_megabyte_line(ner_model_dir, tmp_path) -> None:
    line = " ".join(CALIBRATION_TEXTS)
    line = " ".join([line] * (1_000_000 // len(line) + 1))
    path = tmp_path / "big.txt"
    path.write_text(line + "\n", "utf-8")
    r = cli(
        "-m", str(ner_model_dir), "--file", str(path), "--format", "jsonl", "--batch-size", "64"
    )
    assert r.returncode == 0, r.stderr
    [got] = records(r.stdout)
    assert got["text"] == line and len(line) > 1_000_000
    spans = [(e["start"], e["end"]) for e in got["entities"]]
    assert all(a < b <= c for (a, b), (c, _) in pairwise([*spans, (len(line), 0)]))
    assert len(spans) > 10_000 and spans[-1][1] > len(line) - 200  # labelled to the very end


def test_text_equal_to_a_subcommand_name(ner_model_dir) -> None:
    r = cli("-m", str(ner_model_dir), "--", "inspect")
    assert r.returncode == 0, r.stderr
    assert records(r.stdout)[0]["text"] == "inspect"


def test_progress_bar_when_stderr_is_a_terminal(ner_model_dir) -> None:
    master, slave = pty.openpty()
    try:
        data = ("\n".join(CALIBRATION_TEXTS * 5) + "\n").encode()
        r = cli("-m", str(ner_model_dir), "--format", "jsonl", stdin=data, stderr=slave)
        os.close(slave)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # Linux: EIO once the terminal's other end is closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    assert r.returncode == 0
    assert b"30 texts" in shown and b"/s" in shown
    assert len(records(r.stdout)) == 30  # the bar never mixes into the output


def test_closed_output_pipe_is_not_an_error(ner_model_dir) -> None:
    command = f"yes 'Berlin is big' | head -n 5000 | '{SCRIPT}' -m '{ner_model_dir}' | head -n 1"
    r = subprocess.run(["sh", "-c", command], capture_output=True, timeout=600)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    assert b"Traceback" not in r.stderr and b"Error" not in r.stderr, r.stderr


def errors() -> list[tuple[list[str], bytes, str]]:
    """(arguments, stdin, what the message must say)."""
    cases = [
        (["--file", "{missing}"], b"", "cannot read"),
        (["--file", "{bad_utf8}"], b"", "line 3: invalid UTF-8"),
        (["--document"], b"fine\nstill fine\n\xff\xfe oops\n", "line 3: invalid UTF-8"),
        (["--model", "no-such/model-anywhere", "text"], b"", "not in the local Hugging Face cache"),
        (["--model", "{missing}", "text"], b"", "no folder"),
        (["--format", "conll", "--aggregation", "max", "text"], b"", "does not apply"),
        (["--file", "{bad_utf8}", "text"], b"", "not both"),
        (["fine", "bad \udcff"], b"", "argument 2 is not valid UTF-8"),  # argv byte 0xff
        (["--batch-size", "0", "text"], b"", "must be at least 1"),
        (["--aggregation", "best", "text"], b"", "invalid choice"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda", "text"], b"", "no CUDA GPU"))
    return cases


@pytest.mark.parametrize("args, stdin, message", errors(), ids=lambda x: str(x)[:40])
def test_errors_are_one_line_and_non_zero(
    args, stdin, message, ner_model_dir, tmp_path, monkeypatch, capsys
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nanother\nbroken \xc3\x28 here\n")
    paths = {"missing": tmp_path / "missing.txt", "bad_utf8": bad}
    args = [a.format(**paths) for a in args]
    if "--model" not in args:
        args = ["--model", str(ner_model_dir), *args]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_in_process(args, capsys, stdin, monkeypatch)
    lines = err.strip().splitlines()
    assert code == 2, lines
    assert lines[-1].startswith("minibert-ner: error:") and message in lines[-1], lines
    assert len(lines) == 1, lines
    if message in ("line 3: invalid UTF-8", "not in the local Hugging Face cache"):
        r = cli(*args, stdin=stdin)  # and the real console script says the same
        assert r.returncode == 2 and r.stderr.decode().strip().splitlines() == lines


def test_quantize_is_a_label_option() -> None:
    from minibert_ner.cli import build_parser
    from minibert_ner.cli.options import pipeline_options

    parser = build_parser("label")
    args = parser.parse_args(["--quantize", "int8", "text"])
    assert pipeline_options(args).quantize == "int8"
    assert pipeline_options(parser.parse_args(["text"])).quantize is None  # exact by default


def test_evaluate_checks_its_batch_size(tmp_path, monkeypatch, capsys) -> None:
    args = ["evaluate", "--model", "unused", "--data", str(tmp_path / "unused.conll")]
    code, _, err = run_in_process([*args, "--batch-size", "0"], capsys)
    lines = err.strip().splitlines()
    assert code == 2, lines
    error = "minibert-ner evaluate: error: argument --batch-size: must be at least 1, got 0"
    assert lines == [f"{error} (see minibert-ner evaluate --help)"]
