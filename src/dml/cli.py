"""Command-line helpers for train.py and for the scripts' main() functions."""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from dml.errors import DmlError

# Hydra parses `pruning=16` and `pruning=15_16` as integers (1516 for the latter, as Python
# reads underscores), and a config-group choice must be a string; quote such choices.
NUMERIC_CHOICE_GROUPS = ("pruning",)
_GROUPS = "|".join(NUMERIC_CHOICE_GROUPS)
_NUMERIC = re.compile(rf"^(?P<key>[+~]{{0,2}}(?:{_GROUPS}))=(?P<vals>[0-9_]+(?:,[0-9_]+)*)$")


def quote_numeric_choices(argv: list[str]) -> list[str]:
    """Rewrite `pruning=16` as `pruning='16'` (also in sweeps: `pruning=16,15_16`)."""
    out = []
    for arg in argv:
        m = _NUMERIC.match(arg)
        if m:
            vals = ",".join(f"'{v}'" for v in m.group("vals").split(","))
            arg = f"{m.group('key')}={vals}"
        out.append(arg)
    return out


CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def compose_train(overrides: list[str] | None = None, hydra: bool = False) -> DictConfig:
    """The train config with these overrides, composed as train.py composes it (numeric
    choices quoted); with `hydra`, the hydra node too. The one place that composes a config
    outside train.py: scripts, studies and tests all come here."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import dml.config  # noqa: F401  (registers the config schemas)

    GlobalHydra.instance().clear()  # a test or a Hydra app may have left one initialised
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            return compose(
                "train",
                overrides=quote_numeric_choices(list(overrides or [])),
                return_hydra_config=hydra,
            )
    finally:
        GlobalHydra.instance().clear()


def prepare_argv(argv: list[str]) -> list[str]:
    """quote_numeric_choices, and `resume=<dir>`: Hydra runs in that folder and leaves its
    saved config (.hydra/) as it is."""
    argv = quote_numeric_choices(argv)
    resume = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("resume=")]
    if resume and resume[-1] not in ("", "null"):
        if any(a in ("-m", "--multirun") for a in argv):
            print("error: resume=<run dir> continues one run; drop -m/--multirun", file=sys.stderr)
            sys.exit(1)
        argv = [*argv, f"hydra.run.dir={resume[-1]}", "hydra.output_subdir=null"]
    return argv


def override_key(override: str) -> str:
    """The dotted key of a command-line override (`+a.b=1` -> `a.b`)."""
    return override.split("=", 1)[0].lstrip("+~")


def settle_pruning(cfg: DictConfig, overrides: list[str]) -> None:
    """Overriding pruning.units or pruning.remove_last replaces the other: the pruning group's
    option sets one of them, and a user who sets the other means it instead."""
    keys = {override_key(o) for o in overrides}
    if "pruning.units" in keys and "pruning.remove_last" not in keys:
        cfg.pruning.remove_last = 0
    elif "pruning.remove_last" in keys and "pruning.units" not in keys:
        cfg.pruning.units = []


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


# Hydra options that come from an optional plugin: (group, option) -> the extra to install
PLUGIN_EXTRAS = {
    ("hydra/sweeper", "optuna"): "optuna",
    ("hydra/launcher", "submitit_slurm"): "slurm",
    ("hydra/launcher", "submitit_local"): "slurm",
}


def config_error_line(exc: BaseException) -> str:
    """One line for a Hydra or OmegaConf composition error, naming the key or the choice."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, name = str(exc.missing_cfg_file).rpartition("/")
        options = [o for o in exc.options or [] if not o.startswith("schema")]
        extra = PLUGIN_EXTRAS.get((group, name))
        if extra:
            return (
                f"{group}={name} needs an optional Hydra plugin that is not installed; "
                f'install it with: pip install -e ".[{extra}]"'
            )
        if group and options:
            return f"{group}={name}: no such option; expected one of {', '.join(options)}"
        return f"no config '{exc.missing_cfg_file}' ({_first_line(exc)})"
    line = _first_line(exc)
    if isinstance(exc, OverrideParseException):
        why = [ln for ln in str(exc).splitlines()[1:] if ln.strip() and "hydra.cc" not in ln]
        text = f"{line.removeprefix('Error parsing override ')}: {why[0]}" if why else line
        return f"bad override {text}; expected key=value (see `python train.py --help`)"
    cause = exc.__cause__
    if cause is not None:
        key = getattr(cause, "full_key", None)
        detail = _first_line(cause)
        if "not in" in detail and key:  # a misspelt key
            return f"{key}: no such key ({detail}); to add a new key use +{key}=..."
        return f"{key or line}: {detail}" if detail else line
    return line


def run_cli(main: Callable[[], object]) -> None:
    """Call a @hydra.main function; Hydra's own errors end in one line on stderr and exit 1.

    HYDRA_FULL_ERROR=1 set by the user keeps Hydra's full report and traceback.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    # warnings (a partial dataset, a capped AutoLR epoch) as one line, not file:line + source
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let the exception reach us instead of Hydra's report
    try:
        main()
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: {config_error_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # Hydra could not make or write the run folder
        print(f"error: cannot write the run folder: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def error_text(exc: BaseException) -> str:
    """The message of an error a command reports; a Hydra or OmegaConf one cut to its first line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    # their later lines are hints and key paths meant for a traceback, not for the user
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        return _first_line(exc)
    return str(exc)


def run_command(
    body: Callable[[argparse.Namespace], int],
    parse_args: Callable[[list[str] | None], argparse.Namespace],
    argv: list[str] | None,
    *,
    errors: tuple[type[Exception], ...] = (DmlError,),
    code: int = 1,
    prog: str = "",
    message: Callable[[BaseException], str] = error_text,
) -> int:
    """body(parse_args(argv)); one of `errors` ends as `[prog: ]error: <message>` and `code`."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) or bad usage (2, already printed)
        return int(exc.code or 0)
    try:
        return body(args)
    except errors as exc:
        prefix = f"{prog}: " if prog else ""
        print(f"{prefix}error: {message(exc)}", file=sys.stderr)
        return code
