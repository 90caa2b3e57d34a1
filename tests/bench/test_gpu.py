"""dml.bench.gpu, the GPU check, on the CPU: its timed loop, its arithmetic and its plumbing."""

from __future__ import annotations

import json

from dml.bench import gpu
from tests.conftest import compose_cfg


def _args(tmp_path, *more: str):
    return gpu.parse_args(["--device", "cpu", "--tiny", "--data-dir", str(tmp_path), *more])


def test_the_trainer_is_timed_over_exactly_the_steps_it_reports(tmp_path):
    """Bug: the timed loop runs fewer steps than it divides by (an epoch shorter than --steps
    ends the count early), inflating images/s; or the recipe no longer composes."""
    from dml.run import bare_trainer

    args = _args(tmp_path, "eval.selection=test")
    cfg = compose_cfg([*gpu.recipe(args, "fp32"), "lr_policy=constant"])
    assert (cfg.model.arch, list(cfg.pruning.units), cfg.model.head) == (
        "resnet50",
        [15, 16],
        "paper",
    )
    with bare_trainer(cfg, tmp_path / "run") as trainer:
        assert len(trainer.p.sampler) == 4  # 4 training classes x 6 images, batches of 6
        gpu.run_steps(trainer, 9)  # two whole epochs and one step of a third
        assert trainer.global_step == 9
        step, (images, labels) = gpu.model_only_step(trainer)
        before = [p.detach().clone() for p in trainer.p.model.head.parameters()]
        step()
        assert images.shape == (6, 3, 32, 32) and labels.shape == (6,)
        assert any(not b.equal(a) for b, a in zip(before, trainer.p.model.head.parameters()))


def test_timings_and_projections_from_a_run_by_hand():
    """Bug: a pass's seconds divided by epochs instead of passes (AutoLR re-runs), the fixed
    cost counted per epoch, or a table projected with the wrong number of runs or epochs."""
    results = {
        "timing": [
            {"epoch": 0, "train_s": 10.0, "eval_s": 2.0},
            {"epoch": 1, "train_s": 5.0, "eval_s": 4.0},
        ],
        "autolr": {"epochs": [{"passes": 2.0}, {"passes": 1.0}]},
        "history": [{"trials": 2}, {"trials": 1}],
    }
    got = gpu.run_timings(results, process_s=30.0)
    # 15 s over 3 passes; evaluations 2 and 4 s; epochs 12 and 9 s; 1.5 passes per epoch;
    # 30 s of process minus 21 s of epochs
    assert (got["pass_s"], got["eval_s"], got["epoch_s"]) == (5.0, 3.0, 10.5)
    assert (got["autolr_passes_per_epoch"], got["fixed_s"]) == (1.5, 9.0)
    # one CUB run: 9 + 40 x (1.5 x 5 + 3) = 429; Table 4: 36 x (9 + 50 x 8) + 9 + 50 x 10.5
    # = 15258; Figure 1: 16 x 429 + 16 x (9 + 40 x (7.5 x 8054/5864 + 3 x 8131/5924))
    assert got["projected_s"] == {"cub_run": 429, "table4": 15258, "figure1": 16236}


def test_targets_read_from_the_report():
    """Bug: a target judged on the wrong figures (fp32 trainer against bf16 model-only, the
    slowest exit left out) or reported as met when its section did not run."""
    report = {
        "step_bf16": {
            "trainer_over_model_only": 0.95,
            "trainer_images_per_s": 3000,
            "exit_after_last_line_s": 0.5,
        },
        "step_fp32": {
            "trainer_over_model_only": 0.85,
            "trainer_images_per_s": 1900,
            "exit_after_last_line_s": 6.0,
        },
        "search": {"seconds": 0.8, "exit_after_last_line_s": 0.4},
    }
    assert gpu.verdicts(report) == {
        "trainer_at_least_0.9_model_only": False,  # fp32's 0.85
        "bf16_trainer_at_least_1.5_fp32": True,  # 3000 >= 2850
        "search_60000_at_most_1_s": True,
        "every_exit_at_most_5_s": False,  # fp32's 6.0 s
    }
    assert gpu.verdicts({"search": {"seconds": 1.2}}) == {"search_60000_at_most_1_s": False}


def test_a_section_runs_in_its_own_process_and_its_exit_is_timed(tmp_path, capsys):
    """Bug: a section's result lost between the child and the JSON, or its exit not timed
    (the figure that shows whether a run's process lingers after its last line)."""
    out = tmp_path / "gpu.json"
    code = gpu.main(
        ["--device", "cpu", "--tiny", "--data-dir", str(tmp_path / "data")]
        + ["--sections", "search", "--json", str(out), "--out", str(tmp_path / "logs")]
    )
    assert code == 0
    report = json.loads(out.read_text())
    search = report["search"]
    assert search["n"] == 2000 and search["agrees_with_faiss_on_5000"] is True
    assert 0 < search["metrics"]["R@1"] < 1 and 0 < search["metrics"]["MAP@R"] < 1
    assert 0 <= search["exit_after_last_line_s"] < 5
    assert report["targets"]["every_exit_at_most_5_s"] is True
    assert "gpu_check search:" in capsys.readouterr().out


def test_decoding_is_timed_for_each_worker_count(tmp_path, monkeypatch):
    """Bug: the loader-process figures keyed to the wrong worker count, or a rate computed
    over other images than the ones decoded."""
    from dml.bench import jpeg

    counts = []
    real = jpeg.decode_loader
    monkeypatch.setattr(jpeg, "decode_loader", lambda p, w: counts.append(w) or real(p, w))
    args = _args(tmp_path, "--decode-workers", "0", "1")
    args.child = "decode"
    got = gpu.child(args)
    assert counts == [0, 1] and got["images"] == 64
    rates = [got["pil_0_workers_images_per_s"], got["pil_1_workers_images_per_s"]]
    assert all(rate > 0 for rate in rates) and "nvjpeg_images_per_s" not in got  # CPU here
