"""The AutoLR controller: trials, snapshots, thresholds and guards around the pure rules.

The controller (AutoLRPolicy) holds the paper's trial logic once: snapshot, train, score the
weight variations, accept or restore and update the LRs by Eq. 16. How a trial is run is a
small strategy per autolr.mode (Rerun, Probe, Online); what carries from epoch to epoch is
one dataclass (AutoLRState), which is what a checkpoint stores.

Guards (spec section 8): new LRs are clipped to [lr_min, lr_max] and a non-finite one
keeps its old value; units whose variation is zero or non-finite are left out of the
score and the update and keep their LR; after max_trials the best-scoring trial is kept.

Modes (``autolr.mode``):

* ``rerun`` (the paper): every trial is a whole epoch from the epoch's snapshot.
* ``probe``: every trial is checked early, every ``probe_fraction`` of the epoch's steps
  (0.2: after 20%, 40%, 60% and 80%). At a check after s steps the variations so far,
  v_s, are extrapolated to the whole epoch unit by unit, v_hat_k = rho_k(s) * v_s_k, where
  rho_k(s) = v_full_k / v_s_k was measured on the last whole-epoch trial (its own check at
  s steps, same batches). If v_hat sorts (score >= threshold) the trial goes on, at no
  extra cost; if not, it is cut there, the weights are restored, and Eq. 16 updates the
  LRs from v_hat exactly as a rejected whole epoch would (targets made from v_hat are on
  the whole-epoch scale). Only a whole epoch is ever accepted, scored on its whole-epoch
  variations against the same threshold, and a whole epoch that does not sort is re-run
  as in ``rerun``; so every accepted epoch sorts as often as in ``rerun``, and a
  rejection a check foresees costs s/steps of a pass instead of a whole one. Later checks
  catch trials that the first one let through: variation is not linear in steps (on the
  quickstart twin v_full / v_20% was 3.6-3.9, not 5), and 20% of the batches is noisy.
  Epoch 0's first trial (the single-LR v0 of the paper) has no rho yet: its first check
  extrapolates linearly (x steps / s), and if that does not sort it is cut and v0 = that
  estimate; the next whole trial measures rho, v0 is re-extrapolated with it and epoch
  0's targets are rebuilt from it before any LR update uses them. At most max_trials
  trials are cut per epoch; then trials run whole.
* ``online``: one pass per epoch, never restored. Every probe_fraction of the epoch the
  variations so far are extrapolated linearly to the whole epoch (x steps_per_epoch /
  steps_done) and, when they do not sort, Eq. 16 sets the LRs for the rest of the epoch
  (epoch 0's first check plays v0). The epoch is always kept and scored on its
  whole-epoch variations, so it may end unsorted: its cost is exactly one pass.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from dml.autolr.config import MODES, AutoLRConfig
from dml.autolr.rules import initial_targets, repaired_targets, sorting_score, updated_lrs
from dml.autolr.variation import snapshot_main_path, weight_variation
from dml.errors import DmlError
from dml.policies.base import POLICIES, LRPolicy, LRPolicyConfig, PolicyContext


def clip_lr(new: float, old: float, lr_min: float, lr_max: float) -> float:
    """Bound an updated LR to [lr_min, lr_max]; a non-finite update keeps the old LR."""
    if not math.isfinite(new):
        return old
    return min(max(new, lr_min), lr_max)


def _positive(x: float) -> bool:
    return math.isfinite(x) and x > 0


def finite_or_none(values: list[float]) -> list[float | None]:
    """Values for JSON: a non-finite entry becomes None."""
    return [x if math.isfinite(x) else None for x in values]


def _active(v: list[float]) -> tuple[list[int], float]:
    """The units with a positive finite variation and the sorting score over them."""
    active = [k for k, x in enumerate(v) if _positive(x)]
    return active, sorting_score([v[k] for k in active]) if active else 1.0


# -- state ------------------------------------------------------------------------------
@dataclass
class AutoLRState:
    """What carries from one epoch to the next; a checkpoint stores exactly this."""

    lrs: list[float] = field(default_factory=list)  # one per unit
    threshold: float = 0.94
    drop: float = 1.0  # the drop factors applied so far (head and loss follow it)
    trial: int = 0
    targets: list[float] | None = None
    target_units: list[int] | None = None  # the units the targets are for
    v0: list[float] | None = None  # the single-LR variations of epoch 0's first trial
    rho: dict[int, list[float]] | None = None  # probe: check step -> v_full / v_check per unit
    epochs_log: list[dict] = field(default_factory=list)
    trials_log: list[dict] = field(default_factory=list)


@dataclass
class EpochProgress:
    """Bookkeeping of the epoch in progress (checkpoints fall between epochs)."""

    token: Any = None  # the trainer's snapshot at the epoch's start
    best: dict | None = None  # the best-scoring rejected whole trial
    cuts: int = 0  # trials cut at a check step
    fulls: int = 0  # whole-epoch trials run
    steps_run: int = 0  # optimisation steps spent on the epoch so far
    trusted_from: int = 0  # probe: checks before this step no longer cut
    target_horizon: int = 0  # steps behind the estimate the targets came from
    v0_check: list[float] | None = None  # probe: a cut v0 trial's check variation


@dataclass
class TrialProgress:
    """Bookkeeping of the trial in progress."""

    start: Any = None  # main-path weights at the trial's start
    checks: dict[int, list[float]] = field(default_factory=dict)  # step -> variation so far
    cut: dict | None = None  # probe: the check that ended the trial early
    passed: int = 0  # probe: the last check step that let the trial through


# -- modes: how a trial is run -------------------------------------------------------------
class Rerun:
    """The paper: every trial is a whole epoch; a rejected one is restored and run again."""

    repeats = True

    def continue_trial(self, ctl: AutoLRPolicy, epoch: int, steps_done: int) -> bool:
        """Whole epochs only."""
        return True

    def whole_trial_done(self, ctl: AutoLRPolicy, v: list[float], accepted: bool) -> None:
        """Nothing to learn from a whole trial."""


class Probe(Rerun):
    """Checks every probe_fraction of the epoch; cuts a trial whose extrapolated variations
    will not sort (see the module docstring)."""

    def continue_trial(self, ctl: AutoLRPolicy, epoch: int, steps_done: int) -> bool:
        """Check at every probe step; False cuts the trial there."""
        steps = ctl.ctx.steps_per_epoch
        if steps_done % ctl.probe_steps() or steps_done >= steps:
            return True  # not a check step, or the epoch's end: nothing to save
        now, ep, st = ctl.now, ctl.progress, ctl.state
        v_check = ctl.ctx.sync(weight_variation(ctl.ctx.backbone, now.start))
        now.checks[steps_done] = v_check
        if ep.cuts >= ctl.config.max_trials or steps_done < ep.trusted_from:
            return True
        rho = (st.rho or {}).get(steps_done)
        first = epoch == 0 and st.trial == 0 and st.v0 is None
        if rho is None and not (first and steps_done == ctl.probe_steps()):
            return True
        if rho is None:
            # the single-LR v0 trial, before any whole trial: linear extrapolation
            rho = [steps / steps_done] * len(v_check)
        v_hat = [r * x for r, x in zip(rho, v_check)]
        active, score = _active(v_hat)
        if score >= st.threshold:
            now.passed = steps_done
            return True
        if now.passed:
            # an earlier check let this trial through: it is not trusted again this epoch
            ep.trusted_from = steps_done
        now.cut = {"v": v_hat, "active": active, "score": score, "steps": steps_done}
        if first:
            ep.v0_check = v_check
        return False

    def whole_trial_done(self, ctl: AutoLRPolicy, v: list[float], accepted: bool) -> None:
        """Calibrate rho from this whole trial; a trial the checks let through but that did
        not sort stops the cutting for the rest of the epoch."""
        ctl.calibrate(v)
        if not accepted and ctl.now.passed:
            ctl.progress.trusted_from = ctl.ctx.steps_per_epoch


class Online:
    """One pass per epoch, never restored: Eq. 16 every probe_fraction from the linearly
    extrapolated variations; the epoch always stands."""

    repeats = False

    def continue_trial(self, ctl: AutoLRPolicy, epoch: int, steps_done: int) -> bool:
        """Every probe step: Eq. 16 from the variations extrapolated to the whole epoch."""
        total = ctl.ctx.steps_per_epoch
        if steps_done % ctl.probe_steps() or steps_done >= total:
            return True
        st = ctl.state
        v_so_far = ctl.ctx.sync(weight_variation(ctl.ctx.backbone, ctl.now.start))
        v_hat = [x * total / steps_done for x in v_so_far]
        active, score = _active(v_hat)
        if epoch == 0 and st.v0 is None:
            st.v0 = v_hat  # the single-LR start: the first window, before any update
        ctl.log_trial(epoch, score, v_hat, score >= st.threshold, kind="window", steps=steps_done)
        if score < st.threshold and active:
            ctl.update(epoch, v_hat, active)
            ctl.set_lrs(ctl.group_lrs())
        return True

    def whole_trial_done(self, ctl: AutoLRPolicy, v: list[float], accepted: bool) -> None:
        """Not called: an online epoch is accepted as it ends."""


MODE_CLASSES = {"rerun": Rerun, "probe": Probe, "online": Online}
assert tuple(MODE_CLASSES) == MODES


def typed_config(config: Any) -> AutoLRConfig:
    """The autolr group as an AutoLRConfig (from a DictConfig, a dict or itself)."""
    if isinstance(config, AutoLRConfig):
        return config
    if OmegaConf.is_config(config):
        # resolved where it stands (head_lr follows ${optimizer.head_lr}), then typed
        values = OmegaConf.to_container(config, resolve=True)
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(AutoLRConfig), values))
    return AutoLRConfig(**dict(config))


# -- the controller ---------------------------------------------------------------------
class AutoLRPolicy(LRPolicy):
    """Per-unit LRs re-tuned by re-running an epoch until weight variations sort ascending."""

    name = "autolr"

    def __init__(self, config: Any, unit_lr: float) -> None:
        self.config = typed_config(config)
        if self.config.mode not in MODE_CLASSES:
            raise DmlError(
                f"autolr.mode={self.config.mode}: expected one of {', '.join(MODE_CLASSES)}"
            )
        self.mode = MODE_CLASSES[self.config.mode]()
        self.unit_lr = float(unit_lr)
        self.state = AutoLRState(threshold=float(self.config.threshold))
        self.progress = EpochProgress()
        self.now = TrialProgress()

    # read-only views of the state, for reports and tests
    @property
    def lrs(self) -> list[float]:
        """The current unit LRs."""
        return self.state.lrs

    @property
    def epochs_log(self) -> list[dict]:
        """One record per accepted epoch."""
        return self.state.epochs_log

    @property
    def trials_log(self) -> list[dict]:
        """One record per trial (whole, cut or window)."""
        return self.state.trials_log

    @property
    def start(self) -> Any:
        """The main-path weights at the current trial's start."""
        return self.now.start

    def probe_steps(self) -> int:
        """The steps between mode=probe checks of a trial: probe_fraction of the epoch."""
        return max(1, math.ceil(self.config.probe_fraction * self.ctx.steps_per_epoch))

    def setup(self, ctx: PolicyContext) -> None:
        super().setup(ctx)
        units = [g for g in ctx.groups if g.kind == "unit"]
        self.unit_names = [g.name for g in units]
        self.state.lrs = [self.unit_lr] * len(units)
        head = [
            pg for info, pg in zip(ctx.groups, ctx.optimizer.param_groups) if info.kind == "head"
        ]
        # head and loss groups are fixed at autolr.head_lr, keeping the loss's own multiplier
        self.head_scale = float(self.config.head_lr) / head[0]["initial_lr"] if head else 1.0

    # -- LR bookkeeping -------------------------------------------------------
    def group_lrs(self) -> list[float]:
        """One LR per optimizer group from the unit LRs, stem factor and fixed head LR."""
        out = []
        for info, group in zip(self.ctx.groups, self.ctx.optimizer.param_groups):
            if info.kind == "unit":
                out.append(self.state.lrs[info.unit])
            elif info.kind == "stem":
                out.append(self.config.stem_factor * self.state.lrs[0])
            else:
                out.append(group["initial_lr"] * self.head_scale * self.state.drop)
        return out

    # -- hooks ----------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        if self.state.trial == 0:
            self._start_epoch(epoch)
        if self.config.reset_momentum:
            self.ctx.optimizer.state.clear()  # as the reference, which builds a fresh SGD per trial
        self.now = TrialProgress(start=snapshot_main_path(self.ctx.backbone))
        self.set_lrs(self.group_lrs())

    def continue_trial(self, epoch: int, steps_done: int) -> bool:
        return self.mode.continue_trial(self, epoch, steps_done)

    def _start_epoch(self, epoch: int) -> None:
        st, cfg = self.state, self.config
        if epoch > 0 and st.threshold > cfg.threshold_floor:
            st.threshold *= cfg.threshold_decay
        if epoch > 0 and epoch == cfg.drop_epoch:
            st.lrs = [lr * cfg.drop_factor for lr in st.lrs]
            st.drop *= cfg.drop_factor
        st.targets = None
        self.progress = EpochProgress(token=self.ctx.snapshot())

    def end_epoch(self, epoch: int) -> bool:
        st, ep = self.state, self.progress
        if self.now.cut is not None:
            return self._end_cut(epoch, self.now.cut)
        ep.steps_run += self.ctx.steps_per_epoch
        v = self.ctx.sync(weight_variation(self.ctx.backbone, self.now.start))
        active, score = _active(v)
        accepted = score >= st.threshold
        if not self.mode.repeats:
            # one pass, never re-run: the epoch stands, scored on its whole-epoch variation
            self.log_trial(epoch, score, v, accepted, kind="full")
            return self._accept(epoch, score, v, capped=False)
        self.mode.whole_trial_done(self, v, accepted)
        self.log_trial(epoch, score, v, accepted, kind="full")
        if epoch == 0 and st.trial == 0:
            st.v0 = v
        ep.fulls += 1
        last = ep.fulls >= self.config.max_trials
        if not accepted and not last:
            # before the echo, so an infeasible alpha/beta stops without announcing a re-run
            self._ensure_targets(epoch, v, active, self.ctx.steps_per_epoch)
        self._echo_trial(epoch, score, accepted, last)
        if accepted:
            return self._accept(epoch, score, v, capped=False)
        self._remember_if_best(score, v)
        st.trial += 1
        if last:
            return self._accept_best(epoch)
        self.update(epoch, v, active)
        self.ctx.restore(ep.token)
        return False

    def calibrate(self, v: list[float]) -> None:
        """rho_k = v_full_k / v_check_k of this whole trial, per check step (where positive)."""
        st, ep = self.state, self.progress
        rho = dict(st.rho or {})
        for step, check in self.now.checks.items():
            old = rho.get(step, [self.ctx.steps_per_epoch / step] * len(v))
            rho[step] = [
                v[k] / c if _positive(v[k]) and _positive(c) else old[k]
                for k, c in enumerate(check)
            ]
        st.rho = rho or None
        if ep.v0_check is not None and self.probe_steps() in rho:
            # a cut v0 trial was extrapolated linearly: re-extrapolate it with the measured
            # rho and rebuild epoch 0's targets from it
            r = rho[self.probe_steps()]
            st.v0 = [rk * c for rk, c in zip(r, ep.v0_check)]
            ep.v0_check, st.targets = None, None
            self._ensure_targets(0, v, _active(v)[0])

    def _end_cut(self, epoch: int, cut: dict) -> bool:
        """A trial cut at a check step: Eq. 16 from the extrapolated variations, retry."""
        st, ep = self.state, self.progress
        steps = cut["steps"]
        ep.steps_run += steps
        v, active, score = cut["v"], cut["active"], cut["score"]
        if epoch == 0 and st.trial == 0:
            st.v0 = v
        self._ensure_targets(epoch, v, active, steps)
        self.log_trial(epoch, score, v, False, kind="cut", steps=steps)
        ep.cuts += 1
        self.ctx.echo(
            f"[autolr] epoch {epoch} trial {st.trial}: predicted score {score:.3f} < "
            f"threshold {st.threshold:.3f} after {steps} of "
            f"{self.ctx.steps_per_epoch} steps -> cut, re-run"
        )
        st.trial += 1
        self.update(epoch, v, active)
        self.ctx.restore(ep.token)
        return False

    # -- decisions ------------------------------------------------------------
    def _ensure_targets(
        self, epoch: int, v: list[float], active: list[int], horizon: int = 0
    ) -> None:
        # Targets are only needed once a trial is rejected; an infeasible alpha/beta
        # (InfeasibleError from initial_targets) is therefore harmless while epoch 0's
        # first trial is accepted, and later epochs never use alpha/beta.
        st, ep = self.state, self.progress
        if not active or (st.targets is not None and epoch == 0):
            return
        if st.targets is not None and horizon <= ep.target_horizon:
            return
        # mode=probe: a later epoch's targets are repaired from the longest-seen estimate
        # (a check's extrapolation is noisier the earlier it is); in rerun every trial
        # is whole, so the first rejected trial's targets stand, as in the paper
        ep.target_horizon = horizon
        base = st.v0 if epoch == 0 else v
        values = [base[k] for k in active]
        st.targets = (
            initial_targets(values, self.config.alpha, self.config.beta)
            if epoch == 0
            else repaired_targets(values)
        )
        st.target_units = active

    def update(self, epoch: int, v: list[float], active: list[int]) -> None:
        """Eq. 16 for the active units toward the targets, clipped to [lr_min, lr_max]."""
        if not active:
            return
        self._ensure_targets(epoch, v, active)
        st = self.state
        idx = [k for k in st.target_units if k in active]
        t = [st.targets[st.target_units.index(k)] for k in idx]
        new = updated_lrs([st.lrs[k] for k in idx], [v[k] for k in idx], t)
        for k, lr in zip(idx, new):
            st.lrs[k] = clip_lr(lr, st.lrs[k], self.config.lr_min, self.config.lr_max)

    def _remember_if_best(self, score: float, v: list[float]) -> None:
        best = self.progress.best
        if best is None or score > best["score"]:
            self.progress.best = {
                "score": score,
                "v": v,
                "lrs": list(self.state.lrs),
                "trial": self.state.trial,
                "token": self.ctx.snapshot(),
            }

    def _accept_best(self, epoch: int) -> bool:
        best = self.progress.best
        self.ctx.restore(best["token"])
        self.state.lrs = best["lrs"]
        self.set_lrs(self.group_lrs())
        warnings.warn(
            f"AutoLR: epoch {epoch} reached autolr.max_trials={self.config.max_trials} without "
            f"score >= {self.state.threshold:.3f}; keeping trial {best['trial']} "
            f"(score {best['score']:.3f})",
            stacklevel=2,
        )
        return self._accept(epoch, best["score"], best["v"], capped=True, trial=best["trial"])

    def _accept(
        self, epoch: int, score: float, v: list[float], capped: bool, trial: int | None = None
    ) -> bool:
        st = self.state
        record = {
            "epoch": epoch,
            "trials": st.trial + (0 if capped else 1),
            "accepted_trial": st.trial if trial is None else trial,
            "threshold": st.threshold,
            "score": score,
            "lr": list(st.lrs),
            "variation": finite_or_none(v),
            "target": self._full_targets(),
            "capped": capped,
            "mode": self.config.mode,
            # epoch passes spent on this epoch (a probe counts its share of the steps)
            "passes": self.progress.steps_run / self.ctx.steps_per_epoch,
            # the kept weights' whole-epoch score (always a whole epoch's, in either mode)
            "full_score": score,
        }
        st.epochs_log.append(record)
        self._log_epoch(record)
        st.trial = 0
        self.progress.best = None
        return True

    def _full_targets(self) -> list[float | None] | None:
        st = self.state
        if st.targets is None:
            return None
        out: list[float | None] = [None] * len(st.lrs)
        for k, t in zip(st.target_units, st.targets):
            out[k] = t
        return out

    # -- reporting ------------------------------------------------------------
    def log_trial(
        self,
        epoch: int,
        score: float,
        v: list[float],
        accepted: bool,
        kind: str,
        steps: int | None = None,
    ) -> None:
        """Record a trial (whole, cut or window) and log its scalars."""
        st = self.state
        step = len(st.trials_log)
        if steps is None:
            steps = self.probe_steps() if kind == "cut" else self.ctx.steps_per_epoch
        rec = {
            "epoch": epoch,
            "trial": st.trial,
            # "full": a whole epoch; "cut": mode=probe, cut at the check step;
            # "window": mode=online, the extrapolated check after `steps` steps
            "kind": kind,
            "steps": steps,
            "score": score,
            "threshold": st.threshold,
            "accepted": accepted,
            "lr": list(st.lrs),
            "variation": finite_or_none(v),
            "target": self._full_targets(),
        }
        st.trials_log.append(rec)
        log = self.ctx.log_scalar
        log("autolr_trial/score", score, step)
        log("autolr_trial/threshold", st.threshold, step)
        for k, name in enumerate(self.unit_names):
            log(f"autolr_trial/variation_x1e6/{name}", v[k] * 1e6, step)
            log(f"autolr_trial/lr/{name}", st.lrs[k], step)
            if rec["target"] is not None and rec["target"][k] is not None:
                log(f"autolr_trial/target_x1e6/{name}", rec["target"][k] * 1e6, step)

    def _echo_trial(self, epoch: int, score: float, accepted: bool, last: bool) -> None:
        if accepted:
            verdict = "accepted"
        elif last:
            verdict = f"autolr.max_trials={self.config.max_trials} reached, keeping the best trial"
        else:
            verdict = "re-run"
        cmp = ">=" if accepted else "<"
        self.ctx.echo(
            f"[autolr] epoch {epoch} trial {self.state.trial}: score {score:.3f} {cmp} "
            f"threshold {self.state.threshold:.3f} -> {verdict}"
        )

    def _log_epoch(self, rec: dict) -> None:
        st = self.state
        lrs = " ".join(f"{n}={lr:.2e}" for n, lr in zip(self.unit_names, st.lrs))
        self.ctx.echo(
            f"[autolr] epoch {rec['epoch']} accepted after {rec['trials']} trial(s); "
            f"stem={self.config.stem_factor * st.lrs[0]:.2e} {lrs} "
            f"head={self.config.head_lr * st.drop:.2e}"
        )
        log, e = self.ctx.log_scalar, rec["epoch"]
        log("autolr/trials", rec["trials"], e)
        log("autolr/score", rec["score"], e)
        log("autolr/threshold", rec["threshold"], e)
        for k, name in enumerate(self.unit_names):
            if rec["variation"][k] is not None:
                log(f"autolr/variation_x1e6/{name}", rec["variation"][k] * 1e6, e)
            if rec["target"] is not None and rec["target"][k] is not None:
                log(f"autolr/target_x1e6/{name}", rec["target"][k] * 1e6, e)

    def kept_trial(self) -> int:
        """The trial the last accepted epoch kept (the best one when max_trials was reached)."""
        return self.state.epochs_log[-1]["accepted_trial"]

    def report(self) -> dict:
        return {
            "autolr": {
                "units": self.unit_names,
                "epochs": self.state.epochs_log,
                "trials": self.state.trials_log,
            }
        }

    def state_dict(self) -> dict:
        # saved between epochs: the epoch and trial bookkeeping is at its start values
        return dataclasses.asdict(self.state)

    def load_state_dict(self, state: dict) -> None:
        # checkpoints written before AutoLRState have the same keys (rho absent in the oldest)
        known = {f.name for f in dataclasses.fields(AutoLRState)}
        self.state = AutoLRState(**{k: v for k, v in state.items() if k in known})


@POLICIES.register("autolr", LRPolicyConfig, needs=("autolr",))
def build_autolr(cfg, autolr) -> AutoLRPolicy:
    """AutoLR over the units at lr_policy.l_max, with the autolr group's settings."""
    return AutoLRPolicy(autolr, cfg.l_max)
