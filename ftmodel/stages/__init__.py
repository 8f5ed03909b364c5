"""The pipeline's stages, one module each; every module offers `preflight(ctx)` and `run(ctx)`.

Stage modules import only the stdlib and light ftmodel modules at import time (the ML stack is
imported inside `run`), so the CLI can run `preflight` in well under a second.
"""

import importlib
from types import ModuleType

from ftmodel.words import PIPELINE, STAGES  # noqa: F401 - PIPELINE re-exported for the CLI


def stage_module(stage: str) -> ModuleType:
    """Return the module implementing a stage (the pipeline driver is not a stage: see launcher)."""
    if stage not in STAGES:
        raise KeyError(stage)
    return importlib.import_module(f"ftmodel.stages.{stage}")
