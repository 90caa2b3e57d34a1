"""dml.bench.speed (scripts/bench.py): references that compute the same metrics, summaries
worked out by hand."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dml.bench import speed as bench
from dml.run import bare_trainer
from tests.conftest import TINY_OVERRIDES, compose_cfg


def test_references_compute_the_same_metrics_as_ours():
    """Bug: a naive or PML reference scoring something else, so its speed-up compares apples
    with pears (e.g. the query itself counted as its own neighbour)."""
    # n = 2000: every class has other members, so PML's rule of leaving out lone queries
    # (which our Recall@K counts as misses) changes nothing
    assert bench.np.bincount(bench.random_embeddings(2000)[1]).min() >= 2
    ours = bench.eval_worker("ours", 2000, 1)["metrics"]
    naive = bench.eval_worker("naive", 2000, 1)["metrics"]
    pml = bench.eval_worker("pml", 2000, 1)["metrics"]
    assert naive == pytest.approx(ours, abs=1e-6)
    assert pml == pytest.approx({"R@1": ours["R@1"], "MAP@R": ours["MAP@R"]}, abs=1e-6)
    assert 0 < ours["R@8"] < 1


def brute_force_gallery(n: int) -> dict:
    """R@1,2,4,8 and MAP@R of bench's n queries against its n-item gallery, from the full
    query x gallery cosine matrix (nothing excluded: the sets are separate)."""
    q, q_lab, g, g_lab = bench.random_query_gallery(n)
    qn = q / np.linalg.norm(q.astype(np.float64), axis=1, keepdims=True)
    gn = g / np.linalg.norm(g.astype(np.float64), axis=1, keepdims=True)
    hits = g_lab[np.argsort(-(qn @ gn.T), axis=1)] == q_lab[:, None]
    r = hits.sum(axis=1)  # gallery items sharing the query's label
    ap = [(h[:k] * np.cumsum(h[:k]) / np.arange(1, k + 1)).sum() / k for h, k in zip(hits, r) if k]
    return {f"R@{k}": hits[:, :k].any(axis=1).mean() for k in bench.KS} | {"MAP@R": np.mean(ap)}


def test_gallery_row_scores_the_query_gallery_search():
    """Bug: the ours_gallery row searching the queries against themselves (or a gallery that is
    a copy of them) instead of an independent gallery, so it measures the wrong search."""
    q, q_lab, g, g_lab = bench.random_query_gallery(300)
    assert len(g) == 300 and not np.array_equal(q, g) and not np.array_equal(q_lab, g_lab)
    got = bench.eval_worker("ours_gallery", 300, 1)
    assert got["n"] == got["gallery_n"] == 300
    assert got["metrics"] == pytest.approx(brute_force_gallery(300), abs=1e-6)
    assert got["metrics"] != bench.eval_worker("ours", 300, 1)["metrics"]


def test_eval_section_ratios_come_from_the_right_rows(tmp_path, monkeypatch, capsys):
    """Bug: a ratio taken against another method's or another n's timing; the gallery row's
    keys (eval.gallery_seconds, eval.gallery_peak_mib) taken from another row, or its
    metrics not those of the n x n query/gallery search."""
    out = tmp_path / "bench.json"
    monkeypatch.chdir(tmp_path)  # main() moves to the project root: put the cwd back after
    # each method in this process: the rows' plumbing is the point here, not the process
    # boundary (test_a_worker_process_returns_its_row checks that)
    monkeypatch.setattr(bench, "run_worker", bench.eval_worker)
    args = ["--sections", "eval", "--eval-n", "600", "--repeat", "1", "--json", str(out)]
    assert bench.main(args) == 0
    stdout = capsys.readouterr().out
    report = json.loads(out.read_text())
    e = report["eval"]
    rows = {(r["method"], r["n"]): r for r in e["rows"]}
    assert set(rows) == {
        ("ours", 600),
        ("ours_gallery", 600),
        ("gemm", 600),
        ("pml", 600),
        ("naive", 600),
    }
    assert e["n"] == 600 and e["peak_mib"] == rows["ours", 600]["peak_mib"]
    gallery_row = rows["ours_gallery", 600]
    assert e["gallery_seconds"] == gallery_row["seconds"] > 0
    assert e["gallery_peak_mib"] == gallery_row["peak_mib"] > 0
    assert gallery_row["metrics"] == pytest.approx(brute_force_gallery(600), abs=1e-6)
    assert "| ours_gallery | 600 x 600 |" in stdout
    assert e["ratio_to_gemm"] == rows["ours", 600]["seconds"] / rows["gemm", 600]["seconds"]
    assert e["speedup_vs_naive"] == rows["naive", 600]["seconds"] / rows["ours", 600]["seconds"]
    assert e["speedup_vs_pml"] == rows["pml", 600]["seconds"] / rows["ours", 600]["seconds"]
    assert report["machine"]["cores"] == len(os.sched_getaffinity(0))
    assert "ours / bare product" in stdout


def test_a_worker_process_returns_its_row():
    """Bug: the worker subprocess printing something after its JSON row, or the parent
    reading another line: every eval row of the benchmark would be lost or wrong."""
    row = bench.run_worker("gemm", 40, 1)
    assert (row["method"], row["n"]) == ("gemm", 40)
    assert row["seconds"] > 0 and row["peak_mib"] >= row["data_mib"] > 0


def _results(passes, full_scores, thresholds, r1=0.8):
    epochs = [
        {"passes": p, "full_score": f, "threshold": t}
        for p, f, t in zip(passes, full_scores, thresholds)
    ]
    return {
        "history": [{}] * len(passes),
        "autolr": {"epochs": epochs},
        "selection": {"test": {"R@1": r1}},
        "wall_time_s": 12.5,
    }


def test_run_summary_by_hand():
    """Bug: passes counted as trials (a 20% probe costs 0.2, not 1), or agreement read from
    the probe's predicted score instead of the full epoch's."""
    got = bench.run_summary(_results([2.0, 1.2, 1.0], [1.0, 0.9, 0.8], [0.94, 0.93, 0.92]))
    assert got == {
        "R@1": pytest.approx(80.0),
        "wall_s": 12.5,
        "passes_per_epoch": pytest.approx(4.2 / 3),
        "agreement": pytest.approx(1 / 3),
    }
    single = {"history": [{}] * 4, "selection": {"test": {"R@1": 0.5}}, "wall_time_s": 3.0}
    assert bench.run_summary(single) == {
        "R@1": 50.0,
        "wall_s": 3.0,
        "passes_per_epoch": 1.0,
        "agreement": None,
    }


def test_policy_runs_drop_together():
    """Bug: step and AutoLR dropping their LRs at different epochs (an unfair comparison)."""
    runs = bench.policy_runs("probe", 10)
    assert runs["step"] == ["lr_policy=step", "lr_policy.drop_epoch=8"]
    assert runs["autolr_rerun"] == ["lr_policy=autolr", "autolr.drop_epoch=8", "autolr.mode=rerun"]
    assert runs["autolr_probe"][-1] == "autolr.mode=probe"
    assert list(runs) == ["constant", "step", "autolr_rerun", "autolr_probe"]
    assert list(bench.policy_runs("probe", 10, step=False)) == [
        "constant",
        "autolr_rerun",
        "autolr_probe",
    ]


def test_plain_loop_runs_as_many_steps_as_the_trainer(tmp_path):
    """Bug: the hand-written loop doing fewer steps than the trainer, flattering the overhead."""
    cfg = compose_cfg(
        [
            *TINY_OVERRIDES,
            f"data_dir={tmp_path}",
            "lr_policy=constant",
            "dataset.images_per_class=8",  # 3 training classes of 8: two batches of 12
        ]
    )
    with bare_trainer(cfg, tmp_path / "run") as trainer:
        calls = []
        step = trainer.p.optimizer.step
        trainer.p.optimizer.step = lambda *a, **k: calls.append(1) or step(*a, **k)
        trainer.train_epoch(0, 0)
        steps = len(calls)
        assert steps == trainer.steps >= 1
        before = [p.detach().clone() for p in trainer.p.model.parameters()]
        bench.plain_loop(trainer.p, trainer.steps)
        assert len(calls) == 2 * steps
        assert any(not b.equal(p) for b, p in zip(before, trainer.p.model.parameters()))
