"""Command-line helpers for train.py."""

from __future__ import annotations

import re

# Hydra parses `pruning=16` and `pruning=15_16` as integers (1516 for the latter, as Python
# reads underscores), and a config-group choice must be a string; quote such choices.
NUMERIC_CHOICE_GROUPS = ("pruning",)
_GROUPS = "|".join(NUMERIC_CHOICE_GROUPS)
_NUMERIC = re.compile(rf"^(?P<key>[+~]{{0,2}}(?:{_GROUPS}))=(?P<vals>[0-9_]+(?:,[0-9_]+)*)$")


def quote_numeric_choices(argv: list[str]) -> list[str]:
    """Rewrite `pruning=16` as `pruning='16'` (also in sweeps: `pruning=16,15_16`)."""
    out = []
    for arg in argv:
        m = _NUMERIC.match(arg)
        if m:
            vals = ",".join(f"'{v}'" for v in m.group("vals").split(","))
            arg = f"{m.group('key')}={vals}"
        out.append(arg)
    return out
