"""dml.inference.embed: listing image folders and embedding files as the run evaluates."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dml.errors import DmlError
from dml.inference import embed_folder, embed_images, folder_classes, list_images
from dml.inference.embed import NOT_AN_IMAGE, l2_normalise
from tests.inference.tiny import BROKEN, NOTES


def _png(path: Path, colour: tuple[int, int, int] = (200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def _lines(text: str) -> list[str]:
    """Printed lines, progress-bar redraws (carriage returns) split off."""
    return [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]


def test_list_images_finds_jpeg_and_png_recursively(tmp_path: Path) -> None:
    """Bugs caught: sub-folders not searched, upper-case suffixes missed, an unsorted (file
    system) order, a text file silently dropped or embedded, hidden files reported."""
    root = tmp_path / "imgs"
    b = _png(root / "b" / "deep" / "y.JPEG")
    a = _png(root / "a.png")
    c = _png(root / "b" / "x.jpg")
    (root / "b" / "readme.md").write_text("#")
    _png(root / ".thumbs" / "t.png")
    (root / ".DS_Store").write_bytes(b"\0")
    found = list_images(root)
    assert found.root == root.resolve()
    assert found.paths == [a, b, c]
    assert found.skipped == [(root / "b" / "readme.md", NOT_AN_IMAGE)]
    single = list_images(c)
    assert (single.root, single.paths, single.skipped) == (c.parent, [c], [])


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("empty", "no JPEG or PNG images in"),
        ("only_text", "no JPEG or PNG images in"),
        ("missing", "image folder not found"),
        ("text_file", "is not a JPEG or PNG file"),
    ],
)
def test_list_images_errors(tmp_path: Path, case: str, needle: str) -> None:
    """Bug caught: an empty folder (or a wrong path) giving an empty index instead of one line."""
    target = tmp_path / "imgs"
    if case in ("empty", "only_text"):
        target.mkdir()
    if case == "only_text":
        (target / "a.txt").write_text("x")
    if case == "text_file":
        target = tmp_path / "a.txt"
        target.write_text("x")
    with pytest.raises(DmlError, match=needle):
        list_images(target)


def test_folder_classes_only_for_one_sub_folder_per_class(tmp_path: Path) -> None:
    """Bugs caught: labels taken from the deepest folder or the file name, labels invented
    for images lying at the top of the folder or two levels down."""
    root = tmp_path
    assert folder_classes(root, [root / "cat" / "1.png", root / "dog" / "2.png"]) == ["cat", "dog"]
    assert folder_classes(root, [root / "cat" / "1.png", root / "top.png"]) is None
    assert folder_classes(root, [root / "cat" / "x" / "1.png"]) is None


def test_l2_normalise_by_hand() -> None:
    """Bugs caught: normalising columns instead of rows, NaN for an all-zero row."""
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]], atol=1e-7)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("flip", "feature"), [(False, "embedding"), (True, "embedding"), (False, "pooled")]
)
def test_embeddings_are_the_models_features(loaded, images: Path, flip: bool, feature: str) -> None:
    """Bugs caught: eval.flip or eval.feature ignored, the mirrored view averaged after
    normalising (evaluation adds raw features, then normalises once), rows out of order
    across batches (batch size 5 over 12 images), rows not L2-normalised."""
    run = dataclasses.replace(loaded, flip=flip, feature=feature)
    paths = list_images(images).paths
    paths = [p for p in paths if p.name != BROKEN]
    embedded = embed_images(run, paths, batch_size=5, progress=False)
    x = torch.stack([run.transform(Image.open(p).convert("RGB")) for p in paths])
    forward = run.model.pooled if feature == "pooled" else run.model
    with torch.no_grad():
        raw = forward(x) + (forward(torch.flip(x, dims=[3])) if flip else 0)
    expected = raw / raw.norm(dim=1, keepdim=True)
    assert embedded.paths == paths
    np.testing.assert_allclose(embedded.embeddings, expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(embedded.embeddings, axis=1), 1.0, atol=1e-6)


def test_unreadable_files_are_skipped_and_counted(
    loaded, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bugs caught: one broken file stopping the whole folder, its row shifting the others'
    embeddings onto the wrong paths, files dropped silently or without their count."""
    found, embedded = embed_folder(loaded, images, batch_size=4, progress=False)
    warnings = [ln for ln in _lines(capsys.readouterr().err) if ln.startswith("warning:")]
    broken = next(images.glob(f"*/{BROKEN}"))
    good = [p for p in found.paths if p != broken]
    assert warnings == [
        f"warning: skipped {images / NOTES}: not a JPEG or PNG file",
        f"warning: skipped {broken}: cannot decode: image file is truncated",
        "warning: skipped 2 of 14 file(s)",
    ]
    assert embedded.paths == good and len(good) == 12
    alone = embed_images(loaded, good, progress=False)
    # another batching changes float sums in the last bits only; a shifted row changes it all
    np.testing.assert_allclose(embedded.embeddings, alone.embeddings, atol=1e-6)
    assert embedded.skipped == [
        (images / NOTES, NOT_AN_IMAGE),
        (broken, warnings[1].split(": ", 2)[2]),
    ]


def test_nothing_readable_is_one_error(loaded, images: Path, tmp_path: Path) -> None:
    """Bug caught: a folder of only broken images giving an empty (0-row) embedding array."""
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(next(images.glob(f"*/{BROKEN}")), folder / "a.png")
    with pytest.raises(DmlError, match=r"^none of the 1 image file\(s\) could be read$"):
        embed_folder(loaded, folder, progress=False)
