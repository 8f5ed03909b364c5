"""A checkbox whose box reads without colour: under NO_COLOR a ticked box shows X and an empty one
shows nothing (Textual draws X in both and tells them apart by colour only)."""

from __future__ import annotations

import os

from textual.widgets import Checkbox


def env_no_color() -> bool:
    """Tell whether the user asked for no colour (https://no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


class MarkedCheckbox(Checkbox):
    """A Checkbox that also marks its state with a glyph when there is no colour."""

    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802 - Textual's class attribute, made to follow the value
        return "X" if self.value or not env_no_color() else " "
