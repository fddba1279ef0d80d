"""The server's metrics, in Prometheus' text format (GET /metrics).

Counters and histograms are plain integers and floats, changed only on the event loop's thread
(the model's thread hands its counts back with each batch), so no lock is needed.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Sequence

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS", "Histogram", "Metrics"]

LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # s
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # texts per batch


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus reads them."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, total = [], 0
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            total += count
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            out.append(f'{name}_bucket{{le="{le}"}} {total}')
        return [*out, f"{name}_sum {self.sum!r}", f"{name}_count {self.count}"]


class Metrics:
    """What the server counts. `queue_depth` is read when the metrics are rendered."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0) -> None:
        self.queue_depth = queue_depth
        self.requests: Counter[tuple[str, int]] = Counter()  # (path, HTTP status) -> answered
        self.in_flight = 0  # label requests received and not yet answered
        self.latency = Histogram(LATENCY_BUCKETS)  # label requests, received to answered
        self.batch_texts = Histogram(BATCH_BUCKETS)  # texts per batch put through the model
        self.texts = 0  # texts labelled
        self.tokens = 0  # their tokens, special tokens included

    def render(self) -> str:
        p = "minibert_ner_"
        lines = [
            f"# HELP {p}requests_total HTTP requests answered, by path and status.",
            f"# TYPE {p}requests_total counter",
        ]
        lines += [
            f'{p}requests_total{{path="{path}",status="{status}"}} {n}'
            for (path, status), n in sorted(self.requests.items())
        ]
        lines += [
            f"# HELP {p}request_duration_seconds Label requests (POST /), received to answered.",
            f"# TYPE {p}request_duration_seconds histogram",
            *self.latency.lines(f"{p}request_duration_seconds"),
            f"# HELP {p}batch_texts Texts per batch put through the model together.",
            f"# TYPE {p}batch_texts histogram",
            *self.batch_texts.lines(f"{p}batch_texts"),
            f"# HELP {p}queue_depth Label requests waiting for the model.",
            f"# TYPE {p}queue_depth gauge",
            f"{p}queue_depth {self.queue_depth()}",
            f"# HELP {p}requests_in_flight Label requests received and not yet answered.",
            f"# TYPE {p}requests_in_flight gauge",
            f"{p}requests_in_flight {self.in_flight}",
            f"# HELP {p}texts_total Texts labelled.",
            f"# TYPE {p}texts_total counter",
            f"{p}texts_total {self.texts}",
            f"# HELP {p}tokens_total Tokens labelled (special tokens included).",
            f"# TYPE {p}tokens_total counter",
            f"{p}tokens_total {self.tokens}",
        ]
        return "\n".join(lines) + "\n"
