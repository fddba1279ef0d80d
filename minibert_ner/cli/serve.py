"""Serve named-entity recognition over HTTP, as the Hugging Face Inference API does.

  minibert-ner serve --model dslim/distilbert-NER --port 8000
  curl -s localhost:8000 -d '{"inputs": "My name is Wolfgang and I live in Berlin"}'

POST / takes {"inputs": str | [str], "parameters": {"aggregation_strategy", "ignore_labels",
"stride"}} and answers as the pipeline does; a GLiNER model (a folder with gliner_config.json)
takes "parameters": {"labels", "threshold", "flat_ner", "multi_label"}, defaulting to --labels,
--threshold, --nested, --multi-label, and answers as GLiNER.inference does; huggingface_hub's
InferenceClient(base_url="http://127.0.0.1:8000").token_classification(text) works as it is.
GET /health, /info, /metrics (Prometheus). Concurrent requests share forward passes.
Exit status: 0 stopped by SIGTERM/SIGINT after finishing every request received; 2 bad options,
a port in use or a model that does not load; 130 a second signal (stopped at once).
Needs the serve extra: pip install 'minibert-ner[serve]'.
"""

from __future__ import annotations

import argparse
import os

from ..errors import InputError
from ..serve.limits import MAX_PORT, ServeLimits
from .options import (
    add_gliner_arguments,
    add_model_argument,
    add_pipeline_arguments,
    int_at_least,
    pipeline_options,
    positive_float,
)

__all__ = ["API_KEY_VARIABLE", "add_arguments", "run"]

API_KEY_VARIABLE = "MINIBERT_NER_API_KEY"
LIMITS = ServeLimits()  # the defaults
MAX_BATCH_WAIT_MS = 1000


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 to 65535 (0: any free port)."""
    value = int_at_least(0)(text)
    if value > MAX_PORT:
        raise argparse.ArgumentTypeError(f"a port is at most {MAX_PORT}, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    add_model_argument(model)
    add_pipeline_arguments(parser)  # a section per option group
    add_gliner_arguments(parser, served=True)
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    server.add_argument(
        "--port", type=port_number, default=8000, help="port (default: 8000; 0: any free)"
    )
    server.add_argument(
        "--api-key",
        help=f"require 'Authorization: Bearer KEY' on every request but GET /health "
        f"(default: {API_KEY_VARIABLE} if set, else no key)",
    )
    server.add_argument(
        "--max-request-bytes",
        type=int_at_least(1),
        default=LIMITS.max_request_bytes,
        help=f"largest request body; larger ones get 413 (default: {LIMITS.max_request_bytes})",
    )
    server.add_argument(
        "--max-inputs",
        type=int_at_least(1),
        default=LIMITS.max_inputs,
        help=f"most texts in one request; more get 413 (default: {LIMITS.max_inputs})",
    )
    server.add_argument(
        "--max-queue",
        type=int_at_least(1),
        default=LIMITS.max_queue,
        help="most requests waiting for the model; more get 503 with Retry-After "
        f"(default: {LIMITS.max_queue})",
    )
    wait_ms = LIMITS.batch_wait * 1000
    server.add_argument(
        "--batch-wait-ms",
        type=float,
        default=wait_ms,
        help=f"how long, at most, a batch waits for more requests to join it (default: {wait_ms:g})",
    )
    server.add_argument(
        "--header-timeout",
        type=positive_float,
        default=LIMITS.header_timeout,
        help="seconds a request's headers may take to arrive (from the connection opening or "
        f"the request's first byte); then 408 and the connection closed (default: {LIMITS.header_timeout:g})",
    )
    server.add_argument(
        "--body-timeout",
        type=positive_float,
        default=LIMITS.body_timeout,
        help="seconds a request's body may stall; then 408 and the connection closed "
        f"(default: {LIMITS.body_timeout:g})",
    )
    server.add_argument(
        "--drain-timeout",
        type=positive_float,
        default=LIMITS.drain_timeout,
        help="seconds a shutdown waits for requests in flight; then they are cut and the "
        f"server exits (default: {LIMITS.drain_timeout:g})",
    )
    server.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="warning",
        help="uvicorn's log level (default: warning)",
    )


def run(args: argparse.Namespace) -> int:
    from ..gliner.pipeline import parse_labels
    from ..serve import serve  # the serve extra, only when serving

    if not 0 <= args.batch_wait_ms <= MAX_BATCH_WAIT_MS:
        raise InputError(
            f"--batch-wait-ms must be between 0 and {MAX_BATCH_WAIT_MS}, got {args.batch_wait_ms}"
        )
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_VARIABLE)
    if api_key is not None and not api_key.strip():
        raise InputError(f"the api key (--api-key or {API_KEY_VARIABLE}) is empty")
    limits = ServeLimits(
        max_request_bytes=args.max_request_bytes,
        max_inputs=args.max_inputs,
        max_queue=args.max_queue,
        batch_wait=args.batch_wait_ms / 1000,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        drain_timeout=args.drain_timeout,
        api_key=api_key,
    )
    gliner = {
        "labels": parse_labels(args.labels) if args.labels is not None else None,
        "threshold": args.threshold,
        "flat_ner": not args.nested,
        "multi_label": args.multi_label,
    }
    return serve(
        args.model,
        pipeline_options(args),
        limits,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        gliner=gliner,
    )
