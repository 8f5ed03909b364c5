"""bench.grpo_signal's table: pass@1 (greedy) vs pass@k and the share of groups GRPO learns nothing from."""

from bench.grpo_signal import pick_questions, signal_table
from ftmodel import config
from tests.conftest import DEFAULT_CONFIG


def ok(answer: str) -> str:
    return f"<think>so {answer}</think><answer>{answer}</answer>"


def test_mixed_groups_are_signal_and_unanimous_groups_are_not():
    cfg = config.load(DEFAULT_CONFIG)
    qs = [
        {"qtype": "a", "answer": "Yes"},  # greedy wrong, one sample right: a mixed group
        {"qtype": "a", "answer": "Yes"},  # every sample right: unanimous
        {"qtype": "b", "answer": "No"},  # every sample wrong, same format: unanimous
    ]
    greedy = [[ok("No")], [ok("Yes")], [ok("Yes")]]
    samples = [[ok("No"), ok("Yes"), ok("No")], [ok("Yes")] * 3, [ok("Yes")] * 3]
    table = signal_table(qs, greedy, samples, cfg)
    assert table["a"] == {"n": 2, "pass1": 0.5, "meank": (1 / 3 + 1) / 2, "passk": 1.0, "zero_var": 0.5}
    assert table["b"]["passk"] == 0.0 and table["b"]["zero_var"] == 1.0
    assert list(table)[-1] == "overall" and table["overall"]["n"] == 3


def test_pick_questions_is_per_type_and_repeatable():
    qs = [{"qtype": t, "id": i} for i in range(10) for t in ("x", "y")]
    first = pick_questions(qs, 3, seed=1)
    assert first == pick_questions(qs, 3, seed=1)
    assert [q["qtype"] for q in first] == ["x"] * 3 + ["y"] * 3
