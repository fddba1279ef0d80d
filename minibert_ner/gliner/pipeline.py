"""A GLiNER model with its labels fixed, called as the NER pipeline is: what the command line
(`--labels`), batch jobs, the server and CoNLL evaluation run.

    ner = GLiNERPipeline.load("urchade/gliner_small-v2.1", labels=["person", "organization"])
    ner(["Ada Lovelace met Babbage."])    # entities as the pipeline gives them
    [[{'entity_group': 'person', 'score': 0.97, 'word': 'Ada Lovelace', 'start': 0, 'end': 12}]]
    ner.label_words([["Ada", "Lovelace", "met", "Babbage", "."]])   # IOB2 per word

`label_map` renames labels in the output (person=PER), so that a GLiNER model is scored on
CoNLL-2003 against PER, ORG, LOC like any tagger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ..errors import InputError
from .api import GLiNER

__all__ = ["GLiNERPipeline", "parse_label_map", "parse_labels"]


def parse_labels(text: str) -> list[str]:
    """'person,company' -> ['person', 'company'] (spaces around each trimmed)."""
    labels = [label.strip() for label in text.split(",")]
    if not any(labels) or not all(labels):
        raise InputError(
            f"--labels {text!r}: give entity types separated by commas, e.g. person,company"
        )
    return labels


def parse_label_map(text: str) -> dict[str, str]:
    """'person=PER,organization=ORG' -> {'person': 'PER', 'organization': 'ORG'}."""
    out = {}
    for pair in text.split(","):
        label, sep, tag = (part.strip() for part in pair.partition("="))
        if not sep or not label or not tag:
            raise InputError(
                f"--label-map {text!r}: give LABEL=TAG pairs, e.g. person=PER,city=LOC"
            )
        out[label] = tag
    return out


@dataclass
class GLiNERPipeline:
    """GLiNER's `inference` with fixed labels and options; entities in the pipeline's shape."""

    gliner: GLiNER
    labels: list[str]
    threshold: float = 0.5
    flat_ner: bool = True
    multi_label: bool = False
    label_map: Mapping[str, str] = field(default_factory=dict)  # GLiNER label -> written label
    batch_size: int = 8
    precision: str = "float32 (as asked)"  # the dtype it runs in, and why (--verbose, /info)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.label_map) - set(self.labels))
        if unknown:
            raise InputError(
                f"--label-map names {', '.join(unknown)}, which --labels does not list"
            )
        self.gliner.inference(["x"], self.labels, self.flat_ner, self.threshold)  # checks all

    @classmethod
    def load(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        dtype: str | None = None,
        quantize: str | None = None,
        **options: Any,
    ) -> GLiNERPipeline:
        """`dtype`: float32 (None), bfloat16 or float16, as the pipeline's option takes them;
        "auto" runs float32 (reduced precision is measured for token classifiers only,
        inference/precision.py); the mixed mode and `quantize` are token classifiers' only."""
        if quantize is not None or dtype in ("bfloat16-mixed", "bf16-mixed"):
            what = f"quantize={quantize}" if quantize is not None else f"dtype={dtype}"
            raise InputError(
                f"{what} is for token classifiers; a GLiNER model runs in float32, bfloat16 or "
                "float16 (--dtype)"
            )
        precision = f"{dtype or 'float32'} (as asked)"
        if dtype == "auto":
            dtype, precision = None, "float32 (auto: reduced precision is not measured for GLiNER)"
        model = GLiNER.from_pretrained(
            name_or_path, revision=revision, token=token, device=device, dtype=dtype
        )
        return cls(model, **options, precision=precision)

    @property
    def model(self) -> GLiNERPipeline:
        """What evaluation reads of a pipeline's model: `id2label`."""
        return self

    @property
    def id2label(self) -> dict[int, str]:
        """The IOB2 tags `label_words` writes."""
        names = dict.fromkeys(self.label_map.get(label, label) for label in self.labels)
        tags = ["O"] + [f"{p}-{name}" for name in names for p in ("B", "I")]
        return dict(enumerate(tags))

    def __call__(self, texts: str | Sequence[str]) -> Any:
        """Entities of each text: entity_group, score, word (the text), start, end."""
        single = isinstance(texts, str)
        found = self.gliner.inference(
            [texts] if single else list(texts), self.labels, self.flat_ner, self.threshold,
            self.multi_label, self.batch_size,
        )  # fmt: skip
        out = [
            [{"entity_group": self.label_map.get(e["label"], e["label"]), "score": e["score"],
              "word": e["text"], "start": e["start"], "end": e["end"]} for e in entities]
            for entities in found
        ]  # fmt: skip
        return out[0] if single else out

    def label(self, texts: Sequence[str]) -> Any:
        """`NERPipeline.label`'s shape, for batch jobs: an object whose `entities` are each
        text's."""
        return SimpleNamespace(entities=self(list(texts)))

    def label_words(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """IOB2 tags for pre-split words (CoNLL): the words joined by spaces are labelled, and a
        word takes the tag of the first entity (by start) that overlaps it."""
        texts, spans = [], []
        for words in sentences:
            offsets, position = [], 0
            for word in words:
                offsets.append((position, position + len(word)))
                position += len(word) + 1
            texts.append(" ".join(words))
            spans.append(offsets)
        out = []
        for offsets, entities in zip(spans, self(texts), strict=True):
            tags = ["O"] * len(offsets)
            for e in entities:
                covered = [i for i, (a, b) in enumerate(offsets) if a < e["end"] and e["start"] < b]
                if covered and all(tags[i] == "O" for i in covered):
                    for i in covered:
                        tags[i] = ("B-" if i == covered[0] else "I-") + e["entity_group"]
            out.append(tags)
        return out
