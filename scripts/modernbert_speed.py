"""ModernBERT-base's shape beside transformers, in one run: CoNLL test sentences, a long document
in one 8k window, and what a local (sliding-window) block's attention costs beside a global one.

    python scripts/modernbert_speed.py [--sentences 100] [--doc-tokens 4000]
                                       [--attention-tokens 8192] [--repeat 2]

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
- `attention`: one local block's attention at T = `attention-tokens` (8,192: a full window),
  its fast path (SDPA on chunks of queries, each against the keys within reach) beside the same
  block run as a global one (SDPA over all T x T) and the local block with a dense T x T band
  mask (what the readable path and transformers' SDPA path do).

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


def attention_costs(model, T: int, repeat: int) -> dict[str, float]:
    """One local block's attention on T tokens: chunked local, as a global block, dense band."""
    import torch

    attention = next(b.attention for b in model.layers if b.attention.window is not None)
    H = model.config.hidden_size
    q, k, v = (torch.randn(1, T, H) for _ in range(3))
    window = attention.window

    def run(chunk: int, as_global: bool = False):
        def go() -> None:
            attention.local_chunk, attention.window = chunk, None if as_global else window
            try:
                with torch.inference_mode():
                    attention.attend(q, k, v, None)
            finally:
                attention.local_chunk, attention.window = 256, window

        return go

    return best({"local": run(256), "global": run(256, True), "local_dense": run(T)}, repeat)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sentences", type=int, default=100)
    p.add_argument("--doc-tokens", type=int, default=4000)
    p.add_argument("--attention-tokens", type=int, default=8192)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()

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
    attention = attention_costs(ours.model, args.attention_tokens, args.repeat)
    print(json.dumps({
        "model": "ModernBERT-base shape, random weights (transformers-made)",
        "threads": torch.get_num_threads(),
        "conll": {"sentences": len(sentences), **conll,
                  "ratio": conll["ours"] / conll["transformers"]},
        "long": {"tokens": doc_tokens, "entities": len(got), "same_entities": same,
                 "logits_max_abs_diff": logits_diff.item(), **long,
                 "ratio": long["ours"] / long["transformers"]},
        "attention": {"tokens": args.attention_tokens, **attention,
                      "local / global": attention["local"] / attention["global"],
                      "local_dense / global": attention["local_dense"] / attention["global"]},
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
