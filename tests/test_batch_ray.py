"""The Ray engine (`ray_engine.py`, `minibert-ner batch --engine ray`): the same records as the
in-process pipeline and the local engine, on files of every kind (all good, all bad, empty,
mixed: the blocks' declared types), errors in one line, and a cluster that cannot be reached."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from minibert_ner.batch import EXIT_INCOMPLETE, run_batch
from minibert_ner.cli import main
from minibert_ner.errors import BatchError

from .helpers.assertions import assert_same_entities
from .helpers.checkpoints import make_reference_checkpoint
from .helpers.corpora import (
    Corpus,
    Expected,
    InputFile,
    arrow,
    assert_same_written,
    check_outputs,
    read_jsonl,
)
from .helpers.data import REPO, conll_sentences

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
    from minibert_ner.inference.pipeline import pipeline

    return pipeline(model=str(small_distilbert))


def test_ray_dataset_equals_pipeline(ray_session, small_distilbert, ner, texts):
    from minibert_ner.batch.ray_engine import tag_dataset

    ds = ray_session.data.from_items([{"n": i, "text": t} for i, t in enumerate(texts)])
    rows = tag_dataset(ds, str(small_distilbert), num_actors=2, records_per_batch=64).take_all()
    got = [row["entities"] for row in sorted(rows, key=lambda row: row["n"])]
    expected = ner(texts)
    assert len(got) == CONLL_TEST_SENTENCES
    assert sum(map(len, expected)) > len(texts)  # entities to compare, not just empty lists
    assert_same_entities(got, expected, tolerance=1e-5)


def test_tag_dataset_keeps_nulls_null(ray_session, small_distilbert, ner):
    """A text column from pandas with None and NaN (how pandas writes a missing string), and
    batches whose texts are all missing: null entities, never an error or a float."""
    pd = pytest.importorskip("pandas")
    from minibert_ner.batch.ray_engine import tag_dataset

    frame = pd.DataFrame({"text": [None, "Angela Merkel in Paris", float("nan"), None, None]})
    ds = ray_session.data.from_pandas(frame)
    rows = tag_dataset(ds, str(small_distilbert), num_actors=1, records_per_batch=2).take_all()
    assert [r["entities"] is None for r in rows] == [True, False, True, True, True]
    assert_same_entities([rows[1]["entities"]], ner(["Angela Merkel in Paris"]), tolerance=1e-5)


def fixed_corpus() -> Corpus:
    """One folder with each case that once broke the Ray engine: a file of only good records
    (its error column all null), an empty file, a file of only bad records (its text column all
    null), a JSONL file with no text field at all, ids of mixed types, Parquet with nulls."""
    sentences = [" ".join(w) for w in conll_sentences("test", limit=40)]
    good = "\n".join(sentences[:30]) + "\n"
    jsonl = [{"id": 1, "text": sentences[30]}, {"id": "two", "text": sentences[31]},
             {"id": 3, "text": None}, {"id": "four", "text": sentences[32]}]  # fmt: skip
    return Corpus(
        [
            InputFile(
                "good.txt",
                [Expected({"line": i + 1}, t) for i, t in enumerate(sentences[:30])],
                data=good.encode(),
            ),
            InputFile("empty.txt", [], data=b""),
            InputFile("bad.txt", [Expected({"line": n}, None) for n in (1, 2)], data=b"\xff\n\xc3"),
            InputFile(
                "notext.jsonl",
                [Expected({"line": n, "id": n}, None) for n in (1, 2)],
                data=b'{"id": 1, "title": "a"}\n{"id": 2, "body": "b"}\n',
            ),
            InputFile(
                "sub/mixed.jsonl",
                [
                    Expected({"line": 1, "id": 1}, sentences[30]),
                    Expected({"line": 2, "id": "two"}, sentences[31]),
                    Expected({"line": 3, "id": 3}, None),
                    Expected({"line": 4, "id": "four"}, sentences[32]),
                ],
                data="\r\n".join(json.dumps(o) for o in jsonl).encode(),
            ),
            InputFile(
                "nulls.parquet",
                [
                    Expected({"row": 0, "id": 5}, sentences[33]),
                    Expected({"row": 1, "id": 6}, None),
                    Expected({"row": 2}, None),
                ],  # fmt: skip
                columns={
                    "text": ([sentences[33], None, "x"], "string"),
                    "id": ([5, 6, None], "int64"),
                },  # fmt: skip
            ),
        ],
        id_column="id",
    )


@pytest.mark.parametrize("output_format", ["jsonl", "parquet"])
def test_both_engines_on_every_kind_of_file(
    ray_session, tmp_path, small_distilbert, ner, output_format
):
    arrow()
    corpus = fixed_corpus()
    folder = corpus.write(tmp_path / "corpus")
    written = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        summary = run_batch(
            folder, out, small_distilbert, engine=engine, id_column="id",
            output_format=output_format, num_actors=1 if engine == "ray" else None,
        )  # fmt: skip
        written[engine] = check_outputs(corpus, folder, out, output_format, ner)
        c = summary.counts
        assert (summary.files, c.records) == (6, corpus.records)
        assert c.records == c.written + c.errors
        assert summary.exit_status == EXIT_INCOMPLETE
    assert_same_written(written["local"], written["ray"])
    paths = {
        e: sorted(p.relative_to(tmp_path / e) for p in (tmp_path / e).rglob("*")) for e in written
    }
    assert paths["local"] == paths["ray"]


def test_a_file_of_only_good_records_is_written(ray_session, tmp_path, small_distilbert, capsys):
    """The reported case: every record good, so the error column is all null."""
    sentences = [" ".join(w) for w in conll_sentences("test", limit=400)]
    (tmp_path / "in.txt").write_text("\n".join(sentences) + "\n")
    argv = ["batch", "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out"),
            "--engine", "ray", "--model", str(small_distilbert)]  # fmt: skip
    assert main(argv) == 0
    assert "400 records = 400 written + 0 errors" in capsys.readouterr().out
    assert len(read_jsonl(tmp_path / "out" / "in.jsonl")) == 400
    assert not (tmp_path / "out" / "in.errors.jsonl").exists()


def test_command_both_engines(ray_session, tmp_path, small_distilbert, ner, texts, capsys):
    from .test_batch import write_corpus

    texts = texts[:COMMAND_TEXTS]
    expected = write_corpus(tmp_path / "corpus", texts)
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        argv = ["batch", "--input", str(tmp_path / "corpus" / "part-*"), "--output", str(out),
                "--model", str(small_distilbert), "--id-column", "id", "--engine", engine]  # fmt: skip
        assert main(argv) == EXIT_INCOMPLETE  # 3 records could not be labelled
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
            assert_same_entities(
                [r["entities"] for r in got], ner([t for _, t in wanted]), tolerance=1e-5
            )
    for name in ("part-0.errors.jsonl", "part-1.errors.jsonl"):
        assert outputs["ray"][name].read_bytes() == outputs["local"][name].read_bytes()
    # A second run with the other engine finds everything done.
    argv[argv.index("--output") + 1] = str(tmp_path / "local")
    assert main(argv) == EXIT_INCOMPLETE
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
    model = make_reference_checkpoint(
        tmp_path / "model", tokenizer_from=minilm, classifier_scale=1e7
    )
    (tmp_path / "a.txt").write_text("Paris is in France\n")
    with pytest.raises(BatchError, match="a Ray worker failed: the model produced NaN or inf"):
        run_batch(tmp_path / "a.txt", tmp_path / "out", model, engine="ray", dtype="float16")
    assert not (tmp_path / "out" / "a.jsonl").exists()


# --- a cluster that cannot be reached: in a process of its own (this one has Ray running) ----


def run_command(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env_code = "import sys; from minibert_ner.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", env_code, *argv],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )  # fmt: skip


def test_unreachable_cluster_fails_fast_in_one_line(tmp_path, small_distilbert):
    (tmp_path / "a.txt").write_text("Paris\n")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    done = run_command(["batch", "--input", str(tmp_path / "a.txt"), "--output",
                        str(tmp_path / "out"), "--model", str(small_distilbert), "--engine", "ray",
                        "--address", f"127.0.0.1:{port}"])  # fmt: skip
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"minibert-ner: error: cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - start < 60
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_silent_cluster_times_out_in_one_line(tmp_path, small_distilbert):
    """A port that accepts connections but never answers (not a Ray cluster, or a hung one)."""
    (tmp_path / "a.txt").write_text("Paris\n")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    held = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        done = run_command(["batch", "--input", str(tmp_path / "a.txt"), "--output",
                            str(tmp_path / "out"), "--model", str(small_distilbert), "--engine",
                            "ray", "--address", f"127.0.0.1:{port}", "--connect-timeout", "3"])  # fmt: skip
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"minibert-ner: error: the Ray cluster at 127.0.0.1:{port} did not answer within 3 s; "
        "check --address and that the cluster is up (`ray status` on its head node)"
    )


def test_tag_dataset_can_carry_failures_as_data(ray_session, tmp_path, minilm):
    """With failure_column, a labelling error (float16 overflow) comes back in the rows of its
    batch, entities null, instead of failing the dataset."""
    from minibert_ner.batch.ray_engine import tag_dataset

    model = make_reference_checkpoint(
        tmp_path / "model", tokenizer_from=minilm, classifier_scale=1e7
    )
    ds = ray_session.data.from_items([{"text": "Paris is in France"}, {"text": None}])
    rows = tag_dataset(ds, str(model), num_actors=1, dtype="float16",
                       failure_column="failure").take_all()  # fmt: skip
    assert [r["entities"] for r in rows] == [None, None]
    assert all(r["failure"].startswith("the model produced NaN or infinite scores") for r in rows)


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_an_input_gone_before_it_is_read_is_reported_and_the_rest_finish(
    request, engine, tmp_path, small_distilbert
):
    from .test_batch import HookedLog

    if engine == "ray":
        request.getfixturevalue("ray_session")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Paris\n")
    (corpus / "b.txt").write_text("Rome\n")

    def remove(line: str) -> None:  # planned and stamped, not yet read
        if "to do" in line:
            (corpus / "b.txt").unlink()

    log = HookedLog(remove)
    gone = run_batch(corpus, tmp_path / "out", small_distilbert, engine=engine, log=log)
    assert (gone.changed, gone.exit_status) == ([corpus / "b.txt"], EXIT_INCOMPLETE)
    assert (tmp_path / "out" / "a.jsonl").is_file()
    assert not (tmp_path / "out" / "b.jsonl").exists()
    assert any("b.txt was deleted while the job ran" in line for line in log.lines)
    (corpus / "b.txt").write_text("Rome\n")  # back: the next run finishes the job
    summary = run_batch(corpus, tmp_path / "out", small_distilbert, engine=engine)
    assert (summary.total.records, summary.exit_status) == (2, 0)
