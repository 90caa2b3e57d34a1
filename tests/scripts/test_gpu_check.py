"""scripts/gpu_check.{sh,py} on a machine without CUDA (the check itself: tests/bench)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_gpu_the_check_says_so_and_exits_cleanly():
    """Bug: on a machine without CUDA the check dies with a traceback (or claims a result);
    or the shell script runs whatever `python` is first on PATH, not the one it is given."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    for cmd in (["bash", "scripts/gpu_check.sh"], [sys.executable, "scripts/gpu_check.py"]):
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-1000:]
        assert re.fullmatch(r"gpu_check: no CUDA \w+.*nothing checked\n", proc.stdout)
        assert "images/s" not in proc.stdout and proc.stderr == ""
