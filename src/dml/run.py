"""Assemble a run from its config: data, model, loss, optimizer, policy; train; report."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from dml.config import SyntheticDatasetConfig
from dml.data import ImageListDataset, RetrievalData, Split, load_retrieval_data
from dml.data.sampler import EpochBatchSampler, SeededBatches
from dml.data.transforms import describe_eval, eval_transform, train_transform
from dml.errors import DmlError, InfeasibleError
from dml.evaluation.embed import FEATURES, compute_embeddings, retrieval_metrics
from dml.evaluation.selection import (
    check_protocol,
    holdout_classes,
    select_epoch,
    test_metrics,
)
from dml.logging import RESULTS_FILE, ScalarLogger, recall_table, write_results
from dml.losses import build_loss
from dml.models import EmbeddingNet, build_torchvision, make_backbone, units_to_keep
from dml.models.backbones import load_imagenet, load_state_file
from dml.policies import build_policy
from dml.training.loop import Trainer, TrainerParts
from dml.training.optim import build_optimizer
from dml.training.param_groups import build_param_groups, freeze_groups


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """'auto' takes CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DmlError(f"trainer.device={name} but CUDA is not available: use auto or cpu")
    return torch.device(name)


def count_params(module: torch.nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in module.parameters())


def build_model(cfg: DictConfig) -> EmbeddingNet:
    """torchvision backbone + pretrained weights + pruning + embedding head; prints exact counts."""
    m = cfg.model
    net = build_torchvision(m.arch, m.last_stride)
    load_pretrained(net, cfg)
    backbone = make_backbone(net)
    total, before = backbone.num_units, count_params(backbone)
    keep = units_to_keep(total, list(cfg.pruning.units), cfg.pruning.remove_last)
    backbone.prune(keep)
    tqdm.write(
        f"backbone {m.arch}: {total} units, {before} parameters; after pruning "
        f"{total - keep} unit(s): {keep} units, {count_params(backbone)} parameters "
        f"({backbone.out_channels}-d features)"
    )
    return EmbeddingNet(backbone, m.embedding_dim, m.pooling, head=m.head, freeze_bn=m.freeze_bn)


def load_pretrained(net: torch.nn.Module, cfg: DictConfig) -> None:
    """Apply model.pretrained: none | imagenet | synthetic | <path to a state_dict>."""
    choice = cfg.model.pretrained
    if choice == "none":
        return
    if choice == "imagenet":
        load_imagenet(net, cfg.model.arch, cfg.model.weights)
    elif choice == "synthetic":
        from dml.training.pretrain import ensure_pretrained

        source = cfg.dataset
        if cfg.dataset.name != "synthetic":
            # the offline stand-in for ImageNet weights, pre-trained at this run's image size
            size = cfg.dataset.image_size
            source = OmegaConf.structured(
                SyntheticDatasetConfig(name="synthetic", root="", image_size=size, resize_size=size)
            )
            tqdm.write(
                f"model.pretrained=synthetic on {cfg.dataset.name}: backbone pre-trained on the "
                "synthetic source set, not ImageNet (the paper: model.pretrained=imagenet)"
            )
        path = ensure_pretrained(
            Path(cfg.data_dir), cfg.model.arch, source, cfg.pretrain, cfg.logger.progress
        )
        load_state_file(net, str(path))
    else:
        load_state_file(net, choice)


def make_loaders(cfg: DictConfig, data: RetrievalData, val: Split | None = None):
    """Training loader (epoch-seeded batches) and evaluation loaders: {"test", "val"?}."""
    train = ImageListDataset(data.train, train_transform(cfg.dataset))
    sampler = EpochBatchSampler(
        train.targets, cfg.trainer.batch_size, cfg.trainer.samples_per_class, cfg.seed
    )
    workers = cfg.dataset.num_workers
    train_loader = DataLoader(train, batch_sampler=SeededBatches(sampler), num_workers=workers)
    evals = {"test": data.test} | ({"val": val} if val is not None else {})
    eval_loaders = {
        name: DataLoader(
            ImageListDataset(split, eval_transform(cfg.dataset)),
            batch_size=cfg.eval.batch_size,
            num_workers=workers,
        )
        for name, split in evals.items()
    }
    return train, sampler, train_loader, eval_loaders


def split_data(cfg: DictConfig) -> tuple[RetrievalData, Split | None]:
    """The benchmark's splits; with eval.selection=val, some training classes held out as val."""
    data = load_retrieval_data(cfg.dataset)
    if cfg.eval.selection != "val":
        return data, None
    train, val = holdout_classes(data.train, cfg.eval.val_classes)
    return RetrievalData(train=train, test=data.test), val


def check_eval(cfg: DictConfig) -> None:
    """One-line errors for eval keys before anything is built."""
    if cfg.eval.feature not in FEATURES:
        raise DmlError(f"eval.feature='{cfg.eval.feature}': expected one of {list(FEATURES)}")
    check_protocol(cfg.eval.selection)


def train_run(cfg: DictConfig, run_dir: Path, results: dict) -> dict:
    """The whole run; fills `results` as it goes (so a failure still reports what was done)."""
    seed_everything(cfg.seed)
    check_eval(cfg)
    device = pick_device(cfg.trainer.device)
    data, val = split_data(cfg)
    held = f", {len(val)} val images ({val.num_classes} held-out classes)" if val else ""
    tqdm.write(
        f"data {cfg.dataset.name}: {len(data.train)} train images "
        f"({data.train.num_classes} classes){held}, {len(data.test)} test images "
        f"({data.test.num_classes} classes); {describe_eval(cfg.dataset)}"
    )
    model = build_model(cfg).to(device)
    train, sampler, train_loader, eval_loaders = make_loaders(cfg, data, val)
    loss = build_loss(cfg.loss, len(train.class_to_index), cfg.model.embedding_dim).to(device)
    groups, infos = build_param_groups(
        model, loss, cfg.optimizer.lr, cfg.optimizer.head_lr, cfg.loss.lr_mult
    )
    freeze_groups(groups, list(cfg.trainer.freeze))
    optimizer = build_optimizer(cfg.optimizer, groups)
    policy = build_policy(cfg)

    def metrics_on(name: str, feature: str) -> dict[str, float]:
        loader = eval_loaders[name]
        emb, labels = compute_embeddings(model, loader, device, cfg.eval.flip, feature)
        return retrieval_metrics(emb, labels, list(cfg.eval.ks), cfg.eval.map_at_r)

    def evaluate(epoch: int) -> dict:
        out = metrics_on("test", cfg.eval.feature)
        if "val" in eval_loaders:
            out["val"] = metrics_on("val", cfg.eval.feature)
        return out

    # what a user of the pretrained weights starts from: its pooled features, not a
    # random projection of them through the untrained head
    results["metrics"]["initial"] = metrics_on("test", "pooled")
    tqdm.write("before fine-tuning: " + _short(results["metrics"]["initial"]))
    logger = ScalarLogger(run_dir, cfg.logger.tensorboard)
    logger.scalars("eval_initial", results["metrics"]["initial"], 0)
    trainer = Trainer(
        TrainerParts(model, loss, optimizer, infos, policy, train_loader, sampler, device),
        epochs=cfg.trainer.epochs,
        logger=logger,
        evaluate=evaluate,
        run_dir=run_dir,
        log_every=cfg.trainer.log_every,
        max_steps=cfg.trainer.max_steps_per_epoch,
        progress=cfg.logger.progress,
        save_checkpoints=cfg.trainer.save_checkpoints,
        warmup_epochs=cfg.trainer.warmup_epochs,
    )
    try:
        history = trainer.fit()
    finally:
        results["history"] = trainer.history
        results.update(policy.report())
        logger.close()
    metric_rows = [test_metrics(h) for h in history]
    results["metrics"]["final"] = metric_rows[-1] if metric_rows else results["metrics"]["initial"]
    results["metrics"]["best"] = max(
        metric_rows or [results["metrics"]["initial"]], key=lambda m: m["R@1"]
    )
    if history:
        results["selection"] = select_epoch(history, cfg.eval.selection)
    return results


def _short(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items())


def one_line(exc: Exception) -> str:
    """The user-facing line of an error, also when a DataLoader worker wrapped it in a traceback."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return last.split("DmlError: ", 1)[-1]


def run(cfg: DictConfig, run_dir: Path) -> int:
    """Run one job into run_dir; user errors become one line and a status in results.json.

    Returns the process exit code (0 completed, 1 failed, 2 infeasible).
    """
    run_dir = Path(run_dir)
    if (run_dir / RESULTS_FILE).exists():
        print(
            f"error: {run_dir} already holds a run (results.json); choose another run dir",
            file=sys.stderr,
        )
        return 1
    run_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "status": "running",
        "config": OmegaConf.to_container(cfg, resolve=True),
        "metrics": {},
        "history": [],
    }
    start = time.time()
    code = 0
    try:
        train_run(cfg, run_dir, results)
        results["status"] = "completed"
    except InfeasibleError as exc:
        results["status"], results["error"], code = "infeasible", str(exc), 2
    except DmlError as exc:
        results["status"], results["error"], code = "failed", one_line(exc), 1
    results["wall_time_s"] = round(time.time() - start, 2)
    write_results(run_dir, results)
    if code:
        print(f"error: {results['error']}", file=sys.stderr)
    else:
        _print_summary(results, run_dir)
    return code


def objective(run_dir: Path) -> float:
    """What a sweeper maximises: R@1 of the reported epoch on the set that chose it.

    Under eval.selection=val that is val R@1 (a search never sees the test classes);
    under test, test R@1. NaN when the run did not complete or a previous run was kept.
    """
    path = Path(run_dir) / RESULTS_FILE
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return float("nan")
    sel = results.get("selection")
    if results.get("status") != "completed" or not sel:
        return float("nan")
    return float(sel["val" if sel["protocol"] == "val" else "test"]["R@1"])


def _print_summary(results: dict, run_dir: Path) -> None:
    m = results["metrics"]
    rows = {"before fine-tuning": m["initial"], "after fine-tuning": m["final"]}
    sel = results.get("selection")
    if sel is not None:
        how = "chosen by val R@1" if sel["protocol"] == "val" else "best test R@1 (paper)"
        rows[f"epoch {sel['epoch']}, {how}"] = sel["test"]
    print("\nRecall@K (%) on the test classes")
    print(recall_table(rows))
    print(
        f"\nrun dir: {run_dir}  (results.json, tb/, checkpoints/)  "
        f"wall time {results['wall_time_s']:.0f} s"
    )
