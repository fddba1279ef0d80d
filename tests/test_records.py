"""Record files (`corpus.py`): readers and their bad-record reasons, reading up to a stamped
size, finding inputs (never in the output folder), and the Parquet writer's declared schema."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert_ner.batch import records as corpus
from minibert_ner.batch.records import ParquetWriter, find_inputs, read_records
from minibert_ner.errors import BatchError, MissingExtraError
from minibert_ner.inference.aggregation import STRATEGIES, entity_fields

from .helpers.corpora import arrow, jsonl_file, text_file


def test_text_lines_and_their_errors(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfParis is nice\r\n\nbad \xff byte\nlast line without newline")
    records = list(read_records(path))
    assert [r.key for r in records] == [{"line": n} for n in (1, 2, 3, 4)]
    assert [r.text for r in records] == ["Paris is nice", "", None, "last line without newline"]
    assert records[2].error.startswith("invalid UTF-8: byte 0xff at byte 4")


def test_jsonl_bad_records_say_why(tmp_path):
    path = tmp_path / "a.jsonl"
    lines = [
        '{"id": 1, "text": "good"}',
        "",  # blank lines are not records
        "{not json",
        "[1, 2]",
        '{"id": 3}',
        '{"id": 4, "text": null}',
        '{"id": 5, "text": ["a"]}',
        '{"id": 6, "text": "lone \\ud800 surrogate"}',
        '{"text": "no id"}',
        '{"id": 1.5, "text": "float id"}',
        '{"id": "\\udc00", "text": "surrogate id"}',
    ]
    path.write_bytes("\n".join(lines).encode() + b"\n" + b'{"id": 9, "text": "\xc3"}\n')
    records = list(read_records(path, id_column="id"))
    assert records[0].key == {"line": 1, "id": 1} and records[0].text == "good"
    errors = {r.key["line"]: r.error for r in records[1:]}
    assert all(r.text is None for r in records[1:])
    assert errors[3].startswith("not valid JSON")
    assert errors[4] == "a JSON array, not an object"
    assert errors[5].startswith("no 'text' field (fields: id)")
    assert errors[6] == "'text' is null, not a string"
    assert errors[7] == "'text' is array, not a string"
    assert "lone surrogate" in errors[8]
    assert errors[9] == "no 'id' field (the id column)"
    assert errors[10] == "id 'id' is number, not a string or integer"
    assert "'id' has a lone surrogate" in errors[11]  # it could not be written as UTF-8
    assert errors[12].startswith("invalid UTF-8")
    assert len(records) == 11  # 12 lines, one blank


_NESTED = st.integers(1, 50_000).flatmap(
    lambda depth: st.sampled_from([("[", "]"), ('{"a":', "}")]).map(
        lambda ends: ends[0] * depth + "1" + ends[1] * depth
    )
)


@settings(max_examples=40, deadline=None)
@given(
    hostile=st.lists(
        st.one_of(
            _NESTED.map(lambda v: '{"text": "t", "x": ' + v + "}"),
            _NESTED,
            st.integers(4_400, 20_000).map(lambda n: '{"text": "t", "id": ' + "7" * n + "}"),
            st.text(st.characters(exclude_categories=("Cs", "Cc"))).map(lambda t: '{"text": ' + t),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_hostile_record_is_one_error_not_the_files(tmp_path_factory, hostile):
    """Whatever a line holds (JSON nested thousands deep, a number longer than Python converts,
    anything cut short), reading gives one record for it: labelled or with its reason."""
    path = tmp_path_factory.mktemp("hostile") / "a.jsonl"
    path.write_text("\n".join(['{"text": "first"}', *hostile, '{"text": "last"}']) + "\n")
    records = list(read_records(path, id_column=None))
    assert records[0].text == "first" and records[-1].text == "last"
    assert all((r.text is None) != (r.error is None) for r in records)
    assert len(records) == 2 + len(hostile)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), cut=st.floats(0, 1))
def test_reading_stops_at_the_stamped_size(tmp_path_factory, data, cut):
    """Reading up to `size` bytes gives exactly the records of the file cut at that size, as if
    the rest had not been written yet (a file that grows while a job reads it)."""
    kind = data.draw(st.sampled_from(["txt", "jsonl"]))
    f = data.draw(text_file("a.txt") if kind == "txt" else jsonl_file("a.jsonl", "id"))
    folder = tmp_path_factory.mktemp("cut")
    whole = f.write(folder)
    size = int(len(f.data) * cut)
    prefix = folder / f"prefix.{kind}"
    prefix.write_bytes(f.data[:size])
    with open(whole, "ab") as grown:
        grown.write(b"appended later\n")
    assert list(read_records(whole, id_column="id", size=size)) == list(
        read_records(prefix, id_column="id")
    )


def test_parquet_rows_and_column_checks(tmp_path):
    pa, pq = arrow()
    text = pa.array([b"Berlin", None, b"\xff", b"Rome"], pa.binary()).view(pa.string())
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"body": text, "doc": ["a", "b", "c", None], "n": [1, 2, 3, 4]}), path)
    records = list(read_records(path, text_column="body", id_column="doc"))
    assert [r.key for r in records] == [{"row": 0, "id": "a"}, {"row": 1, "id": "b"},
                                        {"row": 2, "id": "c"}, {"row": 3}]  # fmt: skip
    assert records[0].text == "Berlin"
    assert [r.error for r in records[1:]] == [
        "'body' is null",
        "invalid UTF-8: byte 0xff at byte 0 of the line (invalid start byte)",
        "id 'doc' is null",
    ]
    with pytest.raises(BatchError, match=r"no column 'text' \(columns: body, doc, n\)"):
        corpus.check_input(path)
    with pytest.raises(BatchError, match="column 'n' holds int64, not text"):
        corpus.check_input(path, text_column="n")


def test_missing_pyarrow_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingExtraError, match="needs pyarrow.*pip install pyarrow"):
        list(read_records(tmp_path / "a.parquet"))


def test_inputs_are_found_by_what_they_are(tmp_path):
    corpus_dir = tmp_path / "corpus"
    (corpus_dir / "sub").mkdir(parents=True)
    for name in ("a.txt", "sub/b.jsonl", "sub/c.ndjson", "notes.md"):
        (corpus_dir / name).write_text("x\n")
    found = find_inputs(corpus_dir)  # a folder: its files with known suffixes
    assert found == [corpus_dir / "a.txt", corpus_dir / "sub/b.jsonl", corpus_dir / "sub/c.ndjson"]
    # Named another way (a relative path through a link, a glob): the same absolute files.
    (tmp_path / "link").symlink_to(corpus_dir)
    assert find_inputs([tmp_path / "link" / "sub" / ".." / "a.txt"]) == [corpus_dir / "a.txt"]
    assert find_inputs(str(corpus_dir / "**" / "*.jsonl")) == [corpus_dir / "sub" / "b.jsonl"]
    with pytest.raises(BatchError, match="no input file matches"):
        find_inputs(str(corpus_dir / "*.csv"))
    with pytest.raises(BatchError, match="unknown input type '.md'"):
        find_inputs(corpus_dir / "notes.md")


# A generated tree: folders d0..dN (each below an earlier one), entries placed in them.
_ENTRY = st.tuples(
    st.sampled_from(["file", "other", "fifo", "dangling", "folder-link", "file-link"]),
    st.integers(0, 99),  # the folder it is in (modulo the number of folders)
    st.integers(0, 99),  # what a link points at (modulo the number of folders or files)
)


@settings(max_examples=40, deadline=None)
@given(parents=st.lists(st.integers(0, 99), max_size=5), entries=st.lists(_ENTRY, max_size=14))
def test_every_file_of_a_tree_is_found_once_or_reported(tmp_path_factory, parents, entries):
    """Whatever links (to folders, back to an ancestor, dangling), FIFOs and files a tree holds,
    walking it finds each input file exactly once, reports each FIFO and dangling link by name,
    and ends."""
    root = tmp_path_factory.mktemp("tree") / "root"
    folders = [root]
    for i, parent in enumerate(parents):
        folders.append(folders[parent % len(folders)] / f"d{i}")
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    files, reported = [], set()
    for n, (kind, where, target) in enumerate(entries):
        folder = folders[where % len(folders)]
        if kind == "file":
            files.append(folder / f"f{n}.txt")
            files[-1].write_text("x\n")
        elif kind == "other":
            (folder / f"o{n}.md").write_text("not an input\n")
        elif kind == "fifo":
            os.mkfifo(folder / f"p{n}.jsonl")
            reported.add(folder / f"p{n}.jsonl")
        elif kind == "dangling":
            (folder / f"l{n}").symlink_to(folder / "nowhere")
            reported.add(folder / f"l{n}")
        elif kind == "folder-link":  # to any folder: itself, an ancestor (a loop), a sibling
            (folder / f"k{n}").symlink_to(folders[target % len(folders)])
        elif files:
            (folder / f"k{n}.txt").symlink_to(files[target % len(files)])
    if not files and not reported:
        with pytest.raises(BatchError, match="holds no"):
            corpus.scan_inputs(root)
        return
    found = corpus.scan_inputs(root)
    assert found.files == sorted(files)
    assert sorted(path for path, _ in found.unreadable) == sorted(reported)


def test_what_cannot_be_read_is_reported(tmp_path):
    """An unreadable folder, a file in it named directly, and an unreadable file: reported by
    name (testable only where permissions bind: not as root)."""
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "a.txt").write_text("x\n")
    (tmp_path / "secret.txt").write_text("x\n")
    (tmp_path / "ok.txt").write_text("x\n")
    (tmp_path / "locked").chmod(0)
    (tmp_path / "secret.txt").chmod(0)
    try:
        if os.access(tmp_path / "secret.txt", os.R_OK):
            pytest.skip("permissions do not bind for this user (root)")
        found = corpus.scan_inputs([tmp_path, tmp_path / "locked" / "a.txt"])
        assert found.files == [tmp_path / "ok.txt"]
        assert {path: why for path, why in found.unreadable} == {
            tmp_path / "locked": "Permission denied",
            tmp_path / "secret.txt": "permission denied",
            tmp_path / "locked" / "a.txt": "Permission denied",
        }
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_the_output_folder_is_never_an_input(tmp_path):
    corpus_dir = tmp_path / "corpus"
    (corpus_dir / "out" / "deep").mkdir(parents=True)
    (corpus_dir / "a.txt").write_text("x\n")
    (corpus_dir / "out" / "a.jsonl").write_text('{"line": 1, "entities": []}\n')
    (corpus_dir / "out" / "deep" / "b.jsonl").write_text("{}\n")
    out = corpus_dir / "out"
    assert find_inputs(corpus_dir, exclude=out) == [corpus_dir / "a.txt"]
    assert find_inputs(str(corpus_dir / "**" / "*.*"), exclude=out) == [corpus_dir / "a.txt"]
    with pytest.raises(BatchError, match="matches only files inside the output folder"):
        find_inputs(str(corpus_dir / "**" / "*.jsonl"), exclude=out)
    with pytest.raises(BatchError, match="inside the output folder"):
        find_inputs(out / "a.jsonl", exclude=out)
    with pytest.raises(BatchError, match="holds no .* files outside the output folder"):
        find_inputs(out, exclude=out)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_parquet_output_schema_is_declared(tmp_path, strategy):
    """The schema does not depend on the rows: no entity at all, or no row at all, still gives
    the declared columns (and so files that a dataset reader can read together)."""
    pa, pq = arrow()
    path = tmp_path / "a.parquet"
    writer = ParquetWriter(path, keys=("line", "id"), strategy=strategy)
    writer.write({"line": 1, "id": 7, "entities": []})
    writer.commit()
    schema = pq.read_schema(path)
    assert schema.names == ["line", "id", "entities"]
    assert schema.field("id").type == pa.int64()
    struct = schema.field("entities").type.value_type
    assert [struct.field(i).name for i in range(struct.num_fields)] == [
        name for name, _ in entity_fields(strategy)
    ]
    empty = tmp_path / "empty.parquet"
    writer = ParquetWriter(empty, keys=("row",), strategy=strategy)
    writer.commit()
    assert pq.read_schema(empty).names == ["row", "entities"]
    assert pq.read_table(empty).num_rows == 0
    assert not (tmp_path / "a.parquet.tmp").exists()


def test_parquet_ids_of_another_type_are_record_errors(tmp_path):
    arrow()
    writer = ParquetWriter(tmp_path / "a.parquet", keys=("line", "id"), strategy="simple")
    assert writer.problem({"line": 1, "id": 2**63, "entities": []}).startswith(
        "id 9223372036854775808 does not fit a 64-bit integer"
    )
    writer.write({"line": 2, "id": "doc-1", "entities": []})
    assert writer.problem({"line": 3, "id": "doc-2", "entities": []}) is None
    assert "is an integer, but this file's first id is a string" in writer.problem(
        {"line": 4, "id": 5, "entities": []}
    )
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_entity_fields_are_what_the_pipeline_returns(ner_model_dir):
    from minibert_ner.inference.pipeline import pipeline

    ner = pipeline(model=str(ner_model_dir))
    text = "Angela Merkel met Emmanuel Macron in Paris and Berlin last week."
    for strategy in STRATEGIES:
        entities = ner(text, aggregation_strategy=strategy)
        assert entities, strategy
        for entity in entities:
            assert [(k, type(v)) for k, v in entity.items()] == list(entity_fields(strategy))
