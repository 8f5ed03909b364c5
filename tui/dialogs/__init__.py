"""Dialogs over any screen: a text with an optional yes/no question (also the confirm and help
dialogs, and a resume's facts), picking one item from a list, asking for one checked line of text,
and planning a sweep."""

from tui.dialogs.ask import AskScreen
from tui.dialogs.pick import PickScreen
from tui.dialogs.resume import ResumeScreen
from tui.dialogs.sweep import SweepScreen
from tui.dialogs.text import ConfirmScreen, HelpScreen, TextScreen

__all__ = ["AskScreen", "ConfirmScreen", "HelpScreen", "PickScreen", "ResumeScreen", "SweepScreen", "TextScreen"]
