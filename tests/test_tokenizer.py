"""Tokenizer parity with `transformers`' fast tokenizers: ids, offsets and word ids, on CoNLL
sentences and hard text, from `tokenizer.json` and from `vocab.txt` alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from minibert_ner import Tokenizer, TokenizerError
from minibert_ner.tokenizer import Template

from .helpers.data import conll_sentences

HARD_TEXTS = [
    "",
    " ",
    "Crème brûlée at Café Müller in Zürich; Ångström, naïve, Øresund.",
    "北京大学 and 東京 met 서울 officials in 上海.",
    "Emoji 😀 next to names: Anna 👩‍🔬 Smith 🇫🇷",
    "Control\tchars\x00 and \x07 bell \u200b zero-width \ufeff BOM\r\nnew line",
    "Supercalifragilisticexpialidocious" * 5 + " " + "a" * 120,
    "Jean-Baptiste O'Neill (U.S.A.) paid $3.5bn -- 'quoted' \"twice\" ...",
    "ÉCOLE NORMALE SUPÉRIEURE Ǆemal İstanbul ß",
    "\u0301 combining first, then e\u0301 and Ａｒａｂｉｃ ١٢٣ مرحبا עברית",
]


def texts() -> list[str]:
    return [" ".join(words) for words in conll_sentences("test", limit=300)] + HARD_TEXTS


def vocab_only_folder(src: Path, dst: Path, **config) -> Path:
    """A checkpoint folder with vocab.txt + tokenizer_config.json only, as the dslim BERT models ship."""
    dst.mkdir()
    shutil.copy(src / "vocab.txt", dst / "vocab.txt")
    base = {"tokenizer_class": "BertTokenizer", "model_max_length": 512}
    (dst / "tokenizer_config.json").write_text(json.dumps(base | config))
    return dst


def assert_same_as_transformers(folder: Path, inputs: list, pretokenized: bool = False) -> int:
    transformers = pytest.importorskip("transformers")
    ref = transformers.AutoTokenizer.from_pretrained(folder)
    ours = Tokenizer.from_pretrained(folder)
    expected = ref(inputs, is_split_into_words=pretokenized, return_offsets_mapping=True)
    got = ours.encode_batch(inputs, is_pretokenized=pretokenized)
    for i, enc in enumerate(got):
        assert enc.ids == expected["input_ids"][i], inputs[i]
        assert enc.offsets == [tuple(o) for o in expected["offset_mapping"][i]], inputs[i]
        assert enc.word_ids == expected.word_ids(i), inputs[i]
        # By id: a Unigram encoding names an unknown piece by its text, transformers "<unk>".
        tokens = [ours.backend.id_to_token(t) for t in enc.ids]
        assert tokens == ref.convert_ids_to_tokens(expected["input_ids"][i]), inputs[i]
    assert ours.unk_token_id == ref.unk_token_id and ours.pad_token_id == ref.pad_token_id
    assert ours.vocab_size == len(ref)
    return len(got)


def test_tokenizer_json_matches_transformers(minilm) -> None:
    n = assert_same_as_transformers(minilm, texts())
    assert n == 300 + len(HARD_TEXTS)


def test_pre_split_words_match_transformers(minilm) -> None:
    words = conll_sentences("test", limit=100) + [["Crème", "brûlée"], ["😀"], ["a" * 150, "b"]]
    assert_same_as_transformers(minilm, words, pretokenized=True)


@pytest.mark.parametrize(
    "config",
    [
        {"do_lower_case": True},
        {"do_lower_case": False, "max_len": 512},  # dslim/bert-base-NER's tokenizer_config
        {"do_lower_case": True, "strip_accents": False},
        {"do_lower_case": False, "tokenize_chinese_chars": False},
    ],
    ids=["uncased", "cased-legacy-max_len", "lowercase-keep-accents", "no-chinese-split"],
)
def test_vocab_txt_only_matches_transformers(minilm, tmp_path, config) -> None:
    folder = vocab_only_folder(minilm, tmp_path / "tok", **config)
    assert not (folder / "tokenizer.json").exists()
    assert_same_as_transformers(folder, texts())
    assert Tokenizer.from_pretrained(folder).model_max_length == 512


def test_decoding_tokens_matches_transformers(minilm) -> None:
    transformers = pytest.importorskip("transformers")
    ref = transformers.AutoTokenizer.from_pretrained(minilm)
    ours = Tokenizer.from_pretrained(minilm)
    for text in texts()[:50] + HARD_TEXTS:
        tokens = ours.encode(text).tokens[1:-1]
        assert ours.tokens_to_string(tokens) == ref.convert_tokens_to_string(tokens)


def test_save_round_trip_loads_in_transformers(minilm, tmp_path) -> None:
    folder = vocab_only_folder(minilm, tmp_path / "tok", do_lower_case=False, max_len=512)
    Tokenizer.from_pretrained(folder).save(tmp_path / "saved")
    assert_same_as_transformers(tmp_path / "saved", texts()[:50] + HARD_TEXTS)


def test_no_truncation_and_padding(minilm) -> None:
    tok = Tokenizer.from_pretrained(minilm)
    long_text = "word " * 2000
    assert len(tok.encode(long_text).ids) == 2002  # never cut: windows are the pipeline's job
    batch = tok.to_tensors(tok.encode_batch(["a b c", "a"]))
    assert batch["input_ids"].shape == (2, 5)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["input_ids"][1, 3:].tolist() == [tok.pad_token_id] * 2


def test_bad_input_and_files(minilm, tmp_path) -> None:
    tok = Tokenizer.from_pretrained(minilm)
    with pytest.raises(TokenizerError, match="lone surrogate at position 3"):
        tok.encode("abc\ud800def")
    with pytest.raises(TypeError, match="input 1 is a int"):
        tok.encode_batch(["ok", 5])  # type: ignore[list-item]
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenizerError, match="neither tokenizer.json nor vocab.txt"):
        Tokenizer.from_pretrained(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="cannot read"):
        Tokenizer.from_pretrained(tmp_path / "bad")


def probed_template(tok: Tokenizer) -> tuple[int, int]:
    """The special tokens around a text as encoding tells them (the template must agree)."""
    n_special = len(tok.encode("").ids)
    mask = tok.encode("a").special_tokens_mask
    prefix = mask.index(0) if 0 in mask else n_special
    return prefix, n_special - prefix


def test_tokenizer_states_its_template(minilm, tmp_path):
    from tokenizers import processors

    from minibert_ner.tokenizer import Template

    from_json = Tokenizer.from_pretrained(minilm)
    (tmp_path / "vocab").mkdir()
    shutil.copy(minilm / "vocab.txt", tmp_path / "vocab" / "vocab.txt")
    from_vocab = Tokenizer.from_pretrained(tmp_path / "vocab")
    cases = {"tokenizer.json": from_json, "vocab.txt": from_vocab}
    backend = from_json.backend
    templates = {
        "none": None,
        "roberta": processors.RobertaProcessing(("[SEP]", 102), ("[CLS]", 101)),
        "two before": processors.TemplateProcessing(
            single="[CLS] [CLS] $A [SEP]", special_tokens=[("[CLS]", 101), ("[SEP]", 102)]
        ),
        "sequence": processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.BertProcessing(("[SEP]", 102), ("[CLS]", 101)),
            ]  # fmt: skip
        ),
    }
    for name, processor in templates.items():
        copy = Tokenizer(type(backend).from_str(backend.to_str()))
        copy.backend.post_processor = processor
        cases[name] = Tokenizer(copy.backend)
    for name, tok in cases.items():
        assert (tok.template.prefix, tok.template.suffix) == probed_template(tok), name
    assert from_json.template == Template(1, 1) and cases["two before"].template == Template(2, 1)
    assert cases["none"].template == Template(0, 0)
    assert from_json.vocab_size == from_json.backend.get_vocab_size() == 30522
    assert from_json.unk_token_id == from_json.backend.token_to_id("[UNK]")


# --- the RoBERTa family: byte-level BPE and SentencePiece Unigram ---------------------------

EDGE_TEXTS = ["a  b   c", " leading space", "trailing space ", "x\u3000y", "<mask> and <s> x</s>"]
PRE_SPLIT = conll_sentences("test", limit=60) + [["Crème", "brûlée", "😀"], ["", "a"], [" ", "b"]]


def family_folder(case: str, tmp_path: Path, request) -> Path:
    """A tokenizer folder as the family's checkpoints ship it (see FAMILY_CASES)."""
    source = {"roberta": "bpe_tokenizer", "xlm-roberta": "unigram_tokenizer",
              "camembert": "camembert_tokenizer"}[case.split(":")[0]]  # fmt: skip
    folder = tmp_path / "tok"
    shutil.copytree(request.getfixturevalue(source), folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    if case == "roberta:vocab.json+merges.txt":
        (folder / "tokenizer.json").unlink()
    elif case == "roberta:add_prefix_space":
        config["add_prefix_space"] = True
    elif case == "roberta:model_type-only":  # no tokenizer_config.json: config.json decides
        (folder / "tokenizer_config.json").unlink()
        (folder / "config.json").write_text(json.dumps({"model_type": "roberta"}))
        return folder
    elif case == "xlm-roberta:no-prefix-space":
        config["add_prefix_space"] = False
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


FAMILY_CASES = [
    "roberta:tokenizer.json",
    "roberta:vocab.json+merges.txt",
    "roberta:add_prefix_space",
    "roberta:model_type-only",
    "xlm-roberta:tokenizer.json",
    "xlm-roberta:no-prefix-space",
    "camembert:tokenizer.json",
]


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_roberta_family_tokenizers_match_transformers(case, tmp_path, request) -> None:
    """ids, offsets, word ids, tokens, unknown and padding ids equal transformers' on CoNLL text,
    hard Unicode and pre-split words; decoding tokens too; saved, it loads the same in
    transformers."""
    folder = family_folder(case, tmp_path, request)
    all_texts = texts() + EDGE_TEXTS
    assert assert_same_as_transformers(folder, all_texts) == len(all_texts)
    assert_same_as_transformers(folder, PRE_SPLIT, pretokenized=True)
    transformers = pytest.importorskip("transformers")
    ref = transformers.AutoTokenizer.from_pretrained(folder)
    ours = Tokenizer.from_pretrained(folder)
    assert ours.template == Template(1, 1)
    assert ours.model_max_length == (None if case == "roberta:model_type-only" else 512)
    assert not ours.subword_prefix  # the pipeline's space rule applies (aggregation rule 1)
    for text in all_texts[:40] + HARD_TEXTS:
        tokens = ours.encode(text).tokens[1:-1]
        assert ours.tokens_to_string(tokens) == ref.convert_tokens_to_string(tokens), text
    ours.save(tmp_path / "saved")
    assert_same_as_transformers(tmp_path / "saved", all_texts[:50] + HARD_TEXTS + EDGE_TEXTS)


def test_sentencepiece_model_only_is_a_clear_error(tmp_path) -> None:
    folder = tmp_path / "xlmr"
    folder.mkdir()
    (folder / "sentencepiece.bpe.model").write_bytes(b"\x0a\x00")
    (folder / "config.json").write_text(json.dumps({"model_type": "xlm-roberta"}))
    with pytest.raises(
        TokenizerError, match="only the SentencePiece model sentencepiece.bpe.model"
    ):
        Tokenizer.from_pretrained(folder)
    with pytest.raises(TokenizerError, match=r"save_pretrained\(folder\)"):
        Tokenizer.from_pretrained(folder)


def test_tokenizer_files_that_do_not_belong_together(bpe_tokenizer, tmp_path) -> None:
    folder = tmp_path / "tok"
    shutil.copytree(bpe_tokenizer, folder)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "XLMRobertaTokenizer"})
    )
    with pytest.raises(
        TokenizerError, match="holds a BPE model, but its tokenizer class expects Unigram"
    ):
        Tokenizer.from_pretrained(folder)
    (folder / "tokenizer_config.json").write_text("[1]")
    with pytest.raises(TokenizerError, match="does not hold a JSON object"):
        Tokenizer.from_pretrained(folder)
