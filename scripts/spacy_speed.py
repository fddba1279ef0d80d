"""The spaCy component's speed beside our bare pipeline and spacy-huggingface-pipelines'
`hf_token_pipe`, and its spans beside hf_token_pipe's, on the CoNLL test sentences.

    python scripts/spacy_speed.py [--model M] [--shape minilm] [--limit N] [--batch-size 1000]

One process, one random checkpoint (or --model) for all three, the same aggregation strategy
("simple"), alignment ("strict") and rows per forward pass (32):
- bare: `ner(texts)`, the whole corpus in one call (tokenizing, packed batches, entities);
- minibert_ner: `nlp.pipe(texts, batch_size=B)` with a blank English pipeline (spaCy's tokenizer,
  then `NERPipeline.label` on each batch of B docs, then spans);
- hf_token_pipe: the same with spacy-huggingface-pipelines' component, which runs transformers'
  pipeline (batch_size=32 through its `kwargs`).
Each runs `--repeats` times, interleaved (the machine may be shared); the medians are reported,
with the ratios. Then the spans: for every doc, minibert_ner's `doc.ents` beside
hf_token_pipe's, as (start, end, label); hf_token_pipe skips (with a warning) what it cannot
align, minibert_ner lists it in `doc._.minibert_unaligned`.

Needs the spacy extra and spacy-huggingface-pipelines (pip install spacy-huggingface-pipelines;
it pins transformers<5 but runs with the transformers this project tests with).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from common import DEFAULT_DATA, SHAPES, default_model, random_model, read_texts

ROWS = 32  # rows per forward pass, both pipelines
STRATEGY = "simple"


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="hub id or folder (default: a random model of --shape)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="minilm",
                        help="the random model's shape (common.SHAPES)")  # fmt: skip
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL file")
    parser.add_argument("--limit", type=int, help="only the first N sentences")
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="docs per nlp.pipe batch (default: spaCy's own, nlp.batch_size)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import spacy
    import torch

    import minibert_ner

    texts = read_texts(args.data, args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model() or str(random_model(Path(tmp), shape=args.shape))
        ner = minibert_ner.pipeline(model, aggregation_strategy=STRATEGY, batch_size=ROWS,
                                    device="cpu")  # fmt: skip
        ours = spacy.blank("en")
        ours.add_pipe("minibert_ner", config={"model": model, "aggregation_strategy": STRATEGY,
                                              "batch_size": ROWS, "device": "cpu"})  # fmt: skip
        hf = spacy.blank("en")
        hf.add_pipe("hf_token_pipe", config={"model": model, "aggregation_strategy": STRATEGY,
                                             "kwargs": {"batch_size": ROWS}})  # fmt: skip
        tokenizer_only = spacy.blank("en")
        runs = {
            "bare pipeline, ner(texts)": lambda: ner(texts),
            "spaCy's tokenizer alone": lambda: list(tokenizer_only.pipe(texts, batch_size=args.batch_size)),
            "minibert_ner, nlp.pipe": lambda: list(ours.pipe(texts, batch_size=args.batch_size)),
            "hf_token_pipe, nlp.pipe": lambda: list(hf.pipe(texts, batch_size=args.batch_size)),
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in runs}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hf_token_pipe warns once per skipped entity
            warm = texts[:64]
            ner(warm), list(ours.pipe(warm)), list(hf.pipe(warm))  # load, allocate
            for _ in range(args.repeats):
                for name, run in runs.items():
                    times[name].append(seconds(run))
            ours_docs = list(ours.pipe(texts, batch_size=args.batch_size))
            hf_docs = list(hf.pipe(texts, batch_size=args.batch_size))

    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"{len(texts)} texts from {args.data.name}; model {args.model or args.shape + ' (random)'}; "
          f"torch threads {torch.get_num_threads()}; nlp.pipe batch_size {args.batch_size}; "
          f"{args.repeats} runs each, interleaved; medians")  # fmt: skip
    for name, t in median.items():
        print(
            f"  {name:28s} {t:8.2f} s  {len(texts) / t:8.1f} texts/s   runs: "
            + ", ".join(f"{x:.2f}" for x in times[name])
        )
    bare, spacy_ours = median["bare pipeline, ner(texts)"], median["minibert_ner, nlp.pipe"]
    print(f"  minibert_ner / bare pipeline: {spacy_ours / bare:.3f} (time)")
    print(
        f"  hf_token_pipe / minibert_ner: {median['hf_token_pipe, nlp.pipe'] / spacy_ours:.2f} (time)"
    )

    same_docs = same = only_ours = only_hf = 0
    examples = []
    for o, h in zip(ours_docs, hf_docs, strict=True):
        a = {(e.start_char, e.end_char, e.label_) for e in o.ents}
        b = {(e.start_char, e.end_char, e.label_) for e in h.ents}
        same_docs += a == b
        same, only_ours, only_hf = same + len(a & b), only_ours + len(a - b), only_hf + len(b - a)
        if a != b and len(examples) < 3:
            examples.append((o.text, sorted(a - b), sorted(b - a)))
    unaligned = sum(len(doc._.minibert_unaligned) for doc in ours_docs)
    print(
        f"spans: {same_docs} of {len(texts)} docs the same; {same} spans in both, "
        f"{only_ours} only minibert_ner's, {only_hf} only hf_token_pipe's; "
        f"minibert_ner reported {unaligned} entities it could not align (strict)"
    )
    for text, a, b in examples:
        print(f"  {text[:80]!r}: only ours {a}, only hf {b}")


if __name__ == "__main__":
    main()
