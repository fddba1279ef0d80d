"""Output writers (`writers.py`) and files written whole or not at all (`files.py`): each
format's output for any records, the table of formats that both commands take theirs from, and
label and batch writing the same bytes where their records overlap."""

from __future__ import annotations

import io
import json
import os
import socket
import tempfile
import unicodedata
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert_ner.batch import records as batch_records
from minibert_ner.batch.job import FileOutput, run_batch
from minibert_ner.batch.plan import FileJob, output_paths
from minibert_ner.batch.records import Record
from minibert_ner.cli import build_parser
from minibert_ner.cli.label import SUFFIX_FORMATS
from minibert_ner.cli.options import FORMATS
from minibert_ner.cli.output import output_file
from minibert_ner.errors import InputError
from minibert_ner.files import AtomicFile, temporary_path
from minibert_ner.inference.aggregation import STRATEGIES, entity_fields
from minibert_ner.textio import for_terminal
from minibert_ner.writers import WRITERS, formats_for, preview

from .helpers.checkpoints import CALIBRATION_TEXTS
from .helpers.cli import run_in_process
from .helpers.corpora import arrow

# Text as inputs hold it: any Unicode, control characters, line breaks that JSON leaves as they
# are (U+2028, U+0085), bidirectional overrides, byte-order marks.
TEXT = st.text(
    alphabet=st.characters(exclude_categories=("Cs",)) | st.sampled_from("\u2028\u2029\x85\x1b\x07\r\n\t \u202e\ufeff\x00")
)  # fmt: skip


def entities(strategy: str = "simple") -> st.SearchStrategy[list[dict]]:
    """Entity dicts as `strategy` gives them (fields and field order of `entity_fields`)."""
    kinds = {str: TEXT, float: st.floats(0, 1), int: st.integers(0, 10**6)}
    entity = st.fixed_dictionaries({name: kinds[t] for name, t in entity_fields(strategy)})
    return st.lists(entity, max_size=4)


LABEL_RECORDS = st.lists(
    st.builds(lambda text, found: {"text": text, "entities": found}, TEXT, entities()), max_size=5
)


def write_all(name: str, records: list[dict], **options) -> str:
    out = io.StringIO()
    writer = WRITERS[name](out, **options)
    for record in records:
        writer.write(record)
    writer.close()
    return out.getvalue()


# --- the table of formats -------------------------------------------------------------------


def test_every_format_has_one_writer_and_its_own_suffixes():
    assert list(FORMATS) == list(WRITERS)  # --help's descriptions are the writers'
    suffixes = [s for w in WRITERS.values() for s in w.suffixes]
    assert len(suffixes) == len(set(suffixes)) and all(s.startswith(".") for s in suffixes)
    for name, writer in WRITERS.items():
        assert writer.name == name and writer.description == FORMATS[name]
        assert writer.commands and set(writer.commands) <= {"label", "batch"}
        assert writer.result in ("entities", "labels")
    # Every format is offered by some command, and a file format by its suffix.
    assert {f for command in ("label", "batch") for f in formats_for(command)} == set(WRITERS)


@pytest.mark.parametrize("command", ["label", "batch"])
def test_each_command_offers_the_formats_the_table_gives_it(command):
    by_dest = {a.dest: a for a in build_parser(command)._actions}
    assert tuple(by_dest["format"].choices) == formats_for(command)


def test_suffixes_come_from_the_table():
    assert SUFFIX_FORMATS == {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
                              ".conll": "conll"}  # fmt: skip
    assert batch_records.OUTPUT_FORMATS == get_args(batch_records.OutputFormat)
    assert batch_records.OUTPUT_FORMATS == formats_for("batch")
    for name in formats_for("batch"):
        output, errors = output_paths(Path("x/a.txt"), Path("/out"), name)
        assert output == Path("/out/x", "a" + WRITERS[name].suffixes[0])
        assert errors == Path("/out/x/a.errors.jsonl")


# --- each format's output ---------------------------------------------------------------------


def test_each_format_writes_exactly_this():
    records = [
        {"text": "Angela  Merkel in\tBerlin", "entities": [
            {"entity_group": "PER", "score": 0.99876, "word": "Angela Merkel", "start": 0,
             "end": 14},
            {"entity_group": "LOC", "score": 0.5, "word": "Berlin", "start": 18, "end": 24},
        ]},
        {"text": "", "entities": []},
    ]  # fmt: skip
    lines = [
        '{"text": "Angela  Merkel in\\tBerlin", "entities": [{"entity_group": "PER", "score": '
        '0.99876, "word": "Angela Merkel", "start": 0, "end": 14}, {"entity_group": "LOC", '
        '"score": 0.5, "word": "Berlin", "start": 18, "end": 24}]}',
        '{"text": "", "entities": []}',
    ]
    assert write_all("jsonl", records) == lines[0] + "\n" + lines[1] + "\n"
    assert write_all("json", records) == "[\n" + lines[0] + ",\n" + lines[1] + "\n]\n"
    assert write_all("json", []) == write_all("json", [], live=True) == "[]\n"
    assert write_all("table", records) == (
        "Angela Merkel in Berlin\n"
        "  PER  0.9988   0:14  Angela Merkel\n"
        "  LOC  0.5000  18:24  Berlin\n"
        "\n"
        "\n"
        "  (no entities)\n"
    )
    conll = [{"text": "EU  rejects\tit", "labels": ["B-ORG", "O", "O"]}, {"text": "", "labels": []}]
    assert write_all("conll", conll) == "EU B-ORG\nrejects O\nit O\n\n\n"


@settings(max_examples=150, deadline=None)
@given(records=LABEL_RECORDS)
def test_json_lines_hold_any_record_on_one_line(records):
    """A record is one line for every reader (no U+2028 or U+0085 left bare), and reads back
    as it was; the JSON array, held or written as it comes, is the same lines."""
    jsonl = write_all("jsonl", records)
    assert len(jsonl.splitlines()) == len(records)
    assert [json.loads(line) for line in jsonl.splitlines()] == records
    held, streamed = write_all("json", records, live=True), write_all("json", records)
    assert held == streamed
    assert json.loads(held) == records
    if records:
        assert held == "[\n" + ",\n".join(jsonl.splitlines()) + "\n]\n"


@settings(max_examples=150, deadline=None)
@given(records=LABEL_RECORDS)
def test_table_has_a_line_a_text_and_a_row_an_entity_all_escaped(records):
    table = write_all("table", records)
    assert not any(unicodedata.category(c) == "Cc" for c in table.replace("\n", ""))
    assert "\u202e" not in table
    blocks = table.removesuffix("\n").split("\n") if records else []
    for record in records:
        head = blocks.pop(0)
        assert head == for_terminal(preview(record["text"]))
        rows = [blocks.pop(0) for _ in range(max(1, len(record["entities"])))]
        if not record["entities"]:
            assert rows == ["  (no entities)"]
        for row, e in zip(rows, record["entities"], strict=False):
            assert row.startswith("  " + for_terminal(e["entity_group"]))
            assert row.endswith(f"{e['start']}:{e['end']}  {for_terminal(e['word'])}")
            assert f"  {e['score']:.4f}  " in row
        if blocks:
            assert blocks.pop(0) == ""  # a blank line between texts
    assert blocks == []


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(TEXT, max_size=5))
def test_conll_has_a_line_a_word_and_a_blank_line_a_text(texts):
    records = [{"text": t, "labels": [f"L{i}" for i in range(len(t.split()))]} for t in texts]
    lines = write_all("conll", records).split("\n")
    assert lines.pop() == ""
    got, block = [], []
    for line in lines:
        if line:
            block.append(tuple(line.split(" ")))
        else:
            got, block = [*got, block], []
    assert got == [list(zip(r["text"].split(), r["labels"], strict=True)) for r in records]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_parquet_rows_read_back_as_written(strategy):
    _, pq = arrow()

    found = entities(strategy)
    int64 = st.integers(-(2**63), 2**63 - 1)

    @settings(max_examples=15, deadline=None)
    @given(
        rows=st.lists(st.tuples(int64, found), max_size=5)
        | st.lists(st.tuples(TEXT, found), max_size=5)
    )
    def check(rows):  # ids of one type: a file's first id decides its column's type
        records = [{"line": n, "id": i, "entities": e} for n, (i, e) in enumerate(rows)]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "a.parquet"
            writer = WRITERS["parquet"](path, keys=("line", "id"), strategy=strategy)
            for record in records:
                assert writer.problem(record) is None
                writer.write(record)
            writer.commit()
            assert pq.read_table(path).to_pylist() == records
            assert [p.name for p in Path(folder).iterdir()] == ["a.parquet"]

    check()


# --- files whole or not at all ----------------------------------------------------------------


def test_an_atomic_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "a.json"
    with AtomicFile(path) as out:
        out.write("whole\n")
        assert not path.exists() and temporary_path(path).exists()
    assert path.read_text("utf-8") == "whole\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with pytest.raises(KeyboardInterrupt), AtomicFile(path) as out:
        out.write("cut short")
        raise KeyboardInterrupt
    assert path.read_text("utf-8") == "whole\n"  # the file before stays, the temporary goes
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_link_keeps_pointing_and_the_file_it_names_is_replaced_whole(tmp_path):
    (tmp_path / "real.json").write_text("before\n", "utf-8")
    (tmp_path / "link.json").symlink_to("real.json")
    (tmp_path / "dangling.json").symlink_to("new.json")
    for name in ("link.json", "dangling.json"):
        with AtomicFile(tmp_path / name) as out:
            out.write("after\n")
            assert not temporary_path(tmp_path / name).exists()  # beside the target instead
        assert (tmp_path / name).is_symlink() and (tmp_path / name).read_text("utf-8") == "after\n"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["dangling.json", "link.json", "new.json", "real.json"]


def test_a_device_or_a_pipe_is_written_through_never_replaced(tmp_path):
    with AtomicFile("/dev/null") as out:
        out.write("gone\n")
    assert Path("/dev/null").is_char_device()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader: opening to write goes on
    try:
        with AtomicFile(tmp_path / "fifo") as out:
            out.write("through\n")
        assert os.read(reader, 100) == b"through\n"
    finally:
        os.close(reader)
    assert fifo.is_fifo() and [p.name for p in tmp_path.iterdir()] == ["fifo"]
    with pytest.raises(KeyboardInterrupt), AtomicFile("/dev/null") as out:
        raise KeyboardInterrupt  # abort: nothing to remove, /dev/null stays
    assert Path("/dev/null").is_char_device()


def test_output_file_refuses_what_cannot_be_opened_in_one_line(tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        with (
            pytest.raises(InputError, match="cannot write --output .*sock: "),
            output_file(str(tmp_path / "sock")),
        ):
            pass
    finally:
        sock.close()


@pytest.mark.parametrize("name", [n for n, w in WRITERS.items() if not w.binary])
def test_a_writer_given_a_path_publishes_on_commit_and_leaves_nothing_on_abort(tmp_path, name):
    record = {"text": "a b", "entities": [], "labels": ["O", "O"]}
    path = tmp_path / "out"
    writer = WRITERS[name](path)
    writer.write(record)
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    writer = WRITERS[name](path)
    writer.write(record)
    writer.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert path.read_text("utf-8") == write_all(name, [record])


def test_output_file_leaves_nothing_when_the_command_fails(tmp_path):
    path = tmp_path / "deep" / "out.jsonl"
    with pytest.raises(KeyboardInterrupt), output_file(str(path)) as out:
        out.write("{}\n")
        raise KeyboardInterrupt
    assert list(path.parent.iterdir()) == []


# --- label and batch: the same writers --------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(found=st.lists(entities(), max_size=5))
def test_batch_writes_the_lines_label_writes(found):
    """A record's JSON line is the same bytes whichever command writes it."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "a.txt"
        source.write_text("\n" * len(found), "utf-8")
        output, errors = output_paths(Path("a.txt"), Path(folder) / "out", "jsonl")
        output.parent.mkdir()
        job = FileJob(source, output, errors, stamp=None)
        batch = FileOutput(job, output_format="jsonl", strategy="simple", id_column=None)
        for n, e in enumerate(found, 1):
            batch.add(Record({"line": n}, text=""), e)
        batch.commit()
        records = [{"line": n, "entities": e} for n, e in enumerate(found, 1)]
        assert output.read_text("utf-8") == write_all("jsonl", records)


@pytest.mark.parametrize(
    ("name", "command"), [(n, c) for n, w in WRITERS.items() for c in w.commands]
)
def test_every_format_is_written_by_every_command_that_offers_it(
    name, command, ner_model_dir, tmp_path, capsys
):  # fmt: skip
    if WRITERS[name].binary:
        arrow()
    texts = CALIBRATION_TEXTS[:3]
    source = tmp_path / "in" / "t.txt"
    source.parent.mkdir()
    source.write_text("\n".join(texts) + "\n", "utf-8")
    suffix = (WRITERS[name].suffixes or (".txt",))[0]
    if command == "label":
        path = tmp_path / f"out{suffix}"
        argv = ["-m", str(ner_model_dir), "--file", str(source), "--format", name, "-o", str(path)]
        code, _, err = run_in_process(argv, capsys)
        assert code == 0, err
    else:
        run_batch(source, tmp_path / "out", ner_model_dir, output_format=name)
        path = tmp_path / "out" / f"t{suffix}"
    assert path.stat().st_size > 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_label_and_batch_write_the_same_entities_json(ner_model_dir, tmp_path, capsys):
    """Where their records overlap (the entities of a text), label's JSON lines, its JSON
    array's items and batch's JSON lines are the same bytes."""
    texts = [*CALIBRATION_TEXTS[:4], "", "Berlin\u2028Paris"]
    source = tmp_path / "t.txt"
    source.write_text("\n".join(texts) + "\n", "utf-8")
    argv = ["-m", str(ner_model_dir), "--file", str(source)]
    code, jsonl, err = run_in_process([*argv, "--format", "jsonl"], capsys)
    assert code == 0, err
    code, array, err = run_in_process([*argv, "--format", "json"], capsys)
    assert code == 0, err
    run_batch(source, tmp_path / "out", ner_model_dir)
    label_lines = jsonl.splitlines()
    assert array == "[\n" + ",\n".join(label_lines) + "\n]\n"
    batch_lines = (tmp_path / "out" / "t.jsonl").read_text("utf-8").splitlines()
    assert len(label_lines) == len(batch_lines) == len(texts)
    for n, (label, batch, text) in enumerate(zip(label_lines, batch_lines, texts, strict=True), 1):
        head, entities = label.split(', "entities": ')
        assert json.loads(head + "}") == {"text": text}
        assert batch == f'{{"line": {n}, "entities": {entities}'
