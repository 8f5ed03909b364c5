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
