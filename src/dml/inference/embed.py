"""Embed image files with a loaded run: list a folder, decode, transform, batch, normalise."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dml.data.checks import is_image_name
from dml.errors import DmlError
from dml.inference.model import LoadedRun

NOT_AN_IMAGE = "not a JPEG or PNG file"


@dataclass
class ImageList:
    """Image files found under a folder (sorted) and the other files, each with why it is left."""

    root: Path
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


@dataclass
class Embedded:
    """Embeddings (float32, n x d, rows L2-normalised) of the images that could be read."""

    paths: list[Path]
    embeddings: np.ndarray
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def list_images(location: str | Path) -> ImageList:
    """JPEG and PNG files under a folder (recursively, sorted), or one image file.

    Hidden files and folders (.DS_Store, .ipynb_checkpoints) are left out silently; other
    files are listed as skipped. DmlError when nothing is there to embed.
    """
    root = Path(location).resolve()
    if root.is_file():
        if not is_image_name(root):
            raise DmlError(f"{root} is {NOT_AN_IMAGE}")
        return ImageList(root.parent, [root])
    if not root.is_dir():
        raise DmlError(f"image folder not found: {root}")
    found = ImageList(root, [])
    for path in sorted(root.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
        if hidden or not path.is_file():
            continue
        if is_image_name(path):
            found.paths.append(path)
        else:
            found.skipped.append((path, NOT_AN_IMAGE))
    if not found.paths:
        raise DmlError(f"no JPEG or PNG images in {root}")
    return found


def folder_classes(root: Path, paths: Sequence[Path]) -> list[str] | None:
    """Each image's class, its sub-folder's name, when every image lies directly in a
    sub-folder of root (one sub-folder per class); None otherwise."""
    parts = [Path(p).relative_to(root).parts for p in paths]
    if not parts or any(len(p) != 2 for p in parts):
        return None
    return [p[0] for p in parts]


class ImageFiles(Dataset):
    """(eval-transformed image, its index) per path; (zeros, -1) for a file that cannot be
    decoded, so that one bad file does not stop a batch (its reason is found afterwards)."""

    def __init__(self, paths: Sequence[Path], transform, image_size: int) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.blank = torch.zeros(3, image_size, image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            return self.transform(read_rgb(self.paths[i])), i
        except (OSError, ValueError, DmlError):
            return self.blank, -1


def read_rgb(path: Path) -> Image.Image:
    """The file decoded as an RGB PIL image; DmlError with the reason when it cannot be."""
    from PIL import UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB")  # decodes fully: a truncated file fails here
    except UnidentifiedImageError:
        raise DmlError("not a readable JPEG or PNG image") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DmlError(f"cannot decode: {exc}") from None


def unreadable_reason(path: Path) -> str:
    """Why read_rgb fails on path (read again in this process: a loader worker's error is lost)."""
    try:
        read_rgb(path)
    except DmlError as exc:
        return str(exc)
    return "the transform failed"  # decoded here, so the resize or crop refused it


class _Progress:
    """A DataLoader seen through a progress bar that advances as batches are consumed;
    keeps .dataset, which compute_embeddings sizes its output from."""

    def __init__(self, loader: DataLoader, bar: tqdm) -> None:
        self.loader, self.dataset, self.bar = loader, loader.dataset, bar

    def __iter__(self) -> Iterator:
        for images, index in self.loader:
            yield images, index
            self.bar.update(len(index))  # after the batch was embedded


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """float32 rows of unit norm (norms in float64; zero rows stay zero), as evaluation does."""
    x64 = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x64, axis=1, keepdims=True)
    return (x64 / np.maximum(norms, 1e-12)).astype(np.float32)


def embed_images(
    run: LoadedRun,
    paths: Sequence[str | Path],
    batch_size: int | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    skipped: Sequence[tuple[Path, str]] = (),
    require: bool = True,
) -> Embedded:
    """L2-normalised embeddings of image files with the run's eval transform, flip and feature.

    Files that cannot be decoded are left out with a `warning: skipped <path>: <reason>` line
    each on stderr (also those passed in `skipped`), and their count at the end. DmlError when
    none can be read, unless require is False (then no rows). num_workers: loader processes
    (None: as training chooses for this machine).
    """
    from dml.data.loaders import loader_workers
    from dml.evaluation.embed import compute_embeddings

    files = [Path(p) for p in paths]
    if not files:
        raise DmlError("no images to embed")
    loader = DataLoader(
        ImageFiles(files, run.transform, run.image_size),
        batch_size=batch_size or run.batch_size,
        num_workers=loader_workers(num_workers, run.device),
        pin_memory=run.device.type == "cuda",
    )
    with tqdm(total=len(files), desc="embedding", unit="img", disable=not progress) as bar:
        emb, index = compute_embeddings(
            run.model, _Progress(loader, bar), run.device, run.flip, run.feature
        )
    good = index >= 0
    lost = list(skipped) + [(files[i], unreadable_reason(files[i])) for i in np.flatnonzero(~good)]
    report_skipped(lost, len(files) + len(skipped))
    if require and not good.any():
        raise DmlError(f"none of the {len(files)} image file(s) could be read")
    return Embedded([files[i] for i in index[good]], l2_normalise(emb[good]), lost)


def report_skipped(skipped: Sequence[tuple[Path, str]], total: int) -> None:
    """One `warning: skipped` line per file on stderr, then how many of total were skipped."""
    for path, reason in skipped:
        tqdm.write(f"warning: skipped {path}: {reason}", file=sys.stderr)
    if skipped:
        tqdm.write(f"warning: skipped {len(skipped)} of {total} file(s)", file=sys.stderr)


def embed_folder(
    run: LoadedRun, location: str | Path, batch_size: int | None = None, progress: bool = True
) -> tuple[ImageList, Embedded]:
    """list_images then embed_images: the folder's (or the one file's) readable images."""
    found = list_images(location)
    return found, embed_images(
        run, found.paths, batch_size, progress=progress, skipped=found.skipped
    )
