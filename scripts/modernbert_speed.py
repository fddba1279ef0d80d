"""ModernBERT-base's shape beside transformers, in one run: CoNLL test sentences, a long document
in one 8k window, and what a local (sliding-window) block's attention costs beside a global one.

    python scripts/modernbert_speed.py [--sentences 100] [--doc-tokens 4000] [--repeat 2]
                                       [--attention-tokens 64 100 ... 8192] [--attention-only]

The model is a random ModernBertForTokenClassification in ModernBERT-base's shape (22 layers x
768, 12 heads, GeGLU 1152, global attention every third block, local window 128; vocabulary
50,368), built and saved by transformers, with a byte-level BPE tokenizer learnt from CoNLL-2003
train in ModernBERT's layout (`[CLS] text [SEP]`, tokenizer.json as it is). Both pipelines
(minibert-ner's and transformers' `pipeline("token-classification")`, its default SDPA
attention, batch_size 32) label the same texts with aggregation "simple", float32, on the CPU,
alternating, best of `repeat` each:

- `conll`: the first N CoNLL test sentences (a subset: the 3,453 take long on a shared 2-core CPU);
- `long`: one document of about `doc-tokens` tokens (CoNLL test sentences joined), within one
  8,192-token window, so both run the same single forward pass over it (its logits are
  compared too: the largest difference is printed, and whether the entities are the same);
- `attention`: one local block's attention (window 64 each side) on one row of each of the
  `attention-tokens` lengths: its fast path (`local`: SDPA as in a global block within the
  window + 1, the dense band, or chunks of queries each against the keys within reach, as
  `queries_per_chunk` picks), its masks made by an earlier block as in a forward pass for all
  local blocks but the first, beside the same block run as a global one (`global`: SDPA over
  all T x T, no mask) and a dense T x T band mask at every length (`dense`: what the readable
  path and transformers' SDPA path do); `biases`: making the masks, once per forward pass.
  `--attention-only` measures only this, with no model but the one block (ModernBERT-base's).

Prints one JSON object; the ratios are minibert-ner's time / transformers' (or / global's).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import CONLL_DIR, LABELS, read_texts

# ModernBERT-base (answerdotai/ModernBERT-base's config.json, which transformers' defaults equal)
BASE = {"hidden_size": 768, "num_hidden_layers": 22, "num_attention_heads": 12,
        "intermediate_size": 1152, "global_attn_every_n_layers": 3, "local_attention": 128,
        "vocab_size": 50368, "max_position_embeddings": 8192}  # fmt: skip


def modernbert_model(folder: Path) -> Path:
    """The random ModernBERT-base-shape token classifier and its tokenizer (module docstring)."""
    import torch
    import transformers
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=30000, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    backend.train_from_iterator(read_texts(CONLL_DIR / "train.txt"), trainer)
    backend.add_special_tokens([AddedToken("[MASK]", lstrip=True, special=True)])
    ids = {t: backend.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 8192,
              "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
              "unk_token": "[UNK]", "mask_token": "[MASK]"}  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(config), "utf-8")

    torch.manual_seed(0)
    id2label = dict(enumerate(LABELS))
    model = transformers.ModernBertForTokenClassification(
        transformers.ModernBertConfig(
            **BASE,
            pad_token_id=ids["[PAD]"],
            cls_token_id=ids["[CLS]"],
            sep_token_id=ids["[SEP]"],
            bos_token_id=ids["[CLS]"],
            eos_token_id=ids["[SEP]"],
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
        )  # fmt: skip
    )
    with torch.no_grad():
        model.classifier.weight.mul_(30)  # random models otherwise predict one label everywhere
    model.save_pretrained(folder)
    return folder


def best(fns: dict, repeat: int, results: dict | None = None) -> dict[str, float]:
    """Each function's best time over `repeat` runs, the functions alternating; `results`
    receives each function's last result."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - t0)
            if results is not None:
                results[name] = result
    return {name: min(values) for name, values in times.items()}


def attention_costs(lengths: list[int], repeat: int) -> list[dict]:
    """One local block's attention (module docstring) at each row length: its path, the times
    in ms and their ratios to `global`."""
    import torch

    from minibert_ner.config import ModelConfig
    from minibert_ner.modernbert import ModernBertAttention

    config = ModelConfig.from_dict({"model_type": "modernbert", **BASE})
    local = ModernBertAttention(config, "sliding_attention").eval()
    full = ModernBertAttention(config, "full_attention").eval()
    with torch.inference_mode():
        return [attention_row(local, full, T, repeat) for T in lengths]


def attention_row(local, full, T: int, repeat: int) -> dict:
    """`attention_costs` on one row of T tokens, the paths alternating (`best`)."""
    import torch

    from minibert_ner.modernbert import Biases, queries_per_chunk

    window = local.window
    q, k, v = (torch.randn(1, T, full.num_heads * full.head_size) for _ in range(3))
    shared, dense = Biases(None), Biases(None)
    local.attend(q, k, v, shared)  # the first local block of a forward pass makes them
    local.attend(q, k, v, dense, any_length=True)
    chunk = queries_per_chunk(T, window) if T > window + 1 else None

    def make() -> None:  # what the first local block of a forward pass adds
        made = Biases(None)
        if chunk is not None:
            made.chunks(T, window, chunk, q.dtype, q.device)
        elif T > window + 1:
            made.band(T, window, q.dtype, q.device)

    times = best({
        "global": lambda: full.attend(q, k, v, Biases(None)),
        "local": lambda: local.attend(q, k, v, shared),
        "dense": lambda: local.attend(q, k, v, dense, any_length=True),
        "biases": make,
    }, repeat)  # fmt: skip
    path = "global" if T <= window + 1 else "dense band" if chunk is None else f"chunks of {chunk}"
    row: dict = {"tokens": T, "path": path, "global ms": round(times["global"] * 1e3, 3)}
    return row | {
        f"{n} / global": round(times[n] / times["global"], 3) for n in times if n != "global"
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sentences", type=int, default=100)
    p.add_argument("--doc-tokens", type=int, default=4000)
    p.add_argument("--attention-tokens", type=int, nargs="+",
                   default=[64, 100, 200, 300, 384, 600, 2048, 8192])  # fmt: skip
    p.add_argument("--attention-only", action="store_true")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()

    if args.attention_only:
        print(json.dumps({"attention": attention_costs(args.attention_tokens, args.repeat)},
                         indent=1))  # fmt: skip
        return

    import torch
    import transformers

    import minibert_ner

    with tempfile.TemporaryDirectory() as tmp:
        folder = modernbert_model(Path(tmp) / "model")
        ours = minibert_ner.pipeline(folder, aggregation_strategy="simple", device="cpu")
        theirs = transformers.pipeline(
            "token-classification", model=str(folder), aggregation_strategy="simple", device="cpu"
        )
    sentences = read_texts(CONLL_DIR / "test.txt", args.sentences)
    document, n = [], 0
    for text in read_texts(CONLL_DIR / "test.txt"):
        n += len(ours.tokenizer.encode(text).ids) - 2
        if n > args.doc_tokens:
            break
        document.append(text)
    doc = " ".join(document)
    doc_tokens = len(ours.tokenizer.encode(doc).ids)
    assert doc_tokens <= 8192, doc_tokens

    ours(sentences[:32]), theirs(sentences[:32], batch_size=32)  # warm-up
    conll = best({"ours": lambda: ours(sentences),
                  "transformers": lambda: theirs(sentences, batch_size=32)}, args.repeat)  # fmt: skip
    found: dict[str, list] = {}
    long = best({"ours": lambda: ours(doc), "transformers": lambda: theirs(doc)}, args.repeat,
                found)  # fmt: skip
    got, expected = found["ours"], found["transformers"]
    same = [(e["start"], e["end"], e["entity_group"]) for e in got] == [
        (e["start"], e["end"], e["entity_group"]) for e in expected
    ]
    with torch.inference_mode():
        batch = ours.tokenizer.to_tensors([ours.tokenizer.encode(doc)])
        logits_diff = (ours.model(**batch).logits - theirs.model(**batch).logits).abs().max()
    attention = attention_costs(args.attention_tokens, args.repeat)
    print(json.dumps({
        "model": "ModernBERT-base shape, random weights (transformers-made)",
        "threads": torch.get_num_threads(),
        "conll": {"sentences": len(sentences), **conll,
                  "ratio": conll["ours"] / conll["transformers"]},
        "long": {"tokens": doc_tokens, "entities": len(got), "same_entities": same,
                 "logits_max_abs_diff": logits_diff.item(), **long,
                 "ratio": long["ours"] / long["transformers"]},
        "attention": attention,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
