"""What the inference scripts share: one-line usage errors and DmlError as `error: <line>`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from dml.errors import DmlError

USAGE_ERROR = 2
INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one `error: ...` line (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print `error: <message>` and exit 2, instead of argparse's usage block."""
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)


def run_main(
    body: Callable[[argparse.Namespace], int],
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
) -> int:
    """Parse argv and run body; a DmlError becomes one `error:` line and exit code 2."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error already printed (2)
        return int(exc.code or 0)
    try:
        return body(args)
    except DmlError as exc:
        print(f"error: {'; '.join(str(exc).splitlines())}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        # files are switched in by a final rename, so what existed before is intact
        print("error: interrupted; nothing was changed", file=sys.stderr)
        return INTERRUPTED
