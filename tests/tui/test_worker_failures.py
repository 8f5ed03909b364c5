"""A worker that raises is told, never fatal (tui/workers.py): the notification names what failed and
why, the traceback lands in <workspace>/console.log, the screen that asked stays usable, and the
console's polls start again. One test per kind of worker: the console's polls, each workbench's
readers, the app's own work (launch, sync) and a dialog's.
"""

from __future__ import annotations

import importlib
import threading

import pytest

from tests.tui.fake_runs import make_run, sft_rows
from tests.tui.test_app import make_app, select_stage, until
from tests.tui.test_screens import ablation_summary, completions, offline_run
from tui.dialogs import SweepScreen
from tui.screens import AblationScreen, CompletionsScreen, ConfigScreen, QueueScreen, RunsScreen, SyncScreen

pytestmark = pytest.mark.anyio


def fail(monkeypatch, target: str, times: int | None = None) -> list:
    """Make `target` raise RuntimeError (the first `times` calls, or always); return the list of calls."""
    owner_name, name = target.rsplit(".", 1)
    head, _, rest = owner_name.partition(".")
    module_name, attrs = head, rest.split(".") if rest else []
    while attrs:  # the longest importable prefix is the module; the rest are attributes (a class)
        try:
            importlib.import_module(f"{module_name}.{attrs[0]}")
        except ImportError:
            break
        module_name = f"{module_name}.{attrs.pop(0)}"
    module = importlib.import_module(module_name)
    for attr in attrs:
        module = getattr(module, attr)
    real = getattr(module, name)
    calls = []
    lock = threading.Lock()

    def failing(*args, **kwargs):
        with lock:
            calls.append(args)
            n = len(calls)
        if times is None or n <= times:
            raise RuntimeError(f"injected failure in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)
    return calls


def told(app, what: str) -> bool:
    """Whether a notification said `<what> failed` with the injected error."""
    return any(
        title == f"{what} failed" and "RuntimeError: injected failure" in note
        for title, note in zip(app.titles, app.notes)
    )


async def test_a_failing_poll_is_told_and_starts_again_so_the_console_keeps_following(ws, monkeypatch):
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished", metrics=sft_rows(5))
    # The first scan (a plain thread while the app starts) and the poller's first one fail.
    calls = fail(monkeypatch, "tui.rundata.summary.WorkspaceScanner.scan", times=2)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: told(app, "following the runs"), what="the failure told")
        note = next(n for n in app.notes if "injected failure" in n)
        assert "it starts again in 2s" in note and "console.log" in note
        log = (ws / "console.log").read_text()
        assert "worker poll-runs" in log and "Traceback" in log and "injected failure in scan" in log
        await pilot.press("5")  # the console answers keys meanwhile
        await until(pilot, lambda: "log" in app.main.hidden_panels, what="key answered")
        await until(pilot, lambda: app.main.runs, timeout=15, what="the poll back, the run scanned")
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.store.rows == 5, what="metrics followed again")
        assert len(calls) >= 2 and app.is_running


async def test_a_poll_that_keeps_failing_is_told_once_not_at_every_restart(ws, monkeypatch):
    calls = fail(monkeypatch, "tui.rundata.summary.WorkspaceScanner.scan")
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(calls) >= 3, timeout=20, what="three restarts")
        assert told(app, "following the runs") and sum("injected failure" in n for n in app.notes) == 1
        assert app.is_running


READERS = [
    # key, screen, what it reads (patched to fail), what the notification says failed
    ("r", RunsScreen, "tui.screens.runs.run_rows", "reading the runs browser's rows"),
    ("g", CompletionsScreen, "tui.screens.completions.read_completions", "reading the completions"),
    ("w", SyncScreen, "ftmodel.sync.list_offline_runs", "listing the offline runs"),
    ("u", QueueScreen, "ftmodel.queue.read_queue", "reading the queue"),
    ("a", AblationScreen, "tui.screens.ablation.read_ablation", "reading the ablation matrix"),
]


@pytest.mark.parametrize("key,screen_type,target,what", READERS, ids=[r[1].__name__ for r in READERS])
async def test_a_failing_reader_is_told_and_its_screen_stays_usable(ws, monkeypatch, key, screen_type, target, what):
    monkeypatch.setattr(QueueScreen, "AUTOSTART", False)
    make_run(ws, "grpo-20260101-000000-0001", "grpo", "finished", files={"completions.jsonl": completions()})
    make_run(
        ws,
        "ablation-20260101-000001-0001",
        "ablation",
        "finished",
        files={"ablation_summary_1.json": ablation_summary()},
    )
    offline_run(ws, "sft-20260101-000002-0001", "aaaa1111")
    fail(monkeypatch, target)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.runs, what="scan")
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, screen_type), what=screen_type.__name__)
        screen = app.screen
        await until(pilot, lambda: told(app, what), what="the failure told")
        assert (ws / "console.log").exists()
        await pilot.press("question_mark")  # the screen still takes keys: help opens and closes
        await until(pilot, lambda: app.screen is not screen, what="help over the screen")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back on the screen")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, what="back to the console")
        assert app.is_running


async def test_a_failing_launch_is_told_and_a_failing_sync_leaves_the_app_ready_for_the_next(ws, monkeypatch):
    fail(monkeypatch, "ftmodel.launcher.start_stage")
    fail(monkeypatch, "ftmodel.sync.sync_runs")
    offline_run(ws, "sft-20260101-000002-0001", "aaaa1111")
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.runs, what="scan")
        await pilot.press("s")
        await until(pilot, lambda: told(app, "starting a stage"), what="launch failure told")
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, SyncScreen) and app.screen.offline, what="sync screen")
        await pilot.press("s")
        await until(pilot, lambda: told(app, "syncing runs to W&B"), what="sync failure told")
        await until(pilot, lambda: app.sync.busy is None, what="no sync left 'busy'")
        await pilot.press("s")  # a second sync can start (and fails the same way, told once a minute)
        await until(pilot, lambda: app.sync.busy is None and app.is_running, what="second sync done")


async def test_a_failing_dialog_worker_is_told_and_the_dialog_stays_usable(ws, monkeypatch, tmp_path):
    import shutil

    from tests.tui.fake_runs import DEFAULT_CONFIG

    config = tmp_path / "ftmodel.toml"
    shutil.copy(DEFAULT_CONFIG, config)
    fail(monkeypatch, "ftmodel.sweep.plan")
    app = make_app(ws, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfigScreen) and app.screen.doc, what="config editor")
        await pilot.press("ctrl+g")
        await until(pilot, lambda: isinstance(app.screen, SweepScreen), what="sweep dialog")
        dialog = app.screen
        await pilot.press(*"sft.seed=1,2", "enter")
        await until(pilot, lambda: told(app, "planning a sweep"), what="plan failure told")
        assert app.screen is dialog
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ConfigScreen), what="dialog closed")
