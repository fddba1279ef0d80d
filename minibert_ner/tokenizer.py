"""Text -> token ids, with character offsets and word ids, on the `tokenizers` library.

Which files a checkpoint has decides how its tokenizer is built, always as `transformers` (5.x)
builds it:

- `tokenizer.json`, used as it is (BERT WordPiece, and any tokenizer class not listed below);
- `tokenizer.json` of a RoBERTa, XLM-RoBERTa, CamemBERT or DeBERTa-v2/v3 tokenizer: transformers
  keeps only its vocabulary (and merges, and XLM-R's SentencePiece normalisation table) and
  rebuilds the rest in code from `tokenizer_config.json` (`add_prefix_space`, `trim_offsets`,
  special tokens; DeBERTa: `do_lower_case`, `split_by_punct`). `REBUILT`
  names those classes and `rebuild` does what their constructors do, so ids and offsets agree;
- `vocab.txt` only (the dslim BERT models): the BERT WordPiece tokenizer, configured by
  `tokenizer_config.json` (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars`);
- `vocab.json` + `merges.txt` only (older RoBERTa checkpoints): RoBERTa's byte-level BPE;
- `spm.model` only (microsoft/deberta-v3-*, mdeberta-v3-base and fine-tunes that ship no
  tokenizer.json): read by `sentencepiece.py` (no extra package) and built as transformers 5.x
  builds DebertaV2Tokenizer from it: the pieces and scores, the model's `Precompiled`
  normalisation table, its control pieces as special tokens, `added_tokens.json` and
  `special_tokens_map.json` when tokenizer_config.json lists no added tokens;
- another SentencePiece model file only (XLM-R's `sentencepiece.bpe.model`): an error saying how
  to add a `tokenizer.json`.

The tokenizer class is `tokenizer_config.json`'s `tokenizer_class`, else the one transformers
picks for `config.json`'s `model_type`. Truncation is always off: long text is the pipeline's
business, never silently cut here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import (
    AddedToken,
    Encoding,
    Regex,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers import Tokenizer as Backend
from tokenizers.models import BPE, Unigram, WordPiece

from .errors import InputError, TokenizerError
from .families import FAMILIES
from .hub import TOKENIZER_FILES, resolve_folder
from .sentencepiece import CONTROL, SentencePieceModel, read_sentencepiece

if TYPE_CHECKING:
    import torch

__all__ = [
    "AS_IS",
    "REBUILT",
    "SPECIAL_TOKENS",
    "Template",
    "Tokenizer",
    "bert_wordpiece",
    "deberta_from_sentencepiece",
    "read_vocab",
    "rebuild",
    "roberta_bpe",
]

# transformers writes this for "no limit" in tokenizer_config.json.
_NO_LIMIT = int(1e29)
SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


def bert_wordpiece(
    vocab: dict[str, int],
    *,
    do_lower_case: bool = True,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
    special_tokens: dict[str, str] = SPECIAL_TOKENS,
) -> Backend:
    """The BERT WordPiece tokenizer, built as `transformers`' BertTokenizer builds it from vocab.txt."""
    unk, cls, sep = (
        special_tokens["unk_token"],
        special_tokens["cls_token"],
        special_tokens["sep_token"],
    )
    for token in (unk, cls, sep):
        if token not in vocab:
            raise TokenizerError(f"vocabulary has no {token!r} token")
    backend = Backend(WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,  # None: strip when lower-casing, as the original BERT
        lowercase=do_lower_case,
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0",
        pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    backend.add_special_tokens([t for t in special_tokens.values() if t in vocab])
    return backend


# The tokenizer class transformers' AutoTokenizer picks for a model_type (when
# tokenizer_config.json names none): each family's registration says.
MODEL_TOKENIZERS = {t: family.tokenizer_class for t, family in FAMILIES.items()}
# transformers 5's generic backend, which runs tokenizer.json as it is.
AS_IS = ("TokenizersBackend",)
# The special tokens of the RoBERTa-family tokenizers, in the order transformers adds them.
ROBERTA_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "mask_token": "<mask>",
}
# The named special tokens transformers knows, in its order.
SPECIAL_TOKENS_ATTRIBUTES = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
)  # fmt: skip
# DeBERTa-v2/v3's, likewise.
DEBERTA_SPECIAL_TOKENS = {
    "bos_token": "[CLS]",
    "eos_token": "[SEP]",
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
SENTENCEPIECE_FILES = (
    "sentencepiece.bpe.model",
    "spiece.model",
    "sentencepiece.model",
    "spm.model",  # DeBERTa-v2/v3
)


@dataclass(frozen=True)
class Rebuilt:
    """How transformers 5.x rebuilds one tokenizer class around a tokenizer.json's vocabulary."""

    model: str  # "BPE" (byte-level) or "Unigram" (SentencePiece)
    add_prefix_space: bool  # its default: a space before the first word (Unigram: every word)
    # Unigram only: the id of the unknown token, fixed (XLM-R: 3) or None: where unk_token is
    fixed_unk_id: int | None = None
    # Special tokens added unless tokenizer_config.json lists its own (CamemBERT's "NOTUSED")
    extra_special_tokens: tuple[str, ...] = ()
    mask_lstrip: bool = False  # the mask token swallows the space before it (CamemBERT)
    # The class's special tokens (tokenizer_config.json may name others), in the order it adds them
    special_tokens: Mapping[str, str] = field(default_factory=lambda: ROBERTA_SPECIAL_TOKENS)
    # Unigram only: DeBERTa's text rules (normalise whitespace, NFC, strip the right end; one
    # Metaspace) and `[CLS] text [SEP]`, rather than XLM-R's (split on whitespace, `<s> text </s>`)
    deberta: bool = False


REBUILT = {
    "RobertaTokenizer": Rebuilt("BPE", add_prefix_space=False),
    "XLMRobertaTokenizer": Rebuilt("Unigram", add_prefix_space=True, fixed_unk_id=3),
    "CamembertTokenizer": Rebuilt(
        "Unigram",
        add_prefix_space=True,
        extra_special_tokens=("<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"),
        mask_lstrip=True,
    ),
    "DebertaV2Tokenizer": Rebuilt(
        "Unigram", add_prefix_space=True, special_tokens=DEBERTA_SPECIAL_TOKENS, deberta=True
    ),
}


def _added_token(token: str | dict[str, Any], **defaults: bool) -> AddedToken:
    """A special token as tokenizer_config.json writes it (a str, or an AddedToken dict)."""
    if isinstance(token, str):
        return AddedToken(token, special=True, **defaults)
    flags = ("single_word", "lstrip", "rstrip", "normalized", "special")
    return AddedToken(token["content"], **{k: token[k] for k in flags if k in token})


def roberta_bpe(
    vocab: dict[str, int], merges: list[tuple[str, str]], config: dict[str, Any]
) -> Backend:
    """RoBERTa's byte-level BPE, as `transformers`' RobertaTokenizer builds it: no normaliser,
    byte-level pre-tokenizer, `<s> text </s>` with offsets trimmed of spaces."""
    backend = Backend(
        BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
            end_of_word_suffix="", fuse_unk=False)
    )  # fmt: skip
    add_prefix_space = bool(config.get("add_prefix_space", False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    backend.decoder = decoders.ByteLevel()
    special = _add_special_tokens(backend, config, REBUILT["RobertaTokenizer"])
    sep, cls = special["sep_token"], special["cls_token"]
    backend.post_processor = processors.RobertaProcessing(
        (sep, backend.token_to_id(sep)),
        (cls, backend.token_to_id(cls)),
        trim_offsets=bool(config.get("trim_offsets", True)),
        add_prefix_space=add_prefix_space,
    )
    return backend


def _add_special_tokens(
    backend: Backend,
    config: dict[str, Any],
    kind: Rebuilt,
    extra_default: Sequence[str] | None = None,
) -> dict[str, str]:
    """Add the tokens transformers adds to a rebuilt tokenizer: tokenizer_config.json's
    `added_tokens_decoder` (in id order), then the named special tokens and the extra ones it
    does not have yet (the config's, else `extra_default`, else the class's). Returns the named
    special tokens' strings."""
    tokens: list[AddedToken] = []
    decoder = config.get("added_tokens_decoder") or {}
    for _, token in sorted(decoder.items(), key=lambda item: int(item[0])):
        tokens.append(_added_token(token))
    named: dict[str, str] = {}
    for key, default in kind.special_tokens.items():
        value = config.get(key, default)
        if value is None:
            continue
        lstrip = key == "mask_token" and kind.mask_lstrip and isinstance(value, str)
        tokens.append(_added_token(value, lstrip=True) if lstrip else _added_token(value))
        named[key] = _token_text(value)
    extra = config.get("additional_special_tokens", config.get("extra_special_tokens"))
    if extra is None:
        extra = list(kind.extra_special_tokens if extra_default is None else extra_default)
    tokens += [_added_token(t) for t in extra if isinstance(t, (str, dict))]
    first: dict[str, AddedToken] = {}  # a token listed twice is added as first listed
    for token in tokens:
        first.setdefault(token.content, token)
    backend.add_tokens(list(first.values()))
    return named


def rebuild(tokenizer_json: dict[str, Any], config: dict[str, Any], kind: Rebuilt) -> Backend:
    """The tokenizer a RoBERTa-family `tokenizer_class` makes of a tokenizer.json in transformers
    5.x: its vocabulary (and merges; and a SentencePiece `Precompiled` normalisation table),
    with the class's own pre-tokenizer, decoder, special tokens and template."""
    model = tokenizer_json.get("model") or {}
    if model.get("type") != kind.model:
        raise TokenizerError(
            f"tokenizer.json holds a {model.get('type')} model, but its tokenizer class expects "
            f"{kind.model}; the tokenizer files do not belong together"
        )
    if kind.model == "BPE":
        merges = [
            tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]
        ]
        return roberta_bpe(model["vocab"], merges, config)

    vocab = [(piece, float(score)) for piece, score in model["vocab"]]
    unk = _token_text(config.get("unk_token", kind.special_tokens["unk_token"]))
    unk_id = kind.fixed_unk_id
    if unk_id is None:
        unk_id = next((i for i, (piece, _) in enumerate(vocab) if piece == unk), 0)
    backend = Backend(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    charsmap = _precompiled_charsmap(tokenizer_json.get("normalizer"))
    if kind.deberta:
        return _deberta_unigram(backend, config, kind, charsmap)
    if charsmap is not None:
        backend.normalizer = normalizers.Precompiled(charsmap)
    add_prefix_space = bool(config.get("add_prefix_space", kind.add_prefix_space))
    scheme = "always" if add_prefix_space else "never"
    _metaspace(backend, scheme, [pre_tokenizers.WhitespaceSplit()])
    special = _add_special_tokens(backend, config, kind)
    bos, eos = special["bos_token"], special["eos_token"]
    _around(backend, bos, eos, pair=f"{bos} $A {eos} {eos} $B {eos}")
    return backend


def _metaspace(backend: Backend, scheme: str, before: list[Any]) -> None:
    """SentencePiece's "▁" before words (`scheme`: always, first, never), after `before`."""
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [*before, pre_tokenizers.Metaspace("▁", prepend_scheme=scheme)]
    )
    backend.decoder = decoders.Metaspace("▁", prepend_scheme=scheme)


def _around(backend: Backend, first: str, last: str, *, pair: str) -> None:
    """The template `first text last` (and `pair`, for two texts), ids from the vocabulary."""
    backend.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}",
        pair=pair,
        special_tokens=[(first, backend.token_to_id(first)), (last, backend.token_to_id(last))],
    )


def _deberta_unigram(
    backend: Backend,
    config: dict[str, Any],
    kind: Rebuilt,
    charsmap: bytes | None = None,
    extra_default: Sequence[str] | None = None,
) -> Backend:
    """What DebertaV2Tokenizer's constructor puts around the Unigram model: with a SentencePiece
    normalisation table (`charsmap`), the table, the right end stripped and runs of spaces -> one;
    without, whitespace runs, tabs and newlines -> one space, NFC, the right end stripped (the
    rest of tokenizer.json's own normaliser is dropped); an optional punctuation split and one
    Metaspace (offsets then include the space before a word); `[CLS] text [SEP]`."""
    rules = [normalizers.Lowercase()] if config.get("do_lower_case", False) else []
    if charsmap is not None:
        rules += [
            normalizers.Precompiled(charsmap),
            normalizers.Strip(left=False, right=True),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    else:
        rules += [
            normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "),
            normalizers.NFC(),
            normalizers.Strip(left=False, right=True),
        ]
    backend.normalizer = normalizers.Sequence(rules)
    split = [pre_tokenizers.Punctuation("isolated")] if config.get("split_by_punct") else []
    add_prefix_space = bool(config.get("add_prefix_space", kind.add_prefix_space))
    scheme = "always" if add_prefix_space else "first"
    _metaspace(backend, scheme, split)
    special = _add_special_tokens(backend, config, kind, extra_default)
    cls, sep = special["cls_token"], special["sep_token"]
    _around(backend, cls, sep, pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")
    return backend


def deberta_from_sentencepiece(
    model: SentencePieceModel, config: dict[str, Any], kind: Rebuilt = REBUILT["DebertaV2Tokenizer"]
) -> Backend:
    """DebertaV2Tokenizer as transformers 5.x builds it from `spm.model` alone: the pieces and
    their scores as a Unigram model (never byte fallback: DebertaV2Tokenizer turns it off, so a
    character outside the vocabulary is `[UNK]` even when the model has byte pieces), the unknown
    id of the `(unk_token, 0.0)` piece if there is one, else the model's; the model's
    normalisation table; the control pieces as extra special tokens unless tokenizer_config.json
    names its own. A BPE model is read the same way (transformers too takes its pieces and scores
    as a Unigram vocabulary)."""
    vocab = [(piece.text, piece.score) for piece in model.pieces]
    unk = (_token_text(config.get("unk_token", kind.special_tokens["unk_token"])), 0.0)
    unk_id = vocab.index(unk) if unk in vocab else model.unk_id
    if not 0 <= unk_id < len(vocab):
        raise TokenizerError(
            f"the SentencePiece model's unknown id {unk_id} is outside its {len(vocab)} pieces, "
            f"and it has no {unk[0]!r} piece; the file is damaged: download it again"
        )
    backend = Backend(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    control = [piece.text for piece in model.pieces if piece.type == CONTROL]
    charsmap = model.precompiled_charsmap or None
    return _deberta_unigram(backend, config, kind, charsmap, extra_default=control)


def _legacy_token_files(
    folder: Path, config: dict[str, Any], tokenizer_json: dict[str, Any] | None
) -> None:
    """What transformers reads besides tokenizer_config.json when it lists no
    `added_tokens_decoder` (older checkpoints): special_tokens_map.json's tokens over the config's,
    then as `added_tokens_decoder` added_tokens.json's tokens (special when they are a named or
    extra special token, else normalised) and tokenizer.json's added tokens (`tokenizer_json`),
    as they are. Changes `config` in place."""
    if "added_tokens_decoder" in config:
        return
    for key, value in _read_json(folder / "special_tokens_map.json").items():
        if tokenizer_json is None and key in ("additional_special_tokens", "extra_special_tokens"):
            continue  # reading spm.model, transformers puts the control pieces there instead
        config[key] = value | {"special": True} if isinstance(value, dict) else value
    decoder: dict[str, Any] = {}
    added = _read_json(folder / "added_tokens.json")
    if added:
        named = [config.get(key) for key in SPECIAL_TOKENS_ATTRIBUTES]
        extra = config.get("additional_special_tokens", config.get("extra_special_tokens")) or []
        special = {_token_text(t) for t in [*named, *extra] if isinstance(t, (str, dict))}
        for token, index in added.items():
            if not isinstance(index, int):
                raise TokenizerError(f"{folder / 'added_tokens.json'}: {token!r} has no integer id")
            is_special = token in special
            decoder[str(index)] = {"content": token, "lstrip": False, "rstrip": False,
                                   "normalized": not is_special, "special": is_special}  # fmt: skip
    for token in (tokenizer_json or {}).get("added_tokens") or []:
        if isinstance(token, dict) and isinstance(token.get("id"), int) and "content" in token:
            decoder[str(token["id"])] = {k: v for k, v in token.items() if k != "id"}
    if decoder:
        config["added_tokens_decoder"] = decoder


def _precompiled_charsmap(normalizer: dict[str, Any] | None) -> bytes | None:
    """The SentencePiece normalisation table of a tokenizer.json normaliser, if it has one."""
    if not normalizer:
        return None
    for part in normalizer.get("normalizers", [normalizer]):
        if part.get("type") == "Precompiled" and part.get("precompiled_charsmap"):
            return base64.b64decode(part["precompiled_charsmap"])
    return None


@dataclass(frozen=True)
class Template:
    """The special tokens the tokenizer puts around one text: for BERT, [CLS] text [SEP]."""

    prefix: int  # special tokens before the text
    suffix: int  # special tokens after it

    @classmethod
    def of(cls, post_processor: dict[str, Any] | None) -> Template:
        """Read from a `tokenizer.json` post-processor (its single-sequence template)."""
        if post_processor is None:
            return cls(0, 0)
        kind = post_processor.get("type")
        if kind == "TemplateProcessing":
            sizes = {k: len(v["ids"]) for k, v in post_processor["special_tokens"].items()}
            counts, seen_text = [0, 0], False
            for piece in post_processor["single"]:
                if "Sequence" in piece:
                    seen_text = True
                else:
                    counts[seen_text] += sizes[piece["SpecialToken"]["id"]]
            return cls(*counts)
        if kind in ("BertProcessing", "RobertaProcessing"):  # cls text sep
            return cls(1, 1)
        if kind == "ByteLevel":  # offsets only
            return cls(0, 0)
        if kind == "Sequence":
            parts = [cls.of(p) for p in post_processor["processors"]]
            return cls(sum(p.prefix for p in parts), sum(p.suffix for p in parts))
        raise TokenizerError(f"unknown tokenizer post-processor {kind!r}")


def tokenizer_class(config: dict[str, Any], model_config: dict[str, Any]) -> str | None:
    """The transformers tokenizer class: tokenizer_config.json's, else the model type's; a
    model type registered with the generic backend (ModernBERT) gets that, whatever
    tokenizer_config.json names, as in transformers 5."""
    registered = MODEL_TOKENIZERS.get(model_config.get("model_type"))
    if registered in AS_IS:
        return registered
    name = config.get("tokenizer_class")
    if isinstance(name, str):
        return name.removesuffix("Fast")
    return MODEL_TOKENIZERS.get(model_config.get("model_type"))


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TokenizerError(f"cannot read {path}: {e}") from e


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file; {} when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(_read_text(path))
    except ValueError as e:
        raise TokenizerError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise TokenizerError(f"{path} does not hold a JSON object")
    return data


def read_merges(path: Path) -> list[tuple[str, str]]:
    """merges.txt: one merge ("a b") a line, after an optional "#version" line."""
    merges = []
    for line in _read_text(path).splitlines():
        if line.startswith("#version") or not line.strip():
            continue
        pair = line.split(" ")
        if len(pair) != 2:
            raise TokenizerError(f"{path}: {line!r} is not a merge of two tokens")
        merges.append((pair[0], pair[1]))
    return merges


def read_vocab(path: Path) -> dict[str, int]:
    """vocab.txt: one token a line, the line number is its id."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise TokenizerError(f"cannot read vocabulary {path}: {e}") from e
    if lines and lines[-1] == "":
        lines.pop()
    return {token: i for i, token in enumerate(lines)}


class Tokenizer:
    """A `tokenizers.Tokenizer` plus what NER needs around it: max length, pad id, subword prefix."""

    def __init__(
        self,
        backend: Backend,
        *,
        model_max_length: int | None = None,
        config: dict[str, Any] | None = None,
        spaced_words: bool = False,
    ) -> None:
        backend.no_truncation()
        backend.no_padding()
        self.backend = backend
        self.model_max_length = model_max_length  # None: the model's position table decides
        self.config = dict(config or {})  # tokenizer_config.json, written back by save()
        pad = _token_text(self.config.get("pad_token", SPECIAL_TOKENS["pad_token"]))
        self.pad_token_id: int = backend.token_to_id(pad) or 0
        # The post-processor alone, as JSON (the whole tokenizer's would cost ~10 ms to build).
        processor = backend.post_processor
        self.template = Template.of(json.loads(processor.__getstate__()) if processor else None)
        self.unk_token_id: int | None = _unk_token_id(backend, self.config)
        # Pre-split words are tokenized as they stand in their text, each after the first with
        # the space before it (its offsets then start at that space). For tokenizer.json run
        # as it is (`AS_IS`: ModernBERT), whose byte-level or SentencePiece-style tokens carry
        # the space: without it, every word would be tokenized as if glued to the one before
        # (transformers does that: huggingface/transformers#37883).
        self.spaced_words = spaced_words
        # Added tokens that take the space before or after them (ModernBERT's and CamemBERT's
        # mask): an encoding's token string then holds that space, the vocabulary's does not.
        self.stripping_tokens = {
            i: t.content for i, t in backend.get_added_tokens_decoder().items()
            if t.lstrip or t.rstrip
        }  # fmt: skip

    @property
    def vocab_size(self) -> int:
        """Tokens the tokenizer knows, added tokens included (the model's table must be as big)."""
        return self.backend.get_vocab_size()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
    ) -> Tokenizer:
        """Load from a folder or hub id: `tokenizer.json` if present, else (DeBERTa-v2/v3)
        `spm.model`, else `vocab.txt`, else `vocab.json` + `merges.txt` (see the module
        docstring)."""
        folder = resolve_folder(name_or_path, revision=revision, token=token, files=TOKENIZER_FILES)
        config = _read_json(folder / "tokenizer_config.json")
        kind = tokenizer_class(config, _read_json(folder / "config.json"))
        if kind is None and (folder / "vocab.json").is_file():
            kind = "RobertaTokenizer"  # what transformers guesses for vocab.json + merges.txt
        spm_model = folder / "spm.model"
        from_spm = (
            kind in REBUILT
            and REBUILT[kind].deberta
            and spm_model.is_file()
            and not (folder / "tokenizer.json").is_file()
        )
        tokenizer_json: dict[str, Any] | None = None
        if kind in REBUILT and (folder / "tokenizer.json").is_file():
            tokenizer_json = _read_json(folder / "tokenizer.json")
        if from_spm or tokenizer_json is not None:
            # before the class's defaults: they do not make a token of added_tokens.json special
            _legacy_token_files(folder, config, tokenizer_json)
        if kind in REBUILT:
            for key, default in REBUILT[kind].special_tokens.items():
                config.setdefault(key, default)  # the class's defaults, stated
        if (folder / "tokenizer.json").is_file():
            path = folder / "tokenizer.json"
            if tokenizer_json is not None:  # a REBUILT class
                try:
                    backend = rebuild(tokenizer_json, config, REBUILT[kind])
                except TokenizerError:
                    raise
                except Exception as e:  # bad JSON, a missing field, a vocabulary Rust refuses
                    raise TokenizerError(f"cannot read {path}: {e!r}") from e
            else:
                try:
                    backend = Backend.from_file(str(path))
                except Exception as e:  # the Rust side raises a plain Exception
                    raise TokenizerError(f"cannot read {path}: {e}") from e
        elif from_spm:
            model = read_sentencepiece(spm_model)
            try:
                backend = deberta_from_sentencepiece(model, config, REBUILT[kind])
            except Exception as e:  # a damaged model that reads: an id out of range, ...
                raise TokenizerError(f"cannot build a tokenizer from {spm_model}: {e}") from e
        elif (folder / "vocab.txt").is_file():
            special = {k: _token_text(config.get(k, v)) for k, v in SPECIAL_TOKENS.items()}
            backend = bert_wordpiece(
                read_vocab(folder / "vocab.txt"),
                do_lower_case=config.get("do_lower_case", True),
                strip_accents=config.get("strip_accents"),
                tokenize_chinese_chars=config.get("tokenize_chinese_chars", True),
                special_tokens=special,
            )
        elif (
            kind == "RobertaTokenizer"
            and (folder / "vocab.json").is_file()
            and (folder / "merges.txt").is_file()
        ):
            vocab = _read_json(folder / "vocab.json")
            backend = roberta_bpe(vocab, read_merges(folder / "merges.txt"), config)
        else:
            spm = [name for name in SENTENCEPIECE_FILES if (folder / name).is_file()]
            has = f" (only the SentencePiece model {spm[0]})" if spm else ""
            raise TokenizerError(
                f"{folder} has neither tokenizer.json nor vocab.txt, nor vocab.json + merges.txt"
                f"{has}; add a tokenizer.json once with transformers: "
                "AutoTokenizer.from_pretrained(folder).save_pretrained(folder)"
            )
        if kind is not None:
            config.setdefault("tokenizer_class", kind)  # save() writes it, for transformers
        max_length = config.get("model_max_length", config.get("max_len"))
        if max_length is not None and int(max_length) >= _NO_LIMIT:
            max_length = None
        return cls(
            backend, model_max_length=max_length and int(max_length), config=config,
            spaced_words=kind in AS_IS,
        )  # fmt: skip

    @property
    def subword_prefix(self) -> str | None:
        """The continuing-subword marker ("##" for WordPiece), None if the model has none."""
        return getattr(self.backend.model, "continuing_subword_prefix", None)

    def encode(self, text: str | Sequence[str]) -> Encoding:
        """One text (or one pre-split list of words) -> ids, tokens, offsets, word ids.

        Special tokens ([CLS], [SEP]) are added; offsets index the text (for pre-split words,
        the word they fall in; with `spaced_words`, the word after its space).
        """
        return self.encode_batch([text])[0]

    def encode_batch(
        self, texts: Sequence[str | Sequence[str]], *, is_pretokenized: bool | None = None
    ) -> list[Encoding]:
        """Many texts at once (the Rust side runs them in parallel). All str, or all word lists.

        `is_pretokenized`: None (the default) works it out from the first input and checks that
        every input is of that kind; True/False says what they are (a caller that has checked
        them, such as the pipeline, is trusted).
        """
        if not texts:
            return []
        pretokenized = is_pretokenized
        if pretokenized is None:
            pretokenized = not isinstance(texts[0], str)
            for i, t in enumerate(texts):
                ok = (
                    all(isinstance(w, str) for w in t)
                    if pretokenized and isinstance(t, (list, tuple))
                    else isinstance(t, str) and not pretokenized
                )
                if not ok:
                    kind = "lists of words (str)" if pretokenized else "str"
                    raise InputError(
                        f"input {i} is a {type(t).__name__}; expected all inputs to be {kind}"
                    )
        if pretokenized and self.spaced_words:
            texts = [[w if j == 0 else f" {w}" for j, w in enumerate(words)] for words in texts]
        try:
            return self.backend.encode_batch(list(texts), is_pretokenized=pretokenized)
        except Exception as e:
            for i, t in enumerate(texts):
                try:
                    "".join(t).encode("utf-8")
                except UnicodeEncodeError as u:
                    raise TokenizerError(
                        f"input {i} has a character that is not valid Unicode text "
                        f"(a lone surrogate at position {u.start}); fix or remove it"
                    ) from e
            raise

    def to_tensors(
        self, encodings: Sequence[Encoding], device: str | torch.device | None = None
    ) -> dict[str, torch.Tensor]:
        """Pad a batch to its longest member: `input_ids` and `attention_mask`, (B, T) int64."""
        import torch  # here only: the ONNX engine tokenizes without torch

        T = max((len(e.ids) for e in encodings), default=0)
        ids = torch.full((len(encodings), T), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(encodings), T), dtype=torch.long)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n] = torch.tensor(e.ids, dtype=torch.long)
            mask[i, :n] = 1
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}

    def vocabulary_tokens(self, encoding: Encoding, start: int, end: int) -> list[str]:
        """The tokens start..end-1 of an encoding as the vocabulary writes them (transformers'
        convert_ids_to_tokens): an added token that took a space is written without it."""
        tokens = encoding.tokens[start:end]
        if not self.stripping_tokens:
            return tokens
        ids = encoding.ids[start:end]
        return [self.stripping_tokens.get(i, t) for i, t in zip(ids, tokens, strict=True)]

    def tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Join tokens into text as `transformers`' convert_tokens_to_string does (via the decoder)."""
        if self.backend.decoder is None:
            return " ".join(tokens)
        return self.backend.decoder.decode(list(tokens))

    def save(self, folder: str | Path) -> None:
        """Write `tokenizer.json` and `tokenizer_config.json` (loadable by `transformers`)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(out / "tokenizer.json"))
        config = dict(self.config)
        config.setdefault("tokenizer_class", "BertTokenizer")
        normalizer = json.loads(self.backend.to_str()).get("normalizer") or {}
        if normalizer.get("type") == "BertNormalizer":
            # transformers rebuilds a BERT normalizer from these keys, not from tokenizer.json.
            config["do_lower_case"] = normalizer["lowercase"]
            config["strip_accents"] = normalizer["strip_accents"]
            config["tokenize_chinese_chars"] = normalizer["handle_chinese_chars"]
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        config.pop("max_len", None)
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")


def _unk_token_id(backend: Backend, config: dict[str, Any]) -> int | None:
    """The unknown token's id, as transformers finds it: tokenizer_config.json's `unk_token`,
    else the model's (a Unigram model states only its id)."""
    unk = config.get("unk_token") or getattr(backend.model, "unk_token", None)
    if unk:
        return backend.token_to_id(_token_text(unk))
    if isinstance(backend.model, Unigram):
        return json.loads(backend.model.__getstate__()).get("unk_id")
    return None


def _token_text(token: str | dict[str, Any]) -> str:
    """tokenizer_config.json stores special tokens as strings or as AddedToken dicts."""
    return token["content"] if isinstance(token, dict) else token
