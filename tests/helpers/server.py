"""Servers for the serve tests: the `minibert-ner serve` command in a process of its own, or
the same application run by uvicorn on a thread of the test (for tests that hold the model at
a chosen moment or make it fail). Both listen on a free loopback port and talk real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

START_TIMEOUT = 60.0  # seconds for a server to answer /health with 200


def request(
    url: str,
    method: str = "GET",
    path: str = "/",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a new connection: (status, lower-cased headers, body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def post_json(url: str, payload: object, key: str | None = None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    status, _, body = request(url, "POST", "/", json.dumps(payload).encode(), headers)
    return status, json.loads(body)


def wait_ready(url: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            if request(url, path="/health", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} was not ready within {START_TIMEOUT} s")


@contextmanager
def serve_process(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`minibert-ner serve --port 0 ARGS` in a subprocess: (its url, the process). Stopped with
    SIGTERM at the end if still running (its exit status is then the test's to check)."""
    command = [sys.executable, "-m", "minibert_ner", "serve", "--port", "0", *args]
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"listening on (http://\S+)", line)
        assert found, f"unexpected first line from the server: {line!r}"
        url = found.group(1)
        wait_ready(url, process)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def serve_thread(app) -> Iterator[str]:
    """The application served by uvicorn on a thread of this process; its url. `app` may still
    be loading its model (the url is given once the socket listens)."""
    import uvicorn

    from minibert_ner.serve.server import bind, uvicorn_config

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, app.state.serve.limits, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"
