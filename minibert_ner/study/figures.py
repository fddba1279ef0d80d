"""PNG figures of an `Inspection`: attention maps per layer and head, and the logit-lens heat map.

Needs matplotlib (the optional `plot` extra: `pip install 'minibert-ner[plot]'`). Figures are drawn
on `matplotlib.figure.Figure` objects directly, never through pyplot, so no GUI backend or global
state is involved and this works on headless machines and in threads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, MissingExtraError
from ..files import AtomicFile
from .lens import Inspection

__all__ = [
    "INSTALL_HINT",
    "attention_figure",
    "lens_figure",
    "require_matplotlib",
    "save_figures",
    "save_png",
]

INSTALL_HINT = "pip install 'minibert-ner[plot]' (or: pip install matplotlib)"


def require_matplotlib() -> Any:
    """The matplotlib module, or a MissingExtraError saying how to install it."""
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401 (checks the part we use is there)
    except ImportError as e:
        raise MissingExtraError(
            f"figures need matplotlib, which is not installed: {INSTALL_HINT}"
        ) from e
    return matplotlib


def save_figures(inspection: Inspection, out_dir: str | Path) -> list[Path]:
    """Write `logit_lens.png` and `attention_layer{i}.png` per block that ran; return paths.
    OSError if one cannot be written (those written so far are kept, whole)."""
    require_matplotlib()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [lens_figure(inspection, out / "logit_lens.png")]
    for layer, attn in enumerate(inspection.attentions):
        if attn is not None and attn.shape[0] > 0:
            paths.append(attention_figure(inspection, layer, out / f"attention_layer{layer}.png"))
    return paths


def save_png(fig: Any, path: str | Path) -> Path:
    """Write `fig` as a PNG that appears whole or not at all (`files.AtomicFile`); OSError if
    it cannot be written, naming `path` (then nothing is left)."""
    try:
        with AtomicFile(path, binary=True) as out:
            fig.savefig(out, dpi=100, format="png")
    except OSError as e:  # a failed write names no file: say which
        raise OSError(e.errno, e.strerror, str(path)) from e
    return Path(path)


def _tick_size(n: int) -> float:
    """Font size that keeps n tick labels legible without overlapping (roughly)."""
    return max(4.0, min(9.0, 200.0 / max(n, 1)))


def attention_figure(inspection: Inspection, layer: int, path: str | Path) -> Path:
    """One panel per head of block `layers.{layer}`: query tokens (rows) x key tokens (columns)."""
    from matplotlib.figure import Figure

    attn = inspection.attentions[layer]
    if attn is None:
        raise InputError(f"layer {layer} was skipped: it has no attention to draw")
    nh, T = attn.shape[0], len(inspection.tokens)
    cols = min(nh, 4)
    rows = math.ceil(nh / cols)
    panel = min(6.0, max(2.5, 0.22 * T))  # inches per head
    fig = Figure(figsize=(cols * panel + 1.0, rows * panel + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    size = _tick_size(T)
    image = None
    for h, ax in enumerate(axes.flat):
        if h >= nh:
            ax.set_axis_off()
            continue
        image = ax.imshow(attn[h].numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(f"head {layer}.{h}", fontsize=10)
        ax.set_xticks(range(T), inspection.tokens, rotation=90, fontsize=size)
        ax.set_yticks(range(T), inspection.tokens, fontsize=size)
        ax.set_xlabel("key (attended to)", fontsize=8)
        ax.set_ylabel("query", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    kind = f" ({inspection.block_kinds[layer]} attention)" if inspection.block_kinds else ""
    fig.suptitle(f"Attention of block layers.{layer}{kind}: each row sums to 1")
    return save_png(fig, path)


def lens_figure(inspection: Inspection, path: str | Path) -> Path:
    """Token (columns) x layer (rows, embeddings at the bottom) heat map of the predicted label.

    Colour = the label the classifier head picks at that layer, paler when its probability is
    lower; each cell is annotated with the label and probability.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    probs, predicted = inspection.probs, inspection.predicted  # (L+1, T, C), (L+1, T)
    n_layers, T = predicted.shape
    labels = [inspection.id2label[i] for i in range(len(inspection.id2label))]
    palette = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    colors = torch.tensor([palette(i % palette.N)[:3] for i in range(len(labels))])  # (C, 3)
    confidence = probs.gather(-1, predicted[..., None])[..., 0]  # (L+1, T)
    # Blend each label colour with white by confidence: 1 = full colour, 1/C = almost white.
    rgb = 1 - confidence[..., None] * (1 - colors[predicted])  # (L+1, T, 3)

    fig = Figure(figsize=(max(6.0, 0.75 * T + 2.5), 0.55 * n_layers + 2.2), layout="constrained")
    ax = fig.subplots()
    ax.imshow(rgb.numpy(), origin="lower", aspect="auto")
    size = _tick_size(T)
    for l in range(n_layers):
        for t in range(T):
            label = labels[int(predicted[l, t])]
            text = f"{label}\n{confidence[l, t]:.2f}"
            ax.text(t, l, text, ha="center", va="center", fontsize=min(size, 7.0))
    ax.set_xticks(range(T), inspection.tokens, rotation=90, fontsize=size)
    ax.set_yticks(range(n_layers), inspection.layer_names)
    ax.set_xlabel("token")
    ax.set_ylabel("layer")
    ax.set_title(
        "Logit lens: the label the head picks from each layer's hidden state\n"
        "(emb = embeddings output, Li = output of block layers.i)"
    )
    used = sorted(set(predicted.flatten().tolist()))
    handles = [Patch(color=colors[i].tolist(), label=labels[i]) for i in used]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return save_png(fig, path)
