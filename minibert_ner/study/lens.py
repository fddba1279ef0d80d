"""Look inside the model for one text: the logit lens, hidden-state norms, attention per head.

The logit lens applies the classification head to every layer's hidden state, not only the last
one, to show at which depth each token's label emerges. Post-LN blocks (BERT and its kin,
DeBERTa): the embeddings output and every block output have just left a LayerNorm, which is
exactly the point where the last block hands over to the classifier, so the head applies to each
of them directly. Pre-LN ModernBERT (like GPT-2 with its `ln_f`) gets its `final_norm` first.

    inspection = inspect_text(model, tokenizer, "Ada Lovelace was born in London.")
    print(inspection.render())            # three tables: labels per layer, norms, heads
    inspection.probs                      # (L+1, T, num_labels)

DeBERTa's attention maps are the softmax of all its terms (content and relative position); each
head's summary also says how much of its scores the position terms make (`position_share`).

Layer columns are named as the modules are: `emb` is the embeddings output, `L{i}` the output of
block `layers.{i}` (counted from 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch

from ..deberta import DisentangledAttention, RelativePositions
from ..errors import InputError
from ..families import Model
from ..tokenizer import Tokenizer

__all__ = [
    "HeadSummary",
    "Inspection",
    "inspect_text",
    "logit_lens",
    "position_share",
    "summarize_head",
]


def logit_lens(model: Model, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
    """The classification head on each hidden state: (L+1) x (B, T, H) -> (L+1, B, T, num_labels).

    The last entry equals the model's logits (the head's dropout is inactive in eval mode). A
    pre-LN model (ModernBERT) has a `final_norm` that only the last hidden state has passed: the
    others pass it here first, as the lens does for GPT-2's `ln_f`.
    """
    final_norm = getattr(model, "final_norm", None)
    if final_norm is not None:
        hidden_states = [*map(final_norm, hidden_states[:-1]), hidden_states[-1]]
    return torch.stack([model.classify(h) for h in hidden_states])


@dataclass
class HeadSummary:
    """How one head spreads its attention, averaged over the text's tokens (as queries)."""

    layer: int
    head: int
    entropy: float  # bits; 0 = all on one token, log2(T) = uniform
    to_cls: float  # share of attention on the first token ([CLS], RoBERTa's <s>)
    to_sep: float  # share on the last token ([SEP], RoBERTa's </s>)
    to_self: float  # share on the query token itself
    to_prev: float  # share on the token before
    to_next: float  # share on the token after
    top: tuple[
        int, int, float
    ]  # strongest query -> key link between two word tokens, and its weight
    # DeBERTa: share of the attention scores' magnitude that the relative-position terms
    # (c2p + p2c) make, averaged over queries; None for attention without position terms.
    position_share: float | None = None


def position_share(
    attention: DisentangledAttention, x: torch.Tensor, positions: RelativePositions
) -> torch.Tensor | None:
    """(nh,): per head, mean over queries of sum_j |c2p + p2c| / sum_j (|c2c| + |c2p + p2c|),
    for the first text of x (B, T, H); None when the attention has no position terms."""
    terms = attention.score_terms(x[:1], positions)  # each (1, nh, T, T)
    content = terms.pop("c2c")[0].abs()  # (nh, T, T)
    if not terms:
        return None
    position = sum(terms.values())[0].abs()  # (nh, T, T)
    return (position.sum(-1) / (content + position).sum(-1)).mean(-1)  # (nh,)


def summarize_head(
    layer: int,
    head: int,
    probs: torch.Tensor,
    special: Sequence[bool],
    position_share: float | None = None,
) -> HeadSummary:
    """Statistics of one head's attention matrix `probs` (T queries, T keys), rows summing to 1."""
    T = probs.shape[0]
    p = probs.float()
    entropy = -(p * torch.log2(p.clamp_min(1e-12))).sum(-1).mean().item()
    diag = torch.diagonal(p)
    prev = torch.diagonal(p, offset=-1).sum().item() / T  # query i -> key i-1
    next_ = torch.diagonal(p, offset=1).sum().item() / T  # query i -> key i+1
    words = torch.tensor([not s for s in special])
    links = p.clone()
    links.fill_diagonal_(0)
    links[~words] = 0  # queries that are [CLS]/[SEP]
    links[:, ~words] = 0  # keys that are [CLS]/[SEP]
    i, j = divmod(int(links.argmax()), T)
    return HeadSummary(
        layer=layer,
        head=head,
        entropy=entropy,
        to_cls=p[:, 0].mean().item(),
        to_sep=p[:, -1].mean().item(),
        to_self=diag.mean().item(),
        to_prev=prev,
        to_next=next_,
        top=(i, j, links[i, j].item()),
        position_share=position_share,
    )


@dataclass
class Inspection:
    """Everything `inspect_text` measured for one text (tensors on the CPU, float32)."""

    text: str
    tokens: list[str]  # T subword tokens, [CLS] and [SEP] included
    special: list[bool]  # T: True for the special tokens
    id2label: dict[int, str]
    logits: torch.Tensor  # (L+1, T, num_labels): the head on the embeddings and each block output
    hidden_norms: torch.Tensor  # (L+1, T): L2 norm of each token's hidden state
    attentions: list[torch.Tensor | None]  # per block: (nh, T query, T key); None if skipped
    # DeBERTa, per block: (nh,) share of the scores made by the position terms (position_share)
    position_shares: list[torch.Tensor | None] | None = None
    # ModernBERT, per block: "global", or "local (±w)" for a sliding window of w on each side
    block_kinds: list[str] | None = None

    @property
    def probs(self) -> torch.Tensor:
        """(L+1, T, num_labels) label probabilities at each layer."""
        return self.logits.softmax(-1)

    @property
    def predicted(self) -> torch.Tensor:
        """(L+1, T) label id of each token at each layer."""
        return self.logits.argmax(-1)

    @property
    def layer_names(self) -> list[str]:
        return ["emb"] + [f"L{i}" for i in range(len(self.attentions))]

    def head_summaries(self) -> list[HeadSummary]:
        """One summary per head of every block that ran."""
        shares = self.position_shares or [None] * len(self.attentions)
        return [
            summarize_head(
                layer, h, attn[h], self.special, None if share is None else share[h].item()
            )
            for layer, (attn, share) in enumerate(zip(self.attentions, shares, strict=True))
            if attn is not None
            for h in range(attn.shape[0])
        ]

    def label_table(self) -> str:
        """Token rows x layer columns: the label the head picks at that layer, and its prob."""
        probs, predicted = self.probs, self.predicted
        rows = []
        for t, token in enumerate(self.tokens):
            cells = [
                f"{self.id2label[int(predicted[l, t])]} {probs[l, t, predicted[l, t]]:.2f}"
                for l in range(len(self.layer_names))
            ]
            rows.append([str(t), token, *cells])
        return _table(["#", "token", *self.layer_names], rows)

    def norm_table(self) -> str:
        """Token rows x layer columns: L2 norm of the hidden state."""
        rows = [
            [str(t), token, *(f"{v:.1f}" for v in self.hidden_norms[:, t].tolist())]
            for t, token in enumerate(self.tokens)
        ]
        mean = ["", "(mean)", *(f"{v:.1f}" for v in self.hidden_norms.mean(1).tolist())]
        return _table(["#", "token", *self.layer_names], [*rows, mean])

    def attention_table(self) -> str:
        """One row per head: entropy, where attention goes, the strongest word-to-word link."""
        summaries = self.head_summaries()
        with_position = any(s.position_share is not None for s in summaries)
        rows = []
        for s in summaries:
            i, j, w = s.top
            link = f"{self.tokens[i]} -> {self.tokens[j]} {w:.2f}" if w > 0 else "-"
            shares = (s.to_cls, s.to_sep, s.to_self, s.to_prev, s.to_next)
            cells = [f"{s.layer}.{s.head}", f"{s.entropy:.2f}", *(f"{v:.2f}" for v in shares)]
            if with_position:
                cells.append("-" if s.position_share is None else f"{s.position_share:.2f}")
            rows.append([*cells, link])
        for layer, attn in enumerate(self.attentions):
            if attn is None:
                blank = [""] * (6 if with_position else 5)
                rows.append([f"{layer}.*", "-", *blank, "(block skipped)"])
        first, last = self.tokens[0], self.tokens[-1]  # the template's: [CLS]/[SEP], <s>/</s>
        header = ["head", "entropy", first, last, "self", "prev", "next"]
        header += ["position"] if with_position else []
        return _table([*header, "strongest link"], rows)

    def kinds_line(self) -> str:
        """ModernBERT: "L0 global, L1 local (±64), ..."."""
        return ", ".join(f"L{i} {kind}" for i, kind in enumerate(self.block_kinds or []))

    def render(self) -> str:
        """The three tables, titled, ready to print."""
        uniform = math.log2(len(self.tokens))
        return "\n\n".join(
            [
                "Logit lens: the label (and its probability) the head picks at each layer\n"
                "(emb = embeddings output, Li = output of block layers.i)\n" + self.label_table(),
                "Hidden-state L2 norm at each layer\n" + self.norm_table(),
                f"Attention per head (layer.head): entropy in bits (uniform = {uniform:.2f});\n"
                + (f"blocks: {self.kinds_line()};\n" if self.block_kinds else "")
                + f"mean share of attention on the first token ({self.tokens[0]}), the last "
                f"({self.tokens[-1]}), the token itself, the previous and the next token (these "
                "overlap at the ends)"
                + (
                    "; position: share of the scores made by the relative-position terms"
                    if self.position_shares
                    else ""
                )
                + "\n"
                + self.attention_table(),
            ]
        )


@torch.inference_mode()
def inspect_text(model: Model, tokenizer: Tokenizer, text: str) -> Inspection:
    """Run one text through the model and measure every layer (see the module docstring).

    The text must fit in one window of the model (no splitting here, so that every token sees the
    whole text); the model is run in eval mode and left in the mode it was in.
    """
    if not isinstance(text, str):
        raise InputError(f"text must be a str, not {type(text).__name__}")
    if not text.strip():
        raise InputError("the text is empty: give a sentence to inspect")
    encoding = tokenizer.encode(text)
    limit = model.config.max_positions  # None: relative positions only, any length runs
    if limit is not None and len(encoding.ids) > limit:
        raise InputError(
            f"the text has {len(encoding.ids)} tokens but the model sees at most {limit} at once; "
            "inspect a shorter passage (one sentence is best)"
        )
    batch = tokenizer.to_tensors([encoding], device=model.device)
    # DeBERTa: keep each attention's inputs, to split its scores into their terms afterwards.
    inputs: dict[int, tuple] = {}
    handles = [
        block.attention.register_forward_pre_hook(partial(_keep_inputs, inputs, i))
        for i, block in enumerate(model.layers)
        if isinstance(getattr(block, "attention", None), DisentangledAttention)
    ]
    was_training = model.training
    model.eval()
    try:
        out = model(**batch, output_hidden_states=True, output_attentions=True)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    shares = None
    if inputs:
        shares = [
            position_share(model.layers[i].attention, *inputs[i]) if i in inputs else None
            for i in range(len(model.layers))
        ]
    assert out.hidden_states is not None and out.attentions is not None
    hidden = [h[0].float().cpu() for h in out.hidden_states]  # (L+1) x (T, H)
    return Inspection(
        text=text,
        tokens=list(encoding.tokens),
        special=[bool(s) for s in encoding.special_tokens_mask],
        id2label=dict(model.id2label),
        logits=logit_lens(model, out.hidden_states)[:, 0].float().cpu(),  # (L+1, T, C)
        hidden_norms=torch.stack([h.norm(dim=-1) for h in hidden]),  # (L+1, T)
        attentions=[None if a is None else a[0].float().cpu() for a in out.attentions],
        position_shares=[None if v is None else v.float().cpu() for v in shares]
        if shares and any(v is not None for v in shares)
        else None,
        block_kinds=block_kinds(model),
    )


def block_kinds(model: Model) -> list[str] | None:
    """Each block's attention, "global" or "local (±w)", for a model whose attention has a
    sliding `window` (ModernBERT: None on global blocks); None for the other families."""
    attentions = [getattr(block, "attention", None) for block in model.layers]
    if not any(hasattr(a, "window") for a in attentions):
        return None
    return [
        "skipped" if a is None else "global" if a.window is None else f"local (±{a.window})"
        for a in attentions
    ]


def _keep_inputs(store: dict[int, tuple], layer: int, module: object, args: tuple) -> None:
    store[layer] = args[:2]  # x (B, T, H), RelativePositions


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text table, columns padded to their widest cell."""
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
