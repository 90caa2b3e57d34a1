"""Export a run's embedding model as one self-contained file: TorchScript or ONNX.

The contract of an exported model: input a float32 tensor (N, 3, S, S) of RGB values in
[0, 1], S the run's crop size, i.e. the image resized and center-cropped as the run
evaluates (metadata "resize" and "crop") and converted by torchvision's ToTensor; the file
normalises with ImageNet's mean and std, runs the run's feature (and flip averaging) and
returns (N, D) float32 L2-normalised features, whose inner products are cosine similarities.
The metadata (JSON: input size, resize, mean, std, feature, flip, run, checkpoint SHA-256,
dml version) is stored in the file: TorchScript `_extra_files["dml.json"]`, ONNX
`metadata_props["dml"]`.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import transforms as T

from dml.errors import DmlError
from dml.inference.model import LoadedRun, first_line

FORMATS = ("torchscript", "onnx")
METADATA_KEY = "dml.json"  # TorchScript extra file; ONNX metadata_props key "dml"
ONNX_OPSET = 18


class ExportedEmbedder(nn.Module):
    """[0, 1] images -> ImageNet normalisation -> the run's feature (+ mirrored) -> L2 norm."""

    def __init__(self, run: LoadedRun) -> None:
        from dml.data.transforms import MEAN, STD

        super().__init__()
        self.model = run.model
        self.pooled = run.feature == "pooled"
        self.flip = run.flip
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The run's raw feature of normalised images."""
        return self.model.pooled(x) if self.pooled else self.model(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) images in [0, 1] -> (N, D) L2-normalised features."""
        x = (images - self.mean) / self.std
        out = self.features(x)
        if self.flip:
            # raw sum before the one normalisation, as compute_embeddings and evaluation do
            out = out + self.features(torch.flip(x, dims=[3]))
        return nn.functional.normalize(out, dim=1, eps=1e-12)


def input_transform(run: LoadedRun) -> T.Compose:
    """The run's eval transform without its Normalize: PIL image -> (3, S, S) in [0, 1], the
    exported model's input."""
    steps = list(run.transform.transforms)
    if not isinstance(steps[-1], T.Normalize):
        raise DmlError("the run's eval transform does not end with Normalize")
    return T.Compose(steps[:-1])


def export_metadata(run: LoadedRun, fmt: str) -> dict[str, Any]:
    """What a user of the exported file needs to feed it and to know where it came from."""
    from dml.data.transforms import MEAN, STD, eval_resize_size
    from dml.inference.index import dml_version

    dataset = run.config.dataset
    return {
        "format": fmt,
        "input": "float32 (N, 3, S, S) RGB in [0, 1] (torchvision ToTensor)",
        "input_size": run.image_size,
        "resize": {
            "size": eval_resize_size(dataset),
            "mode": str(dataset.eval_resize),  # square: (r, r); shorter: shorter side to r
            "interpolation": str(dataset.interpolation),
        },
        "crop": run.image_size,
        "mean": list(MEAN),
        "std": list(STD),
        "feature": run.feature,
        "flip": run.flip,
        "output": "float32 (N, D) L2-normalised features; inner product = cosine",
        "run": str(run.run_dir),
        "checkpoint": run.checkpoint,
        "checkpoint_sha256": run.checkpoint_sha256,
        "dml_version": dml_version(),
    }


def export_model(run: LoadedRun, fmt: str, out: str | Path) -> dict[str, Any]:
    """Write run's embedding model to out (not overwriting a file there); returns the metadata
    with the output dimension added."""
    if fmt not in FORMATS:
        raise DmlError(f"format '{fmt}': expected one of {list(FORMATS)}")
    out = Path(out).resolve()
    if out.exists():
        raise DmlError(f"{out} exists: remove it or choose another --out")
    if not out.parent.is_dir():
        raise DmlError(f"folder not found: {out.parent}")
    wrapper = ExportedEmbedder(run).cpu().eval()  # the exported file runs on any device
    example = torch.rand(2, 3, run.image_size, run.image_size)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with torch.no_grad():
            meta = export_metadata(run, fmt) | {"dim": int(wrapper(example).shape[1])}
        if fmt == "torchscript":
            _write_torchscript(wrapper, example, meta, tmp)
        else:
            _write_onnx(wrapper, example, meta, tmp)
        os.replace(tmp, out)  # a failed export leaves no partial file under out's name
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        run.model.to(run.device)  # the wrapper moved the run's own model to the CPU
    return meta


def _write_torchscript(
    wrapper: nn.Module, example: torch.Tensor, meta: dict[str, Any], path: Path
) -> None:
    with warnings.catch_warnings():
        # torch 2.14 marks jit.trace deprecated; TorchScript files still load in C++ and Python
        warnings.simplefilter("ignore", FutureWarning)
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, example)
        torch.jit.save(traced, str(path), _extra_files={METADATA_KEY: json.dumps(meta)})


def _write_onnx(
    wrapper: nn.Module, example: torch.Tensor, meta: dict[str, Any], path: Path
) -> None:
    try:
        import onnx
    except ImportError:
        raise DmlError(
            'ONNX export needs the onnx extra: pip install -e ".[onnx]" (onnx, onnxscript)'
        ) from None
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                input_names=["images"],
                output_names=["features"],
                dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
                opset_version=ONNX_OPSET,
                verbose=False,
            )
    except ImportError as exc:  # onnxscript, which torch's exporter imports lazily
        raise DmlError(f'ONNX export needs {exc.name}: pip install -e ".[onnx]"') from None
    except Exception as exc:  # the exporter's errors are its own classes
        raise DmlError(f"ONNX export failed: {first_line(exc)}") from None
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = "dml", json.dumps(meta)
    onnx.save(proto, str(path))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata stored in an exported TorchScript or ONNX file."""
    path = Path(path)
    if zipfile.is_zipfile(path):  # TorchScript: a zip archive holding <name>/extra/dml.json
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_KEY}"))
            return json.loads(archive.read(name))
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return json.loads({p.key: p.value for p in model.metadata_props}["dml"])
