"""Pilot tests of the sync screen's air-gap part (issue 14): the new sync states in words, packing
the chosen runs into a bundle read back by the engine, a corrupt bundle refused with nothing
changed, a good one imported and offered for sync, receipts listed and imported. Every wait polls
with a deadline; engine calls are real (tar files on disk), only a held make_bundle stands in for
a slow pack."""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from ftmodel import bundle, receipts
from ftmodel.i18n import set_language
from ftmodel.sync import Result, ledger_path
from tests.tui.test_app import make_app, until
from tests.tui.test_screens import notes, offline_run
from tests.tui.test_workers import held
from tui.app import sync_summary
from tui.dialogs import AskScreen, ConfirmScreen, PickScreen, TextScreen
from tui.screens import SyncScreen
from tui.screens.sync_bundle import output_error

pytestmark = pytest.mark.anyio

RUN1, RUN2 = "sft-20260101-000000-0001", "sft-20260101-000100-0002"
KEY1 = f"runs/{RUN1}/wandb/offline-run-20260101_000000-aaaa1111"
KEY2 = f"runs/{RUN2}/wandb/offline-run-20260101_000000-bbbb2222"


def two_runs(ws: Path) -> None:
    offline_run(ws, RUN1, "aaaa1111")
    offline_run(ws, RUN2, "bbbb2222")


async def open_sync(app, pilot) -> SyncScreen:
    await pilot.press("w")
    await until(pilot, lambda: isinstance(app.screen, SyncScreen) and app.screen.offline, what="sync screen")
    return app.screen


def cells(screen: SyncScreen, row: int) -> list[str]:
    return [str(c) for c in screen.query_one("#sync-table").get_row_at(row)]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file's bytes (the engine's empty lock files aside: they say nothing about content)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def body(app) -> str:
    return str(app.screen.query_one("#text-body").render())


async def answer(app, pilot, text: str) -> None:
    """Type `text` into the open AskScreen (replacing its default) and press enter."""
    from textual.widgets import Input

    await until(pilot, lambda: isinstance(app.screen, AskScreen), what="a question")
    app.screen.query_one(Input).value = text
    await pilot.press("enter")


def test_output_path_stays_in_the_workspace_unless_typed_absolute(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    assert output_error(ws, "bundles/b.tar.gz") is None
    assert "outside the workspace" in output_error(ws, "../b.tar.gz")
    assert output_error(ws, str(tmp_path / "b.tar")) is None  # absolute, typed: the user named it
    assert "no folder" in output_error(ws, str(tmp_path / "nowhere" / "b.tar"))
    assert ".tar" in output_error(ws, "bundles/b.zip")
    (ws / "b.tar").write_bytes(b"")
    assert "exists" in output_error(ws, "b.tar")


def test_sync_done_counts_every_state():
    results = [
        Result("a", "synced"),
        Result("b", "partial", "1 artifact not committed"),
        Result("c", "busy"),
        Result("d", "interrupted"),
        Result("e", "failed"),
    ]
    text = sync_summary(results, Path("/w/.wandb/receipts/receipt-x.json"))
    assert "1 synced and verified, 1 failed" in text
    assert "1 synced, not whole" in text and "1 being synced elsewhere" in text and "1 interrupted" in text
    assert "receipt-x.json" in text


async def test_new_states_render_with_their_words_in_both_languages(ws):
    two_runs(ws)
    offline_run(ws, "sft-20260101-000200-0003", "cccc3333")
    offline_run(ws, "sft-20260101-000300-0004", "dddd4444")
    key3 = "runs/sft-20260101-000200-0003/wandb/offline-run-20260101_000000-cccc3333"
    key4 = "runs/sft-20260101-000300-0004/wandb/offline-run-20260101_000000-dddd4444"
    ledger_path(ws).parent.mkdir(parents=True, exist_ok=True)
    ledger_path(ws).write_text(
        json.dumps(
            {
                "version": 1,
                "runs": {
                    KEY1: {"state": "partial", "reason": "1 artifact not committed: eval_sft"},
                    key4: {"state": "failed", "reason": "cancelled during sync; nothing verified, run it again"},
                },
            }
        )
    )
    receipts.write_receipt(
        ws,
        [KEY2],
        {
            KEY2: {
                "state": "synced",
                "server": "http://127.0.0.1:9",
                "url": "http://127.0.0.1:9/e/p/runs/bbbb2222",
                "wandb_size": 1024,
            }
        },
    )
    app = make_app(ws)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_sync(app, pilot)
        now = time.time()
        app.sync.results[key3] = (Result(key3, "busy", "another sync (pid 4242) holds this run"), now)
        app.sync.results[key4] = (
            Result(key4, "interrupted", "cancelled during sync; nothing verified, run it again"),
            now,
        )
        screen.fill()
        assert "synced, not whole" in cells(screen, 0)[2] and "eval_sft" in cells(screen, 0)[4]
        assert "reached http://127.0.0.1:9 (receipt from" in cells(screen, 1)[2]
        assert "grown since" in cells(screen, 1)[4]  # 2048 bytes now, the receipt verified 1024
        assert cells(screen, 2)[2] == "being synced elsewhere" and "4242" in cells(screen, 2)[4]
        assert cells(screen, 3)[2] == "interrupted"
        status = str(screen.query_one("#sync-status").render())
        assert "1 not whole" in status and "1 reached the server per a receipt" in status
        assert "0 failed" in status and "1 interrupted" in status and "1 being synced elsewhere" in status
        set_language("zh")
        screen.fill()
        assert "已同步，但不完整" in cells(screen, 0)[2] and "已到达" in cells(screen, 1)[2]
        assert cells(screen, 2)[2] == "正在别处同步" and cells(screen, 3)[2] == "已中断"


async def test_pack_marked_runs_shows_the_plan_and_the_screen_answers_keys_while_packing(ws, monkeypatch):
    two_runs(ws)
    (ws / "runs" / RUN1 / "adapter").mkdir()
    (ws / "runs" / RUN1 / "adapter" / "adapter_model.safetensors").write_bytes(b"w" * 5000)
    release, packing = held(monkeypatch, "ftmodel.bundle.make_bundle")
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sync(app, pilot)
        await pilot.press("space")  # mark the first run only
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, PickScreen), what="whole or --new")
        await pilot.press("enter")  # whole runs
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="the plan")
        plan = body(app)
        assert RUN1 in plan and RUN2 not in plan
        assert "to carry: 4 file(s)" in plan  # state.json, config.toml, stage.log, the .wandb file
        assert "model weights left out: 4.9 KB" in plan
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, AskScreen), what="where to write")
        from textual.widgets import Input

        default = app.screen.query_one(Input).value
        assert default.startswith("bundles/bundle-") and default.endswith(".tar.gz")
        await answer(app, pilot, "../outside.tar.gz")  # refused: relative and out of the workspace
        assert isinstance(app.screen, AskScreen) and "outside the workspace" in str(
            app.screen.query_one("#ask-error").render()
        )
        await answer(app, pilot, "bundles/carry.tar.gz")
        await until(pilot, lambda: packing.is_set(), what="pack started")
        # The pack is held in its worker: the screen still answers keys.
        assert "packing 4 file(s)" in str(screen.query_one("#bundle-status").render())
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="receipts while packing")
        assert "no receipts yet" in body(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back while packing")
        await pilot.press("space")
        assert screen.marked  # a mark changed while the bundle is still being written
        assert not (ws / "bundles" / "carry.tar.gz").exists()
        release.set()
        await until(pilot, lambda: notes(app, "packed into"), timeout=30, what=f"bundle written {app.notes}")
        assert "bundle written" in str(screen.query_one("#bundle-status").render())
    out = ws / "bundles" / "carry.tar.gz"
    header = bundle.verify_bundle(out, ws)
    assert sorted(header["runs"]) == [RUN1]
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert f"{KEY1}/run-aaaa1111.wandb" in names
    assert not any("adapter" in n for n in names)  # no model weights by default


def make_source_bundle(tmp_path: Path, name: str = "carry.tar") -> Path:
    """A real bundle of one offline run, made by the engine in another workspace."""
    src = tmp_path / "box"
    offline_run(src, RUN1, "aaaa1111")
    return bundle.make_bundle(src, tmp_path / name).path


async def test_corrupt_bundle_is_refused_naming_the_file_and_nothing_changes(ws, tmp_path):
    offline_run(ws, RUN2, "bbbb2222")
    path = make_source_bundle(tmp_path)
    raw = bytearray(path.read_bytes())
    at = raw.index(b":W&B\xe1\xbe\x00")  # the .wandb file's content inside the (uncompressed) tar
    raw[at + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    before = snapshot(ws)
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sync(app, pilot)
        await pilot.press("i")
        await answer(app, pilot, str(path))
        await until(pilot, lambda: notes(app, "does not match"), timeout=30, what=f"refusal {app.notes}")
        assert notes(app, "run-aaaa1111.wandb: content does not match the manifest")
        assert "nothing imported" in str(screen.query_one("#bundle-status").render())
        assert app.screen is screen  # no import question after a refusal
    assert snapshot(ws) == before
    assert not (ws / "runs" / RUN1).exists()


async def test_import_a_bundle_then_offer_to_sync_its_runs(ws, tmp_path):
    offline_run(ws, RUN2, "bbbb2222")
    path = make_source_bundle(tmp_path, "carry.tar.gz")
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sync(app, pilot)
        await pilot.press("i")
        await answer(app, pilot, str(path))
        await until(pilot, lambda: isinstance(app.screen, TextScreen), timeout=30, what="verified header")
        assert "verified against its manifest" in body(app) and RUN1 in body(app)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=30, what="offer to sync")
        assert [r.run_id for r in screen.offline] == [RUN1, RUN2]
        assert notes(app, "1 run(s), 4 file(s) written")
        await pilot.press("n")  # not now
        await until(pilot, lambda: app.screen is screen, what="back")
    assert (ws / "runs" / RUN1 / "state.json").is_file()


async def test_receipts_are_listed_and_one_carried_back_is_imported(ws, tmp_path):
    two_runs(ws)
    receipts.write_receipt(
        ws,
        [KEY1],
        {
            KEY1: {
                "state": "synced",
                "server": "http://127.0.0.1:9",
                "url": "http://127.0.0.1:9/e/p/runs/aaaa1111",
                "wandb_size": 2048,
            }
        },
    )
    connected = tmp_path / "connected"
    carried = receipts.write_receipt(
        connected,
        [KEY2],
        {
            KEY2: {
                "state": "partial",
                "reason": "1 artifact missing",
                "server": "http://127.0.0.1:8",
                "wandb_size": 2048,
            }
        },
    )
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sync(app, pilot)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="receipts")
        shown = body(app)
        (only,) = receipts.list_receipts(ws)
        assert only.receipt_id in shown and only.host in shown and "http://127.0.0.1:9" in shown and RUN1 in shown
        await pilot.press("y")  # import a receipt file
        await answer(app, pilot, str(carried))
        await until(pilot, lambda: notes(app, "reached http://127.0.0.1:8"), timeout=30, what="receipt imported")
        await until(pilot, lambda: screen.offline[1].remote, what="list re-read")
        assert "reached http://127.0.0.1:8" in cells(screen, 1)[2] and "1 artifact missing" in cells(screen, 1)[4]
    assert len(receipts.list_receipts(ws)) == 2


async def test_a_run_another_sync_holds_shows_being_synced_elsewhere(ws):
    from ftmodel.sync_guard import run_lock
    from ftmodel.workspace import Workspace
    from tests.fake_wandb import closed_port_url

    two_runs(ws)
    app = make_app(ws)
    # Nothing is sent: the other syncer's lock is met before any request.
    app.sync.env = {
        "PATH": os.environ["PATH"],
        "WANDB_BASE_URL": closed_port_url(),
        "WANDB_API_KEY": "k" * 40,
        "NETRC": str(ws / "no-netrc"),
    }
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sync(app, pilot)
        with run_lock(Workspace(ws).wandb_home, "aaaa1111", RUN1):  # another syncer (this test) holds the run
            await pilot.press("s")  # the run under the cursor: the first
            await until(pilot, lambda: notes(app, "1 being synced elsewhere"), timeout=30, what=f"busy {app.notes}")
        await until(pilot, lambda: cells(screen, 0)[2] == "being synced elsewhere", what="busy shown")
        assert str(os.getpid()) in cells(screen, 0)[4]  # names the pid that holds it
        assert cells(screen, 1)[2] == "never synced"
