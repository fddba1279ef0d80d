"""GLiNER throughput and peak memory, ours against the gliner package's `inference`, on the CPU.

The model has gliner_small-v2.1's shape (deberta-v3-small: 6 layers, 768 wide, 12 heads, 128,004
embedding rows; hidden_size 768, max_width 12, one BiLSTM layer) with random weights, made and
saved by gliner itself; the tokenizer is a DeBERTa-v3-style Unigram learnt on CoNLL-2003 train
(8,000 real pieces, padded to deberta-v3's 128,000). Texts: CoNLL-2003 test sentences; 4 labels.
Each measurement is a fresh process (gliner's in its own environment), the two alternating, so
that a machine shared with other work slows both alike; the table gives the median of the runs.

    python scripts/gliner_speed.py --gliner-python /work/venvs/gliner/bin/python \\
        --texts 256 --batch-sizes 8 32 --repeats 3

The gliner environment is made as tests/fixtures/gliner/make_fixtures.py says.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CONLL_DIR, REPO, read_texts

LABELS = ["person", "organization", "location", "event"]


def fixtures_module():
    path = REPO / "tests" / "fixtures" / "gliner" / "make_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(out: Path) -> None:
    """(In gliner's environment) the gliner_small-v2.1-shape model, saved by gliner."""
    import torch
    import transformers
    from gliner import GLiNER

    torch.manual_seed(0)
    backbone = out / "backbone"
    fixtures_module().deberta_tokenizer(backbone, vocab_size=8000)
    path = backbone / "tokenizer.json"
    tokenizer = json.loads(path.read_text("utf-8"))
    vocab = tokenizer["model"]["vocab"]
    vocab += [[f"▁unused{i}", -100.0] for i in range(128000 - len(vocab))]  # deberta-v3's size
    for added in tokenizer["added_tokens"]:
        if added["content"] == "[MASK]":
            added["id"] = len(vocab)
    path.write_text(json.dumps(tokenizer), "utf-8")
    config = transformers.DebertaV2Config(
        vocab_size=128100, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
        intermediate_size=3072, relative_attention=True, position_buckets=256,
        max_relative_positions=-1, max_position_embeddings=512, position_biased_input=False,
        pos_att_type=["p2c", "c2p"], share_att_key=True, norm_rel_ebd="layer_norm",
        type_vocab_size=0, hidden_act="gelu", layer_norm_eps=1e-7, pad_token_id=0,
    )  # fmt: skip
    transformers.DebertaV2Model(config).save_pretrained(backbone, safe_serialization=True)
    model = GLiNER.from_config(
        {"model_name": str(backbone), "span_mode": "markerV0", "max_width": 12,
         "hidden_size": 768, "num_rnn_layers": 1, "dropout": 0.4, "max_len": 384},
        backbone_from_pretrained=True, local_files_only=True,
    )  # fmt: skip
    model.save_pretrained(out / "gliner", safe_serialization=True)


def measure(engine: str, folder: Path, texts: list[str], batch_size: int) -> dict:
    """(In a fresh process) load, warm up, label every text once: texts/s and peak RSS."""
    import torch

    torch.manual_seed(0)
    if engine == "gliner":
        from gliner import GLiNER
    else:
        from minibert_ner import GLiNER
    kwargs = {"local_files_only": True} if engine == "gliner" else {}
    model = GLiNER.from_pretrained(folder, **kwargs)
    model.inference(texts[:batch_size], LABELS, batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    out = model.inference(texts, LABELS, batch_size=batch_size, threshold=0.5)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"texts_per_s": len(texts) / seconds, "peak_rss_mb": peak_mb,
            "entities": sum(len(e) for e in out), "threads": torch.get_num_threads()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gliner-python", default="/work/venvs/gliner/bin/python")
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, help="a folder from an earlier run (skips build)")
    parser.add_argument("--_build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._build:
        return build(args._build)
    texts = read_texts(CONLL_DIR / "test.txt", args.texts)
    if args._measure:
        engine, folder, batch = args._measure
        return print(json.dumps(measure(engine, Path(folder), texts, int(batch))))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    tmp = tempfile.TemporaryDirectory()
    folder = args.model or Path(tmp.name)
    script = str(Path(__file__).resolve())
    if args.model is None:
        subprocess.run([args.gliner_python, script, "--_build", str(folder)], check=True, env=env)
    pythons = {"gliner": args.gliner_python, "ours": sys.executable}
    runs: dict[tuple[str, int], list[dict]] = {}
    for batch in args.batch_sizes:
        for _ in range(args.repeats):
            for engine in ("gliner", "ours"):  # alternating
                command = [pythons[engine], script, "--texts", str(args.texts),
                           "--_measure", engine, str(folder / "gliner"), str(batch)]  # fmt: skip
                line = subprocess.run(command, check=True, env=env, capture_output=True, text=True)
                result = json.loads(line.stdout.strip().splitlines()[-1])
                runs.setdefault((engine, batch), []).append(result)
                print(engine, batch, result, file=sys.stderr)
    print(f"{args.texts} CoNLL-2003 test sentences, {len(LABELS)} labels, CPU "
          f"({runs[('ours', args.batch_sizes[0])][0]['threads']} threads), median of "
          f"{args.repeats} runs each\n")  # fmt: skip
    print("| batch | gliner texts/s | ours texts/s | speed-up | gliner peak RSS | ours peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch in args.batch_sizes:
        g, o = runs[("gliner", batch)], runs[("ours", batch)]
        gs = statistics.median(r["texts_per_s"] for r in g)
        os_ = statistics.median(r["texts_per_s"] for r in o)
        gm = statistics.median(r["peak_rss_mb"] for r in g)
        om = statistics.median(r["peak_rss_mb"] for r in o)
        print(f"| {batch} | {gs:.1f} | {os_:.1f} | {os_ / gs:.2f}x | {gm:.0f} MB | {om:.0f} MB |")


if __name__ == "__main__":
    main()
