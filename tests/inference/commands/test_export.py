"""scripts/export.py: the run's checkpoint and feature exported as asked; one-line errors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from dml.inference import embed_images, input_transform, load_run, read_metadata
from tests.inference.tiny import image_folder


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_last_checkpoint_pooled(
    script: ModuleType,
    run_dir: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bugs caught: --checkpoint or --feature not reaching the export (best.pt and the
    embedding exported whatever was asked), a summary that misstates the input or output."""
    out = tmp_path / "m.pt"
    args = ["--format", "torchscript", "--out", str(out), "--checkpoint", "last"]
    assert script.main([str(run_dir), *args, "--feature", "pooled"]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith(f"exported torchscript {out} ({out.stat().st_size} bytes) in ")
    assert "input (N, 3, 32, 32) in [0, 1], output (N, 512) L2-normalised pooled" in stdout
    meta = read_metadata(out)
    last = run_dir / "checkpoints" / "last.pt"
    assert (meta["checkpoint"], meta["feature"]) == ("last", "pooled")
    assert meta["checkpoint_sha256"] == hashlib.sha256(last.read_bytes()).hexdigest()
    run = load_run(run_dir, "last", "cpu", feature="pooled")
    paths = sorted(image_folder(tmp_path_factory).glob("*/*_000[12].png"))
    x = torch.stack([input_transform(run)(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        exported = torch.jit.load(str(out))(x).numpy()
    expected = embed_images(run, paths, progress=False).embeddings
    assert exported.shape == (4, 512)
    assert np.abs(exported - expected).max() < 1e-5


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("bad_format", ["argument --format: invalid choice: 'tflite'"]),
        ("exists", ["exists: remove it or choose another --out"]),
        ("missing_run", ["run directory not found"]),
        ("no_format", ["the following arguments are required: --format"]),
    ],
)
def test_errors_are_one_line(
    run_dir: Path,
    tmp_path: Path,
    one_line_error: Callable[[list[str], list[str]], None],
    case: str,
    needles: list[str],
) -> None:
    """Bugs caught: a usage block or traceback instead of one `error:` line and exit 2, an
    existing file overwritten."""
    out = tmp_path / "m.pt"
    argv = [str(run_dir), "--format", "torchscript", "--out", str(out)]
    if case == "bad_format":
        argv[2] = "tflite"
    elif case == "exists":
        out.write_bytes(b"keep")
    elif case == "missing_run":
        argv[0] = str(tmp_path / "nope")
    elif case == "no_format":
        argv = [str(run_dir), "--out", str(out)]
    one_line_error(argv, needles)
    assert out.read_bytes() == b"keep" if case == "exists" else not out.exists()
