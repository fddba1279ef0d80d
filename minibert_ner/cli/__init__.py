"""The `minibert-ner` command: label texts (the default), or run a subcommand.

    minibert-ner "Some text" "More text" -m M     # label texts (cli/label.py)
    minibert-ner label --file texts.txt           # the same, by name
    minibert-ner evaluate --data test.conll       # a subcommand (cli/<name>.py)
    minibert-ner -- evaluate                      # label the text "evaluate"

Texts and options mix in any order, and options may come before the subcommand's name. Each
subcommand lives in its own module of this package, exposing `add_arguments(parser)` and
`run(args) -> int`; its docstring's first line is its line in `--help`. Building the parsers
imports no torch, so `--help` and `--version` answer at once.

Every failure ends as one line on stderr and an exit status, never a traceback: a bad argument
or a `MiniBertError` (2, or the error's own: 1 for a job that stopped part-way or an output that
cannot be written), Ctrl-C 130, SIGTERM 143, SIGHUP 129 (the terminal closed: stopped as by
SIGTERM, no temporary left), output closed by its reader (`| head`) 141.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, NoReturn

from ..errors import MiniBertError, MiniBertWarning
from .output import GuardedOutput, silence_stdout

__all__ = [
    "SUBCOMMANDS",
    "Terminated",
    "build_parser",
    "main",
    "split_command",
]

# The subcommands, each the module cli/<name>.py, in the order --help lists them.
SUBCOMMANDS = ("label", "batch", "evaluate", "train", "inspect", "serve", "export")
PROG = "minibert-ner"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_HUNG_UP = 129  # 128 + SIGHUP
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader went away, as `yes | head` ends


# The top-level usage: the default command's, and how to name a subcommand.
DEFAULT_USAGE = (
    f"{PROG} [label] [options] [TEXT ...]\n       {PROG} SUBCOMMAND [options] (see below)"
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line that says where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their layout (the examples); option help wraps at a readable width and
    ends with the option's default when the help does not say it already."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        shown = action.default not in (None, False, [], argparse.SUPPRESS)
        if action.option_strings and shown and "default" not in help_text:
            help_text += " (default: %(default)s)"
        return help_text


def summary(module: ModuleType) -> str:
    return (module.__doc__ or "").strip().splitlines()[0].rstrip(".")


def command_list() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [
        f"  {name:<{width}}  {summary(subcommand(name))}"
        + (" (the default)" if name == "label" else "")
        for name in SUBCOMMANDS
    ]
    return "subcommands (minibert-ner SUBCOMMAND --help for each):\n" + "\n".join(lines)


def subcommand(name: str) -> ModuleType:
    return importlib.import_module(f"minibert_ner.cli.{name}")


def build_parser(name: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of subcommand `name`; `prog` as it is shown in usage and errors."""
    from .. import __version__

    module = subcommand(name)
    parser = Parser(
        prog=prog or f"{PROG} {name}",
        usage=DEFAULT_USAGE if prog == PROG else None,
        description=module.__doc__,
        formatter_class=HelpFormatter,
        epilog=command_list() if prog == PROG else None,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    module.add_arguments(parser)
    return parser


def takes_value() -> dict[str, bool]:
    """Every option string of every subcommand -> whether it takes a value."""
    found: dict[str, bool] = {}
    for name in SUBCOMMANDS:
        for action in build_parser(name)._actions:
            for flag in action.option_strings:
                found[flag] = found.get(flag, False) or action.nargs != 0
    return found


def split_command(args: Sequence[str]) -> tuple[str, list[str]]:
    """(subcommand, its arguments): the first word that is neither an option nor an option's
    value names the subcommand, wherever it is; without one, or after `--`, it is `label`."""
    arity = takes_value()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            if arg in SUBCOMMANDS:
                return arg, [*args[:i], *args[i + 1 :]]
            break
        i += 2 if "=" not in arg and arity.get(arg, False) else 1
    return "label", list(args)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (`signum`), raised where the program is, so that it stops as Ctrl-C
    stops it (finished work kept, temporaries removed, one line), with its own exit status."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before)


def show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (`argv` without the program name); returns the exit status."""
    given = list(sys.argv[1:] if argv is None else argv)
    name, args = split_command(given)
    named = len(args) < len(given)  # `minibert-ner label ...`, not the default
    parser = build_parser(name, prog=None if named else PROG)
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOWrapper):
        stdout.reconfigure(encoding="utf-8")  # JSON is UTF-8, whatever the locale says
    sys.stdout = guarded = GuardedOutput(stdout)
    try:
        with terminate_as_interrupt(), warnings.catch_warnings():
            # Ours as one line each; other libraries' warnings are not the user's to act on.
            warnings.simplefilter("ignore")
            warnings.simplefilter("default", MiniBertWarning)
            warnings.showwarning = show_warning
            parsed = parser.parse_intermixed_args(args)
            status = int(subcommand(name).run(parsed) or 0)
            sys.stdout.flush()
            return status
    except MiniBertError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.exit_status
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    except Terminated as e:
        hung_up = e.signum == signal.SIGHUP
        print(f"{PROG}: {'hung up' if hung_up else 'terminated'}", file=sys.stderr)
        return EXIT_HUNG_UP if hung_up else EXIT_TERMINATED
    except KeyboardInterrupt:  # Ctrl-C: the terminal shows ^C; a command may have said more
        return EXIT_INTERRUPTED
    finally:
        sys.stdout = stdout
        if guarded.failed:
            silence_stdout()


if __name__ == "__main__":
    sys.exit(main())
