"""GLiNER models on the Ray engine (`tag_dataset(..., gliner=...)`, `batch --labels --engine
ray`): the entities of `GLiNERPipeline` (that is, `GLiNER.inference`), and every record
accounted for as the local engine accounts for it, on files of every kind."""

from __future__ import annotations

import pytest

from minibert_ner.batch import EXIT_INCOMPLETE, run_batch
from minibert_ner.cli import main

from .helpers.assertions import assert_same_entities
from .helpers.corpora import arrow, assert_same_written, check_outputs
from .helpers.data import conll_sentences
from .test_batch_ray import fixed_corpus
from .test_gliner import FIXTURES

MODEL = FIXTURES / "bert_span"
# One label: with random weights two labels' scores for a span can tie within 1e-6, and then
# float noise between differently padded batches decides which one a span gets.
SETTINGS = {"labels": ["person"], "threshold": 0.3}


@pytest.fixture(scope="module")
def ner():
    from minibert_ner.gliner.pipeline import GLiNERPipeline

    return GLiNERPipeline.load(MODEL, **SETTINGS)


def test_tag_dataset_with_a_gliner_model(ray_session, ner):
    from minibert_ner.batch.ray_engine import tag_dataset

    texts = [" ".join(words) for words in conll_sentences("test", limit=300)]
    rows = [{"n": i, "text": t} for i, t in enumerate(texts)] + [{"n": len(texts), "text": None}]
    ds = ray_session.data.from_items(rows)
    got = tag_dataset(ds, str(MODEL), num_actors=1, records_per_batch=64, gliner=SETTINGS)
    got = sorted(got.take_all(), key=lambda row: row["n"])
    expected = ner(texts)
    assert got[-1]["entities"] is None  # a null text: null entities
    assert sum(map(len, expected)) > 50
    assert_same_entities([row["entities"] for row in got[:-1]], expected, tolerance=1e-5)


def test_both_engines_account_for_every_record(ray_session, tmp_path, ner):
    arrow()
    corpus = fixed_corpus()
    folder = corpus.write(tmp_path / "corpus")
    written = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        summary = run_batch(
            folder, out, MODEL, engine=engine, id_column="id", gliner=SETTINGS,
            num_actors=1 if engine == "ray" else None,
        )  # fmt: skip
        written[engine] = check_outputs(corpus, folder, out, "jsonl", ner)
        c = summary.counts
        assert (summary.files, c.records) == (6, corpus.records)
        assert c.records == c.written + c.errors and c.errors > 0
        assert summary.exit_status == EXIT_INCOMPLETE
    assert_same_written(written["local"], written["ray"])


def test_a_bad_gliner_model_on_ray_is_one_line(ray_session, tmp_path, capsys):
    (tmp_path / "a.txt").write_text("Paris\n")
    argv = ["batch", "--input", str(tmp_path / "a.txt"), "--output", str(tmp_path / "out"),
            "--engine", "ray", "--model", str(FIXTURES / "bert_backbone"),
            "--labels", "person"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("minibert-ner: error: ") and "drop --labels" in err, err
    assert not (tmp_path / "out" / "a.jsonl").exists()
