"""Load a trained run for inference: its model, checkpoint weights, eval transform and feature."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from dml.errors import DmlError

CHECKPOINTS = ("best", "last")


@dataclass
class LoadedRun:
    """A run's model with its checkpoint's weights, in eval mode, and how the run embedded."""

    run_dir: Path
    checkpoint: str  # "best" | "last"
    checkpoint_path: Path
    checkpoint_sha256: str  # identifies the weights: an index records it
    config: DictConfig  # the run's config, keys added since the run filled by their defaults
    model: torch.nn.Module
    transform: Callable[[Any], torch.Tensor]  # PIL image -> normalised (3, S, S) tensor
    flip: bool  # eval.flip: the mirrored image's raw features added before normalising
    feature: str  # "embedding" | "pooled"
    device: torch.device

    @property
    def image_size(self) -> int:
        """Side S of the square crop the model sees."""
        return int(self.config.dataset.image_size)

    @property
    def batch_size(self) -> int:
        """The run's eval.batch_size."""
        return int(self.config.eval.get("batch_size", 128))


def checkpoint_path(run_dir: Path, checkpoint: str = "best") -> Path:
    """<run_dir>/checkpoints/<checkpoint>.pt; DmlError naming what is missing."""
    if checkpoint not in CHECKPOINTS:
        raise DmlError(f"checkpoint '{checkpoint}': expected one of {list(CHECKPOINTS)}")
    if not run_dir.is_dir():
        raise DmlError(f"run directory not found: {run_dir}")
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if path.is_file():
        return path
    others = [c for c in CHECKPOINTS if (run_dir / "checkpoints" / f"{c}.pt").is_file()]
    if others:
        hint = f"; it has {others[0]}.pt (--checkpoint {others[0]})"
    else:
        hint = " (no epoch completed, or trainer.save_checkpoints=false)"
    raise DmlError(f"run {run_dir} has no checkpoint {path.name}{hint}")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_run(
    run_dir: str | Path,
    checkpoint: str = "best",
    device: str | torch.device = "auto",
    feature: str | None = None,
) -> LoadedRun:
    """A run's model with best.pt (or last.pt) loaded, on device ('auto': CUDA when present).

    feature: None keeps the run's eval.feature; "embedding" or "pooled" overrides it.
    """
    from dml.config import with_schema_defaults
    from dml.data.transforms import eval_transform
    from dml.evaluation.embed import FEATURES
    from dml.models import build_model
    from dml.training.checkpoint import load_checkpoint
    from dml.training.device import pick_device

    run_dir = Path(run_dir).resolve()
    path = checkpoint_path(run_dir, checkpoint)
    try:
        state = load_checkpoint(path)
    except Exception as exc:  # torch.load raises anything from pickle to zip errors
        raise DmlError(f"cannot read checkpoint {path}: {first_line(exc)}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise DmlError(f"{path} is not a dml checkpoint (no model weights)")
    cfg = with_schema_defaults(_run_config(run_dir, state))
    chosen = feature or str(cfg.eval.get("feature", "embedding"))
    if chosen not in FEATURES:
        raise DmlError(f"feature '{chosen}': expected one of {list(FEATURES)}")
    target = device if isinstance(device, torch.device) else pick_device(str(device))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # build_model's summary line
            # the checkpoint replaces every weight: no pretrained file is read or made
            model = build_model(cfg.model, cfg.pruning, cfg.dataset.image_size)
        model.load_state_dict(state["model"])
    except DmlError:
        raise
    except (RuntimeError, KeyError, ValueError, AttributeError) as exc:
        raise DmlError(f"cannot rebuild the model of {path}: {first_line(exc)}") from None
    return LoadedRun(
        run_dir=run_dir,
        checkpoint=checkpoint,
        checkpoint_path=path,
        checkpoint_sha256=file_sha256(path),
        config=cfg,
        model=model.to(target).eval(),
        transform=eval_transform(cfg.dataset),
        flip=bool(cfg.eval.get("flip", False)),
        feature=chosen,
        device=target,
    )


def _run_config(run_dir: Path, state: dict) -> dict:
    """The config stored with the weights; results.json's for checkpoints without one."""
    if isinstance(state.get("config"), dict):
        return state["config"]
    from dml.logging.runs import read_run_results

    config = read_run_results(run_dir).get("config")
    if not isinstance(config, dict):
        raise DmlError(f"run {run_dir}: neither the checkpoint nor results.json holds a config")
    return config


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its type name when empty)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
