"""One text through the gliner package and through ours, on the same GLiNER model: both answers.

    python scripts/gliner_side_by_side.py --model tests/fixtures/gliner/bert_span \\
        --labels person,location,organization --threshold 0.5 \\
        "Barack Obama visited Berlin on Monday and met Angela Merkel at the Bundestag."

gliner runs in its own environment (--gliner-python; made as tests/fixtures/gliner/
make_fixtures.py says), from the model's parent folder (it reads a relative model_name from the
working directory).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from common import REPO

GLINER = """
import json, sys
from gliner import GLiNER
model = GLiNER.from_pretrained(sys.argv[1], local_files_only=True)
print(json.dumps(model.predict_entities(sys.argv[2], sys.argv[3].split(","),
                                        threshold=float(sys.argv[4]))))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", help="the text (or --file)")
    parser.add_argument("--file", type=Path, help="read the text from this UTF-8 file")
    parser.add_argument("--model", type=Path, default=REPO / "tests/fixtures/gliner/bert_span")
    parser.add_argument("--labels", default="person,location,organization")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--gliner-python", default="/work/venvs/gliner/bin/python")
    args = parser.parse_args()
    if (args.text is None) == (args.file is None):
        parser.error("give a text or --file")
    text = args.text if args.file is None else args.file.read_text("utf-8")
    model = args.model.resolve()
    command = [args.gliner_python, "-c", GLINER, model.name, text, args.labels,
               str(args.threshold)]  # fmt: skip
    done = subprocess.run(command, cwd=model.parent, capture_output=True, text=True, check=True)
    theirs = json.loads(done.stdout.strip().splitlines()[-1])

    from minibert_ner import GLiNER

    ours = GLiNER.from_pretrained(model).predict_entities(
        text, args.labels.split(","), threshold=args.threshold
    )
    if args.file is not None:  # a long text: where each answer stops
        from minibert_ner.gliner.api import split_words

        starts = [start for _, start, _ in split_words(text)]
        for name, found in (("gliner", theirs), ("minibert-ner", ours)):
            last = max((starts.index(e["start"]) for e in found), default=-1)
            print(f"{name}: {len(found)} entities in {len(starts)} words; "
                  f"the last starts at word {last}")  # fmt: skip
        return
    print(f"{'gliner 0.2.29':<48} | minibert-ner")
    for a, b in zip(theirs, ours, strict=False):
        left = (
            f"{a['start']:>3}:{a['end']:<3} {a['label']:<12} {a['text'][:16]:<16} {a['score']:.4f}"
        )
        right = (
            f"{b['start']:>3}:{b['end']:<3} {b['label']:<12} {b['text'][:16]:<16} {b['score']:.4f}"
        )
        print(f"{left:<48} | {right}")
    same = [(e["start"], e["end"], e["label"]) for e in theirs] == [
        (e["start"], e["end"], e["label"]) for e in ours
    ]
    largest = max(
        (abs(a["score"] - b["score"]) for a, b in zip(theirs, ours, strict=False)), default=0
    )
    print(f"\n{len(theirs)} and {len(ours)} entities; same spans and labels: {same}; "
          f"largest score difference {largest:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
