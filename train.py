"""Train and evaluate a retrieval model: `python train.py [group=option ...] [key=value ...]`."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import dml.config  # noqa: F401  (registers the config schemas)
from dml.cli import quote_numeric_choices
from dml.run import objective, run


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float:
    """Run one job; outside a multirun a failed job exits non-zero.

    Returns the reported epoch's R@1 (val R@1 under eval.selection=val), the value a
    Hydra sweeper such as Optuna maximises; NaN for a job that did not complete.
    """
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    code = run(cfg, out)
    if code and hc.mode != RunMode.MULTIRUN:
        sys.exit(code)  # a multirun goes on with the other jobs; results.json says what failed
    return objective(out)


if __name__ == "__main__":
    sys.argv = quote_numeric_choices(sys.argv)
    main()
