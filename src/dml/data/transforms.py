"""Train and eval image transforms (ImageNet normalisation, as the pretrained backbones expect)."""

from __future__ import annotations

from torchvision import transforms as T

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def train_transform(cfg) -> T.Compose:
    """Resize (or random-resized crop) to image_size, optional flip and colour jitter."""
    size = cfg.image_size
    steps = [
        T.RandomResizedCrop(size, scale=(0.5, 1.0))
        if cfg.random_resized_crop
        else T.Resize((size, size))
    ]
    if cfg.hflip:
        steps.append(T.RandomHorizontalFlip())
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        steps.append(T.ColorJitter(j, j, j))
    return T.Compose([*steps, T.ToTensor(), T.Normalize(MEAN, STD)])


def eval_transform(cfg) -> T.Compose:
    """Resize to resize_size, center crop image_size (the paper's 256 -> 224 protocol)."""
    resize = max(cfg.resize_size, cfg.image_size)
    return T.Compose(
        [T.Resize(resize), T.CenterCrop(cfg.image_size), T.ToTensor(), T.Normalize(MEAN, STD)]
    )
