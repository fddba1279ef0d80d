"""One long document through minibert-ner and through transformers' pipeline: who labels it all?

    python scripts/long_text.py --model MODEL [--words 20000] [--data ../shared/data/conll2003/test.txt]

The document is the first N words of a CoNLL file joined by spaces. transformers (without
`stride`) cuts the input at the model's 512 positions, silently; minibert-ner runs windows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import DEFAULT_DATA

import minibert_ner
from minibert_ner.training.conll import read_conll


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--words", type=int, default=20000)
    args = p.parse_args()

    words = [w for s in read_conll(args.data) for w in s.words][: args.words]
    text = " ".join(words)
    ner = minibert_ner.pipeline(args.model)
    t0 = time.perf_counter()
    entities = ner(text)
    seconds = time.perf_counter() - t0
    tokens = len(ner.tokenizer.encode(text).ids)
    print(f"minibert-ner: {len(text)} characters, {tokens} tokens, {len(entities)} entities, "
          f"last ends at character {entities[-1]['end']} ({seconds:.1f} s)")  # fmt: skip
    try:
        from transformers import pipeline as hf_pipeline
    except ImportError:
        return
    hf = hf_pipeline("token-classification", model=args.model, aggregation_strategy="simple")
    theirs = hf(text)
    print(f"transformers: {len(theirs)} entities, last ends at character {theirs[-1]['end']}")


if __name__ == "__main__":
    main()
