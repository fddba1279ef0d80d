"""GLiNER against the gliner package's own answers (tests/fixtures/gliner, made by
make_fixtures.py with gliner 0.2.29), long text, label groups, and bad input."""

from __future__ import annotations

import json
import math
import os
import pickle
import re
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


def conll_words(limit: int) -> list[str]:
    from tests.helpers.data import conll_sentences

    words: list[str] = []
    for sentence in conll_sentences("test"):
        words += sentence
        if len(words) >= limit:
            return words[:limit]
    raise AssertionError("CoNLL test has fewer words")


def test_long_document_to_the_last_word(models):
    """20,000 words: no cut at 384 words (gliner's max_len); entities to the end."""
    model = models["bert_span"]
    words = conll_words(20_000)
    text = " ".join(words)
    entities = model.predict_entities(text, ["person", "location"], threshold=0.6)
    assert entities == sorted(entities, key=lambda e: e["start"])
    assert all(text[e["start"] : e["end"]] == e["text"] for e in entities)
    last_words = len(" ".join(words[:-100]))
    assert entities[-1]["start"] > last_words, "entities stop before the last 100 words"
    assert len(split_words(text)) > 20_000 > 384


@pytest.mark.parametrize("name", ["deberta_span", "token_level"])
def test_windows_take_each_span_from_its_best_window(models, name):
    """A text of 150 words in windows of 40: every score is the score of the window that gives
    it the most context, run as a text of its own."""
    model = models[name]
    words = conll_words(150)
    labels = ["person", "team"]
    config = model.config
    try:
        model.config = type(config)(**{**config.__dict__, "max_len": 40})
        merged = model.scores([words], [labels])[0]
        windows = model._windows([1] * len(words), room=10_000)
    finally:
        model.config = config
    assert len(windows) > 3 and windows[-1][1] == len(words)
    alone = [model.scores([words[a:b]], [labels])[0] for a, b in windows]
    K = config.max_width
    for word in range(len(words)):
        for k in [0] if name == "token_level" else range(K):
            last = word + k
            if last >= len(words):
                continue
            best = max(
                range(len(windows)),
                key=lambda i, word=word, last=last: (
                    context(windows[i], word, last, len(words)),
                    -i,
                ),
            )
            a = windows[best][0]
            expected = alone[best][word - a] if name == "token_level" else alone[best][word - a, k]
            got = merged[word] if name == "token_level" else merged[word, k]
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def context(window: tuple[int, int], word: int, last: int, n: int) -> int:
    """Words a window gives a span (word..last) before and after it, the text's ends unlimited;
    -1 when the span is not whole in the window."""
    a, b = window
    left = word - a if a > 0 else 1 << 30
    right = b - 1 - last if b < n else 1 << 30
    return min(left, right) if a <= word and last < b else -1


def test_many_labels_in_groups(models):
    """60 labels: one prompt with room; in groups when the window is small, each group scored
    as its own call would score it, decoded once over all labels."""
    model = models["deberta_span"]
    labels = [f"type {i}" for i in range(60)]
    text = " ".join(conll_words(60))
    max_tokens = model.max_tokens
    try:
        model.max_tokens = 1024  # DeBERTa-v3 has no position limit: room for all 60
        assert len(model._groups(labels)) == 1
        assert model.inference([text], labels, threshold=0.4)[0]
        model.max_tokens = 128
        groups = model._groups(labels)
        grouped = model.scores([split_words_only(text)], [labels])[0]
        answer = model.inference([text], labels, threshold=0.4)[0]
        # each group's scores are that group's own call (windows and all)
        separate = [model.scores([split_words_only(text)], [g])[0] for g in groups]
    finally:
        model.max_tokens = max_tokens
    assert len(groups) > 2 and sum(groups, []) == labels
    torch.testing.assert_close(grouped, torch.cat(separate, dim=-1), atol=1e-4, rtol=0)
    assert {e["label"] for e in answer} <= set(labels) and answer


def split_words_only(text: str) -> list[str]:
    return [w for w, _, _ in split_words(text)]


def test_duplicate_labels_count_once(models):
    model = models["bert_span"]
    text = answers("bert_span")["cases"][0]["texts"][0]
    assert model.predict_entities(text, ["person", "city", "person"], threshold=0.3) == (
        model.predict_entities(text, ["person", "city"], threshold=0.3)
    )


def test_empty_texts_give_no_entities(models):
    model = models["deberta_span"]
    assert model.inference(["", "   ", "\n\t"], ["person"]) == [[], [], []]
    assert model.predict_entities("", ["person"]) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.predict_entities("Ada", []), "labels is empty"),
        (lambda m: m.predict_entities("Ada", ["person", ""]), "non-empty str"),
        (lambda m: m.predict_entities("Ada", ["word " * 400]), "half of the model"),
        (lambda m: m.predict_entities("Ada", ["person"], threshold=1.5), r"\[0, 1\]"),
        (lambda m: m.predict_entities("Ada", ["person"], threshold=-0.1), r"\[0, 1\]"),
        (lambda m: m.predict_entities("Ada", ["person"], threshold="high"), r"\[0, 1\]"),
        (lambda m: m.predict_entities(["Ada"], ["person"]), "text must be a str"),
        (lambda m: m.inference(["Ada"], [["person"], ["city"]]), "2 label lists for 1 texts"),
        (lambda m: m.inference([3], ["person"]), "list of str"),
        (lambda m: m.inference(["Ada"], ["person"], batch_size=0), "batch_size"),
        (lambda m: m.predict_entities("Ada", "person", flat_ner="yes"), "flat_ner"),
    ],
)
def test_bad_input_is_one_line(models, call, message):
    with pytest.raises(InputError, match=message) as error:
        call(models["deberta_span"])
    assert "\n" not in str(error.value)


def test_not_a_gliner_folder():
    with pytest.raises(ConfigError, match="not a GLiNER model.*pipeline"):
        GLiNER.from_pretrained(FIXTURES / "bert_backbone")


def test_pipeline_sends_gliner_folders_to_gliner():
    import minibert_ner

    with pytest.raises(CheckpointError, match="GLiNER.from_pretrained.*--labels"):
        minibert_ner.pipeline(FIXTURES / "deberta_span")


def test_unsupported_variants_and_splitters(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(FIXTURES / "deberta_span", folder)
    config = json.loads((folder / "gliner_config.json").read_text())
    for change, message in [
        ({"words_splitter_type": "spacy"}, "whitespace splitter only.*spacy"),
        ({"labels_encoder": "bert-base"}, "bi-encoder"),
        ({"span_mode": "markerV1"}, "span_mode 'markerV1'"),
    ]:
        (folder / "gliner_config.json").write_text(json.dumps(config | change))
        with pytest.raises(ConfigError, match=message):
            GLiNER.from_pretrained(folder)


class _Payload:
    """A pickle that would create a file when loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("legacy", [False, True])
def test_code_running_pickle_is_refused(tmp_path, legacy):
    folder = tmp_path / "m"
    shutil.copytree(FIXTURES / "bert_span", folder)
    shutil.copytree(FIXTURES / "bert_backbone", tmp_path / "bert_backbone")
    marker = tmp_path / "pwned"
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state["evil"] = _Payload(marker)
    if legacy:  # a bare pickle, as torch wrote before 1.6
        with open(folder / "pytorch_model.bin", "wb") as f:
            pickle.dump(state, f)
    else:
        torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refused .*pytorch_model.bin") as error:
        GLiNER.from_pretrained(folder)
    assert "\n" not in str(error.value)
    assert not marker.exists()


def test_every_checkpoint_problem_at_once(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "m"
    shutil.copytree(FIXTURES / "deberta_span", folder)
    state = read_weights(folder)
    del state["prompt_rep_layer.3.bias"]
    del state["token_rep_layer.bert_layer.model.encoder.layer.1.output.dense.weight"]
    state["rnn.lstm.extra"] = torch.zeros(1)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError) as error:
        GLiNER.from_pretrained(folder)
    message = str(error.value)
    for part in ("prompt_mlp.3.bias", "layers.1.ffn.output.weight", "rnn.lstm.extra"):
        assert part in message


@pytest.mark.parametrize("name", MODELS)
def test_key_table_both_ways(models, name):
    """Our tensors under gliner's names are the checkpoint's (less what inference ignores)."""
    ours = checkpoint_state_dict(models[name].model)
    theirs = read_weights(FIXTURES / name)
    ignored = {k for k in theirs if ".pooler." in k}
    assert set(ours) == set(theirs) - ignored
    for key, tensor in ours.items():
        assert torch.equal(tensor, theirs[key]), key


def test_backbone_with_only_spm_model():
    """spm_span's folder has no tokenizer; its model_name, spm_backbone/, ships spm.model only
    (as microsoft/deberta-v3-* do). Needs the spm.model reader in minibert_ner.tokenizer."""
    from minibert_ner.errors import TokenizerError

    try:
        model = GLiNER.from_pretrained(FIXTURES / "spm_span")
    except TokenizerError as e:
        if "SentencePiece" in str(e):
            pytest.skip("no spm.model reader in this checkout (minibert_ner.tokenizer)")
        raise
    for case in answers("spm_span")["cases"]:
        if not case.get("predict_entities"):
            ours = model.inference(case["texts"], case["labels"], **case["kwargs"])
            assert_same_entities(model, case, ours, case["output"])


def test_export():
    import minibert_ner

    assert minibert_ner.GLiNER is GLiNER
    assert os.path.basename(minibert_ner.gliner.__file__) == "__init__.py"


@pytest.mark.parametrize("name", ["deberta_span", "bert_span"])
def test_folded_span_head_equals_readable(models, name):
    """The fast path (out_project split per word, folded into the labels) gives the readable
    path's logits, which build every span's vector as gliner does."""
    model = models[name]
    words = [split_words_only(t) for t in answers(name)["cases"][0]["texts"]]
    fast = model.scores(words, [["person", "city"]] * len(words))
    model.model.readable = True
    try:
        readable = model.scores(words, [["person", "city"]] * len(words))
    finally:
        model.model.readable = False
    for a, b in zip(fast, readable, strict=True):
        valid = torch.arange(len(a))[:, None] + torch.arange(a.shape[1]) < len(a)  # (n, K)
        torch.testing.assert_close(a[valid], b[valid], atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_label_every_format(models, capsys, tmp_path):
    from tests.helpers.cli import run_in_process

    folder = str(FIXTURES / "bert_span")
    text = answers("bert_span")["cases"][0]["texts"][0]
    flags = ["--model", folder, "--labels", "person,location", "--threshold", "0.3"]
    expected = models["bert_span"].predict_entities(text, ["person", "location"], threshold=0.3)
    assert expected
    code, out, _ = run_in_process([*flags, "--format", "jsonl", text], capsys)
    record = json.loads(out)
    assert code == 0 and record["text"] == text
    assert [(e["entity_group"], e["start"], e["end"], e["word"]) for e in record["entities"]] == [
        (e["label"], e["start"], e["end"], e["text"]) for e in expected
    ]
    for fmt in ("json", "table", "conll"):
        code, out, err = run_in_process([*flags, "--format", fmt, text], capsys)
        assert code == 0 and out, (fmt, err)
    (tmp_path / "doc.txt").write_text(text + "\n" + text, "utf-8")
    code, out, _ = run_in_process(
        [*flags, "--document", "--file", str(tmp_path / "doc.txt"), "--format", "jsonl"], capsys
    )
    assert code == 0 and len(json.loads(out)["entities"]) >= len(expected)
    code, out, _ = run_in_process(
        [*flags, "--file", str(tmp_path / "doc.txt"), "--format", "jsonl"], capsys
    )
    assert code == 0 and len(out.splitlines()) == 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--labels", ""], "give entity types"),
        (["--labels", "person", "--threshold", "2"], r"must be in \[0, 1\]"),
        ([], "is a GLiNER model.*--labels"),
        (["--labels", "person", "--dtype", "bfloat16-mixed"], "for token classifiers"),
        (["--labels", "person", "--quantize", "int8"], "for token classifiers"),
    ],
)
def test_cli_bad_gliner_flags(capsys, flags, message):
    from tests.helpers.cli import run_in_process

    code, _, err = run_in_process(["--model", str(FIXTURES / "bert_span"), *flags, "Ada"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_cli_labels_with_a_token_classifier(capsys):
    from tests.helpers.cli import run_in_process

    code, _, err = run_in_process(
        ["--model", str(FIXTURES / "bert_backbone"), "--labels", "person", "Ada"], capsys
    )
    assert code == 2 and "drop --labels" in err


def test_cli_evaluate_with_label_map(capsys, tmp_path):
    from tests.helpers.cli import run_in_process
    from tests.helpers.data import conll_file

    lines = conll_file("test").read_text("utf-8").splitlines()[:200]
    data = tmp_path / "small.txt"
    data.write_text("\n".join(lines) + "\n", "utf-8")
    code, out, err = run_in_process(
        ["evaluate", "--model", str(FIXTURES / "bert_span"), "--data", str(data), "--format",
         "json", "--labels", "person,organization,location", "--threshold", "0.3",
         "--label-map", "person=PER,organization=ORG,location=LOC"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert {"PER", "ORG", "LOC"} <= set(report["per_type"]) | set(report.get("types", {}))


def test_long_and_short_texts_in_one_call(models):
    """Texts that need windows and texts that fit, mixed in one call, answer as each alone."""
    model = models["bert_span"]
    long = " ".join(conll_words(900))
    texts = [long, "Ada Lovelace met Charles Babbage in London.", long[:3000], "", "Paris"]
    together = model.inference(texts, ["person", "location"], threshold=0.4, batch_size=3)
    alone = [model.inference([t], ["person", "location"], threshold=0.4)[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert [(e["start"], e["end"], e["label"]) for e in a] == [
            (e["start"], e["end"], e["label"]) for e in b
        ]


def test_batch_job_with_labels(models, tmp_path, capsys):
    from tests.helpers.cli import run_in_process

    texts = answers("bert_span")["cases"][0]["texts"][:4]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", "utf-8")
    flags = ["batch", "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out"),
             "--model", str(FIXTURES / "bert_span"), "--labels", "person,location",
             "--threshold", "0.3"]  # fmt: skip
    code, _, err = run_in_process(flags, capsys)
    assert code == 0, err
    written = [
        json.loads(line) for line in (tmp_path / "out" / "in.jsonl").read_text().splitlines()
    ]
    expected = models["bert_span"].inference(texts, ["person", "location"], threshold=0.3)
    assert [
        [(e["start"], e["end"], e["entity_group"]) for e in r["entities"]] for r in written
    ] == [[(e["start"], e["end"], e["label"]) for e in found] for found in expected]
    # the same folder with other labels is another job's output: refused
    code, _, err = run_in_process([*flags[:-3], "city", "--threshold", "0.3"], capsys)
    assert code == 2 and "gliner" in err


@pytest.mark.parametrize(("dtype", "said"), [("auto", "float32 (auto"), ("bfloat16", "bfloat16")])
def test_cli_dtype_runs_and_says_what_it_runs(capsys, dtype, said):
    """--dtype reaches the GLiNER model (never silently float32); --verbose says which."""
    from tests.helpers.cli import run_in_process

    flags = ["--model", str(FIXTURES / "deberta_span"), "--labels", "person,city"]
    code, out, err = run_in_process(
        [*flags, "--dtype", dtype, "--verbose", "--format", "jsonl", "Ada was born in London."],
        capsys,
    )
    assert code == 0, err
    assert f"minibert-ner: precision {said}" in err
    assert json.loads(out)["text"] == "Ada was born in London."
    if dtype == "bfloat16":
        model = GLiNER.from_pretrained(FIXTURES / "deberta_span", dtype="bfloat16")
        assert {p.dtype for p in model.model.parameters()} == {torch.bfloat16}
