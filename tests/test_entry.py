"""The pipeline's one entry, `NERPipeline.label(items, options)`: many texts, each with options
of its own, run together, each answer what a call with those options gives; one tokenization for
all and one run of the model per group of texts that need the same runner.

"What a call gives" is exact but for scores, which agree to float rounding (1e-4): a text's
logits in a packed batch depend by an ulp or so on its batch mates (the matmuls' shapes), as in
`ner([a, b])` against `[ner(a), ner(b)]`. A batch the same as a call's is exact."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibert_ner
from minibert_ner import InputError, NERPipeline, PipelineOptions
from minibert_ner.inference.pipeline import CALL_OPTIONS, Labelled, output_for
from minibert_ner.inference.runner import WindowRunner

from .helpers.assertions import assert_same_entities
from .helpers.checkpoints import CALIBRATION_TEXTS

WINDOW = 12  # the pipeline's max_length: most texts below are several windows long
LONG = " ".join(CALIBRATION_TEXTS)
TEXTS = st.one_of(
    st.sampled_from([*CALIBRATION_TEXTS, LONG, "", "a", "Berlin " * 9, "北京 ok 😀"]),
    st.lists(st.sampled_from(["Angela", "Merkel", "visited", "Paris", ".", "EU"]), max_size=30).map(
        " ".join
    ),
)
# Call-time options a text may come with (None: the pipeline's).
OVERRIDES = st.fixed_dictionaries(
    {},
    optional={
        "aggregation_strategy": st.sampled_from(["none", "simple", "first", "average", "max"]),
        "ignore_labels": st.sampled_from([[], ["O"], ["O", "PER", "B-PER", "I-PER"]]),
        "word_grouping": st.sampled_from(["transformers", "word_ids"]),
        "stride": st.integers(0, 8),
        "max_length": st.sampled_from([8, WINDOW, 16]),
        "batch_size": st.integers(1, 4),
    },
)
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def ner(ner_model_dir) -> NERPipeline:
    return minibert_ner.pipeline(ner_model_dir, max_length=WINDOW, stride=3)


@SETTINGS
@given(items=st.lists(st.tuples(TEXTS, OVERRIDES), max_size=12))
def test_each_text_gets_what_a_call_with_its_options_gives(ner, items):
    texts = [text for text, _ in items]
    options = [ner.options.replace(**overrides) for _, overrides in items]
    labelled = ner.label(texts, options)
    alone = [ner(text, **overrides) for text, overrides in items]
    assert_same_entities(labelled.entities, alone, str(items)[:200])
    assert labelled.tokens == sum(len(e.ids) for e in ner.tokenizer.encode_batch(texts))
    assert ner.options.max_length == WINDOW and ner.options.stride == 3  # nothing changed


@SETTINGS
@given(texts=st.lists(TEXTS, max_size=8), overrides=OVERRIDES)
def test_one_options_object_for_all_is_a_call(ner, texts, overrides):
    assert ner.label(texts, ner.options.replace(**overrides)).entities == ner(texts, **overrides)
    assert ner.label(texts).entities == ner(texts)  # None: the pipeline's own options


def test_pre_split_sentences(ner):
    sentences = [["Angela", "Merkel", "visited", "Paris"], ["EU", "rejects", "German", "call"] * 4]
    options = [ner.options.replace(aggregation_strategy=s) for s in ("first", "average")]
    got = ner.label(sentences, options, is_split_into_words=True).entities
    assert_same_entities(
        got,
        [
            ner(sentences[0], is_split_into_words=True, aggregation_strategy="first"),
            ner(sentences[1], is_split_into_words=True, aggregation_strategy="average"),
        ],
    )


def test_one_run_per_runner_needed(ner, monkeypatch):
    """Texts run together unless they need another runner: a text of one window runs the same
    whatever its stride, so only long texts with different strides (or texts with other window
    or batch options) run apart; what a run returns is decided by its texts' strategies."""
    runs: list[tuple[int, str, int]] = []
    run = WindowRunner.run

    def counted(self, encodings, output):
        runs.append((len(encodings), output, self.options.stride))
        return run(self, encodings, output)

    monkeypatch.setattr(WindowRunner, "run", counted)
    short, long = "Paris", LONG  # one window, many windows
    o = ner.options

    def runs_of(texts, options) -> list[tuple[int, str, int]]:
        runs.clear()
        ner.label(texts, options)
        return sorted(runs)

    assert runs_of([short, long, short], o) == [(3, "scores", 3)]
    mixed = [o.replace(stride=1), o.replace(stride=2, aggregation_strategy="average"), o]
    assert runs_of([short, short, short], mixed) == [(3, "probs", 1)]  # one window: one run
    assert runs_of([long, long, short], mixed) == [(1, "probs", 2), (2, "scores", 1)]
    # A stride over half a window runs as half a window: the same run as that stride.
    half = (WINDOW - 2) // 2
    assert runs_of([long, long], [o.replace(stride=half), o.replace(stride=100)]) == [
        (2, "scores", half)
    ]
    assert runs_of([short, short], [o, o.replace(max_length=16)]) == [
        (1, "scores", 3),
        (1, "scores", 3),
    ]
    assert runs_of([], o) == []


def test_runners_share_the_model_and_are_kept(ner):
    ner.label([LONG], ner.options.replace(stride=2, batch_size=3))
    runner = ner._runner(2, (WINDOW, 3, ner.options.max_batch_tokens))
    assert runner is not ner.runner and runner.model is ner.runner.model
    assert runner._forward is ner.runner._forward  # the compiled forward, when compiled
    assert ner._runner(2, (WINDOW, 3, ner.options.max_batch_tokens)) is runner


def test_output_for_the_strategies():
    assert output_for([PipelineOptions()]) == "scores"
    assert output_for([PipelineOptions(), PipelineOptions(aggregation_strategy="average")]) == (
        "probs"
    )


def test_bad_items_and_options_are_refused(ner):
    assert ner.label([]) == Labelled([], 0)
    with pytest.raises(InputError, match="expected a list of texts .str., got str"):
        ner.label("Berlin")
    with pytest.raises(InputError, match="input 1 is a int, not a str"):
        ner.label(["Berlin", 3])
    with pytest.raises(InputError, match="input 0 is not a list of words"):
        ner.label(["Berlin"], is_split_into_words=True)
    with pytest.raises(InputError, match="2 options for 1 items: give one per item, or one"):
        ner.label(["Berlin"], [ner.options, ner.options])
    with pytest.raises(InputError, match="options 0 is a dict, not PipelineOptions"):
        ner.label(["Berlin"], [{"stride": 4}])
    with pytest.raises(InputError, match="leaves no room for text"):
        ner.label(["Berlin"], ner.options.replace(max_length=2))


def test_only_the_call_options_of_an_options_object_apply(ner):
    """The loading options were fixed when the pipeline was made: an options object's own are
    not read (a server's request options carry the server's)."""
    loading = ner.options.replace(device="meta", dtype="float16", compile=True, quantize="int8")
    assert ner.label([LONG], loading).entities == ner([LONG])
    assert set(CALL_OPTIONS) == {"aggregation_strategy", "ignore_labels", "word_grouping",
                                 "stride", "max_length", "batch_size", "max_batch_tokens"}  # fmt: skip
