"""Train and evaluate a retrieval model: `python train.py [group=option ...] [key=value ...]`."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import dml.config  # noqa: F401  (registers the config schemas)
from dml.cli import quote_numeric_choices
from dml.run import run


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> int:
    """Run one job; outside a multirun a failed job exits non-zero."""
    hc = HydraConfig.get()
    code = run(cfg, Path(hc.runtime.output_dir))
    if code and hc.mode != RunMode.MULTIRUN:
        sys.exit(code)  # a multirun goes on with the other jobs; results.json says what failed
    return code


if __name__ == "__main__":
    sys.argv = quote_numeric_choices(sys.argv)
    main()
