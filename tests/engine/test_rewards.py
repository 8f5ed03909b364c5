"""Tests for the GRPO reward functions on plain and conversational completions."""

from ftmodel.rewards import accuracy_reward, completion_text, format_reward

GOOD = "<think>Rates rise.</think><answer>fall</answer>"
NESTED = "<think>a<think>b</think></think><answer>fall</answer>"
WRONG = "<think>x</think><answer>rise</answer>"
LOOSE = "the answer is <answer>fall</answer>"


def _chat(text):
    return [{"role": "assistant", "content": text}]


def test_completion_text_handles_both_shapes():
    assert completion_text(GOOD) == GOOD
    assert completion_text(_chat(GOOD)) == GOOD
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]) == "hi"
    assert completion_text([]) == ""


def test_format_reward_str_and_conversational():
    texts = [GOOD, NESTED, WRONG, LOOSE, ""]
    expected = [1.0, 0.0, 1.0, 0.0, 0.0]
    assert format_reward(texts) == expected
    assert format_reward([_chat(t) for t in texts]) == expected


def test_accuracy_reward_uses_lenient_extraction_and_gold_column():
    texts = [GOOD, NESTED, WRONG, LOOSE, "no tags"]
    gold = ["fall"] * 5
    expected = [1.0, 1.0, 0.0, 1.0, 0.0]
    # TRL passes prompts, completion_ids and every extra dataset column as keywords.
    kwargs = {"prompts": ["q"] * 5, "completion_ids": [[1]] * 5, "qtype": ["rule_direction"] * 5}
    assert accuracy_reward(completions=texts, answer=gold, **kwargs) == expected
    assert accuracy_reward(completions=[_chat(t) for t in texts], answer=gold, **kwargs) == expected


def test_accuracy_reward_numeric_tolerance():
    texts = ["<think>x</think><answer>10</answer>", "<think>x</think><answer>10.5</answer>"]
    assert accuracy_reward(texts, answer=["10.0", "10.0"]) == [1.0, 0.0]


def test_reward_names_are_metric_names():
    assert format_reward.__name__ == "format_reward"
    assert accuracy_reward.__name__ == "accuracy_reward"
