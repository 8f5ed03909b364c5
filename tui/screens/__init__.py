"""The console's screens, one module each: the main console and the five workbenches over it."""

from tui.screens.ablation import AblationScreen
from tui.screens.base import FilteredTable, Workbench
from tui.screens.completions import CompletionsScreen
from tui.screens.config import ConfigScreen
from tui.screens.console import ConsoleScreen
from tui.screens.runs import OverlayScreen, RunDetailScreen, RunsScreen
from tui.screens.sync import SyncScreen

__all__ = ["AblationScreen", "CompletionsScreen", "ConfigScreen", "ConsoleScreen", "FilteredTable", "OverlayScreen",
           "RunDetailScreen", "RunsScreen", "SyncScreen", "Workbench"]
