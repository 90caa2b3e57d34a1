"""Value checks shared by the registries' entries and dml.validation: (predicate, allowed)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from dml.registry import Check


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def positive(x: Any) -> bool:
    """A finite number > 0."""
    return _num(x) and x > 0


def non_negative(x: Any) -> bool:
    """A finite number >= 0."""
    return _num(x) and x >= 0


def at_least(n: int) -> Callable[[Any], bool]:
    """An integer >= n."""
    return lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= n


def unit_interval(x: Any) -> bool:
    """A number in (0, 1]."""
    return _num(x) and 0 < x <= 1


def share(x: Any) -> bool:
    """A number strictly between 0 and 1."""
    return _num(x) and 0 < x < 1


def one_of(*choices: Any) -> Callable[[Any], bool]:
    """One of the given values."""
    return lambda x: x in choices


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """None, or a value passing check."""
    return lambda x: x is None or check(x)


POSITIVE: Check = (positive, "a number > 0")
NON_NEGATIVE: Check = (non_negative, "a number >= 0")
UNIT_INTERVAL: Check = (unit_interval, "a number in (0, 1]")
SHARE: Check = (share, "a share strictly between 0 and 1")


def integer_at_least(n: int, note: str = "") -> Check:
    """An integer >= n, with what it means (e.g. '0: the whole epoch')."""
    return at_least(n), f"an integer >= {n}" + (f" ({note})" if note else "")


def _listed(values: list[Any]) -> str:
    shown = [str(v) for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def choice(options: Iterable[Any]) -> Check:
    """One of options, listed in the message in their order."""
    values = list(options)
    return one_of(*values), _listed(values)


class _Registered(str):
    """The names a registry holds when the message is shown (parts register later too)."""

    def __new__(cls, names: Callable[[], list[str]]) -> _Registered:
        self = super().__new__(cls, "")
        self.names = names
        return self

    def __str__(self) -> str:
        return _listed(self.names())

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def registered(names: Callable[[], list[str]]) -> Check:
    """One of the names `names()` returns when checked (a registry's options)."""
    return (lambda x: x in names()), _Registered(names)
