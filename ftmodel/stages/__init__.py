"""The pipeline's stages, one module each; every module offers `preflight(ctx)` and `run(ctx)`.

Stage modules import only the stdlib and light ftmodel modules at import time (the ML stack is
imported inside `run`), so the CLI can run `preflight` in well under a second.
"""

import importlib
from types import ModuleType

from ftmodel.rundir import STAGES

PIPELINE = "pipeline"


def stage_module(stage: str) -> ModuleType:
    """Return the module implementing a stage (or the pipeline driver)."""
    if stage == PIPELINE:
        return importlib.import_module("ftmodel.pipeline")
    if stage not in STAGES:
        raise KeyError(stage)
    return importlib.import_module(f"ftmodel.stages.{stage}")
