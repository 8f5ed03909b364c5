"""The config editor in Chinese at 80×24: every field's documentation comes from the catalog and is
wrapped by terminal cells; an invalid value is refused with the engine's reason, in Chinese."""

from __future__ import annotations

import pytest

from ftmodel import config
from ftmodel.textio import cell_width
from tests.tui.test_app import make_app, until
from tests.tui.test_screens import open_config, type_into
from tui.plain import Prose

pytestmark = pytest.mark.anyio


async def test_field_docs_are_chinese_and_wrapped_by_cells(ws):
    app = make_app(ws, lang="zh")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_config(app, pilot, "alerts")
        docs = list(screen.query(".fld-help"))
        specs = config.field_specs("alerts")
        assert len(docs) == len(specs) and all(isinstance(d, Prose) for d in docs)
        await until(pilot, lambda: docs[0].content_size.width > 0, what="the form laid out")
        width = docs[0].content_size.width
        assert width < 70  # the form's share of 80 columns: long docs must wrap
        stall = docs[[name for name, *_ in specs].index("stall_floor_s")]
        lines = str(stall.render()).split("\n")
        assert lines[0].startswith("停滞：运行中的阶段") and len(lines) >= 2
        for doc in docs:
            for line in str(doc.render()).split("\n"):
                assert cell_width(line) <= width, line
                assert not line.startswith(("，", "。", "）", "：", "、")), line
        assert all(doc.virtual_region.height == len(str(doc.render()).split("\n")) for doc in docs)

        await type_into(pilot, screen, "alerts", "command_timeout_s", "lots")
        error = screen.query_one("#err-alerts-command_timeout_s")
        await until(pilot, lambda: "应为数字" in str(error.render()), what="the type error in Chinese")


def test_prose_wraps_english_at_spaces_as_before():
    prose = Prose("Watch runs and record alerts (alerts.jsonl, wandb, the console, `ftmodel alerts`).")
    assert prose._lines(30) == [
        "Watch runs and record alerts",
        "(alerts.jsonl, wandb, the",
        "console, `ftmodel alerts`).",
    ]


@pytest.mark.parametrize("width", [80, 120])
async def test_a_chinese_notification_is_wrapped_by_cells_in_its_toast(ws, width):
    # Textual breaks a toast's text only at spaces: a Chinese sentence jumped whole to the next line
    # and a line could start with "：". The app's one notify wraps it for the toast's width.
    from textual.widgets._toast import Toast

    message = (
        "运行 sft-20261203-073433-32e8 出现告警：损失在第 12 步变为非有限值（NaN），梯度范数在第 10 步"
        "变为无穷大；请降低学习率：现为 1.0，建议为原来的十分之一。"
    )
    app = make_app(ws, lang="zh")
    async with app.run_test(size=(width, 24), notifications=True) as pilot:
        app.notify(message, title="告警", severity="warning", timeout=30)
        await until(pilot, lambda: any(t.size.width for t in app.screen.query(Toast)), what="the toast laid out")
        toast = app.screen.query(Toast).first()
        lines = toast._notification.message.split("\n")
        assert "".join(lines).replace(" ", "") == message.replace(" ", "")  # nothing lost
        assert len(lines) > 1 and all(cell_width(line) <= toast.size.width for line in lines), lines
        assert not any(line.startswith(("，", "。", "）", "：", "；")) or line.endswith("（") for line in lines), lines
        assert all(cell_width(line) >= toast.size.width * 3 // 4 for line in lines[:-1]), lines  # none half empty
        # Textual did not wrap it again: the toast is as tall as its title, its lines and its padding.
        assert toast.outer_size.height == 1 + len(lines) + 2
