"""dml.plots.retrievals (scripts/show_retrievals.py): neighbours by hand in 2-d, and a grid
from a real tiny run."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from dml.plots import grid, retrievals
from tests.conftest import TINY_OVERRIDES, compose_cfg

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "show_retrievals.py"
TINY_RUN = TINY_OVERRIDES  # 6 classes: test classes 4-6, 18 test images
QUERY_LINE = re.compile(r"^query (\d+) \(class (\d+)\): (.*)$")
NEIGHBOUR = re.compile(r"(\d+) \((\d+)\) (same|other)")


@pytest.fixture(scope="module")
def sr() -> ModuleType:
    return retrievals


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch run on 6 tiny synthetic classes (3 test classes, 18 test images),
    made through dml.run.run."""
    from dml.run import run

    tmp = tmp_path_factory.mktemp("retrievals")
    cfg = compose_cfg([*TINY_RUN, f"data_dir={tmp / 'data'}"])
    GlobalHydra.instance().clear()
    assert run(cfg, tmp / "run") == 0
    return tmp / "run"


def parse_listing(stdout: str) -> list[tuple[int, int, list[tuple[int, int, bool]]]]:
    """(query index, query class, [(neighbour index, class, same)]) per printed query line."""
    rows = []
    for line in stdout.splitlines():
        match = QUERY_LINE.match(line)
        if match:
            items = [(int(i), int(c), s == "same") for i, c, s in NEIGHBOUR.findall(match[3])]
            rows.append((int(match[1]), int(match[2]), items))
    return rows


# ------------------------------------------------------------------ pure parts


def test_neighbours_by_cosine_in_2d(sr: ModuleType) -> None:
    """Bugs caught: Euclidean or raw dot product instead of cosine, the query returned as its
    own neighbour, ascending order, flags against the wrong query's label, unstable ties."""
    emb = np.array([[1, 0], [10, 1], [3, 3], [1, 0.05], [0, 1], [-1, 0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 0, 1])
    found = sr.nearest_neighbours(emb, labels, [0, 2], k=4)
    # Query 0: cosine ranks 3 (.9988) > 1 (.995) > 2 (.707) > 4 (0); the dot product would put
    # 1 first, Euclidean distance would put 4 second.
    # Query 2: 1 (.774) > 3 (.742) > 0 = 4 (.707, a tie: lower index first).
    assert found.indices.tolist() == [[3, 1, 2, 4], [1, 3, 0, 4]]
    assert found.same.tolist() == [[False, True, False, True], [False, True, False, False]]
    expected = [1 / np.sqrt(1.0025), 10 / np.sqrt(101), 1 / np.sqrt(2), 0.0]
    np.testing.assert_allclose(found.similarity[0], expected, atol=1e-6)


def test_neighbours_k_bounds(sr: ModuleType) -> None:
    """Bug caught: k = n silently padding the list with the query itself."""
    emb = np.eye(3)
    assert sr.nearest_neighbours(emb, [0, 1, 2], [1], k=2).indices.tolist() == [[0, 2]]
    with pytest.raises(ValueError, match="k=3"):
        sr.nearest_neighbours(emb, [0, 1, 2], [1], k=3)


def test_pick_queries_spreads_over_classes_reproducibly(sr: ModuleType) -> None:
    """Bugs caught: two queries of one class while another class has none, the same image
    twice, a draw that ignores --seed (global RNG) or never changes with it."""
    labels = np.array([0] * 5 + [1] * 3 + [2] * 4)
    three = sr.pick_queries(labels, 3, seed=0)
    assert sorted(labels[three].tolist()) == [0, 1, 2]
    assert sr.pick_queries(labels, 3, seed=0) == three
    assert len({tuple(sr.pick_queries(labels, 3, seed=s)) for s in range(5)}) > 1
    five = sr.pick_queries(labels, 5, seed=3)
    assert len(set(five)) == 5
    assert sorted(labels[five[:3]].tolist()) == [0, 1, 2]
    assert labels[five[3]] != labels[five[4]]
    assert sorted(sr.pick_queries(labels, 50, seed=1)) == list(range(12))


# ------------------------------------------------------------------ end to end


def test_grid_frames_match_listing_and_dataset(
    sr: ModuleType,
    tiny_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bugs caught: frame colour not following the same-class flag (or flags swapped), query
    not framed blue, labels of the wrong images, normalised tensors shown instead of the
    original files, a grid of the wrong shape, relative run dir or --out resolved after the
    chdir to the project root (not found, or the PNG written under the project)."""
    from omegaconf import OmegaConf

    from dml.data import load_retrieval_data

    monkeypatch.chdir(tmp_path)
    run_arg = os.path.relpath(tiny_run, tmp_path)
    args = [run_arg, "--queries", "3", "--k", "5", "--seed", "1", "--out", "grid.png"]
    assert sr.main(args) == 0
    stdout = capsys.readouterr().out
    out = tmp_path / "grid.png"
    assert stdout.strip().splitlines()[-1] == str(out)
    assert Path.cwd() == tmp_path  # the script's chdir is undone

    config = json.loads((tiny_run / "results.json").read_text())["config"]
    test = load_retrieval_data(OmegaConf.create(config).dataset).test
    rows = parse_listing(stdout)
    assert len(rows) == 3 and all(len(items) == 5 for _, _, items in rows)
    assert sorted(c for _, c, _ in rows) == sorted(set(test.labels))  # 3 queries, 3 classes
    flags = []
    for query, cls, items in rows:
        assert test.labels[query] == cls
        assert query not in [i for i, _, _ in items]
        for index, ncls, same in items:
            assert test.labels[index] == ncls
            assert same == (ncls == cls)
        flags.append([same for _, _, same in items])
    assert any(any(f) for f in flags) and not all(all(f) for f in flags)  # both colours drawn

    png = np.asarray(Image.open(out).convert("RGB"))
    assert png.shape[:2] == grid.canvas_size(3, 5)
    side = grid.TILE + 2 * grid.FRAME
    half = grid.FRAME // 2
    for r, (query, _, _) in enumerate(rows):
        for c in range(6):
            expected = (
                grid.QUERY_RGB if c == 0 else grid.SAME_RGB if flags[r][c - 1] else grid.OTHER_RGB
            )
            y, x = grid.tile_origin(r, c)
            # The middle of each of the four frame sides.
            border = [
                png[y + half, x + side // 2],
                png[y + side - 1 - half, x + side // 2],
                png[y + side // 2, x + half],
                png[y + side // 2, x + side - 1 - half],
            ]
            assert [tuple(p) for p in border] == [expected] * 4, (r, c)
        # 32 px original, upscaled 3x with nearest neighbour: the tile is the file itself.
        original = Image.open(test.paths[query]).convert("RGB")
        original = np.asarray(original.resize((grid.TILE, grid.TILE), Image.NEAREST), dtype=float)
        y, x = grid.tile_origin(r, 0)
        f, t = grid.FRAME, grid.TILE
        shown = png[y + f : y + f + t, x + f : x + f + t]
        assert np.abs(shown - original).mean() < 1.0


def test_top1_of_every_query_reproduces_the_run_recall(
    sr: ModuleType, tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bugs caught: checkpoint not loaded (untrained or pretrained weights), the wrong feature,
    a non-cosine similarity, the query counted as its own neighbour: with every test image a
    query and k=1, precision@1 must equal the R@1 the run reported for the same weights."""
    results = json.loads((tiny_run / "results.json").read_text())
    assert sr.main([str(tiny_run), "--queries", "18", "--k", "1"]) == 0
    out = capsys.readouterr().out
    assert len(parse_listing(out)) == 18
    precision = float(re.search(r"precision@1 of these queries: ([0-9.]+)", out)[1])
    assert precision == pytest.approx(results["metrics"]["final"]["R@1"], abs=1e-3)
    assert precision < 1.0  # a query retrieving itself would score 1
    # Default output: <run dir>/retrievals.png, a grid of 18 rows of one neighbour.
    png = Image.open(tiny_run / "retrievals.png")
    assert png.size[::-1] == grid.canvas_size(18, 1)


def test_run_with_older_config_keys(
    sr: ModuleType, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bug caught: runs written before keys were added to the schemas (model.head,
    model.freeze_bn, eval.feature, dataset.eval_resize) cannot be shown at all."""
    args = ["--queries", "3", "--k", "4", "--out", str(tmp_path / "x.png")]
    assert sr.main([str(tiny_run), *args]) == 0
    current = parse_listing(capsys.readouterr().out)

    old = tmp_path / "old_run"
    (old / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_run / "checkpoints" / "last.pt", old / "checkpoints" / "last.pt")
    results = json.loads((tiny_run / "results.json").read_text())
    for group, key in [("model", "head"), ("model", "freeze_bn"), ("eval", "feature")]:
        del results["config"][group][key]
    del results["config"]["dataset"]["eval_resize"]
    (old / "results.json").write_text(json.dumps(results))
    assert sr.main([str(old), *args]) == 0
    assert parse_listing(capsys.readouterr().out) == current


# ------------------------------------------------------------------ errors


def _completed(run_dir: Path, status: str = "completed", checkpoint: bool = False) -> Path:
    run_dir.mkdir(parents=True)
    res = {"status": status, "config": {"model": {}}, "metrics": {}}
    if status != "completed":
        res["error"] = "lower bound 3e-05 above upper bound 1e-05"
    (run_dir / "results.json").write_text(json.dumps(res))
    if checkpoint:
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    return run_dir


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("missing", ["run directory not found"]),
        ("no_results", ["no results.json"]),
        ("not_json", ["cannot read", "results.json"]),
        ("failed", ["did not complete", "status failed", "lower bound 3e-05"]),
        ("infeasible", ["did not complete", "status infeasible"]),
        ("no_checkpoint", ["no checkpoint", "last.pt", "save_checkpoints=false"]),
    ],
)
def test_errors_are_one_line(
    sr: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    needles: list[str],
) -> None:
    """Bug caught: a traceback (or a silently empty PNG) instead of one `error:` line, exit 2."""
    run = tmp_path / "run"
    if case == "no_results":
        run.mkdir()
    elif case == "not_json":
        run.mkdir()
        (run / "results.json").write_text("{not json")
    elif case in ("failed", "infeasible"):
        _completed(run, status=case, checkpoint=True)
    elif case == "no_checkpoint":
        _completed(run)
    assert sr.main([str(run)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0]
    assert not (run / "retrievals.png").exists()


def test_cli_error_has_no_traceback(tmp_path: Path, script_cli) -> None:
    """Bug caught: the one-line error only when main() is called with its arguments, a
    traceback from the script's command line (the exit status and stderr the user sees)."""
    proc = script_cli(SCRIPT, str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: run directory not found: {tmp_path / 'nope'}"
