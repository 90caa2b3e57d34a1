"""Train and eval image transforms (ImageNet normalisation, as the pretrained backbones expect)."""

from __future__ import annotations

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from dml.errors import DmlError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
EVAL_RESIZES = ("square", "shorter")


def _interpolation(cfg) -> InterpolationMode:
    if cfg.interpolation not in INTERPOLATIONS:
        raise DmlError(
            f"dataset.interpolation='{cfg.interpolation}': expected one of {list(INTERPOLATIONS)}"
        )
    return INTERPOLATIONS[cfg.interpolation]


def _crop_scale(cfg) -> tuple[float, float]:
    scale = tuple(float(s) for s in cfg.crop_scale)
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise DmlError(
            f"dataset.crop_scale={list(scale)}: expected [min, max] with 0 < min <= max <= 1"
        )
    return scale


def eval_resize_size(cfg) -> int:
    """Eval resize side before the center crop: resize_size, else round(image_size * 256/224)."""
    size = cfg.image_size
    resize = cfg.resize_size if cfg.resize_size is not None else round(size * 256 / 224)
    if resize < size:
        raise DmlError(
            f"dataset.resize_size={resize} is smaller than dataset.image_size={size}: "
            "the center crop needs resize_size >= image_size"
        )
    return int(resize)


def train_transform(cfg) -> T.Compose:
    """Resize (or random-resized crop) to image_size, optional flip and colour jitter."""
    size, mode = cfg.image_size, _interpolation(cfg)
    steps = [
        T.RandomResizedCrop(size, scale=_crop_scale(cfg), interpolation=mode)
        if cfg.random_resized_crop
        else T.Resize((size, size), interpolation=mode)
    ]
    if cfg.hflip:
        steps.append(T.RandomHorizontalFlip())
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        steps.append(T.ColorJitter(j, j, j))
    return T.Compose([*steps, T.ToTensor(), T.Normalize(MEAN, STD)])


def eval_transform(cfg) -> T.Compose:
    """Resize (square or shorter side) to eval_resize_size, then center crop image_size."""
    if cfg.eval_resize not in EVAL_RESIZES:
        raise DmlError(
            f"dataset.eval_resize='{cfg.eval_resize}': expected one of {list(EVAL_RESIZES)}"
        )
    r, mode = eval_resize_size(cfg), _interpolation(cfg)
    resize = T.Resize((r, r) if cfg.eval_resize == "square" else r, interpolation=mode)
    return T.Compose([resize, T.CenterCrop(cfg.image_size), T.ToTensor(), T.Normalize(MEAN, STD)])


def describe_eval(cfg) -> str:
    """One line saying how eval images are resized and cropped (for the run's startup log)."""
    eval_transform(cfg)  # same validation as the transform the run will use
    r = eval_resize_size(cfg)
    if cfg.eval_resize == "square":
        resize = f"resize {r}x{r} (square, {cfg.interpolation})"
    else:
        resize = f"resize shorter side to {r} ({cfg.interpolation})"
    return f"eval: {resize} -> center crop {cfg.image_size}"
