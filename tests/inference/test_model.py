"""dml.inference.model: a run loaded with its own checkpoint, config, transform and feature."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dml.errors import DmlError
from dml.evaluation.recall import retrieval_metrics
from dml.inference import embed_images, list_images, load_run
from dml.inference.embed import folder_classes
from dml.inference.model import checkpoint_path


def test_loaded_run_reproduces_the_runs_own_test_metrics(run_dir: Path, loaded) -> None:
    """Bugs caught: the checkpoint's weights not loaded (random or pretrained ones), another
    eval transform (no resize/crop, no normalisation) or feature than the run evaluated with:
    the test classes embedded through dml.inference must score the R@1 and MAP@R that the run
    wrote to results.json for the same weights (one epoch: best.pt is the final epoch)."""
    results = json.loads((run_dir / "results.json").read_text())
    images = next((run_dir.parent / "data" / "synthetic").glob("target_*")) / "images"
    found = list_images(images)
    test = [p for p in found.paths if p.parent.name[:3] in ("004", "005", "006")]
    embedded = embed_images(loaded, test, progress=False)
    labels = folder_classes(images, embedded.paths)
    metrics = retrieval_metrics(embedded.embeddings, np.unique(labels, return_inverse=True)[1], [1])
    assert len(test) == 18
    assert metrics["R@1"] == pytest.approx(results["metrics"]["final"]["R@1"], abs=1e-6)
    assert metrics["MAP@R"] == pytest.approx(results["metrics"]["final"]["MAP@R"], abs=1e-6)
    assert (loaded.checkpoint, loaded.feature, loaded.flip, loaded.image_size) == (
        "best",
        "embedding",
        False,
        32,
    )


def test_checkpoint_choice_and_its_fingerprint(run_dir: Path, tmp_path: Path) -> None:
    """Bugs caught: checkpoint="last" still loading best.pt (or the reverse), a fingerprint
    of the wrong file or of its name instead of its bytes."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    last = copy / "checkpoints" / "last.pt"
    state = torch.load(last, map_location="cpu", weights_only=False)
    state["model"]["head.bias"] = state["model"]["head.bias"] + 1.0
    torch.save(state, last)
    best = torch.load(copy / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)

    as_best = load_run(copy, "best", "cpu")
    as_last = load_run(copy, "last", "cpu")
    torch.testing.assert_close(as_best.model.head.bias, best["model"]["head.bias"], atol=0, rtol=0)
    torch.testing.assert_close(as_last.model.head.bias, state["model"]["head.bias"], atol=0, rtol=0)
    assert as_last.checkpoint_path == last.resolve()
    assert as_last.checkpoint_sha256 == hashlib.sha256(last.read_bytes()).hexdigest()
    assert as_best.checkpoint_sha256 != as_last.checkpoint_sha256


def test_feature_override_and_a_run_without_newer_keys(run_dir: Path, tmp_path: Path) -> None:
    """Bugs caught: feature= ignored; a checkpoint without a stored config (older runs) not
    falling back to results.json; keys added to the schemas since a run (model.head,
    eval.feature) raising instead of taking their defaults."""
    assert load_run(run_dir, device="cpu", feature="pooled").feature == "pooled"
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    state = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)
    del state["config"]
    torch.save(state, old / "checkpoints" / "best.pt")
    results = json.loads((run_dir / "results.json").read_text())
    del results["config"]["model"]["head"], results["config"]["eval"]["feature"]
    (old / "results.json").write_text(json.dumps(results))
    run = load_run(old, device="cpu")
    assert (run.feature, run.config.model.head) == ("embedding", "linear")
    torch.testing.assert_close(run.model.head.weight, state["model"]["head.weight"])


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("missing", ["run directory not found"]),
        ("no_checkpoints", ["has no checkpoint best.pt", "no epoch completed"]),
        ("only_last", ["has no checkpoint best.pt", "--checkpoint last"]),
        ("garbage", ["cannot read checkpoint", "best.pt"]),
        ("not_dml", ["is not a dml checkpoint"]),
        ("bad_name", ["checkpoint 'final'", "['best', 'last']"]),
        ("bad_feature", ["feature 'logits'", "['embedding', 'pooled']"]),
    ],
)
def test_load_errors_are_one_line(tmp_path: Path, run_dir: Path, case: str, needles: list) -> None:
    """Bug caught: a user mistake surfacing as a traceback (FileNotFoundError, an unpickling
    error, a KeyError) or as a message that does not say what to do."""
    run, kwargs = tmp_path / "run", {}
    if case != "missing":
        (run / "checkpoints").mkdir(parents=True)
    good = run_dir / "checkpoints" / "best.pt"
    if case == "only_last":
        shutil.copy(good, run / "checkpoints" / "last.pt")
    elif case == "garbage":
        (run / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    elif case == "not_dml":
        torch.save({"weights": 1}, run / "checkpoints" / "best.pt")
    elif case in ("bad_name", "bad_feature"):
        shutil.copy(good, run / "checkpoints" / "best.pt")
        kwargs = {"checkpoint": "final"} if case == "bad_name" else {"feature": "logits"}
    with pytest.raises(DmlError) as caught:
        load_run(run, device="cpu", **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_checkpoint_path_names_the_file(run_dir: Path) -> None:
    """Bug caught: best and last swapped in the path a run's checkpoint is read from."""
    assert checkpoint_path(run_dir, "last") == run_dir / "checkpoints" / "last.pt"
    assert checkpoint_path(run_dir) == run_dir / "checkpoints" / "best.pt"
