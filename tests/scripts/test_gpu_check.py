"""scripts/gpu_check.{sh,py}: the CUDA check's code path, run here on the CPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.scripts.loader import load_script

gpu_check = load_script("gpu_check")
ROOT = Path(__file__).resolve().parents[2]


def test_the_check_times_exactly_the_steps_it_reports(tmp_path, capsys):
    """Bug: the timed loop runs fewer steps than it divides by (an epoch shorter than --steps
    ends the count early), inflating images/s; or the recipe no longer composes."""
    tiny = [
        "dataset.image_size=32",
        "dataset.resize_size=32",
        "dataset.generated_size=32",
        "dataset.num_classes=8",  # 4 training classes, 2 of them held out for val
        "dataset.images_per_class=6",
        "eval.val_classes=0.5",
        "trainer.batch_size=6",
        "trainer.samples_per_class=0",
        "logger.progress=false",
    ]
    args = gpu_check.parse_args(["--device", "cpu", "--data-dir", str(tmp_path), *tiny])
    cfg = gpu_check.compose(args)
    assert (cfg.model.arch, list(cfg.pruning.units), cfg.model.head) == (
        "resnet50",
        [15, 16],
        "paper",
    )
    trainer = gpu_check.bare_trainer(cfg, tmp_path / "run")
    assert len(trainer.p.sampler) == 2  # 2 classes x 6 images, batches of 6
    gpu_check.run_steps(trainer, 5)  # two whole epochs and one step of a third
    assert trainer.global_step == 5


def test_without_a_gpu_the_check_says_so_and_exits_cleanly():
    """Bug: on a machine without CUDA the check dies with a traceback (or claims a result);
    or the shell script runs whatever `python` is first on PATH, not the one it is given."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    for cmd in (["bash", "scripts/gpu_check.sh"], [sys.executable, "scripts/gpu_check.py"]):
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-1000:]
        assert re.fullmatch(r"gpu_check: no CUDA \w+.*nothing checked\n", proc.stdout)
        assert "images/s" not in proc.stdout and proc.stderr == ""
