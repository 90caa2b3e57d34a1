"""What the inference scripts share: one-line usage errors and DmlError as `error: <line>`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from dml.cli import run_command

USAGE_ERROR = 2
INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one `error: ...` line (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print `error: <message>` and exit 2, instead of argparse's usage block."""
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)


def _one_line(exc: BaseException) -> str:
    return "; ".join(str(exc).splitlines())


def run_main(
    body: Callable[[argparse.Namespace], int],
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
) -> int:
    """dml.cli.run_command with exit code 2 for a DmlError, and 130 for Ctrl-C."""
    try:
        return run_command(body, parser.parse_args, argv, code=USAGE_ERROR, message=_one_line)
    except KeyboardInterrupt:
        # files are switched in by a final rename, so what existed before is intact
        print("error: interrupted; nothing was changed", file=sys.stderr)
        return INTERRUPTED
