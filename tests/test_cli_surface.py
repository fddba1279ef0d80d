"""The command line's surface as a new user meets it: subcommands, help, flags that agree across
subcommands, and a table of the failures a user can cause or meet, each ending in one line and
its exit status, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert_ner.cli import SUBCOMMANDS, build_parser, split_command
from minibert_ner.cli.options import FORMATS, LOADING_FIELDS, PIPELINE_FLAGS

from .helpers.checkpoints import CALIBRATION_TEXTS
from .helpers.cli import run_in_process

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def run_cli(*args: str, stdin: bytes = b"", timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "minibert_ner", *args],
        input=stdin,
        capture_output=True,
        env=ENV,
        timeout=timeout,
    )


# --- subcommands and help -------------------------------------------------------------------


def test_help_and_version_import_no_torch():
    """--help (of the command and of every subcommand) and --version answer without torch."""
    code = (
        "import sys\n"
        "from minibert_ner.cli import main\n"
        "for args in [['--help'], ['--version'], *[[n, '--help'] for n in sys.argv[1:]]]:\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (args, e.code)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "import minibert_ner\n"
        "assert 'torch' not in sys.modules, 'import minibert_ner imported torch'\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, *SUBCOMMANDS], capture_output=True, env=ENV, timeout=120
    )
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    from minibert_ner import __version__

    assert f"minibert-ner {__version__}" in out


def test_help_lists_every_subcommand_with_one_line(capsys):
    code, out, _ = run_in_process(["--help"], capsys)
    assert code == 0
    listed = out[out.index("subcommands") :].splitlines()[1:]
    assert [line.split()[0] for line in listed] == list(SUBCOMMANDS)
    assert all(len(line.split()) > 3 for line in listed)  # a description each
    for name in SUBCOMMANDS:
        code, out, _ = run_in_process([name, "--help"], capsys)
        assert code == 0 and out.startswith(f"usage: minibert-ner {name}")


def test_every_option_shows_its_default_or_needs_none():
    for name in SUBCOMMANDS:
        parser = build_parser(name)
        shown = parser._get_formatter()._get_help_string  # the help as --help prints it
        for action in parser._actions:
            if not action.option_strings or action.required or action.nargs == 0:
                continue  # positional, required, a switch, --help / --version
            assert "default" in shown(action), (name, action.option_strings)


# concept -> the option strings it has wherever it appears
SHARED_FLAGS = {
    "model": ["-m", "--model"],
    "output": ["-o", "--output"],
    "format": ["--format"],
    **{field: list(PIPELINE_FLAGS[field][0]) for field in PIPELINE_FLAGS},
}


def test_the_same_thing_has_the_same_flag_in_every_subcommand():
    for name in SUBCOMMANDS:
        parser = build_parser(name)
        by_dest = {a.dest: a for a in parser._actions if a.option_strings}
        assert "model" in by_dest and by_dest["model"].option_strings == ["-m", "--model"], name
        for dest, action in by_dest.items():
            if dest in SHARED_FLAGS:
                assert action.option_strings == SHARED_FLAGS[dest], (name, dest)
        for field in LOADING_FIELDS:  # every command that loads a model takes these
            assert field in by_dest, (name, field)
        if "format" in by_dest:
            assert set(by_dest["format"].choices) <= set(FORMATS), name
        # One meaning per short flag across the subcommands.
        for action in by_dest.values():
            for flag in action.option_strings:
                if len(flag) == 2:
                    assert SHORT_FLAGS.setdefault(flag, action.dest) == action.dest, (name, flag)
    defaults = {build_parser(n).get_default("model") for n in SUBCOMMANDS if n != "train"}
    assert defaults == {"dslim/distilbert-NER"}  # train needs a base checkpoint named


SHORT_FLAGS: dict[str, str] = {}


def test_the_serve_flags_take_their_defaults_from_serve_limits():
    """ServeLimits declares the server's limits once; the serve command's flags, their help and
    --batch-wait-ms (in ms, of `batch_wait` in seconds) read them, without the serve extra."""
    from minibert_ner.serve.limits import ServeLimits

    limits, parser = ServeLimits(), build_parser("serve")
    shown = parser._get_formatter()._get_help_string
    actions = {a.dest: a for a in parser._actions}
    for name in ("max_request_bytes", "max_inputs", "max_queue"):
        default = getattr(limits, name)
        assert actions[name].default == default
        assert f"(default: {default})" in shown(actions[name])
    wait = actions["batch_wait_ms"]
    assert wait.default / 1000 == limits.batch_wait and "(default: 10)" in shown(wait)
    args = parser.parse_args([])
    assert args.max_inputs == limits.max_inputs and args.batch_wait_ms == 10.0


@pytest.mark.parametrize(
    "argv, name, rest",
    [
        (["Berlin", "-m", "M", "Paris"], "label", ["Berlin", "-m", "M", "Paris"]),
        (["label", "-m", "M", "x"], "label", ["-m", "M", "x"]),
        (["-m", "M", "evaluate", "--data", "d"], "evaluate", ["-m", "M", "--data", "d"]),
        (
            ["--device", "cpu", "-m", "M", "inspect", "t"],
            "inspect",
            ["--device", "cpu", "-m", "M", "t"],
        ),
        (["--file", "evaluate"], "label", ["--file", "evaluate"]),  # a value, not a subcommand
        (["--", "evaluate"], "label", ["--", "evaluate"]),
        (["--compile", "train", "--help"], "train", ["--compile", "--help"]),
        (["--stride=4", "batch"], "batch", ["--stride=4"]),
    ],
)
def test_the_subcommand_is_found_wherever_it_is(argv, name, rest):
    assert split_command(argv) == (name, rest)


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(st.text(min_size=1).filter(lambda t: not t.startswith("-")), max_size=4),
    cut=st.integers(0, 4),
)
def test_texts_and_options_mix_in_any_order(texts, cut):
    """However texts and options are interleaved, the parse is the same."""
    options = ["-m", "M", "--stride", "7", "-a", "first"]
    argv = texts[:cut] + options[:2] + texts[cut:] + options[2:]
    name, rest = split_command(argv)
    if texts and texts[0] in SUBCOMMANDS:
        return  # the first word names a subcommand: `--` would make it a text
    assert name == "label"
    args = build_parser("label").parse_intermixed_args(rest)
    assert args.texts == texts and args.model == "M" and args.stride == 7
    assert args.aggregation_strategy == "first"


def test_label_is_a_subcommand_reading_stdin_and_files(
    ner_model_dir, tmp_path, capsys, monkeypatch
):
    m = str(ner_model_dir)
    code, out, err = run_in_process(
        ["label", "-m", m, "--format", "jsonl"], capsys, b"Berlin\n", monkeypatch
    )
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["Berlin"]
    path = tmp_path / "t.txt"
    path.write_text("Paris\nRome\n", "utf-8")
    code, out, err = run_in_process(
        ["label", "--file", str(path), "-m", m, "--format", "jsonl"], capsys
    )
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["Paris", "Rome"]
    code, out, err = run_in_process(["Berlin", "-m", m, "Paris", "--format", "jsonl"], capsys)
    assert code == 0 and [json.loads(x)["text"] for x in out.splitlines()] == ["Berlin", "Paris"]


def test_output_file_is_complete_and_format_follows_its_suffix(ner_model_dir, tmp_path, capsys):
    out_path = tmp_path / "deep" / "er" / "out.json"
    code, out, err = run_in_process(
        ["-m", str(ner_model_dir), "-o", str(out_path), "A", "B"], capsys
    )
    assert code == 0 and out == "", err
    assert [r["text"] for r in json.loads(out_path.read_text("utf-8"))] == ["A", "B"]
    assert [p.name for p in out_path.parent.iterdir()] == ["out.json"]  # no temporary left


def test_json_lines_never_split_on_unicode_line_breaks(ner_model_dir, capsys):
    text = "Berlin\u2028Paris\u2029Rome\x85Oslo"
    code, out, _ = run_in_process(["-m", str(ner_model_dir), "--format", "jsonl", text], capsys)
    assert code == 0 and len(out.splitlines()) == 1 and json.loads(out)["text"] == text


def test_table_shows_control_characters_escaped(ner_model_dir, capsys):
    text = "Berlin \x1b[2J\x1b]0;title\x07 \u202eevil \r done"
    code, out, _ = run_in_process(["-m", str(ner_model_dir), "--format", "table", text], capsys)
    assert code == 0
    assert not any(c in out for c in "\x1b\x07\r\u202e"), out
    assert "\\x1b[2J" in out and "\\u202e" in out


# --- failures: one line each, the documented exit status, never a traceback ------------------


@pytest.fixture(scope="module")
def broken_models(ner_model_dir, tmp_path_factory) -> dict[str, Path]:
    """Copies of the test model whose config.json has wrong JSON types."""
    root = tmp_path_factory.mktemp("broken")
    config = json.loads((ner_model_dir / "config.json").read_text("utf-8"))
    edits = {
        "string_number": {"dim": str(config["dim"])},
        "id2label_list": {"id2label": list(config["id2label"].values())},
        "label_not_str": {"id2label": {**config["id2label"], "0": 7}},
        "zero_heads": {"n_heads": 0},
        "bool_dropout": {"dropout": True},
    }
    folders = {}
    for name, change in edits.items():
        folder = root / name
        folder.mkdir()
        for f in ner_model_dir.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        (folder / "config.json").write_text(json.dumps({**config, **change}), "utf-8")
        folders[name] = folder
    return folders


# (arguments, stdin, exit status, what the one line says); {model}, {broken_<name>}, {base},
# {tmp}, {conll} are filled in.
FAILURES = [
    (["-m", "{broken_string_number}", "x"], b"", 2, "config.json: dim is '"),
    (["-m", "{broken_id2label_list}", "x"], b"", 2, "id2label is an array"),
    (["-m", "{broken_label_not_str}", "x"], b"", 2, "id2label['0'] is 7"),
    (["-m", "{broken_zero_heads}", "x"], b"", 2, "num_heads must be at least 1"),
    (["-m", "{broken_bool_dropout}", "x"], b"", 2, "dropout is True (a boolean)"),
    (["evaluate", "-m", "{broken_string_number}", "--data", "{conll}"], b"", 2, "config.json: dim"),
    (["inspect", "-m", "{broken_id2label_list}", "x"], b"", 2, "id2label is an array"),
    (["-m", "{model}", "--device", "meta", "x"], b"", 2, "device 'meta' cannot run a model"),
    (["-m", "{model}", "--device", "tpu", "x"], b"", 2, "unknown device 'tpu'"),
    (["-m", "{model}", "--device", "-3", "x"], b"", 2, "use -1 for the CPU"),
    (["-m", "{model}", "-o", "{tmp}", "x"], b"", 2, "is a folder; give a file name"),
    (["-m", "{model}", "-o", "{tmp}/file.txt/x.json", "x"], b"", 2, "cannot write --output"),
    (["inspect", "-m", "{model}", "-o", "{tmp}/file.txt", "x"], b"", 2, "is a file; give a folder"),
    (["evaluate", "-m", "{model}", "--data", "{conll}", "-o", "{tmp}"], b"", 2, "is a folder"),
    (["-m", "{base}", "x"], b"", 2, "minibert-ner train --model"),
    (["-m", "{model}", "--format", "json"], b"ok\n\xff\n", 2, "line 2: invalid UTF-8: byte 0xff"),
    (
        ["-m", "{model}", "--document", "--skip-invalid"],
        b"x",
        2,
        "with --document the input is one",
    ),
    (["-m", "{model}", "--dtype", "float8", "x"], b"", 2, "invalid choice: 'float8'"),
    (["-m", "{model}", "--frobnicate", "x"], b"", 2, "unrecognized arguments: --frobnicate"),
    (
        [
            "train",
            "-m",
            "{base}",
            "--train",
            "{conll}",
            "--valid",
            "{conll}",
            "-o",
            "{tmp}/file.txt",
        ],
        b"",
        2,
        "is a file; give a folder",
    ),  # fmt: skip
    (["evaluate", "-m", "{model}", "--data", "{tmp}/none.conll"], b"", 2, "none.conll"),
    (["-m", "{model}", "--revision", "v1", "x"], b"", 2, "revision 'v1' picks a version of a hub"),
    (["inspect", "-m", "{model}", "--revision", "v1", "x"], b"", 2, "is a local folder"),
    (
        ["evaluate", "-m", "{model}", "--data", "{conll}", "-o", "{tmp}/r", "--json", "{tmp}/r"],
        b"",
        2,
        "--output and --json are both",
    ),
]


@pytest.mark.parametrize("argv, stdin, status, message", FAILURES, ids=lambda x: str(x)[:50])
def test_failures_are_one_line(
    argv, stdin, status, message, ner_model_dir, broken_models, tiny_base, tmp_path, capsys,
    monkeypatch, conll_dir,
):  # fmt: skip
    (tmp_path / "file.txt").write_text("a file\n", "utf-8")
    values = {"model": ner_model_dir, "base": tiny_base, "tmp": tmp_path}
    values |= {"conll": conll_dir / "valid.txt"}
    values |= {f"broken_{k}": v for k, v in broken_models.items()}
    args = [a.format_map(values) if "{" in a else a for a in argv]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_in_process(args, capsys, stdin, monkeypatch)
    lines = err.strip().splitlines()
    assert code == status, err
    assert len(lines) == 1 and "error:" in lines[0] and message in lines[0], lines
    assert out == "", out  # nothing half-written (json: not started)


def test_a_full_disk_and_a_closed_pipe_end_in_one_line(ner_model_dir):
    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            [sys.executable, "-m", "minibert_ner", "-m", str(ner_model_dir), "--format", "jsonl",
             "some text"],
            stdout=full, stderr=subprocess.PIPE, env=ENV, timeout=300,
        )  # fmt: skip
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and err == [
        "minibert-ner: error: cannot write to standard output: No space left on device"
    ], err
    command = (
        f"yes 'Berlin is big' | head -n 3000 | '{sys.executable}' -m minibert_ner "
        f"-m '{ner_model_dir}' --format json | head -c 10"
    )
    r = subprocess.run(["sh", "-c", command], capture_output=True, env=ENV, timeout=300)
    assert r.returncode == 0 and r.stdout == b'[\n{"text":'
    assert r.stderr == b"", r.stderr


@pytest.mark.parametrize("fmt", ["json", "jsonl", "table", "conll"])
def test_a_reader_that_goes_away_ends_every_format_alike(fmt, ner_model_dir, tmp_path):
    """Output larger than a pipe holds, its reader gone after one byte: 141 (128 + SIGPIPE),
    silently, whatever the format (a JSON array held until whole included)."""
    texts = tmp_path / "texts.txt"
    texts.write_text("Berlin is big\n" * 3000, "utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "minibert_ner", "-m", str(ner_model_dir), "--format", fmt,
         "--file", str(texts)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    )  # fmt: skip
    assert process.stdout.read(1)
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=300) == 141 and err == b"", err


def test_output_to_a_device_is_written_through(ner_model_dir, tmp_path):
    """-o /dev/stdout, -o /dev/null: written as the shell's `>` writes them, never replaced."""
    r = run_cli("-m", str(ner_model_dir), "--format", "jsonl", "-o", "/dev/stdout", "Berlin")
    assert r.returncode == 0 and json.loads(r.stdout)["text"] == "Berlin", r.stderr
    data = tmp_path / "data.conll"
    data.write_text("Berlin B-LOC\nis O\n\n", "utf-8")
    r = run_cli("evaluate", "-m", str(ner_model_dir), "--data", str(data), "-o", "/dev/null")
    assert r.returncode == 0 and Path("/dev/null").is_char_device(), r.stderr


def test_sigterm_stops_like_ctrl_c(ner_model_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "minibert_ner", "-m", str(ner_model_dir), "--format", "jsonl",
         "--verbose"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    )  # fmt: skip
    process.stdin.write(b"Berlin\n")  # the model loads and waits for more input
    process.stdin.flush()
    loaded = process.stderr.readline()  # --verbose: said once the model has loaded
    assert loaded.startswith(b"minibert-ner: precision "), loaded
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    process.stdin.close()
    assert process.returncode == 143, err
    assert err.decode().strip().splitlines()[-1] == "minibert-ner: terminated"
    assert b"Traceback" not in err


def test_sighup_stops_like_sigterm_and_leaves_no_temporary(ner_model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "minibert_ner", "-m", str(ner_model_dir), "-o", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    )  # fmt: skip
    process.stdin.write(b"Berlin\n")  # it waits for more input, its temporary open
    process.stdin.flush()
    for _ in range(1200):  # the temporary is there once the signal handlers are
        if list(tmp_path.iterdir()) or process.poll() is not None:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 129, err
    assert err.decode().strip().splitlines()[-1] == "minibert-ner: hung up"
    assert list(tmp_path.iterdir()) == []


def test_skip_invalid_labels_the_rest_and_says_what_it_skipped(ner_model_dir, capsys, monkeypatch):
    lines = [b"Berlin", b"bad \xff", b"Paris", b"\xc3\x28 also bad", b"Rome"]
    stdin = b"\n".join(lines) + b"\n"
    args = ["-m", str(ner_model_dir), "--skip-invalid", "--format", "json"]
    code, out, err = run_in_process(args, capsys, stdin, monkeypatch)
    assert code == 3
    assert [r["text"] for r in json.loads(out)] == ["Berlin", "Paris", "Rome"]
    (warning,) = err.strip().splitlines()
    assert "skipped 2 line(s)" in warning and "line 2:" in warning and "line 4:" in warning


def test_label_and_batch_name_a_bad_byte_alike(ner_model_dir, tmp_path, capsys, monkeypatch):
    from minibert_ner.batch.records import read_records

    raw = b"ok\n\xe2\x82 cut\n"
    (tmp_path / "in.txt").write_bytes(raw)
    batch_error = [r.error for r in read_records(tmp_path / "in.txt") if r.error][0]
    code, _, err = run_in_process(["-m", str(ner_model_dir)], capsys, raw, monkeypatch)
    assert code == 2 and err.strip().endswith(
        f"line 2: {batch_error}; save the text as UTF-8, or pass --skip-invalid to skip such lines"
    ), (err, batch_error)


def test_evaluation_warns_when_model_and_data_share_no_type(ner_model_dir, tmp_path, capsys):
    data = tmp_path / "other.conll"
    data.write_text("Aspirin B-DRUG\nhelps O\n\nIbuprofen B-DRUG\n", "utf-8")
    code, out, err = run_in_process(
        ["evaluate", "-m", str(ner_model_dir), "--data", str(data)], capsys
    )
    assert code == 0 and "micro" in out.lower()
    (warning,) = err.strip().splitlines()
    assert warning.startswith("minibert-ner: warning:") and "none in common" in warning
    assert "DRUG" in warning and "PER" in warning


def test_int8_quantization_is_quiet(ner_model_dir):
    pytest.importorskip("torchao")
    r = run_cli("-m", str(ner_model_dir), "--quantize", "int8", "--format", "jsonl", "Berlin")
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()


def test_train_says_when_it_replaces_a_head(ner_model_dir, tmp_path, capsys):
    data = tmp_path / "d.conll"
    data.write_text("Aspirin B-DRUG\nhelps O\n\nIbuprofen B-DRUG\n", "utf-8")
    args = ["train", "-m", str(ner_model_dir), "--train", str(data), "--valid", str(data)]
    code, _, err = run_in_process([*args, "-o", str(tmp_path / "out"), "--max-steps", "1"], capsys)
    assert code == 0, err
    assert "the checkpoint's head predicts 9 labels" in err and "training a fresh head" in err


def test_calibration_texts_label_the_same_through_every_entry(ner_model_dir, capsys):
    """The CLI's texts equal the API's, whatever the position of the options."""
    import minibert_ner

    ner = minibert_ner.pipeline("ner", model=ner_model_dir)
    texts = CALIBRATION_TEXTS[:3]
    code, out, _ = run_in_process(
        [texts[0], "-m", str(ner_model_dir), *texts[1:], "--format", "jsonl"], capsys
    )
    assert code == 0
    assert [json.loads(line)["entities"] for line in out.splitlines()] == ner(texts)


def test_the_cli_reference_is_up_to_date(tmp_path):
    out = tmp_path / "cli.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "cli_reference.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    committed = (REPO / "docs" / "cli.md").read_text("utf-8")
    assert out.read_text("utf-8") == committed, (
        "docs/cli.md is stale: run python scripts/cli_reference.py"
    )
    for name in SUBCOMMANDS:
        assert f"## minibert-ner {name}\n" in committed


def test_an_output_file_that_cannot_be_written_ends_in_one_line_and_is_absent(
    ner_model_dir, tmp_path
):
    """A write that fails part-way (here: the file size limit, as a full disk would) is one
    line, exit status 1, and leaves neither the file nor its temporary."""
    out = tmp_path / "out.jsonl"
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))\n"
        "from minibert_ner.cli import main\n"
        f"sys.exit(main(['-m', {str(ner_model_dir)!r}, '-o', {str(out)!r}] + ['Berlin'] * 200))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env=ENV, timeout=300)
    assert r.returncode == 1
    assert r.stderr.decode().strip().splitlines() == [
        f"minibert-ner: error: cannot write to {out}: File too large"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 16 KiB tmpfs (mounting needs root: skipped where it is refused)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + mounted.stderr.decode().strip())
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_one_line_and_leaves_nothing_unfinished(ner_model_dir, small_disk):
    """ENOSPC while writing -o (label, evaluate --json, inspect's figures, train's model): one
    line, exit 1, no temporary and no file cut short."""
    model = str(ner_model_dir)
    data = small_disk.parent / "data.conll"
    data.write_text("Berlin B-LOC\nis O\n\n", "utf-8")
    texts = small_disk.parent / "texts.txt"
    texts.write_text("Berlin is big\n" * 1000, "utf-8")
    with open(small_disk / "fill", "wb") as fill, suppress(OSError):
        fill.write(b"x" * 1024 * 1024)  # the disk is full now
    fill_size = (small_disk / "fill").stat().st_size
    commands = {
        "out.jsonl": ["-m", model, "--file", str(texts), "-o", str(small_disk / "out.jsonl")],
        "e.json": ["evaluate", "-m", model, "--data", str(data), "--json",
                   str(small_disk / "e.json")],
        "figures": ["inspect", "-m", model, "-o", str(small_disk / "figures"), "Berlin"],
        "run": ["train", "-m", model, "--train", str(data), "--valid", str(data), "--epochs",
                "1", "-o", str(small_disk / "run")],
    }  # fmt: skip
    for name, argv in commands.items():
        r = run_cli(*argv)
        err = r.stderr.decode().strip().splitlines()
        if name == "run":  # train reports its epochs first
            err = [line for line in err if line.startswith("minibert-ner:")]
        assert r.returncode == 1 and len(err) == 1, err
        assert err[0].startswith(f"minibert-ner: error: cannot write to {small_disk / name}"), err
        assert err[0].endswith(": No space left on device"), err
        left = [p.name for p in small_disk.rglob("*") if p.is_file()]
        assert left == ["fill"] and (small_disk / "fill").stat().st_size == fill_size, left
