"""Text -> token ids, with character offsets and word ids, on the `tokenizers` library.

A checkpoint's `tokenizer.json` is used as it is. Checkpoints that ship only `vocab.txt` (the dslim
BERT models) get the BERT WordPiece tokenizer `transformers` builds for them, configured by
`tokenizer_config.json` (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars`).
Truncation is always off: long text is the pipeline's business, never silently cut here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Encoding, decoders, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend
from tokenizers.models import WordPiece

from .errors import InputError, TokenizerError
from .hub import TOKENIZER_FILES, resolve_folder

__all__ = ["SPECIAL_TOKENS", "Template", "Tokenizer", "bert_wordpiece", "read_vocab"]

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
        unk = getattr(backend.model, "unk_token", None)
        self.unk_token_id: int | None = backend.token_to_id(unk) if unk else None

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
        """Load from a folder or hub id: `tokenizer.json` if present, else `vocab.txt`."""
        folder = resolve_folder(name_or_path, revision=revision, token=token, files=TOKENIZER_FILES)
        config: dict[str, Any] = {}
        config_path = folder / "tokenizer_config.json"
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text("utf-8"))
            except (OSError, ValueError) as e:
                raise TokenizerError(f"cannot read {config_path}: {e}") from e
        if (folder / "tokenizer.json").is_file():
            try:
                backend = Backend.from_file(str(folder / "tokenizer.json"))
            except Exception as e:  # the Rust side raises a plain Exception
                raise TokenizerError(f"cannot read {folder / 'tokenizer.json'}: {e}") from e
        elif (folder / "vocab.txt").is_file():
            special = {k: _token_text(config.get(k, v)) for k, v in SPECIAL_TOKENS.items()}
            backend = bert_wordpiece(
                read_vocab(folder / "vocab.txt"),
                do_lower_case=config.get("do_lower_case", True),
                strip_accents=config.get("strip_accents"),
                tokenize_chinese_chars=config.get("tokenize_chinese_chars", True),
                special_tokens=special,
            )
        else:
            raise TokenizerError(f"{folder} has neither tokenizer.json nor vocab.txt")
        max_length = config.get("model_max_length", config.get("max_len"))
        if max_length is not None and int(max_length) >= _NO_LIMIT:
            max_length = None
        return cls(backend, model_max_length=max_length and int(max_length), config=config)

    @property
    def subword_prefix(self) -> str | None:
        """The continuing-subword marker ("##" for WordPiece), None if the model has none."""
        return getattr(self.backend.model, "continuing_subword_prefix", None)

    def encode(self, text: str | Sequence[str]) -> Encoding:
        """One text (or one pre-split list of words) -> ids, tokens, offsets, word ids.

        Special tokens ([CLS], [SEP]) are added; offsets index the text (for pre-split words,
        the word they fall in).
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
        T = max((len(e.ids) for e in encodings), default=0)
        ids = torch.full((len(encodings), T), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(encodings), T), dtype=torch.long)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n] = torch.tensor(e.ids, dtype=torch.long)
            mask[i, :n] = 1
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}

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


def _token_text(token: str | dict[str, Any]) -> str:
    """tokenizer_config.json stores special tokens as strings or as AddedToken dicts."""
    return token["content"] if isinstance(token, dict) else token
