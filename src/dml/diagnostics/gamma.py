"""The γ ratio of supplement Table 1: does a unit's accumulated gradient depend on its LR?

AutoLR's update (Eq. 16) assumes that over one epoch a unit's weight variation is
proportional to its LR: with SGD, w_T = w_0 - η Σ_t d_t (Eq. 5), where d_t is the step
direction of step t — with momentum ρ the buffer b_t = ρ b_{t-1} + g_t + λ w_t (PyTorch's
SGD: the gradient plus weight decay), Nesterov's d_t = g_t + λ w_t + ρ b_t. The
"accumulated gradient" ∇L_acc(w) = Σ_t d_t is therefore what moved the weights, divided by
the LR. Eq. 16 holds exactly when ∇L_acc does not change with the LR, i.e. when

    γ = ‖∇L_acc(w̃)‖ / ‖∇L_acc(w)‖ ≈ 1,

w trained with the single LR η and w̃ with the AutoLR-updated LR η̃ (the paper measures
0.69-0.95 on CUB-200 with ResNet-50).

How it is measured here: from one snapshot (a model and a fresh optimizer), the same epoch
is run twice on the same batches, augmentations and dropout draws (the trainer's
epoch-seeded sampler, RNG restored with the snapshot): once with η for every unit, then,
from the snapshot again, with η̃ = Eq. 16 applied once to the first pass's variations with
the first-epoch targets of alpha and beta (autolr.*), clipped as the controller clips them.
During each pass an optimizer hook adds every step's direction (w_before - w_after) / η_k
of each unit's main-path weights (those of the weight variation, Eq. 1) into a per-unit
sum; ‖∇L_acc‖ is the norm of that sum.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import torch

from dml.autolr.variation import weight_variation
from dml.logging import ScalarLogger
from dml.paper import rows
from dml.policies.autolr import AutoLRPolicy
from dml.policies.base import PolicyContext
from dml.training.loop import Trainer, TrainerParts


class TwoPassProbe(AutoLRPolicy):
    """Runs epoch 0 twice from one snapshot: at the single LR, then at Eq. 16's per-unit LRs."""

    name = "gamma_probe"

    def __init__(self, cfg, unit_lr: float) -> None:
        super().__init__(cfg, unit_lr)
        self.passes: list[dict] = []

    def setup(self, ctx: PolicyContext) -> None:
        super().setup(ctx)
        self.unit_groups = [i for i, g in enumerate(ctx.groups) if g.kind == "unit"]
        ctx.optimizer.register_step_pre_hook(self._before_step)
        ctx.optimizer.register_step_post_hook(self._after_step)

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        params = self._unit_params()
        self.acc = [[torch.zeros_like(p, dtype=torch.float64) for p in ps] for ps in params]

    def _unit_params(self) -> list[list[torch.nn.Parameter]]:
        backbone = self.ctx.backbone
        return [backbone.main_path_params(k) for k in range(backbone.num_units)]

    def _before_step(self, optimizer, args, kwargs) -> None:
        self._before = [[p.detach().clone() for p in ps] for ps in self._unit_params()]

    def _after_step(self, optimizer, args, kwargs) -> None:
        for k, (before, now) in enumerate(zip(self._before, self._unit_params())):
            lr = optimizer.param_groups[self.unit_groups[k]]["lr"]
            for acc, b, p in zip(self.acc[k], before, now):
                acc += (b.double() - p.detach().double()) / lr

    def kept_trial(self) -> int | None:
        return None  # the second pass's weights stay; nothing is kept from the first

    def end_epoch(self, epoch: int) -> bool:
        v = weight_variation(self.ctx.backbone, self.start)
        norms = [math.sqrt(sum(float(a.pow(2).sum()) for a in acc)) for acc in self.acc]
        self.passes.append({"lr": list(self.lrs), "variation": v, "grad_norm": norms})
        if len(self.passes) == 2:
            return True
        active = [k for k, x in enumerate(v) if math.isfinite(x) and x > 0]
        self.state.v0 = v
        self.update(0, v, active)  # Eq. 16 once, first-epoch targets, the controller's clipping
        self.ctx.restore(self.progress.token)
        self.state.trial += 1
        return False


def measure_gamma(
    parts,
    autolr_cfg,
    unit_lr: float,
    state: dict | None = None,
    progress: bool = True,
    max_steps: int = 0,
) -> list[dict]:
    """Per unit: eta, eta_tilde, grad_norm, grad_norm_tilde, gamma, variation(_tilde).

    parts: a run's built parts (dml.run.build_parts: model, loss, optimizer, loaders);
    state: a checkpoint ({"model", "loss"}) to start from, None: the parts as built.
    """
    if state is not None:
        parts.model.load_state_dict(state["model"])
        parts.loss.load_state_dict(state["loss"])
    probe = TwoPassProbe(autolr_cfg, unit_lr)
    p = parts
    trainer = Trainer(
        TrainerParts(
            p.model, p.loss, p.optimizer, p.infos, probe, p.train_loader, p.sampler, p.device
        ),
        epochs=1,
        logger=ScalarLogger(Path("."), enabled=False),
        evaluate=lambda epoch: {},
        run_dir=Path("."),
        max_steps=max_steps,
        progress=progress,
        save_checkpoints=False,
    )
    trainer.fit()
    single, tuned = probe.passes
    return [
        {
            "unit": k + 1,
            "eta": single["lr"][k],
            "eta_tilde": tuned["lr"][k],
            "grad_norm": single["grad_norm"][k],
            "grad_norm_tilde": tuned["grad_norm"][k],
            "gamma": gamma(tuned["grad_norm"][k], single["grad_norm"][k]),
            "variation": single["variation"][k],
            "variation_tilde": tuned["variation"][k],
        }
        for k in range(len(single["lr"]))
    ]


def gamma(grad_norm_tilde: float, grad_norm: float) -> float:
    """γ = ‖∇L_acc(w̃)‖ / ‖∇L_acc(w)‖ (NaN for a unit that did not move)."""
    return grad_norm_tilde / grad_norm if grad_norm > 0 else float("nan")


def gamma_table(units: list[dict]) -> str:
    """Ours laid out like Table 1 (one column per unit), then the paper's rows."""
    head = "| Unit | " + " | ".join(str(u["unit"]) for u in units) + " |"
    lines = [head, "|---|" + "---:|" * len(units)]
    lines += _rows(units)
    paper = rows("table1")
    lines += [
        "",
        "Paper (supplement Table 1: ResNet-50 pruned to 14 units, CUB-200):",
        "",
        "| Layer | " + " | ".join(str(r["layer"]) for r in paper) + " |",
        "|---|" + "---:|" * len(paper),
        *_rows([{"unit": r["layer"], **r} for r in paper]),
    ]
    return "\n".join(lines)


def _rows(units: list[dict]) -> list[str]:
    def row(label: str, key: str, fmt: str, scale: float = 1.0) -> str:
        cells = [format(u[key] * scale, fmt) for u in units]
        return f"| {label} | " + " | ".join(cells) + " |"

    return [
        row("η (×10⁻³)", "eta", ".2f", 1e3),
        row("η̃ (×10⁻³)", "eta_tilde", ".2f", 1e3),
        row("‖∇L_acc(w)‖", "grad_norm", ".2f"),
        row("‖∇L_acc(w̃)‖", "grad_norm_tilde", ".2f"),
        row("γ", "gamma", ".2f"),
    ]


def plot_gamma(units: list[dict], path: Path, title: str) -> None:
    """γ per unit against relative depth (unit / K), beside the paper's 14 layers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paper = rows("table1")
    fig, ax = plt.subplots(figsize=(7, 4))
    k = len(units)
    ax.plot(
        [u["unit"] / k for u in units], [u["gamma"] for u in units], "o-", label=f"ours ({k} units)"
    )
    ax.plot(
        [r["layer"] / len(paper) for r in paper],
        [r["gamma"] for r in paper],
        "s--",
        color="grey",
        label="paper, Table 1 (ResNet-50, 14 units)",
    )
    ax.axhline(1.0, color="black", lw=0.8)
    for u in units:
        ax.annotate(
            f"{u['unit']}",
            (u["unit"] / k, u["gamma"]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    ax.set_xlabel("relative depth (unit / number of units)")
    ax.set_ylabel("γ = ‖∇L_acc(w̃)‖ / ‖∇L_acc(w)‖")
    ax.set_title(textwrap.fill(title, 75), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
