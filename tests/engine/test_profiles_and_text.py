"""Starting from any directory (config resolution, `ftmodel init`, shipped profiles and sample), the
data check's report, GGUF import errors, and text written for people: UTF-8 JSON, tables aligned in
terminal cells with Chinese in them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftmodel import config
from ftmodel.profiles import PACKAGE_DIR, PROFILES, resolve_config
from ftmodel.textio import cell_width, format_table, write_json
from tests.conftest import ROOT, cli


@pytest.mark.parametrize("name", [n for n, (f, _) in PROFILES.items()])
def test_each_packaged_profile_is_the_repository_copy_and_validates(name):
    packaged = PACKAGE_DIR / PROFILES[name][0]
    assert packaged.read_bytes() == (ROOT / "configs" / packaged.name).read_bytes(), (
        f"configs/{packaged.name} and ftmodel/profiles/{packaged.name} must stay identical"
    )
    config.load(packaged)


def test_shipped_chinese_sample_is_what_its_generator_writes():
    from ftmodel.data.sample_zh import SHIPPED, generate, to_csv

    assert SHIPPED.read_text(encoding="utf-8") == to_csv(generate())


def test_config_resolution_order(tmp_path):
    assert resolve_config(None, tmp_path).reason == "packaged"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.toml").write_text("")
    assert resolve_config(None, tmp_path).path == tmp_path / "configs" / "default.toml"
    (tmp_path / "ftmodel.toml").write_text("")
    assert resolve_config(None, tmp_path).path == tmp_path / "ftmodel.toml"
    assert resolve_config("x.toml", tmp_path).path == Path("x.toml")


def test_outside_the_repository_commands_say_which_config_and_use_its_workspace(tmp_path):
    res = cli("runs", cwd=tmp_path)
    assert res.returncode == 0 and "packaged embedded default" in res.stderr
    assert res.stdout.strip() == "no runs in workspace/runs"
    assert cli("init", "--profile", "smollm2-135m-zh", cwd=tmp_path).returncode == 0
    again = cli("init", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    res = cli("runs", cwd=tmp_path)
    assert "(./ftmodel.toml)" in res.stderr and res.stdout.strip() == "no runs in workspace-smollm2-zh/runs"
    res = cli("stop", "nope", cwd=tmp_path)
    assert res.returncode == 2 and "workspace-smollm2-zh" in res.stderr


def test_data_check_reports_mapping_counts_lengths_and_truncation(tmp_path):
    data = tmp_path / "q.csv"
    data.write_text(
        "编号,类型,问题,答案,备注\n"
        + "".join(f"{i},盈亏判断,某股以{10 + i}元买入、{20 + i}元卖出，盈利还是亏损？,盈利,x\n" for i in range(30)),
        encoding="utf-8",
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[model]\nmax_seq_length = 64\n[data]\nid_field = "编号"\nqtype_field = "类型"\n'
        'question_field = "问题"\nanswer_field = "答案"\n[launch]\nworkspace = "ws"\n',
        encoding="utf-8",
    )
    res = cli("data", "check", str(data), "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "unmapped columns: 备注" in out and "盈亏判断" in out
    assert "are longer than model.max_seq_length = 64" in out and "--set model.max_seq_length=" in out
    assert "no column 'solution' was found" in out  # the builtin teacher would have nothing to copy
    assert not (tmp_path / "ws").exists()  # a check writes nothing
    # Every table line of the report is as wide in terminal cells as its header.
    table = out.split("\n\n")[2].splitlines()
    assert len({cell_width(line.rstrip()) for line in table[:2]}) == 1


def test_tables_align_in_terminal_cells_with_chinese():
    text = format_table(["qtype", "total", "acc"], [["盈亏判断", 12, 0.5], ["percent", 3, None]])
    lines = text.splitlines()
    assert cell_width("盈亏判断") == 8 and cell_width("ａ") == 2 and cell_width("é") == 1
    assert len({cell_width(line) for line in lines}) == 1, text
    assert lines[2].endswith("0.500") and lines[3].endswith("-")


def test_reports_store_real_characters(tmp_path):
    path = write_json(tmp_path / "r.json", {"qtype": "盈亏判断"})
    raw = path.read_text(encoding="utf-8")
    assert "盈亏判断" in raw and "\\u" not in raw and json.loads(raw) == {"qtype": "盈亏判断"}


def test_import_gguf_errors_name_the_file_or_package(tmp_path):
    res = cli("model", "import-gguf", str(tmp_path / "none.gguf"), str(tmp_path / "out"))
    assert res.returncode == 2 and "none.gguf: GGUF file not found" in res.stderr
    res = cli("model", "import-gguf", "--package", "no_such_package_here", str(tmp_path / "out"))
    assert res.returncode == 2 and "package 'no_such_package_here' is not installed" in res.stderr
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "f.gguf").write_bytes(b"GGUF")
    res = cli("model", "import-gguf", str(tmp_path / "f.gguf"), str(tmp_path / "m"))
    assert res.returncode == 2 and "a model folder is already there" in res.stderr
    assert (tmp_path / "m" / "config.json").read_text() == "{}"


def test_the_cli_speaks_chinese_from_the_environment_or_the_config(tmp_path):
    from ftmodel.rundir import create_run

    res = cli("runs", "--workspace", str(tmp_path / "ws"), env={"FTMODEL_LANG": "zh"})
    assert res.returncode == 0 and "中没有运行" in res.stdout
    create_run(tmp_path / "ws", "sft", config_toml="", argv=[])
    res = cli("runs", "--workspace", str(tmp_path / "ws"), env={"FTMODEL_LANG": "zh"})
    header, row = res.stdout.splitlines()[:2]
    assert header.startswith("运行") and "状态" in header
    # Columns line up in terminal cells: the state column starts where its header does.
    assert cell_width(header[: header.index("状态")]) == cell_width(row[: row.index("排队中")]) == 45
    cfg = tmp_path / "c.toml"
    cfg.write_text('[ui]\nlanguage = "zh"\n', encoding="utf-8")
    res = cli("config", "check", str(cfg), env={"FTMODEL_LANG": "en"})
    assert res.returncode == 0 and "ok" in res.stdout  # config check reads the file it checks, not [ui]
    res = cli("runs", "--config", str(cfg), "--workspace", str(tmp_path / "ws"), env={"FTMODEL_LANG": "en"})
    assert "运行" in res.stdout.splitlines()[0]  # [ui] language speaks for the CLI too
    bad = cli("stop", "nope", "--workspace", str(tmp_path / "ws"), env={"FTMODEL_LANG": "zh"})
    assert bad.returncode == 2 and bad.stderr.startswith("错误")


def test_printable_shows_every_control_character_and_leaves_text_alone():
    from ftmodel.textio import printable

    assert printable("plain 中文 text [b]") == "plain 中文 text [b]"
    assert printable("a\x1b[2Jb\x07c") == "a␛[2Jb␇c"  # ESC, BEL: the Control Pictures
    assert printable("\x00\x7f\x1b]0;title\x07") == "␀␡␛]0;title␇"
    assert printable("\x9b31m") == "\\x9b31m"  # C1 has no pictures: named by its code
    assert printable("abc\u202eevil\u2066") == "abc\\u202eevil\\u2066"  # bidi overrides and isolates
    assert printable("x\ud800y") == "x\ufffdy"  # a lone surrogate, which no UTF-8 terminal can take
    assert printable("a\r\nb\n") == "a␍␊b␊"  # one line: line breaks shown too
    assert printable("a\r\nb\rc\n", keep="\n") == "a\nb␍c\n"  # several lines: newlines kept
    assert printable("a\rb\n", keep="\n\r") == "a\rb\n"  # a progress bar on a terminal
    assert printable("a\tb") == "a   b"  # tabs become spaces
    assert printable(3.5) == "3.5"  # not text: its str()


WIDTHS = {
    "abc": 3,
    "盈亏判断": 8,  # CJK: two cells each
    "ＡＢ１２": 8,  # full-width forms
    "e\u0301té": 3,  # a combining acute accent takes no cell
    "👍": 2,
    "❤️": 2,  # a text symbol made emoji by VS16
    "👨‍👩‍👧": 2,  # a ZWJ family: one cluster
    "🇨🇳": 2,  # a flag: two regional indicators, one cluster
    "👍🏽": 2,  # a skin tone joins its emoji
    "准确率 👍 ok": 12,
}


@pytest.mark.parametrize("text", list(WIDTHS))
def test_cli_and_console_count_the_same_cells(text):
    """One width function: the CLI's tables (textio) and the console's (tui.cells, Textual's rich)."""
    from rich.text import Text

    from tui.cells import width

    assert cell_width(text) == WIDTHS[text] == width(text) == Text(text).cell_len
