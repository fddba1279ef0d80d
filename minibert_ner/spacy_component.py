"""minibert-ner as a spaCy pipeline component: `nlp.add_pipe("minibert_ner", config={...})`.

    >>> import spacy
    >>> nlp = spacy.blank("en")
    >>> nlp.add_pipe("minibert_ner", config={"model": "dslim/distilbert-NER"})
    >>> [(e.text, e.label_, e._.score) for e in nlp("My name is Wolfgang and I live in Berlin").ents]
    [('Wolfgang', 'PER', 0.99...), ('Berlin', 'LOC', 0.99...)]

The factory is found through the `spacy_factories` entry point (pyproject.toml): `add_pipe`
needs no `import minibert_ner` first. spaCy imports this module whenever it makes a pipeline
(`spacy.blank` and `spacy.load` read every entry-point factory), so importing it loads no model
code and registers nothing but the factory; the extensions are registered by the factory, and
the model loads on first use, in `initialize()`, or from disk.

The config: `model` (a hub id or a folder), every `PipelineOptions` field but the secret ones
(`CONFIG_OPTIONS`; `token` would be written into config.cfg: use HF_TOKEN instead), and the
component's own: `spans_key`, `alignment_mode`, and `labels` / `threshold` for GLiNER models.
spaCy validates the values against the types declared here and in `PipelineOptions`;
`PipelineOptions` checks them as everywhere else.

A GLiNER model (a folder or hub id with gliner_config.json) runs with the config's `labels`
(required) and `threshold` (default 0.5): its entities are `GLiNER.inference(texts, labels,
threshold=threshold)`'s (flat: no overlaps), as spans. Of the pipeline options it takes `device`,
`batch_size` and `revision`; the token classifier's others, set, are refused, as are `labels`
and `threshold` with a token classifier.

Entities become spans through `doc.char_span(start, end, label, alignment_mode)`: `doc.ents`
(replaced; no overlaps), or the span group `doc.spans[spans_key]` when `spans_key` is set.
Each span's score is `span._.score`. An entity that cannot become a span (its characters do
not fall on spaCy's token boundaries in "strict" mode, hold no whole token in "contract" mode,
hold only whitespace, or, for `doc.ents`, overlap the span before it once aligned) is never
dropped unseen: it is in `doc._.minibert_unaligned` (the entity's dict with a "reason"),
counted in the component's `unaligned`, and a `MiniBertWarning` says so.

`nlp.pipe(texts, batch_size=n)` hands each batch of n docs to `NERPipeline.label` at once (the
pipeline's packed batches under its token budget; long docs run as windows). `nlp.to_disk`
writes the model's files (weights, config.json, tokenizer) into the component's folder, under
`model/`; `spacy.load` reads them from there and fetches nothing. A GLiNER model's copy is
self-contained: gliner_config.json, weights, tokenizer, and what it reads of its backbone
(`copy_gliner`).
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from spacy.language import Language
from spacy.scorer import Scorer, get_ner_prf
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from spacy.util import minibatch

from .errors import InputError, MiniBertWarning, ModelNotFoundError
from .hub import TOKENIZER_FILES, WEIGHT_FILES, resolve_folder
from .inference.options import DEFAULT_MODEL, SECRET, PipelineOptions

if typing.TYPE_CHECKING:
    from .gliner.pipeline import GLiNERPipeline
    from .inference.pipeline import Entities, NERPipeline

__all__ = [
    "ALIGNMENT_MODES",
    "CONFIG_OPTIONS",
    "MODEL_FOLDER",
    "NAME",
    "AlignmentMode",
    "MiniBertNER",
    "make_component",
]

NAME = "minibert_ner"  # the factory's name (and the entry point's)
AlignmentMode = Literal["strict", "contract", "expand"]  # doc.char_span's modes
ALIGNMENT_MODES: tuple[AlignmentMode, ...] = typing.get_args(AlignmentMode)
# The pipeline options a config sets: all but the secret ones (nlp.to_disk writes config.cfg).
CONFIG_OPTIONS = tuple(
    f.name for f in dataclasses.fields(PipelineOptions) if SECRET not in f.metadata["names"]
)
MODEL_FOLDER = "model"  # the model's files, inside the component's folder
SCORE = "score"  # Span._.score
UNALIGNED = "minibert_unaligned"  # Doc._.minibert_unaligned
GLINER_CONFIG = "gliner_config.json"  # what a GLiNER model folder holds instead of a classifier
GLINER_OPTIONS = (
    "device",
    "batch_size",
    "revision",
    "dtype",
)  # the pipeline options GLiNER models take


def register_extensions() -> None:
    """`Span._.score` and `Doc._.minibert_unaligned`, unless there already. Another library's
    `Span._.score` is shared when it is a plain attribute (gliner-spacy's is); one computed by
    a getter cannot hold our scores: refused."""
    if Span.has_extension(SCORE):
        _default, method, getter, _setter = Span.get_extension(SCORE)
        if method is not None or getter is not None:
            raise InputError(
                "Span._.score is already registered by another library as a method or getter; "
                "minibert_ner stores its scores there: remove that extension first"
            )
    else:
        Span.set_extension(SCORE, default=None)
    if not Doc.has_extension(UNALIGNED):
        Doc.set_extension(UNALIGNED, default=None)


class MiniBertNER:
    """The spaCy component: a minibert-ner model's entities as spans. Made by the factory
    (`nlp.add_pipe("minibert_ner", config=...)`), not directly."""

    def __init__(
        self,
        name: str,
        model: str,
        options: PipelineOptions,
        *,
        spans_key: str | None = None,
        alignment_mode: AlignmentMode = "strict",
        labels: list[str] | None = None,
        threshold: float | None = None,
    ) -> None:
        self.name = name
        self.model = model  # as the config names it; from_disk loads the saved copy instead
        self.options = options
        self.spans_key = spans_key
        self.alignment_mode = alignment_mode
        # A GLiNER model's entity types and threshold (None: 0.5). Not `labels`: spaCy reads a
        # component's `labels` as the labels it was trained on.
        self.gliner_labels = labels
        self.gliner_threshold = threshold
        self.unaligned = 0  # entities that could not become spans, since the component was made
        self._pipeline: NERPipeline | GLiNERPipeline | None = None
        self._folder: Path | None = None  # where the loaded model's files are (for to_disk)
        self._warned = False

    def __repr__(self) -> str:
        where = f"spans[{self.spans_key!r}]" if self.spans_key is not None else "ents"
        return f"MiniBertNER({self.model!r}, into {where}, alignment_mode={self.alignment_mode!r})"

    @property
    def pipeline(self) -> NERPipeline | GLiNERPipeline:
        """The minibert-ner pipeline, loaded from `model` on first use."""
        if self._pipeline is None:
            self._load(self.model)
        assert self._pipeline is not None
        return self._pipeline

    def _load(self, model: str | Path, *, saved: bool = False) -> None:
        from .inference.pipeline import pipeline

        options = self.options
        folder = resolve_folder(
            model,
            revision=None if saved else options.revision,
            files=WEIGHT_FILES + TOKENIZER_FILES,
        )
        if (folder / GLINER_CONFIG).is_file():
            from .gliner.checkpoint import GLINER_FILES  # .bin too: some models have only that

            revision = None if saved else options.revision
            folder = resolve_folder(model, revision=revision, files=GLINER_FILES)
            self._pipeline = self._gliner(model, folder)
        elif self.gliner_labels is not None or self.gliner_threshold is not None:
            raise InputError(
                f"labels and threshold are for GLiNER models (gliner_config.json); {model} is a "
                "token classifier, whose labels are its own (config.json): leave them unset"
            )
        else:
            # A folder is one version: the revision picked it already.
            self._pipeline = pipeline(folder, options=options.replace(revision=None))
        self._folder = folder

    def _gliner(self, model: str | Path, folder: Path) -> GLiNERPipeline:
        """The GLiNER model in `folder`, with the config's labels and threshold."""
        from .gliner.pipeline import GLiNERPipeline

        if self.gliner_labels is None:
            raise InputError(
                f"{model} is a GLiNER model: name the entity types in the config, e.g. "
                'config={"model": ..., "labels": ["person", "company"]}'
            )
        defaults = PipelineOptions()
        others = [
            name
            for name in CONFIG_OPTIONS
            if name not in GLINER_OPTIONS and getattr(self.options, name) != getattr(defaults, name)
        ]
        if others:
            raise InputError(
                f"{', '.join(others)}: options of token classifiers; {model} is a GLiNER model, "
                f"which takes labels, threshold, {', '.join(GLINER_OPTIONS)}: leave them unset"
            )
        return GLiNERPipeline.from_options(
            folder, self.options.replace(revision=None),  # the folder is the revision's
            labels=list(self.gliner_labels),
            threshold=0.5 if self.gliner_threshold is None else self.gliner_threshold,
        )  # fmt: skip

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]] | None = None,
        *,
        nlp: Language | None = None,
    ) -> None:
        """Load the model now (spaCy calls this from `nlp.initialize()`), rather than at the
        first doc: a model that cannot be loaded is reported here."""
        self.pipeline  # noqa: B018

    def __call__(self, doc: Doc) -> Doc:
        """Set one doc's entities."""
        self._annotate([doc])
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Set the entities of `stream`'s docs, `batch_size` docs per `NERPipeline.label` call
        (which packs them into forward passes of at most the options' batch_size rows and
        max_batch_tokens tokens)."""
        for docs in minibatch(stream, size=batch_size):
            self._annotate(docs)
            yield from docs

    def _annotate(self, docs: Sequence[Doc]) -> None:
        labelled = self.pipeline.label([doc.text for doc in docs])
        dropped = sum(
            self.set_annotations(doc, entities)
            for doc, entities in zip(docs, labelled.entities, strict=True)
        )
        if dropped and not self._warned:
            self._warned = True
            hint = "; alignment_mode='expand' keeps those off spaCy's token boundaries"
            hint = "" if self.alignment_mode == "expand" else hint
            warnings.warn(
                MiniBertWarning(
                    f"{self.name}: {dropped} entities in a batch of {len(docs)} docs could not "
                    f"become spans (alignment_mode={self.alignment_mode!r}); each is in "
                    f"doc._.{UNALIGNED} with its reason, and the component's `unaligned` counts "
                    f"them (warned once per component){hint}"
                ),
                stacklevel=3,
            )

    def set_annotations(self, doc: Doc, entities: Entities) -> int:
        """Put `entities` (one doc's, from the pipeline) on `doc`; returns how many could not
        become spans (they are in doc._.minibert_unaligned)."""
        kept: list[tuple[Span, float]] = []
        unaligned: list[dict[str, Any]] = []
        for entity in entities:
            label = entity["entity_group"] if "entity_group" in entity else entity["entity"]
            span = doc.char_span(
                entity["start"], entity["end"], label=label, alignment_mode=self.alignment_mode
            )
            if span is None:
                reason = f"not on spaCy's token boundaries (alignment_mode={self.alignment_mode!r})"
            elif not len(span):  # "expand" on characters between tokens (whitespace)
                reason = "covers no token of spaCy's"
            elif self.spans_key is None and kept and span.start < kept[-1][0].end:
                reason = f"overlaps {kept[-1][0].text!r} once aligned (doc.ents cannot overlap)"
            else:
                kept.append((span, entity["score"]))
                continue
            unaligned.append({**entity, "reason": reason})
        spans = [span for span, _ in kept]
        if self.spans_key is None:
            doc.set_ents(spans, default="outside")
        else:
            doc.spans[self.spans_key] = SpanGroup(doc, name=self.spans_key, spans=spans)
        for span, score in kept:
            span._.set(SCORE, score)
        doc._.set(UNALIGNED, unaligned)
        self.unaligned += len(unaligned)
        return len(unaligned)

    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        """Entity precision, recall and F1 (spaCy's scorer) for `nlp.evaluate`."""
        if self.spans_key is None:
            return get_ner_prf(examples)
        key = self.spans_key
        return Scorer.score_spans(
            examples,
            f"spans_{key}",
            getter=lambda doc, _: doc.spans.get(key, []),
            has_annotation=lambda doc: key in doc.spans,
            allow_overlap=True,
        )

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Write the model's files (weights, config.json, tokenizer) into `path`/model, as they
        are: loaded with the same options, they make the same model."""
        self.pipeline  # noqa: B018  (the files written are those of the model that runs)
        source, out = self._folder, Path(path) / MODEL_FOLDER
        assert source is not None
        if out.exists() and out.resolve() == source.resolve():
            return  # saved where it was loaded from: the files are there
        if (source / GLINER_CONFIG).is_file():
            from .gliner.checkpoint import copy_gliner

            shutil.rmtree(out, ignore_errors=True)
            copy_gliner(source, out)
            return
        files = model_files(source)
        if not files:
            raise ModelNotFoundError(
                f"the model's folder {source} is gone or empty: cannot save its files; load the "
                "pipeline again from where the model is"
            )
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for file in files:
            shutil.copyfile(file, out / file.name)  # a hub cache's links: their targets

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> MiniBertNER:
        """Load the model from `path`/model (what `to_disk` wrote): nothing is fetched."""
        folder = Path(path) / MODEL_FOLDER
        if not any((folder / name).is_file() for name in ("config.json", GLINER_CONFIG)):
            raise ModelNotFoundError(
                f"the saved pipeline has no model in {folder} (no config.json or "
                f"{GLINER_CONFIG}): the folder is incomplete; save the pipeline again with "
                "nlp.to_disk"
            )
        self._load(folder, saved=True)
        return self


def model_files(folder: Path) -> list[Path]:
    """The files of `folder` that make the model: those `load_model` and `Tokenizer` read."""
    found = {p for pattern in WEIGHT_FILES + TOKENIZER_FILES for p in folder.glob(pattern)}
    return sorted(p for p in found if p.is_file())


# --- the factory: its config keys and their types, from the component's and PipelineOptions'.


def config_type(hint: Any) -> Any:
    """An option's type as a config holds it: a config has lists, not tuples."""
    if typing.get_origin(hint) is tuple:
        return list[typing.get_args(hint)[0]]  # type: ignore[misc]
    return hint


def config_default(value: Any) -> Any:
    """A default as a config holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


OPTION_TYPES = {
    name: config_type(hint) for name, hint in typing.get_type_hints(PipelineOptions).items()
}


def make_component(
    nlp: Language,
    name: str,
    model: str,
    spans_key: str | None,
    alignment_mode: AlignmentMode,
    labels: list[str] | None,
    threshold: float | None,
    **options: Any,
) -> MiniBertNER:
    """The `minibert_ner` factory: see the module docstring for the config."""
    register_extensions()
    if labels is not None or threshold is not None:
        from .gliner.pipeline import GLiNEROptions

        GLiNEROptions(labels, 0.5 if threshold is None else threshold)  # checks them
    return MiniBertNER(
        name, model, PipelineOptions(**options), spans_key=spans_key,
        alignment_mode=alignment_mode, labels=labels, threshold=threshold,
    )  # fmt: skip


# spaCy reads the config's keys, types and defaults from the signature: the options are added
# to it from PipelineOptions, so that a new option is a config key without a change here.
_fields = {f.name: f for f in dataclasses.fields(PipelineOptions)}
_own = [p for p in inspect.signature(make_component).parameters.values() if p.name != "options"]
make_component.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    _own
    + [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=OPTION_TYPES[name],
            default=config_default(_fields[name].default),
        )
        for name in CONFIG_OPTIONS
    ]
)
make_component.__annotations__.update({name: OPTION_TYPES[name] for name in CONFIG_OPTIONS})
DEFAULT_CONFIG = {
    "model": DEFAULT_MODEL,
    "spans_key": None,
    "alignment_mode": "strict",
    "labels": None,
    "threshold": None,
    **{name: config_default(_fields[name].default) for name in CONFIG_OPTIONS},
}
Language.factory(
    NAME,
    default_config=DEFAULT_CONFIG,
    assigns=["doc.ents", "doc.spans", "span._.score", f"doc._.{UNALIGNED}"],
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0},
    func=make_component,
)
