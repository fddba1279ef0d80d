"""`spm.model` alone (deberta-v3-*, mdeberta-v3-base, fine-tunes without tokenizer.json): the
file read without `sentencepiece` or `protobuf` equals protobuf's reading; the tokenizer built
from it equals transformers' DebertaV2Tokenizer (ids, offsets, word ids) on CoNLL, hard and
generated text, for Unigram and BPE models, with and without a normalisation table and byte
pieces; the pipeline's entities equal transformers' pipeline's; a damaged file is one clear
error. SentencePiece models are trained here by the `sentencepiece` package (a test dependency)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibert_ner
from minibert_ner import Tokenizer, TokenizerError
from minibert_ner.inference.aggregation import STRATEGIES
from minibert_ner.sentencepiece import TRAINER_FIELDS, read_sentencepiece
from minibert_ner.tokenizer import Template

from .helpers.assertions import assert_same_entities
from .helpers.data import conll_sentences
from .helpers.tokenizers import train_sentencepiece
from .test_deberta_pipeline import DEBERTA_EDGES, deberta_ner_checkpoint
from .test_tokenizer import EDGE_TEXTS, HARD_TEXTS, PRE_SPLIT, assert_same_as_transformers

pytest.importorskip("sentencepiece")

# SentencePieceTrainer options of each model the tests train
MODELS = {
    "unigram": {"control_symbols": ["[ENT]"]},  # nmt_nfkc: a Precompiled table in the file
    "unigram-bytes": {"byte_fallback": True, "user_defined_symbols": ["<<ENT>>"]},
    "unigram-identity": {"normalization_rule_name": "identity"},  # no table
    "bpe": {"model_type": "bpe"},
}
V3_BASE_CONFIG = {"do_lower_case": False, "vocab_type": "spm"}  # deberta-v3-base's, whole
SPM_EDGES = [
    "Ｆｕｌｌ－ｗｉｄｔｈ ﬁne ½ ① ㍿ Ⅳ ｶﾀｶﾅ",  # changed by nmt_nfkc's table
    "no\u00a0break\u3000ideographic \u2028 line\u2029separators\u200b",
    "<<ENT>> person <<SEP>> Anna [MASK]x [CLS]y [ENT]z",
    "▁lone ▁▁ marks ▁",
    "   ",
    "x   ",
]


def spm_texts() -> list[str]:
    sentences = [" ".join(words) for words in conll_sentences("test", limit=100)]
    return sentences + HARD_TEXTS + EDGE_TEXTS + DEBERTA_EDGES + SPM_EDGES


@pytest.fixture(scope="module")
def spm_models(tmp_path_factory, conll_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spm")
    return {name: train_sentencepiece(root / name, **options) for name, options in MODELS.items()}


def spm_folder(model: Path, folder: Path, config: dict | None = None, **files: dict) -> Path:
    """A checkpoint's tokenizer files as deberta-v3-base ships them: spm.model, config.json
    (model_type deberta-v2), tokenizer_config.json (`config`, default deberta-v3-base's), and
    `files` ({"added_tokens.json": {...}}), but no tokenizer.json."""
    folder.mkdir(parents=True)
    shutil.copy(model / "spm.model", folder / "spm.model")
    (folder / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    files = {"tokenizer_config.json": V3_BASE_CONFIG if config is None else config} | files
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content))
    return folder


def test_reader_equals_protobuf(spm_models) -> None:
    """Every piece (text, score, type) and every field we read equal protobuf's own reading."""
    model_pb2 = pytest.importorskip("sentencepiece.sentencepiece_model_pb2")
    for name, folder in spm_models.items():
        proto = model_pb2.ModelProto.FromString((folder / "spm.model").read_bytes())
        ours = read_sentencepiece(folder / "spm.model")
        assert ours.pieces == [(p.piece, p.score, p.type) for p in proto.pieces], name
        assert ours.model_type == {1: "unigram", 2: "bpe"}[proto.trainer_spec.model_type]
        for field_name, _, _ in TRAINER_FIELDS.values():
            if field_name != "model_type":
                assert getattr(ours, field_name) == getattr(proto.trainer_spec, field_name), name
        spec = proto.normalizer_spec
        assert ours.normalizer_name == spec.name and ours.model_type in name
        assert ours.precompiled_charsmap == spec.precompiled_charsmap
        assert (ours.add_dummy_prefix, ours.remove_extra_whitespaces, ours.escape_whitespaces) == (
            spec.add_dummy_prefix, spec.remove_extra_whitespaces, spec.escape_whitespaces
        )  # fmt: skip
    assert read_sentencepiece(spm_models["unigram-bytes"] / "spm.model").byte_fallback


# model, tokenizer_config.json (None: deberta-v3-base's), other files
TOKENIZER_CASES = {
    "deberta-v3-base": ("unigram", None, {}),
    "do_lower_case": ("unigram", {"tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": True}, {}),
    "split_by_punct": ("unigram", {"tokenizer_class": "DebertaV2Tokenizer", "split_by_punct": True}, {}),
    "no-prefix-space": ("unigram", {"tokenizer_class": "DebertaV2Tokenizer", "add_prefix_space": False}, {}),
    "added_tokens.json": ("unigram", None, {
        "added_tokens.json": {"[MASK]": 1000, "<<ENT>>": 1001, "<<SEP>>": 1002},
        "special_tokens_map.json": {"mask_token": "[MASK]", "unk_token": "[UNK]",
                                    "additional_special_tokens": ["<<ENT>>"]},
    }),
    "additional_special_tokens": ("unigram", V3_BASE_CONFIG | {"additional_special_tokens": ["<<SEP>>"]}, {
        "added_tokens.json": {"[MASK]": 1000, "<<ENT>>": 1001, "<<SEP>>": 1002},
    }),
    "byte-fallback": ("unigram-bytes", None, {}),
    "identity": ("unigram-identity", None, {}),
    "bpe": ("bpe", None, {}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TOKENIZER_CASES))
def test_tokenizer_matches_transformers(case, spm_models, tmp_path) -> None:
    """ids, offsets, word ids, tokens, unknown and padding ids and vocabulary size equal
    transformers' DebertaV2Tokenizer made from the same folder, on CoNLL text, hard Unicode,
    whitespace runs, special-token text and pre-split words. (A byte-fallback model gives
    [UNK] for characters it lacks, as in transformers, whose DebertaV2Tokenizer turns byte
    fallback off; a BPE model's pieces and scores are read as a Unigram vocabulary, as there.)"""
    transformers = pytest.importorskip("transformers")
    model, config, files = TOKENIZER_CASES[case]
    folder = spm_folder(spm_models[model], tmp_path / "tok", config, **files)
    all_texts = spm_texts()
    assert assert_same_as_transformers(folder, all_texts) == len(all_texts)
    assert_same_as_transformers(folder, PRE_SPLIT, pretokenized=True)
    assert type(transformers.AutoTokenizer.from_pretrained(folder)).__name__ == "DebertaV2Tokenizer"
    ours = Tokenizer.from_pretrained(folder)
    assert ours.template == Template(1, 1) and not ours.subword_prefix
    assert ours.config["tokenizer_class"] == "DebertaV2Tokenizer"


def test_saved_and_transformers_saved_tokenizer_json(spm_models, tmp_path) -> None:
    """Saved as tokenizer.json (ours, or transformers' save_pretrained), the tokenizer loads
    equal to transformers': its Precompiled table is kept, as transformers 5.x keeps it."""
    transformers = pytest.importorskip("transformers")
    files = TOKENIZER_CASES["added_tokens.json"][2]
    folder = spm_folder(spm_models["unigram"], tmp_path / "tok", **files)
    Tokenizer.from_pretrained(folder).save(tmp_path / "ours")
    transformers.AutoTokenizer.from_pretrained(folder).save_pretrained(tmp_path / "theirs")
    for saved in ("ours", "theirs"):
        (tmp_path / saved / "spm.model").unlink(missing_ok=True)
        assert_same_as_transformers(tmp_path / saved, spm_texts())


# Text the normaliser, Metaspace and the special tokens all act on.
FRAGMENTS = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u200b", "\x00", "\x07", "▁",
             "[CLS]", "[SEP]", "[MASK]", "[UNK]", "[ENT]", "<<ENT>>", "e\u0301", "ﬁ", "Ａ", "①", "北京",
             "😀", "👩‍🔬", "ß", "İ", "Berlin", "EU", "rejects", "-", "'s", "."]  # fmt: skip
TEXTS = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.characters(exclude_categories=("Cs",))),
    max_size=24,
).map("".join)


@pytest.fixture(scope="module")
def generated_pair(spm_models, tmp_path_factory):
    """Ours and transformers' tokenizer for one folder (deberta-v3-base's config plus added
    tokens), loaded once for all generated examples."""
    transformers = pytest.importorskip("transformers")
    files = TOKENIZER_CASES["added_tokens.json"][2]
    folder = spm_folder(spm_models["unigram"], tmp_path_factory.mktemp("gen") / "tok", **files)
    return Tokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXTS, min_size=1, max_size=4), pretokenized=st.booleans())
def test_generated_text_matches_transformers(generated_pair, texts, pretokenized) -> None:
    """Generated text (or, pre-split, generated words): ids, offsets, word ids equal."""
    ours, ref = generated_pair
    inputs = [t.split(" ") for t in texts] if pretokenized else texts
    expected = ref(inputs, is_split_into_words=pretokenized, return_offsets_mapping=True)
    for i, enc in enumerate(ours.encode_batch(inputs, is_pretokenized=pretokenized)):
        assert enc.ids == expected["input_ids"][i]
        assert enc.offsets == [tuple(o) for o in expected["offset_mapping"][i]]
        assert enc.word_ids == expected.word_ids(i)


def test_pipeline_entities_match_transformers(spm_models, tmp_path) -> None:
    """A transformers-made DeBERTa-v3 token classifier whose folder holds spm.model and no
    tokenizer.json: every aggregation strategy's entities equal transformers' pipeline's."""
    from .test_pipeline_parity import parity_texts, reference_entities, reference_pipeline

    tokenizer = spm_folder(spm_models["unigram"], tmp_path / "tok")
    folder = deberta_ner_checkpoint(tmp_path / "model", tokenizer)
    assert (folder / "spm.model").is_file() and not (folder / "tokenizer.json").exists()
    texts = parity_texts(12) + SPM_EDGES
    ours = minibert_ner.pipeline(folder)
    expected = reference_entities(reference_pipeline(folder), texts)
    n = sum(
        assert_same_entities(ours(texts, aggregation_strategy=s), expected[s], s)
        for s in STRATEGIES
    )
    print(f"\nspm.model only: {len(texts)} texts, {n} entities equal over 5 strategies")
    assert n > 50


DAMAGED = {
    "empty": lambda data: b"",
    "cut after 1 byte": lambda data: data[:1],
    "cut in the pieces": lambda data: data[: len(data) // 50],
    "cut in the normaliser table": lambda data: data[: len(data) // 2],
    "cut before the last byte": lambda data: data[:-1],
    "an HTML page": lambda data: b"<!DOCTYPE html><html><body>Not Found</body></html>",
    "a JSON file": lambda data: b'{"version": "1.0", "model": {}}',
    "wire type 7": lambda data: b"\x0f" + data,
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_damaged_spm_model_is_one_line_error(damage, spm_models, tmp_path) -> None:
    """A truncated or foreign spm.model: one line naming the file, saying to download it again."""
    folder = spm_folder(spm_models["unigram"], tmp_path / "tok")
    data = (folder / "spm.model").read_bytes()
    (folder / "spm.model").write_bytes(DAMAGED[damage](data))
    with pytest.raises(TokenizerError) as error:
        Tokenizer.from_pretrained(folder)
    message = str(error.value)
    assert str(folder / "spm.model") in message and "download it again" in message
    assert "\n" not in message


def test_unknown_id_outside_the_vocabulary_is_one_line_error(spm_models, tmp_path) -> None:
    """A file that reads but whose unknown piece is missing and unk_id points past the end."""
    model_pb2 = pytest.importorskip("sentencepiece.sentencepiece_model_pb2")
    folder = spm_folder(spm_models["unigram"], tmp_path / "tok")
    proto = model_pb2.ModelProto.FromString((folder / "spm.model").read_bytes())
    proto.pieces[3].piece, proto.trainer_spec.unk_id = "[UNKNOWN]", 100_000
    (folder / "spm.model").write_bytes(proto.SerializeToString())
    with pytest.raises(TokenizerError, match=r"spm.model: .*unknown id 100000 is outside"):
        Tokenizer.from_pretrained(folder)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=64), prefix=st.integers(0, 4000))
def test_any_bytes_load_or_raise_tokenizer_error(spm_models, data, prefix) -> None:
    """Arbitrary bytes as spm.model, alone or after the start of a real model: a tokenizer, or
    a TokenizerError naming the file."""
    real = (spm_models["unigram"] / "spm.model").read_bytes()
    folder = spm_models["unigram"].parent / "any"
    if not folder.exists():
        spm_folder(spm_models["unigram"], folder)
    for content in (data, real[:prefix] + data):
        (folder / "spm.model").write_bytes(content)
        try:
            Tokenizer.from_pretrained(folder)
        except TokenizerError as e:
            assert str(folder / "spm.model") in str(e)
