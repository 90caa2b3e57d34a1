"""A saved image index: faiss (exact inner product), embeddings, paths, labels and a manifest.

An index directory holds `index.json` (the manifest: run, checkpoint and its SHA-256,
feature, image count, classes, dml version) and one data folder `v<generation>/` with
`index.faiss`, `embeddings.npy`, `paths.json` and, for a labelled folder, `labels.npy`.
Every change writes a new data folder and then replaces index.json in one atomic rename,
so an interrupted build or append leaves the previous index whole; the old folder is
removed only after the new manifest is in place.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from dml.errors import DmlError
from dml.files import write_json
from dml.inference.embed import Embedded, embed_images, folder_classes, list_images
from dml.inference.model import LoadedRun, first_line

MANIFEST = "index.json"
FORMAT = 1  # bumped when the files of an index change meaning; older dml refuses newer
FILES = ("index.faiss", "embeddings.npy", "paths.json")
LABELS = "labels.npy"


@dataclass
class ImageIndex:
    """An opened index: the faiss index, its rows' embeddings, paths and labels."""

    directory: Path
    manifest: dict[str, Any]
    faiss_index: faiss.Index
    embeddings: np.ndarray  # (n, d) float32, rows L2-normalised
    paths: list[str]  # absolute
    labels: np.ndarray | None  # (n,) int64 ids into classes; None without class sub-folders

    @property
    def count(self) -> int:
        """Number of images in the index."""
        return len(self.paths)

    @property
    def feature(self) -> str:
        """The feature the index holds: "embedding" or "pooled"."""
        return str(self.manifest["feature"])

    @property
    def classes(self) -> list[str] | None:
        """Class names (label id -> sub-folder name), None for an unlabelled index."""
        return self.manifest.get("classes")

    def label_names(self) -> list[str] | None:
        """Each image's class name, None for an unlabelled index."""
        if self.labels is None or self.classes is None:
            return None
        return [self.classes[i] for i in self.labels]


@dataclass
class IndexUpdate:
    """What build_index or add_to_index did: the index now, images added, images already in
    it (left as they were) and files skipped while reading."""

    index: ImageIndex
    added: int
    already: int
    embedded: Embedded | None  # None when nothing new was embedded


def dml_version() -> str:
    """The installed dml's version ("unknown" for a source tree that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dml")
    except PackageNotFoundError:
        return "unknown"


def is_index(directory: Path) -> bool:
    """True when directory holds an index manifest."""
    return (Path(directory) / MANIFEST).is_file()


def build_index(
    run: LoadedRun,
    folder: str | Path,
    out: str | Path,
    batch_size: int | None = None,
    progress: bool = True,
) -> IndexUpdate:
    """Embed the images under folder with run and write a new index to out.

    out must not exist or be an empty folder: anything else is refused, never overwritten.
    """
    out = Path(out).resolve()
    if out.is_file():
        raise DmlError(f"{out} is a file: choose an empty or new folder for --out")
    if out.exists() and any(out.iterdir()):
        what = "an index (add images to it instead)" if is_index(out) else "other files"
        raise DmlError(f"{out} already holds {what}: choose an empty or new --out")
    found = list_images(folder)
    classes = folder_classes(found.root, found.paths)
    embedded = embed_images(run, found.paths, batch_size, progress=progress, skipped=found.skipped)
    names = sorted(set(classes)) if classes is not None else None
    labels = _label_ids(found.paths, classes, embedded.paths, names)
    manifest = _new_manifest(run, embedded.embeddings.shape[1], names)
    manifest["folders"] = [str(found.root)]
    created = not out.exists()
    try:
        index = _commit(out, manifest, embedded.embeddings, _strings(embedded.paths), labels)
    except BaseException:  # Ctrl-C or a full disk: leave out as it was, or a retry is refused
        shutil.rmtree(out / "v1", ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return IndexUpdate(index, embedded.embeddings.shape[0], 0, embedded)


def add_to_index(
    run: LoadedRun,
    folder: str | Path,
    directory: str | Path,
    batch_size: int | None = None,
    progress: bool = True,
) -> IndexUpdate:
    """Append the images under folder (those not in the index yet) to an existing index.

    The run must be the one that built the index (same checkpoint file and feature). A
    labelled index needs a folder with one sub-folder per class; new class names are added.
    """
    index = open_index(directory)
    check_same_model(index, run)
    found = list_images(folder)
    classes = folder_classes(found.root, found.paths)
    if index.labels is not None and classes is None:
        raise DmlError(
            f"index {index.directory} has labels (one sub-folder per class) but {found.root} "
            "has images outside class sub-folders: give a folder of class sub-folders"
        )
    known = set(index.paths)
    new = [p for p in found.paths if str(p) not in known]
    already = len(found.paths) - len(new)
    if not new:
        return IndexUpdate(index, 0, already, None)
    embedded = embed_images(
        run, new, batch_size, progress=progress, skipped=found.skipped, require=False
    )
    if not embedded.paths:  # only files that could not be read again
        return IndexUpdate(index, 0, already, embedded)
    names = None
    labels = None
    if index.labels is not None:
        names = index.classes + sorted(set(classes) - set(index.classes))
        new_ids = _label_ids(found.paths, classes, embedded.paths, names)
        labels = np.concatenate([index.labels, new_ids])
    manifest = dict(index.manifest, classes=names, count=None)
    manifest["folders"] = list(dict.fromkeys([*index.manifest["folders"], str(found.root)]))
    index.faiss_index.add(embedded.embeddings)  # in memory: the files on disk stay as they are
    index = _commit(
        index.directory,
        manifest,
        np.concatenate([index.embeddings, embedded.embeddings]),
        index.paths + _strings(embedded.paths),
        labels,
        index.faiss_index,
    )
    return IndexUpdate(index, len(embedded.paths), already, embedded)


def open_index(directory: str | Path) -> ImageIndex:
    """Read an index directory; DmlError in one line when it is not a readable index."""
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise DmlError(f"index directory not found: {directory}")
    if not is_index(directory):
        raise DmlError(f"{directory} is not a dml index (no {MANIFEST})")
    manifest = _read_manifest(directory / MANIFEST)
    data = directory / str(manifest.get("data", ""))
    try:
        faiss_index = faiss.read_index(str(data / "index.faiss"))
        embeddings = np.load(data / "embeddings.npy")
        paths = json.loads((data / "paths.json").read_text(encoding="utf-8"))
        labels = np.load(data / LABELS) if manifest.get("classes") is not None else None
    except (OSError, ValueError, RuntimeError) as exc:  # faiss raises RuntimeError
        raise DmlError(f"index {directory} is damaged: {first_line(exc)}") from None
    index = ImageIndex(directory, manifest, faiss_index, embeddings, paths, labels)
    _check_consistent(index)
    return index


def check_same_model(index: ImageIndex, run: LoadedRun) -> None:
    """DmlError unless run embeds as the index's images were: the same checkpoint file
    (by SHA-256, wherever the run now lies) and the same feature."""
    m = index.manifest
    if m["checkpoint_sha256"] == run.checkpoint_sha256 and m["feature"] == run.feature:
        return
    raise DmlError(
        f"index {index.directory} was built with {m['run']} ({m['checkpoint']}.pt "
        f"{m['checkpoint_sha256'][:12]}, feature {m['feature']}), not with {run.run_dir} "
        f"({run.checkpoint}.pt {run.checkpoint_sha256[:12]}, feature {run.feature}): "
        "embeddings of different models or features cannot be compared"
    )


def index_bytes(index: ImageIndex) -> int:
    """Size on disk of the index's manifest and current data folder, in bytes."""
    data = index.directory / index.manifest["data"]
    files = [index.directory / MANIFEST, *(p for p in data.iterdir() if p.is_file())]
    return sum(p.stat().st_size for p in files)


# ------------------------------------------------------------------ writing


def _new_manifest(run: LoadedRun, dim: int, classes: list[str] | None) -> dict[str, Any]:
    now = _now()
    return {
        "format": FORMAT,
        "dml_version": dml_version(),
        "faiss": "IndexFlatIP",
        "similarity": "inner product of L2-normalised rows (cosine)",
        "run": str(run.run_dir),
        "checkpoint": run.checkpoint,
        "checkpoint_file": str(run.checkpoint_path),
        "checkpoint_sha256": run.checkpoint_sha256,
        "feature": run.feature,
        "flip": run.flip,
        "image_size": run.image_size,
        "dim": int(dim),
        "ks": [int(k) for k in run.config.eval.ks],
        "classes": classes,
        "folders": [],
        "created": now,
        "generation": 0,
    }


def _commit(
    directory: Path,
    manifest: dict[str, Any],
    embeddings: np.ndarray,
    paths: list[str],
    labels: np.ndarray | None,
    faiss_index: faiss.Index | None = None,
) -> ImageIndex:
    """Write the data into a new generation folder, then switch index.json to it."""
    generation = int(manifest.get("generation", 0)) + 1
    data = directory / f"v{generation}"
    if data.exists():  # left by an interrupted write: index.json never named it
        shutil.rmtree(data)
    data.mkdir(parents=True)
    if faiss_index is None:
        faiss_index = faiss.IndexFlatIP(embeddings.shape[1])
        faiss_index.add(embeddings)
    faiss.write_index(faiss_index, str(data / "index.faiss"))
    np.save(data / "embeddings.npy", embeddings)
    (data / "paths.json").write_text(json.dumps(paths), encoding="utf-8")
    if labels is not None:
        np.save(data / LABELS, labels.astype(np.int64))
    previous = manifest.get("data")
    manifest = dict(
        manifest,
        generation=generation,
        data=data.name,
        count=len(paths),
        labelled=labels is not None,
        updated=_now(),
    )
    write_json(directory / MANIFEST, manifest)
    if previous and previous != data.name:
        shutil.rmtree(directory / previous, ignore_errors=True)
    return ImageIndex(directory, manifest, faiss_index, embeddings, paths, labels)


def _label_ids(
    listed: list[Path], classes: list[str] | None, kept: list[Path], names: list[str] | None
) -> np.ndarray | None:
    """Label id (position in names) of each kept path, from its listed class."""
    if classes is None or names is None:
        return None
    of = dict(zip(listed, classes))
    position = {name: i for i, name in enumerate(names)}
    return np.array([position[of[p]] for p in kept], dtype=np.int64)


def _strings(paths: list[Path]) -> list[str]:
    return [str(p) for p in paths]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------ reading


def _read_manifest(path: Path) -> dict[str, Any]:
    """index.json as a dict of a format this dml reads."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DmlError(f"cannot read {path}: {first_line(exc)}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        raise DmlError(f"{path} is not a dml index manifest (no format number)")
    if manifest["format"] > FORMAT:
        raise DmlError(
            f"{path} was written by a newer dml ({manifest.get('dml_version')}, index format "
            f"{manifest['format']}); this dml ({dml_version()}) reads format {FORMAT}"
        )
    missing = [k for k in ("data", "checkpoint_sha256", "feature", "run") if k not in manifest]
    if missing:
        raise DmlError(f"{path} is not a dml index manifest (no {', '.join(missing)})")
    return manifest


def _check_consistent(index: ImageIndex) -> None:
    """Every file holds the manifest's count of rows (a file copied from another index)."""
    n = index.manifest.get("count")
    counts = {
        "index.faiss": index.faiss_index.ntotal,
        "embeddings.npy": index.embeddings.shape[0],
        "paths.json": len(index.paths),
    }
    if index.labels is not None:
        counts[LABELS] = index.labels.shape[0]
    wrong = {name: c for name, c in counts.items() if c != n}
    if wrong:
        found = ", ".join(f"{name} {c}" for name, c in wrong.items())
        raise DmlError(f"index {index.directory} is damaged: {n} images expected, {found}")
