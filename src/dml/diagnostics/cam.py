"""Grad-CAM at the output of every backbone unit, for every saved checkpoint of a run.

The AutoLR supplement (section F, Figure 3) shows class activation maps of all layers as the
sorting quality grows, from the single-LR "initial-tune" to the tuned epochs. This module
draws the same kind of figure from a run made with `trainer.save_epoch_weights=true`: its
`checkpoints/weights/first_trial.pt` (initial-tune: epoch 0's first trial, one LR for every
unit) and every `checkpoints/weights/epoch_<E>.pt`.

The scalar whose gradient is taken. A retrieval model has no class logits, so the score of an
image is what makes it retrievable among its class: the cosine similarity between its
retrieval feature (the run's `eval.feature`: 'pooled' = model.pooled(x), 'embedding' =
model(x); without eval.flip) and the mean of the L2-normalised features of the other test
images of its class (the class centroid: at most CENTROID_IMAGES of them, the first in the
split's order, the image itself left out), computed under no_grad with the same model. The
centroid is a constant, so the gradient only flows through the image's own feature.

The map of a unit (Grad-CAM, Selvaraju et al. 2017): with A = the unit's output (C, h, w) and
g = d score / d A, map = ReLU(sum_c mean_hw(g_c) * A_c), upsampled bilinearly to the input's
size and divided by its maximum (so it lies in [0, 1]; a map with no positive evidence stays
all zero). Activations come from forward hooks on the unit modules (removed afterwards), their
gradients from torch.autograd.grad, so no parameter's .grad is touched. The model is in eval
mode, so the images of a batch do not interact and one backward pass gives every image's own
maps.

The command line (main): python scripts/cam.py <run_dir> [--images 4] [--out PNG].
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dml.cli import run_command
from dml.errors import DmlError
from dml.logging.runs import RESULTS_FILE, read_run_results

CENTROID_IMAGES = 16  # at most this many other images of the class make its centroid
WEIGHTS_DIR = Path("checkpoints") / "weights"
INITIAL = "initial-tune"
EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")

# Figure layout in output pixels (drawn 1:1 at DPI, so the PNG's size is known exactly).
CELL = 140  # side of one image tile
GAP = 6  # between the tiles of a row
ROW_GAP = 8  # between the rows of one image
GROUP_GAP = 24  # extra space above each image's group of rows (its column titles)
TITLE_BAND = 20  # column titles above each group's first row
LABEL = 190  # row-label band at the left
HEADER = 56  # figure title band at the top
MARGIN = 12
DPI = 100
OVERLAY_ALPHA = 0.5
# scripts/cam.py's --help opens with its docstring's first line
CLI_DESCRIPTION = "Grad-CAM of every unit of a run's backbone, from initial-tune to the last epoch."


class CamError(DmlError):
    """A problem with the run directory or what it needs, reported as one line."""


@dataclass(frozen=True)
class Checkpoint:
    """One saved set of weights: 'initial-tune' or 'epoch E', its file, its AutoLR score."""

    name: str
    path: Path
    score: float | None = None

    @property
    def title(self) -> str:
        """'epoch 3 (score 0.97)'; the bare name when the run has no sorting score."""
        return self.name if self.score is None else f"{self.name} (score {self.score:.2f})"


@dataclass
class CamGrid:
    """Everything the figure draws."""

    images: np.ndarray  # (n, H, W, 3) float in [0, 1]: the network inputs, de-normalised
    labels: list[int]  # class id of each image
    indices: list[int]  # test-split index of each image
    checkpoints: list[Checkpoint]
    units: list[str]  # unit1..unitK
    maps: np.ndarray  # (n, checkpoints, units, H, W) float in [0, 1]
    scores: np.ndarray  # (n, checkpoints): the cosine each map explains
    feature: str
    run_name: str


# ------------------------------------------------------------------ Grad-CAM


def grad_cam(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    modules: Sequence[nn.Module],
    x: torch.Tensor,
    size: tuple[int, int] | None = None,
) -> list[torch.Tensor]:
    """Grad-CAM maps at the output of each module: one (B, H, W) tensor in [0, 1] per module.

    score_fn(x) runs the network (through the modules) and returns one scalar per image (B,).
    size is the maps' (H, W), by default x's. A module run twice keeps its last output.
    """
    acts: list[torch.Tensor | None] = [None] * len(modules)

    def keeper(k: int):
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            acts[k] = output

        return hook

    handles = [module.register_forward_hook(keeper(k)) for k, module in enumerate(modules)]
    try:
        with torch.enable_grad():
            # a leaf that needs grad: the graph exists even when every parameter is frozen
            x = x.detach().clone().requires_grad_(True)
            scores = score_fn(x)
            missing = [k for k, a in enumerate(acts) if a is None]
            if missing:
                raise ValueError(f"modules {missing} did not run in score_fn")
            if scores.shape != (x.shape[0],):
                raise ValueError(f"score_fn must give one scalar per image, got {scores.shape}")
            grads = torch.autograd.grad(scores.sum(), acts, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    size = tuple(size or x.shape[-2:])
    maps = []
    for act, grad in zip(acts, grads):
        if grad is None:  # the score does not depend on this module at all
            grad = torch.zeros_like(act)
        weights = grad.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        cam = F.relu((weights * act).sum(dim=1, keepdim=True)).detach()
        cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]
        maps.append(normalise_maps(cam))
    return maps


def normalise_maps(cam: torch.Tensor) -> torch.Tensor:
    """Each (H, W) map of a (B, H, W) batch divided by its maximum; all-zero maps stay zero."""
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny), 0.0)


# ------------------------------------------------------------------ the retrieval scalar


def feature_fn(model: nn.Module, feature: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The run's retrieval feature: 'pooled' = model.pooled, 'embedding' = model itself."""
    from dml.evaluation.embed import FEATURES

    if feature not in FEATURES:
        raise CamError(f"eval.feature='{feature}': expected 'embedding' or 'pooled'")
    return FEATURES[feature](model)


def centroid_members(labels: Sequence[int], picked: Sequence[int], limit: int) -> list[list[int]]:
    """For each picked index: up to `limit` other indices of its class, in the split's order."""
    labels = list(labels)
    out = []
    for i in picked:
        others = [j for j, c in enumerate(labels) if c == labels[i] and j != i]
        out.append(others[:limit])
    return out


def centroids(features: torch.Tensor, members: Sequence[Sequence[int]]) -> torch.Tensor:
    """(n, D): for each row of members, the mean of the L2-normalised features it names."""
    unit = F.normalize(features, dim=1)
    return torch.stack([unit[list(m)].mean(dim=0) for m in members])


def similarity_cams(
    model: nn.Module,
    feature: str,
    images: torch.Tensor,
    centroid_images: torch.Tensor,
    members: Sequence[Sequence[int]],
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-unit Grad-CAM maps of cos(feature(image), its class centroid), and those cosines.

    images (n, 3, H, W); centroid_images (m, 3, H, W) with members[i] the rows of image i's
    class centroid. Returns ([(n, H, W) per unit], (n,) cosines); the model is left in eval.
    """
    model.eval()
    forward = feature_fn(model, feature)
    with torch.no_grad():
        target = centroids(forward(centroid_images), members)

    def score(x: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(forward(x), target, dim=1)

    maps = grad_cam(score, list(model.backbone.units), images)
    with torch.no_grad():
        cosines = score(images)
    return maps, cosines


def pick_images(labels: Sequence[int], n: int) -> list[int]:
    """n test indices, deterministically, each from a new class while classes last.

    Only classes with at least two images count (an image needs others for its centroid).
    With n <= C such classes, n classes evenly spread over the sorted class ids, the first
    image of each; beyond that, round-robin over all of them: the next image of each class.
    """
    labels = list(labels)
    members: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        members.setdefault(c, []).append(i)
    classes = sorted(c for c, m in members.items() if len(m) >= 2)
    if not classes:
        raise CamError("no test class has two images: a class centroid needs another image")
    if n <= len(classes):
        return [members[classes[(k * len(classes)) // n]][0] for k in range(n)]
    picked: list[int] = []
    depth = 0
    while len(picked) < n and depth < max(len(members[c]) for c in classes):
        picked += [members[c][depth] for c in classes if depth < len(members[c])]
        depth += 1
    return picked[:n]


# ------------------------------------------------------------------ the run


def find_checkpoints(run_dir: Path, results: dict[str, Any]) -> list[Checkpoint]:
    """initial-tune (weights/first_trial.pt) then every weights/epoch_<E>.pt by E, with the
    AutoLR sorting scores from results.json (autolr.trials[0], autolr.epochs[E]) when there."""
    folder = run_dir / WEIGHTS_DIR
    files = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    if not files:
        raise CamError(f"no weights in {folder}: re-run with trainer.save_epoch_weights=true")
    autolr = results.get("autolr") if isinstance(results.get("autolr"), dict) else {}
    trials = autolr.get("trials") or []
    by_epoch = {
        e["epoch"]: e.get("score")
        for e in autolr.get("epochs") or []
        if isinstance(e, dict) and "epoch" in e
    }
    found: list[Checkpoint] = []
    first = folder / "first_trial.pt"
    if first.is_file():
        found.append(
            Checkpoint(INITIAL, first, _number(trials[0].get("score")) if trials else None)
        )
    epochs = sorted((int(m[1]), f) for f in files if (m := EPOCH_FILE.match(f.name)))
    found += [Checkpoint(f"epoch {e}", f, _number(by_epoch.get(e))) for e, f in epochs]
    if not found:
        raise CamError(
            f"{folder} holds neither first_trial.pt nor epoch_<E>.pt: "
            "re-run with trainer.save_epoch_weights=true"
        )
    return found


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def run_config(results: dict[str, Any], base: Path | None = None) -> Any:
    """The run's config (results.json), with keys added to the schemas since the run filled
    by their defaults; a relative dataset root not found from the cwd is taken from base."""
    from dml.config import with_schema_defaults

    config = results.get("config")
    if not isinstance(config, dict):
        raise CamError(f"{RESULTS_FILE} holds no run config")
    for group in ("dataset", "model", "pruning", "eval"):
        if not isinstance(config.get(group), dict):
            raise CamError(f"the run's config has no '{group}' section")
    cfg = with_schema_defaults(config)
    root = Path(str(cfg.dataset.root))
    if not root.is_absolute() and not root.exists() and base is not None:
        cfg.dataset.root = str(base / root)
    return cfg


def load_weights(model: nn.Module, checkpoint: Checkpoint) -> None:
    """The file's "model" state dict into model; CamError when it cannot be."""
    try:
        state = torch.load(checkpoint.path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CamError(f"cannot load {checkpoint.path}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def compute_grid(run_dir: Path, n_images: int = 4, base: Path | None = None) -> CamGrid:
    """Grad-CAM maps of n test images at every unit, for every checkpoint of the run."""
    from dml.data import ImageListDataset, load_retrieval_data
    from dml.data.transforms import MEAN, STD, eval_transform
    from dml.models import build_model

    if n_images < 1:
        raise CamError(f"--images={n_images}: must be at least 1")
    run_dir = Path(run_dir)
    results = read_run_results(run_dir)
    checkpoints = find_checkpoints(run_dir, results)
    cfg = run_config(results, base)
    feature = str(cfg.eval.feature)
    feature_fn(nn.Module(), feature)  # a misspelt feature fails before the data is loaded
    test = load_retrieval_data(cfg.dataset).test
    picked = pick_images(test.labels, n_images)
    members = centroid_members(test.labels, picked, CENTROID_IMAGES)
    dataset = ImageListDataset(test, eval_transform(cfg.dataset))
    needed = sorted(set(picked) | {j for m in members for j in m})
    row = {j: r for r, j in enumerate(needed)}
    stack = torch.stack([dataset[j][0] for j in needed])
    images = stack[[row[i] for i in picked]]
    centroid_rows = [[row[j] for j in m] for m in members]

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with contextlib.redirect_stdout(io.StringIO()):  # build_model's summary line
        model = build_model(cfg.model, cfg.pruning, cfg.dataset.image_size)
    model.to(device)
    maps, scores = [], []
    for checkpoint in checkpoints:
        load_weights(model, checkpoint)
        model.to(device)
        unit_maps, cosines = similarity_cams(
            model, feature, images.to(device), stack.to(device), centroid_rows
        )
        maps.append(torch.stack(unit_maps, dim=1).cpu().numpy())  # (n, K, H, W)
        scores.append(cosines.cpu().numpy())
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    shown = (images * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    k = len(model.backbone.units)
    return CamGrid(
        images=shown,
        labels=[test.labels[i] for i in picked],
        indices=picked,
        checkpoints=checkpoints,
        units=[f"unit{j + 1}" for j in range(k)],
        maps=np.stack(maps, axis=1),
        scores=np.stack(scores, axis=1),
        feature=feature,
        run_name=f"{run_dir.parent.name}/{run_dir.name}",
    )


# ------------------------------------------------------------------ drawing


def cell_origin(row: int, col: int, per_group: int) -> tuple[int, int]:
    """(y, x) in pixels of the top-left corner of tile (row, col); col 0 is the image."""
    group = row // per_group
    y = HEADER + (group + 1) * (GROUP_GAP + TITLE_BAND) + row * (CELL + ROW_GAP)
    x = MARGIN + LABEL + col * (CELL + GAP)
    return y, x


def canvas_size(images: int, checkpoints: int, units: int) -> tuple[int, int]:
    """(height, width) in pixels of the figure of images x checkpoints rows, units + 1 cols."""
    y, x = cell_origin(images * checkpoints - 1, units, checkpoints)
    return y + CELL + MARGIN, x + CELL + MARGIN


def draw_grid(grid: CamGrid) -> Any:
    """The figure: rows (image, checkpoint) grouped by image; the image, then one map per unit."""
    from matplotlib.figure import Figure

    n, c, k = grid.maps.shape[:3]
    height, width = canvas_size(n, c, k)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)

    def axes_at(row: int, col: int) -> Any:
        y, x = cell_origin(row, col, c)
        rect = (x / width, 1 - (y + CELL) / height, CELL / width, CELL / height)
        ax = fig.add_axes(rect)
        ax.set_xticks([])
        ax.set_yticks([])
        return ax

    for i in range(n):
        for j, checkpoint in enumerate(grid.checkpoints):
            row = i * c + j
            ax = axes_at(row, 0)
            ax.imshow(grid.images[i], interpolation="nearest")
            ax.set_ylabel(
                f"{checkpoint.title}\ncos to centroid {grid.scores[i, j]:.2f}",
                rotation=0,
                ha="right",
                va="center",
                fontsize=9,
                labelpad=8,
            )
            if j == 0:
                ax.set_title(f"image {i + 1}: class {grid.labels[i]}", fontsize=9)
            for u in range(k):
                ax = axes_at(row, u + 1)
                ax.imshow(grid.images[i], interpolation="nearest")
                ax.imshow(grid.maps[i, j, u], cmap="jet", alpha=OVERLAY_ALPHA, vmin=0, vmax=1)
                if j == 0:
                    ax.set_title(grid.units[u], fontsize=9)
    fig.text(
        MARGIN / width,
        1 - MARGIN / height,
        f"{grid.run_name}: Grad-CAM at each unit's output of the cosine between the image's "
        f"{grid.feature} feature\nand its class centroid (mean of up to {CENTROID_IMAGES} other "
        "test images); red = more evidence. initial-tune = epoch 0's first trial (one LR).",
        ha="left",
        va="top",
        fontsize=10,
    )
    return fig


def cam_figure(
    run_dir: Path, n_images: int = 4, out: Path | None = None, base: Path | None = None
) -> Path:
    """Compute the grid of run_dir and write it as a PNG (default <run_dir>/cam_units.png)."""
    from dml.logging.figures import save_png

    grid = compute_grid(run_dir, n_images, base)
    out = Path(out) if out is not None else Path(run_dir) / "cam_units.png"
    return save_png(draw_grid(grid), out, dpi=DPI)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of scripts/cam.py."""
    parser = argparse.ArgumentParser(description=CLI_DESCRIPTION)
    parser.add_argument("run_dir", type=Path, help="run directory holding results.json")
    parser.add_argument("--images", type=int, default=4, help="test images (from N classes)")
    parser.add_argument("--out", type=Path, default=None, help="PNG (default <run>/cam_units.png)")
    return parser.parse_args(argv)


def draw(args: argparse.Namespace) -> int:
    """Draw the Grad-CAM grid the options ask for and print its path."""
    from dml.launch import ROOT

    if args.images < 1:
        raise DmlError(f"--images={args.images}: must be at least 1")
    # a run's relative data paths are relative to the project root, where train.py runs
    print(cam_figure(args.run_dir.resolve(), args.images, args.out, base=ROOT))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Draw the Grad-CAM grid of a run; return the exit code."""
    return run_command(draw, parse_args, argv)
