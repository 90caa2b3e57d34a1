"""Sweeps through Hydra's submitit launcher: the local executor on this CPU, Slurm composed."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import compose_cfg

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def test_a_two_job_sweep_runs_through_submitit_local(train, tmp_path):
    """Bug: train.py's task cannot be pickled into a submitit job, the jobs share one folder,
    or a job's result is not the one its own process computed."""
    proc = train(
        tmp_path,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "lr_policy=constant",
        "trainer.epochs=1",
        "seed=0,1",
        multirun=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweep = tmp_path / "sweep"
    jobs = {}
    for num in ("0", "1"):
        res = json.loads((sweep / num / "results.json").read_text())
        assert res["status"] == "completed"
        jobs[res["config"]["seed"]] = res
    assert sorted(jobs) == [0, 1]
    # each job ran in a submitit process of its own, whose log holds that job's own R@1
    logs = sorted((sweep / ".submitit").glob("*/*_0_log.out"))
    assert len(logs) == 2
    printed = set()
    for log in logs:
        found = re.findall(r"epoch 0: loss \S+\s+trials 1\s+R@1 ([0-9.]+)", log.read_text())
        assert found, log.read_text()[-1000:]
        printed.add(round(float(found[-1]), 2))
    reported = {round(100 * r["history"][0]["R@1"], 2) for r in jobs.values()}
    assert printed == reported


def test_the_slurm_preset_sets_the_cluster_keys_and_requeues():
    """Bug: hydra/launcher=slurm does not compose over the plugin's schema, or a key a user
    sets (partition, GPUs, time limit, parallelism) is lost; re-queue off by default."""
    cfg = compose_cfg(
        [
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=4",
            "hydra.launcher.tasks_per_node=4",
            "hydra.launcher.timeout_min=600",
            "hydra.launcher.array_parallelism=8",
        ],
        hydra=True,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    got = {k: launcher[k] for k in ("partition", "gpus_per_node", "tasks_per_node")}
    assert got == {"partition": "gpu", "gpus_per_node": 4, "tasks_per_node": 4}
    assert (launcher.timeout_min, launcher.array_parallelism) == (600, 8)
    assert launcher.max_num_timeout == 3  # the plugin's own default (0) never re-queues


def test_a_submitit_job_of_several_tasks_gets_the_torchrun_environment(monkeypatch):
    """Bug: a Slurm job with tasks_per_node = 2 runs two independent copies of the job
    instead of one DDP job (no RANK/WORLD_SIZE for init_process_group)."""
    import submitit

    from dml.training import distributed

    for key in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
    ):
        # set, then removed: monkeypatch records each and removes what the export adds (a
        # WORLD_SIZE=2 left behind would make every later train.py wait for a second rank)
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    # what Slurm sets in the second task of a 1-node, 2-task job
    slurm = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "2",
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "0",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_JOB_NODELIST": "gpu07",
    }
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    assert submitit.JobEnvironment().num_tasks == 2
    distributed.export_submitit_env()
    import os

    env = {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    assert env == {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu07"}
    assert distributed.launched()
