"""Forward-pass time of our model beside transformers', interleaved in one process, per shape.

    python scripts/forward_ratio.py [--limit N] [--repeat R] [--shapes distilbert,deberta-v3-base]

For each shape, a random token classifier (built as `scripts/common.py` builds them) is loaded
twice, as ours and as transformers' `AutoModelForTokenClassification`, and both run the same
length-sorted batches of 32 CoNLL test sentences (MiniLM's WordPiece tokenization), float32, no
gradients. The two alternate, `repeat` times each, and the best time of each counts: on a shared,
noisy machine that compares them under the same load. A DeBERTa ratio no lower than DistilBERT's
says our relative-position terms cost no more, relative to the rest of the model, than
transformers' do.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, random_deberta_model, random_model, read_texts

BUILDERS = {"distilbert": random_model, "deberta-v3-base": random_deberta_model}


def measure(shape: str, texts: list[str], repeat: int, batch_size: int) -> dict:
    import torch
    import transformers

    from minibert_ner import Tokenizer, load_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = BUILDERS[shape](Path(tmp))
        ours = load_model(folder)
        theirs = transformers.AutoModelForTokenClassification.from_pretrained(folder).eval()
        tokenizer = Tokenizer.from_pretrained(folder)
    encodings = sorted(tokenizer.encode_batch(texts), key=lambda e: len(e.ids))
    batches = [
        tokenizer.to_tensors(encodings[i : i + batch_size])
        for i in range(0, len(encodings), batch_size)
    ]

    def run(model, keyword: bool) -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for b in batches:
                if keyword:
                    model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
                else:
                    model(**b)
        return time.perf_counter() - t0

    run(ours, False), run(theirs, True)  # warm-up
    times: dict[str, list[float]] = {"ours": [], "transformers": []}
    for _ in range(repeat):
        times["ours"].append(run(ours, False))
        times["transformers"].append(run(theirs, True))
    best = {name: min(values) for name, values in times.items()}
    return {
        "shape": shape,
        "sentences": len(texts),
        "wordpieces": sum(len(e.ids) for e in encodings),
        "ours_s": best["ours"],
        "transformers_s": best["transformers"],
        "ratio": best["transformers"] / best["ours"],
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL file (default: test)")
    p.add_argument("--limit", type=int, default=500, help="first N sentences (default 500)")
    p.add_argument("--repeat", type=int, default=3, help="alternating runs of each (default 3)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--shapes", default=",".join(BUILDERS), help="comma-separated")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args()
    texts = read_texts(args.data, args.limit)
    results = [
        measure(shape, texts, args.repeat, args.batch_size) for shape in args.shapes.split(",")
    ]
    print(f"{'shape':<18}{'wordpieces':>11}{'ours s':>9}{'transformers s':>16}{'ratio':>8}")
    for r in results:
        print(f"{r['shape']:<18}{r['wordpieces']:>11}{r['ours_s']:>9.2f}"
              f"{r['transformers_s']:>16.2f}{r['ratio']:>7.2f}x")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
