"""TensorBoard scalars for a run (a no-op writer when disabled)."""

from __future__ import annotations

from pathlib import Path


def _lines(*tags: str) -> list:
    return ["Multiline", list(tags)]


# TensorBoard's Custom Scalars tab: one multi-line chart per quantity, over all units
# (tags are regexes), instead of one chart per unit in the Scalars tab
CUSTOM_LAYOUT = {
    "AutoLR per epoch": {
        "LR of every group": _lines(r"lr/.*"),
        "weight variation (x1e-6) per unit": _lines(r"autolr/variation_x1e6/.*"),
        "target variation (x1e-6) per unit": _lines(r"autolr/target_x1e6/.*"),
        "sorting score and threshold": _lines(r"autolr/score", r"autolr/threshold"),
    },
    "AutoLR per trial": {
        "LR per unit": _lines(r"autolr_trial/lr/.*"),
        "weight variation (x1e-6) per unit": _lines(r"autolr_trial/variation_x1e6/.*"),
        "target variation (x1e-6) per unit": _lines(r"autolr_trial/target_x1e6/.*"),
        "sorting score and threshold": _lines(r"autolr_trial/score", r"autolr_trial/threshold"),
    },
    "Retrieval": {
        "test Recall@K": _lines(r"eval/R@.*"),
        "val Recall@K": _lines(r"val/R@.*"),
    },
}


class ScalarLogger:
    """Writes scalars to TensorBoard event files under run_dir/tb (or nowhere)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tb"))
            self.writer.add_custom_scalars(CUSTOM_LAYOUT)

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
