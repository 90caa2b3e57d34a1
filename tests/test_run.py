"""dml.run.run: every ending writes results.json with its status, in one line for the user."""

from __future__ import annotations

import json

import dml.run
from dml.run import run
from tests.conftest import TINY_OVERRIDES, compose_cfg


def test_unexpected_exception_writes_failed_results_and_the_traceback(
    tmp_path, monkeypatch, capsys
):
    """Catches a bug (not a DmlError) escaping as a traceback with no results.json: a sweep's
    aggregator would not see the job, and a multirun would stop at it."""

    def broken(cfg, run_dir, results, state=None):
        results["metrics"]["initial"] = {"R@1": 0.25}
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(dml.run, "train_run", broken)
    run_dir = tmp_path / "run"
    code = run(compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path}"]), run_dir)
    assert code == 1
    saved = json.loads((run_dir / "results.json").read_text())
    trace = run_dir / "traceback.txt"
    assert saved["status"] == "failed" and saved["metrics"] == {"initial": {"R@1": 0.25}}
    assert saved["error"] == f"ZeroDivisionError: division by zero (unexpected; see {trace})"
    assert "raise ZeroDivisionError" in trace.read_text()
    err = capsys.readouterr().err.strip()
    assert err == f"error: {saved['error']}"


def test_results_json_is_written_when_the_run_starts(tmp_path, monkeypatch):
    """Catches a run that writes results.json only at its end: a killed run would leave no
    record of its config, and resume could not check the checkpoint against it."""
    seen = {}

    def look(cfg, run_dir, results, state=None):
        seen.update(json.loads((run_dir / "results.json").read_text()))
        results["metrics"] = {"initial": {"R@1": 0.5}, "final": {"R@1": 0.5}}

    monkeypatch.setattr(dml.run, "train_run", look)
    cfg = compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path}"])
    assert run(cfg, tmp_path / "run") == 0
    assert seen["status"] == "running" and seen["config"]["trainer"]["batch_size"] == 12


def test_loader_workers_never_exceed_the_cores(monkeypatch):
    """Catches more loader processes than cores (they would fight the training threads), and
    an explicit dataset.num_workers being ignored when it fits."""
    from dml.run import loader_workers

    for cores, auto in [(1, 0), (2, 0), (3, 2), (4, 3), (16, 8)]:
        monkeypatch.setattr(dml.run.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert loader_workers(None) == auto
        assert loader_workers(0) == 0 and loader_workers(64) == cores
    assert loader_workers(1) == 1


def test_diverged_weights_are_a_one_line_error_not_a_bug(tmp_path, capsys):
    """Catches weights that blow up in an epoch's last steps (the loss still finite) reaching
    faiss as NaN embeddings: a ValueError reported as an unexpected bug with a traceback."""
    cfg = compose_cfg(
        [*TINY_OVERRIDES, f"data_dir={tmp_path}", "lr_policy=constant"]
        + ["optimizer.lr=1e6", "optimizer.head_lr=1e6", "trainer.epochs=2"]
    )
    assert run(cfg, tmp_path / "run") == 1
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["status"] == "failed" and "lower the learning rate" in saved["error"]
    assert not (tmp_path / "run" / "traceback.txt").exists()
    assert capsys.readouterr().err.strip() == f"error: {saved['error']}"


def _loader_cfg(tmp_path, *overrides: str):
    return compose_cfg([*TINY_OVERRIDES, f"data_dir={tmp_path}", *overrides])


def _jpeg_data(tmp_path):
    """Train, test and val splits of real 24x18 JPEGs (3 classes of 4 images each)."""
    from PIL import Image

    from dml.data import RetrievalData, Split

    def split(name: str, classes: range) -> Split:
        paths, labels = [], []
        for c in classes:
            for k in range(4):
                path = tmp_path / f"{name}_{c}_{k}.jpg"
                Image.new("RGB", (24, 18), (40 * c, 20 * k, 99)).save(path)
                paths.append(path)
                labels.append(c)
        return Split(paths, labels)

    return RetrievalData(split("train", range(3)), split("test", range(3, 6))), split("val", [6])


def test_loaders_pin_memory_for_cuda_and_keep_their_workers(tmp_path):
    """Bug: batches copied to the GPU from pageable memory (no pin_memory, a synchronous
    copy), or worker processes started again for every epoch and every evaluation."""
    import torch

    from dml.run import make_loaders

    data, val = _jpeg_data(tmp_path)
    for workers, device, pinned in [(0, "cpu", False), (1, "cpu", False), (1, "cuda", True)]:
        cfg = _loader_cfg(tmp_path, f"dataset.num_workers={workers}")
        _, _, train, evals = make_loaders(cfg, data, val, torch.device(device))
        assert sorted(evals) == ["test", "val"]
        for loader in [train, *evals.values()]:
            assert (loader.num_workers, loader.pin_memory) == (workers, pinned)
            assert loader.persistent_workers is (workers > 0)


def test_iterating_a_loader_leaves_the_global_rng_alone(tmp_path):
    """Bug: each new loader iterator drawing its worker seed from torch's global RNG; with
    persistent workers only the first does, so an AutoLR re-run of epoch 0 (and a resumed
    run) would see other dropout masks than the trial it repeats."""
    import torch

    from dml.run import make_loaders

    data, val = _jpeg_data(tmp_path)
    _, _, train, evals = make_loaders(_loader_cfg(tmp_path), data, val, torch.device("cpu"))
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    for loader in [train, train, evals["test"]]:
        next(iter(loader))
    assert torch.equal(torch.rand(2), expected)


def test_cache_ram_caches_every_loaders_images_with_its_own_transform(tmp_path):
    """Bug: dataset.cache=ram read but not applied to some loader (the eval sets decoded every
    epoch), or the train resize cached for the eval crop (or the reverse)."""
    import torch

    from dml.run import make_loaders

    data, val = _jpeg_data(tmp_path)
    cfg = _loader_cfg(tmp_path, "dataset.cache=ram", "dataset.num_workers=0")
    train_set, _, train, evals = make_loaders(cfg, data, val, torch.device("cpu"))
    assert train.dataset is train_set
    for loader, n in [(train, 12), (evals["test"], 12), (evals["val"], 4)]:
        assert len(loader.dataset.cache) == n
        assert loader.dataset.cache.nbytes == n * 32 * 32 * 3  # image_size 32, resized once
    plain = _loader_cfg(tmp_path, "dataset.num_workers=0")
    _, _, _, plain_evals = make_loaders(plain, data, val, torch.device("cpu"))
    assert plain_evals["test"].dataset.cache is None
    got, want = next(iter(evals["test"])), next(iter(plain_evals["test"]))
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_cudnn_benchmark_follows_the_key_on_cuda_only(monkeypatch):
    """Bug: trainer.cudnn_benchmark ignored on CUDA, or set (a global flag) for CPU runs."""
    import torch

    from dml.run import set_cudnn_benchmark

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    set_cudnn_benchmark(torch.device("cuda"), False)
    assert torch.backends.cudnn.benchmark is False
    set_cudnn_benchmark(torch.device("cpu"), True)
    assert torch.backends.cudnn.benchmark is False
    set_cudnn_benchmark(torch.device("cuda"), True)
    assert torch.backends.cudnn.benchmark is True
