"""Train/eval transforms: the paper's resize protocol, what the eval crop keeps, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision.transforms import InterpolationMode

from dml.data.base import DatasetConfig
from dml.data.transforms import (
    MEAN,
    STD,
    describe_eval,
    eval_resize_size,
    eval_transform,
    train_transform,
)
from dml.errors import DmlError
from tests.conftest import compose_cfg

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _cfg(**overrides):
    """A dataset config validated by the schema, as Hydra would give it."""
    return OmegaConf.structured(DatasetConfig(name="t", root="unused", **overrides))


def _stripes(width: int = 100, height: int = 60, red_end: int = 20, blue_start: int = 80):
    """An object filling the image: red left edge, green body, blue right edge."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, :red_end] = RED
    a[:, red_end:blue_start] = GREEN
    a[:, blue_start:] = BLUE
    return Image.fromarray(a)


def _pixels(tensor: torch.Tensor) -> np.ndarray:
    """Undo ToTensor + Normalize: HxWx3 values on the 0-255 scale."""
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return ((tensor * std + mean) * 255).permute(1, 2, 0).numpy()


def _colour_row(pixels: np.ndarray, row: int = 16) -> list[str]:
    """Per column: 'r', 'g' or 'b' where that channel is ~255 and the others ~0, else '?'."""
    names = []
    for px in pixels[row]:
        pure = [abs(px - np.array(c)).max() < 1.0 for c in (RED, GREEN, BLUE)]
        names.append("rgb"[pure.index(True)] if any(pure) else "?")
    return names


def test_resize_size_follows_image_size_when_null():
    """Bug: resize_size None crashing or left at 256 for a smaller image_size.

    round(224 * 256/224) = 256; round(32 * 256/224) = round(36.57) = 37.
    """
    assert eval_resize_size(_cfg(image_size=224)) == 256
    assert eval_resize_size(_cfg(image_size=32)) == 37
    assert eval_resize_size(_cfg(image_size=32, resize_size=40)) == 40


def test_paper_eval_square_resize_keeps_the_whole_object():
    """Bug: eval_resize=square still resizing the shorter side (cropping off the object's ends).

    100x60 -> 37x37 (x0.37 across), crop offset round((37-32)/2) = 2. Red [0,20) lands on
    resized [0,7.4) = output [-2,5.4): columns 0-4 red (column 5, centre 5.5, is mixed).
    Blue [80,100) lands on [29.6,37) = output [27.6,35): columns 28-31 blue, 27 mixed.
    """
    cfg = _cfg(image_size=32, eval_resize="square", interpolation="bicubic")
    out = eval_transform(cfg)(_stripes())
    assert tuple(out.shape) == (3, 32, 32)
    row = _colour_row(_pixels(out))
    assert row == list("rrrrr?" + "g" * 21 + "?bbbb")


def test_shorter_eval_resize_crops_off_the_ends_of_a_wide_image():
    """Bug: eval_resize=shorter squashing to a square (the pre-paper protocol of this repo lost).

    100x60 -> shorter side 37: 61x37 (int(37*100/60)), crop offset round(29/2) = 14, so the
    crop covers resized [14,46) = original [22.95,75.4): all green, both edges gone.
    """
    cfg = _cfg(image_size=32, eval_resize="shorter", interpolation="bicubic")
    resize = eval_transform(cfg).transforms[0]
    assert resize(_stripes()).size == (61, 37)
    out = eval_transform(cfg)(_stripes())
    assert tuple(out.shape) == (3, 32, 32)
    assert _colour_row(_pixels(out)) == ["g"] * 32


def test_paper_train_resize_squashes_the_whole_image_bicubic():
    """Bug: train Resize keeping the aspect (Resize(size)) or ignoring dataset.interpolation.

    100x60 -> 32x32 (x0.32 across): red [0,20) -> [0,6.4) = columns 0-5, blue [80,100) ->
    [25.6,32) = columns 26-31; columns 6 and 25 straddle an edge.
    """
    cfg = _cfg(image_size=32, hflip=False, interpolation="bicubic")
    transform = train_transform(cfg)
    assert transform.transforms[0].interpolation == InterpolationMode.BICUBIC
    assert transform.transforms[0].size == (32, 32)
    row = _colour_row(_pixels(transform(_stripes())))
    assert row == list("rrrrrr?" + "g" * 18 + "?bbbbbb")


def test_random_resized_crop_uses_crop_scale():
    """Bug: crop_scale ignored (the old hard-coded scale=(0.5, 1.0)).

    With crop_scale [1, 1] on a square image every crop is the whole image (no 1.0-area box
    of another shape fits), so the red left fifth [0,10) of 50 -> [0,6.4) of 32 always shows
    in column 0; a half-area crop would often start right of it.
    """
    cfg = _cfg(image_size=32, hflip=False, random_resized_crop=True, crop_scale=[1.0, 1.0])
    transform = train_transform(cfg)
    assert transform.transforms[0].scale == (1.0, 1.0)
    image = _stripes(width=50, height=50, red_end=10, blue_start=40)
    torch.manual_seed(0)
    for _ in range(20):
        assert _colour_row(_pixels(transform(image)))[:6] == ["r"] * 6


def test_synthetic_config_without_crop_margin_still_builds():
    """Bug: resize_size == image_size (the synthetic set) rejected or cropping off content."""
    cfg = compose_cfg(["dataset=synthetic"]).dataset
    assert describe_eval(cfg) == "eval: resize shorter side to 64 (bilinear) -> center crop 64"
    out = eval_transform(cfg)(_stripes(width=64, height=64, red_end=8, blue_start=56))
    assert tuple(out.shape) == (3, 64, 64)
    # no crop margin: the resize is the identity, the edge columns keep their colour
    row = _colour_row(_pixels(out))
    assert row[0] == "r" and row[63] == "b"


def test_describe_eval_paper_protocol():
    """Bug: the startup line reporting a different resize than the transform applies."""
    cfg = _cfg(image_size=224, eval_resize="square", interpolation="bicubic")
    assert describe_eval(cfg) == "eval: resize 256x256 (square, bicubic) -> center crop 224"
    resize = eval_transform(cfg).transforms[0]
    assert resize.size == (256, 256) and resize.interpolation == InterpolationMode.BICUBIC


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"image_size": 64, "resize_size": 60}, ["dataset.resize_size", "image_size"]),
        ({"eval_resize": "long"}, ["dataset.eval_resize", "square", "shorter"]),
        ({"interpolation": "nearest"}, ["dataset.interpolation", "bilinear", "bicubic"]),
    ],
)
def test_bad_eval_settings_are_one_line_errors(overrides, names):
    """Bug: a bad eval setting crashing deep in torchvision (or silently clamped, as before)."""
    with pytest.raises(DmlError) as err:
        eval_transform(_cfg(**overrides))
    assert all(n in str(err.value) for n in names) and "\n" not in str(err.value)


def test_bad_train_settings_are_one_line_errors():
    """Bug: an inverted crop_scale or unknown interpolation reaching torchvision unchecked."""
    with pytest.raises(DmlError, match="dataset.crop_scale"):
        train_transform(_cfg(random_resized_crop=True, crop_scale=[0.9, 0.2]))
    with pytest.raises(DmlError, match="dataset.interpolation"):
        train_transform(_cfg(interpolation="lanczos"))
