"""The `minibert-ner` command: label texts by default, or run a subcommand.

    minibert-ner "Some text"                 # label texts (cli/label.py)
    minibert-ner evaluate --model M ...      # a subcommand (cli/<name>.py)
    minibert-ner -- evaluate                 # label the text "evaluate"

Each subcommand lives in its own module of this package, exposing `add_arguments(parser)` and
`run(args) -> int`. Errors we raise on purpose (`MiniBertError`, bad files) end as one line on
stderr and the error's exit status (2 for bad input), never a traceback; Ctrl-C ends with 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import MiniBertError

__all__ = [
    "SUBCOMMANDS",
    "build_parser",
    "main",
]

# subcommand name -> module of minibert_ner.cli; "label" is the default action.
SUBCOMMANDS: dict[str, str] = {
    "label": "label",
    "batch": "batch",
    "inspect": "inspect",
    "evaluate": "evaluate",
    "train": "train",
    "serve": "serve",
}


def build_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    module = importlib.import_module(f"minibert_ner.cli.{SUBCOMMANDS[name]}")
    prog = "minibert-ner" if name == "label" else f"minibert-ner {name}"
    parser = argparse.ArgumentParser(prog=prog, description=module.__doc__)
    module.add_arguments(parser)
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name = "label"
    if args and args[0] in SUBCOMMANDS and args[0] != "label":
        name = args.pop(0)
    elif args and args[0] == "--":
        args.pop(0)  # what follows is text, even if it looks like a subcommand
        args.insert(0, "--")
    parser, module = build_parser(name)
    parsed = parser.parse_args(args)
    try:
        return int(module.run(parsed) or 0)
    except MiniBertError as e:
        print(f"minibert-ner: error: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
