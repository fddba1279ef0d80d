"""Dynamic batching: concurrent requests share forward passes, each answer as if it ran alone.

    batcher = DynamicBatcher(ner.label, max_batch_texts=32, max_wait=0.002, max_queue=256)
    batcher.start()                                   # on the running event loop
    entities = await batcher.label(texts, options)    # one list per text, as ner(texts)
    await batcher.close()                             # labels what is queued, then stops

How a batch runs:
1. Requests wait in a queue. When the model is free, the oldest request starts a batch with
   every request queued behind it, up to `max_batch_texts` texts (a request is never split).
   The batch waits for more, at most `max_wait` seconds, while requests are arriving (received
   by the server and not yet queued: `arriving`) or while it holds fewer texts than the batch
   before it: under steady load the clients just answered are sending their next requests, and
   without the wait the first of them would run alone and the rest in the next pass. Otherwise
   it starts at once, so that a lone client's request never waits. Under load, requests queue
   while the model runs, and batches fill by themselves.
2. On the model's own thread (the event loop never waits for the model), the batch's texts go
   to the pipeline's one entry, `NERPipeline.label`, each with its request's options: tokenized
   at once, run through the model together (packed forward passes under the pipeline's
   `batch_size` and `max_batch_tokens`, so that texts of any lengths share a pass), each text's
   entities made with its own request's parameters. Each answer equals `ner(text, ...)` with
   those parameters (scores to float rounding), whatever else was in its batch. A GLiNER
   model's entry is `GLiNERPipeline.predict`: the batch's texts run together, each with its
   request's labels (texts that decode alike share forward passes whatever their labels), and
   each answer equals `GLiNER.inference` on that request alone.
3. If a batch fails, each of its requests runs again alone, so a request that breaks the model
   fails alone and the others get their answers.
4. After a batch, on the model thread, once the process's resident memory has grown by
   `TRIM_GROWTH` since the last time, the C allocator hands its free memory back to the system
   (glibc's `malloc_trim`; elsewhere nothing). Batches of ever new length mixes free tensors of
   ever new sizes, and glibc otherwise keeps them: the server's resident memory would creep up
   with the requests served. Trimming only on growth keeps its cost (the pages handed back are
   faulted in again when next used) to the memory that really piled up.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..gliner.pipeline import GLiNEROptions
from ..inference.options import PipelineOptions
from ..inference.pipeline import Entities, Labelled

__all__ = ["BatchStats", "DynamicBatcher", "QueueFull"]


TRIM_GROWTH = 64 << 20  # bytes of resident memory gained since the last trim that call the next


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), or None where the C library has none (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    return None if trim is None else lambda: trim(0)


def _resident_bytes() -> int | None:
    """This process's resident memory (Linux: /proc/self/statm), or None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class MemoryTrimmer:
    """Step 4: malloc_trim once resident memory has grown by TRIM_GROWTH since the last."""

    def __init__(self) -> None:
        self.trim = _malloc_trim()
        self.floor = _resident_bytes()  # resident memory after the last trim (or at start)

    def __call__(self) -> None:
        now = _resident_bytes()
        if self.trim is None or now is None or self.floor is None:
            return
        if now - self.floor >= TRIM_GROWTH:
            self.trim()
            self.floor = _resident_bytes() or now


class QueueFull(Exception):
    """The queue holds `max_queue` requests already: the caller should answer 503."""


@dataclass
class Job:
    texts: list[str]
    options: PipelineOptions | GLiNEROptions
    future: asyncio.Future


@dataclass(frozen=True)
class BatchStats:
    texts: int  # in the batch
    tokens: int  # their tokens, special tokens included


class DynamicBatcher:
    """Queues label requests and runs them in shared batches on one model thread."""

    def __init__(
        self,
        label: Callable[[list[str], list], Labelled],
        *,
        max_batch_texts: int,
        max_wait: float,
        max_queue: int,
        arriving: Callable[[], int] = lambda: 0,
        on_batch: Callable[[BatchStats], None] = lambda stats: None,
    ) -> None:
        self.label_all = label  # NERPipeline.label or GLiNERPipeline.predict: one options per text
        self.max_batch_texts = max_batch_texts
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.arriving = arriving  # requests received, not yet handed to `label`
        self.on_batch = on_batch  # called on the event loop after each batch
        self._pending: deque[Job] = deque()
        self._arrived = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        # One thread: one batch at a time, each using every core torch is given.
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="minibert-ner-model")
        self._last_batch_texts = 0  # the size the next batch waits for (step 1)
        self._release_memory = MemoryTrimmer()  # step 4

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def label(
        self, texts: list[str], options: PipelineOptions | GLiNEROptions
    ) -> list[Entities]:
        """Entities of each text with `options` (as the model's entry reads them). Raises
        QueueFull at once when `max_queue` requests are waiting."""
        if len(self._pending) >= self.max_queue:
            raise QueueFull(f"{len(self._pending)} requests are waiting for the model")
        job = Job(texts, options, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._arrived.set()
        return await job.future

    async def close(self) -> None:
        """Label every queued request, then stop the model thread."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task
        self._model_thread.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            jobs = await self._collect(loop)
            self._last_batch_texts = sum(len(job.texts) for job in jobs)
            results, stats = await loop.run_in_executor(self._model_thread, self._label, jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():  # its client went away
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            self.on_batch(stats)
            # Step 4, on the model thread before its next batch, while the answers go out.
            self._model_thread.submit(self._release_memory)

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[Job]:
        """Step 1: the oldest request, and those that join it in time."""
        jobs = [self._pending.popleft()]
        count = len(jobs[0].texts)
        deadline = loop.time() + self.max_wait
        while count < self.max_batch_texts:
            if self._pending:
                if count + len(self._pending[0].texts) > self.max_batch_texts:
                    break
                jobs.append(self._pending.popleft())
                count += len(jobs[-1].texts)
                continue
            remaining = deadline - loop.time()
            more_expected = self.arriving() or count < self._last_batch_texts
            if remaining <= 0 or self._closing or not more_expected:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return jobs

    def _label(self, jobs: list[Job]) -> tuple[list[list[Entities] | Exception], BatchStats]:
        """On the model thread: steps 2-3."""
        try:
            return self._label_together(jobs)
        except Exception as e:
            if len(jobs) == 1:
                return [e], BatchStats(len(jobs[0].texts), 0)
        results: list[list[Entities] | Exception] = []
        texts = tokens = 0
        for job in jobs:  # step 3: one request broke the batch; only it should fail
            (result,), stats = self._label([job])
            results.append(result)
            texts, tokens = texts + stats.texts, tokens + stats.tokens
        return results, BatchStats(texts, tokens)

    def _label_together(self, jobs: list[Job]) -> tuple[list[list[Entities]], BatchStats]:
        texts = [text for job in jobs for text in job.texts]
        labelled = self.label_all(texts, [job.options for job in jobs for _ in job.texts])
        results, start = [], 0
        for job in jobs:
            results.append(labelled.entities[start : start + len(job.texts)])
            start += len(job.texts)
        return results, BatchStats(len(texts), labelled.tokens)
