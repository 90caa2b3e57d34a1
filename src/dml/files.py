"""Files written whole or not at all: a temporary name, then a rename over the target."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dml.errors import DmlError


def write_text_atomic(path: Path, text: str) -> Path:
    """Write text to path via path.tmp and a rename: readers see the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DmlError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def write_json(path: Path, data: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """data as indented JSON at path (atomically; default as json.dumps takes it)."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=default) + "\n")
