"""Run the server: bind, load the model, serve until SIGTERM or SIGINT, drain, exit.

    status = serve("dslim/distilbert-NER", PipelineOptions(), ServeLimits(), host="127.0.0.1")
    status = serve("urchade/gliner_small-v2.1", PipelineOptions(), ServeLimits(),
                   gliner={"labels": ["person"], "threshold": 0.5})   # a GLiNER model

A folder (or hub id) with gliner_config.json is served as a GLiNER model, with or without
default labels.

The socket is bound before anything loads (a port in use is a one-line error at once, and port 0
picks a free port, announced on stderr). SIGTERM or SIGINT stops accepting connections, lets
every request already received finish (for at most the drain timeout; then the stragglers are
cut), labels what is queued, and returns 0; a second signal stops at once (130).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import uvicorn

from ..errors import InputError, MiniBertError
from ..gliner.pipeline import GLiNEROptions, GLiNERPipeline, is_gliner_model
from ..inference.options import PipelineOptions
from ..inference.pipeline import NERPipeline, pipeline
from .app import create_app
from .limits import MAX_PORT, ServeLimits
from .protocol import http_protocol

__all__ = ["bind", "serve", "uvicorn_config"]

READ_SENT = 0.1  # s, after the listening socket closes, to read requests already sent
WARM_UP = ["My name is Wolfgang and I live in Berlin."]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv4 or IPv6), or an InputError saying why not, and
    naming the host when the host is the problem."""
    if not 0 <= port <= MAX_PORT:  # getaddrinfo would take 70000 as 4464
        raise InputError(f"cannot listen on port {port}: a port is between 0 and {MAX_PORT}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise InputError(
            f"cannot listen on {host}:{port}: the host {host!r} does not resolve "
            f"({e.strerror or e}); choose another --host"
        ) from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        fix = "choose another --port"
        if e.errno == errno.EADDRNOTAVAIL:  # the port is fine: no interface has that address
            fix = f"the host {host!r} is not an address of this machine; choose another --host"
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}; {fix}") from None
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app, limits: ServeLimits, log_level: str = "warning") -> uvicorn.Config:
    """How uvicorn runs the application: our HTTP protocol (protocol.py: the header timeout,
    answers after a half-close, JSON 400s), no access log, no server header."""
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
        server_header=False,
        http=http_protocol(limits.header_timeout),
    )


class GracefulServer(uvicorn.Server):
    """uvicorn's server, told about a signal before it drains (so that /health says so), and
    returning normally afterwards instead of raising the signal again."""

    def __init__(self, config: uvicorn.Config, on_signal, drain_timeout: float) -> None:
        super().__init__(config)
        self.on_signal = on_signal
        self.drain_timeout = drain_timeout
        self.forced = False
        self.cut = 0  # connections cut at the drain deadline

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop listening; read what the open connections were already sent; answer it, for at
        most the drain timeout; then cut the stragglers and let uvicorn finish.

        uvicorn closes every connection without a request in progress at the moment it stops
        listening, and a request whose bytes had arrived but were not yet read went down with its
        connection (a reset): here it is read first, and answered. A straggler is cut by aborting
        its connection, which the application sees as the client leaving (a 499, no traceback)."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await asyncio.sleep(READ_SENT)
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle: closed; in progress: closed once answered
        try:  # until the deadline (wait_for: Python 3.10 has no asyncio.timeout())
            await asyncio.wait_for(self.connections_closed(), self.drain_timeout)
        except asyncio.TimeoutError:
            self.cut = len(self.server_state.connections)
            for connection in list(self.server_state.connections):
                connection.transport.abort()
        await super().shutdown(sockets)

    async def connections_closed(self) -> None:
        """Return when every connection has closed (each closes once its request is answered),
        or at a second signal."""
        while self.server_state.connections and not self.force_exit:
            await asyncio.sleep(0.05)

    def handle_exit(self, sig, frame) -> None:
        self.on_signal()
        if self.should_exit:  # a second signal: stop now, in-flight requests cut
            self.force_exit = self.forced = True
        self.should_exit = True


def serve(
    model: str,
    options: PipelineOptions,
    limits: ServeLimits,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "warning",
    announce: TextIO = sys.stderr,
    gliner: Mapping[str, Any] | None = None,
) -> int:
    """Serve `model` until a signal; the exit status (0 after a clean drain). gliner: the
    `GLiNEROptions` fields (labels, threshold, flat_ner, multi_label) a GLiNER model is served
    with; given for a token classifier, other than their defaults, they are an InputError."""
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    server: GracefulServer | None = None

    def load():
        return ready(load_model(model, options, gliner))

    def ready(ner):
        # The first forward pass is slow (kernels chosen, memory taken): not a client's.
        if isinstance(ner, GLiNERPipeline):
            ner.predict(WARM_UP, [ner.options.replace(labels=ner.labels or ["person"])])
        else:
            ner(WARM_UP)
        print(f"minibert-ner serve: ready ({ner!r})", file=announce, flush=True)
        return ner

    def stop(e: BaseException) -> None:
        assert server is not None
        server.should_exit = True

    app = create_app(
        load,
        options,
        limits,
        model_name=model,
        on_load_error=stop,
    )

    config = uvicorn_config(app, limits, log_level)
    server = GracefulServer(config, app.state.serve.drain, limits.drain_timeout)
    print(
        f"minibert-ner serve: listening on http://{shown}:{bound_port} (loading {model})",
        file=announce,
        flush=True,
    )
    server.run(sockets=[sock])
    state = app.state.serve
    if state.load_error is not None:
        if isinstance(state.load_error, MiniBertError):
            raise state.load_error
        raise MiniBertError(f"the model failed to load: {state.load_error}") from state.load_error
    if server.forced:
        return 130
    cut = f" ({server.cut} connection(s) cut at the drain timeout)" if server.cut else ""
    print(f"minibert-ner serve: stopped{cut}", file=announce, flush=True)
    return 0


def load_model(
    model: str, options: PipelineOptions, gliner: Mapping[str, Any] | None = None
) -> NERPipeline | GLiNERPipeline:
    """The pipeline the server runs: a GLiNER model's (the folder has gliner_config.json),
    with `gliner`'s settings, or a token classifier's."""
    settings = dict(gliner or {})
    if is_gliner_model(model, revision=options.revision, token=options.token):
        return GLiNERPipeline.from_options(model, options, **{"labels": None, **settings})
    given = sorted(k for k, v in settings.items() if v != getattr(GLiNEROptions(), k))
    if given:
        flags = {"labels": "--labels", "threshold": "--threshold", "flat_ner": "--nested",
                 "multi_label": "--multi-label"}  # fmt: skip
        raise InputError(
            f"{', '.join(flags.get(k, k) for k in given)}: for GLiNER models (gliner_config.json);"
            f" {model} is a token classifier: drop them"
        )
    return pipeline(model, options=options)
