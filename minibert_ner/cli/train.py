"""Fine-tune a checkpoint for NER on CoNLL data, keeping the best epoch.

Fine-tunes a checkpoint of any family (BERT, DistilBERT, RoBERTa, XLM-RoBERTa, CamemBERT,
ELECTRA, DeBERTa-v2/v3, ModernBERT) on CoNLL data (IOB1 or IOB2), evaluating on the valid split after each
epoch and saving the best epoch's model (Hugging Face layout) to --output. Defaults follow the BERT paper: AdamW, lr 5e-5, batch 16, 3 epochs, 10% linear
warm-up then linear decay, labels on each word's first subword."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..errors import InputError, JobError
from ..training.options import TrainConfig
from .options import LOADING_FIELDS, add_model_argument, add_output_argument, add_pipeline_arguments
from .output import check_folder

__all__ = [
    "TRAIN_HELP",
    "add_arguments",
    "run",
]

# TrainConfig field -> help; the flag (--field-name), its type and default come from the field.
# Every field has an entry: tests/test_cli.py checks it.
TRAIN_HELP = {
    "epochs": "passes over the training data",
    "lr": "peak learning rate",
    "batch_size": "sentences per step",
    "warmup_ratio": "fraction of the steps spent warming up",
    "weight_decay": "AdamW weight decay",
    "max_grad_norm": "clip the gradient norm to this",
    "seed": "seed of the fresh head, dropout and batch order",
    "max_steps": "stop after this many steps",
    "eval_batch_size": "sentences per pass when scoring valid",
    "log_every": "steps between progress lines",
}
TRAIN_DTYPE_HELP = (
    "the matmuls' dtype (autocast); weights and optimizer state stay float32 "
    "(default: bfloat16 on CUDA, float32 on CPU)"
)
# A field's type (as written in TrainConfig) -> the argparse type that reads it.
ARG_TYPES = {"int": int, "float": float, "int | None": int}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser, base=True)
    parser.add_argument("--train", required=True, type=Path, help="CoNLL training file")
    parser.add_argument("--valid", required=True, type=Path, help="CoNLL validation file")
    add_output_argument(parser, required=True, metavar="DIR", help="folder for the best model")
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty --output")
    hyper = parser.add_argument_group("hyper-parameters (TrainConfig)")
    for field in dataclasses.fields(TrainConfig):
        default = field.default
        shown = f" (default: {'none' if default is None else default})"
        hyper.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=ARG_TYPES[str(field.type)],
            default=default,
            help=TRAIN_HELP[field.name] + shown,
        )
    loading = parser.add_argument_group("model loading (as in the label command)")
    add_pipeline_arguments(loading, LOADING_FIELDS, help={"dtype": TRAIN_DTYPE_HELP})


def run(args: argparse.Namespace) -> int:
    from ..training.conll import read_conll
    from ..training.train import train

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    train_sentences, valid_sentences = read_conll(args.train), read_conll(args.valid)
    output = Path(args.output)
    if output.is_dir() and any(output.iterdir()) and not args.overwrite:
        raise InputError(f"{output} exists and is not an empty folder; pass --overwrite to replace")
    check_folder(output)  # now, not after the first epoch

    try:
        result = train(
            args.model,
            train_sentences,
            valid_sentences,
            output,
            config,
            device=args.device,
            dtype=args.dtype,
            revision=args.revision,
            token=args.token,
        )
    except OSError as e:  # saving the best epoch: a full disk, a folder taken away
        raise JobError(f"cannot write to {e.filename or output}: {e.strerror or e}") from e
    best = result.best_valid
    print(
        f"best epoch {result.best_epoch}: valid precision {best['precision']:.4f} recall "
        f"{best['recall']:.4f} f1 {best['f1']:.4f} accuracy {best['accuracy']:.4f}; "
        f"{result.steps} steps in {result.train_seconds / 60:.1f} min; saved to {output}"
    )
    return 0
