"""Fine-tune a checkpoint of any family (DistilBERT, BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA,
DeBERTa-v2/v3, ModernBERT) for NER on CoNLL data, the BERT paper's recipe.

    sentences --tokenize--> subword ids, a label on each word's FIRST subword (-100 elsewhere)
    batches of similar length --model--> logits --cross-entropy--> AdamW step (linear warm-up,
    then linear decay to 0)
    after every epoch: label the valid split word by word, score it, keep the best model

The recipe (Devlin et al. 2019, section 5.3 and appendix A.3): Adam with weight decay, learning
rate one of 5e-5 / 3e-5 / 2e-5, batch 16 or 32, 2-4 epochs, the learning rate warmed up over the
first 10% of steps (as the original BERT fine-tuning code does); the first subword of a word
carries its label (the other subwords are ignored by the loss, index -100), which is also the
rule the pipeline uses to label words. A base checkpoint (no head) gets a fresh head.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import load_model, read_safetensors, resolve_dtype, save_model
from ..config import ModelConfig
from ..devices import resolve_device
from ..errors import DataError, InputError
from ..families import Model
from ..hub import WEIGHT_FILES, resolve_folder
from ..inference.pipeline import NERPipeline
from ..inference.precision import BF16_UNITS, cpu_features
from ..inference.windows import window_length
from ..tokenizer import Tokenizer
from .conll import Sentence, entity_types
from .metrics import Report, evaluate_pipeline
from .options import TrainConfig

__all__ = [
    "IGNORE",
    "Example",
    "TrainConfig",
    "TrainResult",
    "collate",
    "encode_sentences",
    "evaluate_model",
    "label_list",
    "linear_schedule",
    "load_for_training",
    "log_to_stderr",
    "make_optimizer",
    "shuffled_length_batches",
    "token_loss",
    "train",
]

IGNORE = -100  # label id the loss skips: special tokens, padding, non-first subwords


@dataclass
class Example:
    """One sentence ready for the model: token ids and a label id per token (IGNORE = no label)."""

    input_ids: list[int]
    labels: list[int]


@dataclass
class TrainResult:
    """What `train` returns (and writes to `output/training.json`)."""

    best_epoch: int
    best_valid: dict
    history: list[dict] = field(default_factory=list)  # one entry per epoch
    train_seconds: float = 0.0
    steps: int = 0


def label_list(types: Sequence[str]) -> list[str]:
    """The IOB2 label set for entity types: O, then B-/I- of each type in order."""
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


def encode_sentences(
    tokenizer: Tokenizer, sentences: Sequence[Sentence], label2id: dict[str, int], max_tokens: int
) -> list[Example]:
    """Tokenize pre-split words; the first subword of each word gets its label id.

    A sentence longer than `max_tokens` subwords is split (at a word boundary) until its parts
    fit, so nothing is truncated.
    """
    examples: list[Example] = []
    pending = [(s.words, s.labels, s.line) for s in sentences]
    while pending:
        encodings = tokenizer.encode_batch([words for words, _, _ in pending])
        too_long = []
        for (words, labels, line), enc in zip(pending, encodings, strict=True):
            if len(enc.ids) > max_tokens:
                if len(words) == 1:
                    raise DataError(f"line {line}: one word makes {len(enc.ids)} subwords")
                half = len(words) // 2
                too_long += [
                    (words[:half], labels[:half], line),
                    (words[half:], labels[half:], line),
                ]
                continue
            label_ids, previous = [], None
            for word in enc.word_ids:
                first = word is not None and word != previous
                label_ids.append(label2id[labels[word]] if first else IGNORE)
                previous = word
            examples.append(Example(list(enc.ids), label_ids))
        pending = too_long
    return examples


def shuffled_length_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Batches of indices whose members have similar lengths, in random order.

    Shuffle, sort within pools of 50 batches, cut, shuffle the batches: padding (wasted compute)
    drops several-fold on CPU, and the order is still random from epoch to epoch.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(
    examples: Sequence[Example], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad to the longest: input_ids, attention_mask, labels, each (B, T)."""
    T = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(e.labels)
    return ids.to(device), mask.to(device), labels.to(device)


def token_loss(
    model: Model, input_ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy averaged over the labelled tokens (first subwords) of a (B, T) batch."""
    logits = model(input_ids, attention_mask=mask).logits  # (B, T, L)
    # float32 for the softmax even under bf16 autocast; IGNORE positions do not count.
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight matrices and embeddings decay, biases and LayerNorm parameters do not."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999), eps=1e-8)


def linear_schedule(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: 0 -> 1 over the warm-up, then 1 -> 0 at the last step."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_for_training(
    folder: str | Path,
    labels: list[str],
    device: torch.device,
    log: Callable[[str], None] = log_to_stderr,
) -> Model:
    """The model to fine-tune: keep its head if it already predicts exactly these labels (in its
    own order), else a fresh head for `labels` (and say so when that replaces a head)."""
    folder = resolve_folder(folder, files=WEIGHT_FILES)
    config = ModelConfig.from_json_file(folder / "config.json")
    if sorted(config.id2label.values()) == sorted(labels):
        return load_model(folder, device=device)
    model = load_model(folder, device=device, id2label=dict(enumerate(labels)))
    if any(name.startswith("classifier.") for name in read_safetensors(folder, names_only=True)):
        log(
            f"the checkpoint's head predicts {len(config.id2label)} labels "
            f"({', '.join(config.id2label.values())}), the data has {len(labels)} "
            f"({', '.join(labels)}): training a fresh head in its place"
        )
    return model


def train(
    model_name: str | Path,
    train_sentences: Sequence[Sentence],
    valid_sentences: Sequence[Sentence],
    output: str | Path,
    config: TrainConfig | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fine-tune `model_name` (folder or hub id, at `revision`, with `token` for private models)
    on `train_sentences`, score `valid_sentences` after each epoch, and save the best epoch's
    model and tokenizer to `output` (Hugging Face layout: `transformers` and `load_model` both
    load it).

    dtype: the matmuls' dtype under autocast (default bfloat16 on CUDA, float32 on CPU); weights
    and optimizer state stay float32 either way."""
    config = config or TrainConfig()
    log = log or log_to_stderr
    device = resolve_device(device)
    if dtype in ("auto", "bfloat16-mixed"):
        raise InputError(
            f"train --dtype {dtype} is for labelling; training takes float32, bfloat16 or "
            "float16 (bfloat16 autocast is already mixed: weights and optimizer stay float32)"
        )
    compute = resolve_dtype(dtype) or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    if device.type == "cpu" and compute == torch.bfloat16 and not BF16_UNITS & cpu_features():
        log(
            "this CPU has no bfloat16 units (AVX512-BF16 or AMX): bfloat16 autocast runs "
            "emulated, slower than float32"
        )
    output = Path(output)
    if not train_sentences or not valid_sentences:
        raise DataError("training needs at least one train and one valid sentence")
    if not entity_types(train_sentences):
        raise DataError(
            "every label in the train data is O: there are no entities to learn; "
            "give data with entity labels (B-TYPE, I-TYPE)"
        )
    unknown = set(entity_types(valid_sentences)) - set(entity_types(train_sentences))
    if unknown:
        raise DataError(f"valid has entity types that train lacks: {', '.join(sorted(unknown))}")

    # Seed everything that draws random numbers: the fresh head, dropout, the batch order.
    torch.manual_seed(config.seed)
    folder = resolve_folder(model_name, revision=revision, token=token, files=WEIGHT_FILES)
    model = load_for_training(folder, label_list(entity_types(train_sentences)), device, log)
    tokenizer = Tokenizer.from_pretrained(folder)
    max_tokens = window_length(model.config.max_positions, tokenizer.model_max_length)
    examples = encode_sentences(tokenizer, train_sentences, model.config.label2id, max_tokens)
    lengths = [len(e.input_ids) for e in examples]

    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = make_optimizer(model, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_schedule(round(config.warmup_ratio * total_steps), total_steps)
    )
    # Mixed precision: matmuls in `compute`, weights and optimizer state stay float32.
    autocast = torch.autocast(device.type, dtype=compute, enabled=compute != torch.float32)
    log(
        f"training {model_name} on {len(examples)} sentences ({sum(lengths)} tokens) on {device}: "
        f"{config.epochs} epochs x {steps_per_epoch} steps of {config.batch_size}, "
        f"lr {config.lr}, {total_steps} steps"
    )

    rng = random.Random(config.seed)
    result = TrainResult(best_epoch=0, best_valid={})
    best_f1 = -1.0
    step, start = 0, time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        if step >= total_steps:
            break
        model.train()
        losses, tokens, t0 = [], 0, time.perf_counter()
        for batch in shuffled_length_batches(lengths, config.batch_size, rng):
            input_ids, mask, labels = collate(
                [examples[i] for i in batch], tokenizer.pad_token_id, device
            )
            with autocast:
                loss = token_loss(model, input_ids, mask, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            schedule.step()
            step += 1
            losses.append(loss.item())
            tokens += int(mask.sum())
            if step % config.log_every == 0 or step == total_steps:
                recent = losses[-config.log_every :]
                minutes_left = (total_steps - step) * (time.perf_counter() - start) / step / 60
                log(
                    f"epoch {epoch} step {step}/{total_steps} loss {sum(recent) / len(recent):.4f} "
                    f"lr {schedule.get_last_lr()[0]:.2e} "
                    f"{tokens / (time.perf_counter() - t0):.0f} tok/s, {minutes_left:.1f} min left"
                )
            if step >= total_steps:
                break

        report = evaluate_model(model, tokenizer, valid_sentences, config.eval_batch_size)
        entry = {
            "epoch": epoch,
            "step": step,
            "train_loss": sum(losses) / len(losses),
            "seconds": time.perf_counter() - t0,
            "valid": report.to_dict(),
        }
        result.history.append(entry)
        improved = report.f1 > best_f1
        log(
            f"epoch {epoch}: train loss {entry['train_loss']:.4f}, valid P {report.precision:.4f} "
            f"R {report.recall:.4f} F1 {report.f1:.4f} acc {report.accuracy:.4f}"
            + (" (best so far: saved)" if improved else "")
        )
        if improved:
            best_f1 = report.f1
            result.best_epoch, result.best_valid = epoch, report.to_dict()
            save_model(model, output)
            tokenizer.save(output)

    result.train_seconds = time.perf_counter() - start
    result.steps = step
    record = {
        "model": str(model_name),
        "config": asdict(config),
        "device": str(device),
        "dtype": str(compute).removeprefix("torch."),  # the matmuls' under autocast
        **asdict(result),
    }
    (output / "training.json").write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    return result


def evaluate_model(
    model: Model, tokenizer: Tokenizer, sentences: Sequence[Sentence], batch_size: int
) -> Report:
    """Score an in-memory model on sentences through the NER pipeline's word labelling (which
    switches the model to eval mode for the call and back afterwards)."""
    return evaluate_pipeline(NERPipeline(model, tokenizer, batch_size=batch_size), sentences)
