"""Every script is a thin face over a package module's main()."""

from __future__ import annotations

import importlib
import runpy
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
# script -> the package module holding what it computes (parse_args and main)
THIN = {
    "aggregate_results": "dml.reports.aggregate",
    "bench": "dml.bench.speed",
    "cam": "dml.diagnostics.cam",
    "export": "dml.inference.commands.export",
    "check_synthetic": "dml.studies.twin",
    "compare_autolr": "dml.studies.compare_autolr",
    "compare_layerwise": "dml.studies.layerwise",
    "gamma_ratio": "dml.diagnostics.gamma_cli",
    "gpu_check": "dml.bench.gpu",
    "index": "dml.inference.commands.index",
    "plot_alpha_beta": "dml.plots.alpha_beta",
    "plot_autolr": "dml.plots.autolr",
    "plot_schedules": "dml.plots.schedules",
    "premise": "dml.studies.premise",
    "preview_synthetic": "dml.plots.synthetic",
    "report": "dml.reports.tables",
    "search": "dml.inference.commands.search",
    "show_retrievals": "dml.plots.retrievals",
}
# the scripts whose --help kept its first line when their code moved into the package
MOVED = sorted(set(THIN) - {"check_synthetic", "compare_autolr", "gpu_check", "premise"})


def test_every_script_is_thin():
    """Bug: a new script holding its own code again, which no test can then import."""
    assert {p.stem for p in SCRIPTS.glob("*.py")} == set(THIN)


@pytest.mark.parametrize("name", sorted(THIN))
def test_the_script_runs_its_modules_main_and_nothing_else(name):
    """Bug: a script wired to another module's main, or code growing back in the script (the
    in-process tests of the module would then miss what the command line does)."""
    script = runpy.run_path(str(SCRIPTS / f"{name}.py"), run_name=f"script_{name}")
    assert script["main"] is importlib.import_module(THIN[name]).main
    assert {k for k in script if not k.startswith("__")} == {"main"}
    assert script["__doc__"].strip()


@pytest.mark.parametrize("name", MOVED)
def test_help_still_opens_with_the_scripts_first_line(name, monkeypatch, capsys):
    """Bug: --help describing the package module instead of what the script does (argparse
    takes its description from the module the parser is built in)."""
    monkeypatch.setenv("COLUMNS", "200")  # the line unwrapped
    first = (SCRIPTS / f"{name}.py").read_text().splitlines()[0].strip('"')
    try:
        code = importlib.import_module(THIN[name]).main(["--help"])
    except SystemExit as exc:
        code = exc.code
    assert code == 0
    assert f"\n\n{first}\n\n" in capsys.readouterr().out
