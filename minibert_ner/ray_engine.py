"""The Ray Data engine: NER over a `ray.data.Dataset`, one model per actor, CPU or GPU.

On any dataset with a text column:

    import ray
    from minibert_ner.ray_engine import tag_dataset
    ds = ray.data.read_parquet("s3://bucket/corpus/")
    ds = tag_dataset(ds, "dslim/distilbert-NER", device="cuda", num_actors=8)  # + "entities"
    ds.write_parquet("s3://bucket/entities/")

`tag_dataset` is `ds.map_batches(EntityTagger, ...)` with the actor resources filled in; use
`EntityTagger` directly for other settings. `minibert-ner batch --engine ray` runs the batch
command's reader and writer (`corpus.py`) and job (`batch.py`) around it, so its files, resume
and error accounting are those of the local engine.

Ray (and pyarrow) come with the optional extra: pip install 'minibert-ner[ray]'. Workers import
minibert_ner and load the model themselves: on a cluster both must be reachable from every node
(install the package in the image or pass a runtime_env; a hub id or a folder on shared storage).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .batch import RECORDS_PER_CHUNK, FileJob, Result
from .corpus import Record, read_records
from .errors import BatchError, MissingExtraError


def require_ray() -> Any:
    """The `ray` module with Ray Data, or a MissingExtraError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray without its data extra lacks pyarrow/pandas)
    except ImportError as e:
        raise MissingExtraError(
            f"the Ray engine needs Ray Data, which is not installed ({e}): "
            "pip install 'minibert-ner[ray]' (or pip install 'ray[data]'); "
            "or use --engine local"
        ) from e
    return ray


class EntityTagger:
    """A callable class for `Dataset.map_batches`: loads the pipeline once per actor, then maps
    each batch's `text_column` to an `output_column` of entity lists (the pipeline's output,
    JSON-ready dicts). Rows whose text is null get null entities.

    `pipeline_options` are those of `minibert_ner.pipeline` (aggregation_strategy, device, dtype,
    batch_size, ...). `num_threads` sets torch's CPU threads (match the actor's num_cpus).
    """

    def __init__(
        self,
        model: str,
        *,
        text_column: str = "text",
        output_column: str = "entities",
        num_threads: int | None = None,
        **pipeline_options: Any,
    ) -> None:
        import torch

        from .pipeline import pipeline

        if num_threads:
            torch.set_num_threads(num_threads)
        self.text_column, self.output_column = text_column, output_column
        self.ner = pipeline(model=model, **pipeline_options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        texts = batch[self.text_column]
        todo = [i for i, text in enumerate(texts) if text is not None]
        for i in todo:
            if not isinstance(texts[i], str):
                raise TypeError(
                    f"column {self.text_column!r} holds {type(texts[i]).__name__}, not str; "
                    "decode it to text first"
                )
        found = self.ner([texts[i] for i in todo]) if todo else []
        entities: list[Any] = [None] * len(texts)
        for i, ents in zip(todo, found, strict=True):
            entities[i] = ents
        return {**batch, self.output_column: entities}


def default_num_actors(gpu: bool, cpus_per_actor: float) -> int:
    """One actor per GPU of the cluster, or as many actors as its CPUs hold."""
    resources = require_ray().cluster_resources()
    if gpu:
        return int(resources.get("GPU", 0))
    return max(1, int(resources.get("CPU", 1) // cpus_per_actor))


def tag_dataset(
    ds: Any,
    model: str,
    *,
    num_actors: int | None = None,
    cpus_per_actor: float = 1,
    records_per_batch: int = RECORDS_PER_CHUNK,
    text_column: str = "text",
    output_column: str = "entities",
    **pipeline_options: Any,
) -> Any:
    """`ds` with an `output_column` of entities, labelled by a pool of `num_actors` actors.

    With `device="cuda"` (or "cuda:N") each actor gets one GPU of its own, which it sees as
    "cuda"; by default there is one actor per GPU of the cluster. Otherwise actors run on CPU
    with `cpus_per_actor` CPUs (and as many torch threads) each, by default as many actors as
    the cluster's CPUs hold. Ray waits for resources it lacks (or its autoscaler adds them).
    """
    ray = require_ray()
    device = pipeline_options.get("device")
    gpu = device is not None and str(device).startswith("cuda")
    if gpu:
        pipeline_options["device"] = "cuda"  # the actor's own GPU, whatever its number is
        if not ray.cluster_resources().get("GPU"):
            raise BatchError(
                f"device {device!r} asks for GPU actors, but the Ray cluster has no GPUs; "
                "connect to one that has (--address), or leave out --device"
            )
    if num_actors is None:
        num_actors = default_num_actors(gpu, cpus_per_actor)
    if num_actors < 1:
        raise BatchError(f"num_actors must be at least 1, not {num_actors}")
    return ds.map_batches(
        EntityTagger,
        fn_constructor_kwargs={
            "model": model,
            "text_column": text_column,
            "output_column": output_column,
            "num_threads": max(1, int(cpus_per_actor)),
            **pipeline_options,
        },
        batch_size=records_per_batch,
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=cpus_per_actor,
        num_gpus=1 if gpu else 0,
    )


def _read_files(
    batch: dict[str, Any], *, text_column: str, id_column: str | None
) -> Iterator[dict[str, list[Any]]]:
    """Ray task: the records of the files in `batch` as rows (file index, key, text, error),
    then each file's end mark, yielded in chunks so that a large file streams instead of filling
    one block."""
    for file_index, path in zip(batch["file"], batch["path"], strict=True):
        records = read_records(Path(path), text_column=text_column, id_column=id_column)
        rows: dict[str, list[Any]] = {"file": [], "key": [], "text": [], "error": []}
        for record in itertools.chain(records, [None]):  # None: the file's end mark
            rows["file"].append(int(file_index))
            # The key as JSON: ids may mix numbers and strings, which an Arrow column cannot.
            rows["key"].append(json.dumps(record.key) if record else None)
            rows["text"].append(record.text if record else None)
            rows["error"].append(record.error if record else None)
            if len(rows["file"]) == RECORDS_PER_CHUNK * 4:
                yield rows
                rows = {name: [] for name in rows}
        if rows["file"]:
            yield rows


def ray_results(
    jobs: Sequence[FileJob],
    model: str,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    address: str | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float = 1,
    **pipeline_options: Any,
) -> Iterator[Result]:
    """The Ray engine for `batch.run_batch`: read files in Ray tasks, label in an actor pool, and
    hand the results back to this process in input order (for the writer).

    Connects to `address`, or uses the Ray already initialised, or starts a local one (shut down
    again at the end).
    """
    from .pipeline import pipeline

    ray = require_ray()
    # Load the model here once, on CPU, to fail early with a clear message on a model or option
    # the actors could not load: an actor failing in __init__ reaches us only as Ray's text of a
    # remote traceback (after Ray retried it).
    pipeline(model=model, **{**pipeline_options, "device": "cpu"})
    started = not ray.is_initialized()
    if started:
        if address is None:
            ray.init(include_dashboard=False)
        else:
            ray.init(address=address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    context = ray.data.DataContext.get_current()
    preserve_order = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # the writer finishes files in order
    try:
        files = [{"file": i, "path": str(job.source.resolve())} for i, job in enumerate(jobs)]
        ds = ray.data.from_items(files, override_num_blocks=len(files))
        columns = {"text_column": text_column, "id_column": id_column}
        # Files are read on this node, as they are written here: they need not exist on others.
        # Reading is light next to the model: no CPU reserved, so actors may hold every CPU.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        ds = ds.map_batches(
            _read_files, batch_size=1, fn_kwargs=columns, num_cpus=0, scheduling_strategy=here
        )
        ds = tag_dataset(
            ds,
            model,
            num_actors=num_actors,
            cpus_per_actor=cpus_per_actor,
            text_column="text",
            **pipeline_options,
        ).drop_columns(["text"])
        try:
            for row in ds.iter_rows():
                if row["key"] is None:
                    yield int(row["file"]), None, None
                else:
                    record = Record(json.loads(row["key"]), error=row["error"])
                    yield int(row["file"]), record, row["entities"]
        except Exception as e:
            cause = _our_error(e)
            if cause is None:
                raise
            # A worker's bad-input error (a model it cannot load, ...) as our one-line message,
            # not Ray's page of remote tracebacks.
            raise BatchError(f"a Ray worker failed: {cause}") from e
    finally:
        context.execution_options.preserve_order = preserve_order
        if started:
            ray.shutdown()


# The last line of a remote traceback that ends in one of our errors: "minibert_ner.errors.X: ...".
_OUR_ERROR_LINE = re.compile(r"^minibert_ner\.errors\.\w+: (.+)$", re.MULTILINE)


def _our_error(error: BaseException) -> str | None:
    """The message of the MiniBertError a worker raised, if that is what `error` reports.

    Ray sends a worker's exception back as text (the remote traceback, wrapped in
    RayTaskError / UserCodeException / ActorDiedError), not as the exception object, so the
    message is read from that text.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        found = _OUR_ERROR_LINE.findall(str(e))
        if found:
            return found[-1]
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None
