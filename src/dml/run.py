"""The composition root: a run's parts built from its config, trained, reported.

Every part comes from the package that owns it (data loaders from dml.data, the model from
dml.models, the loss, policy and optimizer from their registries, the scoring from the run's
task); this module only wires them together from the config and carries a run from start to
results.json, whatever its ending.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn
from tqdm import tqdm

from dml.data import RetrievalData, Split
from dml.data.device import augments_on_device
from dml.data.loaders import Loader, Loaders, LoaderSpec, build_loaders
from dml.data.sampler import EpochBatchSampler
from dml.data.synthetic_set import SyntheticDatasetConfig
from dml.data.transforms import describe_eval
from dml.errors import DmlError, InfeasibleError
from dml.evaluation.evaluator import EvalSettings, Evaluator
from dml.evaluation.selection import select_epoch, test_metrics
from dml.logging import RESULTS_FILE, ScalarLogger, recall_table, write_results
from dml.losses import build_loss
from dml.models import EmbeddingNet, factory
from dml.models.backbones import load_imagenet, load_state_file
from dml.policies import build_policy
from dml.tasks import get_task
from dml.training import distributed
from dml.training.device import pick_device, seed_everything, set_cudnn_benchmark
from dml.training.loop import Trainer, TrainerParts
from dml.training.optim import build_optimizer
from dml.training.param_groups import build_param_groups, freeze_groups
from dml.validation import check_config, check_data_counts


# -- the model and its weights ---------------------------------------------------------
def weights_loader(cfg: DictConfig, device: torch.device | None = None) -> Callable | None:
    """model.pretrained as a function loading weights into a torchvision model: none |
    imagenet | synthetic (pre-trained here on the synthetic source, cached) | a file path."""
    choice = cfg.model.pretrained
    loaders = {
        "none": lambda: None,
        "imagenet": lambda: lambda net: load_imagenet(net, cfg.model.arch, cfg.model.weights),
        "synthetic": lambda: lambda net: load_state_file(net, str(_synthetic_weights(cfg, device))),
    }
    if choice in loaders:
        return loaders[choice]()
    return lambda net: load_state_file(net, choice)


def _synthetic_weights(cfg: DictConfig, device: torch.device | None) -> Path:
    """The cached synthetic-source weights for this run's backbone (pre-trained once)."""
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
    return ensure_pretrained(
        Path(cfg.data_dir),
        cfg.model.arch,
        source,
        cfg.pretrain,
        cfg.logger.progress,
        device or pick_device(cfg.trainer.device),
        cfg.trainer.precision,
        cfg.trainer.channels_last,
    )


def model_for(
    cfg: DictConfig, pretrained: bool = True, device: torch.device | None = None
) -> EmbeddingNet:
    """The run's model, with its pretrained weights unless `pretrained` is False."""
    load = weights_loader(cfg, device) if pretrained else None
    return factory.build_model(cfg.model, cfg.pruning, cfg.dataset.image_size, load)


# -- data ----------------------------------------------------------------------------------
def split_data(cfg: DictConfig) -> tuple[RetrievalData, Split | None]:
    """The task's splits of the dataset, with the val split when eval.selection=val."""
    return get_task(cfg.task).split(cfg.dataset, cfg.eval)


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
    classes = get_task(cfg.task).eval_classes(data)
    return build_loaders(spec, data, val, device, on_device, classes)


def prepare(cfg: DictConfig) -> None:
    """Generate the run's data and pre-train its source model now, if not cached yet (before
    several runs start that share them)."""
    split_data(cfg)
    model_for(cfg)


# -- the parts -------------------------------------------------------------------------
@dataclass
class RunParts:
    """What a run trains and evaluates, built from its config (train_run, diagnostics)."""

    data: RetrievalData
    val: Split | None
    model: EmbeddingNet
    loss: nn.Module
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
    device = pick_device(cfg.trainer.device)
    set_cudnn_benchmark(device, cfg.trainer.cudnn_benchmark)
    with distributed.main_first():  # rank 0 generates the synthetic sets, the others wait
        data, val = split_data(cfg)
    gallery = len(data.gallery) if data.gallery else None
    check_data_counts(cfg, data.train.num_classes, len(data.train), len(data.test), gallery)
    _describe(cfg, data, val)
    with distributed.main_first():  # rank 0 pre-trains the synthetic source model once
        model = model_for(cfg, pretrained, device).to(device)
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


def _describe(cfg: DictConfig, data: RetrievalData, val: Split | None) -> None:
    gallery = len(data.gallery) if data.gallery else None
    held = ""
    if val is not None:
        held = f", {len(val)} val images ({val.num_classes} {get_task(cfg.task).val_classes})"
    tqdm.write(
        f"{cfg.task} data {cfg.dataset.name}: {len(data.train)} train images "
        f"({data.train.num_classes} classes){held}, {len(data.test)} test "
        f"{'queries' if gallery else 'images'} ({data.test.num_classes} classes)"
        f"{f' against {gallery} gallery images' if gallery else ''}; {describe_eval(cfg.dataset)}"
    )


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
        "metric": get_task(cfg.task).metric,
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


def make_evaluator(cfg: DictConfig, parts: RunParts) -> Evaluator:
    """The run's Evaluator: its task's scores of the evaluation loaders."""
    e = cfg.eval
    settings = EvalSettings(ks=list(e.ks), map_at_r=e.map_at_r, flip=e.flip, feature=e.feature)
    task = get_task(cfg.task)
    return Evaluator(task, parts.model, parts.loss, parts.eval_loaders, parts.device, settings)


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


# -- a run -----------------------------------------------------------------------------
def train_run(cfg: DictConfig, run_dir: Path, results: dict, state: dict | None = None) -> dict:
    """The whole run; fills `results` as it goes (so a failure still reports what was done).

    With `state` (a checkpoint of this run) it continues after the checkpoint's epoch. The
    loaders' worker processes end with it, whatever the ending.
    """
    # a resumed run's weights come from its checkpoint, not from the pretrained file
    with build_parts(cfg, pretrained=state is None) as parts:
        logger = ScalarLogger(run_dir, cfg.logger.tensorboard and distributed.is_main())
        try:
            return _train(cfg, run_dir, results, state, parts, logger)
        finally:
            logger.close()


def _train(
    cfg: DictConfig,
    run_dir: Path,
    results: dict,
    state: dict | None,
    parts: RunParts,
    logger: ScalarLogger,
) -> dict:
    evaluate = make_evaluator(cfg, parts)
    metrics = results["metrics"]
    if state is None:
        # retrieval: what a user of the pretrained weights starts from, its pooled features,
        # not a random projection of them through the untrained head; classification: the
        # untrained classifier (chance level), as there is nothing else to score
        metrics["initial"] = evaluate.metrics("test", "pooled")
        logger.scalars("eval_initial", metrics["initial"], 0)
    else:
        metrics["initial"] = state["initial"]
    tqdm.write("before fine-tuning: " + _short(metrics["initial"]))
    policy = build_policy(cfg)
    extra = {"config": results["config"], "initial": metrics["initial"]}
    trainer = make_trainer(cfg, parts, policy, run_dir, logger, evaluate, extra_state=extra)
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
    _summarise(results, history, cfg.eval.selection, get_task(cfg.task).metric)
    return results


def _summarise(results: dict, history: list[dict], selection: str, metric: str) -> None:
    """The final, best and reported (selected) epoch's metrics into results."""
    m = results["metrics"]
    rows = [test_metrics(h) for h in history]
    m["final"] = rows[-1] if rows else m["initial"]
    m["best"] = max(rows or [m["initial"]], key=lambda row: row[metric])
    if history:
        results["selection"] = select_epoch(history, selection, metric)


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
    """What a sweeper maximises: the task's metric of the reported epoch on the set that
    chose it.

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
    return float(chosen[_task_of(results).metric])


def _task_of(results: dict):
    """The task a results.json's run had (retrieval for runs from before the key existed)."""
    return get_task((results.get("config") or {}).get("task", "retrieval"))


def _print_summary(results: dict, run_dir: Path) -> None:
    m, task = results["metrics"], _task_of(results)
    rows = {"before fine-tuning": m["initial"], "after fine-tuning": m["final"]}
    sel = results.get("selection")
    if sel is not None:
        how = f"best test {task.metric} (paper)"
        if sel["protocol"] == "val":
            how = f"chosen by val {task.metric}"
        rows[f"epoch {sel['epoch']}, {how}"] = sel["test"]
    print(f"\n{task.title}")
    print(recall_table(rows))
    print(
        f"\nrun dir: {run_dir}  (results.json, tb/, checkpoints/)  "
        f"wall time {results['wall_time_s']:.0f} s"
    )
