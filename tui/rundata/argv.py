"""The command line a console launch records in its run (what `ftmodel` would be typed to do the same)."""

from __future__ import annotations


def stage_argv(stage: str, config_path, workspace, overrides=(), extra=()) -> list[str]:
    """The command line a run records for a console launch (the one place it is built)."""
    argv = ["ftmodel", stage, "--config", str(config_path), "--workspace", str(workspace)]
    for spec in overrides:
        argv += ["--set", spec]
    return [*argv, *extra]
