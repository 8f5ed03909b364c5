"""The teacher's prompt: the answer format spelled out in the question's language plus one worked
example, and the filter saying plainly when a teacher never used the format."""

from __future__ import annotations

import json

from ftmodel.answers import parse_strict
from ftmodel.prompts import teacher_messages
from tests.conftest import cli, write_config


def test_teacher_messages_show_the_format_in_the_questions_language():
    en = teacher_messages("Is a bond equity?", "Be brief.")
    assert [m["role"] for m in en] == ["system", "user", "assistant", "user"]
    assert en[0]["content"].startswith("Be brief.") and "<answer></answer>" in en[0]["content"]
    assert parse_strict(en[2]["content"])[0] and en[-1]["content"] == "Is a bond equity?"
    zh = teacher_messages("市盈率是什么？", "")
    assert "最终答案" in zh[0]["content"] and "盈利" in zh[2]["content"] and parse_strict(zh[2]["content"])[0]
    example = {"question": "Q1?", "solution": "<think>t</think><answer>a</answer>"}
    shot = teacher_messages("Q2?", "", example)
    assert shot[1]["content"] == "Q1?" and shot[2]["content"] == example["solution"]


def test_filter_says_plainly_that_the_teacher_never_used_the_format(tmp_path):
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    rows = [
        {"id": str(i), "qtype": "t", "question": f"q{i}", "answer": "1", "solution": "The answer is 1."}
        for i in range(5)
    ]
    (ws / "data" / "distilled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = write_config(tmp_path / "c.toml", {"wandb": {"enabled": False}})
    res = cli("filter", "--config", str(config), "--workspace", str(ws))
    assert res.returncode != 0
    assert "the teacher used the <think>…</think><answer>…</answer> format in 0 of 5 samples" in res.stdout + res.stderr
