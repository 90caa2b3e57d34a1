"""On-disk checks shared by the dataset loaders; each failure is a one-line DmlError."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from dml.data.records import RetrievalData
from dml.errors import DmlError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def is_image_name(path: Path) -> bool:
    """True for a .jpg, .jpeg or .png file name (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def require_dir(root: Path, layout: str) -> Path:
    """Raise DmlError unless root is an existing directory; layout describes what belongs there."""
    if not root.exists():
        raise DmlError(f"dataset root {root} does not exist; expected {layout}")
    if not root.is_dir():
        raise DmlError(f"dataset root {root} is not a directory; expected {layout}")
    return root


def require_file(path: Path, content: str) -> Path:
    """Raise DmlError unless path is an existing file; content describes what it should hold."""
    if not path.is_file():
        raise DmlError(f"missing {path}; expected a file with {content}")
    return path


def read_text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; DmlError 'cannot read <path>: ...' when it cannot be."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DmlError(f"cannot read {path}: {exc}") from None


def check_images_exist(paths: Sequence[Path], listed_in: Path) -> None:
    """Raise DmlError naming the first image of paths that is missing on disk, and the count."""
    missing = [p for p in _probably_missing(paths) if not p.is_file()]
    if missing:
        raise DmlError(
            f"{len(missing)} of {len(paths)} images listed in {listed_in} are missing on disk; "
            f"first missing: {missing[0]}"
        )


def _probably_missing(paths: Sequence[Path]) -> list[Path]:
    # One listdir per folder instead of one stat per image keeps this cheap on network
    # filesystems; callers re-check the few candidates (e.g. case-insensitive filesystems).
    listings: dict[Path, set[str]] = {}
    candidates = []
    for path in paths:
        parent = path.parent
        if parent not in listings:
            try:
                listings[parent] = set(os.listdir(parent))
            except OSError:
                listings[parent] = set()
        if path.name not in listings[parent]:
            candidates.append(path)
    return candidates


def warn_if_counts_differ(
    name: str, root: Path, data: RetrievalData, expected: tuple[int, ...]
) -> None:
    """Warn (UserWarning) when the train/test (or, with a gallery, train/query/gallery) image
    counts differ from the official ones."""
    if data.gallery is None:
        found, what = (len(data.train), len(data.test)), ("train", "test")
    else:
        found = (len(data.train), len(data.test), len(data.gallery))
        what = ("train", "query", "gallery")
    if found != tuple(expected):
        counts = " / ".join(f"{n} {w}" for n, w in zip(found, what))
        warnings.warn(
            f"{name} at {root}: found {counts} images, "
            f"expected {' / '.join(map(str, expected))} (partial or modified dataset)",
            UserWarning,
            stacklevel=3,
        )
