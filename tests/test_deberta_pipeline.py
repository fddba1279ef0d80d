"""DeBERTa-v3 end to end: its SentencePiece Unigram tokenizer from tokenizer.json as transformers
5.x builds it, the NER pipeline (every aggregation strategy) against transformers' pipeline, long
text in windows of the tokenizer's model_max_length, and fine-tuning a fresh head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import minibert_ner
from minibert_ner import Tokenizer
from minibert_ner.inference.aggregation import STRATEGIES
from minibert_ner.tokenizer import Template

from .helpers.assertions import assert_same_entities
from .helpers.data import conll_sentences
from .helpers.deberta import make_deberta_checkpoint
from .test_tokenizer import EDGE_TEXTS, HARD_TEXTS, PRE_SPLIT, assert_same_as_transformers, texts

DEBERTA_EDGES = [
    "tabs\tand\nnew\r\nlines",
    "  two leading spaces",
    "( ( lone ▁ marks ) )",
    "[MASK] and [CLS] x[SEP]",
]


TOKENIZER_CASES = {
    "tokenizer.json": {},
    "do_lower_case": {"do_lower_case": True},
    "split_by_punct": {"split_by_punct": True},
    "no-prefix-space": {"add_prefix_space": False},
    "model_type-only": None,  # no tokenizer_config.json: config.json's model_type decides
}


@pytest.mark.parametrize("case", list(TOKENIZER_CASES))
def test_tokenizer_matches_transformers(case, deberta_tokenizer, tmp_path) -> None:
    """ids, offsets (the space before a word included), word ids, tokens, unknown and padding
    ids equal transformers' DebertaV2Tokenizer on CoNLL text, hard Unicode, whitespace runs and
    pre-split words; decoding too; saved, it loads the same in transformers."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "tok"
    shutil.copytree(deberta_tokenizer, folder)
    change = TOKENIZER_CASES[case]
    if change is None:
        (folder / "tokenizer_config.json").unlink()
        (folder / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    else:
        config = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps(config | change))
    all_texts = texts() + EDGE_TEXTS + DEBERTA_EDGES
    assert assert_same_as_transformers(folder, all_texts) == len(all_texts)
    assert_same_as_transformers(folder, PRE_SPLIT, pretokenized=True)
    ref = transformers.AutoTokenizer.from_pretrained(folder)
    ours = Tokenizer.from_pretrained(folder)
    assert type(ref).__name__ == "DebertaV2Tokenizer"
    assert ours.template == Template(1, 1) and not ours.subword_prefix
    for text in all_texts[:40] + HARD_TEXTS + DEBERTA_EDGES:
        tokens = ours.encode(text).tokens[1:-1]
        assert ours.tokens_to_string(tokens) == ref.convert_tokens_to_string(tokens), text
    ours.save(tmp_path / "saved")
    assert_same_as_transformers(tmp_path / "saved", all_texts[:50] + HARD_TEXTS + DEBERTA_EDGES)


def test_offsets_include_the_space_before_a_word(deberta_tokenizer) -> None:
    enc = Tokenizer.from_pretrained(deberta_tokenizer).encode("EU  rejects")
    assert enc.tokens[1] == "▁EU" and enc.offsets[1] == (0, 2)
    assert enc.tokens[2].startswith("▁") and enc.offsets[2][0] == 3  # " rejects": one space


# --- the pipeline -----------------------------------------------------------------------------

LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def deberta_ner_checkpoint(folder: Path, tokenizer: Path, style: str = "v3") -> Path:
    """A transformers-made DeBERTa token classifier over `tokenizer`'s vocabulary, its head
    calibrated so that about half the tokens are "O"."""
    from .helpers.checkpoints import calibrate_head, copy_tokenizer

    vocab_size = Tokenizer.from_pretrained(tokenizer).vocab_size
    # 512 absolute positions for v2 (v3 has none: its 64 rows bind nothing)
    make_deberta_checkpoint(
        folder, style, labels=LABELS, vocab_size=vocab_size, max_position_embeddings=512
    )
    copy_tokenizer(tokenizer, folder)
    return calibrate_head(folder)


@pytest.fixture(scope="module")
def deberta_ner(tmp_path_factory, deberta_tokenizer) -> Path:
    return deberta_ner_checkpoint(tmp_path_factory.mktemp("deberta_ner"), deberta_tokenizer)


@pytest.mark.parametrize("style", ["v3", "v2"])
def test_entities_match_transformers(style, deberta_ner, deberta_tokenizer, tmp_path) -> None:
    """All five strategies equal transformers' pipeline (its space rule for sub-words) on CoNLL
    sentences three to a text and hard Unicode; scores within 1e-4."""
    from .test_pipeline_parity import parity_texts, reference_entities, reference_pipeline

    folder = deberta_ner
    if style == "v2":
        folder = deberta_ner_checkpoint(tmp_path / "v2", deberta_tokenizer, "v2")
    texts = parity_texts(90 if style == "v3" else 9)  # v2: the model differs, nothing else
    ours = minibert_ner.pipeline(folder)
    expected = reference_entities(reference_pipeline(folder), texts)
    n = 0
    for strategy in STRATEGIES:
        got = ours(texts, aggregation_strategy=strategy)
        n += assert_same_entities(got, expected[strategy], strategy)
    print(f"\ndeberta-{style}: {len(texts)} texts, {n} entities equal over 5 strategies")
    assert n > 50


@pytest.mark.parametrize(("max_length", "window"), [(None, 512), (40, 40)])
def test_windows_are_the_tokenizers_model_max_length(
    max_length, window, deberta_ner, tmp_path
) -> None:
    """v3 has no absolute positions (its config's 64 rows bind nothing): windows take the
    tokenizer's model_max_length, 512 when unset. Long text is windowed, never cut, and a text
    longer than the 64 positions but within one window runs whole, as transformers runs it."""
    folder = tmp_path / "model"
    shutil.copytree(deberta_ner, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("model_max_length", None)
    if max_length is not None:
        config["model_max_length"] = max_length
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    ner = minibert_ner.pipeline(folder)
    assert ner.model.config.max_positions is None and ner.window_size == window

    text = " ".join(" ".join(words) for words in conll_sentences("test", limit=40))
    n = len(ner.tokenizer.encode(text).ids) - 2
    assert n > 400  # many 40-token windows, or one 512-token window
    tokens = ner(text, aggregation_strategy="none", ignore_labels=[])
    assert len(tokens) == n and [t["index"] for t in tokens] == list(range(1, n + 1))

    short = " ".join(" ".join(words) for words in conll_sentences("test", limit=8))
    assert 64 < len(ner.tokenizer.encode(short).ids) <= 512
    if max_length is None:
        from .test_pipeline_parity import reference_entities, reference_pipeline

        expected = reference_entities(reference_pipeline(folder), [short])["simple"]
        assert_same_entities(ner([short], aggregation_strategy="simple"), expected)


def test_fine_tuning_a_fresh_head_on_a_base_checkpoint(deberta_ner, conll_dir, tmp_path) -> None:
    """A DeBERTa base model (no head) trains a few steps; the result loads in transformers with
    equal logits and its tokenizer equals transformers'; evaluate and batch labelling run it."""
    import torch
    from safetensors.torch import load_file, save_file

    from minibert_ner import load_model
    from minibert_ner.training.conll import read_conll
    from minibert_ner.training.metrics import evaluate_pipeline
    from minibert_ner.training.train import TrainConfig, train

    from .helpers.checkpoints import load_reference

    transformers = pytest.importorskip("transformers")
    base = tmp_path / "base"
    shutil.copytree(deberta_ner, base)
    tensors = load_file(base / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.startswith("classifier.")},
              base / "model.safetensors", metadata={"format": "pt"})  # fmt: skip
    config = json.loads((base / "config.json").read_text())
    for key in ("id2label", "label2id", "architectures"):
        config.pop(key, None)
    (base / "config.json").write_text(json.dumps(config | {"architectures": ["DebertaV2Model"]}))

    splits = read_conll(conll_dir / "train.txt")[:48], read_conll(conll_dir / "valid.txt")[:16]
    settings = TrainConfig(epochs=1, lr=1e-2, batch_size=16, max_steps=3)
    result = train(base, *splits, tmp_path / "out", settings, device="cpu", log=lambda m: None)
    assert result.steps == 3
    out = tmp_path / "out"
    ours = load_model(out)
    theirs = load_reference(out)
    assert theirs.config.id2label == ours.id2label and len(ours.id2label) == 9
    words = splits[1][0].words
    batch = transformers.AutoTokenizer.from_pretrained(out)(
        [words], is_split_into_words=True, return_tensors="pt"
    )
    assert batch["input_ids"][0].tolist() == Tokenizer.from_pretrained(out).encode(words).ids
    with torch.no_grad():
        expected = theirs(**batch).logits
        got = ours(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    report = evaluate_pipeline(minibert_ner.pipeline(out), splits[1])
    assert 0.0 <= report.f1 <= 1.0


def test_commands_run_a_deberta_model(deberta_ner, conll_dir, tmp_path, capsys) -> None:
    """batch (local engine), evaluate and inspect, through the command line."""
    from minibert_ner.cli import main

    from .helpers.corpora import read_jsonl

    texts = [" ".join(words) for words in conll_sentences("test", limit=20)]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", "utf-8")
    out = tmp_path / "out"
    assert main(["batch", "--input", str(tmp_path / "in.txt"), "--output", str(out),
                 "--model", str(deberta_ner)]) == 0  # fmt: skip
    got = [r["entities"] for r in read_jsonl(out / "in.jsonl")]
    assert_same_entities(got, minibert_ner.pipeline(deberta_ner)(texts), tolerance=1e-5)

    report, data = tmp_path / "report.json", tmp_path / "valid.txt"
    blocks = (conll_dir / "valid.txt").read_text("utf-8").split("\n\n")
    data.write_text("\n\n".join(blocks[:40]) + "\n", "utf-8")
    argv = ["evaluate", "--data", str(data), "--model", str(deberta_ner)]
    assert main([*argv, "--json", str(report)]) == 0
    assert json.loads(report.read_text())["sentences"] == 40

    capsys.readouterr()
    assert main(["inspect", "EU rejects German call to boycott British lamb.",
                 "--model", str(deberta_ner), "--mask-head", "1.2"]) == 0  # fmt: skip
    shown = capsys.readouterr().out
    assert "Logit lens" in shown and "position" in shown and "▁German" in shown


# --- word_grouping="word_ids": the RoBERTa-family tests, run on DeBERTa-v3 -------------------
# Imported, they are collected here too, and take the `ner` fixture of this module.

from .test_word_grouping import (  # noqa: E402, F401
    test_transformers_rule_has_the_quirks_word_ids_remove,
    test_word_ids_grouping_equals_the_oracle_and_keeps_its_promises,
    test_word_ids_promises_hold_on_any_text,
)


@pytest.fixture(scope="module")
def ner(deberta_ner):
    return minibert_ner.pipeline(deberta_ner, word_grouping="word_ids")
