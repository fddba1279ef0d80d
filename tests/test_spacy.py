"""The spaCy component against real spaCy: a blank English pipeline plus `minibert_ner` (and
one where it follows spaCy's sentencizer) gives, on CoNLL test texts, the entities of our bare
pipeline mapped to spans, for several strategies and two families; saved with `nlp.to_disk`, it
loads with `spacy.load` with the original model gone and the hub off; bad input is one line."""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from importlib.metadata import entry_points

import pytest

import minibert_ner
from minibert_ner.errors import CheckpointError, InputError, MiniBertWarning, ModelNotFoundError
from minibert_ner.inference.options import SECRET, fields_in

from .helpers.data import conll_sentences

spacy = pytest.importorskip("spacy", reason="the spacy extra: pip install 'minibert-ner[spacy]'")
from confection import ConfigValidationError  # noqa: E402
from spacy.tokens import Span  # noqa: E402

from minibert_ner.spacy_component import CONFIG_OPTIONS, MiniBertNER, make_component  # noqa: E402


def conll_texts(n_single: int = 180, n_joined: int = 20) -> list[str]:
    """CoNLL test sentences: `n_single` one to a text, then `n_joined` texts of three."""
    sentences = [" ".join(words) for words in conll_sentences("test", n_single + 3 * n_joined)]
    rest = sentences[n_single:]
    return sentences[:n_single] + [" ".join(rest[i : i + 3]) for i in range(0, len(rest), 3)]


def component_nlp(model, *, sentencizer: bool = False, **config) -> spacy.Language:
    nlp = spacy.blank("en")
    if sentencizer:
        nlp.add_pipe("sentencizer")
    nlp.add_pipe("minibert_ner", config={"model": str(model), **config})
    return nlp


def as_spans(nlp, texts, entities, alignment_mode="strict", spans_key=None):
    """Our pipeline's entities mapped to spans by hand: per text (kept, unaligned), each kept
    as (start_char, end_char, label, score)."""
    out = []
    for text, found in zip(texts, entities, strict=True):
        doc, kept, unaligned = nlp.make_doc(text), [], []
        for e in found:
            label = e.get("entity_group", e.get("entity"))
            span = doc.char_span(e["start"], e["end"], label=label, alignment_mode=alignment_mode)
            if not span or (spans_key is None and kept and span.start < kept[-1][0].end):
                unaligned.append(e)
            else:
                kept.append((span, e["score"]))
        out.append(([(s.start_char, s.end_char, s.label_, score) for s, score in kept], unaligned))
    return out


def doc_spans(doc, spans_key=None):
    spans = doc.ents if spans_key is None else doc.spans[spans_key]
    return [(s.start_char, s.end_char, s.label_, s._.score) for s in spans]


def assert_same_spans(got: list, expected: list, what: str = "") -> None:
    """Spans and labels equal; scores to 1e-5 (the texts shared other forward passes)."""
    assert [g[:3] for g in got] == [e[:3] for e in expected], what
    assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], abs=1e-5), what


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return conll_texts()


@pytest.fixture(scope="module", params=["distilbert-wordpiece", "roberta-bpe"])
def family_model(request):
    """Two families: DistilBERT with MiniLM's WordPiece, RoBERTa with a byte-level BPE (no "##":
    the pipeline's word rule decides what a word is)."""
    name = "ner_model_dir" if request.param.startswith("distilbert") else "small_roberta"
    return request.getfixturevalue(name)


@pytest.mark.parametrize(
    ("strategy", "alignment_mode", "spans_key", "sentencizer"),
    [
        ("simple", "strict", None, False),
        ("first", "expand", None, True),
        ("max", "contract", None, False),
        ("average", "strict", "ner", True),
        ("none", "strict", None, False),  # sub-word tokens: many fall inside spaCy's tokens
    ],
)
def test_entities_equal_the_pipelines_as_spans(
    family_model, texts, strategy, alignment_mode, spans_key, sentencizer
):
    ours = minibert_ner.pipeline(family_model, aggregation_strategy=strategy)
    nlp = component_nlp(
        family_model, sentencizer=sentencizer, aggregation_strategy=strategy,
        alignment_mode=alignment_mode, spans_key=spans_key,
    )  # fmt: skip
    expected = as_spans(nlp, texts, ours(texts), alignment_mode, spans_key)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(nlp.pipe(texts, batch_size=64))
    component = nlp.get_pipe("minibert_ner")
    n_unaligned = 0
    for doc, (kept, unaligned) in zip(docs, expected, strict=True):
        assert_same_spans(doc_spans(doc, spans_key), kept, doc.text)
        got = [{k: v for k, v in e.items() if k != "reason"} for e in doc._.minibert_unaligned]
        assert [(e["start"], e["end"]) for e in got] == [(e["start"], e["end"]) for e in unaligned]
        n_unaligned += len(unaligned)
    assert sum(len(k) for k, _ in expected) > 100  # the comparison has entities to compare
    assert component.unaligned == n_unaligned
    warned = [w for w in caught if issubclass(w.category, MiniBertWarning)]
    assert len(warned) == (1 if n_unaligned else 0)  # once per component
    if strategy == "none":
        assert n_unaligned > 0  # sub-words inside spaCy's tokens are reported, not lost
    if sentencizer:  # our entities leave spaCy's sentences as the sentencizer set them
        assert [s.text for s in docs[-1].sents] == [
            s.text for s in spacy.blank("en").add_pipe("sentencizer")(nlp.make_doc(texts[-1])).sents
        ]


def test_long_docs_run_as_windows_in_packed_batches(ner_model_dir, texts):
    """Texts longer than a window (max_length=48) run as windows, many docs per label call."""
    long_texts = [" ".join(texts[i : i + 12]) for i in range(0, 120, 12)]
    options = {"max_length": 48, "stride": 16, "aggregation_strategy": "first"}
    ours = minibert_ner.pipeline(ner_model_dir, **options)
    assert all(len(ours.tokenizer.encode(t)) > 48 for t in long_texts)
    nlp = component_nlp(ner_model_dir, alignment_mode="expand", **options)
    calls = []
    component = nlp.get_pipe("minibert_ner")
    label = component.pipeline.label
    component.pipeline.label = lambda items, *a, **k: (
        calls.append(len(items)) or label(items, *a, **k)
    )
    with pytest.warns(MiniBertWarning, match="could not become spans"):
        docs = list(nlp.pipe(long_texts, batch_size=4))  # expanded sub-words overlap: reported
    assert calls == [4, 4, 2]
    expected = as_spans(nlp, long_texts, ours(long_texts), "expand")
    for doc, (kept, _) in zip(docs, expected, strict=True):
        assert_same_spans(doc_spans(doc), kept, doc.text)


def test_the_factory_is_an_entry_point():
    """spaCy loads the `spacy_factories` entry points itself: `add_pipe` and `spacy.load` find
    the factory with no import of minibert_ner (a stale editable install lacks it: reinstall)."""
    found = {ep.name: ep for ep in entry_points(group="spacy_factories")}
    assert "minibert_ner" in found, "no spacy_factories entry point: pip install -e . again"
    assert found["minibert_ner"].load() is make_component


def test_config_holds_every_option_but_secrets(ner_model_dir):
    nlp = component_nlp(ner_model_dir, stride=32, ignore_labels=["O", "MISC"], device="cpu")
    config = nlp.config["components"]["minibert_ner"]
    own = {"factory", "model", "spans_key", "alignment_mode", "labels", "threshold"}
    every = {f.name for f in dataclasses.fields(minibert_ner.PipelineOptions)}
    assert set(config) - own == every - set(fields_in(SECRET)) == set(CONFIG_OPTIONS)
    assert "token" not in config  # secret: nlp.to_disk writes the config to config.cfg
    component = nlp.get_pipe("minibert_ner")
    assert isinstance(component, MiniBertNER)
    assert component.options == minibert_ner.PipelineOptions(
        stride=32, ignore_labels=("O", "MISC"), device="cpu"
    )
    doc = nlp("Peter Blackburn met officials of the European Commission in Brussels.")
    assert all(e.label_ != "MISC" and isinstance(e._.score, float) for e in doc.ents)


def test_to_disk_and_load_offline_without_the_original(ner_model_dir, tmp_path, monkeypatch, texts):
    original = shutil.copytree(ner_model_dir, tmp_path / "original")
    nlp = component_nlp(original, sentencizer=True, aggregation_strategy="first")
    before = [doc_spans(doc) for doc in nlp.pipe(texts[:40])]
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(original)  # the model the config names is gone, and the hub is off
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == ["sentencizer", "minibert_ner"]
    assert [doc_spans(doc) for doc in loaded.pipe(texts[:40])] == before
    loaded.to_disk(tmp_path / "pipeline")  # saved where it was loaded from: the files stay
    loaded.to_disk(tmp_path / "again")
    assert [doc_spans(doc) for doc in spacy.load(tmp_path / "again").pipe(texts[:40])] == before
    shutil.rmtree(tmp_path / "pipeline" / "minibert_ner" / "model")
    with pytest.raises(ModelNotFoundError, match="save the pipeline again") as error:
        spacy.load(tmp_path / "pipeline")
    assert "\n" not in str(error.value)


def test_unknown_config_key_is_spacys_config_error(ner_model_dir):
    with pytest.raises(ConfigValidationError) as error:
        component_nlp(ner_model_dir, stirde=32)
    assert "minibert_ner -> stirde\tunexpected argument: 'stirde'" in str(error.value).splitlines()
    with pytest.raises(ConfigValidationError) as error:
        component_nlp(ner_model_dir, aggregation_strategy="firts")
    assert any(line.startswith("minibert_ner -> aggregation_strategy\t") for line in
               str(error.value).splitlines())  # fmt: skip


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"stride": -1}, "stride must be an integer >= 0"),
        ({"labels": ["person"]}, "labels and threshold are for GLiNER models"),
        ({"threshold": 0.5}, "labels and threshold are for GLiNER models"),
    ],
)
def test_bad_config_values_are_one_line(ner_model_dir, config, message):
    with pytest.raises(InputError, match=message) as error:
        component_nlp(ner_model_dir, **config)("Peter Blackburn")  # labels: once it loads
    assert "\n" not in str(error.value)


def test_models_it_cannot_run_are_one_line(tmp_path, minilm):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, num_labels=3,
    )  # fmt: skip
    folder = tmp_path / "sequence-classifier"
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    nlp = component_nlp(folder)  # the model loads on first use, or at initialize
    with pytest.raises(CheckpointError, match="BertForSequenceClassification, not a token") as seq:
        nlp.initialize()
    (tmp_path / "gliner").mkdir()
    (tmp_path / "gliner" / "gliner_config.json").write_text("{}")
    with pytest.raises(InputError, match="is a GLiNER model: name the entity types") as gliner:
        component_nlp(tmp_path / "gliner")("Peter Blackburn")
    with pytest.raises(ModelNotFoundError, match="no folder") as missing:
        component_nlp(tmp_path / "missing")("Peter Blackburn")
    for error in (seq, gliner, missing):
        assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("Peter \ud800 Blackburn", UnicodeEncodeError, "surrogates not allowed"),
        (None, ValueError, r"\[E1041\]"),
        ("x " * 500_001, ValueError, r"\[E088\]"),
    ],
)
def test_texts_spacy_cannot_tokenize_are_one_line(ner_model_dir, text, error, message):
    """spaCy refuses them before any component runs, each with a one-line error of its own."""
    nlp = component_nlp(ner_model_dir)
    with pytest.raises(error, match=message) as raised:
        nlp(text)
    assert "\n" not in str(raised.value)


def test_empty_and_blank_docs(ner_model_dir):
    nlp = component_nlp(ner_model_dir)
    for doc in nlp.pipe(["", "   ", "\n\n", "\x00"]):
        assert doc.ents == () and doc._.minibert_unaligned == []


def test_score_extension_is_shared_not_overwritten(ner_model_dir):
    assert Span.has_extension("score")
    doc = component_nlp(ner_model_dir)("Peter Blackburn met officials in Brussels.")
    assert all(0 < e._.score <= 1 for e in doc.ents)


def test_a_computed_score_extension_is_refused(ner_model_dir):
    """Another library's `Span._.score` computed by a getter cannot hold our scores."""
    try:
        Span.set_extension("score", getter=lambda span: 0.0, force=True)
        with pytest.raises(InputError, match="already registered by another library") as error:
            component_nlp(ner_model_dir)
        assert "\n" not in str(error.value)
    finally:
        Span.set_extension("score", default=None, force=True)


@pytest.mark.filterwarnings("ignore::minibert_ner.errors.MiniBertWarning")
@pytest.mark.parametrize("spans_key", [None, "ner"])
def test_nlp_evaluate_scores_the_component(ner_model_dir, texts, spans_key):
    """spaCy's scorer through the component's `score`: its own output as the reference is
    F1 1."""
    from spacy.training import Example

    nlp = component_nlp(ner_model_dir, spans_key=spans_key)
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in nlp.pipe(texts[:20])]
    scores = nlp.evaluate(examples)
    assert scores["ents_f" if spans_key is None else "spans_ner_f"] == 1.0
