"""Procedural fine-grained retrieval data written in the CUB-200-2011 on-disk layout.

Two domains share one drawing vocabulary:

* ``target`` (stands in for CUB): every class is the same small "bird" (body, head, beak,
  wing, tail, legs), often on a branch and partly behind leaves, on a cluttered background.
  Body colours come from a palette of three
  shared by many classes, so coarse cues barely separate classes; classes differ in
  combinations of small details: cap colour, wing colour, number of wing bars, tail
  shape and a crest.
* ``source`` (stands in for ImageNet pre-training): the same birds, backgrounds and clutter.
  Each of its 48 classes is a fixed random group of 9 full combinations of the six
  factors, so telling source classes apart needs every colour and every detail (low
  layers learn to see all of them), while the groups follow no factor (high layers learn
  an organisation that the target does not share). No source image looks exactly like a
  target class: the 24 (bars, tail, crest) details of each (body, cap, wing) are split
  once, half for target classes and half for source combinations.

Every image is drawn from its own RNG stream keyed by (seed, domain, class, image index),
so an image does not depend on how many classes or images were asked for, and the same
arguments always give byte-identical files.
"""

from __future__ import annotations

import colorsys
import functools
import inspect
import itertools
import json
import math
import multiprocessing
import numbers
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from PIL import Image, ImageDraw

from dml.errors import DmlError

# Bump whenever drawing or layout changes, so ensure_synthetic regenerates old copies.
FORMAT_VERSION = 7
METADATA_FILE = "dml_synthetic.json"
DOMAINS = ("target", "source")
MIN_IMAGE_SIZE = 16

RGB = tuple[int, int, int]
Part = tuple[np.ndarray, RGB]  # polygon in object coordinates (k x 2) and its fill colour

# --- target factors: few body colours, details carry the class identity -------------------
BODY_COLOURS: dict[str, RGB] = {
    "Brown": (125, 90, 62),
    "Grey": (118, 120, 126),
    "Olive": (104, 110, 62),
}
CAP_COLOURS: dict[str, RGB] = {
    "Red": (215, 35, 35),
    "Yellow": (245, 210, 30),
    "Blue": (40, 90, 225),
    "White": (248, 248, 248),
}
WING_COLOURS: dict[str, RGB] = {
    "Black": (30, 30, 34),
    "Cream": (236, 226, 190),
    "Rust": (190, 80, 30),
}
# Bars must contrast with the wing they sit on, otherwise their count is invisible.
BAR_COLOURS: dict[str, RGB] = {
    "Black": (235, 235, 235),
    "Cream": (40, 36, 30),
    "Rust": (250, 235, 200),
}
TAIL_SHAPES = ("Fan", "Fork", "Spike")
CRESTS = ("Plain", "Crested")
WING_BARS = (0, 1, 2, 3)

# Which (bars, tail, crest) details may define a target class, per (body, cap, wing): a
# fixed half of the 24, the same for every seed, so no source image (drawn from the other
# half) ever shows a target class's full combination of factors.
_PARTITION_SEED = 20260
DETAILS = list(itertools.product(WING_BARS, TAIL_SHAPES, CRESTS))
SOURCE_GROUP = 9  # full combinations per source class

# --- nuisances (shared by both domains) ----------------------------------------------------
SUPERSAMPLE = 3  # draw at 3x and box-downsample: cheap antialiasing
OBJECT_UNIT = 0.56  # object coordinates -> fraction of the image side
SCALE_JITTER = 0.25
MAX_ROTATION_DEG = 20.0
MAX_SHIFT = 0.07  # fraction of the image side
BRIGHTNESS_JITTER = 0.15
CONTRAST_JITTER = 0.15
CHANNEL_GAIN_JITTER = 0.05  # per-channel gains: a small white-balance / hue shift
PERCH_PROB = 0.5
OCCLUDER_PROBS = (0.6, 0.3, 0.1)  # probability of 0, 1, 2 leaves in front of the object
_CIRCLE = np.linspace(0.0, 2.0 * math.pi, 40, endpoint=False)


def class_attributes(domain: str, num_classes: int, seed: int = 0) -> list[dict[str, Any]]:
    """Attribute rows of classes 1..num_classes; a prefix of the same list for larger counts."""
    _check_domain(domain)
    _check_int("num_classes", num_classes, minimum=1)
    _check_int("seed", seed, minimum=0)
    _check_class_count(domain, num_classes)
    rng = np.random.default_rng([seed, _domain_code(domain), 1])
    rows = _target_rows(rng) if domain == "target" else _source_rows(rng)
    return rows[:num_classes]


def max_classes(domain: str) -> int:
    """Largest num_classes the domain supports."""
    _check_domain(domain)
    coarse = len(_coarse_combos())
    half = coarse * len(DETAILS) // 2
    return half if domain == "target" else half // SOURCE_GROUP


def class_name(attributes: dict[str, Any], domain: str) -> str:
    """Filesystem-safe class name built from its attributes, e.g. Grey_Redcap_..._Crested."""
    a = attributes
    if domain == "source":
        return f"Group{a['group']:02d}"
    name = f"{a['body']}_{a['cap']}cap_{a['wing']}wing_{a['bars']}bar_{a['tail']}tail"
    return f"{name}_Crested" if a["crest"] == "Crested" else name


def _coarse_combos() -> list[tuple[str, str, str]]:
    return list(itertools.product(BODY_COLOURS, CAP_COLOURS, WING_COLOURS))


@functools.cache
def target_details(body: str, cap: str, wing: str) -> list[tuple[int, str, str]]:
    """The 12 (bars, tail, crest) details that may define a target class with these colours."""
    # Seeded by the colours alone: the split never depends on a dataset's seed or size.
    codes = [list(BODY_COLOURS).index(body), list(CAP_COLOURS).index(cap)]
    codes.append(list(WING_COLOURS).index(wing))
    rng = np.random.default_rng([_PARTITION_SEED, *codes])
    keep = np.sort(rng.permutation(len(DETAILS))[: len(DETAILS) // 2])
    return [DETAILS[i] for i in keep]


def source_details(body: str, cap: str, wing: str) -> list[tuple[int, str, str]]:
    """The other 12 details: what a source image with these colours may show."""
    taken = set(target_details(body, cap, wing))
    return [d for d in DETAILS if d not in taken]


def _target_rows(rng: np.random.Generator) -> list[dict[str, Any]]:
    # Half of all combinations are classes, so close classes differ in a single detail
    # (2 vs 3 wing bars, a crest or not), as sister species do.
    rows = [
        {"body": body, "cap": cap, "wing": wing, "bars": bars, "tail": tail, "crest": crest}
        for body, cap, wing in _coarse_combos()
        for bars, tail, crest in target_details(body, cap, wing)
    ]
    return [rows[i] for i in rng.permutation(len(rows))]


def _source_rows(rng: np.random.Generator) -> list[dict[str, Any]]:
    # Each class is a fixed random group of source-half combinations: telling classes apart
    # needs every factor, but the groups follow no factor, unlike target classes.
    combos = [
        (body, cap, wing, *details)
        for body, cap, wing in _coarse_combos()
        for details in source_details(body, cap, wing)
    ]
    order = np.random.default_rng([_PARTITION_SEED, 1]).permutation(len(combos))
    keys = ("body", "cap", "wing", "bars", "tail", "crest")
    rows = [
        {
            "group": g + 1,
            "members": [
                dict(zip(keys, combos[i])) for i in order[g * SOURCE_GROUP : (g + 1) * SOURCE_GROUP]
            ],
        }
        for g in range(len(combos) // SOURCE_GROUP)
    ]
    return [rows[i] for i in rng.permutation(len(rows))]


# --- public entry points -----------------------------------------------------------------


def generate_synthetic(
    root: Path,
    *,
    domain: str = "target",
    num_classes: int = 100,
    images_per_class: int = 30,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Write a synthetic dataset in the CUB-200-2011 layout at root (replacing an old one)."""
    params = _checked_params(domain, num_classes, images_per_class, image_size, seed)
    root = Path(root)
    _check_replaceable(root)
    # A sibling (same filesystem) so the final rename is atomic; mkdir, unlike mkdtemp,
    # honours the umask, so the dataset ends up as readable as any other folder.
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_dataset(tmp, params)
        _swap_into_place(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def ensure_synthetic(root: Path, **params: Any) -> Path:
    """Return root if it holds a synthetic dataset made with params, else (re)generate it.

    Only reads dml_synthetic.json when the data is current. Several processes may call it at
    once (a sweep's jobs): a lock file beside root lets one generate while the others wait,
    and temporary folders left by a killed generator are removed.
    """
    bound = inspect.signature(generate_synthetic).bind(root, **params)
    bound.apply_defaults()
    wanted = _checked_params(**{k: v for k, v in bound.arguments.items() if k != "root"})
    root = Path(root)
    if _read_metadata(root) == _metadata_header(wanted):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(root.with_name(f".{root.name}.lock")):
        if _read_metadata(root) == _metadata_header(wanted):  # made while we waited
            return root
        _remove_stale(root)
        return generate_synthetic(root, **wanted)


def _remove_stale(root: Path) -> None:
    # under the lock no other generator runs, so every temporary sibling is a killed one's
    for stale in root.parent.glob(f".{root.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.parent.glob(f".{root.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _read_metadata(root: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((root / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    return {k: meta.get(k) for k in ("format_version", "params")}


def _metadata_header(params: dict[str, Any]) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "params": params}


# --- argument checks -----------------------------------------------------------------------


def _checked_params(
    domain: str, num_classes: int, images_per_class: int, image_size: int, seed: int
) -> dict[str, Any]:
    _check_domain(domain)
    _check_int("num_classes", num_classes, minimum=1)
    _check_int("images_per_class", images_per_class, minimum=1)
    _check_int("image_size", image_size, minimum=MIN_IMAGE_SIZE)
    _check_int("seed", seed, minimum=0)
    _check_class_count(domain, num_classes)
    return {
        "domain": domain,
        "num_classes": int(num_classes),
        "images_per_class": int(images_per_class),
        "image_size": int(image_size),
        "seed": int(seed),
    }


def _check_domain(domain: Any) -> None:
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_class_count(domain: str, num_classes: int) -> None:
    limit = max_classes(domain)
    if num_classes > limit:
        raise ValueError(
            f"num_classes={num_classes} is too many for the {domain} domain: "
            f"at most {limit} distinct classes are available"
        )


def _domain_code(domain: str) -> int:
    return DOMAINS.index(domain)


# --- writing the layout --------------------------------------------------------------------


def _check_replaceable(root: Path) -> None:
    # Only ever delete what this module wrote: never a user's folder that happens to be there.
    if not root.exists():
        return
    if not root.is_dir():
        raise DmlError(f"cannot generate synthetic data at {root}: it is a file")
    if (root / METADATA_FILE).is_file() or not any(root.iterdir()):
        return
    raise DmlError(
        f"cannot generate synthetic data at {root}: the folder is not empty and holds no "
        f"{METADATA_FILE}; refusing to overwrite it"
    )


def _swap_into_place(tmp: Path, root: Path) -> None:
    # Two renames keep the window without a complete dataset at root minimal.
    old = None
    if root.exists():
        old = root.with_name(f".{root.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        root.rename(old)
    tmp.rename(root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# Sets of at least this many images are drawn by several processes (one class per task).
PARALLEL_MIN_IMAGES = 2000


def generation_workers(images: int) -> int:
    """Processes drawing a set of `images` images: one per core for large sets, else one."""
    if images < PARALLEL_MIN_IMAGES:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def _write_dataset(out: Path, params: dict[str, Any]) -> None:
    classes = class_attributes(params["domain"], params["num_classes"], params["seed"])
    folders = [f"{i:03d}.{class_name(a, params['domain'])}" for i, a in enumerate(classes, 1)]
    tasks = [(out, f, i, a, params) for i, (f, a) in enumerate(zip(folders, classes), 1)]
    workers = generation_workers(params["num_classes"] * params["images_per_class"])
    if workers > 1:
        # every image has its own RNG stream, so the files do not depend on the process count
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with context.Pool(workers) as pool:
            written = pool.starmap(_write_class, tasks)
    else:
        written = [_write_class(*task) for task in tasks]
    images, labels, splits, boxes, class_lines = [], [], [], [], []
    for class_id, (folder, rows) in enumerate(zip(folders, written), start=1):
        class_lines.append(f"{class_id} {folder}")
        for k, (rel, box) in enumerate(rows, 1):
            image_id = len(images) + 1
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_id}")
            # CUB's per-image classification split; retrieval splits by class and ignores it.
            splits.append(f"{image_id} {k % 2}")
            boxes.append(f"{image_id} " + " ".join(f"{v:.1f}" for v in box))
    _write_lines(out / "images.txt", images)
    _write_lines(out / "image_class_labels.txt", labels)
    _write_lines(out / "classes.txt", class_lines)
    _write_lines(out / "train_test_split.txt", splits)
    _write_lines(out / "bounding_boxes.txt", boxes)
    _write_metadata(out, params, classes)


def _write_class(
    out: Path, folder: str, class_id: int, attrs: dict[str, Any], params: dict[str, Any]
) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Render and save one class's images; returns (path under images/, box) per image."""
    domain, name = params["domain"], folder.split(".", 1)[1]
    (out / "images" / folder).mkdir(parents=True)
    written = []
    for k in range(1, params["images_per_class"] + 1):
        # One stream per image: images do not depend on how many others are generated.
        rng = np.random.default_rng([params["seed"], _domain_code(domain), 2, class_id, k])
        image, box = render_image(domain, attrs, params["image_size"], rng)
        rel = f"{folder}/{name}_{k:04d}.png"
        image.save(out / "images" / rel, format="PNG", compress_level=1)
        written.append((rel, box))
    return written


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _write_metadata(out: Path, params: dict[str, Any], classes: list[dict[str, Any]]) -> None:
    # Written last: its presence marks a complete dataset.
    meta = {
        **_metadata_header(params),
        "generator": "dml.data.synthetic",
        "num_images": params["num_classes"] * params["images_per_class"],
        "classes": [
            {"class_id": i, "name": class_name(a, params["domain"]), **a}
            for i, a in enumerate(classes, start=1)
        ],
    }
    text = json.dumps(meta, indent=2, sort_keys=True)
    (out / METADATA_FILE).write_text(text + "\n", encoding="utf-8")


# --- rendering -----------------------------------------------------------------------------


def render_image(
    domain: str, attributes: dict[str, Any], size: int, rng: np.random.Generator
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Draw one image of a class; returns it and the object's (x, y, width, height) box."""
    canvas_size = size * SUPERSAMPLE
    background = _background_colour(rng)
    canvas = Image.new("RGB", (canvas_size, canvas_size), background)
    draw = ImageDraw.Draw(canvas)
    _draw_clutter(draw, canvas_size, background, rng)
    parts = _target_parts(attributes, rng) if domain == "target" else _source_parts(attributes, rng)
    transform = _random_pose(canvas_size, rng)
    if rng.random() < PERCH_PROB:
        _draw_parts(draw, [_perch(rng)], transform)
    box = _draw_parts(draw, parts, transform)
    _draw_occluders(draw, box, rng)
    image = canvas.reduce(SUPERSAMPLE)
    image = _photometric_jitter(np.asarray(image, dtype=np.float32), rng)
    return image, _clip_box(box, SUPERSAMPLE, size)


def _background_colour(rng: np.random.Generator) -> RGB:
    # Muted, light-to-mid colours (sky, foliage, sand) so the object always reads on top.
    hue = rng.uniform(0.0, 1.0)
    sat = rng.uniform(0.05, 0.3)
    val = rng.uniform(0.62, 0.9)
    return _hsv(hue, sat, val)


def _draw_clutter(
    draw: ImageDraw.ImageDraw, canvas: int, background: RGB, rng: np.random.Generator
) -> None:
    # Low-contrast blobs and twigs: something to ignore, never strong enough to hide the bird.
    for _ in range(int(rng.integers(3, 8))):
        colour = _shift(background, rng.normal(0.0, 22.0, size=3))
        x, y = rng.uniform(-0.1, 1.1, size=2) * canvas
        if rng.random() < 0.5:
            rx, ry = rng.uniform(0.05, 0.25, size=2) * canvas
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=colour)
        else:
            angle = rng.uniform(0.0, math.pi)
            length = rng.uniform(0.2, 0.7) * canvas
            dx, dy = math.cos(angle) * length, math.sin(angle) * length
            width = int(rng.integers(1, 3) * SUPERSAMPLE)
            draw.line((x - dx, y - dy, x + dx, y + dy), fill=colour, width=width)


def _perch(rng: np.random.Generator) -> Part:
    """A branch under the feet, in object coordinates; drawn behind the object."""
    tilt = rng.uniform(-0.15, 0.15)
    colour = _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.5))
    return _bar((-1.2, 0.38 - tilt), (1.2, 0.38 + tilt), rng.uniform(0.04, 0.08)), colour


def _draw_occluders(
    draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], rng: np.random.Generator
) -> None:
    # Leaves in front of the object sometimes hide a detail, as branches do in bird photos.
    count = int(rng.choice(len(OCCLUDER_PROBS), p=OCCLUDER_PROBS))
    x0, y0, x1, y1 = box
    for _ in range(count):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        rx, ry = rng.uniform(0.08, 0.16, size=2) * max(x1 - x0, y1 - y0)
        colour = _hsv(rng.uniform(0.18, 0.42), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.7))
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=colour)


def _random_pose(canvas: int, rng: np.random.Generator) -> np.ndarray:
    """2x3 affine map from object coordinates to canvas pixels: flip, rotate, scale, shift."""
    scale = OBJECT_UNIT * canvas * rng.uniform(1.0 - SCALE_JITTER, 1.0 + SCALE_JITTER)
    angle = math.radians(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    flip = -1.0 if rng.random() < 0.5 else 1.0
    cx, cy = (0.5 + rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=2)) * canvas
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[cos * flip, -sin, cx], [sin * flip, cos, cy]])


def _draw_parts(
    draw: ImageDraw.ImageDraw, parts: list[Part], transform: np.ndarray
) -> tuple[float, float, float, float]:
    """Draw parts in order (later on top); returns the canvas box (x0, y0, x1, y1) they cover."""
    # One matrix product for all parts: per-part numpy calls dominated the drawing time.
    points = np.concatenate([p for p, _ in parts])
    pixels = points @ transform[:, :2].T + transform[:, 2]
    start = 0
    for part, colour in parts:
        end = start + len(part)
        draw.polygon(pixels[start:end].ravel().tolist(), fill=colour)
        start = end
    x0, y0 = pixels.min(axis=0).tolist()
    x1, y1 = pixels.max(axis=0).tolist()
    return x0, y0, x1, y1


def _clip_box(
    box: tuple[float, float, float, float], factor: int, size: int
) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (min(max(v / factor, 0.0), float(size)) for v in box)
    return x0, y0, x1 - x0, y1 - y0


def _photometric_jitter(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Contrast, brightness and per-channel gain on a float32 HxWx3 array."""
    # Small enough that a red cap stays red and a cream wing stays cream. No pixel noise:
    # it would make the PNGs four times larger and slower to write for little benefit.
    contrast = rng.uniform(1.0 - CONTRAST_JITTER, 1.0 + CONTRAST_JITTER)
    brightness = rng.uniform(1.0 - BRIGHTNESS_JITTER, 1.0 + BRIGHTNESS_JITTER)
    gains = rng.uniform(1.0 - CHANNEL_GAIN_JITTER, 1.0 + CHANNEL_GAIN_JITTER, size=3)
    mean = pixels.reshape(-1, 3).mean(axis=0)
    # One fused affine map per channel; +0.5 makes the final truncation round.
    slope = (contrast * brightness * gains).astype(np.float32)
    offset = (mean * (1.0 - contrast) * brightness * gains + 0.5).astype(np.float32)
    pixels = pixels * slope + offset
    np.clip(pixels, 0.0, 255.0, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8))


# --- target: the bird --------------------------------------------------------------------


def _target_parts(attrs: dict[str, Any], rng: np.random.Generator) -> list[Part]:
    """Bird facing +x in object coordinates (y down), class details from attrs."""
    body = _shift(BODY_COLOURS[attrs["body"]], rng.normal(0.0, 6.0, size=3))
    dark = _scale(body, 0.6)
    cap = _shift(CAP_COLOURS[attrs["cap"]], rng.normal(0.0, 5.0, size=3))
    parts = _legs(dark)
    parts += _tail(attrs["tail"], dark, anchor=(-0.3, 0.0))
    parts.append((_ellipse((-0.02, 0.02), 0.36, 0.22), body))
    parts.append((_ellipse((0.31, -0.14), 0.16, 0.16), body))
    if attrs["crest"] == "Crested":
        parts += _crest(dark, head=(0.31, -0.14), radius=0.16)
    parts.append((_ellipse((0.34, -0.21), 0.12, 0.09), cap))
    parts += _beak(tip=(0.6, -0.1), base=(0.44, -0.12))
    parts += _wing(attrs["wing"], attrs["bars"], centre=(-0.07, 0.0), half=(0.26, 0.13), rng=rng)
    return parts


def _legs(colour: RGB) -> list[Part]:
    return [(_bar((x, 0.18), (x - 0.03, 0.38), 0.035), colour) for x in (-0.06, 0.06)]


# tail shape -> its polygons from the tail's anchor (ax, ay)
TAIL_POLYGONS = {
    "Fan": lambda ax, ay: [
        [(ax, ay - 0.05), (ax - 0.34, ay - 0.2), (ax - 0.36, ay + 0.2), (ax, ay + 0.05)]
    ],
    "Fork": lambda ax, ay: [
        [(ax, ay - 0.06), (ax - 0.4, ay - 0.22), (ax - 0.1, ay + 0.02)],
        [(ax, ay + 0.06), (ax - 0.4, ay + 0.2), (ax - 0.1, ay - 0.02)],
    ],
    # one long narrow wedge cocked upwards, like a wren's tail
    "Spike": lambda ax, ay: [
        [(ax + 0.02, ay - 0.06), (ax - 0.34, ay - 0.42), (ax - 0.02, ay + 0.08)]
    ],
}


def _tail(shape: str, colour: RGB, anchor: tuple[float, float]) -> list[Part]:
    return [(np.array(pts), colour) for pts in TAIL_POLYGONS[shape](*anchor)]


def _crest(colour: RGB, head: tuple[float, float], radius: float) -> list[Part]:
    hx, hy = head
    parts = []
    for angle in (-115.0, -95.0, -75.0):
        a = math.radians(angle)
        base = (hx + 0.8 * radius * math.cos(a), hy + 0.8 * radius * math.sin(a))
        tip = (hx + 2.0 * radius * math.cos(a - 0.35), hy + 2.0 * radius * math.sin(a - 0.35))
        parts.append((_bar(base, tip, 0.08, taper=True), colour))
    return parts


def _beak(tip: tuple[float, float], base: tuple[float, float]) -> list[Part]:
    bx, by = base
    return [(np.array([(bx, by - 0.045), tip, (bx, by + 0.045)]), (60, 52, 44))]


def _wing(
    colour_name: str,
    bars: int,
    centre: tuple[float, float],
    half: tuple[float, float],
    rng: np.random.Generator,
) -> list[Part]:
    colour = _shift(WING_COLOURS[colour_name], rng.normal(0.0, 5.0, size=3))
    bar_colour = BAR_COLOURS[colour_name]
    cx, cy = centre
    parts: list[Part] = [(_ellipse(centre, half[0], half[1], angle=-0.12), colour)]
    # Bars sit across the wing, centred and spaced wide enough to count at 48 px.
    spacing = 0.5 * half[0]
    for i in range(bars):
        x = cx + (i - (bars - 1) / 2) * spacing
        top, bottom = (x + 0.015, cy - half[1] * 0.8), (x - 0.015, cy + half[1] * 0.8)
        parts.append((_bar(top, bottom, 0.075), bar_colour))
    return parts


# --- source: the same birds, each image one member of its class's group ----------------


def source_image_attributes(attrs: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """All six factors of one source image: one member of its class's group, at random."""
    members = attrs["members"]
    return dict(members[int(rng.integers(len(members)))])


def _source_parts(attrs: dict[str, Any], rng: np.random.Generator) -> list[Part]:
    return _target_parts(source_image_attributes(attrs, rng), rng)


# --- geometry and colour helpers ---------------------------------------------------------


def _ellipse(centre: tuple[float, float], rx: float, ry: float, angle: float = 0.0) -> np.ndarray:
    x, y = rx * np.cos(_CIRCLE), ry * np.sin(_CIRCLE)
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([centre[0] + c * x - s * y, centre[1] + s * x + c * y], axis=1)


def _bar(
    start: tuple[float, float], end: tuple[float, float], width: float, taper: bool = False
) -> np.ndarray:
    """Thick line segment as a quad (or a triangle pointing at end when tapered)."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    nx, ny = -(y1 - y0) / length * width / 2, (x1 - x0) / length * width / 2
    if taper:
        return np.array([(x0 + nx, y0 + ny), (x1, y1), (x0 - nx, y0 - ny)])
    return np.array(
        [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)]
    )


def _hsv(hue: float, sat: float, val: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, sat, val)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _shift(colour: RGB, delta: np.ndarray) -> RGB:
    # Plain floats: numpy scalar arithmetic here dominated the drawing time.
    r, g, b = (min(255, max(0, round(c + d))) for c, d in zip(colour, delta.tolist(), strict=True))
    return r, g, b


def _scale(colour: RGB, factor: float) -> RGB:
    r, g, b = (round(c * factor) for c in colour)
    return r, g, b
