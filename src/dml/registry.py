"""Registries of swappable parts: one entry per option of a config group.

An entry holds the option's schema (the dataclass its YAML extends), its builder and the checks
of its own values. dml.config stores the schemas in Hydra's ConfigStore, dml.validation applies
the checks of the chosen option, error messages list the registered names, and the composition
root (dml.run) builds through the registries. A family's package imports all its modules when
it is imported (import_submodules), so a new loss, LR policy or dataset is one module that
registers itself, plus its YAML in configs/<group>/.

Why not Hydra's `_target_` instantiation alone: a target names a builder, but the schema
(typed keys for ConfigStore), the value checks and the family's own facts (does this loss own a
classifier, which tasks does this dataset serve) would still live elsewhere; an entry keeps the
four together, and the YAML keeps only values.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dml.errors import DmlError

# (predicate, what is allowed): a key's value check, as dml.validation applies it
Check = tuple[Callable[[Any], bool], str]


@dataclass(frozen=True)
class Entry:
    """One option of a group: its name, schema, builder, value checks and facts."""

    name: str
    schema: type | None
    build: Callable[..., Any]
    checks: Mapping[str, Check] = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # other config groups its builder receives, by name
    info: Mapping[str, Any] = field(default_factory=dict)


class Registry:
    """The options of one config group (or family), by name."""

    def __init__(self, group: str, what: str, checks: Mapping[str, Check] | None = None) -> None:
        self.group, self.what = group, what
        self.checks = dict(checks or {})  # checks every option shares (the base schema's keys)
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        schema: type | None = None,
        checks: Mapping[str, Check] | None = None,
        needs: tuple[str, ...] = (),
        **info: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register the decorated function as the builder of option `name`."""

        def add(build: Callable[..., Any]) -> Callable[..., Any]:
            self.add(Entry(name, schema, build, dict(checks or {}), tuple(needs), dict(info)))
            return build

        return add

    def add(self, entry: Entry) -> None:
        """Register an entry (a later registration of the same name replaces it)."""
        self._entries[entry.name] = entry

    def remove(self, name: str) -> None:
        """Forget an option (tests that register a toy part clean up with it)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry:
        """The entry of `name`; a one-line DmlError listing the options when there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise DmlError(
                f"{self.group}={name}: no such {self.what}; expected one of {', '.join(self)}"
            ) from None

    def names(self) -> list[str]:
        """Registered option names, sorted."""
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def items(self) -> list[tuple[str, Entry]]:
        """(name, entry) pairs, sorted by name."""
        return [(n, self._entries[n]) for n in self.names()]


def import_submodules(package: str) -> None:
    """Import every module of a package, so the parts it holds register themselves."""
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{info.name}")
