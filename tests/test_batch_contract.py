"""The batch contract over generated folders (hypothesis), for both engines on the same inputs.

Folders of text, JSONL and Parquet files: clean, empty, all bad, mixed; LF and CRLF, with and
without a final line break, a BOM, a very long line; JSONL with missing, null and non-string
text, bad and mixed-type ids; Parquet with null texts and ids. For every input file: records
in = written + errors, every written record has the expected key and the pipeline's entities,
every error record a non-empty reason; the exit status is 0 exactly when nothing was skipped;
and the two engines write the same records (scores within 1e-4).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibert_ner.batch import EXIT_INCOMPLETE, run_batch

from .helpers.corpora import (
    Corpus,
    arrow,
    assert_same_written,
    check_outputs,
    corpora,
    expected_outcome,
)

SLOW_FIXTURES = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module")
def ner(small_distilbert):
    from minibert_ner.inference.pipeline import pipeline

    return pipeline(model=str(small_distilbert))


def expected_errors(corpus: Corpus, output_format: str) -> int:
    return sum(
        sum(r.text is None for r in expected_outcome(f, output_format)) for f in corpus.files
    )


def run_and_check(corpus, folder, out, output_format, model, ner, **engine) -> dict:
    summary = run_batch(
        folder, out, model, id_column=corpus.id_column, output_format=output_format, **engine
    )
    written = check_outputs(corpus, folder, out, output_format, ner)
    errors = expected_errors(corpus, output_format)
    c = summary.counts
    assert (summary.files, c.records, c.errors) == (len(corpus.files), corpus.records, errors)
    assert c.records == c.written + c.errors
    assert summary.exit_status == (EXIT_INCOMPLETE if errors else 0)
    # A rerun finds every file done, and still tells the truth about the folder.
    again = run_batch(folder, out, model, id_column=corpus.id_column, output_format=output_format)
    assert (again.files, again.skipped, again.total.records) == (0, len(corpus.files), c.records)
    assert again.exit_status == summary.exit_status
    return written


@settings(max_examples=80, deadline=None, suppress_health_check=SLOW_FIXTURES)
@given(corpus=corpora(), output_format=st.sampled_from(["jsonl", "parquet"]))
def test_local_engine_keeps_the_contract(tmp_path_factory, small_distilbert, ner, corpus,
                                         output_format):  # fmt: skip
    arrow()
    tmp = tmp_path_factory.mktemp("contract")
    folder = corpus.write(tmp / "corpus")
    run_and_check(corpus, folder, tmp / "out", output_format, small_distilbert, ner)


@settings(max_examples=12, deadline=None, suppress_health_check=SLOW_FIXTURES)
@given(corpus=corpora(max_files=8), output_format=st.sampled_from(["jsonl", "parquet"]))
def test_both_engines_keep_the_contract_and_agree(ray_session, tmp_path_factory, small_distilbert,
                                                  ner, corpus, output_format):  # fmt: skip
    arrow()
    tmp = tmp_path_factory.mktemp("engines")
    folder = corpus.write(tmp / "corpus")
    local = run_and_check(corpus, folder, tmp / "local", output_format, small_distilbert, ner)
    ray = run_and_check(
        corpus, folder, tmp / "ray", output_format, small_distilbert, ner,
        engine="ray", num_actors=1,
    )  # fmt: skip
    assert_same_written(local, ray)
