"""Generate docs/cli.md: the command line's reference, each subcommand's --help as it prints.

    python scripts/cli_reference.py              # writes docs/cli.md
    python scripts/cli_reference.py --out X.md

The text comes from the parsers themselves (minibert_ner/cli/), so it cannot drift from what
the command accepts: tests/test_cli_surface.py fails when docs/cli.md is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minibert_ner.cli import PROG, SUBCOMMANDS, build_parser  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "cli.md"


def generate() -> str:
    parts = [
        "# Command-line reference\n",
        "Generated from the parsers by `python scripts/cli_reference.py`; `minibert-ner "
        "SUBCOMMAND --help` prints the same. `label` is the default subcommand: "
        '`minibert-ner "some text"` is `minibert-ner label "some text"`. Texts and options mix '
        "in any order, and options may come before the subcommand's name.\n",
        "Exit statuses, for every subcommand: 0 done; 2 bad arguments or input (one line on "
        "stderr says what and what to do); 1 a job stopped part-way or its output cannot be "
        "written; 3 finished, but some records or lines were skipped (`batch`, `label "
        "--skip-invalid`); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM); 129 hung up "
        "(SIGHUP); 141 the output's reader went away (`| head`), whatever the format. `-o PATH`: "
        "a file appears whole or not at all (no temporary is left, also after a signal); a "
        "symbolic link stays and the file it names is replaced; a device or a pipe (`/dev/null`, "
        "`/dev/stdout`, a FIFO) is written through, never replaced.\n",
        f"## {PROG}\n\n```text\n{build_parser('label', prog=PROG).format_help()}```\n",
    ]
    for name in SUBCOMMANDS:
        parts.append(f"## {PROG} {name}\n\n```text\n{build_parser(name).format_help()}```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    args.out.write_text(generate(), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
