"""The config editor in a real terminal (tmux, 80×24, NO_COLOR): edit a value, save, see the diff,
and find the file's comments kept. Every wait polls with a deadline; nothing sleeps to synchronise."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ROOT, wait_for
from tests.e2e.test_console_tmux import Tmux, console_command

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


def flat(screen: str) -> str:
    """The screen's text with runs of whitespace (line breaks too) collapsed to one space."""
    return " ".join(screen.split())


def type_until(console: Tmux, keys: list[str], predicate, what: str, tries: int = 4) -> str:
    """Send keys (plain text sent literally) and poll the screen; a terminal may drop keys sent in a
    burst, so an edit that did not land is cleared with BSpace and sent again."""
    import subprocess

    for attempt in range(tries):
        for key in keys:
            literal = key not in ("End", "BSpace")
            subprocess.run(
                ["tmux", "-L", console.socket, "send-keys", "-t", "console", *(["-l", "--"] if literal else []), key],
                check=True,
            )
        try:
            return console.wait_screen(predicate, 4, what)
        except AssertionError:
            if attempt == tries - 1:
                raise
            console.keys("End", *["BSpace"] * 8)
    raise AssertionError(what)


def test_edit_a_value_save_with_diff_and_keep_comments(tmp_path):
    config = tmp_path / "edit.toml"
    shutil.copy(ROOT / "configs" / "default.toml", config)
    before = config.read_text()
    console = Tmux(f"env NO_COLOR=1 {console_command(config, tmp_path / 'ws')}", width=80, height=24)
    try:
        console.wait_screen(lambda s: "stages" in s, 30, "console painted")
        console.keys("c")
        console.wait_screen(lambda s: "section model" in s and "name_or_path" in s, 15, "config editor")
        for _ in range(5):  # model → data → distill → filter → lora → sft
            console.keys("Down")
        console.wait_screen(lambda s: "section sft" in s and "learning_rate" in s, 15, "the sft section")
        console.keys("Enter")  # into the first field: learning_rate (0.005)
        console.wait_screen(lambda s: "editing sft.learning_rate" in s, 15, "the first field focused")
        type_until(
            console,
            ["End", *["BSpace"] * 8],
            lambda s: "expected a number, got ''" in s,
            "an empty field refused inline",
        )
        type_until(console, ["-1"], lambda s: "below the minimum 0.0" in s, "a negative rate refused inline")
        type_until(console, ["BSpace", "BSpace"], lambda s: "expected a number, got ''" in s, "field emptied")
        # The banner may wrap (the tmp path's length varies): match on whitespace-collapsed text.
        type_until(
            console,
            ["0.001"],
            lambda s: "1 unsaved edit(s)" in flat(s) and "invalid" not in s and "0.001" in s,
            "a valid edit",
        )
        assert config.read_text() == before  # nothing written until saved
        console.keys("C-s")
        screen = console.wait_screen(lambda s: "Save these changes?" in s, 15, "the diff")
        assert "-learning_rate = 5e-3" in screen and "+learning_rate = 0.001" in screen
        console.keys("y")
        wait_for(lambda: "learning_rate = 0.001" in config.read_text(), timeout=15, interval=0.1, what="saved file")
        console.wait_screen(lambda s: "no unsaved edits" in flat(s), 15, "clean after saving")
    finally:
        console.kill()
    after = config.read_text()
    assert after == before.replace("learning_rate = 5e-3", "learning_rate = 0.001", 1)
    assert "# Training the embeddings too keeps the answer format when GRPO samples at temperature 1." in after
    assert 'name_or_path = "builtin:tiny"   # built locally into <workspace>/models on first use' in after
