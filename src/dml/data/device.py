"""dataset.augment_on=device: cached images kept on the device and augmented there per batch.

Under dataset.cache=ram each image is decoded (and resized or cropped) once, but on a GPU the
rest of the CPU transform (random crop, flip, colour jitter, to-tensor, normalisation) still runs
in loader processes one image at a time, and sets the training pace. Here the cached uint8
images move to the device once; loader processes only draw each sample's augmentation
parameters, and the device applies them to the whole batch with torchvision's tensor functions.

The parameters are drawn exactly as the CPU path draws them: the same torchvision transforms'
own get_params (and torch.rand for the flip), in the same order, from torch's RNG seeded with
the sample's (seed, epoch, position) key. A re-run trial sees the same crops and flips, and so
does the CPU path for the same key. Without a random crop or colour jitter the images are the
CPU path's to the bit (the flip, to-tensor and normalisation are the same arithmetic); a crop
is resized by torch's antialiased kernels instead of PIL's, so its pixels differ slightly.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from torchvision.transforms.v2 import functional as F

from dml.data.cache import RamCache
from dml.data.records import ImageListDataset
from dml.errors import DmlError

AUGMENT_ON = ("auto", "cpu", "device")
# the order in which the CPU transforms of dml.data.transforms apply their random steps
_RANDOM_STEPS = (T.RandomResizedCrop, T.RandomHorizontalFlip, T.ColorJitter)
_JITTER = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)


def augments_on_device(choice: str, cache: str, device: torch.device) -> bool:
    """dataset.augment_on resolved: auto means the device on CUDA with dataset.cache=ram."""
    if choice not in AUGMENT_ON:
        raise DmlError(f"dataset.augment_on={choice}: expected one of {', '.join(AUGMENT_ON)}")
    if choice == "device" and cache != "ram":
        raise DmlError(
            "dataset.augment_on=device needs dataset.cache=ram (the images must be decoded "
            "once to live on the device); set dataset.cache=ram or dataset.augment_on=cpu"
        )
    return {"cpu": False, "device": True, "auto": cache == "ram" and device.type == "cuda"}[choice]


class AugmentPlan:
    """The steps left after caching (a dml.data.transforms transform), as parameters to draw
    per sample and operations to apply per batch."""

    def __init__(self, transform: T.Compose | None) -> None:
        self.crop: T.RandomResizedCrop | None = None
        self.flip: T.RandomHorizontalFlip | None = None
        self.jitter: T.ColorJitter | None = None
        self.normalize: T.Normalize | None = None
        order = []
        for step in transform.transforms if transform is not None else []:
            if isinstance(step, _RANDOM_STEPS):
                order.append(_RANDOM_STEPS.index(type(step)))
                name = ("crop", "flip", "jitter")[order[-1]]
                setattr(self, name, step)
            elif isinstance(step, T.Normalize):
                self.normalize = step
            elif not isinstance(step, T.ToTensor):
                raise DmlError(
                    f"dataset.augment_on=device has no device version of {type(step).__name__}; "
                    "use dataset.augment_on=cpu"
                )
        if order != sorted(order):  # parameters must be drawn in the CPU transform's order
            raise DmlError("dataset.augment_on=device: expected crop, flip, jitter in that order")

    @property
    def random(self) -> bool:
        """Whether any step draws random numbers."""
        return any(s is not None for s in (self.crop, self.flip, self.jitter))

    def draw(self, height: int, width: int, seed: int | None) -> dict[str, torch.Tensor]:
        """One sample's parameters, drawn as the CPU transform draws them from seed."""
        if not self.random:
            return {}
        if seed is None:  # as the CPU transform without a seed: from the global RNG
            return self._draw(height, width)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._draw(height, width)

    def _draw(self, height: int, width: int) -> dict[str, torch.Tensor]:
        params: dict[str, torch.Tensor] = {}
        if self.crop is not None:
            shape = torch.empty((3, height, width), device="meta")  # get_params reads the size
            box = self.crop.get_params(shape, self.crop.scale, self.crop.ratio)
            params["crop"] = torch.tensor(box, dtype=torch.int64)  # top, left, height, width
        if self.flip is not None:
            params["flip"] = torch.rand(1)[0] < self.flip.p
        if self.jitter is not None:
            j = self.jitter
            order, *factors = j.get_params(j.brightness, j.contrast, j.saturation, j.hue)
            params["jitter_order"] = order
            params["jitter"] = torch.tensor([torch.nan if f is None else f for f in factors])
        return params


class DeviceImages:
    """A RamCache's uint8 images on a device: one (n, H, W, 3) tensor when they share a size."""

    def __init__(self, cache: RamCache, device: torch.device) -> None:
        self.device = device
        self.shapes = cache.shapes
        if len(set(cache.shapes)) <= 1 and cache.shapes:
            self.stack = cache.buffer.view(len(cache), *cache.shapes[0]).to(device)
        else:
            self.stack = None
            self.buffer = cache.buffer.to(device)
            self.offsets = cache.offsets

    def one(self, index: int) -> torch.Tensor:
        """Image `index` as uint8 (3, H, W)."""
        if self.stack is not None:
            return self.stack[index].permute(2, 0, 1)
        flat = self.buffer[self.offsets[index] : self.offsets[index + 1]]
        return flat.view(self.shapes[index]).permute(2, 0, 1)

    def many(self, indices: torch.Tensor) -> torch.Tensor:
        """Images of one size as uint8 (B, 3, H, W) (a view with channels-last strides)."""
        return self.stack[indices.to(self.device)].permute(0, 3, 1, 2)


class AugmentParams(Dataset):
    """A cached dataset's items as (index, augmentation parameters, label): all that loader
    processes hand over; DeviceBatches gathers and augments the images on the device."""

    def __init__(self, dataset: ImageListDataset, plan: AugmentPlan) -> None:
        if dataset.cache is None:
            raise DmlError("dataset.augment_on=device needs dataset.cache=ram")
        self.dataset, self.plan = dataset, plan

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int | tuple[int, int]):
        index, seed = item if isinstance(item, tuple) else (item, None)
        height, width = self.dataset.cache.shapes[index][:2]
        return index, self.plan.draw(height, width, seed), self.dataset.targets[index]


class DeviceBatches:
    """Iterates a DataLoader of AugmentParams as (augmented, normalised images on the device,
    labels), like the DataLoader of the CPU path."""

    def __init__(self, loader: DataLoader, images: DeviceImages, plan: AugmentPlan) -> None:
        self.loader, self.images, self.plan = loader, images, plan
        norm = plan.normalize
        shape = (1, 3, 1, 1)
        self.mean = None if norm is None else torch.tensor(norm.mean).view(shape).to(images.device)
        self.std = None if norm is None else torch.tensor(norm.std).view(shape).to(images.device)

    @property
    def dataset(self) -> Dataset:
        """The loader's dataset (its length is the number of images)."""
        return self.loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for indices, params, labels in self.loader:
            yield self.images_of(indices, params), labels

    def images_of(self, indices: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's images with their parameters applied, as the CPU path's tensors."""
        device = self.images.device
        params = {k: v.to(device, non_blocking=True) for k, v in params.items()}
        if "crop" in params:
            x = torch.stack([self._crop(int(i), box) for i, box in zip(indices, params["crop"])])
        else:
            x = self.images.many(indices)
        if "jitter" in params:
            x = torch.stack([_jitter(img, order, f) for img, order, f in _rows(x, params)])
        if "flip" in params:
            x = torch.where(params["flip"].view(-1, 1, 1, 1), x.flip(-1), x)
        # contiguous (N, C, H, W) like the CPU path's batches; the trainer applies its own
        # trainer.channels_last as it does to those
        x = x.contiguous().float().div(255)  # ToTensor's arithmetic
        if self.mean is not None:
            x = x.sub_(self.mean).div_(self.std)  # Normalize's
        return x

    def _crop(self, index: int, box: torch.Tensor) -> torch.Tensor:
        crop = self.plan.crop
        top, left, height, width = box.tolist()
        return F.resized_crop(
            self.images.one(index),
            top,
            left,
            height,
            width,
            list(crop.size),
            interpolation=crop.interpolation,
            antialias=True,
        )


def _rows(x: torch.Tensor, params: dict[str, torch.Tensor]):
    return zip(x, params["jitter_order"].tolist(), params["jitter"].tolist())


def _jitter(image: torch.Tensor, order: list[int], factors: list[float]) -> torch.Tensor:
    """ColorJitter's adjustments in its drawn order (a NaN factor: that adjustment is off)."""
    for fn_id in order:
        factor = factors[fn_id]
        if factor == factor:  # not NaN
            image = _JITTER[fn_id](image, factor)
    return image
