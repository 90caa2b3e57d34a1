"""train.py's command line: argv preprocessing, one-line errors, run folders."""

# ruff: noqa: E501  (the expected lines are kept whole, as a user reads them)

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest
from omegaconf import OmegaConf

from dml.cli import prepare_argv, quote_numeric_choices, run_command, settle_pruning
from dml.config import unique_dir
from tests.conftest import TINY_OVERRIDES


def test_numeric_pruning_choices_are_quoted():
    argv = [
        "train.py",
        "pruning=16",
        "-m",
        "pruning=16,15_16",
        "model=resnet50",
        "trainer.epochs=16",
        "pruning=none",
        "+pruning=15_16",
    ]
    assert quote_numeric_choices(argv) == [
        "train.py",
        "pruning='16'",
        "-m",
        "pruning='16','15_16'",
        "model=resnet50",
        "trainer.epochs=16",
        "pruning=none",
        "+pruning='15_16'",
    ]


def test_worker_wrapped_error_is_reduced_to_its_line():
    from dml.errors import DmlError
    from dml.run import one_line

    wrapped = DmlError(
        "Caught DmlError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "x.py", line 1\ndml.errors.DmlError: cannot read image /d/a.jpg: bad\n'
    )
    assert one_line(wrapped) == "cannot read image /d/a.jpg: bad"
    assert one_line(DmlError("plain message")) == "plain message"


# --- train.py as a user types it, run in this process (the train_cli fixture) ----------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["loss=foo"],
            "error: loss=foo: no such option; expected one of multi_similarity, proxy_anchor, softmax, triplet",
        ),
        (
            ["task=detection"],
            "error: task=detection: no such option; expected one of classification, retrieval",
        ),
        (
            ["optimizer=base_optimizer"],
            "error: optimizer=base_optimizer: no such option; expected one of adamw, sgd, sgd_twin",
        ),
        (
            ["dataset.imag_size=3"],
            "error: dataset.imag_size: no such key (Key 'imag_size' not in 'SyntheticDatasetConfig'); to add a new key use +dataset.imag_size=...",
        ),
        (
            ["trainer.epochs=many"],
            "error: trainer.epochs: Value 'many' of type 'str' could not be converted to Integer",
        ),
        (
            ["trainer.epochs"],
            "error: bad override 'trainer.epochs': missing EQUAL at '<EOF>'; expected key=value (see `python train.py --help`)",
        ),
        (["-m", "resume=/tmp/x"], "error: resume=<run dir> continues one run; drop -m/--multirun"),
    ],
)
def test_hydra_errors_are_one_line_without_traceback(train_cli, args, line):
    """Catches Hydra's multi-line report (option lists, search path, HYDRA_FULL_ERROR hint) or a
    traceback reaching the user, a zero exit, and schema names (base_*) offered as choices."""
    code, _, err = train_cli(*args)
    assert code == 1
    assert err.strip() == line


def test_a_missing_optional_plugin_says_how_to_install_it(train_cli):
    """Catches `-m experiment=figure1_optuna` without hydra-optuna-sweeper ending in 'no such
    option' (which reads as a typo) instead of naming the extra that provides it."""
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None:
        pytest.skip("hydra-optuna-sweeper is installed here")
    code, _, err = train_cli("-m", "experiment=figure1_optuna")
    assert code == 1
    assert err.strip() == (
        "error: hydra/sweeper=optuna needs an optional Hydra plugin that is not installed; "
        'install it with: pip install -e ".[optuna]"'
    )


def test_a_two_job_multirun_in_one_process_leaves_no_live_child(train_cli, tmp_path):
    """Bug: Hydra's multirun runs every job in one process; a job that leaves its persistent
    loader workers alive keeps them until the whole sweep ends (and on a GPU, well after)."""
    import multiprocessing

    args = [*TINY_OVERRIDES, f"data_dir={tmp_path / 'data'}", "dataset.num_workers=2"]
    args += ["lr_policy=constant", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    code, out, _ = train_cli("-m", *args, "seed=0,1")
    assert code == 0
    for job in ("0", "1"):
        saved = json.loads((tmp_path / "sweep" / job / "results.json").read_text())
        assert saved["status"] == "completed"
    assert [saved["config"]["seed"], out.count("run dir:")] == [1, 2]
    assert multiprocessing.active_children() == []


def test_unwritable_run_folder_is_one_line(train_cli, tmp_path):
    """Catches an OSError traceback when the run folder cannot be made (its parent is a file)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = train_cli(f"hydra.run.dir={blocker / 'run'}")
    assert code == 1 and "Traceback" not in err
    assert err.strip().startswith("error: ") and len(err.strip().splitlines()) == 1
    assert str(blocker / "run") in err and blocker.read_text() == "not a folder"


def test_runs_started_in_the_same_second_get_their_own_folders(train_cli, tmp_path):
    """Catches two runs sharing one timestamped folder (the second refused, or both writing in
    it): unique_dir claims `same`, then `same_1`."""
    same = tmp_path / "same"
    args = ["dataset=cub200", "dataset.root=/nonexistent", "model.pretrained=none"]
    for _ in range(2):
        code, _, err = train_cli(*args, f"hydra.run.dir=${{unique_dir:{same}}}")
        assert code == 1 and "does not exist" in err  # each run fails fast, in its own folder
    for folder in (same, tmp_path / "same_1"):
        saved = json.loads((folder / "results.json").read_text())
        assert saved["status"] == "failed" and "does not exist" in saved["error"]
    assert unique_dir(str(same)) == str(tmp_path / "same_2")


def test_settle_pruning_lets_the_overridden_key_win():
    """Catches `pruning.units=[3]` failing with 'set one of them' because the default option
    (last1) sets remove_last, and the reverse for pruning=15_16 pruning.remove_last=1."""
    cfg = OmegaConf.create({"pruning": {"units": [3], "remove_last": 1}})  # as composed
    settle_pruning(cfg, ["pruning.units=[3]"])
    assert cfg.pruning.remove_last == 0 and cfg.pruning.units == [3]
    cfg = OmegaConf.create({"pruning": {"units": [15, 16], "remove_last": 1}})  # as composed
    settle_pruning(cfg, ["pruning='15_16'", "pruning.remove_last=1"])
    assert cfg.pruning.units == [] and cfg.pruning.remove_last == 1
    cfg = OmegaConf.create({"pruning": {"units": [7], "remove_last": 2}})
    settle_pruning(cfg, ["pruning.units=[7]", "pruning.remove_last=2"])  # both: user's conflict
    assert cfg.pruning.units == [7] and cfg.pruning.remove_last == 2


def test_prepare_argv_points_hydra_at_the_resumed_folder():
    """Catches resume writing a new timestamped folder or overwriting the run's .hydra/."""
    assert prepare_argv(["train.py", "resume=/r/x", "eval.batch_size=8"]) == [
        "train.py",
        "resume=/r/x",
        "eval.batch_size=8",
        "hydra.run.dir=/r/x",
        "hydra.output_subdir=null",
    ]
    assert prepare_argv(["train.py", "resume=null"]) == ["train.py", "resume=null"]


def test_run_command_turns_exits_and_user_errors_into_codes(capsys):
    """Bug: an argparse usage error returning 0 (or escaping as SystemExit), a DmlError or a
    Hydra error escaping as a traceback, or the error line losing its prog prefix."""
    from omegaconf.errors import ConfigKeyError

    from dml.errors import DmlError

    raised = {
        "dml": DmlError("bad run\nsecond line"),
        "hydra": ConfigKeyError("Key 'x' is not in struct\n    full_key: x"),
        "other": ValueError("not ours"),
    }

    def parse(argv: list[str] | None) -> argparse.Namespace:
        parser = argparse.ArgumentParser(prog="tool")
        parser.add_argument("what", choices=("ok", *raised))
        return parser.parse_args(argv)

    def body(args: argparse.Namespace) -> int:
        if args.what in raised:
            raise raised[args.what]
        print("done")
        return 0

    errors = (DmlError, ConfigKeyError)
    assert run_command(body, parse, ["ok"]) == 0
    assert capsys.readouterr().out == "done\n"
    assert run_command(body, parse, ["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: tool")
    assert run_command(body, parse, ["nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert run_command(body, parse, ["dml"], errors=errors, code=2, prog="tool") == 2
    assert capsys.readouterr() == ("", "tool: error: bad run\nsecond line\n")
    assert run_command(body, parse, ["hydra"], errors=errors) == 1
    assert capsys.readouterr().err == "error: Key 'x' is not in struct\n"
    with pytest.raises(ValueError):  # not a user mistake: the traceback is the report
        run_command(body, parse, ["other"], errors=errors)
