"""The console's screens, one module each: the main console and the workbenches over it.

Names are imported on first use (PEP 562), so starting the console loads only the main screen;
a workbench's module is imported when it is first opened.
"""

from __future__ import annotations

import importlib

_HOME = {
    "AblationScreen": "ablation",
    "CompletionsScreen": "completions",
    "ConfigScreen": "config",
    "ConsoleScreen": "console",
    "FilteredTable": "base",
    "Workbench": "base",
    "OverlayScreen": "runs",
    "QueueScreen": "queue",
    "RunDetailScreen": "runs",
    "RunsScreen": "runs",
    "SyncScreen": "sync",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
