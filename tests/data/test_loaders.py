"""dml.data.loaders: worker counts, pinned and persistent loaders, the RAM cache, and
loaders that end their workers when a run ends."""

from __future__ import annotations

import multiprocessing

import torch

import dml.data.loaders
from dml.data.loaders import close_loader, loader_workers
from dml.run import make_loaders
from tests.conftest import TINY_OVERRIDES, compose_cfg


def test_loader_workers_never_exceed_the_cores(monkeypatch):
    """Catches more loader processes than cores (they would fight the training threads), an
    explicit dataset.num_workers being ignored when it fits, and a GPU run held to 8 processes
    (its decoding then falls behind the training step: 1,198 against 1,858 images/s)."""
    cuda = torch.device("cuda")
    for cores, auto, on_gpu in [(1, 0, 0), (2, 0, 0), (3, 2, 2), (4, 3, 3), (16, 8, 15)]:
        monkeypatch.setattr(
            dml.data.loaders.os, "sched_getaffinity", lambda pid, n=cores: set(range(n))
        )
        assert loader_workers(None) == auto and loader_workers(None, cuda) == on_gpu
        assert loader_workers(0) == 0 and loader_workers(64, cuda) == cores
    assert loader_workers(1) == 1


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
    data, val = _jpeg_data(tmp_path)
    for workers, device, pinned in [(0, "cpu", False), (1, "cpu", False), (1, "cuda", True)]:
        cfg = _loader_cfg(tmp_path, f"dataset.num_workers={workers}", "dataset.cache=none")
        loaders = make_loaders(cfg, data, val, torch.device(device))
        train, evals = loaders.train, loaders.evals
        assert sorted(evals) == ["test", "val"]
        for loader in [train, *evals.values()]:
            assert (loader.num_workers, loader.pin_memory) == (workers, pinned)
            assert loader.persistent_workers is (workers > 0)


def test_iterating_a_loader_leaves_the_global_rng_alone(tmp_path):
    """Bug: each new loader iterator drawing its worker seed from torch's global RNG; with
    persistent workers only the first does, so an AutoLR re-run of epoch 0 (and a resumed
    run) would see other dropout masks than the trial it repeats."""
    data, val = _jpeg_data(tmp_path)
    loaders = make_loaders(_loader_cfg(tmp_path), data, val, torch.device("cpu"))
    train, evals = loaders.train, loaders.evals
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    for loader in [train, train, evals["test"]]:
        next(iter(loader))
    assert torch.equal(torch.rand(2), expected)


def test_cache_ram_caches_every_loaders_images_with_its_own_transform(tmp_path):
    """Bug: dataset.cache=ram read but not applied to some loader (the eval sets decoded every
    epoch), or the train resize cached for the eval crop (or the reverse)."""
    data, val = _jpeg_data(tmp_path)
    cfg = _loader_cfg(tmp_path, "dataset.cache=ram", "dataset.num_workers=0")
    loaders = make_loaders(cfg, data, val, torch.device("cpu"))
    train_set, train, evals = loaders.train_set, loaders.train, loaders.evals
    assert train.dataset is train_set
    for loader, n in [(train, 12), (evals["test"], 12), (evals["val"], 4)]:
        assert len(loader.dataset.cache) == n
        assert loader.dataset.cache.nbytes == n * 32 * 32 * 3  # image_size 32, resized once
    plain = _loader_cfg(tmp_path, "dataset.cache=none", "dataset.num_workers=0")
    plain_evals = make_loaders(plain, data, val, torch.device("cpu")).evals
    assert plain_evals["test"].dataset.cache is None
    got, want = next(iter(evals["test"])), next(iter(plain_evals["test"]))
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def _children() -> list:
    """This process's live child processes (loader workers are multiprocessing children)."""
    return multiprocessing.active_children()


def test_close_loader_ends_persistent_workers_now(tmp_path):
    """Bug: a loader's persistent workers left running after its last use, for the
    interpreter's exit to join (what held every CUDA process ~45 s after its last line)."""
    data, val = _jpeg_data(tmp_path)
    loaders = make_loaders(_loader_cfg(tmp_path, "dataset.num_workers=2"), data, val)
    before = set(_children())
    for loader in [loaders.train, *loaders.evals.values()]:
        next(iter(loader))
    workers = set(_children()) - before
    assert len(workers) == 2 * 3  # two per loader: train, test, val
    loaders.close()
    assert set(_children()) - before == set()
    assert all(not w.is_alive() for w in workers)
    close_loader(loaders.train)  # closing twice is harmless
    next(iter(loaders.train))  # and a closed loader can start its workers again
    close_loader(loaders.train)
    assert set(_children()) - before == set()


def test_a_run_leaves_no_live_child_process(tmp_path):
    """Bug: run() returning with the loaders' persistent workers alive (a Hydra multirun
    keeps every finished job's workers until the sweep ends); also for a failed run."""
    from dml.run import run

    assert _children() == []
    cfg = _loader_cfg(tmp_path / "ok", "dataset.num_workers=2", "lr_policy=constant")
    assert run(cfg, tmp_path / "ok" / "run") == 0
    assert _children() == []
    # a run that fails after its loaders have started (NaN embeddings: diverged weights)
    cfg = _loader_cfg(
        tmp_path / "bad",
        "dataset.num_workers=2",
        "lr_policy=constant",
        "optimizer.lr=1e6",
        "optimizer.head_lr=1e6",
    )
    assert run(cfg, tmp_path / "bad" / "run") == 1
    assert _children() == []
