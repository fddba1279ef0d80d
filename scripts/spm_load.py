"""Load time of a tokenizer from `spm.model` alone: ours (minibert_ner/sentencepiece.py, pure
Python) beside transformers' (protobuf), at deberta-v3-base's and mdeberta-v3-base's vocabulary
sizes, with equal ids on CoNLL test sentences checked first.

The model: SentencePiece trained on CoNLL-2003 train sentences (deberta-v3's special pieces,
nmt_nfkc), its vocabulary then grown with made-up pieces to the size asked (the file's layout is
what the reading time depends on). Needs the test extra (sentencepiece, protobuf, transformers).

    python scripts/spm_load.py --pieces 128000 250101 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from pathlib import Path

from common import CONLL_DIR, read_texts


def spm_folder(folder: Path, pieces: int) -> Path:
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(read_texts(CONLL_DIR / "train.txt", limit=3000)),
        model_writer=model, vocab_size=2000, num_threads=1, minloglevel=2,
        pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]",
    )  # fmt: skip
    proto = sentencepiece_model_pb2.ModelProto.FromString(model.getvalue())
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyzäöüéèßçñ"
    for i in range(pieces - len(proto.pieces)):
        piece = proto.pieces.add()
        piece.piece = "▁" + "".join(rng.choices(letters, k=rng.randint(2, 9))) + str(i)
        piece.score = -10.0 - 10 * rng.random()
    folder.mkdir()
    (folder / "spm.model").write_bytes(proto.SerializeToString())
    (folder / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, nargs="+", default=[128000, 250101])
    parser.add_argument("--repeat", type=int, default=3, help="loads of each, alternating")
    args = parser.parse_args()

    import transformers

    from minibert_ner import Tokenizer

    texts = read_texts(CONLL_DIR / "test.txt", limit=500)
    print(f"{'pieces':>8} {'file MB':>8} {'ours s':>8} {'transformers s':>15} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.pieces:
            folder = spm_folder(Path(tmp) / str(n), n)
            ours, theirs = (
                Tokenizer.from_pretrained(folder),
                transformers.AutoTokenizer.from_pretrained(folder),
            )
            assert [e.ids for e in ours.encode_batch(texts)] == theirs(texts)["input_ids"]
            best = {"ours": float("inf"), "transformers": float("inf")}
            for _ in range(args.repeat):
                for name, load in (("ours", Tokenizer.from_pretrained),
                                   ("transformers", transformers.AutoTokenizer.from_pretrained)):  # fmt: skip
                    start = time.perf_counter()
                    load(folder)
                    best[name] = min(best[name], time.perf_counter() - start)
            size = (folder / "spm.model").stat().st_size / 1e6
            ratio = best["ours"] / best["transformers"]
            print(
                f"{n:>8} {size:>8.1f} {best['ours']:>8.2f} {best['transformers']:>15.2f} {ratio:>6.2f}x"
            )


if __name__ == "__main__":
    main()
