"""Look inside the model for one text: the label and probability each layer would give every token
(logit lens), hidden-state norms, and what each attention head attends to. With --out, also write
PNG figures (needs the `plot` extra: pip install 'minibert-ner[plot]')."""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from ..checkpoint import load_model
from ..config import ACTIVATIONS
from ..inference.pipeline import resolve_device
from ..study.interventions import mask_heads, parse_heads, replace_activation, skip_layers
from ..study.lens import inspect_text
from ..tokenizer import Tokenizer
from .options import add_device_argument

__all__ = [
    "add_arguments",
    "run",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the text to inspect (one sentence reads best)")
    parser.add_argument("--model", required=True, help="model folder or hub id")
    parser.add_argument("--out", metavar="DIR", help="write PNG figures into this folder")
    add_device_argument(parser)
    parser.add_argument(
        "--mask-head",
        action="append",
        default=[],
        metavar="LAYER.HEAD",
        help="silence an attention head first, e.g. 2.5 (from 0; repeatable)",
    )
    parser.add_argument(
        "--skip-layer",
        action="append",
        type=int,
        default=[],
        metavar="LAYER",
        help="bypass a whole block first (from 0; repeatable)",
    )
    parser.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        help="replace the feed-forward activation of every block",
    )


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        from ..study.figures import require_matplotlib

        require_matplotlib()  # say so now, not after loading the model
    model = load_model(args.model, device=resolve_device(args.device))
    tokenizer = Tokenizer.from_pretrained(args.model)
    with ExitStack() as stack:  # undone on leaving, also if one of them is refused
        interventions = []
        if args.mask_head:
            interventions.append(
                stack.enter_context(mask_heads(model, parse_heads(args.mask_head)))
            )
        if args.skip_layer:
            interventions.append(stack.enter_context(skip_layers(model, args.skip_layer)))
        if args.activation:
            interventions.append(stack.enter_context(replace_activation(model, args.activation)))
        inspection = inspect_text(model, tokenizer, args.text)
    if interventions:
        print("Interventions: " + "; ".join(i.description for i in interventions) + "\n")
    print(inspection.render())
    if args.out is not None:
        from ..study.figures import save_figures

        paths = save_figures(inspection, args.out)
        print(f"\nWrote {len(paths)} figures:")
        for path in paths:
            print(f"  {path}")
    return 0
