"""dml.inference.index: a saved index written, appended, read back and refused."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from importlib.metadata import version
from pathlib import Path

import faiss
import numpy as np
import pytest

from dml.errors import DmlError
from dml.inference import (
    add_to_index,
    build_index,
    embed_folder,
    index_bytes,
    load_run,
    open_index,
)
from dml.inference.index import MANIFEST
from tests.inference.tiny import BROKEN, other_run


def _classes(images: Path) -> list[Path]:
    return sorted(p for p in images.iterdir() if p.is_dir())


def test_build_index_writes_what_it_embedded(loaded, images: Path, tmp_path: Path) -> None:
    """Bugs caught: index rows out of step with the paths or labels, a faiss index of another
    metric (L2) or of unnormalised rows, labels not the sub-folder names, a manifest that
    misnames the run, checkpoint, feature, count or dml version, a size that leaves files out."""
    update = build_index(loaded, images, tmp_path / "idx", progress=False)
    _, embedded = embed_folder(loaded, images, progress=False)
    index = open_index(tmp_path / "idx")
    assert (update.added, update.already) == (12, 0)
    assert index.paths == [str(p) for p in embedded.paths]
    np.testing.assert_array_equal(index.embeddings, embedded.embeddings)
    np.testing.assert_array_equal(index.faiss_index.reconstruct_n(0, 12), embedded.embeddings)
    assert index.faiss_index.metric_type == faiss.METRIC_INNER_PRODUCT
    assert isinstance(index.faiss_index, faiss.IndexFlatIP)
    assert index.label_names() == [Path(p).parent.name for p in index.paths]
    assert index.classes == [p.name for p in _classes(images)]
    assert index.labels.tolist() == [0] * 6 + [1] * 6
    m = index.manifest
    assert (m["run"], m["checkpoint"], m["feature"], m["count"], m["dim"]) == (
        str(loaded.run_dir),
        "best",
        "embedding",
        12,
        128,
    )
    assert m["checkpoint_sha256"] == loaded.checkpoint_sha256
    assert m["dml_version"] == version("dml")
    assert m["folders"] == [str(images)]
    on_disk = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp_path / "idx") for f in fs
    )
    assert index_bytes(index) == on_disk


def test_append_adds_only_new_images_and_keeps_old_rows(
    loaded, images: Path, tmp_path: Path
) -> None:
    """Bugs caught: an append that rebuilds or reorders the old rows, adds the same image
    twice, loses the first folder's labels, or leaves the previous data folder behind."""
    first, second = _classes(images)
    folder = tmp_path / "imgs"
    shutil.copytree(first, folder / first.name, ignore=shutil.ignore_patterns(BROKEN))
    before = build_index(loaded, folder, tmp_path / "idx", progress=False).index
    shutil.copytree(second, folder / second.name)
    update = add_to_index(loaded, folder, tmp_path / "idx", progress=False)
    after = open_index(tmp_path / "idx")
    assert (update.added, update.already, after.count) == (6, 6, 12)
    np.testing.assert_array_equal(after.embeddings[:6], before.embeddings)
    assert after.paths[:6] == before.paths
    assert after.classes == [first.name, second.name]
    assert after.labels.tolist() == [0] * 6 + [1] * 6
    assert after.faiss_index.ntotal == 12
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [MANIFEST, "v2"]
    again = add_to_index(loaded, folder, tmp_path / "idx", progress=False)
    assert (again.added, again.already, open_index(tmp_path / "idx").manifest["generation"]) == (
        0,
        12,
        2,
    )


def test_an_interrupted_append_leaves_the_previous_index(
    loaded, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug caught: an append interrupted half way (Ctrl-C, a full disk) leaving embeddings,
    paths and faiss index of different lengths, or the old index gone."""
    first, _ = _classes(images)
    folder = tmp_path / "imgs"
    shutil.copytree(first, folder / first.name, ignore=shutil.ignore_patterns(BROKEN))
    build_index(loaded, folder, tmp_path / "idx", progress=False)
    before = open_index(tmp_path / "idx")
    shutil.copytree(images, tmp_path / "more", ignore=shutil.ignore_patterns(BROKEN, "*.txt"))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("dml.inference.index.np.save", interrupted)
        with pytest.raises(KeyboardInterrupt):
            add_to_index(loaded, tmp_path / "more", tmp_path / "idx", progress=False)
    kept = open_index(tmp_path / "idx")
    assert (kept.count, kept.paths, kept.manifest) == (6, before.paths, before.manifest)
    np.testing.assert_array_equal(kept.embeddings, before.embeddings)
    assert add_to_index(loaded, tmp_path / "more", tmp_path / "idx", progress=False).added == 12
    assert open_index(tmp_path / "idx").count == 18


def test_an_interrupted_build_leaves_nothing(
    loaded, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug caught: a first build interrupted half way leaving a data folder in --out, so
    that the next try is refused as 'already holds other files'."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("dml.inference.index.np.save", interrupted)
        with pytest.raises(KeyboardInterrupt):
            build_index(loaded, images, tmp_path / "idx", progress=False)
    assert not (tmp_path / "idx").exists()
    assert build_index(loaded, images, tmp_path / "idx", progress=False).index.count == 12


def test_another_run_or_feature_is_refused(
    loaded, run_dir: Path, images: Path, tmp_path: Path
) -> None:
    """Bugs caught: an index mixing embeddings of two models (or of two features), which
    would rank by meaningless scores; a run refused only because its folder moved."""
    build_index(loaded, images, tmp_path / "idx", progress=False)
    other = load_run(other_run(run_dir, tmp_path / "other"), device="cpu")
    with pytest.raises(DmlError, match="was built with .* not with .*other"):
        add_to_index(other, images, tmp_path / "idx", progress=False)
    pooled = dataclasses.replace(loaded, feature="pooled")
    with pytest.raises(DmlError, match="feature embedding\\), not with .*feature pooled"):
        add_to_index(pooled, images, tmp_path / "idx", progress=False)
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    update = add_to_index(load_run(moved, device="cpu"), images, tmp_path / "idx", progress=False)
    assert (update.added, update.already) == (0, 12)
    assert open_index(tmp_path / "idx").manifest["generation"] == 1


def test_out_must_be_new_or_empty(loaded, images: Path, tmp_path: Path) -> None:
    """Bug caught: building over a folder of other files, or over an existing index (which
    would replace it), instead of refusing and leaving both as they were."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(DmlError, match="already holds other files"):
        build_index(loaded, images, other, progress=False)
    assert [p.name for p in other.iterdir()] == ["thesis.tex"]
    assert (other / "thesis.tex").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    build_index(loaded, images, empty, progress=False)
    manifest = (empty / MANIFEST).read_text()
    with pytest.raises(DmlError, match="already holds an index"):
        build_index(loaded, images, empty, progress=False)
    assert (empty / MANIFEST).read_text() == manifest


def test_labels_need_one_sub_folder_per_class(loaded, images: Path, tmp_path: Path) -> None:
    """Bugs caught: labels invented for a folder of loose images, and a labelled index
    extended with images of no class (their labels would be made up)."""
    first, second = _classes(images)
    loose = tmp_path / "loose"
    shutil.copytree(first, loose / first.name, ignore=shutil.ignore_patterns(BROKEN))
    shutil.copy(next(second.glob("*.png")), loose / "top.png")
    index = build_index(loaded, loose, tmp_path / "plain", progress=False).index
    assert (index.labels, index.classes, index.label_names(), index.count) == (None, None, None, 7)
    assert not list((tmp_path / "plain" / "v1").glob("labels*"))
    build_index(loaded, images, tmp_path / "labelled", progress=False)
    with pytest.raises(DmlError, match="has labels .* images outside class sub-folders"):
        add_to_index(loaded, loose, tmp_path / "labelled", progress=False)


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "index directory not found"),
        ("no_manifest", r"is not a dml index \(no index.json\)"),
        ("bad_json", "cannot read .*index.json"),
        ("newer", "written by a newer dml .* index format 99"),
        ("short_paths", "is damaged: 12 images expected, paths.json 11"),
        ("no_faiss", "is damaged"),
    ],
)
def test_open_index_errors(loaded, images: Path, tmp_path: Path, case: str, needle: str) -> None:
    """Bug caught: a folder that is not an index (or a damaged one) read as an empty or
    mismatched index, or failing with a faiss/numpy traceback."""
    idx = tmp_path / "idx"
    if case == "no_manifest":
        idx.mkdir()
    elif case != "missing":
        build_index(loaded, images, idx, progress=False)
    manifest = idx / MANIFEST
    if case == "bad_json":
        manifest.write_text("{")
    elif case == "newer":
        manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"format": 99}))
    elif case == "short_paths":
        paths = idx / "v1" / "paths.json"
        paths.write_text(json.dumps(json.loads(paths.read_text())[:-1]))
    elif case == "no_faiss":
        (idx / "v1" / "index.faiss").unlink()
    with pytest.raises(DmlError, match=needle):
        open_index(idx)
