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

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ..errors import InputError
from ..hub import resolve_folder
from ..inference.options import PipelineOptions
from ..inference.precision import MODES, Choice, Mode
from .api import GLiNER

__all__ = ["GLiNEROptions", "GLiNERPipeline", "is_gliner_model", "parse_label_map", "parse_labels"]


def is_gliner_model(
    name_or_path: str | Path, *, revision: str | None = None, token: str | bool | None = None
) -> bool:
    """Whether a folder (or hub id) holds a GLiNER model (gliner_config.json)."""
    files = ["gliner_config.json", "config.json"]
    folder = resolve_folder(name_or_path, revision=revision, token=token, files=files)
    return (folder / "gliner_config.json").is_file()


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


@dataclass(frozen=True)
class GLiNEROptions:
    """What one GLiNER call asks (`GLiNER.inference`'s arguments): the server's defaults, and a
    request's with its parameters applied. Checked when made: one-line InputErrors."""

    labels: tuple[str, ...] | None = None  # the entity types; None: none named yet
    threshold: float = 0.5  # an entity's score must be above it, in [0, 1]
    flat_ner: bool = True  # False: entities may nest
    multi_label: bool = False  # True: one span may carry several labels

    def __post_init__(self) -> None:
        labels = self.labels
        if labels is not None:
            if (
                isinstance(labels, str)
                or not isinstance(labels, Sequence)
                or not labels
                or not all(isinstance(x, str) and x.strip() for x in labels)
            ):
                raise InputError(
                    f'labels must be a non-empty list of non-empty str, e.g. ["person", '
                    f'"company"]; got {labels!r}'
                )
            object.__setattr__(self, "labels", tuple(labels))
        threshold = self.threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not 0.0 <= threshold <= 1.0
        ):
            raise InputError(f"threshold must be a number in [0, 1], got {threshold!r}")
        for name in ("flat_ner", "multi_label"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def replace(self, **changes: Any) -> GLiNEROptions:
        """A copy with some fields changed (checked again); an unknown name is an InputError."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise InputError(
                f"unknown GLiNER option(s) {', '.join(unknown)}; use {', '.join(names)}"
            )
        return dataclasses.replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "labels": list(self.labels) if self.labels else None}


@dataclass
class GLiNERPipeline:
    """GLiNER's `inference` with fixed labels and options; entities in the pipeline's shape."""

    gliner: GLiNER
    labels: list[str] | None  # None: each call names them (a server whose requests do)
    threshold: float = 0.5
    flat_ner: bool = True
    multi_label: bool = False
    label_map: Mapping[str, str] = field(default_factory=dict)  # GLiNER label -> written label
    batch_size: int = 8
    # the dtype it runs in, and why (--verbose, /info); dtype="auto": float32
    precision: Choice = field(default_factory=lambda: Choice(MODES["float32"], "as asked"))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.label_map) - set(self.labels or ()))
        if unknown:
            raise InputError(
                f"--label-map names {', '.join(unknown)}, which --labels does not list"
            )
        self.options  # noqa: B018  (checks the labels and options)
        if self.labels is not None:
            self.gliner.inference(["x"], self.labels, self.flat_ner, self.threshold)  # checks all

    @classmethod
    def from_options(
        cls, name_or_path: str | Path, options: PipelineOptions, **settings: Any
    ) -> GLiNERPipeline:
        """Load with what of a token classifier's options applies to a GLiNER model (device,
        revision, token, dtype, quantize (refused), batch_size) and `settings` (labels,
        threshold, ...: the fields)."""
        from ..devices import resolve_device

        return cls.load(
            name_or_path, device=resolve_device(options.device), revision=options.revision,
            token=options.token, dtype=options.dtype, quantize=options.quantize,
            batch_size=options.batch_size, **settings,
        )  # fmt: skip

    @property
    def options(self) -> GLiNEROptions:
        """The labels and decoding options as one value (a server's defaults)."""
        labels = None if self.labels is None else tuple(self.labels)
        return GLiNEROptions(labels, self.threshold, self.flat_ner, self.multi_label)

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
        precision = Choice(MODES.get(dtype or "float32", Mode(str(dtype), str(dtype))), "as asked")
        if dtype == "auto":
            reason = "auto: reduced precision is not measured for GLiNER"
            dtype, precision = None, Choice(MODES["float32"], reason)
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
        names = dict.fromkeys(self.label_map.get(label, label) for label in self.labels or ())
        tags = ["O"] + [f"{p}-{name}" for name in names for p in ("B", "I")]
        return dict(enumerate(tags))

    def predict(self, texts: Sequence[str], options: Sequence[GLiNEROptions]) -> Any:
        """GLiNER's entities (start, end, text, label, score) of each text under its own
        options, as `GLiNER.inference(texts[i], options[i]...)` gives them; texts whose options
        decode alike (threshold, flat_ner, multi_label) run together whatever their labels.
        Returns `Labelled(entities, tokens)`, the tokens that went through the model."""
        from ..inference.pipeline import Labelled

        if len(options) != len(texts):
            raise InputError(f"{len(options)} options for {len(texts)} texts: give one per text")
        groups: dict[tuple[float, bool, bool], list[int]] = {}
        for i, o in enumerate(options):
            if o.labels is None:
                raise InputError('no labels: name the entity types, e.g. ["person", "company"]')
            groups.setdefault((o.threshold, o.flat_ner, o.multi_label), []).append(i)
        entities: list[Any] = [None] * len(texts)
        before = self.gliner.tokens_run
        for (threshold, flat_ner, multi_label), members in groups.items():
            found = self.gliner.inference(
                [texts[i] for i in members], [list(options[i].labels or ()) for i in members],
                flat_ner, threshold, multi_label, self.batch_size,
            )  # fmt: skip
            for i, answer in zip(members, found, strict=True):
                entities[i] = answer
        return Labelled(entities, self.gliner.tokens_run - before)

    def __call__(self, texts: str | Sequence[str]) -> Any:
        """Entities of each text: entity_group, score, word (the text), start, end."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        found = self.predict(batch, [self.options] * len(batch)).entities
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
