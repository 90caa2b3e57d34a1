"""scripts/search.py: a folder searched against its own index (table, PNG, JSON, --eval)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dml.inference import build_index, evaluate_index, load_run, open_index
from dml.plots import grid
from tests.inference.tiny import BROKEN, other_run

# search(query, *options) -> (stdout, the --json results, the --png grid as an RGB array)
Search = Callable[..., tuple[str, dict[str, Any], np.ndarray]]


@pytest.fixture(scope="module")
def index_dir(loaded, images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("search_cli") / "idx"
    build_index(loaded, images, out, progress=False)
    return out


@pytest.fixture
def search(
    script: ModuleType, index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Search:
    """The command run on index_dir with --png and --json into tmp_path; it must succeed."""

    def call(query: Path, *options: str) -> tuple[str, dict[str, Any], np.ndarray]:
        png, out = tmp_path / "grid.png", tmp_path / "hits.json"
        argv = [str(index_dir), str(query), *options, "--png", str(png), "--json", str(out)]
        assert script.main(argv) == 0
        stdout = capsys.readouterr().out
        picture = np.asarray(Image.open(png).convert("RGB"))
        return stdout, json.loads(out.read_text()), picture

    return call


def test_folder_against_its_own_index(search: Search, index_dir: Path, images: Path) -> None:
    """Bugs caught (acceptance): an image whose nearest neighbour is not itself at score 1,
    --eval numbers other than dml.evaluation's (printed and in the JSON), console, JSON and
    PNG disagreeing on the ranking or the frame colours, the JSON's labels misaligned."""
    stdout, results, picture = search(images, "--k", "3", "--eval")
    index = open_index(index_dir)
    metrics = evaluate_index(index)
    assert results["metrics"] == pytest.approx(metrics, abs=1e-12)
    shown = "  ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items())
    assert f"index against itself (12 images, %): {shown}" in stdout
    queries = results["queries"]
    assert [q["path"] for q in queries] == index.paths  # the same 12 readable images, in order
    for q in queries:
        first = q["neighbours"][0]
        assert first["path"] == q["path"] and abs(first["score"] - 1) <= 1e-5
        assert q["label"] == Path(q["path"]).parent.name
        for hit in q["neighbours"]:
            assert (
                hit["label"]
                == Path(hit["path"]).parent.name
                == index.classes[index.labels[hit["index"]]]
            )
        scores = [hit["score"] for hit in q["neighbours"]]
        assert scores == sorted(scores, reverse=True)
    rows = re.findall(r"^\s+(\d)\s+([0-9.]+)\s+(\S+)\s+(\S+?)(?:\s+(same|other))?$", stdout, re.M)
    assert len(rows) == 12 * 3
    flat = [hit for q in queries for hit in q["neighbours"]]
    assert [(int(r[0]), r[3], r[4] == "same") for r in rows] == [
        (h["rank"], h["path"], h["label"] == q["label"]) for q in queries for h in q["neighbours"]
    ]
    assert [float(r[1]) for r in rows] == pytest.approx([h["score"] for h in flat], abs=5e-5)

    assert picture.shape[:2] == grid.canvas_size(12, 3)
    for r, q in enumerate(queries):
        colours = [grid.QUERY_RGB] + [
            grid.SAME_RGB if h["label"] == q["label"] else grid.OTHER_RGB for h in q["neighbours"]
        ]
        for c, colour in enumerate(colours):
            y, x = grid.tile_origin(r, c)
            assert tuple(picture[y + 2, x + grid.TILE // 2]) == colour, (r, c)


def test_one_new_image(search: Search, index_dir: Path, images: Path, tmp_path: Path) -> None:
    """Bugs caught: a query outside the index given a made-up class (it has none), or its
    neighbours framed red/green instead of grey, k = the index size refused."""
    original = sorted(images.glob("*/*.png"))[1]
    query = tmp_path / "query.png"
    Image.open(original).transpose(Image.FLIP_LEFT_RIGHT).save(query)
    stdout, results, picture = search(query, "--k", "12")
    assert stdout.startswith(f"query {query}\n")
    assert "1 query against 12 images: embedding " in stdout
    (hits,) = [q["neighbours"] for q in results["queries"]]
    assert results["queries"][0]["label"] is None
    assert sorted(h["path"] for h in hits) == open_index(index_dir).paths  # k = all 12
    assert all(h["score"] < 1 - 1e-4 for h in hits)  # not a copy of any indexed image
    y, x = grid.tile_origin(0, 5)
    assert tuple(picture[y + 2, x + grid.TILE // 2]) == grid.UNKNOWN_RGB


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("k_too_large", ["--k 13: the index holds 12 image(s)"]),
        ("not_an_index", ["is not a dml index (no index.json)"]),
        ("other_run", ["was built with", "not with"]),
        ("nothing_asked", ["give a query image or folder, or --eval"]),
        ("missing_query", ["image folder not found"]),
        ("png_without_query", ["--png draws query results"]),
        ("eval_unlabelled", ["has no labels", "--eval needs them"]),
    ],
)
def test_errors_are_one_line(
    index_dir: Path,
    run_dir: Path,
    images: Path,
    tmp_path: Path,
    one_line_error: Callable[[list[str], list[str]], None],
    case: str,
    needles: list[str],
) -> None:
    """Bugs caught: k beyond the index silently padded, queries embedded with another run
    (--run) than the index's, a traceback or usage block instead of one `error:` line, a PNG
    or JSON written although the search failed."""
    png, out = tmp_path / "x.png", tmp_path / "x.json"
    argv = [str(index_dir), str(images), "--png", str(png), "--json", str(out)]
    if case == "k_too_large":
        argv += ["--k", "13"]
    elif case == "not_an_index":
        argv[0] = str(tmp_path)
    elif case == "other_run":
        argv += ["--run", str(other_run(run_dir, tmp_path / "other"))]
    elif case == "nothing_asked":
        argv = [str(index_dir)]
    elif case == "missing_query":
        argv[1] = str(tmp_path / "nope")
    elif case == "png_without_query":
        argv = [str(index_dir), "--eval", "--png", str(png)]
    elif case == "eval_unlabelled":
        plain = tmp_path / "plain"
        shutil.copytree(images, plain, ignore=shutil.ignore_patterns(BROKEN, "*.txt"))
        shutil.copy(next(plain.glob("*/*.png")), plain / "loose.png")
        build_index(load_run(run_dir, device="cpu"), plain, tmp_path / "pidx", progress=False)
        argv = [str(tmp_path / "pidx"), "--eval", "--json", str(out)]
    one_line_error(argv, needles)
    assert not png.exists() and not out.exists()
