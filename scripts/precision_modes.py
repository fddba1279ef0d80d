"""Precision modes against float32: answers, CoNLL F1, speed and peak memory, in one run.

    python scripts/precision_modes.py --model runs/minilm-conll       # the fine-tuned MiniLM
    python scripts/precision_modes.py --shape dslim --parts speed,memory   # the dslim shape
    python scripts/precision_modes.py --families                      # every family's fixture
    python scripts/precision_modes.py --model runs/minilm-conll --study int8   # which layer

The modes (minibert_ner/inference/precision.py): float32, bfloat16, bfloat16-mixed, int8
(torchao), and int8-ao: torch.ao's dynamic quantization (the x86/fbgemm engine's VNNI kernels;
deprecated in torch 2.13, measured here only, not a pipeline option). `bfloat16-mixed:N` is the
mixed mode with bfloat16 matmuls from block N on (the pipeline's mode starts where
precision.MODES says).

- answers: each mode labels the CoNLL test sentences (words joined by spaces). `identical` is the
  share of sentences whose entities (type, start, end) equal float32's; `entity F1` scores the
  mode's entities against float32's as if they were gold; `F1` is the CoNLL test F1 against the
  gold labels (the pipeline's first-subword word labels, `evaluate`'s score).
- speed: every mode's pipeline loaded in this one process, each labelling the same texts in turn,
  `--rounds` times (alternating, so that every mode sees the same load on a shared machine); the
  ratio is float32's median seconds over the mode's.
- memory: each mode in a child process of its own (load, then label the texts): peak RSS.
- --families: every family's random fixture (as the tests build them, tests/helpers) through
  every mode, answers only.
- --study MODE: that mode on one block or one kind of linear layer at a time, the rest float32:
  which part costs the answers.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CONLL_DIR, REPO, random_model, read_texts

MODES = ("float32", "bfloat16", "bfloat16-mixed", "int8", "int8-ao")


def encoder_linears(model) -> list[str]:
    """The names of the encoder's linear layers (the head stays float32 in every mode)."""
    from torch import nn

    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "classifier"]


def load(folder: str, mode: str, only: list[str] | None = None):
    """The pipeline for `mode`; `only`: an int8 mode on these linear layers only (--study)."""
    import minibert_ner

    if only is None and mode.startswith("bfloat16-mixed:"):  # from block N on, not the default
        import torch

        from minibert_ner.checkpoint import convert_model

        ner = minibert_ner.pipeline(folder, device="cpu")
        first = int(mode.partition(":")[2])
        model = convert_model(ner.model, torch.float32, torch.bfloat16, first)
        return minibert_ner.NERPipeline(model, ner.tokenizer, ner.options)
    if only is None and mode in ("float32", "bfloat16", "bfloat16-mixed"):
        return minibert_ner.pipeline(folder, dtype=mode, device="cpu")
    if only is None and mode == "int8":
        return minibert_ner.pipeline(folder, quantize="int8", device="cpu")
    ner = minibert_ner.pipeline(folder, device="cpu")
    names = only if only is not None else encoder_linears(ner.model)
    if mode == "int8-ao":
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        quantize_dynamic(ner.model, {n: default_dynamic_qconfig for n in names}, inplace=True)
    elif mode == "int8":
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        config = Int8DynamicActivationInt8WeightConfig()
        quantize_(ner.model, config, filter_fn=lambda m, n: n in names)
    else:
        raise SystemExit(f"--study takes an int8 mode (int8, int8-ao), not {mode}")
    return ner


def spans(entities: list) -> set[tuple]:
    return {(e["entity_group"], e["start"], e["end"]) for e in entities}


def answers(folder: str, modes: list[str], data: Path, limit: int | None) -> dict:
    """Each mode's entities against float32's, and its CoNLL F1 against gold."""
    from minibert_ner.training.conll import read_conll
    from minibert_ner.training.metrics import evaluate

    sentences = read_conll(data)[:limit]
    texts = [" ".join(s.words) for s in sentences]
    gold = [s.labels for s in sentences]
    out, reference = {}, None
    for mode in modes:
        ner = load(folder, mode) if isinstance(mode, str) else mode[1]()
        name = mode if isinstance(mode, str) else mode[0]
        entities = [spans(e) for e in ner(texts)]
        f1 = evaluate(gold, ner.label_words([s.words for s in sentences])).f1
        if reference is None:
            reference = (entities, f1)
        out[name] = compare(reference, entities, f1)
    return out


def compare(reference: tuple[list[set], float], entities: list[set], f1: float) -> dict:
    """identical share, entity-level F1 against the reference's entities, F1 and its delta."""
    ref, ref_f1 = reference
    same = sum(a == b for a, b in zip(ref, entities, strict=True))
    hits = sum(len(a & b) for a, b in zip(ref, entities, strict=True))
    n_ref, n_got = sum(map(len, ref)), sum(map(len, entities))
    p, r = hits / max(n_got, 1), hits / max(n_ref, 1)
    return {
        "identical": same / len(ref),
        "differ": len(ref) - same,
        "entity_f1": 2 * p * r / (p + r) if p + r else 1.0,
        "f1": f1,
        "f1_delta_points": 100 * (f1 - ref_f1),
    }


def speed(folder: str, modes: list[str], texts: list[str], rounds: int) -> dict:
    """Seconds per mode, the modes taking turns round after round in this process."""
    pipelines = {mode: load(folder, mode) for mode in modes}
    for ner in pipelines.values():
        ner(texts[:64])  # warm-up
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    for r in range(rounds):
        for mode, ner in pipelines.items():
            t0 = time.perf_counter()
            ner(texts)
            seconds[mode].append(time.perf_counter() - t0)
        print(f"round {r + 1}: " + ", ".join(f"{m} {s[-1]:.2f} s" for m, s in seconds.items()),
              file=sys.stderr)  # fmt: skip
    base = statistics.median(seconds["float32"])
    return {
        mode: {"seconds": statistics.median(s), "speed": base / statistics.median(s)}
        for mode, s in seconds.items()
    }


def memory(folder: str, modes: list[str], data: Path, limit: int | None) -> dict:
    """Peak RSS (MB) of a child process per mode that loads the model and labels the texts."""
    out = {}
    for mode in modes:
        cmd = [sys.executable, __file__, "--child-memory", mode, "--model", folder,
               "--data", str(data)] + (["--limit", str(limit)] if limit else [])  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def child_memory(folder: str, mode: str, data: Path, limit: int | None) -> None:
    import minibert_ner  # noqa: F401 (imported before the clock starts: load_s is the load's)

    texts = read_texts(data, limit)
    t0 = time.perf_counter()
    ner = load(folder, mode)
    load_s = time.perf_counter() - t0
    ner(texts)
    print(json.dumps({"peak_mb": peak_rss_mb(), "load_s": load_s}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec (ru_maxrss
    keeps the parent's peak at the fork, so a child of a large parent would report that)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def family_fixtures(folder: Path) -> dict[str, Path]:
    """Every family's random NER fixture, built as the tests build theirs (tests/helpers)."""
    sys.path.insert(0, str(REPO))
    from minibert_ner import Tokenizer
    from tests.helpers.checkpoints import (
        BERT_NER_LABELS,
        calibrate_head,
        copy_tokenizer,
        make_ner_checkpoint,
        minilm_dir,
    )
    from tests.helpers.deberta import make_deberta_checkpoint, train_deberta_v3_tokenizer
    from tests.helpers.tokenizers import train_byte_level_bpe, train_unigram

    minilm = minilm_dir()
    tokenizers = {
        "roberta": train_byte_level_bpe(folder / "tokenizer-bpe"),
        "xlm-roberta": train_unigram(folder / "tokenizer-unigram"),
        "camembert": train_unigram(folder / "tokenizer-camembert", "CamembertTokenizer"),
    }
    out = {}
    for family in ("distilbert", "bert", "roberta", "xlm-roberta", "camembert", "electra"):
        out[family] = make_ner_checkpoint(
            folder / family, family, tokenizer_from=tokenizers.get(family, minilm)
        )
    deberta_tok = train_deberta_v3_tokenizer(folder / "tokenizer-deberta")
    vocab_size = Tokenizer.from_pretrained(deberta_tok).vocab_size
    for style in ("v3", "v2"):
        path = folder / f"deberta-{style}"
        make_deberta_checkpoint(path, style, labels=BERT_NER_LABELS, vocab_size=vocab_size,
                                max_position_embeddings=512)  # fmt: skip
        copy_tokenizer(deberta_tok, path)
        out[f"deberta-{style}"] = calibrate_head(path)
    return out


def study(folder: str, mode: str, data: Path, limit: int | None) -> dict:
    """`mode` on one block's linear layers at a time, then on one kind of layer in every block."""
    from minibert_ner import pipeline

    names = encoder_linears(pipeline(folder).model)
    parts: dict[str, list[str]] = {}
    for n in names:
        block = n.split(".")[1] if n.startswith("layers.") else "embeddings"
        parts.setdefault(f"block {block}", []).append(n)
        kind = n.split(".", 2)[-1] if n.startswith("layers.") else n
        parts.setdefault(kind, []).append(n)
    parts["all"] = names
    runs = [("float32", lambda: load(folder, "float32"))]
    runs += [(part, lambda ns=ns: load(folder, mode, ns)) for part, ns in parts.items()]
    return answers(folder, runs, data, limit)


def table(title: str, rows: dict, columns: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}")
    print(f"{'':<22}" + "".join(f"{head:>14}" for head, _, _ in columns))
    for name, row in rows.items():
        cells = "".join(
            f"{format(row[key], spec) if key in row else '-':>14}" for _, key, spec in columns
        )
        print(f"{name:<22}{cells}")


ANSWER_COLUMNS = [("identical", "identical", ".2%"), ("differ", "differ", "d"),
                  ("entity F1", "entity_f1", ".4f"), ("F1", "f1", ".4f"),
                  ("F1 delta pts", "f1_delta_points", "+.2f")]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", help="a model folder (default: a random model of --shape)")
    p.add_argument("--shape", default="dslim", choices=("dslim", "minilm", "small"))
    p.add_argument("--data", type=Path, default=CONLL_DIR / "test.txt")
    p.add_argument("--limit", type=int, default=None, help="first N sentences only")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--parts", default="answers,speed,memory", help="what to measure")
    p.add_argument("--families", action="store_true", help="every family's fixture, answers")
    p.add_argument("--study", metavar="MODE", help="which layers cost MODE its answers")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--child-memory", help=argparse.SUPPRESS)
    args = p.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    tmp = tempfile.TemporaryDirectory()
    folder = args.model
    if folder is None and not args.families:
        folder = str(random_model(Path(tmp.name) / "model", shape=args.shape))
    if args.child_memory:
        child_memory(folder, args.child_memory, args.data, args.limit)
        return

    import torch

    from minibert_ner.inference.precision import cpu_features

    report: dict = {
        "model": args.model or ("families" if args.families else f"random {args.shape} shape"),
        "torch": torch.__version__,
        "cpu": sorted(cpu_features()),
        "sentences": len(read_texts(args.data, args.limit)),
    }
    print(f"model: {report['model']}; CPU features: {', '.join(report['cpu'])}; "
          f"{report['sentences']} sentences of {args.data.name}")  # fmt: skip
    if args.study:
        report["study"] = study(folder, args.study, args.data, args.limit)
        table(f"{args.study} on one part, the rest float32", report["study"], ANSWER_COLUMNS)
    elif args.families:
        report["families"] = {}
        for family, path in family_fixtures(Path(tmp.name) / "families").items():
            rows = answers(str(path), modes, args.data, args.limit)
            report["families"][family] = rows
            table(f"{family} (random fixture)", rows, ANSWER_COLUMNS)
    else:
        parts = args.parts.split(",")
        if "answers" in parts:
            report["answers"] = answers(folder, modes, args.data, args.limit)
            table("answers against float32", report["answers"], ANSWER_COLUMNS)
        if "memory" in parts:  # first: the children are measured before this process grows
            report["memory"] = memory(folder, modes, args.data, args.limit)
        if "speed" in parts:
            report["speed"] = speed(folder, modes, read_texts(args.data, args.limit), args.rounds)
        if "speed" in parts or "memory" in parts:
            rows = {m: report.get("speed", {}).get(m, {}) | report.get("memory", {}).get(m, {})
                    for m in modes}  # fmt: skip
            table("speed (alternating, one process) and peak memory (a process each)", rows,
                  [("seconds", "seconds", ".2f"), ("x float32", "speed", ".2f"),
                   ("peak MB", "peak_mb", ".0f"), ("load s", "load_s", ".2f")])  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
