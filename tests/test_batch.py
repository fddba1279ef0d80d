"""The batch job (`batch.py`, `minibert-ner batch`) with the local engine: counts, exit status,
resume, stable output paths, inputs that change, the output folder's checks and lock, and the
manifest's journal. The Ray engine: test_batch_ray.py; the contract over generated corpora:
test_batch_contract.py; kills and unwritable folders: test_batch_faults.py."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from minibert_ner.batch import EXIT_INCOMPLETE, run_batch
from minibert_ner.batch import job as batch
from minibert_ner.batch.folder import JOURNAL, OutputFolder
from minibert_ner.batch.local import local_results
from minibert_ner.batch.records import find_inputs
from minibert_ner.cli import main
from minibert_ner.errors import BatchError
from minibert_ner.inference.options import PipelineOptions

from .helpers.assertions import assert_same_entities
from .helpers.corpora import arrow, read_jsonl
from .helpers.data import conll_sentences


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [" ".join(words) for words in conll_sentences("test", limit=200)]


@pytest.fixture(scope="module")
def ner(small_distilbert):
    from minibert_ner.inference.pipeline import pipeline

    return pipeline(model=str(small_distilbert))


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


def batch_argv(inputs, out, model, *extra) -> list[str]:
    argv = ["batch", "--output", str(out), "--model", str(model), *extra]
    for path in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        argv += ["--input", str(path)]
    return argv


class HookedLog:
    """A progress stream (the `log` of run_batch) that calls `hook(line)` for each line the job
    writes: a way to act at a known point of a real run (after planning, after a file)."""

    def __init__(self, hook) -> None:
        self.hook, self.lines = hook, []

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                self.lines.append(line)
                self.hook(line)

    def flush(self) -> None:
        pass


# --- options and counts -----------------------------------------------------------------------


def test_command_refuses_ray_options_for_the_local_engine(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("Paris\n")
    argv = batch_argv(tmp_path / "a.txt", tmp_path / "out", "unused", "--num-actors", "2")
    assert main(argv) == 2
    assert "--num-actors: only for the Ray engine; add --engine ray" in capsys.readouterr().err


def test_empty_arguments_are_errors(tmp_path, monkeypatch, capsys):
    """An unset shell variable gives "": not the current folder, as Path("") would read it."""
    (tmp_path / "a.txt").write_text("Paris\n")
    monkeypatch.chdir(tmp_path)
    cases = {
        ("", "unused"): "an input is empty (an unset variable?)",
        ("a.txt", ""): "the model is empty (an unset variable?)",
    }
    for (inputs, model), message in cases.items():
        assert main(batch_argv(inputs, tmp_path / "out", model)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_local_engine_matches_pipeline_and_counts_add_up(tmp_path, small_distilbert, ner, texts):
    expected = write_corpus(tmp_path / "corpus", texts[:60])
    summary = run_batch(tmp_path / "corpus", tmp_path / "out", small_distilbert, id_column="id")
    c = summary.counts
    assert (summary.files, c.records, c.written, c.errors) == (2, 63, 60, 3)
    assert summary.exit_status == EXIT_INCOMPLETE  # 3 records are in errors files
    for name, wanted in expected.items():
        got = read_jsonl(tmp_path / "out" / name)
        assert [{k: v for k, v in r.items() if k != "entities"} for r in got] == [
            key for key, _ in wanted
        ]
        # Records of both files share forward batches: float32 rounding of scores may differ.
        assert_same_entities(
            [r["entities"] for r in got], ner([t for _, t in wanted]), tolerance=1e-5
        )
    assert read_jsonl(tmp_path / "out" / "part-0.errors.jsonl") == [
        {"line": 4, "error": "invalid UTF-8: byte 0xe9 at byte 3 of the line (invalid "
         "continuation byte)"}]  # fmt: skip
    errors = read_jsonl(tmp_path / "out" / "part-1.errors.jsonl")
    assert [(e["line"], e["id"]) for e in errors] == [(6, "no-text"), (8, "number")]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    counts = [(f["records"], f["written"], f["errors"]) for f in manifest["files"].values()]
    assert counts == [(31, 30, 1), (32, 30, 2)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.json", "part-0.errors.jsonl", "part-0.jsonl", "part-1.errors.jsonl",
        "part-1.jsonl"]  # fmt: skip


def test_exit_status_tells_whether_every_record_was_labelled(tmp_path, small_distilbert, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "clean.txt").write_text("Paris\nBerlin\n")
    assert main(batch_argv(corpus, tmp_path / "out", small_distilbert)) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "1 files labelled, 0 already done; 2 records = 2 written + 0 errors" in last

    (corpus / "bad.txt").write_bytes(b"Rome\n\xff\n")
    assert main(batch_argv(corpus, tmp_path / "out", small_distilbert)) == EXIT_INCOMPLETE
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("1 files labelled, 1 already done; 2 records = 1 written + 1 errors")
    assert "; all 2 files: 4 records = 3 written + 1 errors;" in last
    # Nothing left to do, but a record of the folder was never labelled: still not 0.
    assert main(batch_argv(corpus, tmp_path / "out", small_distilbert)) == EXIT_INCOMPLETE
    assert "all 2 files: 4 records = 3 written + 1 errors" in capsys.readouterr().out


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


def test_parquet_output_reports_ids_it_cannot_hold(tmp_path, small_distilbert):
    arrow()
    (tmp_path / "a.jsonl").write_text(
        '{"id": 1, "text": "Paris"}\n{"id": "two", "text": "Rome"}\n'
        '{"id": 3, "text": "Oslo"}\n{"id": 99999999999999999999, "text": "Bonn"}\n'
    )
    summary = run_batch(
        tmp_path / "a.jsonl", tmp_path / "out", small_distilbert,
        output_format="parquet", id_column="id",
    )  # fmt: skip
    c = summary.counts
    assert (c.records, c.written, c.errors) == (4, 2, 2)
    errors = read_jsonl(tmp_path / "out" / "a.errors.jsonl")
    assert [(e["line"], e["id"]) for e in errors] == [(2, "two"), (4, 99999999999999999999)]
    assert "use --format jsonl" in errors[0]["error"] and "64-bit" in errors[1]["error"]


# --- resume, stamps, changes ------------------------------------------------------------------


def test_resume_skips_finished_files(tmp_path, small_distilbert, texts):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    write_corpus(corpus, texts[:20])
    options = batch.run_options(small_distilbert, "jsonl", "text", None, PipelineOptions())

    def interrupted(jobs):  # the local engine, stopped (as by Ctrl-C) when it reaches the 2nd file
        for result in local_results(jobs, str(small_distilbert), PipelineOptions()):
            if result[0] == 1:
                raise KeyboardInterrupt
            yield result

    with OutputFolder(out, options) as folder:
        jobs = folder.plan(find_inputs(corpus), "jsonl")
        progress = batch.ProgressLog(None, len(jobs))
        with pytest.raises(KeyboardInterrupt):
            batch.write_results(jobs, interrupted(jobs), folder, progress)
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

    # Rewritten with the same size and modification time: the inode and ctime still tell.
    data, stat = jobs[0].source.read_bytes(), jobs[0].source.stat()
    jobs[0].source.unlink()
    jobs[0].source.write_bytes(data.replace(b"the", b"THE", 1))
    os.utime(jobs[0].source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run_batch(corpus, out, small_distilbert).files == 1

    with pytest.raises(BatchError, match="other options.*aggregation_strategy"):
        run_batch(corpus, out, small_distilbert, aggregation_strategy="first")

    # A manifest written before an output option existed resumes with that option's default
    # (which keeps the old behaviour), and refuses any other value of it.
    manifest = out / "manifest.json"
    saved = json.loads(manifest.read_text("utf-8"))
    del saved["options"]["word_grouping"]
    manifest.write_text(json.dumps(saved), "utf-8")
    assert run_batch(corpus, out, small_distilbert).skipped == 2
    with pytest.raises(BatchError, match="other options.*word_grouping"):
        run_batch(corpus, out, small_distilbert, word_grouping="word_ids")


def test_the_model_is_known_by_what_it_holds(tmp_path, small_distilbert):
    """Weights replaced at the same path are another model: refused like any option change,
    before the model loads; the same files touched still match, and a manifest written before
    fingerprints were kept resumes."""
    model, out = tmp_path / "model", tmp_path / "out"
    shutil.copytree(small_distilbert, model)
    (tmp_path / "a.txt").write_text("Paris\n")
    assert run_batch(tmp_path / "a.txt", out, model).files == 1
    for path in model.iterdir():
        os.utime(path)  # touched, or copied without keeping times: the same model
    assert run_batch(tmp_path / "a.txt", out, model).skipped == 1

    manifest = out / "manifest.json"
    saved = json.loads(manifest.read_text("utf-8"))
    assert saved["options"]["model_fingerprint"] == batch.model_fingerprint(model)
    del saved["options"]["model_fingerprint"]
    manifest.write_text(json.dumps(saved), "utf-8")
    assert run_batch(tmp_path / "a.txt", out, model).skipped == 1  # unknown then: accepted

    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 1  # one bit of one weight, in the middle of the file
    weights.write_bytes(bytes(data))
    changed = run_batch(tmp_path / "a.txt", tmp_path / "out2", model)  # stores the new one
    assert changed.files == 1
    for flipped in (-1, middle):  # at the end; in the middle (the weights stored in `out`)
        data[flipped] ^= 1
        weights.write_bytes(bytes(data))
        with pytest.raises(BatchError, match="other options.*model_fingerprint"):
            run_batch(tmp_path / "a.txt", tmp_path / "out2", model)
        data[flipped] ^= 1
    weights.write_bytes(bytes(data))  # as stored in out2 again
    (model / "config.json").write_text((model / "config.json").read_text() + " ")
    with pytest.raises(BatchError, match="other options.*model_fingerprint"):
        run_batch(tmp_path / "a.txt", tmp_path / "out2", model)


def test_an_input_that_grows_during_the_run_is_labelled_again(tmp_path, small_distilbert):
    """Stamped before reading: lines appended while the job runs are not half read, the file is
    reported as changed (exit status 3), and the next run labels it whole."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    log_file = corpus / "log.txt"
    log_file.write_text("Paris\nBerlin\n")

    def append(line: str) -> None:  # after planning (and stamping), before reading
        if "to do" in line:
            with open(log_file, "a") as f:
                f.write("Rome\nMadrid and a half-written li")

    log = HookedLog(append)
    summary = run_batch(corpus, tmp_path / "out", small_distilbert, log=log)
    assert summary.changed == [log_file]
    assert summary.exit_status == EXIT_INCOMPLETE
    assert summary.counts.records == 2  # the stamped size: the lines that were there
    assert [r["line"] for r in read_jsonl(tmp_path / "out" / "log.jsonl")] == [1, 2]
    assert any("changed while it was read" in line for line in log.lines)
    assert "1 files changed while read" in summary.describe()

    with open(log_file, "a") as f:
        f.write("ne\n")
    again = run_batch(corpus, tmp_path / "out", small_distilbert)
    assert (again.files, again.counts.records, again.exit_status) == (1, 4, 0)
    assert [r["line"] for r in read_jsonl(tmp_path / "out" / "log.jsonl")] == [1, 2, 3, 4]


@pytest.mark.parametrize("kind", ["txt", "jsonl", "parquet"])
def test_an_input_deleted_during_the_run_is_reported_and_the_rest_finish(
    tmp_path, small_distilbert, kind
):
    """Deleted after planning, whatever its kind: reported as changed (exit status 3), no
    output published for it, and the files before and after it are labelled and kept."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("a", "c"):
        (corpus / f"{name}.txt").write_text("Paris\nBerlin\n")
    deleted = corpus / f"b.{kind}"
    if kind == "txt":
        deleted.write_text("Paris\nBerlin\n")
    elif kind == "jsonl":
        deleted.write_text('{"text": "Paris"}\n{"text": "Berlin"}\n')
    else:
        pa, pq = arrow()
        pq.write_table(pa.table({"text": ["Paris", "Berlin"]}), deleted)

    def delete(line: str) -> None:  # after planning (and stamping), before reading
        if "to do" in line:
            deleted.unlink()

    log = HookedLog(delete)
    summary = run_batch(corpus, tmp_path / "out", small_distilbert, log=log)
    assert summary.changed == [deleted]
    assert (summary.exit_status, summary.counts.records) == (EXIT_INCOMPLETE, 4)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jsonl")) == ["a.jsonl", "c.jsonl"]
    assert any(f"b.{kind} was deleted while the job ran" in line for line in log.lines)
    again = run_batch(corpus, tmp_path / "out", small_distilbert)
    assert (again.files, again.skipped, again.exit_status) == (0, 2, 0)


def test_every_input_pointed_at_is_labelled_or_reported(tmp_path, small_distilbert, capsys):
    """A linked subfolder is walked (once, however many links lead to it, loops included); a
    FIFO and a dangling link are named on stderr, and the exit status says the job is not
    complete."""
    corpus, elsewhere = tmp_path / "corpus", tmp_path / "elsewhere"
    corpus.mkdir()
    elsewhere.mkdir()
    (corpus / "a.txt").write_text("Paris\n")
    (elsewhere / "b.txt").write_text("Berlin\n")
    (corpus / "linked").symlink_to(elsewhere)
    (corpus / "again").symlink_to(elsewhere)
    (elsewhere / "loop").symlink_to(corpus)
    os.mkfifo(corpus / "pipe.txt")
    (corpus / "gone.jsonl").symlink_to(tmp_path / "nothing.jsonl")
    assert main(batch_argv(corpus, tmp_path / "out", small_distilbert)) == EXIT_INCOMPLETE
    err = capsys.readouterr().err
    assert f"cannot read {corpus / 'pipe.txt'}: not a regular file" in err
    assert f"cannot read {corpus / 'gone.jsonl'}: a link to nothing" in err
    assert "2 inputs cannot be read (named above): not labelled" in err
    written = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.jsonl"))
    # Each file once, placed by what it is (links resolved) below the inputs' common folder.
    assert written == [Path("corpus/a.jsonl"), Path("elsewhere/b.jsonl")]


# --- where outputs go ---------------------------------------------------------------------------


def test_output_paths_depend_on_the_input_not_on_how_it_was_named(tmp_path, small_distilbert):
    corpus = tmp_path / "corpus"
    (corpus / "x").mkdir(parents=True)
    (corpus / "x" / "a.txt").write_text("Paris\nBerlin\n")
    (corpus / "b.txt").write_text("Rome\n")
    out = tmp_path / "out"
    first = run_batch(corpus / "x" / "a.txt", out, small_distilbert)
    assert first.files == 1 and (out / "a.jsonl").is_file()
    before = (out / "a.jsonl").read_bytes()

    # The whole corpus: its root is wider, so a.txt's finished output moves below x/.
    second = run_batch(corpus, out, small_distilbert)
    assert (second.files, second.skipped) == (1, 1)  # a.txt is not labelled again
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jsonl")) == [
        "b.jsonl", "x/a.jsonl"]  # fmt: skip
    assert (out / "x" / "a.jsonl").read_bytes() == before
    assert second.total.records == 3  # every record once

    # Named again alone, through a link and a relative path: the same file, done.
    os.symlink(corpus, tmp_path / "link")
    third = run_batch(tmp_path / "link" / "x" / ".." / "x" / "a.txt", out, small_distilbert)
    assert (third.files, third.skipped) == (0, 1)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jsonl")) == [
        "b.jsonl", "x/a.jsonl"]  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["root"] == str(corpus.resolve())
    assert sorted(e["output"] for e in manifest["files"].values()) == ["b.jsonl", "x/a.jsonl"]


def test_inputs_that_would_share_an_output_are_refused(tmp_path, small_distilbert):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Paris\n")
    (corpus / "a.jsonl").write_text('{"text": "Paris"}\n')
    with pytest.raises(BatchError, match="would both write"):
        run_batch(corpus, tmp_path / "out", small_distilbert)
    run_batch(corpus / "a.txt", tmp_path / "out", small_distilbert)
    with pytest.raises(BatchError, match="would both write"):  # with one of an earlier run
        run_batch(corpus / "a.jsonl", tmp_path / "out", small_distilbert)
    with pytest.raises(BatchError, match="is inside the output folder"):  # never overwritten
        run_batch(corpus / "a.txt", corpus / "..", small_distilbert)


def test_an_output_folder_inside_the_inputs_is_not_read_back(tmp_path, small_distilbert, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Paris\nBerlin\n")
    out = corpus / "out"
    for _ in range(3):
        assert main(batch_argv(corpus, out, small_distilbert)) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0].startswith("1 files labelled, 0 already done; 2 records")
    assert printed[1].startswith("0 files labelled, 1 already done")
    assert printed[2].startswith("0 files labelled, 1 already done")
    assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "manifest.json"]


# --- the output folder: checked and locked before the model loads ------------------------------


def test_output_folder_problems_are_found_before_the_model_loads(tmp_path, capsys):
    """The model named does not exist: each error below is about the output folder, so it was
    found before the model was looked for."""
    (tmp_path / "a.txt").write_text("Paris\n")
    (tmp_path / "file").write_text("not a folder")
    missing_model = tmp_path / "no-such-model"
    cases = {
        tmp_path / "file": "--output .*/file is a file; pass a folder",
        tmp_path / "file" / "out": "cannot write to the output folder .*/file/out: Not a directory",
    }
    for out, message in cases.items():
        assert main(batch_argv(tmp_path / "a.txt", out, missing_model)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert re.search(f"minibert-ner: error: {message}", err[0]), err
    # An output subfolder that cannot be made (a file stands where it goes).
    (tmp_path / "corpus" / "x").mkdir(parents=True)
    (tmp_path / "corpus" / "x" / "b.txt").write_text("Rome\n")
    (tmp_path / "corpus" / "c.txt").write_text("Oslo\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("in the way")
    assert main(batch_argv(tmp_path / "corpus", tmp_path / "out", missing_model)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create output folder" in err[0] and "/out/x" in err[0]
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_one_run_at_a_time_per_output_folder(tmp_path, small_distilbert):
    (tmp_path / "a.txt").write_text("Paris\n")
    out = tmp_path / "out"
    options = batch.run_options(small_distilbert, "jsonl", "text", None, PipelineOptions())
    with (
        OutputFolder(out, options),  # another run holds the folder
        pytest.raises(BatchError, match="in use by another minibert-ner batch run"),
    ):
        run_batch(tmp_path / "a.txt", out, small_distilbert)
    assert run_batch(tmp_path / "a.txt", out, small_distilbert).files == 1  # released


# --- the manifest: a journal appended per file, folded once -----------------------------------


def test_each_finished_file_appends_one_journal_line(tmp_path, small_distilbert):
    """With many files, finishing one must not rewrite what the others wrote: while the run
    goes on, manifest.json stays as it was written before the first file finished (with the
    folder's root), and the journal grows by one line per file; they are folded at the end."""
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()
    n = 120
    for i in range(n):
        (corpus / f"{i:04d}.txt").write_text(f"Paris {i}\n")
    seen = []

    def watch(line: str) -> None:
        if "records =" in line and "files]" in line:  # a file finished
            manifest = (out / "manifest.json").stat()
            lines = len((out / JOURNAL).read_text().splitlines())
            seen.append((lines, manifest.st_ino, manifest.st_mtime_ns))

    summary = run_batch(corpus, out, small_distilbert, log=HookedLog(watch))
    assert summary.counts.records == n
    assert [lines for lines, *_ in seen] == list(range(1, n + 1))
    assert len({tuple(version) for _, *version in seen}) == 1  # never rewritten meanwhile
    assert not (out / JOURNAL).exists()
    assert len(json.loads((out / "manifest.json").read_text())["files"]) == n


def test_a_journal_line_cut_short_by_a_kill_redoes_only_its_file(tmp_path, small_distilbert):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()
    for name in ("a", "b", "c"):
        (corpus / f"{name}.txt").write_text(f"{name} Paris\n")
    run_batch(corpus, out, small_distilbert)
    manifest = json.loads((out / "manifest.json").read_text())
    # The state a kill leaves after a and b finished (c's line half written).
    lines = [json.dumps({"source": s, **e}) for s, e in manifest["files"].items()]
    (out / JOURNAL).write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:40])
    manifest["files"] = {}
    (out / "manifest.json").write_text(json.dumps(manifest))
    summary = run_batch(corpus, out, small_distilbert)
    assert (summary.files, summary.skipped) == (1, 2)
    assert not (out / JOURNAL).exists()


def test_a_linked_output_is_written_through_and_its_stale_temporary_removed(
    tmp_path, small_distilbert
):
    """An output that is a link to a file elsewhere: the file it names is replaced whole, the
    link stays, and the temporary a killed run left beside that file (not beside the link) is
    removed when the job starts."""
    (tmp_path / "a.txt").write_text("Paris\n")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    run_batch(tmp_path / "a.txt", out, small_distilbert)
    elsewhere.mkdir()
    shutil.move(out / "a.jsonl", elsewhere / "a.jsonl")
    (out / "a.jsonl").symlink_to(elsewhere / "a.jsonl")
    (out / "a.errors.jsonl").symlink_to(elsewhere / "a.errors.jsonl")  # none yet
    for name in ("a.jsonl.tmp", "a.errors.jsonl.tmp"):  # what a killed run left
        (elsewhere / name).write_text('{"cut": ')
    (tmp_path / "a.txt").write_text("Paris\nBerlin\n")  # changed: labelled again
    assert run_batch(tmp_path / "a.txt", out, small_distilbert).files == 1
    assert (out / "a.jsonl").is_symlink()
    assert [r["line"] for r in read_jsonl(elsewhere / "a.jsonl")] == [1, 2]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["a.jsonl"]
