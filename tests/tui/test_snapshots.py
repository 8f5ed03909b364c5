"""SVG snapshots of the console and its five workbench screens on fixed data with no clocks.

Everything a screen could take from the moment or the machine is pinned: run times come from
fixed `created`/`started`/`ended` values, "now" for durations of unended runs is patched, the time
zone is UTC, the config and workspace are relative paths (shown as such in the header), the theme
is fixed and NO_COLOR/WANDB_MODE are removed from the environment.

A snapshot is `tests/tui/__snapshots__/<name>.svg`. To (re)write them after an intended change:

    FTMODEL_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/tui/test_snapshots.py

then look at the changed SVGs (any browser shows them) before committing. A mismatch leaves the
actual SVG next to the test's tmp dir and names it in the failure.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from ftmodel import config
from ftmodel.sentinel import Facts
from tests.tui.fake_runs import DEFAULT_CONFIG, dead_pid, grpo_rows, make_run, sentinel_alerts, sft_rows
from tests.tui.test_app import select_stage, until
from tests.tui.test_screens import ablation_summary, completions, eval_report, offline_run
from tui.app import FtmodelConsole
from tui.screens import AblationScreen, CompletionsScreen, ConfigScreen, RunsScreen, SyncScreen
from tui.widgets.charts import ChartPanel

pytestmark = pytest.mark.anyio

SNAPSHOTS = Path(__file__).parent / "__snapshots__"
UPDATE = os.environ.get("FTMODEL_UPDATE_SNAPSHOTS", "") not in ("", "0")
NOW = 1764000600.0  # "now" for the duration of a run that never ended
THEME = "textual-dark"


@pytest.fixture
def pinned(tmp_path, monkeypatch):
    """Run in tmp_path with a relative config (`ftmodel.toml`) and workspace (`ws`), UTC, fixed colours."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(DEFAULT_CONFIG, tmp_path / "ftmodel.toml")
    for name in ("NO_COLOR", "WANDB_MODE", "WANDB_BASE_URL", "TEXTUAL_THEME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr("tui.rundata.table._now", lambda: NOW)
    yield Path("ws")
    monkeypatch.undo()
    time.tzset()


def make_app(lang: str | None = None) -> FtmodelConsole:
    app = FtmodelConsole(
        config.load(Path("ftmodel.toml")), "ftmodel.toml", Path("ws"), gpu=False, watch_terminal=False, lang=lang
    )
    app.theme = THEME
    return app


def fake_workspace(ws: Path) -> None:
    """One run of every stage: a finished pipeline up to GRPO, a failed evaluate, a lost export."""
    t = 1764000000.0
    make_run(ws, "prepare-20251124-160000-0001", "prepare", "finished", created=t, log=["prepared 160 rows"])
    make_run(ws, "distill-20251124-160100-0002", "distill", "finished", created=t + 60)
    make_run(ws, "filter-20251124-160200-0003", "filter", "finished", created=t + 120)
    make_run(
        ws,
        "sft-20251124-160300-0004",
        "sft",
        "finished",
        created=t + 180,
        metrics=sft_rows(40),
        progress=(40, 40),
        log=["sft step 40/40", "saved adapter"],
    )
    rows = grpo_rows(30)
    for i, row in enumerate(rows):  # shapes for the charts, not flat lines
        row.update(
            loss=0.02 - 0.0005 * i,
            reward=0.6 + 0.03 * i,
            accuracy_reward=0.1 + 0.02 * i,
            kl=0.001 * i,
            kl_divergence=0.001 * i,
            **{"completions/clipped_ratio": 0.5},  # half the completions cut: the sentinel's alert below
        )
    grpo = make_run(
        ws,
        "grpo-20251124-160400-0005",
        "grpo",
        "finished",
        created=t + 240,
        metrics=rows,
        progress=(30, 30),
        log=["grpo step 30/30", "saved adapter"],
        files={"completions.jsonl": completions(), "eval_grpo.json": eval_report(0.4)},
    )
    sentinel_alerts(grpo, "grpo", rows, Facts(max_completion_length=64))
    make_run(
        ws,
        "evaluate-20251124-160500-0006",
        "evaluate",
        "failed",
        created=t + 300,
        exit_code=2,
        error="no GRPO adapter: run `ftmodel grpo` first",
        log=["loading", "error: no GRPO adapter"],
    )
    # Half way: Textual's Bar quantises a percentage to half cells only when it is set after layout,
    # so a value like 30% renders one of two ways depending on timing; 50% is exact either way.
    make_run(
        ws,
        "export-20251124-160600-0007",
        "export",
        "running",
        created=t + 360,
        pid=dead_pid(),
        proc_start=1,
        progress=(5, 10),
        log=[f"export shard {i}" for i in range(3)] + ["last words"],
    )
    make_run(
        ws,
        "ablation-20251124-160700-0008",
        "ablation",
        "finished",
        created=t + 420,
        files={"ablation_summary_20251124_160700.json": ablation_summary()},
    )
    offline_run(ws, "sft-20251124-150000-0009", "aaaa1111")  # an older sft run with an offline wandb dir


def svg_text(svg: str) -> str:
    """The characters of an exported screenshot, row by row (for readable failure diffs)."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, body in re.findall(r'<text[^>]*?x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(y), []).append((float(x), body))
    import html

    return "\n".join("".join(html.unescape(b) for _, b in sorted(parts)) for _, parts in sorted(rows.items()))


def assert_snapshot(app, name: str, tmp_path: Path) -> None:
    """Compare the app's screenshot with `__snapshots__/<name>.svg` (or write it when updating)."""
    svg = app.export_screenshot(title=name)
    path = SNAPSHOTS / f"{name}.svg"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"no snapshot {path.name}; run with FTMODEL_UPDATE_SNAPSHOTS=1 to write it")
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg)
        return
    expected = path.read_text()
    if svg != expected:
        actual = tmp_path / f"{name}.actual.svg"
        actual.write_text(svg)
        diff = "\n".join(
            difflib.unified_diff(
                svg_text(expected).splitlines(), svg_text(svg).splitlines(), "expected", "actual", lineterm="", n=1
            )
        )
        pytest.fail(f"{path.name} differs (actual: {actual}); text diff:\n{diff or '(styles only)'}")


async def settle(app, pilot) -> None:
    """Wait until every visible chart has drawn the loaded metrics and the screen stops changing."""
    if app.main.store.rows:
        await until(pilot, lambda: app.main.charts_ready, what="plotext")
        await until(
            pilot,
            lambda: all(p.drawn_version == app.main.store.version for p in app.main.query(ChartPanel) if p.display),
            what="charts drawn",
        )
    last, same = None, 0
    deadline = time.monotonic() + 10
    while same < 3 and time.monotonic() < deadline:  # three identical frames in a row
        # Textual 8.2.8's DataTable can paint rows before it measures their column widths (on idle)
        # and keep those lines cached at the header widths: drop its row cache so each frame is drawn
        # from the measured widths (the table's state is identical either way; only the cache races).
        for table in app.screen.query(DataTable):
            table._clear_caches()
            table.refresh()
        await pilot.pause(0.1)
        svg = app.export_screenshot()
        same = same + 1 if svg == last else 0
        last = svg


# ---------------------------------------------------------------- main screen

MAIN_CASES = [
    ("main_grpo_finished_80x24", "grpo", (80, 24), "finished"),
    ("main_grpo_finished_120x40", "grpo", (120, 40), "finished"),
    ("main_failed_80x24", "evaluate", (80, 24), "exit 2"),
    ("main_lost_80x24", "export", (80, 24), "lost"),
]


@pytest.mark.parametrize("name,stage,size,status", MAIN_CASES, ids=[c[0] for c in MAIN_CASES])
async def test_main_screen(pinned, tmp_path, name, stage, size, status):
    fake_workspace(pinned)
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.main.runs, what="scan")
        await select_stage(app, pilot, stage)
        await until(pilot, lambda: status in str(app.query_one("#status").render()), what=status)
        await until(pilot, lambda: app.query_one("#log").line_count > 0, what="log tail")
        if stage == "grpo":
            await until(pilot, lambda: app.main.store.rows == 30, what="metrics")
            # Panels show once their metrics have arrived, on a later refresh than the rows themselves.
            await until(
                pilot,
                lambda: all(app.query_one(f"#panel-{key}").display for key in ("loss", "reward", "kl")),
                what="loss, reward and KL panels shown",
            )
        await settle(app, pilot)
        assert_snapshot(app, name, tmp_path)


# ---------------------------------------------------------------- workbench screens


async def open_screen(app, pilot, key: str, cls, ready) -> None:
    await until(pilot, lambda: app.main.runs, what="scan")
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, cls) and ready(app.screen), what=cls.__name__)


SCREEN_CASES = [
    ("screen_config_80x24", "c", ConfigScreen, lambda s: s.doc),
    # DataTable sizes its columns on idle after rows arrive: wait for that too.
    (
        "screen_runs_80x24",
        "r",
        RunsScreen,
        lambda s: s.rows and s.query_one("#runs-table").columns["stage"].content_width >= 8,
    ),
    ("screen_sync_80x24", "w", SyncScreen, lambda s: s.offline),
    ("screen_ablation_80x24", "a", AblationScreen, lambda s: s.matrix),
    ("screen_completions_80x24", "g", CompletionsScreen, lambda s: s.rows),
]


@pytest.mark.parametrize("name,key,cls,ready", SCREEN_CASES, ids=[c[0] for c in SCREEN_CASES])
async def test_workbench_screen(pinned, tmp_path, name, key, cls, ready):
    fake_workspace(pinned)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(app, pilot, key, cls, ready)
        await settle(app, pilot)
        assert_snapshot(app, name, tmp_path)


# ---------------------------------------------------------------- the console in Chinese


def chinese_data(ws: Path) -> None:
    """Chinese where users put it: question types, questions, completions and an eval report's qtypes."""
    import json

    grpo = ws / "runs" / "grpo-20251124-160400-0005"
    rows = [
        {
            "step": s,
            "question": f"北京是中国的首都吗？{s}",
            "answer": "是",
            "qtype": q,
            "completion": f"<think>首都是北京</think><answer>{a}</answer> 第{s}步",
            "rewards": {"format_reward": 1.0, "accuracy_reward": 1.0 if a == "是" else 0.0},
        }
        for s in (1, 2)
        for q, a in (("判断题", "是"), ("判断题", "否"), ("选择题", "否"))
    ]
    (grpo / "completions.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    report = {
        "total": 10,
        "format_accuracy": 1.0,
        "answer_accuracy": 0.4,
        "per_qtype": {
            "判断题": {"total": 6, "format_accuracy": 1.0, "answer_accuracy": 0.5},
            "选择题": {"total": 4, "format_accuracy": 1.0, "answer_accuracy": 0.25},
        },
    }
    (grpo / "eval_grpo.json").write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
    abl = ws / "runs" / "ablation-20251124-160700-0008"

    def res(fmt, ans):
        return {
            "total": 10,
            "format_accuracy": fmt,
            "answer_accuracy": ans,
            "per_qtype": {
                "判断题": {"total": 4, "format_accuracy": fmt, "answer_accuracy": ans},
                "compare_多位数": {"total": 6, "format_accuracy": fmt, "answer_accuracy": ans / 2},
            },
        }

    summary = {"variants": {"base": res(0.0, 0.1), "sft_only": res(1.0, 0.3), "sft_grpo": res(1.0, 0.5)}}
    (abl / "ablation_summary_20251124_160700.json").write_text(
        json.dumps(summary, ensure_ascii=False), encoding="utf-8"
    )


@pytest.mark.parametrize(
    "name,stage,size,status",
    [("zh_main_grpo_finished_80x24", "grpo", (80, 24), "已完成")],
    ids=["zh_main_grpo_finished_80x24"],
)
async def test_main_screen_in_chinese(pinned, tmp_path, name, stage, size, status):
    fake_workspace(pinned)
    chinese_data(pinned)
    app = make_app("zh")
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.main.runs, what="scan")
        await select_stage(app, pilot, stage)
        await until(pilot, lambda: status in str(app.query_one("#status").render()), what=status)
        await until(pilot, lambda: app.main.store.rows == 30, what="metrics")
        await until(
            pilot,
            lambda: all(app.query_one(f"#panel-{key}").display for key in ("loss", "reward", "kl")),
            what="loss, reward and KL panels shown",
        )
        await settle(app, pilot)
        assert_snapshot(app, name, tmp_path)


ZH_SCREEN_CASES = [("zh_" + name, key, cls, ready) for name, key, cls, ready in SCREEN_CASES]


@pytest.mark.parametrize("name,key,cls,ready", ZH_SCREEN_CASES, ids=[c[0] for c in ZH_SCREEN_CASES])
async def test_workbench_screen_in_chinese(pinned, tmp_path, name, key, cls, ready):
    fake_workspace(pinned)
    chinese_data(pinned)
    app = make_app("zh")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(app, pilot, key, cls, ready)
        await settle(app, pilot)
        assert_snapshot(app, name, tmp_path)


# ---------------------------------------------------------------- the queue screen and a sweep's table


def fake_queue(ws: Path, monkeypatch) -> None:
    """A 2x2 sweep queued through the engine with pinned ids: two done, one failed, one queued."""
    import itertools

    from ftmodel import queue, sweep

    ids = itertools.count(1)
    monkeypatch.setattr(queue, "new_job_id", lambda: f"job-20251124-170000-{next(ids):04d}")
    monkeypatch.setattr(sweep, "new_sweep_id", lambda: "sweep-20251124-170000-0001")
    points = sweep.plan("ftmodel.toml", {"sft.learning_rate": [1e-4, 2e-4], "grpo.beta": [0.0, 0.04]}, ["sft", "grpo"])
    sweep.queue_sweep(ws, "ftmodel.toml", points, ["sft", "grpo"])
    with queue.editing(ws) as data:
        runs = ("pipeline-20251124-170100-0011", "pipeline-20251124-170200-0012")
        for job, run in zip(data["jobs"][:2], runs, strict=True):
            job.update(state="done", run_id=run, attempts=1)
        data["jobs"][1]["reused"] = True
        data["jobs"][2].update(state="failed", error="exit 1: CUDA out of memory", attempts=2)
        data["paused"] = True


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_queue_screen(pinned, tmp_path, monkeypatch, lang):
    from tui.dialogs import PickScreen
    from tui.screens import QueueScreen

    monkeypatch.setattr(QueueScreen, "AUTOSTART", False)  # never a real runner from a snapshot
    fake_workspace(pinned)
    fake_queue(pinned, monkeypatch)
    name = ("zh_" if lang == "zh" else "") + "screen_queue_80x24"
    app = make_app(lang)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(app, pilot, "u", QueueScreen, lambda s: s.data and s.sweeps)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, PickScreen), what="sweep picker")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, QueueScreen) and app.screen.query_one("#sweep-table").row_count == 4,
            what="sweep table",
        )
        await settle(app, pilot)
        assert_snapshot(app, name, tmp_path)
