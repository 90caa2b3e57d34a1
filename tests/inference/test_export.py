"""dml.inference.export: exported files give dml.inference's embeddings, and say how."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dml.data.transforms import MEAN, STD
from dml.errors import DmlError
from dml.inference import embed_images, export_model, input_transform, list_images, read_metadata
from tests.inference.tiny import BROKEN

TOLERANCE = 1e-5  # the bound on exported vs dml.inference embeddings


def _inputs(run, images: Path) -> tuple[list[Path], torch.Tensor]:
    """Three readable images and the exported model's input for them (resized, cropped,
    [0, 1], not normalised)."""
    paths = [p for p in list_images(images).paths if p.name != BROKEN][::4]
    x = torch.stack([input_transform(run)(Image.open(p).convert("RGB")) for p in paths])
    return paths, x


def _check_metadata(meta: dict, run, fmt: str, dim: int) -> None:
    assert (meta["format"], meta["input_size"], meta["crop"], meta["dim"]) == (fmt, 32, 32, dim)
    assert meta["resize"] == {"size": 32, "mode": "shorter", "interpolation": "bilinear"}
    assert (meta["mean"], meta["std"]) == (list(MEAN), list(STD))
    assert (meta["feature"], meta["flip"]) == (run.feature, run.flip)
    assert meta["checkpoint_sha256"] == run.checkpoint_sha256


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize(("flip", "feature"), [(False, "embedding"), (True, "pooled")])
def test_torchscript_gives_the_inference_embeddings(
    loaded, images: Path, tmp_path: Path, flip: bool, feature: str
) -> None:
    """Bugs caught (acceptance): the exported model without the ImageNet normalisation, the
    L2 normalisation, the run's feature or its flip averaging, or traced in training mode
    (BatchNorm batch statistics); metadata that misstates size, mean/std or feature; a trace
    fixed to its example's batch size (3 images here, 2 in the example)."""
    run = dataclasses.replace(loaded, flip=flip, feature=feature)
    out = tmp_path / "model.pt"
    meta = export_model(run, "torchscript", out)
    paths, x = _inputs(run, images)
    with torch.no_grad():
        exported = torch.jit.load(str(out))(x).numpy()
    expected = embed_images(run, paths, progress=False).embeddings
    # the pruned ResNet-18 ends in unit 7: 512 pooled channels, then the 128-d head
    assert exported.shape == expected.shape == (3, 128 if feature == "embedding" else 512)
    assert np.abs(exported - expected).max() < TOLERANCE
    _check_metadata(read_metadata(out), run, "torchscript", exported.shape[1])
    assert read_metadata(out) == meta


def test_onnx_gives_the_inference_embeddings(loaded, images: Path, tmp_path: Path) -> None:
    """Bugs caught (acceptance): as for TorchScript, through torch.onnx and onnxruntime, and
    a graph whose batch size is fixed (exported with 2, run with 3)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    meta = export_model(loaded, "onnx", out)
    paths, x = _inputs(loaded, images)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"images": x.numpy()})[0]
    expected = embed_images(loaded, paths, progress=False).embeddings
    assert exported.shape == (3, 128)
    assert np.abs(exported - expected).max() < TOLERANCE
    _check_metadata(read_metadata(out), loaded, "onnx", 128)
    assert read_metadata(out) == meta


def test_export_never_overwrites(loaded, tmp_path: Path) -> None:
    """Bugs caught: an existing file replaced by an export, a half-written file left behind
    by a failed one, an unknown format accepted."""
    out = tmp_path / "model.pt"
    out.write_bytes(b"someone's model")
    with pytest.raises(DmlError, match="exists: remove it or choose another --out"):
        export_model(loaded, "torchscript", out)
    assert out.read_bytes() == b"someone's model"
    with pytest.raises(DmlError, match=r"format 'tflite': expected one of \['torchscript'"):
        export_model(loaded, "tflite", tmp_path / "m.tflite")
    with pytest.raises(DmlError, match="folder not found"):
        export_model(loaded, "torchscript", tmp_path / "no" / "m.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
