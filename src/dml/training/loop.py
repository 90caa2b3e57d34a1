"""The training loop: epochs made of trials, whichever LR policy decides them."""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dml.data.sampler import EpochBatchSampler
from dml.errors import DivergedError, DmlError
from dml.evaluation.selection import selection_score
from dml.logging.tensorboard import ScalarLogger
from dml.models.embedding import EmbeddingNet
from dml.policies.base import LRPolicy, PolicyContext
from dml.training import distributed
from dml.training.checkpoint import save_checkpoint
from dml.training.param_groups import GroupInfo

# trainer.precision -> the autocast dtype of the forward pass and loss (None: no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


class Joint(nn.Module):
    """Model and loss as one module, so DDP reduces the loss's parameters' gradients too."""

    def __init__(self, model: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(self.model(images), labels)


@dataclass
class TrainerParts:
    """Everything a Trainer drives, built by dml.run from the config."""

    model: EmbeddingNet
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    groups: list[GroupInfo]
    policy: LRPolicy
    loader: DataLoader
    sampler: EpochBatchSampler
    device: torch.device


class Trainer:
    """Runs epochs; each epoch is re-run for as long as the policy rejects its trials."""

    def __init__(
        self,
        parts: TrainerParts,
        epochs: int,
        logger: ScalarLogger,
        evaluate: Callable[[int], dict[str, float]],
        run_dir: Path,
        log_every: int = 10,
        max_steps: int = 0,
        progress: bool = True,
        save_checkpoints: bool = True,
        save_epoch_weights: bool = False,
        warmup_epochs: int = 0,
        precision: str = "fp32",
        channels_last: bool = False,
        selection: str = "test",
        metric: str = "R@1",
        extra_state: dict | None = None,
        reset_momentum: bool = False,
    ) -> None:
        self.p = parts
        self.epochs, self.logger, self.evaluate, self.run_dir = epochs, logger, evaluate, run_dir
        main = distributed.is_main()  # under torchrun only rank 0 prints and writes
        self.log_every, self.progress = log_every, progress and main
        self.save, self.save_weights = save_checkpoints and main, save_epoch_weights and main
        self.echo: Callable[[str], None] = tqdm.write if main else _silent
        self.warmup_epochs, self.selection, self.metric = warmup_epochs, selection, metric
        self.reset_momentum = reset_momentum  # optimizer.reset_momentum
        self.extra_state = extra_state or {}  # stored in every checkpoint (config, initial metrics)
        self.best: dict | None = None  # {"epoch", "score"} of the best epoch by `selection`
        self._warming: list[torch.nn.Parameter] | None = None  # params frozen for warm-up
        self.steps = min(len(parts.sampler), max_steps) if max_steps else len(parts.sampler)
        self.global_step = 0
        self.history: list[dict] = []
        self.timing: list[dict] = []  # seconds per epoch: training (every trial), evaluation
        self.amp_dtype = autocast_dtype(precision, parts.device)
        # fp16 gradients underflow without loss scaling; a disabled scaler passes through
        self.scaler = torch.amp.GradScaler(parts.device.type, enabled=precision == "fp16")
        self.channels_last = channels_last
        if channels_last:  # in place: the optimizer keeps the same Parameter objects
            parts.model.to(memory_format=torch.channels_last)
        self.net = self._forward_module(warmup_epochs > 0)
        parts.policy.setup(
            PolicyContext(
                optimizer=parts.optimizer,
                groups=parts.groups,
                backbone=parts.model.backbone,
                epochs=epochs,
                steps_per_epoch=self.steps,
                snapshot=self.snapshot,
                restore=self.restore,
                log_scalar=logger.scalar,
                echo=self.echo,
                sync=self.sync,
            )
        )

    # -- ranks under torchrun ---------------------------------------------------
    def _forward_module(self, unused_params: bool) -> nn.Module | None:
        """Under torchrun, DDP over model + global-batch loss (parameters from rank 0)."""
        if not distributed.active():
            return None
        p = self.p
        net = Joint(p.model, distributed.global_batch_loss(p.loss))
        ids = [p.device.index] if p.device.type == "cuda" else None
        # warm-up epochs leave the backbone without gradients
        return nn.parallel.DistributedDataParallel(
            net, device_ids=ids, find_unused_parameters=unused_params
        )

    def sync(self, values: list[float]) -> list[float]:
        """Average values across ranks (identity in a single process)."""
        return distributed.mean(values)

    def _agreed(self, decision: bool) -> bool:
        """Rank 0's policy decision and LRs on every rank, so no rank can diverge."""
        if not distributed.active():
            return decision
        decision, lrs = distributed.from_main(
            (decision, [g["lr"] for g in self.p.optimizer.param_groups])
        )
        for group, lr in zip(self.p.optimizer.param_groups, lrs):
            group["lr"] = lr
        return decision

    # -- trial snapshots: model, loss parameters, optimizer and RNG ------------
    def snapshot(self) -> dict:
        """A copy of the trainable state on its own device (not of the whole trainer)."""
        return {
            "model": {k: v.detach().clone() for k, v in self.p.model.state_dict().items()},
            "loss": {k: v.detach().clone() for k, v in self.p.loss.state_dict().items()},
            "optimizer": copy.deepcopy(self.p.optimizer.state_dict()),
            "scaler": self.scaler.state_dict(),  # fp16: a re-run starts from the same scale
            "rng": torch.get_rng_state(),
        }

    def restore(self, token: dict) -> None:
        """Put back a snapshot exactly (weights bit for bit)."""
        self.p.model.load_state_dict(token["model"])
        self.p.loss.load_state_dict(token["loss"])
        self.p.optimizer.load_state_dict(copy.deepcopy(token["optimizer"]))
        self._load_scaler(token["scaler"])
        torch.set_rng_state(token["rng"])

    def _load_scaler(self, state: dict | None) -> None:
        """Put back a GradScaler state; none or {} (an fp32 run's) keeps the current one."""
        if state:  # an enabled scaler refuses {} (a disabled one's state)
            self.scaler.load_state_dict(state)

    # -- loop --------------------------------------------------------------------
    def fit(self, start_epoch: int = 0) -> list[dict]:
        """Train from start_epoch to the end; returns one metrics row per epoch."""
        for epoch in range(start_epoch, self.epochs):
            self._warm_up(epoch)
            started = time.perf_counter()
            losses: list[float] = []
            while True:
                if self.reset_momentum:  # every trial starts without momentum, as AutoLR's
                    self.p.optimizer.state.clear()
                self.p.policy.begin_epoch(epoch)
                self._agreed(True)
                losses.append(self.train_epoch(epoch, len(losses)))
                if epoch == 0 and len(losses) == 1:
                    # the single-LR start, before any policy decides (AutoLR's v0 trial)
                    self._save_weights("first_trial")
                if self._agreed(self.p.policy.end_epoch(epoch)):
                    break
            kept = self.p.policy.kept_trial()
            trained = time.perf_counter() - started
            # the loss of the trial whose weights were kept, not of the last one run
            self._end_of_epoch(epoch, losses[-1 if kept is None else kept], len(losses), trained)
        return self.history

    def _warm_up(self, epoch: int) -> None:
        """Warm-up epochs train only the head and the loss's parameters (proxy-anchor recipe)."""
        if epoch < self.warmup_epochs and self._warming is None:
            # only what trains now: groups frozen by trainer.freeze stay frozen afterwards
            self._warming = [
                param
                for info, group in zip(self.p.groups, self.p.optimizer.param_groups)
                if info.kind in ("stem", "unit")
                for param in group["params"]
                if param.requires_grad
            ]
            for param in self._warming:
                param.requires_grad_(False)
        elif epoch >= self.warmup_epochs and self._warming is not None:
            for param in self._warming:
                param.requires_grad_(True)
            self._warming = None

    def train_epoch(self, epoch: int, trial: int) -> float:
        """One pass over this epoch's batches (until the policy ends the trial); mean loss."""
        p = self.p
        p.model.train()
        p.sampler.set_epoch(epoch)
        batches = iter(p.loader)
        # summed on the device: reading a loss waits for the GPU, so only log steps do it
        total = torch.zeros((), dtype=_sum_dtype(p.device), device=p.device)
        done = 0
        bar = tqdm(
            range(self.steps),
            desc=f"epoch {epoch} trial {trial}",
            leave=False,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        for step in bar:
            images, labels = next(batches)
            p.policy.step(epoch, step)
            loss = self._loss(images, labels)
            self._step(loss, epoch, step)
            total += loss.detach()
            done += 1
            if self.global_step % self.log_every == 0:
                self._log_step(_finite(loss.item(), epoch, step), bar)
            self.global_step += 1
            if not self._agreed(p.policy.continue_trial(epoch, done)):
                break
        bar.close()
        # a NaN between log steps makes the sum NaN: caught here, before the policy scores
        return _finite(total.item(), epoch, done - 1) / max(1, done)

    def _loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The batch's loss; forward and loss under autocast when trainer.precision asks."""
        p = self.p
        images = images.to(p.device, non_blocking=True)  # async from pinned memory
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(p.device, non_blocking=True)
        with self._autocast():
            if self.net is not None:  # under torchrun: DDP over model + global-batch loss
                return self.net(images, labels)
            return p.loss(p.model(images), labels)

    def _autocast(self) -> contextlib.AbstractContextManager:
        """torch.autocast at trainer.precision, or nothing for fp32."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.p.device.type, dtype=self.amp_dtype)

    def _step(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        """Backward and optimizer step, through the GradScaler (a no-op unless fp16)."""
        self.p.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.p.policy.before_update(epoch, step)
        self.scaler.step(self.p.optimizer)  # skipped when fp16 gradients overflowed
        self.scaler.update()

    def _log_step(self, loss: float, bar) -> None:
        self.logger.scalar("train/loss", loss, self.global_step)
        bar.set_postfix(loss=f"{loss:.4f}")

    def _end_of_epoch(self, epoch: int, loss: float, trials: int, train_s: float) -> None:
        lrs = self.p.policy.current_lrs()
        for name, lr in lrs.items():
            self.logger.scalar(f"lr/{name}", lr, epoch)
        started = time.perf_counter()
        metrics = self.evaluate(epoch)
        eval_s = time.perf_counter() - started
        self.timing.append(
            {"epoch": epoch, "train_s": round(train_s, 3), "eval_s": round(eval_s, 3)}
        )
        for key, value in metrics.items():
            if isinstance(value, dict):  # e.g. "val": metrics of the held-out classes
                self.logger.scalars(key, value, epoch)
            else:
                self.logger.scalar(f"eval/{key}", value, epoch)
        row = {"epoch": epoch, "loss": loss, "trials": trials, **metrics, "lr": lrs}
        self.history.append(row)
        self.echo(f"epoch {epoch}: loss {loss:.4f}  trials {trials}  {_shown(metrics)}")
        is_best = self._track_best(row)
        self._save_weights(f"epoch_{epoch}")
        if self.save:
            state = self.state_dict(epoch)
            folder = self.run_dir / "checkpoints"
            if is_best:  # before last.pt: a kill between the two resumes the epoch again
                save_checkpoint(folder / "best.pt", state)
            save_checkpoint(folder / "last.pt", state)

    def _save_weights(self, name: str) -> None:
        """checkpoints/weights/<name>.pt: model and loss weights (trainer.save_epoch_weights)."""
        if self.save_weights:
            state = {"model": self.p.model.state_dict(), "loss": self.p.loss.state_dict()}
            save_checkpoint(self.run_dir / "checkpoints" / "weights" / f"{name}.pt", state)

    def _track_best(self, row: dict) -> bool:
        """Whether row is the best epoch so far by the selection protocol (ties: the earliest)."""
        try:
            score = selection_score(row, self.selection, self.metric)
        except KeyError:  # an evaluation without that metric: nothing to rank by
            return False
        if self.best is not None and score <= self.best["score"]:
            return False
        self.best = {"epoch": row["epoch"], "score": score}
        return True

    def state_dict(self, epoch: int) -> dict:
        """Everything needed to resume after `epoch` exactly."""
        return {
            **self.extra_state,
            "epoch": epoch,
            "model": self.p.model.state_dict(),
            "loss": self.p.loss.state_dict(),
            "optimizer": self.p.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "policy": self.p.policy.state_dict(),
            "sampler": self.p.sampler.state_dict(),
            "global_step": self.global_step,
            "history": self.history,
            "timing": self.timing,
            "best": self.best,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict) -> int:
        """Restore a checkpoint of state_dict; returns the epoch to continue from."""
        self.p.model.load_state_dict(state["model"])
        self.p.loss.load_state_dict(state["loss"])
        self.p.optimizer.load_state_dict(state["optimizer"])
        self._load_scaler(state.get("scaler"))  # absent from checkpoints of older runs
        self.p.policy.load_state_dict(state["policy"])
        self.p.sampler.load_state_dict(state["sampler"])
        self.global_step = state["global_step"]
        self.history = list(state["history"])
        self.timing = list(state.get("timing", []))  # absent from checkpoints of older runs
        self.best = state["best"]
        set_rng_state(state["rng"])  # last: building and loading may draw random numbers
        return state["epoch"] + 1


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """trainer.precision as an autocast dtype on device (None: fp32); one-line errors."""
    if precision not in PRECISIONS:
        raise DmlError(f"trainer.precision={precision}: expected one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is not None and not torch.amp.is_autocast_available(device.type):
        raise DmlError(
            f"trainer.precision={precision}: this torch has no autocast on device "
            f"{device.type}; use trainer.precision=fp32"
        )
    return dtype


def _sum_dtype(device: torch.device) -> torch.dtype:
    """float64 sums the step losses as the Python floats did; MPS has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _finite(value: float, epoch: int, step: int) -> float:
    """value, or DivergedError when a loss (or the sum of a trial's losses) is NaN or inf."""
    if not math.isfinite(value):
        raise DivergedError(
            f"loss became {value} at epoch {epoch} by step {step}; "
            "lower the learning rate (checkpoints already saved are intact)"
        )
    return value


def rng_state() -> dict:
    """The global RNG states a run draws from (torch, CUDA when present, NumPy, Python)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    state["python"] = random.getstate()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put back what rng_state returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _silent(message: str) -> None:
    """The echo of ranks other than 0."""


def _shown(metrics: dict) -> str:
    """Test metrics in percent, then val R@1 when there is a val set."""
    text = "  ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items() if not isinstance(v, dict))
    if "val" in metrics:
        key = "top1" if "top1" in metrics["val"] else "R@1"
        text += f"  (val {key} {100 * metrics['val'][key]:.2f})"
    return text
