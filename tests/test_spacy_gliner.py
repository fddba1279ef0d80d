"""The spaCy component with a GLiNER model (labels and threshold in the config), against real
spaCy: doc.ents equal `GLiNER.inference` mapped to spans; `nlp.to_disk` writes a self-contained
copy (the backbone's files too, when the model reads them) that `spacy.load` runs with the
original folders gone; bad config is one line."""

from __future__ import annotations

import json
import shutil

import pytest

from minibert_ner import GLiNER
from minibert_ner.errors import InputError

from .test_gliner import FIXTURES, answers
from .test_spacy import as_spans, assert_same_spans, component_nlp, conll_texts, doc_spans

spacy = pytest.importorskip("spacy", reason="the spacy extra: pip install 'minibert-ner[spacy]'")

LABELS = ["person", "location", "organization"]
THRESHOLD = 0.3


def texts() -> list[str]:
    return [t for t in answers("deberta_span")["cases"][0]["texts"] if t] + conll_texts(40, 5)


def expected_spans(nlp, model: GLiNER, batch: list[str], docs_per_call: int) -> list:
    """`GLiNER.inference`'s entities mapped to spans by hand (strict alignment), called on the
    component's batches with its batch_size (32): the same forward passes, so that labels whose
    scores tie within 1e-6 (random weights make such ties) are decided alike."""
    found = []
    for lo in range(0, len(batch), docs_per_call):
        chunk = batch[lo : lo + docs_per_call]
        found += model.inference(chunk, LABELS, threshold=THRESHOLD, batch_size=32)
    entities = [[{**e, "entity_group": e["label"]} for e in each] for each in found]
    return as_spans(nlp, batch, entities)


def test_doc_ents_are_gliners_entities_as_spans() -> None:
    nlp = component_nlp(FIXTURES / "deberta_span", labels=LABELS, threshold=THRESHOLD)
    model = GLiNER.from_pretrained(FIXTURES / "deberta_span")
    batch = texts()
    docs = list(nlp.pipe(batch, batch_size=16))
    compared = 0
    for doc, (kept, unaligned) in zip(docs, expected_spans(nlp, model, batch, 16), strict=True):
        assert_same_spans(doc_spans(doc), kept, doc.text[:40])
        assert len(doc._.minibert_unaligned) == len(unaligned)
        compared += len(kept)
    assert compared > 20
    one = nlp(batch[0])  # one doc at a time: the same
    assert_same_spans(doc_spans(one), doc_spans(docs[0]))


@pytest.mark.parametrize(("model", "backbone"), [("bert_span", "bert_backbone"),
                                                  ("spm_span", "spm_backbone")])  # fmt: skip
def test_to_disk_is_self_contained(tmp_path, monkeypatch, model, backbone) -> None:
    """bert_span reads its backbone's config.json, spm_span its tokenizer (spm.model): both
    are in the saved copy, which loads with the source folders removed and the hub off."""
    source = tmp_path / "source"
    shutil.copytree(FIXTURES / model, source / model)
    shutil.copytree(FIXTURES / backbone, source / backbone)
    nlp = component_nlp(source / model, labels=LABELS, threshold=THRESHOLD)
    batch = texts()[:12]
    before = [doc_spans(doc) for doc in nlp.pipe(batch)]
    assert any(before)
    nlp.to_disk(tmp_path / "saved")
    shutil.rmtree(source)
    saved = tmp_path / "saved" / "minibert_ner" / "model"
    config = json.loads((saved / "gliner_config.json").read_text())
    assert config["model_name"] == "minibert_gliner_backbone"
    assert (saved / "minibert_gliner_backbone" / "config.json").is_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # where gliner would look for a relative model_name
    loaded = spacy.load(tmp_path / "saved")
    for doc, want in zip(loaded.pipe(batch), before, strict=True):
        assert_same_spans(doc_spans(doc), want, doc.text[:40])


def test_a_model_with_its_backbone_config_inline_copies_no_backbone(tmp_path) -> None:
    nlp = component_nlp(FIXTURES / "deberta_span", labels=["person"])
    nlp.to_disk(tmp_path / "saved")
    saved = tmp_path / "saved" / "minibert_ner" / "model"
    assert sorted(p.name for p in saved.iterdir()) == [
        "gliner_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"
    ]  # fmt: skip
    assert spacy.load(tmp_path / "saved")("Tim Cook").ents == nlp("Tim Cook").ents


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "is a GLiNER model: name the entity types in the config"),
        ({"labels": ["person"], "stride": 3}, "stride: options of token classifiers"),
        ({"labels": ["person"], "aggregation_strategy": "first"}, "aggregation_strategy: options"),
    ],
)
def test_bad_gliner_configs_are_one_line(config, message) -> None:
    nlp = component_nlp(FIXTURES / "deberta_span", **config)
    with pytest.raises(InputError, match=message) as error:
        nlp.initialize()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"labels": []}, "labels must be a non-empty list"),
        ({"labels": ["person", " "]}, "labels must be a non-empty list"),
        ({"labels": ["person"], "threshold": 1.5}, r"threshold must be a number in \[0, 1\]"),
    ],
)
def test_bad_labels_and_thresholds_are_one_line_at_add_pipe(config, message) -> None:
    with pytest.raises(InputError, match=message) as error:
        component_nlp(FIXTURES / "deberta_span", **config)
    assert "\n" not in str(error.value)
