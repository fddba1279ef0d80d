"""Look inside the model for one text: logit lens, norms and attention per layer.

Shows the label and probability each layer would give every token
(logit lens), hidden-state norms, and what each attention head attends to. With --out, also write
PNG figures (needs the `plot` extra: pip install 'minibert-ner[plot]')."""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from ..config import ACTIVATIONS
from ..errors import JobError
from .options import (
    LOADING_FIELDS,
    add_model_argument,
    add_output_argument,
    add_pipeline_arguments,
    pipeline_options,
)
from .output import check_folder

__all__ = [
    "add_arguments",
    "run",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the text to inspect (one sentence reads best)")
    add_model_argument(parser)
    add_output_argument(
        parser,
        required=False,
        metavar="DIR",
        help="also write PNG figures into this folder (default: none)",
    )
    loading = parser.add_argument_group("model loading (as in the label command)")
    add_pipeline_arguments(loading, LOADING_FIELDS)
    parser.add_argument(
        "--mask-head",
        action="append",
        default=[],
        metavar="LAYER.HEAD",
        help="silence an attention head first, e.g. 2.5 (from 0; repeatable; default: none)",
    )
    parser.add_argument(
        "--skip-layer",
        action="append",
        type=int,
        default=[],
        metavar="LAYER",
        help="bypass a whole block first (from 0; repeatable; default: none)",
    )
    parser.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        help="replace the feed-forward activation of every block (default: the model's own)",
    )


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model
    from ..inference.pipeline import resolve_device
    from ..study.interventions import mask_heads, parse_heads, replace_activation, skip_layers
    from ..study.lens import inspect_text
    from ..tokenizer import Tokenizer

    options = pipeline_options(args)  # the loading flags, checked as the label command checks them
    if args.output is not None:
        from ..study.figures import require_matplotlib

        require_matplotlib()  # say so now, not after loading the model
        check_folder(args.output)
    model = load_model(
        args.model,
        revision=options.revision,
        token=options.token,
        device=resolve_device(options.device),
        dtype=options.dtype,
    )
    tokenizer = Tokenizer.from_pretrained(
        args.model, revision=options.revision, token=options.token
    )
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
    if args.output is not None:
        from ..study.figures import save_figures

        try:
            paths = save_figures(inspection, args.output)
        except OSError as e:
            name = e.filename or args.output
            raise JobError(f"cannot write to {name}: {e.strerror or e}") from e
        print(f"\nWrote {len(paths)} figures:")
        for path in paths:
            print(f"  {path}")
    return 0
