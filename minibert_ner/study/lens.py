"""Look inside the model for one text: the logit lens, hidden-state norms, attention per head.

The logit lens applies the classification head to every layer's hidden state, not only the last
one, to show at which depth each token's label emerges. Our blocks are post-LN: the embeddings
output and every block output have just left a LayerNorm, which is exactly the point where the
last block hands over to the classifier. So the head applies to each of them directly; no extra
final norm is needed (pre-LN models such as GPT-2 must apply their final `ln_f` first).

    inspection = inspect_text(model, tokenizer, "Ada Lovelace was born in London.")
    print(inspection.render())            # three tables: labels per layer, norms, heads
    inspection.probs                      # (L+1, T, num_labels)

Layer columns are named as the modules are: `emb` is the embeddings output, `L{i}` the output of
block `layers.{i}` (counted from 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import InputError
from ..model import TokenClassifier
from ..tokenizer import Tokenizer

__all__ = [
    "HeadSummary",
    "Inspection",
    "inspect_text",
    "logit_lens",
    "summarize_head",
]


def logit_lens(model: TokenClassifier, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
    """The classification head on each hidden state: (L+1) x (B, T, H) -> (L+1, B, T, num_labels).

    The last entry equals the model's logits (the head's dropout is inactive in eval mode).
    """
    return torch.stack([model.classifier(model.dropout(h)) for h in hidden_states])


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


def summarize_head(
    layer: int, head: int, probs: torch.Tensor, special: Sequence[bool]
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
        return [
            summarize_head(layer, h, attn[h], self.special)
            for layer, attn in enumerate(self.attentions)
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
        rows = []
        for s in self.head_summaries():
            i, j, w = s.top
            link = f"{self.tokens[i]} -> {self.tokens[j]} {w:.2f}" if w > 0 else "-"
            shares = (s.to_cls, s.to_sep, s.to_self, s.to_prev, s.to_next)
            rows.append(
                [f"{s.layer}.{s.head}", f"{s.entropy:.2f}", *(f"{v:.2f}" for v in shares), link]
            )
        for layer, attn in enumerate(self.attentions):
            if attn is None:
                rows.append([f"{layer}.*", "-", "", "", "", "", "", "(block skipped)"])
        first, last = self.tokens[0], self.tokens[-1]  # the template's: [CLS]/[SEP], <s>/</s>
        header = ["head", "entropy", first, last, "self", "prev", "next", "strongest link"]
        return _table(header, rows)

    def render(self) -> str:
        """The three tables, titled, ready to print."""
        uniform = math.log2(len(self.tokens))
        return "\n\n".join(
            [
                "Logit lens: the label (and its probability) the head picks at each layer\n"
                "(emb = embeddings output, Li = output of block layers.i)\n" + self.label_table(),
                "Hidden-state L2 norm at each layer\n" + self.norm_table(),
                f"Attention per head (layer.head): entropy in bits (uniform = {uniform:.2f});\n"
                f"mean share of attention on the first token ({self.tokens[0]}), the last "
                f"({self.tokens[-1]}), the token itself, the previous and the next token (these "
                "overlap at the ends)\n" + self.attention_table(),
            ]
        )


@torch.inference_mode()
def inspect_text(model: TokenClassifier, tokenizer: Tokenizer, text: str) -> Inspection:
    """Run one text through the model and measure every layer (see the module docstring).

    The text must fit in one window of the model (no splitting here, so that every token sees the
    whole text); the model is run in eval mode and left in the mode it was in.
    """
    if not isinstance(text, str):
        raise InputError(f"text must be a str, not {type(text).__name__}")
    if not text.strip():
        raise InputError("the text is empty: give a sentence to inspect")
    encoding = tokenizer.encode(text)
    limit = model.config.max_positions
    if len(encoding.ids) > limit:
        raise InputError(
            f"the text has {len(encoding.ids)} tokens but the model sees at most {limit} at once; "
            "inspect a shorter passage (one sentence is best)"
        )
    batch = tokenizer.to_tensors([encoding], device=model.device)
    was_training = model.training
    model.eval()
    try:
        out = model(**batch, output_hidden_states=True, output_attentions=True)
    finally:
        model.train(was_training)
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
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text table, columns padded to their widest cell."""
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
