"""The HTTP application (Starlette, ASGI): routes, limits, authentication, errors, metrics.

    POST /         label: the Hugging Face Inference API's token-classification request
    GET  /health   200 {"status": "ready"}; 503 while the model loads or the server drains
    GET  /info     the model, its family and labels, its window, the version, options and limits
    GET  /metrics  Prometheus text format (metrics.py)

Every error is JSON, {"error": message, "error_type": type}, with the status below; nothing a
client sends ends in a traceback or stops the server. A client that disconnects before its body
has arrived gets nothing (it has gone) and is counted in /metrics with status 499, as nginx
counts it, not as a 5xx.

| status | error_type                           | when                                          |
|--------|--------------------------------------|-----------------------------------------------|
| 400    | bad_json, bad_request                | the body is not JSON; malformed HTTP          |
| 401    | unauthorized                         | an api key is set and the request lacks it    |
| 404    | not_found                            | another path                                  |
| 405    | method_not_allowed                   | e.g. GET /                                    |
| 408    | request_timeout                      | headers or body stalled (header/body_timeout) |
| 413    | too_large, too_many_inputs           | body over max_request_bytes; over max_inputs  |
| 422    | invalid_request                      | wrong types, empty text, unknown parameter;   |
|        |                                      | GLiNER: no labels, a label the window can't fit |
| 500    | inference_error                      | the model failed on this request              |
| 503    | loading, draining, overloaded        | not ready; shutting down; queue full          |

503s carry Retry-After. The model loads on a thread after the server starts listening, so that
/health can say "loading"; GET /health never needs the api key (load balancers probe it).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Literal

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .. import __version__
from ..errors import InputError
from ..gliner.pipeline import GLiNEROptions, GLiNERPipeline
from ..inference.options import PipelineOptions
from ..inference.pipeline import NERPipeline
from .batcher import BatchStats, DynamicBatcher, QueueFull
from .limits import ServeLimits
from .metrics import Metrics
from .requests import RequestError, parse_request

__all__ = ["ServeLimits", "ServerState", "create_app", "error"]

log = logging.getLogger("minibert_ner.serve")
Phase = Literal["loading", "ready", "draining", "failed"]
RETRY_AFTER = "1"  # seconds, for 503s
OPEN_PATHS = ("/health",)  # answered without the api key
CLIENT_CLOSED = 499  # nginx's status for a client that left before its answer: not a 5xx


class ServerState:
    """The loaded pipeline (a token classifier's, or a GLiNER model's) and its batcher, and what
    phase the server is in."""

    def __init__(
        self, options: PipelineOptions | GLiNEROptions, limits: ServeLimits, model_name: str
    ) -> None:
        self.options = options
        self.limits = limits
        self.model_name = model_name
        self.phase: Phase = "loading"
        self.ner: NERPipeline | GLiNERPipeline | None = None
        self.batcher: DynamicBatcher | None = None
        self.load_error: BaseException | None = None
        self.arriving = 0  # label requests being read and checked, not yet queued
        self.metrics = Metrics(lambda: self.batcher.queue_depth if self.batcher else 0)

    def ready(self, ner: NERPipeline | GLiNERPipeline) -> None:
        """On the event loop: the model is loaded; start batching."""
        self.ner = ner
        gliner = isinstance(ner, GLiNERPipeline)
        if gliner:  # a GLiNER model's requests take its options, not the token classifier's
            self.options = ner.options
        self.batcher = DynamicBatcher(
            ner.predict if gliner else ner.label,
            max_batch_texts=ner.batch_size if gliner else ner.options.batch_size,
            max_wait=self.limits.batch_wait,
            max_queue=self.limits.max_queue,
            arriving=lambda: self.arriving,
            on_batch=self.count_batch,
        )
        self.batcher.start()
        self.phase = "ready"

    def count_batch(self, stats: BatchStats) -> None:
        self.metrics.batch_texts.observe(stats.texts)
        self.metrics.texts += stats.texts
        self.metrics.tokens += stats.tokens

    def drain(self) -> None:
        """Shutting down: /health answers 503, so that load balancers send new requests
        elsewhere; requests already received are still labelled."""
        if self.phase != "failed":
            self.phase = "draining"


def error(status: int, error_type: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": error_type}, status, headers=headers)


def not_ready(state: ServerState, **extra: str) -> JSONResponse:
    """503 while loading, draining or failed; `extra` goes into the JSON body."""
    message = {
        "loading": "the model is loading; retry shortly",
        "draining": "the server is shutting down; send the request to another replica",
        "failed": f"the model failed to load: {state.load_error}",
    }[state.phase]
    return JSONResponse(
        {**extra, "error": message, "error_type": state.phase},
        503,
        headers={"Retry-After": RETRY_AFTER},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 as soon as it is known to be over `limit` bytes."""
    too_large = RequestError(
        413, "too_large", f"the body is over {limit} bytes; send fewer or shorter texts"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def label(request: Request) -> Response:
    state: ServerState = request.app.state.serve
    if state.batcher is None:
        return not_ready(state)
    # While draining, requests already received are still labelled: the server has stopped
    # accepting connections, and it finishes what it was sent.
    state.arriving += 1
    try:
        body = await read_body(request, state.limits.max_request_bytes)
        parsed = parse_request(body, state.options, state.limits.max_inputs)
    except RequestError as e:
        return error(e.status, e.error_type, str(e))
    finally:
        state.arriving -= 1
    try:
        results = await state.batcher.label(parsed.texts, parsed.options)
    except QueueFull as e:
        return error(503, "overloaded", f"{e}; retry shortly", **{"Retry-After": RETRY_AFTER})
    except InputError as e:  # what only the model can check (a GLiNER label too long)
        return error(422, "invalid_request", str(e))
    except Exception as e:
        log.error("a request failed in the model: %s: %s", type(e).__name__, e)
        return error(500, "inference_error", f"labelling failed: {type(e).__name__}: {e}")
    return JSONResponse(results[0] if parsed.single else results)


async def health(request: Request) -> Response:
    state: ServerState = request.app.state.serve
    if state.phase != "ready":
        return not_ready(state, status=state.phase)
    return JSONResponse({"status": "ready"})


async def info(request: Request) -> Response:
    state: ServerState = request.app.state.serve
    if state.ner is None:
        return not_ready(state)
    ner, options = state.ner, state.options
    if isinstance(ner, GLiNERPipeline):
        gliner = ner.gliner
        described = {
            "family": "gliner",
            "backbone": gliner.model.backbone.config.model_type,
            "span_mode": gliner.config.span_mode,
            "labels": list(options.labels or ()),  # the default; a request may name its own
            "window": gliner.max_tokens,
        }
        weights = next(gliner.model.parameters())
        shown = {**options.as_json(), "batch_size": ner.batch_size}
    else:
        described = {
            "family": ner.model.config.model_type,
            "labels": list(ner.scheme.names),
            "window": ner.window_size,
        }
        weights, shown = ner.model, options.as_json()  # never the hub token
    return JSONResponse(
        {
            "model": state.model_name,
            **described,
            "version": __version__,
            "device": str(weights.device),
            "dtype": str(weights.dtype).removeprefix("torch."),
            # the mode it runs in (precision.py) and why: asked for, or dtype="auto"'s pick
            "precision": {"mode": ner.precision.mode.name, "reason": ner.precision.reason},
            "options": shown,
            "limits": {
                "max_request_bytes": state.limits.max_request_bytes,
                "max_inputs": state.limits.max_inputs,
                "max_queue": state.limits.max_queue,
                "batch_wait_ms": state.limits.batch_wait * 1000,
                "header_timeout": state.limits.header_timeout,
                "body_timeout": state.limits.body_timeout,
                "drain_timeout": state.limits.drain_timeout,
                "api_key": state.limits.api_key is not None,
            },
        }
    )


async def metrics(request: Request) -> Response:
    state: ServerState = request.app.state.serve
    return PlainTextResponse(
        state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kinds = {404: "not_found", 405: "method_not_allowed"}
    return error(
        exc.status_code,
        kinds.get(exc.status_code, "http_error"),
        f"{request.method} {request.url.path}: {exc.detail}; the server answers POST /, "
        "GET /health, GET /info and GET /metrics",
        **(exc.headers or {}),
    )


class BodyStalled(Exception):
    """No part of a request's body arrived for the body timeout."""


class Edge:
    """ASGI middleware at the server's edge: the api key, and each request counted and timed."""

    def __init__(self, app, state: ServerState) -> None:
        self.app, self.state = app, state
        key = state.limits.api_key
        self.expected = None if key is None else key.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, metrics = scope["path"], self.state.metrics
        is_label = path == "/" and scope["method"] == "POST"
        started, status = time.perf_counter(), 500

        async def send_counted(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def receive_timed():
            # A client that stalls mid-body is answered 408 rather than held open for ever.
            try:  # wait_for, not asyncio.timeout: Python 3.10 has no asyncio.timeout
                return await asyncio.wait_for(receive(), self.state.limits.body_timeout)
            except asyncio.TimeoutError:
                raise BodyStalled from None

        metrics.in_flight += is_label
        try:
            if self.expected is not None and path not in OPEN_PATHS and not self.authorized(scope):
                await error(
                    401,
                    "unauthorized",
                    "this server needs its api key: send the header Authorization: Bearer <key>",
                    **{"WWW-Authenticate": "Bearer"},
                )(scope, receive, send_counted)
            else:
                await self.app(scope, receive_timed, send_counted)
        except BodyStalled:
            seconds = self.state.limits.body_timeout
            await error(
                408,
                "request_timeout",
                f"the request's body stalled for {seconds:g} s; send it whole",
                Connection="close",
            )(scope, receive, send_counted)
        except ClientDisconnect:  # the client's doing: counted as such, no traceback, no 500
            status = CLIENT_CLOSED
        finally:
            metrics.in_flight -= is_label
            known = path in ("/", "/health", "/info", "/metrics")
            metrics.requests[(path if known else "other", status)] += 1
            if is_label:
                metrics.latency.observe(time.perf_counter() - started)

    def authorized(self, scope) -> bool:
        """Authorization: Bearer <key> (the scheme's case does not matter, RFC 9110)."""
        scheme, _, given = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given, self.expected or b"")


def create_app(
    load: Callable[[], NERPipeline | GLiNERPipeline],
    options: PipelineOptions | GLiNEROptions,
    limits: ServeLimits,
    *,
    model_name: str,
    on_load_error: Callable[[BaseException], None] = lambda e: None,
) -> Starlette:
    """The application. `load` makes the pipeline (on a thread, once the server listens);
    `on_load_error` is told if it fails (the serve command then stops the server)."""
    state = ServerState(options, limits, model_name)

    async def load_model() -> None:
        try:
            ner = await asyncio.to_thread(load)
        except Exception as e:
            state.phase, state.load_error = "failed", e
            on_load_error(e)
            return
        if state.phase == "loading":
            state.ready(ner)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        loading = asyncio.get_running_loop().create_task(load_model())
        yield
        state.drain()
        await loading  # a model still loading is waited for: its thread cannot be stopped
        if state.batcher is not None:
            await state.batcher.close()

    app = Starlette(
        routes=[
            Route("/", label, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/info", info, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.serve = state
    app.add_middleware(Edge, state=state)
    return app
