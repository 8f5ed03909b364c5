"""The message catalog: every console message has a Chinese translation with the same placeholders,
the language comes from the environment (or an explicit choice), and the console switches at run time."""

from __future__ import annotations

import pytest

from ftmodel import i18n
from tests.tui.fake_runs import make_run
from tests.tui.i18n_ids import all_ids, literal_ids
from tests.tui.test_app import make_app, until
from tui.cells import cut, pad, width
from tui.widgets.tables import column_widths


def test_every_message_has_a_chinese_translation_with_the_same_placeholders():
    zh = i18n.catalog("zh")
    ids = all_ids()
    assert len(literal_ids()) > 120  # the extraction finds the console's t() calls
    missing = sorted(i for i in ids if not zh.get(i))
    assert not missing, f"no Chinese for: {missing}"
    wrong = {i: zh[i] for i in ids if i18n.placeholders(i) != i18n.placeholders(zh[i])}
    assert not wrong, f"placeholders differ: {wrong}"
    unused = sorted(set(zh) - ids)
    assert not unused, f"translations of messages nobody shows: {unused}"


@pytest.mark.parametrize(
    "explicit,env,expected",
    [
        (None, {}, "en"),
        (None, {"LANG": "zh_CN.UTF-8"}, "zh"),
        (None, {"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL wins over LANG
        (None, {"LC_ALL": "zh_TW.UTF-8"}, "zh"),
        (None, {"FTMODEL_LANG": "en", "LANG": "zh_CN.UTF-8"}, "en"),
        (None, {"FTMODEL_LANG": "zh-CN"}, "zh"),
        ("en", {"FTMODEL_LANG": "zh"}, "en"),  # an explicit choice (a config key, --lang) wins
        (None, {"FTMODEL_LANG": "klingon", "LANG": "C.UTF-8"}, "en"),
    ],
)
def test_language_from_explicit_choice_then_environment(explicit, env, expected):
    assert i18n.detect_language(explicit, env) == expected


def test_translation_fills_placeholders_and_falls_back_to_english():
    i18n.set_language("zh")
    try:
        assert i18n.t("runs of {stage}", stage="sft") == "sft 的运行"
        assert i18n.t("a message nobody translated {x}", x=1) == "a message nobody translated 1"
    finally:
        i18n.set_language("en")
    assert i18n.t("runs of {stage}", stage="sft") == "runs of sft"


def test_po_reader_names_the_line_it_cannot_read():
    assert i18n.parse_po('msgid "a"\nmsgstr ""\n"b"\n') == {"a": "b"}
    with pytest.raises(ValueError, match="zh.po:2"):
        i18n.parse_po('msgid "a"\nmsgstr nonsense\n', "zh.po")


def test_widths_are_terminal_cells():
    assert width("判断题") == 6 and width("tf") == 2
    assert width(pad("判断", 8)) == 8
    assert width(cut("北京是中国的首都", 7)) <= 7 and cut("北京是中国的首都", 7).endswith("…")
    assert column_widths(["qtype", "n"], [["判断题判断题", "1"]]) == [12, 1]


pytestmark = pytest.mark.anyio


async def test_console_in_chinese_and_switched_to_english_from_the_palette_action(ws):
    make_run(ws, "sft-20260101-000000-0001", "sft", "finished")
    app = make_app(ws, lang="zh")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(
            pilot,
            lambda: "已完成" in str(app.query_one("#stages").get_option_at_index(3).prompt),
            what="Chinese state in the stage list",
        )
        keys = {b.id: b.description for b in app.main._bindings.key_to_bindings["s"]}
        assert keys["run.start_stage"] == "启动阶段"
        assert "启动阶段" in app.help_text()
        await app.run_action("switch_language('en')")
        keys = {b.id: b.description for b in app.main._bindings.key_to_bindings["s"]}
        assert keys["run.start_stage"] == "Start stage"
        await until(
            pilot,
            lambda: "finished" in str(app.query_one("#stages").get_option_at_index(3).prompt),
            what="the stage list said again in English",
        )
        assert app.query_one("#stages").border_title == "stages"
        assert any("language: English" in n for n in app.notes)
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Language: 中文" in commands and "Start stage" in commands


async def test_config_ui_language_chooses_chinese_unless_told_otherwise(ws):
    from ftmodel import config
    from tests.tui.fake_runs import DEFAULT_CONFIG
    from tui.app import FtmodelConsole

    cfg = config.load(DEFAULT_CONFIG)
    cfg.ui.language = "zh"
    FtmodelConsole(cfg, str(DEFAULT_CONFIG), ws, gpu=False)
    assert i18n.language() == "zh"
    FtmodelConsole(cfg, str(DEFAULT_CONFIG), ws, gpu=False, lang="en")  # --lang wins
    assert i18n.language() == "en"
    cfg.ui.language = "auto"  # the environment decides (FTMODEL_LANG=en in these tests)
    FtmodelConsole(cfg, str(DEFAULT_CONFIG), ws, gpu=False)
    assert i18n.language() == "en"
