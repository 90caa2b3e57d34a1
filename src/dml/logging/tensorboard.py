"""TensorBoard scalars for a run (a no-op writer when disabled)."""

from __future__ import annotations

from pathlib import Path


class ScalarLogger:
    """Writes scalars to TensorBoard event files under run_dir/tb (or nowhere)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tb"))

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Record one scalar at a step."""
        if self.writer is not None:
            self.writer.add_scalar(tag, float(value), step)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        """Record several scalars named prefix/key."""
        for key, value in values.items():
            self.scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
