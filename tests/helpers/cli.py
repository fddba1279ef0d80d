"""The command line run in the test's own process, as the console script runs it."""

from __future__ import annotations

import io
import sys

from minibert_ner.cli import main


def run_in_process(
    args: list[str], capsys, stdin: bytes = b"", monkeypatch=None
) -> tuple[int, str, str]:
    """`main(args)` with `stdin` as standard input (when `monkeypatch` is given):
    (exit status, stdout, stderr)."""
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        code = main(args)
    except SystemExit as e:  # --help, --version and usage errors exit by themselves
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
