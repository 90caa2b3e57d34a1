"""dml.plots.autolr (scripts/plot_autolr.py): figures from a synthetic run, one-line errors
otherwise."""

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dml.plots import autolr

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ["autolr_variation.png", "autolr_lr.png", "autolr_trials.png", "autolr_heatmap.png"]


@pytest.fixture(scope="module")
def plot_autolr() -> ModuleType:
    return autolr


def fake_autolr(n_epochs: int = 6, k: int = 7) -> dict[str, Any]:
    """An AutoLR section shaped like the trainer's: rejected trials, then an accepted one."""
    units = [f"unit{j + 1}" for j in range(k)]
    epochs, trials = [], []
    threshold = 0.94
    for e in range(n_epochs):
        threshold = threshold * 0.99 if e > 0 else threshold
        n_trials = 3 if e == 0 else (2 if e % 2 else 1)
        for t in range(n_trials):
            accepted = t == n_trials - 1
            # Single LR first, then the profile tilts towards the high units; the
            # variation follows lr times a gradient that shrinks with depth and time.
            tilt = min(e + t, 3) / 3
            lr = [1e-3 * 4 ** (tilt * (j / max(k - 1, 1) - 0.5)) for j in range(k)]
            grad = [(2.0 - j / k) * 0.93**e for j in range(k)]
            variation: list[float | None] = [1e-3 * a * g for a, g in zip(lr, grad, strict=True)]
            if k > 3 and e in (1, 2):
                # Excluded units: the trainer writes 0 or null for them.
                variation[2 if e == 1 else 3] = 0.0 if e == 1 else None
            target = None if t == 0 else [(1 + j / k) * 2e-6 for j in range(k)]
            score = 0.97 if accepted else 0.1 + 0.3 * t
            trials.append(
                {"epoch": e, "trial": t, "score": score, "threshold": threshold,
                 "accepted": accepted, "lr": lr, "variation": variation, "target": target}
            )  # fmt: skip
        epochs.append(
            {"epoch": e, "trials": n_trials, "accepted_trial": n_trials - 1,
             "threshold": threshold, "score": trials[-1]["score"], "lr": trials[-1]["lr"],
             "variation": trials[-1]["variation"], "target": trials[-1]["target"],
             "capped": e == 4}
        )  # fmt: skip
    return {"units": units, "epochs": epochs, "trials": trials}


def write_results(run_dir: Path, results: Any) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "results.json"
    path.write_text(json.dumps(results))
    return path


def assert_one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


# ------------------------------------------------------------------- success


def test_writes_four_valid_pngs(
    plot_autolr: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_results(tmp_path, {"recall": {"1": 0.6}, "autolr": fake_autolr()})
    assert plot_autolr.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    plots = tmp_path / "plots"
    assert sorted(out) == sorted(str(plots / name) for name in FIGURES)
    for name in FIGURES:
        data = (plots / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 10_000, name


def test_single_epoch_single_unit(plot_autolr: ModuleType, tmp_path: Path) -> None:
    # Degenerate shapes must not break the colour scales or the layout.
    section = fake_autolr(n_epochs=1, k=1)
    write_results(tmp_path, {"autolr": section})
    assert plot_autolr.main([str(tmp_path)]) == 0
    assert all((tmp_path / "plots" / name).read_bytes().startswith(PNG_MAGIC) for name in FIGURES)


def test_without_trial_log_uses_epoch_scores(plot_autolr: ModuleType, tmp_path: Path) -> None:
    section = fake_autolr(n_epochs=3, k=4)
    del section["trials"]
    write_results(tmp_path, {"autolr": section})
    assert plot_autolr.main([str(tmp_path)]) == 0
    assert (tmp_path / "plots" / "autolr_trials.png").read_bytes().startswith(PNG_MAGIC)


def test_all_variations_excluded_still_plots(plot_autolr: ModuleType, tmp_path: Path) -> None:
    section = fake_autolr(n_epochs=2, k=3)
    for epoch in section["epochs"]:
        epoch["variation"] = [None, 0.0, None]
    write_results(tmp_path, {"autolr": section})
    assert plot_autolr.main([str(tmp_path)]) == 0


def test_large_run_16_units_40_epochs(plot_autolr: ModuleType, tmp_path: Path) -> None:
    write_results(tmp_path, {"autolr": fake_autolr(n_epochs=40, k=16)})
    assert plot_autolr.main([str(tmp_path)]) == 0


# -------------------------------------------------------------------- errors


def test_missing_run_dir(
    plot_autolr: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert plot_autolr.main([str(missing)]) == 2
    assert_one_line_error(capsys, "run directory not found", str(missing))
    assert not missing.exists()


def test_missing_results_json(
    plot_autolr: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plot_autolr.main([str(tmp_path)]) == 2
    assert_one_line_error(capsys, "no results.json", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_results_not_json(
    plot_autolr: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "results.json").write_text("{not json")
    assert plot_autolr.main([str(tmp_path)]) == 2
    assert_one_line_error(capsys, "not valid JSON", "results.json")
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize("results", [{"recall": {"1": 0.5}}, {"autolr": None}, {"autolr": {}}, []])
def test_no_autolr_section(
    plot_autolr: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], results: Any
) -> None:
    write_results(tmp_path, results)
    assert plot_autolr.main([str(tmp_path)]) == 2
    assert_one_line_error(capsys, f"run {tmp_path} has no AutoLR diagnostics", "not autolr")
    assert not (tmp_path / "plots").exists()


def test_no_epochs_recorded(
    plot_autolr: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_results(tmp_path, {"autolr": {"units": ["unit1"], "epochs": [], "trials": []}})
    assert plot_autolr.main([str(tmp_path)]) == 2
    assert_one_line_error(capsys, "autolr.epochs is empty")
    assert not (tmp_path / "plots").exists()


def test_wrong_number_of_values(
    plot_autolr: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = fake_autolr(n_epochs=3, k=5)
    section["epochs"][1]["lr"] = [1e-3] * 4
    write_results(tmp_path, {"autolr": section})
    assert plot_autolr.main([str(tmp_path)]) == 2
    assert_one_line_error(capsys, "autolr.epochs[1].lr", "5 values", "got 4")
    assert not (tmp_path / "plots").exists()


def test_missing_field(
    plot_autolr: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = fake_autolr(n_epochs=2, k=3)
    del section["epochs"][0]["epoch"]
    write_results(tmp_path, {"autolr": section})
    assert plot_autolr.main([str(tmp_path)]) == 2
    assert_one_line_error(capsys, "malformed autolr.epochs", "epoch")
