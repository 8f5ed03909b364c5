"""Nothing a run writes takes the console down or reaches the terminal raw (issue 20).

One workspace holds what a diverged run, a model, a dataset or a hand-edited file can leave behind
(tests/hostile_runs.py): NaN and infinite metrics, absurd numbers, wrong types, steps going back,
torn and non-UTF-8 lines, and text full of terminal control sequences, bad markup and a lone
surrogate. Every screen and dialog is opened on it; after each, the rendered screen must hold no raw
control character, show the escapes visibly (␛[2J), and the console must still answer keys.
"""

from __future__ import annotations

import json

import pytest

from tests.hostile_runs import (
    ABSURD,
    DIVERGED,
    ODD_NAME,
    RAW_CONTROL,
    diverged_rows,
    make_hostile_workspace,
)
from tests.tui.fake_runs import make_run, self_pid
from tests.tui.test_app import make_app, select_stage, status_text, until
from tui.dialogs import AskScreen, HelpScreen, PickScreen, TextScreen
from tui.screens import (
    AblationScreen,
    CompletionsScreen,
    ConfigScreen,
    OverlayScreen,
    QueueScreen,
    RunDetailScreen,
    RunsScreen,
    SyncScreen,
)
from tui.widgets.charts import ChartPanel

pytestmark = pytest.mark.anyio

VISIBLE_ESC = "␛[2J"


def assert_shown_not_obeyed(app, where: str, visible: bool = True) -> None:
    """The screen as rendered holds no raw control character, shows the escapes, and the app runs."""
    svg = app.export_screenshot()
    raw = sorted({repr(c) for c in RAW_CONTROL.findall(svg)})
    assert not raw, f"{where}: raw control characters reached the screen: {raw}"
    if visible:
        assert VISIBLE_ESC in svg, f"{where}: the hostile text is not shown"
    assert app.is_running, where
    failures = [n for n in app.notes if "failed" in n or "Error" in n]
    assert not failures, f"{where}: a worker failed: {failures}"


async def open_screen(app, pilot, key: str, kind, ready=lambda screen: True, what: str = ""):
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, kind) and ready(app.screen), what=what or kind.__name__)
    return app.screen


async def back_to(app, pilot, screen) -> None:
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is screen, what=f"back to {type(screen).__name__}")


async def test_every_screen_and_dialog_shows_hostile_runs_without_obeying_them(ws, monkeypatch):
    monkeypatch.setattr(QueueScreen, "AUTOSTART", False)
    config = make_hostile_workspace(ws)
    app = make_app(ws, config)
    async with app.run_test(size=(120, 40)) as pilot:
        console = app.main
        await until(pilot, lambda: len(console.runs) == 5, what="scan")
        # The main console on every stage with a run, the hostile-named run first (it is sft's newest).
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: console.selected_run == ODD_NAME and "␛[2J" in status_text(app), what="odd run")
        assert_shown_not_obeyed(app, "console, a run named with escapes")
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: console.selected_run == DIVERGED and console.store.rows, what="diverged run")
        await until(pilot, lambda: console.query_one("#log").line_count, what="its log")
        assert_shown_not_obeyed(app, "console, the diverged run")
        for stage in ("grpo", "evaluate", "ablation"):
            await select_stage(app, pilot, stage)
            await until(pilot, lambda: console.selected_run and console.follower, what=stage)
            await pilot.pause(0.3)
            assert_shown_not_obeyed(app, f"console, {stage}", visible=stage != "ablation")
        await select_stage(app, pilot, "evaluate")
        await until(pilot, lambda: console.query("#panel-results Table"), what="eval results")
        console.query_one("#panel-results").scroll_visible(animate=False)
        await pilot.pause(0.2)
        assert_shown_not_obeyed(app, "console, eval results")

        # The runs browser, a run's detail, an overlay, the clone and delete dialogs.
        runs = await open_screen(app, pilot, "r", RunsScreen, lambda s: len(s.rows) == 5)
        assert_shown_not_obeyed(app, "runs browser")
        table = runs.query_one("#runs-table")
        table.move_cursor(row=[r.id for r in runs.shown].index(ODD_NAME))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded, what="detail")
        assert_shown_not_obeyed(app, "run detail")
        await back_to(app, pilot, runs)
        table.move_cursor(row=[r.id for r in runs.shown].index(DIVERGED))
        await pilot.press("space")
        table.move_cursor(row=[r.id for r in runs.shown].index(ODD_NAME))
        await pilot.press("space")
        await open_screen(app, pilot, "o", OverlayScreen, lambda s: s.metrics, what="overlay")
        assert_shown_not_obeyed(app, "overlay", visible=False)
        await pilot.press("m")  # every metric, the one named with escapes too
        await pilot.pause(0.3)
        assert_shown_not_obeyed(app, "overlay, next metric", visible=False)
        await back_to(app, pilot, runs)
        table.move_cursor(row=[r.id for r in runs.shown].index(ODD_NAME))
        await open_screen(app, pilot, "k", AskScreen, what="clone dialog")
        assert_shown_not_obeyed(app, "clone dialog")
        await back_to(app, pilot, runs)
        await open_screen(app, pilot, "d", TextScreen, what="delete dialog")
        assert_shown_not_obeyed(app, "delete dialog")
        await pilot.press("n")
        await until(pilot, lambda: app.screen is runs, what="delete answered")
        await back_to(app, pilot, console)

        # GRPO completions and one completion's dialog.
        await select_stage(app, pilot, "grpo")
        await until(pilot, lambda: console.selected_run == ABSURD, what="grpo run")
        completions = await open_screen(app, pilot, "g", CompletionsScreen, lambda s: s.rows)
        assert_shown_not_obeyed(app, "completions")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="completion dialog")
        assert_shown_not_obeyed(app, "completion dialog")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is completions, what="back to completions")
        await back_to(app, pilot, console)

        # Ablation (a malformed summary: said, not fatal), sync, queue and its sweep picker.
        ablation = await open_screen(app, pilot, "a", AblationScreen, lambda s: s.shown_run, what="ablation")
        assert "malformed" in str(ablation.query_one("#abl-status").render())
        assert_shown_not_obeyed(app, "ablation", visible=False)
        await back_to(app, pilot, console)
        await open_screen(app, pilot, "w", SyncScreen, lambda s: s.offline, what="sync")
        assert_shown_not_obeyed(app, "sync")
        await back_to(app, pilot, console)
        queue = await open_screen(app, pilot, "u", QueueScreen, lambda s: s.data, what="queue")
        assert_shown_not_obeyed(app, "queue")
        await open_screen(app, pilot, "v", PickScreen, what="sweep picker")
        assert_shown_not_obeyed(app, "sweep picker", visible=False)
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is queue and queue.sweep_id, what="a sweep picked")
        await pilot.pause(0.3)
        assert_shown_not_obeyed(app, "queue with a sweep", visible=False)
        await back_to(app, pilot, console)

        # The config editor on the section whose value holds escapes, and the help.
        editor = await open_screen(app, pilot, "c", ConfigScreen, lambda s: s.doc, what="config editor")
        await editor.show_section("wandb")
        await pilot.pause(0.2)
        assert_shown_not_obeyed(app, "config editor")
        await back_to(app, pilot, console)
        await open_screen(app, pilot, "question_mark", HelpScreen, what="help")
        assert_shown_not_obeyed(app, "help", visible=False)
        await pilot.press("escape")

        # Notifications: an error quoting a run's text is shown as text too.
        app.notify("boom " + "\x1b[2J [/] \u202e", title="\x1b]0;t\x07")
        await pilot.pause(0.2)
        assert_shown_not_obeyed(app, "a notification")


async def test_a_diverged_run_is_marked_on_its_chart_and_in_its_status(ws):
    make_run(ws, DIVERGED, "sft", "finished", metrics=diverged_rows(40, from_step=10), progress=(40, 40))
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.store.rows == 40 and app.main.charts_ready, what="metrics")
        loss = app.query_one("#panel-loss", ChartPanel)
        await until(pilot, lambda: loss.drawn_version == app.main.store.version, what="loss drawn")
        # The chart draws the 9 finite points and says where the rest went, in words.
        assert len(app.main.store.get("loss").points(200)[0]) == 9
        assert str(loss.border_subtitle) == "loss NaN from step 10 (31×)"
        lr = app.query_one("#panel-lr", ChartPanel)
        assert "grad_norm inf from step 10 (31×)" in str(lr.border_subtitle)
        hints = str(app.query_one("#hints").render())
        assert "loss NaN from step 10 (31×)" in hints and "grad_norm inf from step 10 (31×)" in hints
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, what="runs browser")
        row = app.screen.query_one("#runs-table").get_row_at(0)
        assert str(row[RunsScreen.COLUMNS.index("loss")]) == "nan"  # the table says what the file says


async def test_a_live_run_that_diverges_is_followed_and_marked(ws):
    pid, start = self_pid()
    path = make_run(ws, DIVERGED, "sft", "running", pid=pid, proc_start=start, metrics=[], progress=(0, 40))
    rows = diverged_rows(40, from_step=10)
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.selected_run == DIVERGED and app.main.follower, what="following")
        for start_row in range(0, 40, 8):  # the trainer appends as it goes; NaN from step 10
            with open(path / "metrics.jsonl", "a") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows[start_row : start_row + 8])
            await until(pilot, lambda n=start_row + 8: app.main.store.rows == n, what=f"{start_row + 8} rows")
        await until(pilot, lambda: "loss NaN from step 10 (31×)" in str(app.query_one("#hints").render()), what="note")
        await pilot.press("5")  # keys still answered: the log panel hides
        await until(pilot, lambda: not app.query_one("#panel-log").display, what="log panel hidden")
        assert app.is_running


def test_the_console_makes_tables_and_logs_only_from_the_widgets_that_show_text_safely():
    """A bare DataTable reads str cells as markup, a bare Log or RichLog writes control characters:
    tui/ builds tables with Table (tui/widgets/tables.py) and logs with LogPanel (tui/widgets/log.py)."""
    import ast
    from pathlib import Path

    tui = Path(__file__).resolve().parents[2] / "tui"
    allowed = {"DataTable": "widgets/tables.py", "Log": None, "RichLog": "widgets/log.py"}
    found = []
    for path in tui.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in allowed:
                if allowed[node.func.id] is None or not path.as_posix().endswith(allowed[node.func.id]):
                    found.append(f"{path.relative_to(tui)}:{node.lineno} {node.func.id}(…)")
    assert not found, found
