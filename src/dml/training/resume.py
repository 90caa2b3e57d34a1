"""Resuming a run in its own folder: its checkpoint, its saved config, the overrides allowed.

A run's config is saved twice, in results.json (written when the run starts) and in every
checkpoint. Resuming takes that config, not the one composed on the command line; only
overrides that cannot change the numbers (RESUME_SAFE) may be given with `resume=`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dml.cli import override_key
from dml.config import with_schema_defaults
from dml.errors import DmlError
from dml.logging import RESULTS_FILE
from dml.logging.runs import flatten
from dml.training.checkpoint import load_checkpoint

#: keys that change how a run is shown or fed, never what it computes
RESUME_SAFE = ("dataset.num_workers", "eval.batch_size", "logger.progress")
#: what a checkpoint must hold to be resumed from
CHECKPOINT_KEYS = ("config", "initial", "epoch", "model", "optimizer", "policy", "history", "rng")


def resume_state(run_dir: Path, overrides: list[str]) -> tuple[DictConfig, dict]:
    """(config to continue with, checkpoint) of run_dir; one-line DmlError when it cannot be."""
    run_dir = Path(run_dir)
    prefix = f"resume={run_dir}"
    if not run_dir.is_dir():
        raise DmlError(f"{prefix}: no such folder; expected a run folder (outputs/runs/...)")
    saved = _saved_results(run_dir, prefix)
    state = _checkpoint(run_dir / "checkpoints" / "last.pt", prefix)
    if saved is not None and "config" in saved:
        differ = _differences(saved["config"], state["config"])
        if differ:
            raise DmlError(
                f"{prefix}: checkpoints/last.pt was written by a different config than this "
                f"run's results.json ({differ}); resume only a run's own checkpoint"
            )
    # keys added to the schemas since the run started come in at their defaults
    cfg = with_schema_defaults(state["config"])
    for override in overrides:
        key = override_key(override)
        if key == "resume":
            continue
        if key not in RESUME_SAFE:
            raise DmlError(
                f"{prefix}: the override {override} would change the experiment; while "
                f"resuming only {', '.join(RESUME_SAFE)} may be set"
            )
        OmegaConf.update(cfg, key, _parse_value(override), merge=False)
    return cfg, state


def _saved_results(run_dir: Path, prefix: str) -> dict | None:
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a results.json cut short by a kill: the checkpoint alone decides
    if isinstance(saved, dict) and saved.get("status") == "completed":
        raise DmlError(f"{prefix}: the run has completed (results.json); nothing to resume")
    return saved if isinstance(saved, dict) else None


def _checkpoint(path: Path, prefix: str) -> dict:
    if not path.is_file():
        raise DmlError(
            f"{prefix}: no checkpoint ({path.name} in checkpoints/): the run completed no "
            "epoch; start it again without resume"
        )
    try:
        state = load_checkpoint(path)
    except Exception as exc:  # torch raises many kinds for a damaged file
        # torch's messages run to paragraphs: its first sentence says what broke
        detail = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise DmlError(
            f"{prefix}: checkpoints/{path.name} is unreadable ({detail}); it cannot be resumed"
        ) from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise DmlError(
            f"{prefix}: checkpoints/{path.name} is not a dml run checkpoint (no {missing[0]})"
        )
    return state


def _differences(a: dict, b: dict, limit: int = 3) -> str:
    """'key: x vs y' for the first keys where two configs differ (RESUME_SAFE keys aside)."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(k for k in fa.keys() | fb.keys() if k not in RESUME_SAFE and k != "resume")
    out = [f"{k}: {fa.get(k)} vs {fb.get(k)}" for k in keys if fa.get(k) != fb.get(k)]
    return "; ".join(out[:limit])


def _parse_value(override: str) -> Any:
    """The value of `key=value` as Hydra's override grammar reads it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(override).value()
