"""The AutoLR controller: trials, snapshots, thresholds and guards around the pure rules.

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

import math
import warnings

from dml.autolr.rules import initial_targets, repaired_targets, sorting_score, updated_lrs
from dml.autolr.variation import snapshot_main_path, weight_variation
from dml.policies.base import LRPolicy, PolicyContext

MODES = ("rerun", "probe", "online")


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


class AutoLRPolicy(LRPolicy):
    """Per-unit LRs re-tuned by re-running an epoch until weight variations sort ascending."""

    name = "autolr"

    def __init__(self, cfg, unit_lr: float) -> None:
        if cfg.mode not in MODES:
            raise ValueError(f"autolr.mode={cfg.mode!r}: expected one of {list(MODES)}")
        self.cfg = cfg
        self.mode = cfg.mode
        self.unit_lr = unit_lr
        self.threshold = float(cfg.threshold)
        self.trial = 0
        self.targets: list[float] | None = None
        self.v0: list[float] | None = None
        self.epochs_log: list[dict] = []
        self.trials_log: list[dict] = []
        self._best: dict | None = None
        # mode=probe: check step -> per-unit v_full / v_check of the last whole trial
        self.rho: dict[int, list[float]] | None = None
        self._v_check: dict[int, list[float]] = {}
        self._v0_check: list[float] | None = None  # a cut v0 trial's check variation
        self._target_horizon = 0  # steps behind the estimate the targets came from
        self._cut: dict | None = None
        self._reset_epoch_counters()

    def _reset_epoch_counters(self) -> None:
        self.cuts = 0  # trials cut at the check step in this epoch
        self.fulls = 0  # whole-epoch trials run in this epoch
        self.steps_run = 0  # optimisation steps spent on this epoch so far
        self._trusted_from = 0  # mode=probe: checks before this step no longer cut

    def probe_steps(self) -> int:
        """The steps between mode=probe checks of a trial: probe_fraction of the epoch."""
        return max(1, math.ceil(self.cfg.probe_fraction * self.ctx.steps_per_epoch))

    def continue_trial(self, epoch: int, steps_done: int) -> bool:
        if self.mode == "online":
            return self._online_check(epoch, steps_done)
        if self.mode != "probe" or steps_done % self.probe_steps():
            return True
        if steps_done >= self.ctx.steps_per_epoch:
            return True  # the check step is the epoch's end: nothing to save
        v_check = self.ctx.sync(weight_variation(self.ctx.backbone, self.start))
        self._v_check[steps_done] = v_check
        if self.cuts >= self.cfg.max_trials or steps_done < self._trusted_from:
            return True
        rho = (self.rho or {}).get(steps_done)
        first = epoch == 0 and self.trial == 0 and self.v0 is None
        if rho is None and not (first and steps_done == self.probe_steps()):
            return True
        if rho is None:
            # the single-LR v0 trial, before any whole trial: linear extrapolation
            rho = [self.ctx.steps_per_epoch / steps_done] * len(v_check)
        v_hat = [r * x for r, x in zip(rho, v_check)]
        active = [k for k, x in enumerate(v_hat) if _positive(x)]
        score = sorting_score([v_hat[k] for k in active]) if active else 1.0
        if score >= self.threshold:
            self._passed = steps_done
            return True
        if self._passed:
            # an earlier check let this trial through: it is not trusted again this epoch
            self._trusted_from = steps_done
        self._cut = {"v": v_hat, "active": active, "score": score, "steps": steps_done}
        if first:
            self._v0_check = v_check
        return False

    def _online_check(self, epoch: int, steps_done: int) -> bool:
        """mode=online: every probe_steps steps, Eq. 16 from the linearly extrapolated epoch."""
        total = self.ctx.steps_per_epoch
        if steps_done % self.probe_steps() or steps_done >= total:
            return True
        v_so_far = self.ctx.sync(weight_variation(self.ctx.backbone, self.start))
        v_hat = [x * total / steps_done for x in v_so_far]
        active = [k for k, x in enumerate(v_hat) if _positive(x)]
        score = sorting_score([v_hat[k] for k in active]) if active else 1.0
        if epoch == 0 and self.v0 is None:
            self.v0 = v_hat  # the single-LR start: the first window, before any update
        self._log_trial(
            epoch, score, v_hat, score >= self.threshold, kind="window", steps=steps_done
        )
        if score < self.threshold and active:
            self._update(epoch, v_hat, active)
            self.set_lrs(self.group_lrs())
        return True

    def setup(self, ctx: PolicyContext) -> None:
        super().setup(ctx)
        units = [g for g in ctx.groups if g.kind == "unit"]
        self.unit_names = [g.name for g in units]
        self.lrs = [float(self.unit_lr)] * len(units)
        head = [
            pg for info, pg in zip(ctx.groups, ctx.optimizer.param_groups) if info.kind == "head"
        ]
        # head and loss groups are fixed at autolr.head_lr, keeping the loss's own multiplier
        self.head_scale = float(self.cfg.head_lr) / head[0]["initial_lr"] if head else 1.0
        self.drop = 1.0

    # -- LR bookkeeping -------------------------------------------------------
    def group_lrs(self) -> list[float]:
        """One LR per optimizer group from the unit LRs, stem factor and fixed head LR."""
        out = []
        for info, group in zip(self.ctx.groups, self.ctx.optimizer.param_groups):
            if info.kind == "unit":
                out.append(self.lrs[info.unit])
            elif info.kind == "stem":
                out.append(self.cfg.stem_factor * self.lrs[0])
            else:
                out.append(group["initial_lr"] * self.head_scale * self.drop)
        return out

    # -- hooks ----------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        if self.trial == 0:
            self._start_epoch(epoch)
        if self.cfg.reset_momentum:
            self.ctx.optimizer.state.clear()  # as the reference, which builds a fresh SGD per trial
        self.start = snapshot_main_path(self.ctx.backbone)
        self._v_check, self._cut, self._passed = {}, None, 0
        self.set_lrs(self.group_lrs())

    def _start_epoch(self, epoch: int) -> None:
        if epoch > 0 and self.threshold > self.cfg.threshold_floor:
            self.threshold *= self.cfg.threshold_decay
        if epoch > 0 and epoch == self.cfg.drop_epoch:
            self.lrs = [lr * self.cfg.drop_factor for lr in self.lrs]
            self.drop *= self.cfg.drop_factor
        self.targets = None
        self._best = None
        self._reset_epoch_counters()
        self.token = self.ctx.snapshot()

    def end_epoch(self, epoch: int) -> bool:
        if self._cut is not None:
            return self._end_cut(epoch, self._cut)
        self.steps_run += self.ctx.steps_per_epoch
        v = self.ctx.sync(weight_variation(self.ctx.backbone, self.start))
        active = [k for k, x in enumerate(v) if _positive(x)]
        score = sorting_score([v[k] for k in active]) if active else 1.0
        if self.mode == "online":
            # one pass, never re-run: the epoch stands, scored on its whole-epoch variation
            self._log_trial(epoch, score, v, score >= self.threshold, kind="full")
            return self._accept(epoch, score, v, capped=False)
        self._calibrate(v)
        accepted = score >= self.threshold
        if not accepted and self._passed:
            self._trusted_from = self.ctx.steps_per_epoch  # the checks missed it: no more cuts
        self._log_trial(epoch, score, v, accepted, kind="full")
        if epoch == 0 and self.trial == 0:
            self.v0 = v
        self.fulls += 1
        last = self.fulls >= self.cfg.max_trials
        if not accepted and not last:
            # before the echo, so an infeasible alpha/beta stops without announcing a re-run
            self._ensure_targets(epoch, v, active, self.ctx.steps_per_epoch)
        self._echo_trial(epoch, score, accepted, last)
        if accepted:
            return self._accept(epoch, score, v, capped=False)
        self._remember_if_best(score, v)
        self.trial += 1
        if last:
            return self._accept_best(epoch)
        self._update(epoch, v, active)
        self.ctx.restore(self.token)
        return False

    def _calibrate(self, v: list[float]) -> None:
        """rho_k = v_full_k / v_check_k of this whole trial, per check step (where positive)."""
        rho = dict(self.rho or {})
        for step, check in self._v_check.items():
            old = rho.get(step, [self.ctx.steps_per_epoch / step] * len(v))
            rho[step] = [
                v[k] / c if _positive(v[k]) and _positive(c) else old[k]
                for k, c in enumerate(check)
            ]
        self.rho = rho or None
        if self._v0_check is not None and self.probe_steps() in rho:
            # a cut v0 trial was extrapolated linearly: re-extrapolate it with the measured
            # rho and rebuild epoch 0's targets from it
            r = rho[self.probe_steps()]
            self.v0 = [rk * c for rk, c in zip(r, self._v0_check)]
            self._v0_check, self.targets = None, None
            self._ensure_targets(0, v, [k for k, x in enumerate(v) if _positive(x)])

    def _end_cut(self, epoch: int, cut: dict) -> bool:
        """A trial cut at a check step: Eq. 16 from the extrapolated variations, retry."""
        steps = cut["steps"]
        self.steps_run += steps
        v, active, score = cut["v"], cut["active"], cut["score"]
        if epoch == 0 and self.trial == 0:
            self.v0 = v
        self._ensure_targets(epoch, v, active, steps)
        self._log_trial(epoch, score, v, False, kind="cut", steps=steps)
        self.cuts += 1
        self.ctx.echo(
            f"[autolr] epoch {epoch} trial {self.trial}: predicted score {score:.3f} < "
            f"threshold {self.threshold:.3f} after {steps} of "
            f"{self.ctx.steps_per_epoch} steps -> cut, re-run"
        )
        self.trial += 1
        self._update(epoch, v, active)
        self.ctx.restore(self.token)
        return False

    # -- decisions ------------------------------------------------------------
    def _ensure_targets(
        self, epoch: int, v: list[float], active: list[int], horizon: int = 0
    ) -> None:
        # Targets are only needed once a trial is rejected; an infeasible alpha/beta
        # (InfeasibleError from initial_targets) is therefore harmless while epoch 0's
        # first trial is accepted, and later epochs never use alpha/beta.
        if not active or (self.targets is not None and epoch == 0):
            return
        if self.targets is not None and horizon <= self._target_horizon:
            return
        # mode=probe: a later epoch's targets are repaired from the longest-seen estimate
        # (a check's extrapolation is noisier the earlier it is); in rerun every trial
        # is whole, so the first rejected trial's targets stand, as in the paper
        self._target_horizon = horizon
        base = self.v0 if epoch == 0 else v
        values = [base[k] for k in active]
        self.targets = (
            initial_targets(values, self.cfg.alpha, self.cfg.beta)
            if epoch == 0
            else repaired_targets(values)
        )
        self._target_units = active

    def _update(self, epoch: int, v: list[float], active: list[int]) -> None:
        if not active:
            return
        self._ensure_targets(epoch, v, active)
        idx = [k for k in self._target_units if k in active]
        t = [self.targets[self._target_units.index(k)] for k in idx]
        new = updated_lrs([self.lrs[k] for k in idx], [v[k] for k in idx], t)
        for k, lr in zip(idx, new):
            self.lrs[k] = clip_lr(lr, self.lrs[k], self.cfg.lr_min, self.cfg.lr_max)

    def _remember_if_best(self, score: float, v: list[float]) -> None:
        if self._best is None or score > self._best["score"]:
            self._best = {
                "score": score,
                "v": v,
                "lrs": list(self.lrs),
                "trial": self.trial,
                "token": self.ctx.snapshot(),
            }

    def _accept_best(self, epoch: int) -> bool:
        best = self._best
        self.ctx.restore(best["token"])
        self.lrs = best["lrs"]
        self.set_lrs(self.group_lrs())
        warnings.warn(
            f"AutoLR: epoch {epoch} reached autolr.max_trials={self.cfg.max_trials} without "
            f"score >= {self.threshold:.3f}; keeping trial {best['trial']} "
            f"(score {best['score']:.3f})",
            stacklevel=2,
        )
        return self._accept(epoch, best["score"], best["v"], capped=True, trial=best["trial"])

    def _accept(
        self, epoch: int, score: float, v: list[float], capped: bool, trial: int | None = None
    ) -> bool:
        record = {
            "epoch": epoch,
            "trials": self.trial + (0 if capped else 1),
            "accepted_trial": self.trial if trial is None else trial,
            "threshold": self.threshold,
            "score": score,
            "lr": list(self.lrs),
            "variation": finite_or_none(v),
            "target": self._full_targets(),
            "capped": capped,
            "mode": self.mode,
            # epoch passes spent on this epoch (a probe counts its share of the steps)
            "passes": self.steps_run / self.ctx.steps_per_epoch,
            # the kept weights' whole-epoch score (always a whole epoch's, in either mode)
            "full_score": score,
        }
        self.epochs_log.append(record)
        self._log_epoch(record)
        self.trial, self._best = 0, None
        return True

    def _full_targets(self) -> list[float | None] | None:
        if self.targets is None:
            return None
        out: list[float | None] = [None] * len(self.lrs)
        for k, t in zip(self._target_units, self.targets):
            out[k] = t
        return out

    # -- reporting ------------------------------------------------------------
    def _log_trial(
        self,
        epoch: int,
        score: float,
        v: list[float],
        accepted: bool,
        kind: str,
        steps: int | None = None,
    ) -> None:
        step = len(self.trials_log)
        if steps is None:
            steps = self.probe_steps() if kind == "cut" else self.ctx.steps_per_epoch
        rec = {
            "epoch": epoch,
            "trial": self.trial,
            # "full": a whole epoch; "cut": mode=probe, cut at the check step;
            # "window": mode=online, the extrapolated check after `steps` steps
            "kind": kind,
            "steps": steps,
            "score": score,
            "threshold": self.threshold,
            "accepted": accepted,
            "lr": list(self.lrs),
            "variation": finite_or_none(v),
            "target": self._full_targets(),
        }
        self.trials_log.append(rec)
        log = self.ctx.log_scalar
        log("autolr_trial/score", score, step)
        log("autolr_trial/threshold", self.threshold, step)
        for k, name in enumerate(self.unit_names):
            log(f"autolr_trial/variation_x1e6/{name}", v[k] * 1e6, step)
            log(f"autolr_trial/lr/{name}", self.lrs[k], step)
            if rec["target"] is not None and rec["target"][k] is not None:
                log(f"autolr_trial/target_x1e6/{name}", rec["target"][k] * 1e6, step)

    def _echo_trial(self, epoch: int, score: float, accepted: bool, last: bool) -> None:
        if accepted:
            verdict = "accepted"
        elif last:
            verdict = f"autolr.max_trials={self.cfg.max_trials} reached, keeping the best trial"
        else:
            verdict = "re-run"
        cmp = ">=" if accepted else "<"
        self.ctx.echo(
            f"[autolr] epoch {epoch} trial {self.trial}: score {score:.3f} {cmp} "
            f"threshold {self.threshold:.3f} -> {verdict}"
        )

    def _log_epoch(self, rec: dict) -> None:
        lrs = " ".join(f"{n}={lr:.2e}" for n, lr in zip(self.unit_names, self.lrs))
        self.ctx.echo(
            f"[autolr] epoch {rec['epoch']} accepted after {rec['trials']} trial(s); "
            f"stem={self.cfg.stem_factor * self.lrs[0]:.2e} {lrs} "
            f"head={self.cfg.head_lr * self.drop:.2e}"
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
        return self.epochs_log[-1]["accepted_trial"]

    def report(self) -> dict:
        return {
            "autolr": {
                "units": self.unit_names,
                "epochs": self.epochs_log,
                "trials": self.trials_log,
            }
        }

    def state_dict(self) -> dict:
        # saved between epochs, where the per-epoch counters are at their start values
        keys = ("lrs", "threshold", "trial", "targets", "v0", "epochs_log", "trials_log", "drop")
        keys += ("rho",)
        return {k: getattr(self, k) for k in keys} | {
            "target_units": getattr(self, "_target_units", None)
        }

    def load_state_dict(self, state: dict) -> None:
        for k, val in state.items():
            setattr(self, "_target_units" if k == "target_units" else k, val)
