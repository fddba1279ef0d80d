"""GLiNER against the gliner package's own answers (tests/fixtures/gliner, made by
make_fixtures.py with gliner 0.2.29), long text, label groups, and bad input."""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from minibert_ner import GLiNER
from minibert_ner.errors import CheckpointError, ConfigError, InputError
from minibert_ner.gliner.api import split_words
from minibert_ner.gliner.checkpoint import checkpoint_state_dict, read_weights

FIXTURES = Path(__file__).parent / "fixtures" / "gliner"
MODELS = ["deberta_span", "bert_span", "token_level"]


@pytest.fixture(scope="module")
def models() -> dict[str, GLiNER]:
    # bert_span names its backbone folder by a relative name, as gliner reads it (from the
    # working directory); ours also finds it next to the model's folder.
    return {name: GLiNER.from_pretrained(FIXTURES / name) for name in MODELS}


def answers(name: str) -> dict:
    return json.loads((FIXTURES / name / "answers.json").read_text("utf-8"))


def assert_same_entities(
    model: GLiNER, case: dict, ours: list[list[dict]], theirs: list[list[dict]]
) -> None:
    """Entities equal, scores within float noise. Where gliner picked one label of two whose
    scores for the span tie within 1e-5 (random weights make such ties), either is accepted:
    float noise of 1e-7 decides them."""
    assert len(ours) == len(theirs), case["name"]
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        where = f"{case['name']}: text {i}"
        assert [(e["start"], e["end"]) for e in a] == [(e["start"], e["end"]) for e in b], where
        for x, y in zip(a, b, strict=True):
            assert x["text"] == y["text"], where
            assert math.isclose(x["score"], y["score"], abs_tol=2e-5), where
            if x["label"] != y["label"]:
                assert abs(x["score"] - y["score"]) < 1e-5, f"{where}: {x} != {y}"


@pytest.mark.parametrize("name", MODELS)
def test_span_logits_equal_gliner(models, name):
    model = models[name]
    for batch in answers(name)["logits"]:
        words = [[w for w, _, _ in split_words(t)] for t in batch["texts"]]
        # the ids gliner's tokenizer made for the same prompt and words
        rows = [
            [x for label in batch["labels"] for x in ("<<ENT>>", label)] + ["<<SEP>>"] + w
            for w in words
        ]
        ids = [e.ids for e in model.tokenizer.encode_batch(rows, is_pretokenized=True)]
        pad = model.tokenizer.pad_token_id
        for ours, theirs in zip(ids, batch["input_ids"], strict=True):
            assert theirs == ours + [pad] * (len(theirs) - len(ours))
        scores = model.scores(words, [batch["labels"]] * len(words))
        reference = torch.tensor(batch["logits"])
        for i, (s, w) in enumerate(zip(scores, words, strict=True)):
            expected = reference[i, : len(w)]
            if model.config.span_mode != "token_level":
                # spans past a text's end are never read; gliner scores them as (0, 0)
                valid = (torch.arange(len(w))[:, None] + torch.arange(s.shape[1])) < len(w)
                s, expected = s[valid], expected[valid]
            torch.testing.assert_close(s, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_inference_equals_gliner(models, name):
    model = models[name]
    for case in answers(name)["cases"]:
        if case.get("predict_entities"):
            ours = [model.predict_entities(case["texts"][0], case["labels"], **case["kwargs"])]
        else:
            ours = model.inference(case["texts"], case["labels"], **case["kwargs"])
        assert_same_entities(model, case, ours, case["output"])
