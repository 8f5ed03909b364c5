"""Pilot tests of the workbench screens (config editor, runs, sync, ablation, completions) on fixed
fake run directories; every wait polls with a deadline."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from ftmodel import config
from ftmodel.reports import read_ablation
from tests.tui.fake_runs import DEFAULT_CONFIG, make_run, self_pid, sft_rows
from tests.tui.test_app import make_app, until
from tui.configdoc import ConfigDocument
from tui.dialogs import AskScreen, PickScreen, TextScreen
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

pytestmark = pytest.mark.anyio


@pytest.fixture
def cfg_path(tmp_path):
    path = tmp_path / "edit.toml"
    shutil.copy(DEFAULT_CONFIG, path)
    return path


async def open_config(app, pilot, section: str) -> ConfigScreen:
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, ConfigScreen) and app.screen.doc, what="config editor")
    screen = app.screen
    sections = screen.query_one("#cfg-sections")
    sections.highlighted = list(config.SECTIONS).index(section)
    await until(
        pilot,
        lambda: screen.section == section and screen.query(f"#fld-{section}-seed, #fld-{section}-{_first(section)}"),
        what=f"section {section}",
    )
    return screen


def _first(section: str) -> str:
    return config.field_specs(section)[0][0]


async def type_into(pilot, screen, section: str, key: str, text: str) -> None:
    field = screen.query_one(f"#fld-{section}-{key}")
    field.focus()
    field.value = ""
    await pilot.pause()
    field.value = text
    await pilot.pause()


def stop_run(path: Path) -> None:
    """Stop a real stage a test started (it builds the tiny model: no need to wait for it)."""
    from ftmodel.launcher import stop
    from ftmodel.rundir import Run

    stop(Run(path), int_wait=10, term_wait=5)


def notes(app, text: str) -> bool:
    return any(text in n for n in app.notes)


# ---------------------------------------------------------------- config editor


async def test_bad_values_are_refused_inline_with_the_reason(ws, cfg_path):
    before = cfg_path.read_bytes()
    app = make_app(ws, cfg_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(app, pilot, "sft")
        error = screen.query_one("#err-sft-max_steps")
        await type_into(pilot, screen, "sft", "max_steps", "lots")
        await until(pilot, lambda: "expected an integer" in str(error.render()), what="type error")
        await type_into(pilot, screen, "sft", "max_steps", "-3")
        await until(pilot, lambda: "below the minimum 0" in str(error.render()), what="range error")
        assert screen.query_one("#fld-sft-max_steps").has_class("invalid")
        assert "1 invalid: sft.max_steps" in screen.banner_text()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: notes(app, "fix the invalid fields first"), what="save refused")
        assert not isinstance(app.screen, TextScreen)
        await type_into(pilot, screen, "sft", "max_steps", "40")
        await until(pilot, lambda: str(error.render()) == "", what="error cleared")
        assert screen.doc.pending == {("sft", "max_steps"): 40}
    assert cfg_path.read_bytes() == before


async def test_enum_choices_come_from_the_schema_and_unknown_ones_are_refused(ws, cfg_path):
    doc = ConfigDocument(cfg_path)
    with pytest.raises(config.ConfigError, match="not one of"):
        doc.edit("model", "dtype", "fp8")
    assert ("model", "dtype") in doc.invalid
    app = make_app(ws, cfg_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(app, pilot, "model")
        select = screen.query_one("#fld-model-dtype")
        assert [str(v) for _, v in select._options] == ["float32", "bfloat16", "float16", "auto"]
        select.value = "bfloat16"
        await until(pilot, lambda: screen.doc.pending.get(("model", "dtype")) == "bfloat16", what="select edit")
        switch = screen.query_one("#fld-model-trust_remote_code")
        switch.value = True
        await until(pilot, lambda: screen.doc.pending.get(("model", "trust_remote_code")) is True, what="switch")
        assert "Allow model code" in "".join(str(s.render()) for s in screen.query(".fld-help"))


async def test_save_shows_the_diff_and_keeps_comments_and_key_order(ws, cfg_path):
    before = cfg_path.read_text()
    app = make_app(ws, cfg_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(app, pilot, "sft")
        await type_into(pilot, screen, "sft", "learning_rate", "1e-3")
        await until(pilot, lambda: screen.doc.dirty, what="pending edit")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="diff")
        diff = str(app.screen.query_one("#text-body").render())
        assert "-learning_rate = 5e-3" in diff and "+learning_rate = 0.001" in diff
        await pilot.press("y")
        await until(pilot, lambda: notes(app, "saved"), what="saved")
        assert app.cfg.sft.learning_rate == 0.001
    after = cfg_path.read_text()
    assert after == before.replace("learning_rate = 5e-3", "learning_rate = 0.001", 1)
    assert "# Training the embeddings too keeps the answer format" in after


async def test_saving_unchanged_leaves_the_file_byte_identical(ws, cfg_path):
    before, mtime = cfg_path.read_bytes(), cfg_path.stat().st_mtime_ns
    app = make_app(ws, cfg_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(app, pilot, "sft")
        await type_into(pilot, screen, "sft", "max_steps", "7")
        await type_into(pilot, screen, "sft", "max_steps", "500")  # back to the file's value: no edit
        assert not screen.doc.dirty
        await pilot.press("ctrl+s")
        await until(pilot, lambda: notes(app, "nothing to save"), what="nothing to save")
    assert cfg_path.read_bytes() == before and cfg_path.stat().st_mtime_ns == mtime


async def test_a_file_changed_on_disk_is_detected_and_not_overwritten(ws, cfg_path):
    app = make_app(ws, cfg_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(app, pilot, "sft")
        await type_into(pilot, screen, "sft", "max_steps", "42")
        theirs = cfg_path.read_text().replace("batch_size = 16", "batch_size = 4")
        cfg_path.write_text(theirs)
        await until(pilot, lambda: "CHANGED ON DISK" in screen.banner_text(), what="disk change noticed")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="reload question")
        assert "changed on disk" in str(app.screen.query_one("#text-body").render())
        assert cfg_path.read_text() == theirs  # not overwritten
        await pilot.press("y")
        await until(pilot, lambda: not screen.doc.dirty and screen.doc.value("sft", "batch_size") == 4, what="reloaded")
        assert str(screen.query_one("#fld-sft-max_steps").value) == "500"
    assert cfg_path.read_text() == theirs


async def test_external_editor_edits_are_validated_on_return(ws, cfg_path, tmp_path, monkeypatch):
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text().replace('max_steps = 500', 'max_steps = -5'))\n"
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    app = make_app(ws, cfg_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(app, pilot, "sft")
        await pilot.press("ctrl+e")
        await until(pilot, lambda: screen.load_error, what="validation after the editor")
        assert "sft.max_steps" in screen.load_error and "below the minimum" in screen.load_error
        assert "file error" in screen.banner_text()


async def test_launch_with_unsaved_edits_records_them_in_the_snapshot(ws, cfg_path):
    before = cfg_path.read_bytes()
    app = make_app(ws, cfg_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(app, pilot, "data")
        await type_into(pilot, screen, "data", "n_train", "48")
        await pilot.press("ctrl+l")
        await until(pilot, lambda: isinstance(app.screen, PickScreen), what="stage picker")
        await pilot.press("enter")  # the first stage: prepare
        await until(pilot, lambda: notes(app, "started"), timeout=30, what="launched")
    runs = list((ws / "runs").glob("prepare-*"))
    assert len(runs) == 1
    snapshot = config.load(runs[0] / "config.toml")
    assert snapshot.data.n_train == 48
    assert "data.n_train=48" in json.loads((runs[0] / "state.json").read_text())["argv"]
    assert cfg_path.read_bytes() == before  # a one-off run: the file is untouched
    stop_run(runs[0])


# ---------------------------------------------------------------- runs browser


def eval_report(acc: float) -> dict:
    return {
        "total": 10,
        "format_accuracy": 1.0,
        "answer_accuracy": acc,
        "per_qtype": {"tf": {"total": 10, "format_accuracy": 1.0, "answer_accuracy": acc}},
    }


def fake_workspace(ws: Path) -> None:
    make_run(
        ws,
        "sft-20260101-000000-0001",
        "sft",
        "finished",
        metrics=sft_rows(20),
        created=1764000000.0,
        log=["sft says hello"],
    )
    make_run(ws, "sft-20260101-000100-0002", "sft", "failed", metrics=sft_rows(5), created=1764000100.0)
    make_run(
        ws,
        "evaluate-20260101-000200-0003",
        "evaluate",
        "finished",
        created=1764000200.0,
        files={"eval_grpo.json": eval_report(0.4)},
    )
    pid, start = self_pid()
    make_run(ws, "grpo-20260101-000300-0004", "grpo", "running", pid=pid, proc_start=start, created=1764000300.0)


async def open_runs(app, pilot) -> RunsScreen:
    await until(pilot, lambda: app.main.runs, what="scan")
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, what="runs browser")
    return app.screen


async def test_runs_table_shows_every_run_with_metrics_and_filters(ws):
    fake_workspace(ws)
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(app, pilot)
        table = screen.query_one("#runs-table")
        assert table.row_count == 4
        by_id = {r.id: r.cells() for r in screen.rows}
        assert by_id["sft-20260101-000000-0001"][6] == f"{7.0 / 20:.3g}"  # final loss
        assert by_id["evaluate-20260101-000200-0003"][8] == "0.4"  # answer accuracy from the report
        assert by_id["grpo-20260101-000300-0004"][2] == "running"
        await pilot.press("f", "f", "f", "f")  # all → prepare → distill → filter → sft
        await until(pilot, lambda: screen.stage_filter == "sft" and table.row_count == 2, what="stage filter")
        await pilot.press("t", "t", "t", "t")  # all → queued → running → finished → failed
        await until(pilot, lambda: screen.state_filter == "failed" and table.row_count == 1, what="state filter")
        await pilot.press("t", "t", "t")  # → cancelled → lost → all
        await until(pilot, lambda: table.row_count == 2, what="state filter off")
        await pilot.press("slash")
        await pilot.press(*"0002")
        await until(pilot, lambda: table.row_count == 1, what="text filter")
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen) and app.screen.focused is table


async def test_run_details_overlay_and_delete(ws):
    fake_workspace(ws)
    app = make_app(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_runs(app, pilot)
        table = screen.query_one("#runs-table")
        order = [r.id for r in screen.shown]
        table.move_cursor(row=order.index("sft-20260101-000000-0001"))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded, what="details")
        detail = app.screen
        rendered = str(detail.query_one("#detail-config").render())
        current = config.load(DEFAULT_CONFIG)  # the snapshot is diffed against the current default config
        assert ("grpo.beta: run 0.04" in rendered) == (current.grpo.beta != 0.04)  # only keys that differ
        assert f"sft.max_steps: run 0 → now {current.sft.max_steps}" in rendered
        await until(pilot, lambda: detail.query_one("#detail-log").line_count, what="log tail")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back")
        # overlay two runs' loss
        table.move_cursor(row=order.index("sft-20260101-000000-0001"))
        await pilot.press("space")
        table.move_cursor(row=order.index("sft-20260101-000100-0002"))
        await pilot.press("space")
        assert screen.marked == {"sft-20260101-000000-0001", "sft-20260101-000100-0002"}
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OverlayScreen) and app.screen.drawn, what="overlay")
        assert app.screen.metric == "loss" and app.screen.drawn == 2
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back")
        # an active run is never deleted
        order = [r.id for r in screen.shown]
        table.move_cursor(row=order.index("grpo-20260101-000300-0004"))
        await pilot.press("d")
        await until(pilot, lambda: notes(app, "stop it before deleting"), what="refused")
        assert (ws / "runs" / "grpo-20260101-000300-0004").exists()
        # a finished one after confirmation
        table.move_cursor(row=order.index("sft-20260101-000100-0002"))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="confirmation")
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, what="kept")
        assert (ws / "runs" / "sft-20260101-000100-0002").exists()
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="confirmation")
        await pilot.press("y")
        await until(pilot, lambda: not (ws / "runs" / "sft-20260101-000100-0002").exists(), what="deleted")


async def test_clone_validates_the_change_and_relaunches_with_it(ws):
    make_run(ws, "prepare-20260101-000000-0001", "prepare", "finished")
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(app, pilot)
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, AskScreen), what="clone prompt")
        ask = app.screen
        await pilot.press(*"data.n_train=x")
        await until(
            pilot, lambda: "expected an integer" in str(ask.query_one("#ask-error").render()), what="inline refusal"
        )
        await pilot.press("enter")
        assert app.screen is ask
        for _ in "x":
            await pilot.press("backspace")
        await pilot.press(*"40")
        await pilot.press("enter")
        await until(pilot, lambda: notes(app, "started"), timeout=30, what="clone launched")
        assert app.screen is screen
    clones = [p for p in (ws / "runs").glob("prepare-*") if p.name != "prepare-20260101-000000-0001"]
    assert len(clones) == 1 and config.load(clones[0] / "config.toml").data.n_train == 40
    stop_run(clones[0])


# ---------------------------------------------------------------- sync


def offline_run(ws: Path, run_id: str, wandb_id: str) -> None:
    make_run(ws, run_id, "sft", "finished")
    d = ws / "runs" / run_id / "wandb" / f"offline-run-20260101_000000-{wandb_id}"
    d.mkdir(parents=True)
    (d / f"run-{wandb_id}.wandb").write_bytes(b":W&B\xe1\xbe\x00".ljust(2048, b"\0"))  # a log with no record yet


async def test_sync_lists_offline_runs_and_reports_failures_with_the_reason(ws):
    offline_run(ws, "sft-20260101-000000-0001", "aaaa1111")
    offline_run(ws, "sft-20260101-000100-0002", "bbbb2222")
    app = make_app(ws)
    app.sync.env = {"PATH": os.environ["PATH"], "NETRC": str(ws / "no-netrc")}  # no server configured
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, SyncScreen) and app.screen.offline, what="sync screen")
        screen = app.screen
        table = screen.query_one("#sync-table")
        assert table.row_count == 2
        assert "never synced" in str(table.get_row_at(0)[2]) and "2.0 KB" in str(table.get_row_at(0)[3])
        await pilot.press("space")  # mark the first, cursor moves on
        await pilot.press("s")
        await until(pilot, lambda: notes(app, "0 synced and verified, 1 failed"), timeout=30, what="sync done")
        bar = screen.query_one("#sync-progress")
        assert bar.total == 1 and bar.progress == 1  # advanced by the engine's result event, not parsed text
        await until(pilot, lambda: screen.offline and screen.offline[0].state == "failed", what="ledger re-read")
        assert "WANDB_BASE_URL" in screen.offline[0].reason
        assert screen.offline[1].state == "never"
        assert "failed" in str(table.get_row_at(0)[2]) and "WANDB_BASE_URL" in str(table.get_row_at(0)[4])
        await pilot.press("f")  # retry failures: only the failed one
        await until(
            pilot,
            lambda: sum("synced and verified" in n for n in app.notes) == 2,
            timeout=30,
            what=f"retry done {app.notes}",
        )
        assert screen.offline[1].state == "never"


# ---------------------------------------------------------------- ablation


def ablation_summary() -> dict:
    def res(fmt, ans):
        return {
            "total": 10,
            "format_accuracy": fmt,
            "answer_accuracy": ans,
            "per_qtype": {
                "tf": {"total": 4, "format_accuracy": fmt, "answer_accuracy": ans},
                "mc": {"total": 6, "format_accuracy": fmt, "answer_accuracy": ans / 2},
            },
        }

    return {"variants": {"base": res(0.0, 0.1), "sft_only": res(1.0, 0.3), "sft_grpo": res(1.0, 0.5)}}


async def test_ablation_matrix_with_deltas_exports_markdown(ws):
    run = make_run(
        ws,
        "ablation-20260101-000000-0001",
        "ablation",
        "finished",
        files={"ablation_summary_20260101_000000.json": ablation_summary()},
    )
    matrix = read_ablation(run)
    assert matrix.columns() == [
        "qtype",
        "n",
        "base fmt",
        "base ans",
        "sft_only fmt",
        "sft_only ans",
        "sft_grpo fmt",
        "sft_grpo ans",
    ]
    assert matrix.table()[-1] == [
        "overall",
        "10",
        "0.00",
        "0.10",
        "1.00 (+1.00)",
        "0.30 (+0.20)",
        "1.00 (+1.00)",
        "0.50 (+0.40)",
    ]
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.runs, what="scan")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AblationScreen) and app.screen.matrix, what="matrix")
        table = app.screen.query_one("#abl-matrix")
        assert table.row_count == 3 and str(table.get_row_at(0)[0]) == "mc"
        # Sized from the data when filled, never left at the header's five cells to be measured later.
        qtype = table.ordered_columns[0]
        assert not qtype.auto_width and qtype.width == len("overall")
        await pilot.press("e")
        await until(pilot, lambda: notes(app, "ablation_matrix.md"), what="export")
    md = (run / "ablation_matrix.md").read_text()
    assert "| overall | 10 | 0.00 | 0.10 | 1.00 (+1.00) |" in md


async def test_ablation_launch_passes_variants_and_judge_switch(ws):
    app = make_app(ws)
    launched = []
    app._launch = lambda stage, cfg, args, argv: launched.append((stage, cfg, args, argv))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AblationScreen), what="ablation screen")
        screen = app.screen
        screen.query_one("#abl-sft_only").value = False
        await pilot.press("l")
        await until(pilot, lambda: launched, what="launch")
        stage, cfg, args, argv = launched[0]
        assert stage == "ablation" and cfg.ablation.variants == ["base", "sft_grpo"] and args == {"no_judge": True}
        assert "--no-judge" in argv
        await pilot.press("j", "l")
        await until(pilot, lambda: len(launched) == 2, what="second launch")
        assert launched[1][2] == {"no_judge": False} and launched[1][1].judge.enabled


async def test_ablation_launch_without_adapters_shows_the_preflight_error(ws):
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AblationScreen), what="ablation screen")
        await pilot.press("l")
        await until(
            pilot, lambda: any("sft" in n and "first" in n for n in app.notes), timeout=20, what="preflight error"
        )
    assert not list((ws / "runs").glob("ablation-*")) if (ws / "runs").exists() else True


# ---------------------------------------------------------------- GRPO completions


def completions(n_steps: int = 3) -> str:
    rows = []
    for step in range(1, n_steps + 1):
        for i, (qtype, fmt, acc) in enumerate((("tf", 1.0, 1.0), ("tf", 1.0, 0.0), ("mc", 0.0, 0.0))):
            rows.append(
                {
                    "step": step,
                    "question": f"q{step}-{i}",
                    "answer": "A",
                    "qtype": qtype,
                    "completion": f"<think>t</think><answer>{'A' if acc else 'B'}</answer> s{step}",
                    "rewards": {"format_reward": fmt, "accuracy_reward": acc},
                }
            )
    return "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 9, "broken'


async def test_completions_browser_filters_by_reward_qtype_and_text(ws):
    make_run(ws, "grpo-20260101-000000-0001", "grpo", "finished", files={"completions.jsonl": completions()})
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.runs, what="scan")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, CompletionsScreen) and app.screen.rows, what="rows")
        screen = app.screen
        table = screen.query_one("#comp-table")
        assert table.row_count == 9
        assert list(map(str, table.get_row_at(0)[:6])) == ["1", "tf", "1.00", "1.00", "—", "2.00"]
        await pilot.press("z")
        await until(pilot, lambda: table.row_count == 3, what="reward 0 only")
        assert {str(table.get_row_at(i)[1]) for i in range(3)} == {"mc"}
        await pilot.press("z", "t", "t")  # all → mc → tf
        await until(pilot, lambda: screen.qtype == "tf" and table.row_count == 6, what="qtype filter")
        await pilot.press("slash", *"s3")
        await until(pilot, lambda: table.row_count == 2, what="text filter")
        await pilot.press("enter")  # leaves the filter
        await pilot.press("enter")  # opens the completion
        await until(pilot, lambda: isinstance(app.screen, TextScreen), what="full completion")
        assert "gold: A" in str(app.screen.query_one("#text-body").render())


async def test_workbench_keys_do_not_trigger_console_actions_and_are_in_help(ws):
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="runs")
        await pilot.press("s", "p", "x")  # console keys: nothing starts under a workbench screen
        await pilot.pause(0.3)
        assert not any("starting" in n for n in app.notes)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RunsScreen), what="back to the console")
    text = app.help_text()
    for words in (
        "config editor (c)",
        "ctrl+s",
        "Overlay",
        "Retry failed",
        "Export .md",
        "Reward 0",
        "queue and sweeps (u)",
        "Move up",
        "ctrl+g",
    ):
        assert words in text
    for cls in (ConfigScreen, RunsScreen, SyncScreen, AblationScreen, CompletionsScreen, QueueScreen):
        for b in cls.BINDINGS:
            assert b.id and b.description, b


async def test_the_packaged_default_is_never_written_from_the_editor(ws):
    from ftmodel.profiles import PACKAGE_DIR

    packaged = PACKAGE_DIR / "default.toml"
    before = packaged.read_bytes()
    assert ConfigDocument(packaged).packaged and not ConfigDocument(DEFAULT_CONFIG).packaged
    app = make_app(ws, packaged)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(app, pilot, "sft")
        await type_into(pilot, screen, "sft", "max_steps", "40")
        await until(pilot, lambda: screen.doc.pending == {("sft", "max_steps"): 40}, what="edit")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: notes(app, "packaged default"), what="save refused")
    assert packaged.read_bytes() == before
