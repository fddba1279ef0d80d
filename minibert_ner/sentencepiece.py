"""A SentencePiece model file (`spm.model`, `sentencepiece.bpe.model`) read without the
`sentencepiece` or `protobuf` packages.

The file is one protobuf message, `ModelProto`, defined in SentencePiece's
`src/sentencepiece_model.proto` (https://github.com/google/sentencepiece). Protobuf's wire format
is a run of (key, value) records: the key is a varint `field_number << 3 | wire_type`, the value a
varint (wire type 0), 8 bytes (1), a length-prefixed string of bytes (2: strings, bytes and nested
messages) or 4 bytes (5: floats). The tables below name the fields tokenization needs, with their
numbers and defaults from that .proto; every other field is skipped. As protobuf does, a scalar
given twice keeps its last value and a nested message given twice is merged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .errors import TokenizerError

__all__ = ["Piece", "SentencePieceModel", "read_sentencepiece"]

# SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# TrainerSpec.ModelType
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}

# field number -> (name, kind, default); a kind is a scalar type or a nested message's table
PIECE_FIELDS = {  # ModelProto.SentencePiece
    1: ("piece", "string", ""),
    2: ("score", "float", 0.0),
    3: ("type", "enum", NORMAL),
}
TRAINER_FIELDS = {  # TrainerSpec
    3: ("model_type", "enum", 1),  # UNIGRAM
    35: ("byte_fallback", "bool", False),
    40: ("unk_id", "int32", 0),
    41: ("bos_id", "int32", 1),
    42: ("eos_id", "int32", 2),
    43: ("pad_id", "int32", -1),
    45: ("unk_piece", "string", "<unk>"),
    46: ("bos_piece", "string", "<s>"),
    47: ("eos_piece", "string", "</s>"),
    48: ("pad_piece", "string", "<pad>"),
}
NORMALIZER_FIELDS = {  # NormalizerSpec
    1: ("name", "string", ""),
    2: ("precompiled_charsmap", "bytes", b""),
    3: ("add_dummy_prefix", "bool", True),
    4: ("remove_extra_whitespaces", "bool", True),
    5: ("escape_whitespaces", "bool", True),
}
MODEL_FIELDS = {  # ModelProto; pieces repeat, the specs are single messages
    1: ("pieces", PIECE_FIELDS, None),
    2: ("trainer_spec", TRAINER_FIELDS, None),
    3: ("normalizer_spec", NORMALIZER_FIELDS, None),
}
REPEATED = {"pieces"}

# the wire type each kind is written with
WIRE_TYPES = {"string": 2, "bytes": 2, "float": 5, "enum": 0, "int32": 0, "bool": 0}
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class Piece(NamedTuple):
    """One vocabulary entry; its id is its position in the model's pieces."""

    text: str
    score: float  # a log probability (Unigram) or minus the merge rank (BPE)
    type: int  # NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED or BYTE


@dataclass(frozen=True)
class SentencePieceModel:
    """What a SentencePiece model file says about tokenization."""

    pieces: list[Piece]
    model_type: str  # "unigram", "bpe", "word" or "char"
    byte_fallback: bool  # unknown characters as <0xNN> byte pieces instead of the unknown piece
    unk_id: int
    bos_id: int  # -1: none
    eos_id: int
    pad_id: int
    unk_piece: str
    bos_piece: str
    eos_piece: str
    pad_piece: str
    normalizer_name: str  # "nmt_nfkc", "identity", ... (the table, not the name, is what runs)
    precompiled_charsmap: bytes  # the normalisation table (b"": none)
    add_dummy_prefix: bool  # a space before the text
    remove_extra_whitespaces: bool  # strip, and runs of spaces -> one
    escape_whitespaces: bool  # spaces -> "▁"


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at `at`: 7 bits a byte, least significant first; (value, next position)."""
    if at < len(data) and data[at] < 0x80:  # one byte: most keys and lengths
        return data[at], at + 1
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("the file ends inside a number")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift >= 70:
            raise ValueError("a number longer than 10 bytes")


def _records(data: bytes):
    """Each (field number, wire type, raw value) of one message, in order."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == VARINT:
            value, at = _varint(data, at)
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            value, at = data[at : at + size], at + size
        elif wire == LENGTH:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        else:  # 3, 4: groups (not in this .proto); 6, 7: not defined
            raise ValueError(f"wire type {wire} in field {number}")
        if at > len(data):
            raise ValueError(f"the file ends inside field {number}")
        yield number, wire, value


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        return value.decode("utf-8")
    if kind == "bytes":
        return bytes(value)
    if kind == "float":
        return struct.unpack("<f", value)[0]
    if kind == "bool":
        return value != 0
    # int32 and enum: a negative value is written as its 64-bit two's complement
    return value - (1 << 64) if value >= 1 << 63 else value


def _message(
    data: bytes, fields: dict[int, tuple[str, Any, Any]], into: dict | None = None
) -> dict:
    """Decode one message into {name: value} (defaults for absent fields), merging into `into`."""
    out = into if into is not None else {
        name: ([] if name in REPEATED else {} if isinstance(kind, dict) else default)
        for name, kind, default in fields.values()
    }  # fmt: skip
    for number, wire, value in _records(data):
        if number not in fields:
            continue
        name, kind, _ = fields[number]
        expected = LENGTH if isinstance(kind, dict) else WIRE_TYPES[kind]
        if wire != expected:
            raise ValueError(f"field {name} has wire type {wire}, not {expected}")
        if name in REPEATED:  # only the pieces, each read by _piece
            out[name].append(_piece(value))
        elif isinstance(kind, dict):
            out[name] = _message(value, kind, out[name] or None)
        else:
            out[name] = _scalar(kind, value)
    return out


def _piece(data: bytes) -> Piece:
    """One SentencePiece message. The fast path reads the layout SentencePiece writes (the piece,
    under 128 bytes; its score; its type unless NORMAL) in a few comparisons: mDeBERTa has
    250,000 pieces, and the general decoder takes several times as long; anything else takes
    the general decoder."""
    n = len(data)
    end = 2 + data[1] if n >= 2 and data[0] == 0x0A and data[1] < 0x80 else n  # 0x0A: field 1
    if end + 5 <= n and data[end] == 0x15:  # 0x15: field 2, four bytes
        at, kind = end + 5, NORMAL
        if at + 2 == n and data[at] == 0x18 and data[at + 1] < 0x80:  # 0x18: field 3, varint
            at, kind = n, data[at + 1]
        if at == n:
            score = struct.unpack_from("<f", data, end + 1)[0]
            return Piece(data[2:end].decode("utf-8"), score, kind)
    return Piece(*_message(data, PIECE_FIELDS).values())


def read_sentencepiece(path: str | Path) -> SentencePieceModel:
    """Read a SentencePiece model file; a file that is not one is a TokenizerError naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TokenizerError(f"cannot read {path}: {e}") from e
    try:
        proto = _message(data, MODEL_FIELDS)
    except (ValueError, struct.error) as e:  # UnicodeDecodeError is a ValueError
        raise TokenizerError(
            f"{path} is not a readable SentencePiece model ({e}); it is truncated or corrupt: "
            "download it again"
        ) from e
    trainer, normalizer = proto["trainer_spec"], proto["normalizer_spec"]
    # SentencePiece writes the pieces, then both specs: a file cut short lacks them.
    missing = [name for name in ("trainer_spec", "normalizer_spec") if not proto[name]]
    if not proto["pieces"] or not all(piece.text for piece in proto["pieces"]) or missing:
        what = f"no {' and no '.join(missing)}" if missing else "an empty vocabulary or piece"
        raise TokenizerError(
            f"{path} is not a complete SentencePiece model ({what}); it is truncated or "
            "corrupt: download it again"
        )
    return SentencePieceModel(
        pieces=proto["pieces"],
        model_type=MODEL_TYPES.get(trainer["model_type"], str(trainer["model_type"])),
        byte_fallback=trainer["byte_fallback"],
        unk_id=trainer["unk_id"],
        bos_id=trainer["bos_id"],
        eos_id=trainer["eos_id"],
        pad_id=trainer["pad_id"],
        unk_piece=trainer["unk_piece"],
        bos_piece=trainer["bos_piece"],
        eos_piece=trainer["eos_piece"],
        pad_piece=trainer["pad_piece"],
        normalizer_name=normalizer["name"],
        precompiled_charsmap=normalizer["precompiled_charsmap"],
        add_dummy_prefix=normalizer["add_dummy_prefix"],
        remove_extra_whitespaces=normalizer["remove_extra_whitespaces"],
        escape_whitespaces=normalizer["escape_whitespaces"],
    )
