"""Assemble a run from its config: data, model, loss, optimizer, policy; train; report."""

from __future__ import annotations

import json
import random
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from dml.config import SyntheticDatasetConfig
from dml.data import (
    RetrievalData,
    Split,
    load_classification_data,
    load_retrieval_data,
)
from dml.data.device import augments_on_device
from dml.data.loaders import Loader, Loaders, LoaderSpec, build_loaders
from dml.data.sampler import EpochBatchSampler
from dml.data.transforms import describe_eval
from dml.errors import DivergedError, DmlError, InfeasibleError
from dml.evaluation.classify import predict, top1_accuracy
from dml.evaluation.embed import FEATURES, compute_embeddings
from dml.evaluation.recall import retrieval_metrics
from dml.evaluation.selection import (
    TASK_METRIC,
    check_protocol,
    holdout_classes,
    holdout_images,
    select_epoch,
    test_metrics,
)
from dml.logging import RESULTS_FILE, ScalarLogger, recall_table, write_results
from dml.losses import build_loss
from dml.models import EmbeddingNet, build_torchvision, make_backbone, units_to_keep
from dml.models.backbones import load_imagenet, load_state_file
from dml.policies import build_policy
from dml.training import distributed
from dml.training.loop import Trainer, TrainerParts
from dml.training.optim import build_optimizer
from dml.training.param_groups import build_param_groups, freeze_groups
from dml.validation import check_config, check_data_counts


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """'auto' takes CUDA when present, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():  # under torchrun: this rank's GPU
            return torch.device("cuda", distributed.local_rank())
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DmlError(f"trainer.device={name} but CUDA is not available: use auto or cpu")
    return torch.device(name)


def set_cudnn_benchmark(device: torch.device, benchmark: bool) -> None:
    """trainer.cudnn_benchmark: cuDNN times its convolution algorithms per shape (CUDA only)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = benchmark


def count_params(module: torch.nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in module.parameters())


def build_model(cfg: DictConfig, pretrained: bool = True) -> EmbeddingNet:
    """torchvision backbone + pretrained weights + pruning + embedding head; prints exact counts."""
    m = cfg.model
    net = build_torchvision(m.arch, m.last_stride, cfg.dataset.image_size)
    if pretrained:
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
            Path(cfg.data_dir),
            cfg.model.arch,
            source,
            cfg.pretrain,
            cfg.logger.progress,
            pick_device(cfg.trainer.device),
            cfg.trainer.precision,
            cfg.trainer.channels_last,
        )
        load_state_file(net, str(path))
    else:
        load_state_file(net, choice)


def make_loaders(
    cfg: DictConfig,
    data: RetrievalData,
    val: Split | None = None,
    device: torch.device | None = None,
) -> Loaders:
    """The run's loaders (dml.data.loaders.build_loaders) from its config."""
    device = device or pick_device(cfg.trainer.device)
    spec = LoaderSpec(
        dataset=cfg.dataset,
        batch_size=cfg.trainer.batch_size,
        samples_per_class=cfg.trainer.samples_per_class,
        eval_batch_size=cfg.eval.batch_size,
        seed=cfg.seed,
        progress=cfg.logger.progress,
    )
    on_device = augments_on_device(cfg.dataset.augment_on, cfg.dataset.cache, device)
    return build_loaders(spec, data, val, device, on_device, eval_classes(cfg, data))


def eval_classes(cfg: DictConfig, data: RetrievalData) -> dict:
    """Label mappings shared across evaluation splits ({split name: class -> index})."""
    if cfg.task == "classification":  # test labels scored with the classifier's indices
        return {"test": {c: i for i, c in enumerate(sorted(set(data.train.labels)))}}
    if data.gallery is None:
        return {}
    # queries and gallery are compared by label: one mapping over both
    union = sorted(set(data.test.labels) | set(data.gallery.labels))
    shared = {c: i for i, c in enumerate(union)}
    return {"test": shared, "gallery": shared}


def split_data(cfg: DictConfig) -> tuple[RetrievalData, Split | None]:
    """The task's splits; with eval.selection=val, part of the training split held out as val:
    classes (eval.val_classes) for retrieval, images of every class (eval.val_images) for
    classification."""
    if cfg.task == "classification":
        data = load_classification_data(cfg.dataset)
    else:
        data = load_retrieval_data(cfg.dataset)
    if cfg.eval.selection != "val":
        return data, None
    if cfg.task == "classification":
        train, val = holdout_images(data.train, cfg.eval.val_images)
    else:
        train, val = holdout_classes(data.train, cfg.eval.val_classes)
    return RetrievalData(train=train, test=data.test, gallery=data.gallery), val


def check_eval(cfg: DictConfig) -> None:
    """One-line errors for eval keys before anything is built."""
    if cfg.eval.feature not in FEATURES:
        raise DmlError(f"eval.feature='{cfg.eval.feature}': expected one of {list(FEATURES)}")
    check_protocol(cfg.eval.selection)


@dataclass
class RunParts:
    """What a run trains and evaluates, built from its config (train_run, diagnostics)."""

    data: RetrievalData
    val: Split | None
    model: EmbeddingNet
    loss: torch.nn.Module
    optimizer: torch.optim.Optimizer
    infos: list
    loaders: Loaders
    device: torch.device

    @property
    def sampler(self) -> EpochBatchSampler:
        """The training batch sampler."""
        return self.loaders.sampler

    @property
    def train_loader(self) -> Loader:
        """The training loader."""
        return self.loaders.train

    @property
    def eval_loaders(self) -> dict[str, Loader]:
        """The evaluation loaders by split name."""
        return self.loaders.evals

    def close(self) -> None:
        """End the loaders' worker processes (dml.data.loaders.close_loader)."""
        self.loaders.close()

    def __enter__(self) -> RunParts:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_parts(cfg: DictConfig, pretrained: bool = True) -> RunParts:
    """Checked config -> data, model, loss, optimizer and loaders, seeded by cfg.seed."""
    seed_everything(cfg.seed)
    check_config(cfg)
    check_eval(cfg)
    device = pick_device(cfg.trainer.device)
    set_cudnn_benchmark(device, cfg.trainer.cudnn_benchmark)
    with distributed.main_first():  # rank 0 generates the synthetic sets, the others wait
        data, val = split_data(cfg)
    gallery = len(data.gallery) if data.gallery else None
    check_data_counts(cfg, data.train.num_classes, len(data.train), len(data.test), gallery)
    held = ""
    if val is not None:
        what = "held-out classes" if cfg.task == "retrieval" else "training classes"
        held = f", {len(val)} val images ({val.num_classes} {what})"
    tqdm.write(
        f"{cfg.task} data {cfg.dataset.name}: {len(data.train)} train images "
        f"({data.train.num_classes} classes){held}, {len(data.test)} test "
        f"{'queries' if gallery else 'images'} ({data.test.num_classes} classes)"
        f"{f' against {gallery} gallery images' if gallery else ''}; {describe_eval(cfg.dataset)}"
    )
    with distributed.main_first():  # rank 0 pre-trains the synthetic source model once
        model = build_model(cfg, pretrained=pretrained).to(device)
    if cfg.trainer.sync_bn:
        model = distributed.sync_batchnorm(model, device)
    loaders = make_loaders(cfg, data, val, device)
    try:
        classes = len(loaders.train_set.class_to_index)
        loss = build_loss(cfg.loss, classes, cfg.model.embedding_dim).to(device)
        groups, infos = build_param_groups(
            model, loss, cfg.optimizer.lr, cfg.optimizer.head_lr, cfg.loss.lr_mult
        )
        freeze_groups(groups, list(cfg.trainer.freeze))
        optimizer = build_optimizer(cfg.optimizer, groups)
    except BaseException:
        loaders.close()
        raise
    return RunParts(data, val, model, loss, optimizer, infos, loaders, device)


def make_trainer(
    cfg: DictConfig,
    parts: RunParts,
    policy,
    run_dir: Path,
    logger: ScalarLogger,
    evaluate=None,
    **options,
) -> Trainer:
    """The Trainer of a run's parts with the config's trainer settings (options override)."""
    settings = {
        "epochs": cfg.trainer.epochs,
        "log_every": cfg.trainer.log_every,
        "max_steps": cfg.trainer.max_steps_per_epoch,
        "progress": cfg.logger.progress,
        "save_checkpoints": cfg.trainer.save_checkpoints,
        "save_epoch_weights": cfg.trainer.save_epoch_weights,
        "warmup_epochs": cfg.trainer.warmup_epochs,
        "precision": cfg.trainer.precision,
        "channels_last": cfg.trainer.channels_last,
        "selection": cfg.eval.selection,
        "metric": TASK_METRIC[cfg.task],
        "reset_momentum": cfg.optimizer.reset_momentum,
    } | options
    p = parts
    return Trainer(
        TrainerParts(
            p.model, p.loss, p.optimizer, p.infos, policy, p.train_loader, p.sampler, p.device
        ),
        logger=logger,
        evaluate=evaluate or (lambda epoch: {}),
        run_dir=run_dir,
        **settings,
    )


@contextmanager
def bare_trainer(cfg: DictConfig, run_dir: Path) -> Iterator[Trainer]:
    """The run's Trainer without evaluation, checkpoints or pre-trained weights (speed checks:
    bench, GPU); its loaders' workers end with the block."""
    with build_parts(cfg, pretrained=False) as parts:
        logger = ScalarLogger(run_dir, cfg.logger.tensorboard and distributed.is_main())
        try:
            yield make_trainer(
                cfg, parts, build_policy(cfg), run_dir, logger, save_checkpoints=False
            )
        finally:
            logger.close()


def train_run(cfg: DictConfig, run_dir: Path, results: dict, state: dict | None = None) -> dict:
    """The whole run; fills `results` as it goes (so a failure still reports what was done).

    With `state` (a checkpoint of this run) it continues after the checkpoint's epoch. The
    loaders' worker processes end with it, whatever the ending.
    """
    # a resumed run's weights come from its checkpoint, not from the pretrained file
    with build_parts(cfg, pretrained=state is None) as parts:
        return _train(cfg, run_dir, results, state, parts)


def _train(
    cfg: DictConfig, run_dir: Path, results: dict, state: dict | None, parts: RunParts
) -> dict:
    model, loss, device = parts.model, parts.loss, parts.device
    eval_loaders = parts.eval_loaders
    policy = build_policy(cfg)

    def metrics_on(name: str, feature: str) -> dict[str, float]:
        loader = eval_loaders[name]
        if cfg.task == "classification":
            out = gathered(predict(model, loss.classifier, loader, device, cfg.eval.flip))
            return distributed.from_main(top1_accuracy(*out) if distributed.is_main() else None)
        emb, labels = embed(name, feature)
        # the test queries of In-Shop are searched against its gallery, not each other
        gallery = {}
        if name == "test" and "gallery" in eval_loaders:
            gallery = dict(zip(("gallery", "gallery_labels"), embed("gallery", feature)))
        if not distributed.is_main():
            return distributed.from_main(None)  # evaluated once, on rank 0
        return distributed.from_main(
            retrieval_metrics(emb, labels, list(cfg.eval.ks), cfg.eval.map_at_r, **gallery)
        )

    def embed(name: str, feature: str) -> tuple:
        loader = eval_loaders[name]
        # on a GPU the embeddings stay there and are searched there (dml.evaluation.recall)
        keep = device.type == "cuda" and not distributed.active()
        emb, labels = gathered(
            compute_embeddings(model, loader, device, cfg.eval.flip, feature, on_device=keep)
        )
        if not bool(torch.isfinite(torch.as_tensor(emb)).all()):  # weights diverged late
            raise DivergedError(
                f"the {name} embeddings became NaN or inf; lower the learning rate "
                "(checkpoints already saved are intact)"
            )
        return emb, labels

    def evaluate(epoch: int) -> dict:
        out = metrics_on("test", cfg.eval.feature)
        if "val" in eval_loaders:
            out["val"] = metrics_on("val", cfg.eval.feature)
        return out

    logger = ScalarLogger(run_dir, cfg.logger.tensorboard and distributed.is_main())
    metric = TASK_METRIC[cfg.task]
    if state is None:
        # retrieval: what a user of the pretrained weights starts from, its pooled features,
        # not a random projection of them through the untrained head; classification: the
        # untrained classifier (chance level), as there is nothing else to score
        results["metrics"]["initial"] = metrics_on("test", "pooled")
        logger.scalars("eval_initial", results["metrics"]["initial"], 0)
    else:
        results["metrics"]["initial"] = state["initial"]
    tqdm.write("before fine-tuning: " + _short(results["metrics"]["initial"]))
    trainer = make_trainer(
        cfg,
        parts,
        policy,
        run_dir,
        logger,
        evaluate,
        extra_state={"config": results["config"], "initial": results["metrics"]["initial"]},
    )
    start = 0
    if state is not None:
        start = trainer.load_state_dict(state)
        tqdm.write(f"resumed after epoch {start - 1} of {cfg.trainer.epochs}")
    try:
        history = trainer.fit(start)
    finally:
        results["history"] = trainer.history
        results["timing"] = trainer.timing
        results.update(policy.report())
        logger.close()
    metric_rows = [test_metrics(h) for h in history]
    results["metrics"]["final"] = metric_rows[-1] if metric_rows else results["metrics"]["initial"]
    results["metrics"]["best"] = max(
        metric_rows or [results["metrics"]["initial"]], key=lambda m: m[metric]
    )
    if history:
        results["selection"] = select_epoch(history, cfg.eval.selection, metric)
    return results


def gathered(arrays: tuple) -> tuple:
    """Under torchrun, each array concatenated over the ranks' shards in rank order, which
    is dataset order (shards are contiguous); the arrays themselves in one process."""
    if not distributed.active():
        return arrays
    parts = distributed.gather_all(tuple(_numpy(a) for a in arrays))
    joined = [np.concatenate([part[i] for part in parts]) for i in range(len(arrays))]
    return tuple(
        torch.from_numpy(j) if isinstance(a, torch.Tensor) else j for a, j in zip(arrays, joined)
    )


def _numpy(a) -> np.ndarray:
    return a.cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _short(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items())


def one_line(exc: Exception) -> str:
    """The user-facing line of an error, also when a DataLoader worker wrapped it in a traceback."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return last.split("DmlError: ", 1)[-1]


EXIT_CODES = {"completed": 0, "failed": 1, "infeasible": 2, "interrupted": 130}


def run(cfg: DictConfig, run_dir: Path, state: dict | None = None) -> int:
    """Run one job into run_dir; every ending writes results.json with its status.

    User errors become one line; an unexpected exception also writes its traceback to
    traceback.txt. SIGINT and SIGTERM stop the run and keep the last complete checkpoint.
    With `state` (from dml.training.resume) the run continues in its own folder.
    Returns the process exit code (0 completed, 1 failed, 2 infeasible, 130 interrupted).
    """
    run_dir = Path(run_dir)
    # under torchrun rank 0 decides and alone writes; the other ranks follow its answer
    taken = distributed.from_main(state is None and (run_dir / RESULTS_FILE).exists())
    if taken:
        print(
            f"error: {run_dir} already holds a run (results.json); choose another run dir "
            f"or continue it with resume={run_dir}",
            file=sys.stderr,
        )
        return 1
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        config = OmegaConf.to_container(cfg, resolve=True)
        results = {"status": "running", "config": config, "metrics": {}, "history": []}
        _write(run_dir, results)
        failed = None
    except (OSError, OmegaConfBaseException) as exc:
        failed = f"error: cannot start a run in {run_dir}: {one_line(exc)}"
    failed = distributed.from_main(failed)
    if failed:
        print(failed, file=sys.stderr)
        return 1
    start = time.time()
    with stop_on_signals():
        results["status"], error = _train_status(cfg, run_dir, results, state)
    if error is not None:
        results["error"] = error
    results["wall_time_s"] = round(time.time() - start, 2)
    _write(run_dir, results)
    code = EXIT_CODES[results["status"]]
    if results["status"] == "completed":
        _print_summary(results, run_dir)
    elif results["status"] == "interrupted":
        print(f"interrupted: {resume_hint(run_dir)}", file=sys.stderr)
    else:
        print(f"error: {results['error']}", file=sys.stderr)
    return code


def _write(run_dir: Path, results: dict) -> None:
    """results.json, written by rank 0 only."""
    if distributed.is_main():
        write_results(run_dir, results)


def _train_status(cfg: DictConfig, run_dir: Path, results: dict, state: dict | None):
    """(status, error line or None) of train_run."""
    try:
        train_run(cfg, run_dir, results, state)
        return "completed", None
    except KeyboardInterrupt:
        return "interrupted", "stopped by a signal (SIGINT or SIGTERM)"
    except InfeasibleError as exc:
        return "infeasible", str(exc)
    except DmlError as exc:
        return "failed", one_line(exc)
    except Exception as exc:  # a bug, not a user mistake: keep the traceback for the report
        trace = run_dir / "traceback.txt"
        trace.write_text(traceback.format_exc())
        return "failed", f"{type(exc).__name__}: {one_line(exc)} (unexpected; see {trace})"


def resume_hint(run_dir: Path) -> str:
    """How to continue run_dir, or why it cannot be."""
    if (Path(run_dir) / "checkpoints" / "last.pt").is_file():
        return f"continue with: python train.py resume={run_dir}"
    return "no epoch was completed, so there is nothing to resume"


@contextmanager
def stop_on_signals():
    """SIGTERM raises KeyboardInterrupt, as SIGINT does, while the block runs."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    chosen = sel["val" if sel["protocol"] == "val" else "test"]
    return float(chosen["top1"] if "top1" in chosen else chosen["R@1"])


def _print_summary(results: dict, run_dir: Path) -> None:
    m = results["metrics"]
    rows = {"before fine-tuning": m["initial"], "after fine-tuning": m["final"]}
    sel = results.get("selection")
    if sel is not None:
        metric = "top1" if "top1" in sel["test"] else "R@1"
        how = f"best test {metric} (paper)"
        if sel["protocol"] == "val":
            how = f"chosen by val {metric}"
        rows[f"epoch {sel['epoch']}, {how}"] = sel["test"]
    if "top1" in m["final"]:
        print("\nTop-1 accuracy (%) on the test images (the training classes)")
    else:
        print("\nRecall@K (%) on the test classes")
    print(recall_table(rows))
    print(
        f"\nrun dir: {run_dir}  (results.json, tb/, checkpoints/)  "
        f"wall time {results['wall_time_s']:.0f} s"
    )
