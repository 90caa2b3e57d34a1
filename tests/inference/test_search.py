"""dml.inference.search: ranking by cosine, every image its own first hit, evaluation, grids."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from dml.errors import DmlError
from dml.evaluation.recall import retrieval_metrics
from dml.inference import (
    build_index,
    embed_folder,
    evaluate_index,
    list_images,
    open_index,
    run_for_index,
    search,
)
from dml.inference.embed import l2_normalise
from dml.inference.index import ImageIndex
from dml.inference.search import query_labels, render_results
from dml.plots import grid
from tests.inference.tiny import BROKEN, other_run


@pytest.fixture(scope="module")
def index_dir(loaded, images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The written image folder indexed with the tiny run."""
    out = tmp_path_factory.mktemp("search") / "idx"
    build_index(loaded, images, out, progress=False)
    return out


def _hand_index(vectors: list[list[float]], names: list[str] | None = None) -> ImageIndex:
    """An index of the given rows (normalised as build_index stores them), paths img<i>."""
    emb = l2_normalise(np.array(vectors, dtype=np.float32))
    flat = faiss.IndexFlatIP(emb.shape[1])
    flat.add(emb)
    classes = sorted(set(names)) if names else None
    labels = np.array([classes.index(n) for n in names]) if names else None
    manifest = {"classes": classes, "feature": "embedding", "ks": [1, 2]}
    paths = [f"img{i}" for i in range(len(vectors))]
    return ImageIndex(Path("/hand"), manifest, flat, emb, paths, labels)


def test_search_ranks_by_cosine_by_hand() -> None:
    """Bugs caught: ranking by raw dot product or Euclidean distance (the index rows or the
    query not normalised), ascending order, labels or paths of the wrong rows."""
    index = _hand_index([[1, 0.05], [10, 1], [3, 3], [0, 1], [-1, 0]], ["a", "b", "a", "b", "a"])
    ranked = search(index, np.array([[2.0, 0.0]]), k=4)
    # cos with (1, 0): 1/sqrt(1.0025) = .99875 > 10/sqrt(101) = .99504 > 1/sqrt(2) > 0 > -1;
    # the dot product would put [10, 1] first, the Euclidean distance [3, 3] second
    assert ranked.indices.tolist() == [[0, 1, 2, 3]]
    expected = [1 / np.sqrt(1.0025), 10 / np.sqrt(101), 1 / np.sqrt(2), 0.0]
    np.testing.assert_allclose(ranked.scores[0], expected, atol=1e-6)
    assert ranked.paths == [["img0", "img1", "img2", "img3"]]
    assert ranked.labels == [["a", "b", "a", "b"]]


@pytest.mark.parametrize(
    ("k", "query", "needle"),
    [
        (6, [[1.0, 0.0]], r"k=6: the index holds 5 image\(s\)"),
        (0, [[1.0, 0.0]], "k=0"),
        (2, [[1.0, 0.0, 0.0]], "queries are 3-d but the index holds 2-d"),
    ],
)
def test_search_errors(k: int, query: list, needle: str) -> None:
    """Bug caught: k beyond the index padded with -1 rows (faiss does that) instead of an error,
    or a query of another model's width searched anyway."""
    with pytest.raises(DmlError, match=needle):
        search(_hand_index([[1, 0]] * 5), np.array(query), k)


def test_every_image_finds_itself_first(loaded, images: Path, index_dir: Path) -> None:
    """Bugs caught (acceptance): queries embedded differently from the indexed images (another
    transform, feature or checkpoint), scores that are not cosine (1 for the image itself),
    rows of the index out of step with its paths."""
    index = open_index(index_dir)
    run = run_for_index(index, device="cpu")
    _, queries = embed_folder(run, images, progress=False)
    ranked = search(index, queries.embeddings, k=3)
    assert [row[0] for row in ranked.paths] == [str(p) for p in queries.paths]
    np.testing.assert_allclose(ranked.scores[:, 0], 1.0, atol=1e-5)
    assert len(queries.paths) == 12


def test_eval_recall_is_dml_evaluations(loaded, images: Path, index_dir: Path) -> None:
    """Bugs caught (acceptance): --eval's Recall@1 counting each image as its own neighbour,
    labels out of step with the rows, metrics of other embeddings than the index's. R@1 is
    checked three ways: dml.evaluation on freshly embedded images, and by hand from the
    second hit of a k=2 search (the first is the image itself)."""
    index = open_index(index_dir)
    metrics = evaluate_index(index)
    _, embedded = embed_folder(loaded, images, progress=False)
    labels = np.array([0 if p.parent.name.startswith("004") else 1 for p in embedded.paths])
    expected = retrieval_metrics(embedded.embeddings, labels, [1, 2, 4, 8])
    assert metrics == pytest.approx(expected, abs=1e-9)
    ranked = search(index, index.embeddings, k=2)
    assert [row[0] for row in ranked.paths] == index.paths
    by_hand = np.mean([row[1] == own for row, own in zip(ranked.labels, index.label_names())])
    assert metrics["R@1"] == pytest.approx(by_hand, abs=1e-9)
    assert set(metrics) == {"R@1", "R@2", "R@4", "R@8", "MAP@R"}


def test_evaluate_needs_labels() -> None:
    """Bug caught: --eval on an unlabelled index scoring every image against label None."""
    with pytest.raises(DmlError, match="has no labels"):
        evaluate_index(_hand_index([[1, 0], [0, 1]]))


def test_query_labels(index_dir: Path, images: Path, tmp_path: Path) -> None:
    """Bugs caught: an indexed query without its class, a query folder's class sub-folders
    ignored, a label invented for a loose query image."""
    index = open_index(index_dir)
    first = index.paths[0]
    one = list_images(first)
    assert query_labels(index, one, one.paths) == [Path(first).parent.name]
    folder = tmp_path / "q"
    cls = sorted(p for p in images.iterdir() if p.is_dir())[1]
    shutil.copytree(cls, folder / cls.name, ignore=shutil.ignore_patterns(BROKEN))
    shutil.copy(next(cls.glob("*.png")), tmp_path / "loose.png")
    listed = list_images(folder)
    assert query_labels(index, listed, listed.paths) == [cls.name] * 6
    loose = list_images(tmp_path / "loose.png")
    assert query_labels(index, loose, loose.paths) == [None]


def test_run_for_index_refuses_another_run(index_dir: Path, run_dir: Path, tmp_path: Path) -> None:
    """Bugs caught: queries embedded with a run other than the index's (given by --run), a
    moved run reported as a traceback instead of asking for --run."""
    index = open_index(index_dir)
    assert run_for_index(index, device="cpu").run_dir == run_dir.resolve()
    with pytest.raises(DmlError, match="was built with"):
        run_for_index(index, other_run(run_dir, tmp_path / "other"), device="cpu")
    index.manifest = dict(index.manifest, run=str(tmp_path / "gone"))
    with pytest.raises(DmlError, match="is not found; give the run that built it with --run"):
        run_for_index(index, device="cpu")


def test_render_frames_follow_the_labels(index_dir: Path) -> None:
    """Bugs caught: frames not coloured by class agreement, the query not blue, a grid of the
    wrong shape; grey (not red) when the query's class is unknown."""
    index = open_index(index_dir)
    ranked = search(index, index.embeddings[[0, 11]], k=7)
    paths = [Path(index.paths[0]), Path(index.paths[11])]
    labels = [index.label_names()[0], None]
    png = np.asarray(Image.open(io.BytesIO(render_results(index, paths, labels, ranked))))[..., :3]
    assert png.shape[:2] == grid.canvas_size(2, 7)
    same = [name == labels[0] for name in ranked.labels[0]]
    assert any(same) and not all(same)  # 6 images per class: the 7th hit is another class
    expected = [
        [grid.QUERY_RGB] + [grid.SAME_RGB if s else grid.OTHER_RGB for s in same],
        [grid.QUERY_RGB] + [grid.UNKNOWN_RGB] * 7,
    ]
    for r in range(2):
        for c in range(8):
            y, x = grid.tile_origin(r, c)
            assert tuple(png[y + 2, x + grid.TILE // 2]) == expected[r][c], (r, c)
