"""Every command on every family: a RoBERTa, XLM-RoBERTa, CamemBERT and ELECTRA *base* model
(saved by transformers, no head) is fine-tuned a few steps with a fresh head by `train`; the
result loads in transformers with equal logits, and `evaluate`, `inspect` and `batch` run on it
(batch output equal to the pipeline's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import minibert_ner
from minibert_ner import load_model
from minibert_ner.cli import main
from minibert_ner.tokenizer import Tokenizer
from minibert_ner.training.conll import read_conll

from .helpers.assertions import assert_same_entities
from .helpers.checkpoints import FAMILIES, copy_tokenizer, load_reference, tokenizer_vocab_size

transformers = pytest.importorskip("transformers")

CASES = {  # family -> tokenizer fixture
    "roberta": "bpe_tokenizer",
    "xlm-roberta": "unigram_tokenizer",
    "camembert": "camembert_tokenizer",
    "electra": "cased_tokenizer",
}
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64}  # fmt: skip


def write_conll(path, sentences):
    blocks = ("\n".join(f"{w} {t}" for w, t in zip(s.words, s.labels, strict=True))
              for s in sentences)  # fmt: skip
    path.write_text("\n\n".join(blocks) + "\n", "utf-8")
    return path


def train_a_few_steps(base: Path, tmp_path: Path, conll_dir: Path) -> tuple[Path, list, Path]:
    """`train` a checkpoint 4 steps on 48 CoNLL train sentences, 16 of valid as its valid set:
    (the trained model's folder, the valid sentences, their file)."""
    train_file = write_conll(tmp_path / "train.txt", read_conll(conll_dir / "train.txt")[:48])
    valid = read_conll(conll_dir / "valid.txt")[:16]
    valid_file = write_conll(tmp_path / "valid.txt", valid)
    out = tmp_path / "model"
    assert main(["train", "--model", str(base), "--train", str(train_file), "--valid",
                 str(valid_file), "--output", str(out), "--max-steps", "4", "--batch-size",
                 "12", "--lr", "1e-3"]) == 0  # fmt: skip
    return out, valid, valid_file


@pytest.mark.parametrize("model_type", list(CASES))
def test_train_evaluate_inspect_batch(model_type, tmp_path, request, conll_dir, capsys) -> None:
    tokenizer = request.getfixturevalue(CASES[model_type])
    family = FAMILIES[model_type]
    torch.manual_seed(0)
    extra = {"embedding_size": 16} if model_type == "electra" else {}
    config = getattr(transformers, family.config_class)(
        vocab_size=tokenizer_vocab_size(tokenizer), **family.fixed, **TINY, **extra
    )
    base = tmp_path / "base"
    getattr(transformers, family.base_class)(config).save_pretrained(base)
    copy_tokenizer(tokenizer, base)

    out, valid, valid_file = train_a_few_steps(base, tmp_path, conll_dir)
    assert json.loads((out / "training.json").read_text("utf-8"))["steps"] == 4

    ours, theirs = load_model(out), load_reference(out)
    assert ours.config.model_type == theirs.config.model_type == model_type
    assert theirs.config.id2label == ours.id2label and len(ours.id2label) == 9
    their_tok = transformers.AutoTokenizer.from_pretrained(out)
    sentences = [s.words for s in valid[:6]]
    batch = their_tok(sentences, is_split_into_words=True, padding=True, return_tensors="pt")
    ids = [e.ids for e in Tokenizer.from_pretrained(out).encode_batch(sentences)]
    assert [row[: len(i)] for row, i in zip(batch["input_ids"].tolist(), ids, strict=True)] == ids
    with torch.no_grad():
        expected = theirs(**batch).logits
        got = ours(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["attention_mask"].bool()
    assert (got - expected).abs()[mask].max() <= 1e-4

    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", str(valid_file), "--json",
                 str(tmp_path / "report.json")]) == 0  # fmt: skip
    report = json.loads((tmp_path / "report.json").read_text("utf-8"))
    assert report["support"] > 10 and 0 <= report["f1"] <= 1

    sentence = "Peter Blackburn met officials in Brussels ."
    assert main(["inspect", "--model", str(out), sentence]) == 0
    shown = capsys.readouterr().out
    tokens = Tokenizer.from_pretrained(out).encode(sentence).tokens
    assert all(token in shown for token in tokens[1:-1]), (tokens, shown)

    texts = [" ".join(s.words) for s in valid] + ["Berlin\nParis  and Rome\tMadrid", ""]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "texts.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in texts), "utf-8"
    )
    argv = ["batch", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
            "--model", str(out), "--word-grouping", "word_ids", "--aggregation", "first"]  # fmt: skip
    assert main(argv) == 0
    rows = [
        json.loads(line) for line in (tmp_path / "out" / "texts.jsonl").read_text().splitlines()
    ]
    ner = minibert_ner.pipeline(out, word_grouping="word_ids", aggregation_strategy="first")
    assert_same_entities([r["entities"] for r in rows], ner(texts), model_type)
