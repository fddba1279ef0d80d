"""Input corpora for the batch tests, written together with what each record must become (the
oracle), and the checks of the batch contract against it.

A corpus is a folder of input files of every kind the batch command reads. Each `InputFile`
knows its records in order: the key each must have and its text, or None for a record that
must be reported as an error. `check_outputs` then holds a finished output folder to the
contract: per input file, records in = written + errors, written records with the expected keys
and the pipeline's entities, error records with a non-empty reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from .assertions import assert_same_entities
from .data import conll_sentences


@dataclass
class Expected:
    """One record of an input file: its key, and its text (None: it must be an error)."""

    key: dict[str, Any]
    text: str | None


@dataclass
class InputFile:
    """An input file to write: its name below the corpus folder, its bytes (or, for Parquet, its
    columns) and its records."""

    name: str
    records: list[Expected]
    data: bytes | None = None
    columns: dict[str, tuple[list[Any], str]] | None = None  # Parquet: name -> (values, type)

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.columns is None:
            path.write_bytes(self.data or b"")
        else:
            pa, pq = arrow()
            types = {"string": pa.string(), "int64": pa.int64()}
            table = pa.table(
                {
                    name: pa.array(values, types[kind])
                    for name, (values, kind) in self.columns.items()
                }
            )
            pq.write_table(table, path)
        return path

    def output_name(self, output_format: str) -> str:
        return str(Path(self.name).with_suffix(f".{output_format}"))

    def errors_name(self) -> str:
        return str(Path(self.name).with_suffix(".errors.jsonl"))


@dataclass
class Corpus:
    files: list[InputFile] = field(default_factory=list)
    id_column: str | None = None

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for f in self.files:
            f.write(folder)
        return folder

    @property
    def records(self) -> int:
        return sum(len(f.records) for f in self.files)


def arrow():
    """pyarrow and pyarrow.parquet, or skip (they come with the `ray` extra)."""
    reason = "pyarrow is not installed: pip install 'minibert-ner[ray]'"
    return pytest.importorskip("pyarrow", reason=reason), pytest.importorskip("pyarrow.parquet")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return arrow()[1].read_table(path).to_pylist()
    return read_jsonl(path)


# --- the oracle for Parquet output: ids must share one type, and fit int64 -------------------


def parquet_id_problem(record_id: Any, first_kind: type | None) -> bool:
    if isinstance(record_id, int) and not -(2**63) <= record_id < 2**63:
        return True
    kind = int if isinstance(record_id, int) else str
    return first_kind is not None and kind is not first_kind


def expected_outcome(f: InputFile, output_format: str) -> list[Expected]:
    """The records of `f` as the output must hold them: a good record whose id a Parquet output
    cannot hold (another type than the file's first id, or beyond int64) becomes an error."""
    if output_format != "parquet":
        return f.records
    out, first_kind = [], None
    for r in f.records:
        if r.text is not None and "id" in r.key:
            if parquet_id_problem(r.key["id"], first_kind):
                out.append(Expected(r.key, None))
                continue
            first_kind = first_kind or (int if isinstance(r.key["id"], int) else str)
        out.append(r)
    return out


def check_outputs(
    corpus: Corpus,
    folder: Path,
    out: Path,
    output_format: str,
    ner: Any,
) -> dict[str, list[dict]]:
    """Hold the output folder `out` to the contract for `corpus`, written to `folder`; returns
    the written records per input file name (for comparing engines)."""
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    written: dict[str, list[dict]] = {}
    good_texts, good_rows = [], []
    for f in corpus.files:
        expected = expected_outcome(f, output_format)
        good = [e for e in expected if e.text is not None]
        bad = [e for e in expected if e.text is None]
        rows = read_output(out / f.output_name(output_format))
        assert [{k: v for k, v in r.items() if k != "entities"} for r in rows] == [
            e.key for e in good
        ], f.name
        errors_path = out / f.errors_name()
        errors = read_jsonl(errors_path) if errors_path.exists() else []
        assert not (errors_path.exists() and not bad), f"{f.name}: errors file without errors"
        number = "row" if f.name.endswith(".parquet") else "line"
        assert [e[number] for e in errors] == [b.key[number] for b in bad], f.name
        for e in errors:
            assert isinstance(e["error"], str) and e["error"].strip(), f"{f.name}: {e}"
        entry = manifest["files"][str((folder / f.name).resolve())]
        assert (entry["records"], entry["written"], entry["errors"]) == (
            len(f.records),
            len(good),
            len(bad),
        ), f.name
        assert entry["records"] == entry["written"] + entry["errors"]
        written[f.name] = rows
        good_texts += [e.text for e in good]
        good_rows += rows
    expected_entities = ner(good_texts) if good_texts else []
    assert_same_entities([r["entities"] for r in good_rows], expected_entities, "records")
    return written


def assert_same_written(a: dict[str, list[dict]], b: dict[str, list[dict]]) -> None:
    """Two engines' written records: equal keys and entities, scores within 1e-4."""
    assert sorted(a) == sorted(b)
    for name in a:
        assert [{k: v for k, v in r.items() if k != "entities"} for r in a[name]] == [
            {k: v for k, v in r.items() if k != "entities"} for r in b[name]
        ], name
        assert_same_entities(
            [r["entities"] for r in a[name]], [r["entities"] for r in b[name]], 1e-4
        )


# --- generated corpora (hypothesis) -----------------------------------------------------------

_CONLL: list[str] = []


def conll_texts() -> list[str]:
    """CoNLL-2003 test sentences (words joined by spaces): real text, so that entities occur."""
    if not _CONLL:
        _CONLL.extend(" ".join(words) for words in conll_sentences("test", limit=300))
    return _CONLL


BAD_UTF8 = [b"\xff", b"caf\xe9 au lait", b"\xc3", b"\xed\xa0\x80 surrogate", b"ok \x80 bad"]


@st.composite
def texts(draw: st.DrawFn, *, line_safe: bool) -> str:
    """A text to label: a CoNLL sentence, or any Unicode (without line breaks, BOM or CR when
    it is a line of a text file)."""
    if draw(st.booleans()):
        return draw(st.sampled_from(conll_texts()))
    bad = "\n\r\ufeff" if line_safe else ""
    alphabet = st.characters(exclude_categories=("Cs",), exclude_characters=bad)
    return draw(st.text(alphabet, max_size=40))


def long_text() -> str:
    """About 3,000 words: many windows of the model's 512 tokens."""
    words = " ".join(conll_texts()[:120]).split()
    return " ".join(words[:3000])


@st.composite
def text_file(draw: st.DrawFn, name: str) -> InputFile:
    """One text a line: good lines, lines of invalid UTF-8; LF or CRLF; with or without a final
    line break; now and then a BOM or a very long line."""
    n = draw(st.integers(0, 12))
    kinds = draw(st.lists(st.sampled_from(["good", "good", "bad"]), min_size=n, max_size=n))
    if kinds and draw(st.integers(0, 9)) == 0:
        kinds = ["bad"] * n  # all bad
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    lines, records = [], []
    for number, kind in enumerate(kinds, start=1):
        if kind == "good":
            text = draw(texts(line_safe=True))
            if draw(st.integers(0, 19)) == 0:
                text = long_text()
            lines.append(text.encode())
            records.append(Expected({"line": number}, text))
        else:
            lines.append(draw(st.sampled_from(BAD_UTF8)))
            records.append(Expected({"line": number}, None))
    data = eol.join(lines)
    if lines and (draw(st.booleans()) or lines[-1] == b""):
        data += eol  # an empty last line needs its line break to be a record
    if lines and draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data
    return InputFile(name, records, data=data)


ID_VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.integers(2**63, 2**70),  # beyond int64: JSON has no limit, a Parquet column has
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
)
BAD_JSON_LINES = ["{not json", "[1, 2]", "42", '"a string"', "null", '{"text": "x"']


@st.composite
def jsonl_file(draw: st.DrawFn, name: str, id_column: str | None) -> InputFile:
    """JSON lines: good objects with ids of mixed types, and every kind of bad line: not JSON,
    not an object, no text, null or non-string text, a lone surrogate, a bad or missing id;
    blank lines between them (not records)."""
    n = draw(st.integers(0, 12))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines: list[str] = []
    records = []
    kinds = ["good", "good", "good", "bad json", "no text", "bad text", "surrogate", "bad id",
             "no id", "blank"]  # fmt: skip
    for _ in range(n):
        kind = draw(st.sampled_from(kinds))
        number = len(lines) + 1
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", "  ", "\t"])))
            continue
        record_id = draw(ID_VALUES)
        key: dict[str, Any] = {"line": number}
        if id_column is not None and kind not in ("bad json", "bad id", "no id"):
            key["id"] = record_id
        if kind == "good":
            text = draw(texts(line_safe=False))
            lines.append(json.dumps({"id": record_id, "text": text}))
            records.append(Expected(key, text))
            continue
        if kind == "bad json":
            line = draw(st.sampled_from(BAD_JSON_LINES))
            key = {"line": number}
        elif kind == "no text":
            line = json.dumps({"id": record_id, "title": "x"})
        elif kind == "bad text":
            value = draw(st.sampled_from([None, 42, 1.5, True, ["a"], {"a": 1}]))
            line = json.dumps({"id": record_id, "text": value})
        elif kind == "surrogate":
            line = '{"id": ' + json.dumps(record_id) + ', "text": "lone \\ud800 surrogate"}'
        elif kind == "bad id":
            value = draw(st.sampled_from([None, 1.5, True, ["a"]]))
            line = json.dumps({"id": value, "text": "Paris"})
            if id_column is None:  # the id is not read: a good record
                lines.append(line)
                records.append(Expected({"line": number}, "Paris"))
                continue
        else:  # no id
            line = json.dumps({"text": "Paris"})
            if id_column is None:
                lines.append(line)
                records.append(Expected({"line": number}, "Paris"))
                continue
        lines.append(line)
        records.append(Expected(key, None))
    data = eol.join(lines) + (eol if lines and draw(st.booleans()) else "")
    return InputFile(name, records, data=data.encode())


@st.composite
def parquet_file(draw: st.DrawFn, name: str, id_column: str | None) -> InputFile:
    """A text column with nulls, and an id column (integers or strings) with nulls."""
    n = draw(st.integers(0, 10))
    texts_ = draw(st.lists(st.one_of(st.none(), texts(line_safe=False)), min_size=n, max_size=n))
    int_ids = draw(st.booleans())
    id_values = st.integers(-(2**62), 2**62) if int_ids else st.text(max_size=6)
    ids = draw(st.lists(st.one_of(st.none(), id_values), min_size=n, max_size=n))
    records = []
    for row, (text, record_id) in enumerate(zip(texts_, ids, strict=True)):
        key: dict[str, Any] = {"row": row}
        if id_column is not None:
            if record_id is None:
                records.append(Expected(key, None))
                continue
            key["id"] = record_id
        records.append(Expected(key, text))
    columns = {"text": (texts_, "string"), "id": (ids, "int64" if int_ids else "string")}
    return InputFile(name, records, columns=columns)


@st.composite
def corpora(draw: st.DrawFn, max_files: int = 6) -> Corpus:
    """A folder of input files of every kind (some in a subfolder), clean, empty, all bad or
    mixed, with or without an id column."""
    id_column = draw(st.sampled_from([None, "id"]))
    n = draw(st.integers(1, max_files))
    files = []
    for i in range(n):
        folder = "sub/" if draw(st.integers(0, 3)) == 0 else ""
        kind = draw(st.sampled_from(["txt", "jsonl", "parquet"]))
        name = f"{folder}f{i}.{kind}"
        if kind == "txt":
            files.append(draw(text_file(name)))
        elif kind == "jsonl":
            files.append(draw(jsonl_file(name, id_column)))
        else:
            files.append(draw(parquet_file(name, id_column)))
    return Corpus(files, id_column)
