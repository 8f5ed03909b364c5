"""File work never blocks the UI thread: while a run detail's directory walk, an overlay's parse and a
delete are held up (standing in for a huge run directory), the console still answers keys. Also what a
delete really did (a run that is a link) and a run directory removed under the console."""

from __future__ import annotations

import shutil
import threading

import pytest

from tests.tui.fake_runs import make_run, sft_rows
from tests.tui.test_app import make_app, select_stage, status_text, until
from tui.dialogs import TextScreen
from tui.screens import OverlayScreen, RunDetailScreen, RunsScreen

pytestmark = pytest.mark.anyio


def held(monkeypatch, target: str):
    """Replace `target` by a version that waits for the returned event (bounded) before doing its work."""
    import importlib

    module_name, name = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    real = getattr(module, name)
    release, entered = threading.Event(), threading.Event()

    def slow(*args, **kwargs):
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, slow)
    return release, entered


async def open_runs(app, pilot):
    await until(pilot, lambda: app.main.runs, what="scan")
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, what="runs screen")
    return app.screen


async def test_slow_detail_walk_and_overlay_parse_leave_the_console_answering_keys(ws, monkeypatch):
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished", metrics=sft_rows(20), log=["hello"])
    release_walk, walking = held(monkeypatch, "tui.screens.runs.artifacts")
    release_parse, parsing = held(monkeypatch, "tui.screens.runs.metric_series")
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = await open_runs(app, pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and walking.is_set(), what="walk started")
        detail = app.screen
        await pilot.press("escape")  # answered while the walk is still held
        await until(pilot, lambda: app.screen is runs, what="back while walking")
        assert not detail.loaded
        release_walk.set()
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OverlayScreen) and parsing.is_set(), what="parse started")
        overlay = app.screen
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is runs, what="back while parsing")
        assert not overlay.drawn
        release_parse.set()


async def test_slow_delete_leaves_the_console_answering_and_says_deleted_only_after(ws, monkeypatch):
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished")
    release, deleting = held(monkeypatch, "tui.screens.runs.remove_run_dir")
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = await open_runs(app, pilot)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="confirmation")
        await pilot.press("y")
        await until(pilot, lambda: deleting.is_set(), what="delete started")
        await pilot.press("f")  # the stage filter still cycles while the delete is held
        await until(pilot, lambda: runs.stage_filter == "prepare", what="filter answered")
        assert not any("deleted" in n for n in app.notes)
        release.set()
        await until(pilot, lambda: any(n == "deleted sft-20260101-000000-0001" for n in app.notes), what="deleted")
    assert not (ws / "runs" / "sft-20260101-000000-0001").exists()


async def test_deleting_a_run_that_is_a_link_removes_only_the_link(ws, tmp_path):
    elsewhere = tmp_path / "other-disk" / "sft-20260101-000000-0001"
    make_run(tmp_path / "other-disk-ws", "sft-20260101-000000-0001", "sft", "finished")
    elsewhere.parent.mkdir()
    shutil.move(tmp_path / "other-disk-ws" / "runs" / "sft-20260101-000000-0001", elsewhere)
    (ws / "runs").mkdir(parents=True)
    (ws / "runs" / "sft-20260101-000000-0001").symlink_to(elsewhere)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_runs(app, pilot)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="confirmation")
        assert "only the link is removed" in str(app.screen.query_one("#text-body").render())
        await pilot.press("y")
        await until(pilot, lambda: any("removed the link" in n for n in app.notes), what="link removed")
        assert not any(n.startswith("deleted") for n in app.notes)
    assert not (ws / "runs" / "sft-20260101-000000-0001").is_symlink()
    assert (elsewhere / "state.json").exists()  # nothing outside the workspace was touched


async def test_run_directory_removed_under_the_console_clears_its_charts(ws):
    path = make_run(ws, "sft-20260101-000000-0001", "sft", "finished", metrics=sft_rows(20))
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.store.rows == 20, what="metrics")
        await until(pilot, lambda: app.query_one("#panel-loss").display, what="loss chart")
        shutil.rmtree(path)
        await until(pilot, lambda: app.main.selected_run is None, what="run dropped")
        await until(pilot, lambda: "no runs yet" in status_text(app), what="status says so")
        assert not app.query_one("#panel-loss").display and app.main.store.rows == 0


def test_unsaved_edit_error_does_not_cite_a_line_of_the_unsaved_text(tmp_path):
    from ftmodel import config as config_mod
    from tests.tui.fake_runs import DEFAULT_CONFIG
    from tui.configdoc import ConfigDocument

    path = tmp_path / "ftmodel.toml"
    path.write_text("# a comment\n\n" + DEFAULT_CONFIG.read_text())
    doc = ConfigDocument(path)
    doc.edit("filter", "min_chars", 10_000)  # valid alone, larger than max_chars: the whole config fails
    with pytest.raises(config_mod.ConfigError) as err:
        doc.config()
    message = str(err.value)
    assert "min_chars is larger" in message and "(with unsaved edits)" in message
    assert f"{path}:" not in message  # no `file:line` for text that is not the file's


async def test_under_no_color_ticked_and_empty_boxes_differ_and_switches_are_boxes(ws, monkeypatch):
    from tui.screens import AblationScreen, ConfigScreen
    from tui.widgets.toggles import MarkedCheckbox

    monkeypatch.setenv("NO_COLOR", "1")
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished")
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.runs, what="scan")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AblationScreen), what="ablation screen")
        ticked, empty = app.screen.query_one("#abl-base"), app.screen.query_one("#abl-sft_only")
        ticked.value, empty.value = True, False
        await pilot.pause(0.05)
        assert ticked.render().plain.split()[0] != empty.render().plain.split()[0]
        assert "X" in ticked.render().plain and "X" not in empty.render().plain
        await pilot.press("escape")
        await pilot.press("c")
        await until(
            pilot,
            lambda: isinstance(app.screen, ConfigScreen) and app.screen.query("#cfg-form Checkbox"),
            what="config form",
        )
        box = app.screen.query_one("#fld-model-trust_remote_code")
        assert isinstance(box, MarkedCheckbox)
        before = box.value
        box.value = not before
        await until(
            pilot,
            lambda: app.screen.doc.pending.get(("model", "trust_remote_code")) == (not before),
            what="edit recorded",
        )


async def test_log_panel_wraps_long_lines_at_80_columns(ws):
    long_line = "run prepare: building the embedded base model " + "x" * 120 + " END"
    make_run(ws, "prepare-20260101-000000-0001", "prepare", "finished", log=[long_line])
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.query_one("#log").line_count == 1, what="log line")
        log = app.query_one("#log")
        await until(pilot, lambda: len(log.lines) > 1, what="wrapped rows")
        shown = "".join(strip.text for strip in log.lines)
        assert "END" in shown, [s.cell_length for s in log.lines]
        assert max(s.cell_length for s in log.lines) <= log.size.width, ([s.cell_length for s in log.lines], log.size)
