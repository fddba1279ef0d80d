"""Load on `minibert-ner serve` beside the offline pipeline on the same texts, in one run.

    python scripts/serve_load.py [--model M] [--shape dslim] [--texts N] [--requests 20000] [--json OUT]

The texts are the CoNLL-2003 test sentences (words joined by spaces), one sentence a request.
The model is --model, else a random DistilBERT NER model of --shape, built here with MiniLM's
tokenizer: dslim (the default: 768 wide, 6 layers, the shape of dslim/distilbert-NER, which
`serve` serves by default), minilm (384 wide, 6 layers) or small (64 wide, 2 layers).

The server, `minibert-ner serve`, runs in a process of its own; the load generator and the
offline pipeline run here, on the same machine. Clients are closed loops, each on its own
keep-alive connection (asyncio, raw HTTP/1.1, so that the generator costs little), one request
in flight per client; the answers are checked after the clock stops. On a shared machine the
load changes from minute to minute, so what is compared runs in turn, close together:
1. idle: --idle sentences through `ner(text)` and through the server by one client, in turn
   25 at a time;
2. --rounds rounds of `ner(texts)` offline (in a process of its own that does nothing else),
   then 32 clients sending the same texts (throughput, and p50/p95/p99 latency at 32 clients);
   the ratio is the median of the rounds';
3. 8 clients over --mid requests (latency);
4. 32 clients over --requests requests, the server's resident memory (VmRSS) every 1,000;
5. a soak of --soak requests from 32 clients, --bad of them bad (malformed JSON, wrong types,
   empty text, unknown parameters, too many texts), the good ones with random strategies and
   ignore_labels: no 5xx, each bad one its 4xx status, each good one exact.
Every good answer is compared with the offline pipeline's for the same text and parameters
(labels, words and offsets equal, scores within 1e-4).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import DEFAULT_DATA, REPO, SHAPES, random_model, read_texts

STRATEGIES = ("none", "simple", "first", "average", "max")
IGNORE_CHOICES = ([], ["O", "PER"], ["O", "B-LOC", "I-LOC"], ["O", "MISC", "ORG"])
BAD_REQUESTS = [  # (body, the status it must get)
    (b"{not json", 400),
    (b'{"inputs": 3}', 422),
    (b'{"inputs": ""}', 422),
    (b'{"inputs": []}', 422),
    (b'{"inputs": ["ok", 5]}', 422),
    (b'{"inputs": "x", "parameters": {"aggregation_strategy": "longest"}}', 422),
    (b'{"inputs": "x", "parameters": {"stride": -1}}', 422),
    (b'{"inputs": "x", "model": "other"}', 422),
    (json.dumps({"inputs": ["a"] * 65}).encode(), 413),  # over the default --max-inputs (64)
]


class Connection:
    """One keep-alive HTTP/1.1 connection posting JSON bodies to /."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST / HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()
        self.reader = self.writer = None


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in seconds)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": statistics.median(ms), "p95": q[94], "p99": q[98]}


def same_entities(got: list, want: list) -> bool:
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        if list(a) != list(b) or abs(a["score"] - b["score"]) > 1e-4:
            return False
        if any(a[k] != b[k] for k in a if k != "score"):
            return False
    return True


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


async def load(
    host: str,
    port: int,
    clients: int,
    requests: list[tuple[bytes, object]],
    server_pid: int | None = None,
) -> dict:
    """`clients` closed-loop clients over `requests` ((body, expected) pairs; expected: the
    entities, or the 4xx status of a bad request). With `server_pid`, the server's resident
    memory at the start and every 1,000 requests."""
    counter = itertools.count()
    memory = [(0, rss_mb(server_pid))] if server_pid else []
    latencies: list[float] = []
    outcome = {"ok": 0, "wrong": 0, "refused_as_expected": 0, "server_errors": 0, "other": 0}

    answered: list[tuple[int, int, bytes]] = []  # (request, status, body): checked after

    async def client() -> None:
        connection = Connection(host, port)
        while (i := next(counter)) < len(requests):
            started = time.perf_counter()
            status, data = await connection.post(requests[i][0])
            latencies.append(time.perf_counter() - started)
            answered.append((i, status, data))
            if server_pid and (i + 1) % 1000 == 0:
                memory.append((i + 1, rss_mb(server_pid)))
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    # The answers are checked once the clock has stopped: the generator shares the server's
    # cores, and its own work would otherwise count against the server.
    for i, status, data in answered:
        want = requests[i][1]
        if status >= 500:
            outcome["server_errors"] += 1
        elif isinstance(want, int):
            outcome["refused_as_expected" if status == want else "other"] += 1
        elif status == 200:
            outcome["ok" if same_entities(json.loads(data), want) else "wrong"] += 1
        else:
            outcome["other"] += 1
    return {"clients": clients, "requests": len(requests), "seconds": wall,
            "per_second": len(requests) / wall, **percentiles(latencies), **outcome,
            **({"rss_mb": memory} if memory else {})}  # fmt: skip


_pipeline = None


def pipeline_in_worker(model: str):
    """The offline pipeline, loaded once in the worker process."""
    global _pipeline
    if _pipeline is None:
        import minibert_ner

        _pipeline = minibert_ner.pipeline(model)
    return _pipeline


def offline(model: str, texts: list[str]) -> float:
    """In the worker: texts/s of ner(texts), after a warm-up pass over the same texts (the
    first pass over new shapes is slower; the server had its own before it is timed)."""
    ner = pipeline_in_worker(model)
    ner(texts)
    started = time.perf_counter()
    ner(texts)
    return len(texts) / (time.perf_counter() - started)


def answers(model: str, requests: list[tuple[str, dict]]) -> list:
    """In the worker: the pipeline's entities for each (text, parameters); one call per set of
    parameters."""
    ner = pipeline_in_worker(model)
    groups: dict[str, list[int]] = {}
    for i, (_, parameters) in enumerate(requests):
        groups.setdefault(json.dumps(parameters, sort_keys=True), []).append(i)
    out: list = [None] * len(requests)
    for key, members in groups.items():
        found = ner([requests[i][0] for i in members], **json.loads(key))
        for i, entities in zip(members, found, strict=True):
            out[i] = entities
    return out


def idle_pairs(
    ner, host: str, port: int, texts: list[str], block: int = 25
) -> tuple[list[float], list[float]]:
    """Latency of `ner(text)` and of the same text sent to the idle server by one client (a
    keep-alive connection). In turn, block by block: `block` texts direct, the same texts
    through the server, and so on, so that both see the same machine but neither runs while the
    other's threads are still busy (text by text, each process's torch threads, spinning after
    its own call, would slow the other's)."""
    connection = http.client.HTTPConnection(host, port)
    direct, served = [], []
    for start in range(0, len(texts), block):
        part = texts[start : start + block]
        for text in part:
            started = time.perf_counter()
            ner(text)
            direct.append(time.perf_counter() - started)
        for text in part:
            started = time.perf_counter()
            connection.request("POST", "/", body=json.dumps({"inputs": text}))
            response = connection.getresponse()
            response.read()
            served.append(time.perf_counter() - started)
            assert response.status == 200
    connection.close()
    return direct, served


def start_server(model: str, extra: list[str]) -> tuple[subprocess.Popen, str, int]:
    command = [sys.executable, "-m", "minibert_ner", "serve", "--model", model, "--port", "0",
               *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    found = re.search(r"http://([\d.]+):(\d+)", process.stderr.readline())
    assert found, "the server did not say where it listens"
    host, port = found.group(1), int(found.group(2))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return process, host, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server was not ready within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL file")
    parser.add_argument("--texts", type=int, help="use the first N sentences (default: all)")
    parser.add_argument("--model", help="hub id or folder (default: a random model of --shape)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="dslim")
    parser.add_argument("--rounds", type=int, default=3, help="offline / 32-client rounds")
    parser.add_argument("--requests", type=int, default=20000, help="the memory run (32 clients)")
    parser.add_argument("--mid", type=int, default=2000, help="the 8-client run")
    parser.add_argument("--idle", type=int, default=300, help="the 1-client pairs")
    parser.add_argument("--soak", type=int, default=2000, help="the soak's requests")
    parser.add_argument("--bad", type=float, default=0.1, help="the soak's share of bad ones")
    parser.add_argument("--server-args", default="", help="more serve flags, one string")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    import torch

    import minibert_ner

    def say(line: str) -> None:
        print(line, flush=True)

    texts = read_texts(args.data, args.texts)
    report: dict = {"texts": len(texts), "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(random_model(Path(tmp) / "model", shape=args.shape))
        report["model"] = args.model or f"random {args.shape}"
        ner = minibert_ner.pipeline(model)
        reference = ner(texts)
        # The offline runs and the expected answers come from a process of their own, which
        # does nothing else (as the server does nothing but serve).
        worker = multiprocessing.get_context("spawn").Pool(1)
        say(f"model {report['model']}; {len(texts)} CoNLL test sentences; torch threads "
            f"{report['torch_threads']} (this process and the server's)")  # fmt: skip

        def good(i: int) -> tuple[bytes, object]:
            k = i % len(texts)
            return json.dumps({"inputs": texts[k]}).encode(), reference[k]

        def show(name: str, r: dict) -> None:
            say(f"{name}: {r['requests']} requests, {r['per_second']:.1f} req/s, p50 "
                f"{r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, p99 {r['p99']:.1f} ms; exact "
                f"{r['ok']}, wrong {r['wrong']}, refused as expected {r['refused_as_expected']}, "
                f"other {r['other']}, 5xx {r['server_errors']}")  # fmt: skip

        process, host, port = start_server(model, args.server_args.split())
        try:
            # idle: one client beside the direct call, text by text
            direct, served = idle_pairs(ner, host, port, texts[: args.idle])
            report["idle"] = {"direct": percentiles(direct), "server": percentiles(served)}
            d, v = report["idle"]["direct"], report["idle"]["server"]
            say(f"idle, 1 client, {len(served)} texts: server p50 {v['p50']:.2f} ms (p95 "
                f"{v['p95']:.2f}, p99 {v['p99']:.2f}), direct ner(text) p50 {d['p50']:.2f} ms: "
                f"+{v['p50'] - d['p50']:.2f} ms")  # fmt: skip

            # throughput: offline ner(texts) and 32 clients over the same texts, in turn
            report["rounds"] = []
            for r in range(args.rounds):
                alone = worker.apply(offline, (model, texts))
                served = asyncio.run(load(host, port, 32, [good(i) for i in range(len(texts))]))
                report["rounds"].append({"offline": alone, "clients_32": served})
                say(f"round {r + 1}: offline ner(texts) {alone:.1f} texts/s; 32 clients "
                    f"{served['per_second']:.1f} req/s: {served['per_second'] / alone:.2f}x; "
                    f"p50 {served['p50']:.1f} ms, p95 {served['p95']:.1f} ms, p99 "
                    f"{served['p99']:.1f} ms; exact {served['ok']}/{served['requests']}")  # fmt: skip
            ratios = [x["clients_32"]["per_second"] / x["offline"] for x in report["rounds"]]
            report["throughput_ratio_median"] = statistics.median(ratios)

            report["clients_8"] = r8 = asyncio.run(
                load(host, port, 8, [good(i) for i in range(args.mid)])
            )
            show("8 clients", r8)
            report["memory_run"] = rm = asyncio.run(
                load(host, port, 32, [good(i) for i in range(args.requests)], process.pid)
            )
            show("32 clients, memory run", rm)
            memory = rm["rss_mb"]
            say("server RSS (MB) by requests served: "
                + ", ".join(f"{n}: {mb:.0f}" for n, mb in memory))  # fmt: skip

            # the soak: good requests with random parameters (answers from the pipeline called
            # directly with the same ones), bad ones mixed in
            rng = random.Random(0)
            plan: list[tuple[str, dict] | tuple[bytes, int]] = []
            for _ in range(args.soak):
                if rng.random() < args.bad:
                    plan.append(rng.choice(BAD_REQUESTS))
                    continue
                parameters: dict = {"aggregation_strategy": rng.choice(STRATEGIES)}
                if rng.random() < 0.3:
                    parameters["ignore_labels"] = rng.choice(IGNORE_CHOICES)
                plan.append((texts[rng.randrange(len(texts))], parameters))
            good_ones = [item for item in plan if isinstance(item[0], str)]
            wanted = iter(worker.apply(answers, (model, good_ones)))
            soak: list[tuple[bytes, object]] = [
                (json.dumps({"inputs": item[0], "parameters": item[1]}).encode(), next(wanted))
                if isinstance(item[0], str)
                else item
                for item in plan
            ]
            report["soak"] = asyncio.run(load(host, port, 32, soak))
            show(f"soak, 32 clients, {args.bad:.0%} bad", report["soak"])
        finally:
            worker.terminate()
            process.terminate()
            report["server_exit_status"] = process.wait(60)
    say(f"32 clients / offline, median of {args.rounds} rounds: "
        f"{report['throughput_ratio_median']:.2f}x")  # fmt: skip
    say(f"server exit status after SIGTERM: {report['server_exit_status']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
