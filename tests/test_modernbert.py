"""ModernBERT: numerics equal `transformers` on checkpoints it builds and saves (global and local
blocks, rows longer than the local window, padded batches of mixed lengths, packed rows), both
config.json forms, loading and saving; its tokenizer.json as transformers 5 runs it; the NER
pipeline (every strategy, word ids) against transformers' pipeline; pre-split words tokenized
with their spaces where transformers' are not (#37883); long text in windows; train, evaluate,
inspect, batch and serve. The measured max |diff| is printed (run with -s to see it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import minibert_ner
from minibert_ner import ConfigError, ModernBertTokenClassifier, Tokenizer, load_model, save_model
from minibert_ner.config import ModelConfig
from minibert_ner.inference.aggregation import STRATEGIES
from minibert_ner.modernbert import Biases, ModernBertAttention, queries_per_chunk

from .helpers.assertions import assert_same_entities, assert_same_outputs, max_diff
from .helpers.data import conll_sentences
from .helpers.modernbert import (
    make_modernbert_checkpoint,
    modernbert_ner_checkpoint,
)
from .test_model_parity import TOL, padded_batch

transformers = pytest.importorskip("transformers")

LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
CASES = {
    "small": {},
    # every bias on, another head activation, an irregular order of block kinds
    "biases": {"attention_bias": True, "mlp_bias": True, "norm_bias": True,
               "classifier_bias": True, "classifier_activation": "silu"},
    "layer_types": {"layer_types": ["sliding_attention", "full_attention", "sliding_attention",
                                    "sliding_attention", "full_attention"]},
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_parity_with_transformers(case, tmp_path) -> None:
    """Logits (readable path, SDPA, packed), every hidden state and every attention map entry;
    rows of 40 tokens against a window of 4 on each side (SDPA: the dense band, the packed
    rows of 5 and 3 tokens as in global blocks); then the local blocks' fast path in chunks of 8
    queries (as it runs on long rows)."""
    from .helpers.checkpoints import load_reference

    folder = make_modernbert_checkpoint(tmp_path, labels=LABELS, **CASES[case])
    ref, ours = load_reference(folder), load_model(folder)
    assert isinstance(ours, ModernBertTokenClassifier)
    kinds = [block.layer_type for block in ours.layers]
    assert kinds == list(ref.config.layer_types) and len(set(kinds)) == 2
    ids, mask = padded_batch(ours.config.vocab_size, [40, 5, 23, 3])
    assert_same_outputs(ref, ours, ids, mask, f"modernbert {case}", TOL)
    for block in ours.layers:
        block.attention.local_chunk = 8  # 40 > 8 + 2 x 4: chunks, packed rows too
    assert_same_outputs(ref, ours, ids, mask, f"modernbert {case}, local blocks in chunks", TOL)


def test_every_local_path_equals_the_readable_one() -> None:
    """A local block's fast path (a global block's within the window + 1, the dense band,
    chunks) equals the readable path at every row length on both sides of each threshold, with
    padded keys and without, the second block reusing the masks the first made."""
    config = ModelConfig.from_dict({"model_type": "modernbert", "hidden_size": 16,
                                    "num_attention_heads": 2, "local_attention": 8})  # fmt: skip
    attention = ModernBertAttention(config, "sliding_attention")
    window = attention.window
    chunked = next(T for T in range(1, 100) if queries_per_chunk(T, window) is not None)
    assert window == 4 and chunked == 61  # chunks of 32 queries against 40 keys
    generator = torch.Generator().manual_seed(3)
    paths = set()
    for T in range(1, chunked + 3):
        q, k, v = torch.randn(3, 2, T, config.hidden_size, generator=generator)
        keep = torch.ones(2, T, dtype=torch.bool)
        keep[1, T - T // 3 :] = False  # the second row padded
        for mask in (None, keep):
            readable = attention.attend(q, k, v, Biases(mask), output_attentions=True)[0]
            real = slice(None) if mask is None else mask  # padded queries' rows may differ
            shared = Biases(mask)
            for _ in range(2):  # two blocks of a forward pass
                fast = attention.attend(q, k, v, shared)[0]
                assert max_diff(fast[real], readable[real]) <= 1e-5, (T, mask is not None)
            paths.add(tuple(key[0] for key in shared.made))
    assert paths == {("padding",), ("band",), ("chunks",)}


def test_the_window_stays_within_each_packed_row(tmp_path) -> None:
    """Packed, a row's tokens are its own: each row equals itself alone (no window reaches a
    neighbour), in both local paths."""
    model = load_model(make_modernbert_checkpoint(tmp_path, labels=LABELS))
    ids, mask = padded_batch(model.config.vocab_size, [30, 12, 29, 7], seed=2)
    for chunk in (None, 8):
        for block in model.layers:
            block.attention.local_chunk = chunk
        with torch.inference_mode():
            packed = model(ids, mask, packed=True).logits
            for row, n in enumerate(mask.sum(1).tolist()):
                alone = model(ids[row : row + 1, :n]).logits[0]
                assert max_diff(packed[row, :n], alone) <= 1e-5


def test_both_config_forms_and_save_round_trip(tmp_path) -> None:
    """The hub's config.json (global_attn_every_n_layers, global/local_rope_theta) and
    transformers 5's (layer_types, rope_parameters) give the same model; what we save loads in
    transformers with equal logits; unsupported rotary scaling is refused."""
    from .helpers.checkpoints import load_reference

    folder = make_modernbert_checkpoint(tmp_path / "m", labels=LABELS)
    saved = json.loads((folder / "config.json").read_text())
    assert "rope_parameters" in saved and "layer_types" in saved
    hub = {k: v for k, v in saved.items() if k not in ("rope_parameters", "layer_types")}
    hub |= {"global_attn_every_n_layers": 2, "global_rope_theta": 1000.0,
            "local_rope_theta": 100.0}  # fmt: skip
    ours = ModelConfig.from_dict(saved)
    assert ModelConfig.from_dict(hub) == ours
    assert (ours.global_rope_theta, ours.local_rope_theta, ours.local_attention) == (1e3, 1e2, 8)
    assert ModelConfig.from_dict(ours.to_dict()).to_dict() == ours.to_dict()

    model = load_model(folder)
    save_model(model, tmp_path / "out")
    again, ref = load_model(tmp_path / "out"), load_reference(tmp_path / "out")
    assert set(load_file(tmp_path / "out" / "model.safetensors")) == set(
        load_file(folder / "model.safetensors")
    )
    ids, mask = padded_batch(model.config.vocab_size, [30, 7])
    with torch.inference_mode():
        a, b = model(ids, mask).logits, again(ids, mask).logits
        c = ref(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(a, b) and max_diff(a, c, mask) <= TOL

    scaled = saved | {
        "rope_parameters": {
            "full_attention": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}
        }
    }
    with pytest.raises(ConfigError, match="rope_parameters.full_attention.rope_type is 'linear'"):
        ModelConfig.from_dict(scaled)
    with pytest.raises(ConfigError, match="layer_types must name"):
        ModelConfig.from_dict(saved | {"layer_types": ["full_attention", "chunked"]})
    with pytest.raises(ConfigError, match="classifier_activation 'mish'"):
        ModelConfig.from_dict(saved | {"classifier_activation": "mish"})


def test_config_defaults_are_transformers_defaults() -> None:
    ours = ModelConfig.from_dict({"model_type": "modernbert"})
    theirs = transformers.ModernBertConfig()
    assert (ours.num_layers, ours.hidden_size, ours.num_heads, ours.intermediate_size) == (
        theirs.num_hidden_layers, theirs.hidden_size, theirs.num_attention_heads,
        theirs.intermediate_size,
    )  # fmt: skip
    assert ours.layer_types == tuple(theirs.layer_types)
    assert ours.local_attention == theirs.local_attention == 128
    assert ours.global_rope_theta == theirs.rope_parameters["full_attention"]["rope_theta"]
    assert ours.local_rope_theta == theirs.rope_parameters["sliding_attention"]["rope_theta"]
    assert (ours.norm_bias, ours.attention_bias, ours.mlp_bias, ours.head_bias) == (
        theirs.norm_bias, theirs.attention_bias, theirs.mlp_bias, theirs.classifier_bias,
    )  # fmt: skip
    assert ours.layer_norm_eps == theirs.norm_eps and ours.pad_token_id == theirs.pad_token_id
    assert ours.max_positions == theirs.max_position_embeddings == 8192


def test_base_and_masked_lm_checkpoints_get_a_fresh_classifier(tmp_path) -> None:
    """A ModernBertModel (no head at all): head and classifier fresh. A ModernBertForMaskedLM
    (what answerdotai/ModernBERT-base is): its `head` loads, as transformers loads it into a
    token classifier, its decoder is skipped, the classifier is fresh."""
    base = make_modernbert_checkpoint(tmp_path / "base", labels=None, base=True)
    with pytest.raises(minibert_ner.CheckpointError, match="is a base model"):
        load_model(base)
    model = load_model(base, id2label=dict(enumerate(LABELS)))
    assert model.head.dense.weight.device.type == "cpu" and model.classifier.out_features == 9
    ids, mask = padded_batch(model.config.vocab_size, [20, 9])
    with torch.inference_mode():
        assert torch.isfinite(model(ids, mask).logits).all()

    transformers.ModernBertForMaskedLM(
        transformers.ModernBertConfig.from_pretrained(base)
    ).save_pretrained(tmp_path / "mlm")
    tensors = load_file(tmp_path / "mlm" / "model.safetensors")
    assert any(k.startswith("decoder.") for k in tensors)
    mlm = load_model(tmp_path / "mlm", id2label=dict(enumerate(LABELS)))
    assert torch.equal(mlm.head.dense.weight, tensors["head.dense.weight"])


def test_inspect_and_interventions(tmp_path, modernbert_tokenizer) -> None:
    """inspect's lens passes final_norm before the head (its last layer is the model's logits);
    local blocks' attention stays within the window; mask_heads equals prune_heads on the fused
    q/k/v projection; there is no position table to cap."""
    from minibert_ner.study.interventions import cap_sequence_length, mask_heads, prune_heads
    from minibert_ner.study.lens import inspect_text

    from .helpers.checkpoints import copy_tokenizer

    tok = Tokenizer.from_pretrained(modernbert_tokenizer)
    folder = make_modernbert_checkpoint(
        tmp_path, labels=LABELS, pad_token_id=tok.pad_token_id, vocab_size=tok.vocab_size
    )
    copy_tokenizer(modernbert_tokenizer, folder)
    model, tokenizer = load_model(folder), Tokenizer.from_pretrained(folder)
    text = " ".join(conll_sentences("test", limit=4)[3])
    inspection = inspect_text(model, tokenizer, text)
    batch = tokenizer.to_tensors([tokenizer.encode(text)])
    with torch.inference_mode():
        logits = model(**batch).logits[0]
    torch.testing.assert_close(inspection.logits[-1], logits)
    T = logits.shape[0]
    far = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).abs() > 4
    for block, attention in zip(model.layers, inspection.attentions, strict=True):
        assert T > 9 and bool((attention[:, far] == 0).all()) == (
            block.layer_type != "full_attention"
        )

    with torch.inference_mode(), mask_heads(model, {1: [0, 2]}):
        masked = model(**batch).logits
    with torch.inference_mode():
        pruned = prune_heads(model, {1: [0, 2]})(**batch).logits
    assert model.layers[1].attention.num_heads == 2 and max_diff(masked, pruned) <= 1e-5
    with pytest.raises(minibert_ner.InterventionError, match="ModernBERT: rotary"):
        cap_sequence_length(model, 16)


def test_fresh_weights_as_transformers_initialises_them() -> None:
    from minibert_ner.checkpoint import build_model

    raw = {"model_type": "modernbert", "hidden_size": 64, "num_attention_heads": 4,
           "num_hidden_layers": 8, "intermediate_size": 96, "vocab_size": 500,
           "pad_token_id": 0, "initializer_range": 0.5, "id2label": {"0": "O", "1": "B-X"}}  # fmt: skip
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict(raw))
    model.init_weights()
    wqkv, wo = model.layers[3].attention.qkv.weight, model.layers[3].attention.output.weight
    assert abs(wqkv.abs().max().item() - 1.0) < 0.01  # cut at 2 std
    assert abs(wo.std().item() - 0.5 / 4 * 0.88) < 0.02  # 0.5 / sqrt(2 x 8), truncated
    assert abs(model.classifier.weight.std().item() - 64**-0.5 * 0.88) < 0.03
    assert model.layers[0].attention_norm.__class__ is torch.nn.Identity
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.LayerNorm))


# --- tokenizer and pipeline -------------------------------------------------------------------


@pytest.mark.parametrize("named", ["PreTrainedTokenizerFast", "RobertaTokenizer", None])
def test_tokenizer_json_as_transformers_5_runs_it(named, modernbert_tokenizer, tmp_path) -> None:
    """For model_type modernbert transformers 5 runs tokenizer.json as it is, whatever
    tokenizer_config.json names (its TokenizersBackend): ids, offsets, word ids, tokens equal."""
    from .test_tokenizer import EDGE_TEXTS, HARD_TEXTS, assert_same_as_transformers, texts

    folder = tmp_path / "tok"
    shutil.copytree(modernbert_tokenizer, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("tokenizer_class")
    if named is not None:
        config["tokenizer_class"] = named
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    edges = ["a [MASK] b", "[CLS] x [SEP]", "tabs\tand\nnew\r\nlines"]
    assert assert_same_as_transformers(folder, texts() + EDGE_TEXTS + edges) > 300
    ours = Tokenizer.from_pretrained(folder)
    ref = transformers.AutoTokenizer.from_pretrained(folder)
    assert type(ref).__name__ == "TokenizersBackend"
    assert ours.spaced_words and not ours.subword_prefix and ours.model_max_length == 8192
    for text in HARD_TEXTS:
        tokens = ours.encode(text).tokens[1:-1]
        assert ours.tokens_to_string(tokens) == ref.convert_tokens_to_string(tokens), text


def test_pre_split_words_are_tokenized_as_in_their_text(modernbert_tokenizer) -> None:
    """transformers tokenizes each pre-split word alone, so every word after the first loses the
    space it has in text (`re j ects` where text has `Ġre j ects`: huggingface/transformers#37883);
    ours keeps it: the tokens of the words are those of their text."""
    from minibert_ner.inference.pipeline import join_words

    ours = Tokenizer.from_pretrained(modernbert_tokenizer)
    ref = transformers.AutoTokenizer.from_pretrained(modernbert_tokenizer)
    sentences = conll_sentences("test", limit=60)
    differ = 0
    for words in sentences:
        text = ours.encode(" ".join(words))
        split = ours.encode(words)
        assert split.ids == text.ids, words
        joined = join_words(words, split.offsets[1:-1], split.word_ids[1:-1], spaced=True)
        assert joined == (" ".join(words), text.offsets[1:-1])  # the offsets in the text
        theirs = ref(words, is_split_into_words=True)["input_ids"]
        differ += theirs != text.ids
    print(f"\npre-split words: {differ} of {len(sentences)} sentences tokenized otherwise by "
          "transformers than their text; ours: none")  # fmt: skip
    assert differ > 50
    words = ["EU", "rejects", "German", "call"]
    assert ours.encode(words).tokens[3:6] == ["Ġre", "j", "ects"]
    assert ref(words, is_split_into_words=True).tokens()[3:6] == ["re", "j", "ects"]


@pytest.fixture(scope="module")
def modernbert_ner(tmp_path_factory, modernbert_tokenizer) -> Path:
    return modernbert_ner_checkpoint(
        tmp_path_factory.mktemp("modernbert_ner"), modernbert_tokenizer
    )


def test_entities_match_transformers(modernbert_ner) -> None:
    """All five strategies equal transformers' pipeline (its space rule for sub-words) on CoNLL
    sentences three to a text and hard Unicode; scores within 1e-4."""
    from .test_pipeline_parity import parity_texts, reference_entities, reference_pipeline

    texts = parity_texts(60)
    ours = minibert_ner.pipeline(modernbert_ner)
    assert ours.window_size == 8192
    expected = reference_entities(reference_pipeline(modernbert_ner), texts)
    n = 0
    for strategy in STRATEGIES:
        n += assert_same_entities(ours(texts, aggregation_strategy=strategy),
                                  expected[strategy], strategy)  # fmt: skip
    print(f"\nmodernbert: {len(texts)} texts, {n} entities equal over 5 strategies")
    assert n > 50


def test_pre_split_entities_are_those_of_the_text(modernbert_ner) -> None:
    """Pre-split words give the entities (and label_words the labels) of their text; transformers'
    pre-split words, tokenized without their spaces, give other labels."""
    from .test_pipeline_parity import reference_pipeline

    ner, theirs = minibert_ner.pipeline(modernbert_ner), reference_pipeline(modernbert_ner)
    sentences = [words for words in conll_sentences("test", limit=40) if len(words) > 3]
    texts = [" ".join(words) for words in sentences]
    changed = 0
    for strategy in ("none", "first"):
        split = ner(sentences, is_split_into_words=True, aggregation_strategy=strategy)
        assert_same_entities(split, ner(texts, aggregation_strategy=strategy), strategy, 1e-5)
        for words, got in zip(sentences, split, strict=True):
            their = theirs(words, is_split_into_words=True, aggregation_strategy=strategy)[0]
            changed += [(e["start"], e["end"]) for e in got] != [
                (e["start"], e["end"]) for e in their
            ]
    print(
        f"\npre-split words: transformers' entities differ from their text's in {changed} of "
        f"{2 * len(sentences)} (sentence, strategy) pairs; ours in none"
    )
    assert changed > 10
    words = ner(texts, aggregation_strategy="none", ignore_labels=[])
    labels = ner.label_words(sentences)
    for tokens, sentence_labels, sentence in zip(words, labels, sentences, strict=True):
        firsts = [t["entity"] for t in tokens if t["start"] == 0 or t["word"].startswith("Ġ")]
        assert sentence_labels == firsts[: len(sentence)], sentence


def test_long_text_runs_to_the_end_in_windows(modernbert_ner, tmp_path) -> None:
    """Windows of the tokenizer's model_max_length (here 64 rather than 8192): a document of
    several hundred tokens is labelled to its last token."""
    folder = tmp_path / "model"
    shutil.copytree(modernbert_ner, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps(config | {"model_max_length": 64}))
    ner = minibert_ner.pipeline(folder)
    assert ner.window_size == 64
    text = "\n\n".join(" ".join(words) for words in conll_sentences("test", limit=60))
    n = len(ner.tokenizer.encode(text).ids) - 2
    assert n > 600
    tokens = ner(text, aggregation_strategy="none", ignore_labels=[])
    assert [t["index"] for t in tokens] == list(range(1, n + 1))
    assert tokens[-1]["end"] == len(text.rstrip())


# --- word_grouping="word_ids": the RoBERTa-family tests, run on ModernBERT --------------------

from .test_word_grouping import (  # noqa: E402, F401
    test_transformers_rule_has_the_quirks_word_ids_remove,
    test_word_ids_grouping_equals_the_oracle_and_keeps_its_promises,
)


@pytest.fixture(scope="module")
def ner(modernbert_ner):
    return minibert_ner.pipeline(modernbert_ner, word_grouping="word_ids")


# --- the commands -------------------------------------------------------------------------------


def test_train_evaluate_inspect_batch_serve(
    modernbert_tokenizer, conll_dir, tmp_path, capsys
) -> None:
    """A base ModernBertModel (no head) is fine-tuned a few steps with a fresh head by `train`;
    the result loads in transformers with equal logits; `evaluate`, `inspect` (which names each
    block global or local), `batch` and the server run it, batch and server equal to the
    pipeline."""
    from minibert_ner.cli import main
    from minibert_ner.serve.app import create_app
    from minibert_ner.serve.limits import ServeLimits

    from .helpers.checkpoints import copy_tokenizer, load_reference
    from .helpers.corpora import read_jsonl
    from .helpers.server import post_json, serve_thread, wait_ready
    from .test_families import train_a_few_steps

    tok = Tokenizer.from_pretrained(modernbert_tokenizer)
    base = make_modernbert_checkpoint(tmp_path / "base", labels=None, base=True,
                                      vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id)  # fmt: skip
    copy_tokenizer(modernbert_tokenizer, base)
    out, valid, valid_file = train_a_few_steps(base, tmp_path, conll_dir)
    ours, theirs = load_model(out), load_reference(out)
    assert theirs.config.id2label == ours.id2label and len(ours.id2label) == 9
    sentences = [" ".join(s.words) for s in valid[:6]]
    batch = transformers.AutoTokenizer.from_pretrained(out)(sentences, padding=True,
                                                            return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        expected = theirs(**batch).logits
        got = ours(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert max_diff(got, expected, batch["attention_mask"]) <= TOL

    capsys.readouterr()
    report = tmp_path / "report.json"
    assert main(["evaluate", "--model", str(out), "--data", str(valid_file), "--json",
                 str(report)]) == 0  # fmt: skip
    assert json.loads(report.read_text())["sentences"] == 16
    assert main(["inspect", "--model", str(out), sentences[0]]) == 0
    assert "blocks: L0 global, L1 local (±4), L2 global, L3 local (±4)" in capsys.readouterr().out

    (tmp_path / "in.txt").write_text("\n".join(sentences) + "\n", "utf-8")
    assert main(["batch", "--input", str(tmp_path / "in.txt"), "--output",
                 str(tmp_path / "out"), "--model", str(out)]) == 0  # fmt: skip
    rows = [r["entities"] for r in read_jsonl(tmp_path / "out" / "in.jsonl")]
    ner = minibert_ner.pipeline(out)
    assert_same_entities(rows, ner(sentences), "batch", 1e-5)

    app = create_app(lambda: ner, ner.options, ServeLimits(batch_wait=0.0), model_name="m")
    with serve_thread(app) as url:
        wait_ready(url)
        status, answer = post_json(url, {"inputs": sentences})
    assert status == 200
    assert_same_entities(answer, ner(sentences), "serve", 1e-5)
