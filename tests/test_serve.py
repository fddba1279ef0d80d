"""`minibert-ner serve` as clients use it: the real server on a free loopback port, spoken to
over HTTP by huggingface_hub's InferenceClient and by plain HTTP requests; every answer compared
with the pipeline called directly on the same model. Tests that must hold the model at a chosen
moment (to fill the queue or a batch) or make it fail run the same application on a thread of
the test, with a forward hook on the model as the fault."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minibert_ner
from minibert_ner.inference.options import STRATEGIES

from .helpers.assertions import assert_same_entities
from .helpers.checkpoints import CALIBRATION_TEXTS
from .helpers.data import conll_sentences
from .helpers.server import post_json, request, serve_process, serve_thread, wait_ready

pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("starlette", reason="the serve extra is not installed")

from minibert_ner.serve import ServeLimits, create_app  # noqa: E402
from minibert_ner.serve.app import CLIENT_CLOSED  # noqa: E402

KEY = "s3cret-key"
WINDOW = 32  # --max-length: short windows, so that stride changes short texts' answers
MAX_INPUTS, MAX_BYTES = 8, 8192
TEXTS = [*CALIBRATION_TEXTS, "北京 ok 😀", "a"]
LONG = " ".join(" ".join(words) for words in conll_sentences("test", limit=8))  # many windows


@pytest.fixture(scope="module")
def server(ner_model_dir):
    """The serve command with an api key (from the environment) and small limits."""
    args = ["--model", str(ner_model_dir), "--max-length", str(WINDOW), "--batch-wait-ms", "5",
            "--max-inputs", str(MAX_INPUTS), "--max-request-bytes", str(MAX_BYTES)]  # fmt: skip
    with serve_process(*args, env={"MINIBERT_NER_API_KEY": KEY}) as (url, process):
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


_pipelines: dict[tuple, minibert_ner.NERPipeline] = {}


def reference(model_dir, **options) -> minibert_ner.NERPipeline:
    """The pipeline called directly, as the server's (cached per options)."""
    key = (str(model_dir), *sorted(options.items()))
    if key not in _pipelines:
        _pipelines[key] = minibert_ner.pipeline(model_dir, **options)
    return _pipelines[key]


def expected(model_dir, texts, parameters: dict, window: int | None = WINDOW):
    """What the pipeline answers for a request's inputs and parameters."""
    options = {"max_length": window} if window else {}
    if parameters.get("stride") is not None:
        options["stride"] = parameters["stride"]
    ner = reference(model_dir, **options)
    return ner(texts, **{k: v for k, v in parameters.items() if k != "stride"})


def as_dicts(elements, strategy: str) -> list[dict]:
    """InferenceClient's TokenClassificationOutputElement objects as the pipeline's dicts."""
    keys = ("entity", "score", "index", "word", "start", "end")
    if strategy != "none":
        keys = ("entity_group", "score", "word", "start", "end")
    return [{k: getattr(e, k) for k in keys} for e in elements]


# --- the Hugging Face client, unchanged


@pytest.fixture
def client(server, monkeypatch):
    from huggingface_hub import InferenceClient, constants

    # The client refuses every URL in offline mode; this one is our loopback server.
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    return InferenceClient(base_url=server, api_key=KEY)


@pytest.mark.parametrize("strategy", [None, *STRATEGIES])
def test_inference_client_gets_the_pipelines_entities(client, ner_model_dir, strategy) -> None:
    for text in [*TEXTS, LONG]:
        got = client.token_classification(text, aggregation_strategy=strategy)
        want = expected(ner_model_dir, text, {"aggregation_strategy": strategy or "simple"})
        assert_same_entities([as_dicts(got, strategy or "simple")], [want], text[:40])


def test_inference_client_ignore_labels_and_stride(client, ner_model_dir) -> None:
    compared = 0
    for stride in (0, 3, 8, 15):
        for ignore in ([], ["O", "PER"]):
            got = client.token_classification(LONG, ignore_labels=ignore, stride=stride)
            parameters = {"ignore_labels": ignore, "stride": stride}
            want = expected(ner_model_dir, LONG, parameters)
            compared += assert_same_entities([as_dicts(got, "simple")], [want], f"{parameters}")
    assert compared > 50
    # Stride matters here: the text is many windows long.
    assert expected(ner_model_dir, LONG, {"stride": 0}) != expected(
        ner_model_dir, LONG, {"stride": 15}
    )


def test_inference_client_without_the_key_is_refused(server, monkeypatch) -> None:
    from huggingface_hub import InferenceClient, constants
    from huggingface_hub.errors import HfHubHTTPError

    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    with pytest.raises(HfHubHTTPError) as caught:
        InferenceClient(base_url=server, api_key="wrong").token_classification("Berlin")
    assert caught.value.response.status_code == 401


# --- plain HTTP: lists of texts, generated requests


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    texts=st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=MAX_INPUTS),
    single=st.booleans(),
    strategy=st.sampled_from(STRATEGIES),
    ignore=st.one_of(st.none(), st.lists(st.sampled_from(["O", "PER", "B-LOC", "MISC"]))),
    stride=st.one_of(st.none(), st.integers(0, 40)),
)
def test_any_texts_and_parameters_answer_as_the_pipeline(
    server, ner_model_dir, texts, single, strategy, ignore, stride
) -> None:
    parameters = {"aggregation_strategy": strategy, "ignore_labels": ignore, "stride": stride}
    parameters = {k: v for k, v in parameters.items() if v is not None}
    inputs = texts[0] if single else texts
    status, answer = post_json(server, {"inputs": inputs, "parameters": parameters}, KEY)
    assert status == 200, answer
    want = expected(ner_model_dir, inputs, parameters)
    if single:
        answer, want = [answer], [want]
    assert_same_entities(answer, want, "generated request")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.one_of(
        JSON_VALUES,
        st.fixed_dictionaries({"inputs": JSON_VALUES}),
        st.fixed_dictionaries({"inputs": st.text(min_size=1), "parameters": JSON_VALUES}),
        st.fixed_dictionaries(
            {
                "inputs": st.just("x"),
                "parameters": st.dictionaries(
                    st.sampled_from(["aggregation_strategy", "ignore_labels", "stride"]),
                    JSON_VALUES,
                ),
            }
        ),
    )
)
def test_any_json_body_gets_an_answer_or_a_json_error_never_a_500(server, body) -> None:
    status, answer = post_json(server, body, KEY)
    if status == 200:
        assert isinstance(answer, list)
    else:
        assert status in (413, 422), (body, status, answer)
        assert set(answer) == {"error", "error_type"} and answer["error"], answer


# --- every refusal: status, error_type, JSON


REFUSALS = [
    (b"{not json", 400, "bad_json"),
    (b'{"inputs": "caf\xe9"}', 400, "bad_json"),  # Latin-1, not UTF-8
    (b"[" * 3000 + b"]" * 3000, 400, "bad_json"),  # nested deeper than the parser goes
    (b"", 400, "bad_json"),
    (b'["a text"]', 422, "invalid_request"),
    (b'"a text"', 422, "invalid_request"),
    (b"{}", 422, "invalid_request"),
    (b'{"inputs": null}', 422, "invalid_request"),
    (b'{"inputs": 3}', 422, "invalid_request"),
    (b'{"inputs": NaN}', 422, "invalid_request"),
    (b'{"inputs": ""}', 422, "invalid_request"),
    (b'{"inputs": []}', 422, "invalid_request"),
    (b'{"inputs": ["ok", ""]}', 422, "invalid_request"),
    (b'{"inputs": ["ok", 5]}', 422, "invalid_request"),
    (b'{"inputs": [["pre", "split"]]}', 422, "invalid_request"),
    (b'{"inputs": {"text": "x"}}', 422, "invalid_request"),
    (b'{"inputs": "\\ud800 lone surrogate"}', 422, "invalid_request"),
    (b'{"inputs": "x", "model": "/etc/passwd"}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": []}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": {"aggregation_strategy": "longest"}}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": {"aggregation_strategy": 1}}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": {"ignore_labels": "O"}}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": {"ignore_labels": [1]}}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": {"stride": -1}}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": {"stride": 1.5}}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": {"stride": true}}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": {"max_length": 8}}', 422, "invalid_request"),
    (b'{"inputs": "x", "parameters": {"device": "cuda"}}', 422, "invalid_request"),
    (json.dumps({"inputs": ["a"] * (MAX_INPUTS + 1)}).encode(), 413, "too_many_inputs"),
    (json.dumps({"inputs": "a " * MAX_BYTES}).encode(), 413, "too_large"),
]


def raw(url: str, body: bytes, key: str | None = KEY, **headers: str) -> tuple[int, dict, dict]:
    """POST / with `body` as it is (and the api key unless None): the answer, a JSON one."""
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    status, answer_headers, answer = request(url, "POST", "/", body, headers)
    assert answer_headers["content-type"] == "application/json", answer
    return status, answer_headers, json.loads(answer)


@pytest.mark.parametrize(("body", "status", "error_type"), REFUSALS)
def test_refusals_are_json_with_their_status(server, body, status, error_type) -> None:
    got, _, answer = raw(server, body)
    assert (got, answer["error_type"]) == (status, error_type), answer
    assert set(answer) == {"error", "error_type"}
    assert "\n" not in answer["error"] and "Traceback" not in answer["error"]


def test_body_size_is_checked_as_it_arrives(server) -> None:
    """A chunked body (no Content-Length) over the limit is refused too."""
    import http.client

    port = int(server.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    chunks = iter([b'{"inputs": "', b"a" * MAX_BYTES, b'"}'])
    connection.request("POST", "/", body=chunks, headers={"Authorization": f"Bearer {KEY}"},
                       encode_chunked=True)  # fmt: skip
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error_type"] == "too_large"
    connection.close()


def test_api_key_routes_and_methods(server) -> None:
    url, body = server, b'{"inputs": "Berlin"}'
    for key, status in ((None, 401), ("wrong", 401), (KEY, 200)):
        got, headers, answer = raw(url, body, key)
        assert got == status, answer
        if status == 401:
            assert (
                answer["error_type"] == "unauthorized" and headers["www-authenticate"] == "Bearer"
            )
    assert raw(url, body, None, Authorization=f"bearer {KEY}")[0] == 200  # any case of "Bearer"
    assert raw(url, body, None, Authorization=KEY)[0] == 401
    for path in ("/info", "/metrics"):
        assert request(url, path=path)[0] == 401
        assert request(url, path=path, headers={"Authorization": f"Bearer {KEY}"})[0] == 200
    assert request(url, path="/health")[0] == 200  # for load balancers: no key
    auth = {"Authorization": f"Bearer {KEY}"}
    for method, path, status, error_type in (
        ("GET", "/", 405, "method_not_allowed"),
        ("PUT", "/health", 405, "method_not_allowed"),
        ("GET", "/models/dslim/distilbert-NER", 404, "not_found"),
    ):
        got, headers, answer = request(url, method, path, headers=auth)
        assert got == status and json.loads(answer)["error_type"] == error_type


# --- health, info, metrics


def metric(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_info_and_metrics(server, ner_model_dir) -> None:
    url, auth = server, {"Authorization": f"Bearer {KEY}"}
    status, _, body = request(url, path="/info", headers=auth)
    info = json.loads(body)
    assert status == 200
    assert info["model"] == str(ner_model_dir) and info["family"] == "distilbert"
    assert info["labels"] == list(reference(ner_model_dir).scheme.names)
    assert info["window"] == WINDOW and info["version"] == minibert_ner.__version__
    assert info["options"]["max_length"] == WINDOW and "token" not in info["options"]
    assert info["limits"]["max_inputs"] == MAX_INPUTS and info["limits"]["api_key"] is True
    assert KEY not in body.decode()

    def scrape() -> str:
        status, headers, body = request(url, path="/metrics", headers=auth)
        assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        return body.decode()

    before = scrape()
    assert post_json(url, {"inputs": TEXTS[:3]}, KEY)[0] == 200
    assert post_json(url, {"inputs": ""}, KEY)[0] == 422
    after = scrape()
    for line in after.splitlines():  # the exposition format, line by line
        assert re.fullmatch(
            r"# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[\d.e+-]+|\w+\{le=\"\+Inf\"\} \d+", line
        ), line
    ok = 'minibert_ner_requests_total{path="/",status="200"}'
    bad = 'minibert_ner_requests_total{path="/",status="422"}'
    assert metric(after, ok) == metric(before, ok) + 1
    assert metric(after, bad) == metric(before, bad) + 1
    assert (
        metric(after, "minibert_ner_texts_total") == metric(before, "minibert_ner_texts_total") + 3
    )
    tokens = sum(len(e.ids) for e in reference(ner_model_dir).tokenizer.encode_batch(TEXTS[:3]))
    assert (
        metric(after, "minibert_ner_tokens_total") - metric(before, "minibert_ner_tokens_total")
        == tokens
    )
    count = "minibert_ner_request_duration_seconds_count"
    assert metric(after, count) == metric(before, count) + 2
    assert metric(after, "minibert_ner_queue_depth") == 0
    assert 'status="500"' not in after  # nothing so far broke the server


# --- dynamic batching, the queue, failures: the application on a thread, its model held


class Gate:
    """A forward hook on the model: holds every forward pass until opened, and raises for any
    batch holding the token `poison` (a fault in the model, for real)."""

    def __init__(self, ner, poison: str | None = None) -> None:
        self.opened, self.entered = threading.Event(), threading.Event()
        ids = ner.tokenizer.encode_batch([poison])[0].ids[1:-1] if poison else []
        self.poison = ids[0] if ids else None
        ner.model.register_forward_pre_hook(self.hook)

    def hook(self, module, args) -> None:
        self.entered.set()
        assert self.opened.wait(60), "the test never opened the gate"
        if self.poison is not None and (args[0] == self.poison).any():
            raise RuntimeError("poisoned input")


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def held_server(ner_model_dir, limits: ServeLimits, poison: str | None = None):
    ner = minibert_ner.pipeline(ner_model_dir, max_length=WINDOW)
    gate = Gate(ner, poison)
    app = create_app(lambda: ner, ner.options, limits, model_name="test")
    return app, gate


PAYLOADS = [
    {"inputs": TEXTS[0]},
    {"inputs": TEXTS[1:4], "parameters": {"aggregation_strategy": "first"}},
    {"inputs": LONG, "parameters": {"stride": 4, "aggregation_strategy": "average"}},
    {"inputs": [LONG, TEXTS[4]], "parameters": {"stride": 12, "ignore_labels": []}},
    {"inputs": TEXTS[5], "parameters": {"aggregation_strategy": "none"}},
    {"inputs": TEXTS[6:], "parameters": {"aggregation_strategy": "max", "ignore_labels": ["PER"]}},
    {"inputs": LONG, "parameters": {"stride": 0}},
]


def test_concurrent_requests_share_a_batch_and_each_answer_is_exact(ner_model_dir) -> None:
    app, gate = held_server(ner_model_dir, ServeLimits(batch_wait=0.0))
    state = app.state.serve
    with serve_thread(app) as url, ThreadPoolExecutor(len(PAYLOADS) + 1) as pool:
        wait_ready(url)
        first = pool.submit(post_json, url, {"inputs": "held"})
        assert gate.entered.wait(30)  # the model is busy: what comes now waits together
        futures = [pool.submit(post_json, url, payload) for payload in PAYLOADS]
        wait_for(lambda: state.batcher.queue_depth == len(PAYLOADS))
        gate.opened.set()
        assert first.result()[0] == 200
        answers = [f.result() for f in futures]
    for payload, (status, answer) in zip(PAYLOADS, answers, strict=True):
        assert status == 200, answer
        want = expected(ner_model_dir, payload["inputs"], payload.get("parameters", {}))
        single = isinstance(payload["inputs"], str)
        assert_same_entities(
            [answer] if single else answer, [want] if single else want, str(payload)[:80]
        )
    texts = sum(1 if isinstance(p["inputs"], str) else len(p["inputs"]) for p in PAYLOADS)
    batches = state.metrics.batch_texts
    assert (batches.count, batches.sum) == (2, 1 + texts)  # the held one, then all the others


def test_a_full_queue_answers_503_with_retry_after(ner_model_dir) -> None:
    app, gate = held_server(ner_model_dir, ServeLimits(max_queue=2, batch_wait=0.0))
    state = app.state.serve
    with serve_thread(app) as url, ThreadPoolExecutor(3) as pool:
        wait_ready(url)
        first = pool.submit(post_json, url, {"inputs": "held"})
        assert gate.entered.wait(30)
        queued = [pool.submit(post_json, url, {"inputs": text}) for text in TEXTS[:2]]
        wait_for(lambda: state.batcher.queue_depth == 2)
        status, headers, body = request(url, "POST", "/", b'{"inputs": "one too many"}')
        assert status == 503 and headers["retry-after"] == "1"
        assert json.loads(body)["error_type"] == "overloaded"
        gate.opened.set()
        assert first.result()[0] == 200
        for text, future in zip(TEXTS[:2], queued, strict=True):
            status, answer = future.result()
            assert status == 200
            assert_same_entities([answer], [expected(ner_model_dir, text, {})])
        assert post_json(url, {"inputs": "room again"})[0] == 200


def test_a_request_that_breaks_the_model_fails_alone(ner_model_dir) -> None:
    app, gate = held_server(ner_model_dir, ServeLimits(batch_wait=0.0), poison="zebra")
    state = app.state.serve
    with serve_thread(app) as url, ThreadPoolExecutor(4) as pool:
        wait_ready(url)
        first = pool.submit(post_json, url, {"inputs": "held"})
        assert gate.entered.wait(30)
        good = [TEXTS[0], TEXTS[2]]
        futures = [
            pool.submit(post_json, url, {"inputs": text}) for text in (good[0], "a zebra", good[1])
        ]
        wait_for(lambda: state.batcher.queue_depth == 3)
        gate.opened.set()
        assert first.result()[0] == 200
        (s1, a1), (s2, a2), (s3, a3) = (f.result() for f in futures)
        assert s2 == 500 and a2["error_type"] == "inference_error" and "poisoned" in a2["error"]
        assert (s1, s3) == (200, 200)
        assert_same_entities([a1, a3], expected(ner_model_dir, good, {}))
        assert post_json(url, {"inputs": "another zebra"})[0] == 500
        assert post_json(url, {"inputs": TEXTS[1]})[0] == 200  # still serving


def test_a_lone_request_never_waits_for_a_batch_to_fill(ner_model_dir) -> None:
    """The batch wait applies only while other requests are arriving or the batch before was
    larger: with a wait of a minute, a lone client's requests are still answered at once (the
    client gives up after 20 s)."""
    ner = minibert_ner.pipeline(ner_model_dir)
    app = create_app(lambda: ner, ner.options, ServeLimits(batch_wait=60.0), model_name="test")
    with serve_thread(app) as url:
        wait_ready(url)
        for text in TEXTS[:3]:
            status, _, body = request(
                url, "POST", "/", json.dumps({"inputs": text}).encode(), timeout=20
            )
            assert status == 200
            assert_same_entities([json.loads(body)], [ner(text)])


def test_after_a_batch_of_n_texts_the_next_waits_for_n(ner_model_dir) -> None:
    """Steady load: the clients of a batch of n send their next requests together, and the next
    batch waits (at most the batch wait) until n texts are there, rather than running the first
    of them alone."""
    ner = minibert_ner.pipeline(ner_model_dir)
    app = create_app(lambda: ner, ner.options, ServeLimits(batch_wait=60.0), model_name="test")
    state = app.state.serve
    with serve_thread(app) as url, ThreadPoolExecutor(3) as pool:
        wait_ready(url)
        assert post_json(url, {"inputs": TEXTS[:3]})[0] == 200  # a batch of 3 texts
        first = pool.submit(post_json, url, {"inputs": TEXTS[3]})
        time.sleep(0.5)
        assert not first.done()  # waiting for two more texts (or a minute)
        rest = [pool.submit(post_json, url, {"inputs": text}) for text in TEXTS[4:6]]
        answers = [f.result(timeout=20) for f in (first, *rest)]
    for text, (status, answer) in zip(TEXTS[3:6], answers, strict=True):
        assert status == 200
        assert_same_entities([answer], [ner(text)])
    batches = state.metrics.batch_texts
    assert (batches.count, batches.sum) == (2, 6)  # 3 texts, then the 3 that waited together


def test_free_memory_goes_back_to_the_system_when_it_piled_up(ner_model_dir, monkeypatch) -> None:
    """Step 5 of the batcher: glibc's malloc_trim on the model thread, after a batch, once the
    resident memory has grown by TRIM_GROWTH since the last trim (here any growth, or none: a
    growth of minus a terabyte, so every batch trims; and never: a terabyte)."""
    from minibert_ner.serve import batcher

    trim = batcher._malloc_trim()
    if trim is None or batcher._resident_bytes() is None:
        pytest.skip("no malloc_trim or no /proc/self/statm here")
    threads: list[str] = []

    def counted() -> object:
        threads.append(threading.current_thread().name)
        return trim()

    monkeypatch.setattr(batcher, "_malloc_trim", lambda: counted)
    ner = minibert_ner.pipeline(ner_model_dir)
    for growth, trims in ((-(1 << 40), 3), (1 << 40, 0)):
        monkeypatch.setattr(batcher, "TRIM_GROWTH", growth)
        threads.clear()
        app = create_app(lambda: ner, ner.options, ServeLimits(), model_name="test")
        with serve_thread(app) as url:
            wait_ready(url)
            for text in TEXTS[:3]:
                assert post_json(url, {"inputs": text})[0] == 200
            wait_for(lambda trims=trims: len(threads) >= trims)
        assert len(threads) == trims  # the server has stopped: its model thread has finished
        assert all(name.startswith("minibert-ner-model") for name in threads)


def test_health_while_loading_and_draining(ner_model_dir) -> None:
    release = threading.Event()

    def load():
        assert release.wait(60)
        return minibert_ner.pipeline(ner_model_dir)

    app = create_app(load, minibert_ner.PipelineOptions(), ServeLimits(), model_name="test")
    with serve_thread(app) as url:
        for method, path in (("GET", "/health"), ("POST", "/"), ("GET", "/info")):
            status, headers, body = request(url, method, path, b'{"inputs": "x"}')
            assert (status, json.loads(body)["error_type"]) == (503, "loading")
            assert headers["retry-after"] == "1"
        release.set()
        wait_ready(url)
        app.state.serve.drain()  # as a signal does; requests already sent are still labelled
        status, _, body = request(url, path="/health")
        assert (status, json.loads(body)["status"]) == (503, "draining")
        assert post_json(url, {"inputs": TEXTS[0]})[0] == 200


def test_a_client_that_leaves_mid_request_is_a_499_without_a_traceback(ner_model_dir) -> None:
    """Any prefix of a request, then the connection closed: no traceback in the server's log,
    no 500 counted; a cut after the headers (the application was called) counts as a 499."""
    import logging

    ner = reference(ner_model_dir, max_length=WINDOW)
    app = create_app(lambda: ner, ner.options, ServeLimits(), model_name="test")
    requests_ = app.state.serve.metrics.requests
    body = json.dumps({"inputs": TEXTS[:3]}).encode()
    sent = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    head = sent.index(b"\r\n\r\n") + 4
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    with serve_thread(app) as url:
        wait_ready(url)
        logging.getLogger("uvicorn.error").addHandler(handler)
        port = int(url.rsplit(":", 1)[1])

        @settings(max_examples=25, deadline=None, derandomize=True)
        @given(cut=st.integers(1, len(sent) - 1), reset=st.booleans())
        def leave_after(cut: int, reset: bool) -> None:
            before = requests_[("/", CLIENT_CLOSED)]
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(sent[:cut])
                if reset:  # an abortive close (RST) as well as a clean one (FIN)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            if cut >= head:
                wait_for(lambda: requests_[("/", CLIENT_CLOSED)] == before + 1)

        try:
            leave_after()
            assert post_json(url, {"inputs": TEXTS[0]})[0] == 200  # still serving
        finally:
            logging.getLogger("uvicorn.error").removeHandler(handler)
    assert not [k for k in requests_ if k[1] >= 500], requests_
    assert not records, [r.getMessage() for r in records]
    text = app.state.serve.metrics.render()
    assert metric(text, "minibert_ner_requests_total", '{path="/",status="499"}') >= 1


def test_a_body_that_stalls_is_answered_408(ner_model_dir) -> None:
    ner = reference(ner_model_dir, max_length=WINDOW)
    app = create_app(lambda: ner, ner.options, ServeLimits(body_timeout=0.3), model_name="test")
    with serve_thread(app) as url:
        wait_ready(url)
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"in')
            answer = b""
            while chunk := sock.recv(65536):  # the server closes the connection after its 408
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower()
        assert json.loads(body)["error_type"] == "request_timeout"
        assert app.state.serve.metrics.requests[("/", 408)] == 1
        assert post_json(url, {"inputs": TEXTS[0]})[0] == 200


def read_answer(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """Everything the server sends until it closes the connection: (status, head, body)."""
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return (int(head.split()[1]) if head else 0), head, body


REQUEST_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def test_headers_that_stall_are_answered_408_and_closed(ner_model_dir) -> None:
    """A client that sends any prefix of a request's headers (on a new connection: nothing at
    all included; after an answered request, nothing is an idle keep-alive connection, closed
    after uvicorn's keep-alive timeout) and then waits: 408 in the JSON error shape after the
    header timeout, the connection closed, the server still serving."""
    ner = reference(ner_model_dir, max_length=WINDOW)
    limits = ServeLimits(header_timeout=0.2)
    app = create_app(lambda: ner, ner.options, limits, model_name="test")
    body = json.dumps({"inputs": TEXTS[0]}).encode()
    whole = REQUEST_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body
    head = whole.index(b"\r\n\r\n") + 3  # a cut before the last byte of the headers
    with serve_thread(app) as url:
        wait_ready(url)
        port = int(url.rsplit(":", 1)[1])

        @settings(max_examples=20, deadline=None, derandomize=True)
        @given(cut=st.integers(0, head), after_a_request=st.booleans())
        def stall(cut: int, after_a_request: bool) -> None:
            assume(cut > 0 or not after_a_request)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                if after_a_request:  # keep-alive: the first answer, then the stalled one
                    sock.sendall(whole)
                    first = b""
                    while not first.endswith(b"]"):
                        first += sock.recv(65536)
                sock.sendall(whole[:cut])
                status, head_, body_ = read_answer(sock)
            assert status == 408 and b"connection: close" in head_.lower()
            assert json.loads(body_)["error_type"] == "request_timeout"

        stall()
        assert post_json(url, {"inputs": TEXTS[0]})[0] == 200


def test_a_request_followed_by_a_half_close_is_answered(ner_model_dir) -> None:
    """Whole requests (one, or several pipelined), then the client shuts its side for writing:
    each is answered as the pipeline answers it, then the connection is closed. A request cut
    short by the half-close is a client that left: a 499, no answer, no traceback."""
    ner = reference(ner_model_dir, max_length=WINDOW)
    app = create_app(lambda: ner, ner.options, ServeLimits(), model_name="test")
    requests_ = app.state.serve.metrics.requests
    bodies = [json.dumps({"inputs": text}).encode() for text in TEXTS[:3]]
    sent = [REQUEST_HEAD + b"Content-Length: %d\r\n\r\n" % len(b) + b for b in bodies]
    with serve_thread(app) as url:
        wait_ready(url)
        port = int(url.rsplit(":", 1)[1])
        for n in (1, 3):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"".join(sent[:n]))
                sock.shutdown(socket.SHUT_WR)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            parts = answer.split(b"HTTP/1.1 ")[1:]
            assert len(parts) == n, answer
            for text, part in zip(TEXTS[:n], parts, strict=True):
                assert part.startswith(b"200")
                got = json.loads(part.partition(b"\r\n\r\n")[2])
                assert_same_entities([got], [ner(text)])
        before = requests_[("/", CLIENT_CLOSED)]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(sent[0][:-3])  # the body's last bytes never come
            sock.shutdown(socket.SHUT_WR)
            assert read_answer(sock)[0] == 0
        wait_for(lambda: requests_[("/", CLIENT_CLOSED)] == before + 1)
    assert not [k for k in requests_ if k[1] >= 500], requests_


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    line=st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b),
    header=st.binary(max_size=40).filter(lambda b: b"\n" not in b),
)
def test_malformed_http_is_answered_in_the_json_error_shape(server, line, header) -> None:
    """Any request line and header bytes: whatever the server answers is JSON in our error
    shape (or a result), never uvicorn's plain text; HTTP the parser rejects is a 400."""
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(line + b"\r\n" + header + b"\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        try:
            status, head, body = read_answer(sock)
        except ConnectionResetError:
            return  # the server closed first; nothing was answered in another shape
    if status == 0:
        return  # nothing answered (an incomplete request that the half-close ended)
    assert b"content-type: application/json" in head.lower(), head
    answer = json.loads(body)
    if status == 400:
        assert answer["error_type"] in ("bad_request", "bad_json"), answer


@pytest.mark.parametrize(
    "sent",
    [b"\x00\x01\x02\r\n\r\n", b"GET / HTTP/1.1\r\nHost x\r\n\r\n", b"GET /\x7f HTTP/1.1\r\n\r\n"],
)
def test_http_the_parser_rejects_is_a_json_400(server, sent) -> None:
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(sent)
        status, head, body = read_answer(sock)
    assert status == 400 and b"content-type: application/json" in head.lower(), head
    assert json.loads(body)["error_type"] == "bad_request"


@pytest.mark.parametrize("stalled_in", ["headers", "body"])
def test_a_stalled_client_does_not_block_shutdown_past_the_drain_timeout(
    ner_model_dir, stalled_in
) -> None:
    partial = {
        "headers": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le",
        "body": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    }[stalled_in]
    args = ("--model", str(ner_model_dir), "--body-timeout", "600", "--header-timeout", "600",
            "--drain-timeout", "0.5")  # fmt: skip
    with serve_process(*args) as (url, process):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
            stalled.sendall(partial)
            if stalled_in == "body":
                wait_for(
                    lambda: "requests_in_flight 1" in request(url, path="/metrics")[2].decode()
                )
            else:
                time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0  # cut at the drain deadline, not held for ever
        stderr = process.stderr.read()
        assert "Traceback" not in stderr, stderr
        if stalled_in == "body":
            assert "1 connection(s) cut" in stderr, stderr


# --- the process: shutdown, start-up failures, imports


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_every_request_then_exits_0(ner_model_dir, sig) -> None:
    texts = [LONG] * 32
    with (
        serve_process("--model", str(ner_model_dir), "--max-inputs", "32") as (url, process),
        ThreadPoolExecutor(4) as pool,
    ):
        futures = [pool.submit(post_json, url, {"inputs": texts}) for _ in range(4)]

        def in_flight() -> float:
            return metric(
                request(url, path="/metrics")[2].decode(), "minibert_ner_requests_in_flight"
            )

        wait_for(lambda: in_flight() >= 2)
        process.send_signal(sig)
        answers = [f.result() for f in futures]
        assert process.wait(30) == 0
        assert "stopped" in process.stderr.read()
    want = expected(ner_model_dir, texts, {}, window=None)
    for status, answer in answers:
        assert status == 200
        assert_same_entities(answer, want)
    with pytest.raises(OSError):
        request(url, path="/health", timeout=5)


def closed_loop_client(port: int, body: bytes, stop: float) -> list[tuple[float, bool]]:
    """Requests one after another on keep-alive connections (a new one when the server closes
    one), until the server refuses a connection: for each request, when its last byte was sent
    and whether it got its complete answer."""
    import http.client

    sent = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    outcomes, sock = [], None
    while time.monotonic() < stop:
        if sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            except OSError:
                break  # refused: the server has stopped listening
        at = time.monotonic()
        try:
            sock.sendall(sent)
            at = time.monotonic()
            response = http.client.HTTPResponse(sock)
            response.begin()
            response.read()
            outcomes.append((at, response.status == 200))
            if not response.will_close:
                continue
        except (OSError, http.client.HTTPException):
            outcomes.append((at, False))
        sock.close()
        sock = None
    if sock is not None:
        sock.close()
    return outcomes


def last_accepted(port: int, stop: float) -> float:
    """Connects until refused: the time of the last connection the server accepted (an upper
    bound on when its listening socket closed, less one probe's interval)."""
    last = time.monotonic()
    while time.monotonic() < stop:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except OSError:
            break
        last = time.monotonic()
        time.sleep(0.002)
    return last


def test_sigterm_under_load_answers_every_request_already_sent(ner_model_dir) -> None:
    """32 closed-loop clients on keep-alive connections, SIGTERM mid-load: every request whose
    bytes were all sent while the server still listened gets its complete answer (a request sent
    later may fail: the server has gone), and the server exits 0."""
    clients, body = 32, json.dumps({"inputs": TEXTS[:2]}).encode()
    with serve_process("--model", str(ner_model_dir)) as (url, process):
        port = int(url.rsplit(":", 1)[1])
        stop = time.monotonic() + 60  # the clients stop by themselves
        with ThreadPoolExecutor(clients + 1) as pool:
            futures = [pool.submit(closed_loop_client, port, body, stop) for _ in range(clients)]
            text = lambda: request(url, path="/metrics")[2].decode()  # noqa: E731
            wait_for(lambda: metric(text(), "minibert_ner_texts_total") >= 200)
            process.send_signal(signal.SIGTERM)
            listening_until = pool.submit(last_accepted, port, stop).result()
            outcomes = [o for f in futures for o in f.result()]
        assert process.wait(30) == 0
    sent_before = [ok for at, ok in outcomes if at <= listening_until]
    after = [ok for at, ok in outcomes if at > listening_until]
    print(
        f"SIGTERM under load, {clients} clients: {sum(sent_before)} of {len(sent_before)} "
        f"requests sent while listening answered; {sum(after)} of {len(after)} sent later"
    )
    assert all(sent_before) and sent_before


def run_serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "minibert_ner", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("minibert-ner: error: "), r.stderr
    return last


def test_start_up_failures_are_one_line(tmp_path, ner_model_dir) -> None:
    assert "does-not-exist" in one_line_error(
        run_serve("--model", str(tmp_path / "does-not-exist"), "--port", "0")
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert f":{port}" in one_line_error(
            run_serve("--model", str(ner_model_dir), "--port", port)
        )
    r = run_serve("--model", str(ner_model_dir), "--batch-wait-ms", "-1")
    assert "batch-wait-ms" in one_line_error(r)
    assert "api key" in one_line_error(run_serve("--model", str(ner_model_dir), "--api-key", " "))


def test_ports_out_of_range_and_hosts_that_cannot_be_bound_are_one_line(ner_model_dir) -> None:
    from minibert_ner.errors import InputError
    from minibert_ner.serve.server import bind

    for port in ("70000", "65536", "-1"):
        r = run_serve("--model", str(ner_model_dir), "--port", port)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "--port" in r.stderr.strip().splitlines()[-1]
    for port in (65536, 70000, -1):  # never wrapped modulo 65536
        with pytest.raises(InputError, match=f"port {port}: a port is between 0 and 65535"):
            bind("127.0.0.1", port)
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): no machine has it; .invalid never resolves (RFC 6761).
    for host in ("192.0.2.1", "no-such-host.invalid"):
        last = one_line_error(run_serve("--model", str(ner_model_dir), "--host", host))
        assert f"the host '{host}'" in last and "--host" in last and "--port" not in last, last


def test_importing_the_package_does_not_import_the_server() -> None:
    code = (
        "import sys, minibert_ner, minibert_ner.cli.serve; "
        "assert not {'starlette', 'uvicorn'} & {m.split('.')[0] for m in sys.modules}, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_serve_command_takes_every_pipeline_option() -> None:
    """The serve command's pipeline flags are the label command's (one per PipelineOptions
    field, from cli/options.py), and they become the server's options."""
    import dataclasses

    from minibert_ner.cli import build_parser
    from minibert_ner.cli.options import PIPELINE_FLAGS, pipeline_options

    parser = build_parser("serve")
    flags = {option for action in parser._actions for option in action.option_strings}
    for field in dataclasses.fields(minibert_ner.PipelineOptions):
        assert set(PIPELINE_FLAGS[field.name][0]) <= flags, field.name
    args = parser.parse_args(
        ["-m", "M", "-a", "first", "--ignore-labels", "", "--stride", "7", "--batch-size", "4",
         "--max-batch-tokens", "256", "--dtype", "bfloat16", "--port", "0", "--max-queue", "3"]
    )  # fmt: skip
    assert pipeline_options(args) == minibert_ner.PipelineOptions(
        aggregation_strategy="first", ignore_labels=(), stride=7, batch_size=4,
        max_batch_tokens=256, dtype="bfloat16",
    )  # fmt: skip
    assert (args.host, args.port, args.max_queue, args.max_inputs) == ("127.0.0.1", 0, 3, 64)
