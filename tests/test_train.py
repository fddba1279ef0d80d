"""Fine-tuning on tiny models: the loss falls, runs are reproducible, the saved model loads in
both libraries with equal logits, and evaluation equals transformers + seqeval."""

from __future__ import annotations

import json
import random
import warnings

import pytest
import torch

from minibert_ner import load_model
from minibert_ner.cli import main
from minibert_ner.errors import DataError, InputError
from minibert_ner.inference.pipeline import pipeline
from minibert_ner.tokenizer import Tokenizer
from minibert_ner.training.conll import Sentence, read_conll
from minibert_ner.training.train import (
    IGNORE,
    TrainConfig,
    collate,
    encode_sentences,
    label_list,
    linear_schedule,
    load_for_training,
    shuffled_length_batches,
    token_loss,
    train,
)

from .helpers.checkpoints import load_reference, make_reference_checkpoint

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def splits(conll_dir):
    return read_conll(conll_dir / "train.txt")[:96], read_conll(conll_dir / "valid.txt")[:32]


def run_training(base, splits, output, **overrides):
    config = TrainConfig(**{"epochs": 3, "lr": 1e-2, "batch_size": 16, **overrides})
    return train(base, *splits, output, config, device="cpu", log=lambda message: None)


def mean_loss(model, tokenizer, sentences) -> float:
    """The training loss of a model on sentences, in eval mode (no dropout)."""
    examples = encode_sentences(tokenizer, sentences, model.config.label2id, 512)
    input_ids, mask, labels = collate(examples, tokenizer.pad_token_id, torch.device("cpu"))
    with torch.no_grad():
        return token_loss(model.eval(), input_ids, mask, labels).item()


def test_training_reduces_loss_and_saves_a_model_both_libraries_load(tiny_base, splits, tmp_path):
    labels = label_list(["LOC", "MISC", "ORG", "PER"])
    torch.manual_seed(TrainConfig.seed)  # as train() does: the same fresh head
    initial = load_for_training(tiny_base, labels, torch.device("cpu"))
    result = run_training(tiny_base, splits, tmp_path / "out")
    assert result.steps == 3 * 6  # 96 sentences in batches of 16, 3 epochs
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    best = max(result.history, key=lambda h: h["valid"]["f1"])
    assert result.best_epoch == best["epoch"] and result.best_valid == best["valid"]

    out = tmp_path / "out"
    ours = load_model(out)
    our_tok = Tokenizer.from_pretrained(out)
    before, after = mean_loss(initial, our_tok, splits[0]), mean_loss(ours, our_tok, splits[0])
    assert after < 0.6 * before, (before, after)
    record = json.loads((out / "training.json").read_text("utf-8"))
    assert record["best_epoch"] == result.best_epoch and record["config"]["lr"] == 1e-2
    assert list(ours.id2label.values()) == labels

    theirs = load_reference(out)
    assert theirs.config.id2label == ours.id2label
    their_tok = transformers.AutoTokenizer.from_pretrained(out)
    words = splits[1][0].words
    batch = their_tok([words], is_split_into_words=True, return_tensors="pt")
    assert batch["input_ids"][0].tolist() == our_tok.encode(words).ids
    with torch.no_grad():
        expected = theirs(**batch).logits
        got = ours(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_same_seed_same_model(tiny_base, splits, tmp_path):
    for name in ("a", "b"):
        run_training(tiny_base, splits, tmp_path / name, epochs=1, max_steps=3)
    a = load_model(tmp_path / "a").state_dict()
    b = load_model(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    run_training(tiny_base, splits, tmp_path / "c", epochs=1, max_steps=3, seed=7)
    c = load_model(tmp_path / "c").state_dict()
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])


def test_first_subword_labels(minilm):
    tokenizer = Tokenizer.from_pretrained(minilm)
    sentence = Sentence(
        ["Hoover", "Dam", "rejects", "German-born"], ["B-LOC", "I-LOC", "O", "B-MISC"]
    )
    label2id = {label: i for i, label in enumerate(label_list(["LOC", "MISC"]))}
    (example,) = encode_sentences(tokenizer, [sentence], label2id, max_tokens=512)
    encoding = tokenizer.encode(sentence.words)
    assert example.input_ids == encoding.ids
    word_ids = encoding.word_ids
    firsts = [i for i, w in enumerate(word_ids) if w is not None and w != word_ids[i - 1]]
    assert [example.labels[i] for i in firsts] == [label2id[x] for x in sentence.labels]
    assert all(example.labels[i] == IGNORE for i in range(len(example.labels)) if i not in firsts)
    # "german-born" is three subwords; [CLS] and [SEP] carry no label either.
    assert example.labels.count(IGNORE) == len(encoding.ids) - 4 >= 4


def test_long_sentences_are_split_not_truncated(minilm):
    tokenizer = Tokenizer.from_pretrained(minilm)
    words = [f"w{i}" for i in range(40)]
    sentence = Sentence(words, ["O", "B-PER"] * 20)
    examples = encode_sentences(tokenizer, [sentence], {"O": 0, "B-PER": 1, "I-PER": 2}, 16)
    assert all(len(e.input_ids) <= 16 for e in examples)
    labelled = [x for e in examples for x in e.labels if x != IGNORE]
    assert sorted(labelled) == sorted([0, 1] * 20)


def test_length_batches_cover_every_example_once():
    lengths = [random.Random(0).randint(3, 60) for _ in range(1000)]
    batches = shuffled_length_batches(lengths, 16, random.Random(1))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) <= 16 for b in batches)
    assert batches != shuffled_length_batches(lengths, 16, random.Random(2))


def test_linear_schedule():
    factor = linear_schedule(warmup_steps=10, total_steps=110)
    assert [factor(s) for s in (0, 5, 10, 60, 110)] == [0.0, 0.5, 1.0, 0.5, 0.0]


def test_bad_input(tiny_base, splits, tmp_path):
    for bad in ({"epochs": 0}, {"batch_size": 1.5}, {"lr": -1.0}, {"warmup_ratio": 1.0}):
        with pytest.raises(InputError, match=f"{next(iter(bad))} must be"):
            TrainConfig(**bad)
    train_split, valid_split = splits
    with pytest.raises(DataError, match="valid has entity types that train lacks: EVENT"):
        run_training(tiny_base, (train_split, [Sentence(["Euro"], ["B-EVENT"])]), tmp_path)
    with pytest.raises(DataError, match="at least one train"):
        run_training(tiny_base, ([], valid_split), tmp_path)
    all_o = [Sentence(["Euro", "zone"], ["O", "O"])]
    with pytest.raises(DataError, match="every label in the train data is O"):
        run_training(tiny_base, (all_o, all_o), tmp_path)
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        train(tiny_base, train_split, valid_split, tmp_path, device="gpu0")


def first_subword_predictions(model, tokenizer, sentences):
    """The reference: transformers model and tokenizer, argmax of each word's first subword."""
    out = []
    for s in sentences:
        batch = tokenizer([s.words], is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            ids = model(**batch).logits[0].argmax(-1).tolist()
        labels, previous = [], None
        for position, word in enumerate(batch.word_ids(0)):
            if word is not None and word != previous:
                labels.append(model.config.id2label[ids[position]])
            previous = word
        out.append(labels)
    return out


def test_evaluation_equals_transformers_and_seqeval(small_bert, conll_dir, tmp_path):
    from seqeval.metrics import accuracy_score, classification_report

    sentences = read_conll(conll_dir / "test.txt")[:64]
    reference = load_reference(small_bert)
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(small_bert)
    predicted = first_subword_predictions(reference, their_tokenizer, sentences)
    gold = [s.labels for s in sentences]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = classification_report(gold, predicted, output_dict=True)
    assert expected["micro avg"]["support"] > 50 and expected["micro avg"]["f1-score"] > 0

    path = write_conll(tmp_path / "test64.txt", sentences)
    ner = pipeline(model=str(small_bert), batch_size=8)
    assert ner.label_words([s.words for s in sentences]) == predicted
    args = ["evaluate", "--model", str(small_bert), "--data", str(path), "--format", "json"]
    assert main([*args, "-o", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text("utf-8"))
    micro = expected["micro avg"]
    assert (report["precision"], report["recall"], report["f1"], report["support"]) == (
        micro["precision"], micro["recall"], micro["f1-score"], micro["support"],
    )  # fmt: skip
    assert report["accuracy"] == accuracy_score(gold, predicted)
    for name, scores in report["per_type"].items():
        assert (scores["precision"], scores["recall"], scores["f1"]) == (
            expected[name]["precision"], expected[name]["recall"], expected[name]["f1-score"],
        )  # fmt: skip


def write_conll(path, sentences):
    blocks = (
        "\n".join(f"{w} {t}" for w, t in zip(s.words, s.labels, strict=True)) for s in sentences
    )
    path.write_text("\n\n".join(blocks) + "\n", "utf-8")
    return path


def test_train_command(tiny_base, splits, tmp_path, capsys):
    train_file = write_conll(tmp_path / "train.txt", splits[0][:32])
    valid_file = write_conll(tmp_path / "valid.txt", splits[1][:8])
    output = tmp_path / "model"
    args = ["train", "--model", str(tiny_base), "--train", str(train_file),
            "--valid", str(valid_file), "--output", str(output), "--max-steps", "2",
            "--batch-size", "4"]  # fmt: skip
    assert main(args) == 0
    assert "best epoch 1: valid precision" in capsys.readouterr().out
    assert json.loads((output / "training.json").read_text("utf-8"))["steps"] == 2
    assert main(args) == 2  # never overwrites a model by accident
    assert "exists and is not an empty folder; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main([*args, "--overwrite", "--lr", "0"]) == 2
    assert "error: lr must be above 0, got 0.0" in capsys.readouterr().err


def test_evaluate_refuses_labels_that_are_not_iob_tags(minilm, splits, tmp_path, capsys):
    folder = make_reference_checkpoint(
        tmp_path / "m", "bert", labels=["O", "LABEL_1"], tokenizer_from=minilm
    )
    data = write_conll(tmp_path / "d.txt", splits[1][:2])
    assert main(["evaluate", "--model", str(folder), "--data", str(data)]) == 2
    assert "the model predicts 'LABEL_1', which is not an IOB tag" in capsys.readouterr().err
