"""Layer-wise pruning: which trailing units to remove (AutoLR section 2)."""

from __future__ import annotations

from collections.abc import Sequence

from dml.errors import DmlError


def units_to_keep(num_units: int, remove: Sequence[int] = (), remove_last: int = 0) -> int:
    """Number of leading units kept after removing a trailing set (1-based ids or a count)."""
    if remove and remove_last:
        raise DmlError("set either pruning.units or pruning.remove_last, not both")
    if remove_last:
        if not 0 <= remove_last < num_units:
            raise DmlError(
                f"pruning.remove_last={remove_last} out of range: expected 0..{num_units - 1} "
                f"for a backbone with {num_units} units"
            )
        return num_units - remove_last
    ids = sorted(set(remove))
    if not ids:
        return num_units
    trailing = list(range(num_units - len(ids) + 1, num_units + 1))
    if ids != trailing or len(ids) >= num_units:
        raise DmlError(
            f"pruning.units={list(remove)} is not a trailing set of this backbone's "
            f"{num_units} units: expected ids like {[num_units - 1, num_units]} "
            f"(or use pruning.remove_last=N)"
        )
    return num_units - len(ids)
