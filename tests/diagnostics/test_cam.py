"""dml.diagnostics.cam: Grad-CAM by hand on nets with known answers, the retrieval scalar,
the image pick and the checkpoint list; its command line (scripts/cam.py) over a real tiny
AutoLR run, and its one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.core.global_hydra import GlobalHydra
from PIL import Image
from torch import nn

from dml.diagnostics import cam
from dml.models import EmbeddingNet
from tests.conftest import TINY_OVERRIDES, compose_cfg, tiny_backbone

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cam.py"
UNITS = 7  # resnet18's 8 residual blocks, the last pruned (pruning=last1)


def pointwise(weight: list[list[float]]) -> nn.Conv2d:
    """A 1x1 conv without bias whose (out, in) weights are given: no spatial mixing."""
    conv = nn.Conv2d(len(weight[0]), len(weight), 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weight).view(len(weight), len(weight[0]), 1, 1))
    return conv


# ------------------------------------------------------------------ Grad-CAM by hand


def test_signed_channel_weights_give_the_known_quadrant() -> None:
    """Bugs caught: |gradient| (or no ReLU) instead of ReLU(sum_c w_c A_c), weights taken from
    the activation instead of its gradient, maps not normalised to [0, 1] by their maximum.

    A = (x0, x1) (identity 1x1 conv + ReLU); score = sum A0 - 2 sum A1, so w = (1, -2) and the
    map is ReLU(A0 - 2 A1): x0 is 1 on the left half, x1 is 1 on the top half, so only the
    bottom-left quadrant is positive (value 1); |w| would light the top-left too.
    """
    unit = nn.Sequential(pointwise([[1, 0], [0, 1]]), nn.ReLU())
    x = torch.zeros(1, 2, 4, 6)
    x[0, 0, :, :3] = 1.0
    x[0, 1, :2, :] = 1.0
    coef = torch.tensor([1.0, -2.0]).view(1, 2, 1, 1)
    (m,) = cam.grad_cam(lambda t: (coef * unit(t)).sum(dim=(1, 2, 3)), [unit], x)
    expected = torch.zeros(1, 4, 6)
    expected[0, 2:, :3] = 1.0
    torch.testing.assert_close(m, expected)


def test_only_the_left_half_matters_so_the_right_half_is_zero() -> None:
    """Bugs caught: maps upsampled transposed (H and W swapped) or flipped, nearest instead of
    bilinear, a map taken before the module instead of at its output, the wrong module's
    activation kept for another.

    The input is positive on the left half of an 8x12 image and zero on the right; 1x1 convs
    without bias keep the right half's activations zero. Unit 2 halves the resolution (4x6:
    columns 0-2 positive), so bilinear upsampling back to 8x12 (align_corners=False) blurs
    into column 6 only: columns 0-6 positive, 7-11 exactly zero.
    """
    torch.manual_seed(0)
    unit1 = nn.Sequential(pointwise([[1.0, 0.5, 0.2], [0.3, 1.0, 0.1]]), nn.ReLU())
    unit2 = nn.Sequential(nn.AvgPool2d(2), pointwise([[1.0, 2.0], [0.5, 0.5], [2.0, 0.1]]))
    net = nn.Sequential(unit1, unit2)
    x = torch.zeros(2, 3, 8, 12)
    x[..., :6] = torch.rand(2, 3, 8, 6) + 0.1
    maps = cam.grad_cam(lambda t: net(t).sum(dim=(1, 2, 3)), [unit1, unit2], x)
    assert [tuple(m.shape) for m in maps] == [(2, 8, 12), (2, 8, 12)]
    for m in maps:
        assert m.min() >= 0 and torch.allclose(m.amax(dim=(1, 2)), torch.ones(2))
    first, second = maps
    assert (first[..., :6] > 0).all() and (first[..., 6:] == 0).all()
    assert (second[..., :7] > 0).all() and (second[..., 7:] == 0).all()
    # unit 1's map is proportional to the weighted sum of its own (positive) activations
    act = unit1(x)
    grad = torch.tensor([1.0 + 0.5 + 2.0, 2.0 + 0.5 + 0.1]) / 4  # d(sum unit2)/dA, per pixel
    by_hand = (grad.view(1, 2, 1, 1) * act).sum(dim=1)
    torch.testing.assert_close(first, by_hand / by_hand.amax(dim=(1, 2), keepdim=True))


def test_no_positive_evidence_gives_an_all_zero_map_not_nan() -> None:
    """Bug caught: dividing by a zero maximum (NaN maps drawn as blanks or crashing imshow)."""
    unit = nn.Sequential(pointwise([[1.0]]), nn.ReLU())
    x = torch.rand(1, 1, 5, 5) + 0.1
    (m,) = cam.grad_cam(lambda t: -unit(t).sum(dim=(1, 2, 3)), [unit], x)
    assert torch.equal(m, torch.zeros(1, 5, 5))


def tiny_net(seed: int = 0) -> EmbeddingNet:
    torch.manual_seed(seed)
    model = EmbeddingNet(tiny_backbone(width=8, units=4), embedding_dim=6)
    model.eval()
    return model


def test_batch_images_get_their_own_maps() -> None:
    """Bug caught: one gradient (channel weights averaged over the batch) for every image, or
    a batch-dependent forward (train-mode BatchNorm) mixing the images' maps."""
    model = tiny_net()
    model.train()  # similarity_cams must switch to eval itself
    x = torch.randn(3, 3, 10, 10)
    pool = torch.randn(4, 3, 10, 10)
    members = [[0, 1], [2], [1, 3]]
    together, cos = cam.similarity_cams(model, "embedding", x, pool, members)
    for i in range(3):
        alone, cos_i = cam.similarity_cams(model, "embedding", x[i : i + 1], pool, [members[i]])
        for m_all, m_one in zip(together, alone):
            torch.testing.assert_close(m_all[i : i + 1], m_one, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(cos[i : i + 1], cos_i)


def test_hooks_removed_and_model_untouched() -> None:
    """Bugs caught: forward hooks left on the units (every later forward keeps activations, a
    second call stacks hooks), parameter .grad filled by the backward, the output changed."""
    model = tiny_net()
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        before = model(x).clone()
    cam.similarity_cams(model, "pooled", x, torch.randn(3, 3, 12, 12), [[0, 1], [2]])
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)


def test_hooks_removed_when_the_score_fails() -> None:
    """Bug caught: hooks only removed on success, left behind by an exception."""
    unit = nn.ReLU()
    with pytest.raises(ValueError, match="one scalar per image"):
        cam.grad_cam(lambda t: unit(t).sum(), [unit], torch.rand(2, 1, 3, 3))
    assert not unit._forward_hooks


def test_one_map_per_unit_at_image_size() -> None:
    """Bugs caught: maps at the unit's own resolution, a map for the stem or a missing unit,
    maps outside [0, 1]."""
    model = tiny_net()
    model.backbone.units[2].conv1.stride = (2, 2)  # a unit at another resolution
    model.backbone.units[2].downsample = nn.AvgPool2d(2)
    x = torch.randn(2, 3, 16, 20)
    maps, _ = cam.similarity_cams(model, "embedding", x, torch.randn(2, 3, 16, 20), [[0], [1]])
    assert len(maps) == model.backbone.num_units == 4
    for m in maps:
        assert m.shape == (2, 16, 20)
        assert m.min() >= 0 and m.max() <= 1


@pytest.mark.parametrize("feature", ["pooled", "embedding"])
def test_score_is_cosine_to_the_normalised_class_centroid(feature: str) -> None:
    """Bugs caught: the centroid as the mean of raw (unnormalised) features, the wrong
    feature (pooled and embedding swapped), an image's centroid built from another image's
    members."""
    model = tiny_net()
    x = torch.randn(2, 3, 8, 8)
    pool = torch.randn(3, 3, 8, 8)
    pool[0] *= 20  # a feature of a much larger norm: raw and normalised means differ
    members = [[0, 1], [2]]
    _, cos = cam.similarity_cams(model, feature, x, pool, members)
    forward = model.pooled if feature == "pooled" else model
    with torch.no_grad():
        f, p = forward(x), F.normalize(forward(pool), dim=1)
        expected = torch.stack(
            [
                F.cosine_similarity(f[0], (p[0] + p[1]) / 2, dim=0),
                F.cosine_similarity(f[1], p[2], dim=0),
            ]
        )
    torch.testing.assert_close(cos, expected)
    with pytest.raises(cam.CamError, match="eval.feature='logits'"):
        cam.feature_fn(model, "logits")


def test_centroid_members_leave_the_image_out_and_cap() -> None:
    """Bugs caught: the image in its own centroid (cosine inflated towards 1), no cap."""
    labels = [5] * 20 + [7, 7]
    members = cam.centroid_members(labels, [3, 20], limit=16)
    assert members[0] == [j for j in range(20) if j != 3][:16]
    assert members[1] == [21]


def test_pick_images_from_different_classes_deterministically() -> None:
    """Bugs caught: two images of one class while classes remain, a class with a single image
    picked (no centroid), clustered classes, a non-deterministic pick."""
    labels = [10] * 3 + [11] + [12] * 3 + [13] * 2 + [14] * 2
    assert cam.pick_images(labels, 2) == [0, 7]  # classes 10 and 13 of (10, 12, 13, 14)
    assert cam.pick_images(labels, 4) == [0, 4, 7, 9]
    assert cam.pick_images(labels, 4) == cam.pick_images(list(labels), 4)
    six = cam.pick_images(labels, 6)
    assert six == [0, 4, 7, 9, 1, 5]
    assert 3 not in cam.pick_images(labels, 100)
    with pytest.raises(cam.CamError, match="two images"):
        cam.pick_images([1, 2, 3], 1)


def test_checkpoints_in_epoch_order_with_their_scores(tmp_path: Path) -> None:
    """Bugs caught: epochs in text order (epoch_10 before epoch_2), epoch E's score taken from
    list position or another epoch, initial-tune missing or scored by an accepted trial,
    unrelated .pt files taken for epochs."""
    folder = tmp_path / "checkpoints" / "weights"
    folder.mkdir(parents=True)
    for name in ["epoch_10.pt", "epoch_2.pt", "first_trial.pt", "other.pt"]:
        (folder / name).write_bytes(b"")
    results = {
        "autolr": {
            "trials": [{"epoch": 0, "trial": 0, "score": 0.25, "accepted": False}],
            "epochs": [{"epoch": 10, "score": 0.975}, {"epoch": 2, "score": 0.5}],
        }
    }
    found = cam.find_checkpoints(tmp_path, results)
    assert [c.name for c in found] == ["initial-tune", "epoch 2", "epoch 10"]
    assert [c.path.name for c in found] == ["first_trial.pt", "epoch_2.pt", "epoch_10.pt"]
    assert [c.title for c in found] == [
        "initial-tune (score 0.25)",
        "epoch 2 (score 0.50)",
        "epoch 10 (score 0.97)",
    ]
    # a run without AutoLR: the bare names
    assert [c.title for c in cam.find_checkpoints(tmp_path, {})] == [c.name for c in found]


def test_no_weights_says_how_to_get_them(tmp_path: Path) -> None:
    """Bug caught: an empty figure (or a bare FileNotFoundError) for a run saved without
    trainer.save_epoch_weights."""
    (tmp_path / "results.json").write_text(json.dumps({"status": "completed"}))
    with pytest.raises(cam.CamError, match="re-run with trainer.save_epoch_weights=true"):
        cam.find_checkpoints(tmp_path, {})


# ------------------------------------------------------------------ the command line


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-epoch AutoLR run on 6 tiny synthetic classes (3 test classes of 6 images),
    made through dml.run.run with trainer.save_epoch_weights=true."""
    from dml.run import run

    tmp = tmp_path_factory.mktemp("cam")
    cfg = compose_cfg(
        [
            *TINY_OVERRIDES,
            "trainer.save_epoch_weights=true",
            "trainer.epochs=2",
            "lr_policy=autolr",
            f"data_dir={tmp / 'data'}",
        ]
    )
    GlobalHydra.instance().clear()
    assert run(cfg, tmp / "run") == 0
    return tmp / "run"


def test_grid_of_a_real_run(
    tiny_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bugs caught: a checkpoint missing from the figure (initial-tune or an epoch), scores
    not the run's (another trial's or epoch's), rows not grouped by image, a column per unit
    missing, the PNG not at the default path or of the wrong size, a figure of images of one
    class, weights never loaded (every checkpoint drawing the same maps)."""
    drawn = {}
    real_draw = cam.draw_grid

    def spy(grid: cam.CamGrid):
        drawn["grid"], drawn["fig"] = grid, real_draw(grid)
        return drawn["fig"]

    monkeypatch.setattr(cam, "draw_grid", spy)
    assert cam.main([str(tiny_run)]) == 0
    out = tiny_run / "cam_units.png"
    assert capsys.readouterr().out.strip() == str(out)

    # the checkpoints and their titles, by hand from results.json
    results = json.loads((tiny_run / "results.json").read_text())
    autolr = results["autolr"]
    assert autolr["trials"][0]["epoch"] == 0 and autolr["trials"][0]["trial"] == 0
    expected = [f"initial-tune (score {autolr['trials'][0]['score']:.2f})"] + [
        f"epoch {e['epoch']} (score {e['score']:.2f})" for e in autolr["epochs"]
    ]
    assert [e["epoch"] for e in autolr["epochs"]] == [0, 1]
    grid, fig = drawn["grid"], drawn["fig"]
    assert [c.title for c in grid.checkpoints] == expected

    n, c = 4, 3  # default --images 4 of 3 test classes; initial-tune, epoch 0, epoch 1
    assert grid.maps.shape == (n, c, UNITS, 32, 32)
    assert grid.units == [f"unit{k + 1}" for k in range(UNITS)]
    assert len(set(grid.labels[:3])) == 3  # one image per class before any repeats
    assert len(set(grid.indices)) == n
    # the figure's rows: first-column axes carry the checkpoint titles, grouped by image
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert [label.splitlines()[0] for label in labels] == expected * n
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        t for i in range(n) for t in [f"image {i + 1}: class {grid.labels[i]}", *grid.units]
    ]
    assert len(fig.axes) == n * c * (UNITS + 1)
    # the weights differ between checkpoints, so do the cosines
    assert not np.allclose(grid.scores[:, 0], grid.scores[:, -1])

    png = Image.open(out)
    assert png.size[::-1] == cam.canvas_size(n, c, UNITS)
    # one label band and UNITS + 1 tiles across, whatever the number of rows
    width = 2 * cam.MARGIN + cam.LABEL + (UNITS + 1) * cam.CELL + UNITS * cam.GAP
    assert png.size[0] == width


def test_images_and_out_options(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bugs caught: --images ignored, a relative --out resolved against the run dir or the
    project root instead of the cwd."""
    monkeypatch.chdir(tmp_path)
    assert cam.main([str(tiny_run), "--images", "1", "--out", "one.png"]) == 0
    png = Image.open(tmp_path / "one.png")
    assert png.size[::-1] == cam.canvas_size(1, 3, UNITS)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_error_without_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bug caught: a traceback (FileNotFoundError) for a folder that is not a run."""
    assert cam.main([str(tmp_path)]) == 1
    assert "results.json" in error_line(capsys)


def test_error_images_below_one_from_the_command_line(tmp_path: Path, script_cli) -> None:
    """Bugs caught: --images 0 drawing an empty figure (or a matplotlib error) instead of one
    line; the script's exit code when run as a command."""
    proc = script_cli(SCRIPT, str(tmp_path), "--images", "0")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --images=0: must be at least 1"


def test_error_without_weights(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bug caught: a run saved without trainer.save_epoch_weights giving a traceback or an
    empty figure instead of saying how to get the weights."""
    bare = tmp_path / "run"
    bare.mkdir()
    shutil.copy(tiny_run / "results.json", bare / "results.json")
    assert cam.main([str(bare)]) == 1
    line = error_line(capsys)
    assert line.startswith("error: no weights in ")
    assert line.endswith("re-run with trainer.save_epoch_weights=true")
