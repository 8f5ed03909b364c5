"""中文 when something is wrong: under LANG=zh_CN.UTF-8 the engine's errors (a config error, a stage's
preflight error, an error a stage meets while it runs) and `ftmodel --help` read Chinese, and the
English message ids stay what English users (and logs) see."""

from __future__ import annotations

import json

from ftmodel import i18n
from tests.conftest import cli
from tests.engine.test_cli_and_launcher import only_run, prepared_workspace

# What a Chinese-speaking user's shell has: no FTMODEL_LANG, no LC_ALL, LANG=zh_CN.UTF-8.
ZH = {"FTMODEL_LANG": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "zh_CN.UTF-8"}


def test_a_config_error_names_file_line_and_key_in_chinese(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[sft]\nlearning_rate = 1e-4\nlerning_rate = 2e-4\n\n[lora]\nr = "eight"\n', encoding="utf-8")
    res = cli("config", "check", str(bad), env=ZH)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == f"错误：{bad}:3: 未知的键 sft.lerning_rate（您是否想用 sft.learning_rate？）"
    bad.write_text('[lora]\nr = "eight"\n', encoding="utf-8")
    res = cli("config", "check", str(bad), env=ZH)
    assert res.stderr.strip() == f"错误：{bad}:2: lora.r：应为整数，实际为 'eight'"
    # The same file in English: the id is the English text, greppable in the source and in logs.
    res = cli("config", "check", str(bad), env={**ZH, "LANG": "en_US.UTF-8"})
    assert res.stderr.strip() == f"error: {bad}:2: lora.r: expected an integer, got 'eight'"


def test_a_stage_preflight_error_is_chinese_and_creates_no_run(tmp_path):
    ws = tmp_path / "ws"
    res = cli("evaluate", "--eval-sft", "--workspace", str(ws), env=ZH)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"错误：{ws / 'runs'} 中没有已完成的 sft 运行：请先运行 `ftmodel sft`" in res.stderr
    assert not (ws / "runs").exists()
    res = cli("sft", "--workspace", str(ws), "--set", "grpo.num_generations=3", env=ZH)
    assert res.returncode == 2 and "grpo.num_generations（3）必须整除" in res.stderr


def test_an_error_a_stage_meets_while_running_is_chinese_in_its_log_and_state(tmp_path):
    """The stage's worker is another process: it speaks the language of whoever started it."""
    ws = prepared_workspace(tmp_path)
    off = ("--set", "wandb.enabled=false")
    assert cli("distill", "--workspace", str(ws), *off, "--set", "distill.builtin_error_rate=1.0").returncode == 0
    res = cli("filter", "--workspace", str(ws), *off, env=ZH)
    assert res.returncode == 2
    run = only_run(ws, "filter")
    state = json.loads((run / "state.json").read_text(encoding="utf-8"))
    assert state["state"] == "failed" and state["error"].startswith("过滤后 120 个样本一个也没留下")
    logs = cli("logs", run.name, "--workspace", str(ws), env=ZH).stdout
    assert "错误：过滤后 120 个样本一个也没留下" in logs and "Traceback" not in logs


def test_a_chosen_language_reaches_the_stage_whatever_lang_says(tmp_path):
    """[ui] language (as the console's --lang) chooses for the CLI and for the stage process it starts."""
    ws = prepared_workspace(tmp_path)
    off = ("--set", "wandb.enabled=false")
    assert cli("distill", "--workspace", str(ws), *off, "--set", "distill.builtin_error_rate=1.0").returncode == 0
    res = cli("filter", "--workspace", str(ws), *off, "--set", "ui.language=zh", env={**ZH, "LANG": "en_US.UTF-8"})
    assert res.returncode == 2 and "错误：过滤后 120 个样本一个也没留下" in res.stdout


def test_message_ids_stay_english_and_greppable():
    assert i18n.t("{path} not found: run `ftmodel {stage}` first", path="x", stage="prepare") == (
        "x not found: run `ftmodel prepare` first"
    )


def test_help_is_chinese_and_fits_the_terminal_in_cells():
    from ftmodel.textio import cell_width

    res = cli("--help", env={**ZH, "COLUMNS": "80"})
    assert res.returncode == 0
    out = res.stdout
    assert out.startswith("用法：ftmodel [-h]")
    for said in ("位置参数：", "选项：", "显示此帮助信息并退出", "阶段 4：LoRA 监督微调（TRL SFTTrainer）", "配置工具"):
        assert said in out, said
    assert "show this help" not in out and "run stages in order" not in out
    sub = cli("sft", "--help", env={**ZH, "COLUMNS": "80"}).stdout
    assert "为本次运行覆盖一个配置值（可重复）" in sub and "override one config value" not in sub
    for text in (out, sub):  # wrapped by cells: no Chinese line wider than the terminal
        wide = [line for line in text.splitlines() if cell_width(line) > 80 and cell_width(line) > len(line)]
        assert not wide, wide
    english = cli("sft", "--help", env={**ZH, "LANG": "C.UTF-8", "COLUMNS": "80"}).stdout
    assert english.startswith("usage: ftmodel sft") and "override one config value for this run" in english


def test_argparse_errors_are_chinese_too():
    res = cli("runs", "--stage", "nope", env=ZH)
    assert res.returncode == 2
    assert "ftmodel runs：错误：参数 --stage：无效的选项 'nope'（可选：" in res.stderr
    assert res.stderr.startswith("用法：ftmodel runs")


def test_wrap_counts_cells_and_breaks_between_chinese_characters():
    from ftmodel.textio import cell_width, wrap

    text = "LoRA 的秩（r）：适配器矩阵的维度，越大可训练参数越多（“秩”）。use 16 or 32 for harder tasks"
    for width in (10, 17, 40):
        lines = wrap(text, width)
        assert all(cell_width(line) <= width for line in lines), lines
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
        assert not any(line[0] in "，。）：" for line in lines)  # never a line that starts with closing punctuation
        assert not any(line[-1] in "（“" for line in lines)  # nor one that ends with opening punctuation
    assert wrap("a  b\n\nc", 5) == ["a b", "", "c"]
    assert wrap("supercalifragilistic", 8) == ["supercal", "ifragili", "stic"]


def test_errors_below_the_stages_are_chinese_too(tmp_path):
    """What a teacher's server or a bundle says reaches the user inside a stage's or the CLI's error."""
    import pytest

    from ftmodel import http_client as http
    from ftmodel.bundle import BundleError, import_bundle
    from tests.fake_openai import closed_port_url

    i18n.set_language("zh")
    try:
        with pytest.raises(http.Unreachable, match="：无法连接：ConnectionRefusedError"):
            http.request("GET", closed_port_url(), timeout=2, deadline=5)
        junk = tmp_path / "junk.tar"
        junk.write_bytes(b"not a tar at all")
        with pytest.raises(BundleError, match="时发现已损坏或被截断.*；没有导入任何内容"):
            import_bundle(junk, tmp_path / "ws")
    finally:
        i18n.set_language("en")


def test_a_bank_that_cannot_be_generated_is_a_clear_chinese_error_not_a_traceback(tmp_path):
    ws = tmp_path / "ws"
    too_many = (
        "--set",
        "data.qtypes=['compound_interest']",
        "--set",
        "data.n_train=20000",
        "--set",
        "wandb.enabled=false",
    )
    res = cli("prepare", "--workspace", str(ws), *too_many, env=ZH)
    assert res.returncode == 2 and "Traceback" not in res.stdout + res.stderr
    assert "错误：题库：无法为题型 'compound_interest' 生成 20000 道不重复的 train 题目" in res.stdout
