"""lr_policy=replay: train with the per-group, per-epoch LRs a finished run recorded.

`history[i]["lr"]` of a run's results.json holds each param group's LR at the end of epoch i;
AutoLR's LRs are constant within an epoch, so replaying them reproduces its LR profile as a
plain loop, with no trials and no re-runs (an AutoLR profile on another seed, backbone or
dataset at a single pass per epoch). A schedule that moves within an epoch (cyclic, SGDR) is
replayed at its end-of-epoch value, held for the whole epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dml.errors import DmlError
from dml.logging.runs import read_run_results
from dml.policies.base import POLICIES, LRPolicy, LRPolicyConfig, PolicyContext


@dataclass
class ReplayPolicyConfig(LRPolicyConfig):
    run: str | None = None  # the finished run whose history[i]["lr"] is replayed


def recorded_lrs(run_dir: str | Path) -> list[dict[str, float]]:
    """history[i]["lr"] of every epoch of a run (one {group name: LR} per epoch)."""
    where = f"lr_policy.run={run_dir}"
    try:
        results = read_run_results(Path(run_dir))
    except DmlError as exc:
        raise DmlError(f"{where}: {exc}") from None
    rows = [row.get("lr") for row in results.get("history") or []]
    if not rows or not all(isinstance(r, dict) and r for r in rows):
        raise DmlError(f"{where}: its results.json records no per-epoch LRs (history[i].lr)")
    return rows


class ReplayPolicy(LRPolicy):
    """Each group's LR at each epoch as the recorded run had it; never asks for a re-run."""

    name = "replay"

    def __init__(self, run_dir: str | None) -> None:
        if not run_dir:
            raise DmlError(
                "lr_policy=replay needs lr_policy.run=<run dir>: the folder of a finished run "
                "whose results.json holds the LRs to replay"
            )
        self.run_dir = str(run_dir)
        self.table = recorded_lrs(run_dir)

    def setup(self, ctx: PolicyContext) -> None:
        """Check that the recorded run had these param groups and enough epochs."""
        super().setup(ctx)
        ours, theirs = [g.name for g in ctx.groups], list(self.table[0])
        if ours != theirs:
            raise DmlError(
                f"lr_policy.run={self.run_dir}: its param groups {theirs} differ from this "
                f"run's {ours}; replay needs the same backbone, pruning and loss"
            )
        if len(self.table) < ctx.epochs:
            raise DmlError(
                f"lr_policy.run={self.run_dir} recorded {len(self.table)} epochs; this run "
                f"trains {ctx.epochs} (trainer.epochs)"
            )

    def begin_epoch(self, epoch: int) -> None:
        """Set every group to the LR the recorded run had in this epoch."""
        row = self.table[epoch]
        self.set_lrs([row[g.name] for g in self.ctx.groups])

    def report(self) -> dict:
        """Which run was replayed."""
        return {"replay": {"run": self.run_dir}}


@POLICIES.register("replay", ReplayPolicyConfig)
def build_replay(cfg) -> ReplayPolicy:
    """The recorded LRs of lr_policy.run."""
    return ReplayPolicy(cfg.run)
