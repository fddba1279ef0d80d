"""Batch NER (`corpus.py`, `batch.py`, `ray_engine.py`, `minibert-ner batch`): readers and their
bad-record reasons, output planning, resume, and the Ray engine against the in-process pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from minibert_ner import batch, corpus
from minibert_ner.batch import Manifest, plan_jobs, run_batch
from minibert_ner.cli import main
from minibert_ner.corpus import find_inputs, read_records
from minibert_ner.errors import BatchError, MissingExtraError

from .conftest import conll_sentences

# The CoNLL-2003 test sentences (words joined by spaces): all of them go through Ray Data and
# the in-process pipeline; the first COMMAND_TEXTS through the command with both engines.
CONLL_TEST_SENTENCES = 3453
COMMAND_TEXTS = 600


@pytest.fixture(scope="module")
def texts() -> list[str]:
    texts = [" ".join(words) for words in conll_sentences("test")]
    assert len(texts) == CONLL_TEST_SENTENCES
    return texts


@pytest.fixture(scope="module")
def ner(small_distilbert):
    from minibert_ner.pipeline import pipeline

    return pipeline(model=str(small_distilbert))


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (starting one takes seconds): 2 CPUs, loopback, no dashboard."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'minibert-ner[ray]'")
    pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'ray[data]'")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level="warning",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


def assert_same_entities(got: list[list[dict]], expected: list[list[dict]]) -> None:
    """Record by record, the same entities: every field equal, scores to float32 rounding.

    Not bit-equal: the pipeline pads each forward batch to its longest row, so a text labelled
    in another batch (another chunk, another actor) can get scores that differ in the last bits
    of float32 (~5e-7 measured; the in-process pipeline does the same between chunk sizes).
    """
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert [{**x, "score": pytest.approx(x["score"], abs=1e-5)} for x in e] == g, f"record {i}"


def arrow():
    """pyarrow and pyarrow.parquet, or skip (they come with the `ray` extra)."""
    reason = "pyarrow is not installed: pip install 'minibert-ner[ray]'"
    return pytest.importorskip("pyarrow", reason=reason), pytest.importorskip("pyarrow.parquet")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def write_corpus(folder: Path, texts: list[str]) -> dict[str, list]:
    """Texts split over a text file and a JSONL file (with ids), each with bad records between
    the good ones. Returns, per output name, what each output record must hold: (key, text)."""
    folder.mkdir(parents=True)
    half = len(texts) // 2
    lines = [t.encode() for t in texts[:half]]
    lines.insert(3, b"caf\xe9 au lait")  # Latin-1, not UTF-8
    (folder / "part-0.txt").write_bytes(b"\n".join(lines) + b"\n")
    objects = [json.dumps({"id": f"doc-{i}", "text": t}) for i, t in enumerate(texts[half:])]
    objects.insert(5, '{"id": "no-text", "title": "x"}')
    objects.insert(7, '{"id": "number", "text": 42}')
    (folder / "part-1.jsonl").write_text("\n".join(objects) + "\n", "utf-8")
    expected_0 = [({"line": n + (n > 3)}, t) for n, t in enumerate(texts[:half], start=1)]
    good = [i for i, o in enumerate(objects) if '"doc-' in o]
    expected_1 = [({"line": i + 1, "id": f"doc-{k}"}, texts[half + k]) for k, i in enumerate(good)]
    return {"part-0.jsonl": expected_0, "part-1.jsonl": expected_1}


# --- reading --------------------------------------------------------------------------------


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
    assert errors[11].startswith("invalid UTF-8")
    assert len(records) == 10  # 11 lines, one blank


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


def test_missing_ray_is_named(monkeypatch):
    from minibert_ner.ray_engine import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'minibert-ner\[ray\]'"):
        require_ray()


def test_inputs_and_outputs_are_planned(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    for name in ("a.txt", "sub/b.jsonl", "sub/c.ndjson", "notes.md"):
        (corpus / name).write_text("x\n")
    found = find_inputs(corpus)  # a folder: its files with known suffixes
    assert [p.relative_to(corpus).as_posix() for p in found] == ["a.txt", "sub/b.jsonl",
                                                                  "sub/c.ndjson"]  # fmt: skip
    assert find_inputs(str(corpus / "**" / "*.jsonl")) == [corpus / "sub" / "b.jsonl"]
    jobs = plan_jobs(found, tmp_path / "out", "parquet")
    assert [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs] == [
        "a.parquet", "sub/b.parquet", "sub/c.parquet"]  # fmt: skip
    assert jobs[1].errors == tmp_path / "out" / "sub" / "b.errors.jsonl"
    with pytest.raises(BatchError, match="no input file matches"):
        find_inputs(str(corpus / "*.csv"))
    with pytest.raises(BatchError, match="unknown input type '.md'"):
        find_inputs(corpus / "notes.md")
    (corpus / "a.jsonl").write_text("{}\n")
    with pytest.raises(BatchError, match="would both write"):
        plan_jobs(find_inputs(str(corpus / "a.*")), tmp_path / "out", "jsonl")
    with pytest.raises(BatchError, match="would overwrite an input"):
        plan_jobs([corpus / "a.jsonl"], corpus, "jsonl")


def test_command_refuses_ray_options_for_the_local_engine(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("Paris\n")
    argv = ["batch", "--input", str(tmp_path / "a.txt"), "--output", str(tmp_path / "out"),
            "--model", "unused", "--num-actors", "2"]  # fmt: skip
    assert main(argv) == 2
    assert "--num-actors: only for the Ray engine; add --engine ray" in capsys.readouterr().err


# --- the local engine, errors, resume --------------------------------------------------------


def test_local_engine_matches_pipeline_and_counts_add_up(tmp_path, small_distilbert, ner, texts):
    expected = write_corpus(tmp_path / "corpus", texts[:60])
    summary = run_batch(tmp_path / "corpus", tmp_path / "out", small_distilbert, id_column="id")
    c = summary.counts
    assert (summary.files, c.records, c.written, c.errors) == (2, 63, 60, 3)
    for name, wanted in expected.items():
        got = read_jsonl(tmp_path / "out" / name)
        assert [{k: v for k, v in r.items() if k != "entities"} for r in got] == [
            key for key, _ in wanted
        ]
        assert [r["entities"] for r in got] == ner([t for _, t in wanted])
    assert read_jsonl(tmp_path / "out" / "part-0.errors.jsonl") == [
        {"line": 4, "error": "invalid UTF-8: byte 0xe9 at byte 3 of the line (invalid "
         "continuation byte)"}]  # fmt: skip
    errors = read_jsonl(tmp_path / "out" / "part-1.errors.jsonl")
    assert [(e["line"], e["id"]) for e in errors] == [(6, "no-text"), (8, "number")]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    counts = [(f["records"], f["written"], f["errors"]) for f in manifest["files"].values()]
    assert counts == [(31, 30, 1), (32, 30, 2)]


def test_parquet_output_holds_the_same_records(tmp_path, small_distilbert, texts):
    pa, pq = arrow()
    corpus = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"text": texts[:40], "id": list(range(40))}), corpus)
    for fmt in ("jsonl", "parquet"):
        run_batch(corpus, tmp_path / fmt, small_distilbert, output_format=fmt, id_column="id")
    as_json = read_jsonl(tmp_path / "jsonl" / "corpus.jsonl")
    assert as_json[3]["row"] == 3 and as_json[3]["id"] == 3
    assert pq.read_table(tmp_path / "parquet" / "corpus.parquet").to_pylist() == as_json
    assert any(r["entities"] for r in as_json)


def test_resume_skips_finished_files(tmp_path, small_distilbert, texts):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    write_corpus(corpus, texts[:20])
    jobs = plan_jobs(find_inputs(corpus), out, "jsonl")
    options = batch.run_options(small_distilbert, "jsonl", "text", None, {})

    def interrupted():  # the local engine, stopped (as by Ctrl-C) when it reaches the 2nd file
        for result in batch.local_results(jobs, str(small_distilbert)):
            if result[0] == 1:
                raise KeyboardInterrupt
            yield result

    progress = batch.ProgressLog(None, len(jobs))
    with pytest.raises(KeyboardInterrupt):
        batch.write_results(jobs, interrupted(), Manifest(out, options), progress)
    assert jobs[0].output.is_file() and not jobs[1].output.exists()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "part-0.errors.jsonl",
                                                     "part-0.jsonl"]  # fmt: skip
    first = jobs[0].output.stat().st_mtime_ns

    summary = run_batch(corpus, out, small_distilbert)
    assert (summary.skipped, summary.files) == (1, 1)
    assert jobs[0].output.stat().st_mtime_ns == first  # not rewritten
    assert jobs[1].output.is_file()
    done = run_batch(corpus, out, small_distilbert)
    assert (done.skipped, done.files, done.counts.records) == (2, 0, 0)

    with open(jobs[1].source, "a") as f:  # a changed input is done again
        f.write('{"id": "new", "text": "Kofi Annan"}\n')
    again = run_batch(corpus, out, small_distilbert)
    assert (again.skipped, again.files) == (1, 1)
    assert read_jsonl(jobs[1].output)[-1]["line"] == 13  # 10 texts, 2 bad records, the new one

    with pytest.raises(BatchError, match="other options.*aggregation_strategy"):
        run_batch(corpus, out, small_distilbert, aggregation_strategy="first")


# --- the Ray engine --------------------------------------------------------------------------


def test_ray_dataset_equals_pipeline(ray_session, small_distilbert, ner, texts):
    from minibert_ner.ray_engine import tag_dataset

    ds = ray_session.data.from_items([{"n": i, "text": t} for i, t in enumerate(texts)])
    rows = tag_dataset(ds, str(small_distilbert), num_actors=2, records_per_batch=64).take_all()
    got = [row["entities"] for row in sorted(rows, key=lambda row: row["n"])]
    expected = ner(texts)
    assert len(got) == CONLL_TEST_SENTENCES
    assert sum(map(len, expected)) > len(texts)  # entities to compare, not just empty lists
    assert_same_entities(got, expected)


def test_command_both_engines(ray_session, tmp_path, small_distilbert, ner, texts, capsys):
    texts = texts[:COMMAND_TEXTS]
    expected = write_corpus(tmp_path / "corpus", texts)
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        argv = ["batch", "--input", str(tmp_path / "corpus" / "part-*"), "--output", str(out),
                "--model", str(small_distilbert), "--id-column", "id", "--engine", engine]  # fmt: skip
        assert main(argv) == 0
        captured = capsys.readouterr()
        total = len(texts) + 3
        assert f"{total} records = {len(texts)} written + 3 errors" in captured.out
        assert "[2/2 files]" in captured.err
        outputs[engine] = {p.name: p for p in out.iterdir()}
    assert sorted(outputs["ray"]) == sorted(outputs["local"]) == [
        "manifest.json", "part-0.errors.jsonl", "part-0.jsonl", "part-1.errors.jsonl",
        "part-1.jsonl"]  # fmt: skip
    for name, wanted in expected.items():
        for engine in ("local", "ray"):
            got = read_jsonl(outputs[engine][name])
            assert [{k: v for k, v in r.items() if k != "entities"} for r in got] == [
                key for key, _ in wanted
            ]
            assert_same_entities([r["entities"] for r in got], ner([t for _, t in wanted]))
    for name in ("part-0.errors.jsonl", "part-1.errors.jsonl"):
        assert outputs["ray"][name].read_bytes() == outputs["local"][name].read_bytes()
    # A second run with the other engine finds everything done.
    argv[argv.index("--output") + 1] = str(tmp_path / "local")
    assert main(argv) == 0
    assert "0 files labelled, 2 already done" in capsys.readouterr().out


def test_ray_engine_reports_a_bad_model_in_one_line(ray_session, tmp_path, capsys):
    (tmp_path / "a.txt").write_text("Paris\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    argv = ["batch", "--input", str(tmp_path / "a.txt"), "--output", str(tmp_path / "out"),
            "--model", str(tmp_path / "model"), "--engine", "ray"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("minibert-ner: error: config.json has model_type None")
    assert not (tmp_path / "out" / "a.jsonl").exists()


def test_ray_worker_error_is_reported_in_one_line(ray_session, tmp_path, minilm):
    """A MiniBertError raised while an actor labels a batch (here: float16 logits that overflow)
    comes back as one BatchError line, not Ray's remote traceback; nothing is published."""
    from .conftest import make_reference_checkpoint

    model = make_reference_checkpoint(
        tmp_path / "model", tokenizer_from=minilm, classifier_scale=1e7
    )
    (tmp_path / "a.txt").write_text("Paris is in France\n")
    with pytest.raises(BatchError, match="a Ray worker failed: the model produced NaN or inf"):
        run_batch(tmp_path / "a.txt", tmp_path / "out", model, engine="ray", dtype="float16")
    assert not (tmp_path / "out" / "a.jsonl").exists()
