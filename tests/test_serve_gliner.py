"""`minibert-ner serve` with a GLiNER model: the real server on a free loopback port, spoken to
over HTTP; answers compared with the gliner package's own (tests/fixtures/gliner) and with
`GLiNER.inference` on each request alone, also when concurrent requests with different labels
and options share a batch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from minibert_ner import GLiNER

from .helpers.server import post_json, request, serve_process, serve_thread, wait_ready
from .test_gliner import FIXTURES, answers, assert_same_entities
from .test_serve import Gate, wait_for

pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")

from minibert_ner.gliner.pipeline import GLiNERPipeline  # noqa: E402
from minibert_ner.serve import ServeLimits, create_app  # noqa: E402

MODEL = FIXTURES / "deberta_span"
DEFAULT_LABELS = ["person", "location"]


@pytest.fixture(scope="module")
def gliner() -> GLiNER:
    return GLiNER.from_pretrained(MODEL)


@pytest.fixture(scope="module")
def server():
    args = ["--model", str(MODEL), "--labels", ",".join(DEFAULT_LABELS), "--threshold", "0.4"]
    with serve_process(*args, "--batch-wait-ms", "5") as (url, process):
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def case_request(case: dict) -> tuple[dict, list[list[dict]]]:
    """A fixture case as one request, and gliner's answer to it (empty texts left out: the
    server refuses them)."""
    keep = [i for i, text in enumerate(case["texts"]) if text]
    kwargs = {k: v for k, v in case["kwargs"].items() if k != "batch_size"}  # a server's choice
    parameters = {"labels": case["labels"], **kwargs}
    payload = {"inputs": [case["texts"][i] for i in keep], "parameters": parameters}
    return payload, [case["output"][i] for i in keep]


def test_requests_answer_as_gliner_does(gliner, server) -> None:
    """Every fixture case with one label list, sent as a request: gliner's own entities."""
    compared = 0
    for case in answers("deberta_span")["cases"]:
        if not all(isinstance(label, str) for label in case["labels"]):
            continue  # per-text labels: each text is a request of its own below
        payload, want = case_request(case)
        status, got = post_json(server, payload)
        assert status == 200, got
        assert_same_entities(gliner, case, got, want)
        compared += sum(map(len, want))
    assert compared > 50


def test_per_text_labels_as_separate_requests(gliner, server) -> None:
    case = next(c for c in answers("deberta_span")["cases"] if c["name"] == "per-text labels")
    for text, labels, want in zip(case["texts"], case["labels"], case["output"], strict=True):
        status, got = post_json(server, {"inputs": text, "parameters": {"labels": labels,
                                                                        **case["kwargs"]}})  # fmt: skip
        assert status == 200, got
        assert_same_entities(gliner, case, [got], [want])


def test_defaults_are_the_servers_flags(gliner, server) -> None:
    texts = answers("deberta_span")["cases"][0]["texts"][:4]
    status, got = post_json(server, {"inputs": texts})
    assert status == 200
    want = gliner.inference(texts, DEFAULT_LABELS, threshold=0.4)
    assert_same_entities(gliner, {"name": "defaults"}, got, want)
    assert any(want), "the defaults found nothing: the test compares nothing"
    status, got = post_json(server, {"inputs": texts[0], "parameters": {"threshold": None}})
    assert status == 200 and got == post_json(server, {"inputs": texts[0]})[1]


def test_info_says_gliner_and_its_default_labels(server) -> None:
    status, _, body = request(server, path="/info")
    info = json.loads(body)
    assert status == 200
    assert info["family"] == "gliner" and info["labels"] == DEFAULT_LABELS
    assert info["backbone"] == "deberta-v2" and info["span_mode"] == "markerV0"
    assert info["options"]["threshold"] == 0.4 and info["options"]["flat_ner"] is True


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"aggregation_strategy": "first"}, "for token-classification models"),
        ({"stride": 3, "labels": ["x"]}, "for token-classification models"),
        ({"labels": []}, "non-empty list"),
        ({"labels": "person"}, "non-empty list"),
        ({"labels": ["person", " "]}, "non-empty list"),
        ({"labels": [1]}, "non-empty list"),
        ({"threshold": 1.5}, "threshold must be a number in [0, 1]"),
        ({"threshold": True}, "threshold must be a number in [0, 1]"),
        ({"flat_ner": "yes"}, "flat_ner must be true or false"),
        ({"multi_label": 1}, "multi_label must be true or false"),
        ({"labels": [" ".join(["word"] * 400)]}, "shorten it"),
        ({"color": 1}, "unknown parameter(s) color; use labels, threshold"),
    ],
)
def test_bad_parameters_are_one_line_422s(server, parameters, words) -> None:
    status, got = post_json(server, {"inputs": "Ada met Bob.", "parameters": parameters})
    assert status == 422 and got["error_type"] == "invalid_request", got
    assert words in got["error"] and "\n" not in got["error"], got


def test_a_server_without_labels_needs_them_in_each_request(gliner) -> None:
    ner = GLiNERPipeline(gliner, labels=None)
    app = create_app(lambda: ner, ner.options, ServeLimits(), model_name="test")
    with serve_thread(app) as url:
        wait_ready(url)
        status, got = post_json(url, {"inputs": "Ada met Bob."})
        assert status == 422 and "no default labels" in got["error"], got
        text = answers("deberta_span")["cases"][0]["texts"][0]
        status, got = post_json(url, {"inputs": text, "parameters": {"labels": ["person"]}})
        assert status == 200
        assert got == gliner.inference([text], ["person"])[0]
        assert json.loads(request(url, path="/info")[2])["labels"] == []


def test_a_token_classifier_server_refuses_gliner_parameters(ner_model_dir) -> None:
    import minibert_ner

    ner = minibert_ner.pipeline(ner_model_dir)
    app = create_app(lambda: ner, ner.options, ServeLimits(), model_name="test")
    with serve_thread(app) as url:
        wait_ready(url)
        for parameters in ({"labels": ["person"]}, {"threshold": 0.3, "stride": 4}):
            status, got = post_json(url, {"inputs": "Ada met Bob.", "parameters": parameters})
            assert status == 422 and "are for GLiNER models" in got["error"], got


PAYLOADS = [
    {"inputs": "Barack Obama visited Berlin on Monday and met Angela Merkel at the Bundestag."},
    {"inputs": ["EU rejects German call to boycott British lamb.", "Hi"],
     "parameters": {"labels": ["country", "organization"], "threshold": 0.3}},
    {"inputs": "Apple Inc. hired Tim Cook, a former IBM engineer, in Cupertino.",
     "parameters": {"labels": ["company", "person", "city"], "flat_ner": False,
                    "threshold": 0.3}},
    {"inputs": ["Apple Inc. hired Tim Cook.", "Angela Merkel met Tim Cook in Berlin."],
     "parameters": {"labels": ["person"], "multi_label": True, "threshold": 0.2}},
    {"inputs": "The quick brown fox jumps over the lazy dog near the river bank in New York.",
     "parameters": {"threshold": 0.3}},
]  # fmt: skip


def test_concurrent_requests_share_a_batch_and_each_answer_is_gliners_alone(gliner) -> None:
    """Requests with different labels and options wait together while the model is held, run
    as one batch, and each answer equals `GLiNER.inference` on that request alone."""
    ner = GLiNERPipeline(gliner, labels=DEFAULT_LABELS, threshold=0.5)
    gate = Gate(ner.gliner)
    app = create_app(lambda: ner, ner.options, ServeLimits(batch_wait=0.0), model_name="test")
    state = app.state.serve
    with serve_thread(app) as url, ThreadPoolExecutor(len(PAYLOADS) + 1) as pool:
        wait_ready(url)
        first = pool.submit(post_json, url, {"inputs": "held"})
        assert gate.entered.wait(30)
        futures = [pool.submit(post_json, url, payload) for payload in PAYLOADS]
        wait_for(lambda: state.batcher.queue_depth == len(PAYLOADS))
        gate.opened.set()
        assert first.result()[0] == 200
        got = [f.result() for f in futures]
    found = 0
    for payload, (status, answer) in zip(PAYLOADS, got, strict=True):
        assert status == 200, answer
        single = isinstance(payload["inputs"], str)
        texts = [payload["inputs"]] if single else payload["inputs"]
        parameters = {"labels": DEFAULT_LABELS, "threshold": 0.5, **payload.get("parameters", {})}
        want = gliner.inference(texts, **parameters)
        assert_same_entities(gliner, {"name": str(payload)[:60]}, [answer] if single else answer,
                             want)  # fmt: skip
        found += sum(map(len, want))
    assert found > 5
    texts = sum(1 if isinstance(p["inputs"], str) else len(p["inputs"]) for p in PAYLOADS)
    batches = state.metrics.batch_texts
    assert (batches.count, batches.sum) == (2, 1 + texts)  # the held one, then all the others
    assert state.metrics.tokens > 0


def test_gliner_flags_on_a_token_classifier_are_one_line(ner_model_dir) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "minibert_ner", "serve", "--model", str(ner_model_dir),
         "--port", "0", "--threshold", "0.3", "--nested"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "--nested, --threshold: for GLiNER models" in last, r.stderr
