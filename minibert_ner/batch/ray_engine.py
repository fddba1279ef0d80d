"""The Ray Data engine: NER over a `ray.data.Dataset`, one model per actor, CPU or GPU.

On any dataset with a text column:

    import ray
    from minibert_ner.batch.ray_engine import tag_dataset
    ds = ray.data.read_parquet("s3://bucket/corpus/")
    ds = tag_dataset(ds, "dslim/distilbert-NER", device="cuda", num_actors=8)  # + "entities"
    ds.write_parquet("s3://bucket/entities/")

`tag_dataset` is `ds.map_batches(EntityTagger, ...)` with the actor resources filled in; use
`EntityTagger` directly for other settings. A GLiNER model runs the same way, its labels named:

    ds = tag_dataset(ds, "urchade/gliner_small-v2.1", gliner={"labels": ["person", "drug"]})
 Each actor labels a batch's texts with the
pipeline's one entry (`NERPipeline.label`, through `plan.label_texts`). `minibert-ner batch
--engine ray` runs the batch command's reader and writer (records.py) and job (job.py) around
it, so its files, resume and error accounting are those of the local engine.

Every block that crosses Ray is an Arrow table with a declared schema (`read_schema()`, and the
entities column of `records.arrow_entities_type`): Ray's default conversions through NumPy and
pandas would turn a column of nulls into float NaN, and blocks whose types were guessed from
their own rows into schemas that cannot be merged.

Ray (and pyarrow) come with the optional extra: pip install 'minibert-ner[ray]'. Workers import
minibert_ner and load the model themselves: on a cluster both must be reachable from every node
(install the package in the image or pass a runtime_env; a hub id or a folder on shared storage).
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import BatchError, JobError, MiniBertError, MissingExtraError
from ..inference.options import PipelineOptions
from .plan import RECORDS_PER_CHUNK, FileJob, Result, job_records, label_texts
from .records import Record, arrow_entities_type, require_pyarrow

__all__ = [
    "CONNECT_TIMEOUT",
    "EntityTagger",
    "connect",
    "ray_results",
    "require_ray",
    "tag_dataset",
]

# Seconds to wait for the Ray cluster at an address before giving up with a JobError.
CONNECT_TIMEOUT = 30.0
# Blocks of the list of input files, at most: each is read by one Ray task, in order.
MAX_READ_BLOCKS = 64


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
    """A callable class for `Dataset.map_batches(..., batch_format="pyarrow")`: loads the
    pipeline once per actor, then adds to each Arrow batch an `output_column` of entity lists
    for its `text_column` (the pipeline's output, with the declared type
    `records.arrow_entities_type`). Rows whose text is null get null entities.

    `options` are the pipeline's (`PipelineOptions`: aggregation_strategy, device, dtype,
    batch_size, ...). `num_threads` sets torch's CPU threads (match the actor's num_cpus).
    `failure_column`: when given, a MiniBertError while labelling a batch (a model that
    overflows in float16, ...) does not fail the dataset: every row of the batch gets null
    entities and the message in this column (errors as data; null when all went well).
    `gliner`: the model is a GLiNER model, run with these settings (labels, and optionally
    threshold, flat_ner, multi_label: `GLiNERPipeline`'s fields), its entities in the
    pipeline's shape (entity_group is the label), as the local engine writes them.
    """

    def __init__(
        self,
        model: str,
        options: PipelineOptions | None = None,
        *,
        text_column: str = "text",
        output_column: str = "entities",
        num_threads: int | None = None,
        failure_column: str | None = None,
        gliner: Mapping[str, Any] | None = None,
    ) -> None:
        import torch

        if num_threads:
            torch.set_num_threads(num_threads)
        self.pa, _ = require_pyarrow("the Ray engine")
        self.text_column, self.output_column = text_column, output_column
        self.failure_column = failure_column
        options = options or PipelineOptions()
        self.ner = load_tagger(model, options, gliner)
        self.entities_type = arrow_entities_type(options.aggregation_strategy)

    def __call__(self, batch: Any) -> Any:
        pa = self.pa
        if self.text_column not in batch.column_names:
            raise BatchError(
                f"the dataset has no column {self.text_column!r} (columns: "
                f"{', '.join(batch.column_names)}); pass text_column"
            )
        column = batch.column(self.text_column)
        kind = column.type
        text_types = (pa.types.is_string, pa.types.is_large_string, pa.types.is_null)
        if not any(is_type(kind) for is_type in text_types) and str(kind) != "string_view":
            raise BatchError(
                f"column {self.text_column!r} holds {kind}, not text; decode it to strings first"
            )
        texts = column.to_pylist()
        entities: list[Any] = [None] * len(texts)
        failure = None
        try:
            entities = label_texts(self.ner, texts)
        except MiniBertError as e:
            if self.failure_column is None:
                raise
            failure = str(e)
        batch = _set_column(batch, self.output_column, pa.array(entities, self.entities_type))
        if self.failure_column is not None:
            failures = batch.column(self.failure_column).to_pylist() if (
                self.failure_column in batch.column_names) else [None] * len(texts)  # fmt: skip
            if failure is not None:
                failures = [failure] * len(texts)
            batch = _set_column(batch, self.failure_column, pa.array(failures, pa.string()))
        return batch


def load_tagger(model: str, options: PipelineOptions, gliner: Mapping[str, Any] | None) -> Any:
    """The pipeline an actor labels with: a GLiNER model's with `gliner`'s settings, else the
    token classifier's."""
    if gliner is not None:
        from ..gliner.pipeline import GLiNERPipeline

        return GLiNERPipeline.from_options(model, options, **gliner)
    from ..inference.pipeline import pipeline

    return pipeline(model, options=options)


def _set_column(table: Any, name: str, values: Any) -> Any:
    """`table` with column `name` holding `values` (replaced, or added at the end)."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


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
    options: PipelineOptions | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float = 1,
    records_per_batch: int = RECORDS_PER_CHUNK,
    text_column: str = "text",
    output_column: str = "entities",
    failure_column: str | None = None,
    gliner: Mapping[str, Any] | None = None,
    **changes: Any,
) -> Any:
    """`ds` with an `output_column` of entities, labelled by a pool of `num_actors` actors.

    `options` and `changes` are the pipeline's (`PipelineOptions`), as for
    `minibert_ner.pipeline`; they are checked here, before any actor starts. `failure_column`
    and `gliner` (a GLiNER model's labels and settings): see `EntityTagger` (no
    failure_column: a labelling error fails the dataset, as Ray does).

    With `device="cuda"` (or "cuda:N") each actor gets one GPU of its own, which it sees as
    "cuda"; by default there is one actor per GPU of the cluster. Otherwise actors run on CPU
    with `cpus_per_actor` CPUs (and as many torch threads) each, by default as many actors as
    the cluster's CPUs hold. Ray waits for resources it lacks (or its autoscaler adds them).
    """
    ray = require_ray()
    options = (options or PipelineOptions()).replace(**changes)
    device = options.device
    gpu = device is not None and device.startswith("cuda")
    if gpu:
        options = options.replace(device="cuda")  # the actor's own GPU, whatever its number is
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
        batch_format="pyarrow",
        fn_constructor_kwargs={
            "model": model,
            "options": options,
            "text_column": text_column,
            "output_column": output_column,
            "num_threads": max(1, int(cpus_per_actor)),
            "failure_column": failure_column,
            "gliner": dict(gliner) if gliner is not None else None,
        },
        batch_size=records_per_batch,
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=cpus_per_actor,
        num_gpus=1 if gpu else 0,
    )


def read_schema() -> Any:
    """The schema of the blocks of records that `_read_files` sends to the actors: the file's
    index, the record's key as JSON (ids may mix numbers and strings, which an Arrow column
    cannot), its text or its error, and a failure (a file that could not be read: the job
    stops with it; its file index is null); a row with a null key is the file's end mark."""
    pa, _ = require_pyarrow("the Ray engine")
    return pa.schema(
        [
            ("file", pa.int64()),
            ("key", pa.string()),
            ("text", pa.large_string()),
            ("error", pa.string()),
            ("failure", pa.string()),
        ]
    )


def _read_files(files: Any, *, text_column: str, id_column: str | None) -> Iterator[Any]:
    """Ray task: the records of the files in an Arrow batch (file, path, size; each file read up
    to its stamped size) as blocks of `read_schema()`, each file followed by its end mark, in
    chunks: a large file streams instead of filling one block, small files share one."""
    pa, schema = require_pyarrow("the Ray engine")[0], read_schema()
    rows: dict[str, list[Any]] = {name: [] for name in schema.names}
    columns = [files.column(name).to_pylist() for name in ("file", "path", "size")]
    stream = job_records(zip(*columns, strict=True), text_column=text_column, id_column=id_column)
    try:
        for file, record in stream:
            rows["file"].append(file)
            rows["key"].append(json.dumps(record.key) if record else None)
            rows["text"].append(record.text if record else None)
            rows["error"].append(record.error if record else None)
            rows["failure"].append(None)
            if len(rows["file"]) == RECORDS_PER_CHUNK * 4:
                yield pa.Table.from_pydict(rows, schema=schema)
                rows = {name: [] for name in rows}
    except Exception as e:  # reported, as data, to the driver: its cause, not Ray's advice
        cause = str(e) if isinstance(e, BatchError) else f"{type(e).__name__}: {e}"
        failure = {"file": None, "key": None, "text": None, "error": None, "failure": cause}
        for name, value in failure.items():
            rows[name].append(value)
    if rows["file"]:
        yield pa.Table.from_pydict(rows, schema=schema)


def connect(address: str | None, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Make sure Ray is initialised: the one already running in this process, else the cluster
    at `address` (or RAY_ADDRESS), else a new local instance. Returns whether it started one,
    which the caller shuts down.

    Ray waits for an unreachable cluster for minutes, printing warnings: here a host:port that
    refuses connections fails at once, and any address that does not answer within `timeout`
    seconds fails with a JobError.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None or address in ("local", "auto"):
        try:
            ray.init(address=address, include_dashboard=False if address is None else None)
        except ConnectionError as e:  # "auto": no running Ray found
            raise JobError(
                f"--address {address}: no running Ray cluster found on this machine; start one "
                "(`ray start --head`), or leave out --address for a Ray of this run's own"
            ) from e
        return address is None or address == "local"
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if host and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=min(timeout, 10.0)).close()
        except OSError as e:
            raise JobError(
                f"cannot reach the Ray cluster at {address}: {e.strerror or e}; check --address "
                "and that the cluster is up (`ray status` on its head node)"
            ) from e
    outcome: dict[str, BaseException | None] = {}

    def init() -> None:  # in a thread, as ray.init itself has no timeout
        try:
            ray.init(address=address)
            outcome["error"] = None
        except BaseException as e:  # noqa: BLE001 (reported by the caller)
            outcome["error"] = e

    thread = threading.Thread(target=init, name="ray-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if "error" not in outcome:
        raise JobError(
            f"the Ray cluster at {address} did not answer within {timeout:.0f} s; check "
            "--address and that the cluster is up (`ray status` on its head node)"
        )
    if outcome["error"] is not None:
        raise JobError(f"cannot connect to the Ray cluster at {address}: {outcome['error']}")
    return False


def ray_results(
    jobs: Sequence[FileJob],
    model: str,
    options: PipelineOptions,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    address: str | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float = 1,
    connect_timeout: float | None = None,
    gliner: Mapping[str, Any] | None = None,
) -> Iterator[Result]:
    """The Ray engine for `batch.run_batch`: read files in Ray tasks, label in an actor pool, and
    hand the results back to this process in input order (for the writer).

    Connects to `address`, or uses the Ray already initialised, or starts a local one (shut down
    again at the end). Actors that die are restarted and their batches retried (Ray Data's
    default for actor pools), so a lost worker costs time, not records. `gliner`: a GLiNER
    model's labels and settings (`EntityTagger`).
    """
    ray = require_ray()
    # Load the model here once, on CPU, to fail early with a clear message on a model or option
    # the actors could not load: an actor failing in __init__ reaches us only as Ray's text of a
    # remote traceback (after Ray retried it).
    load_tagger(model, options.replace(device="cpu"), gliner)
    started = connect(address, connect_timeout or CONNECT_TIMEOUT)
    context = ray.data.DataContext.get_current()
    preserve_order = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # the writer finishes files in order
    try:
        files = [
            {"file": i, "path": str(job.source), "size": job.stamp.size}
            for i, job in enumerate(jobs)
        ]
        ds = ray.data.from_items(files, override_num_blocks=min(len(files), MAX_READ_BLOCKS))
        columns = {"text_column": text_column, "id_column": id_column}
        # Files are read on this node, as they are written here: they need not exist on others.
        # Reading is light next to the model: no CPU reserved, so actors may hold every CPU,
        # and one task at a time (in one worker process): with no CPU to bound them, Ray would
        # start a process per block at once, each importing torch, and starve the actors.
        ds = ds.map_batches(
            _read_files,
            batch_size=None,
            batch_format="pyarrow",
            fn_kwargs=columns,
            num_cpus=0,
            concurrency=1,
            **_on_this_node(ray, ds),
        )
        # The texts come back with the entities and are ignored: a drop_columns stage would be
        # a task needing a CPU of its own, which waits while the actors hold every CPU, so that
        # no result would reach the writer before the last batch is labelled.
        ds = tag_dataset(
            ds,
            model,
            options=options,
            num_actors=num_actors,
            cpus_per_actor=cpus_per_actor,
            text_column="text",
            failure_column="failure",
            gliner=gliner,
        )
        try:
            for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                for row in table.to_pylist():
                    if row["failure"] is not None:
                        raise BatchError(f"a Ray worker failed: {row['failure']}")
                    if row["key"] is None:
                        yield row["file"], None, None
                    else:
                        record = Record(json.loads(row["key"]), error=row["error"])
                        yield row["file"], record, row["entities"]
        except Exception as e:
            if type(e).__module__.split(".")[0] == "ray":  # a lost worker or cluster, ...
                raise JobError(f"the Ray job failed: {_last_line(e)}") from e
            raise
    finally:
        context.execution_options.preserve_order = preserve_order
        if started:
            ray.shutdown()


def _on_this_node(ray: Any, ds: Any) -> dict[str, Any]:
    """map_batches arguments that keep its tasks on this node: a label selector (Ray 2.5x and
    later, where the older scheduling strategy argument is deprecated), else that strategy."""
    node = ray.get_runtime_context().get_node_id()
    if "label_selector" in inspect.signature(ds.map_batches).parameters:
        return {"label_selector": {"ray.io/node-id": node}}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
