"""The one way a question becomes a chat prompt, shared by SFT, GRPO and evaluation."""

from __future__ import annotations


def prompt_messages(question: str, system_prompt: str) -> list[dict]:
    """Chat messages for a question: an optional system message, then the user's question."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": question}]


_FORMAT_RULE = {
    "en": "First reason step by step inside <think></think>, then give only the final answer inside "
    "<answer></answer>. Write nothing outside these two blocks.",
    "zh": "先在 <think></think> 中逐步推理，再只在 <answer></answer> 中写出最终答案。两个块之外不要写任何内容。",
}
_GENERIC_EXAMPLE = {
    "en": (
        "A share bought at 40 is sold at 46. Is that a gain or a loss?",
        "<think>It was sold for more than it was bought for: 46 > 40.</think><answer>gain</answer>",
    ),
    "zh": (
        "某股票以40元买入、46元卖出，盈利还是亏损？",
        "<think>卖出价高于买入价：46 > 40。</think><answer>盈利</answer>",
    ),
}


def _language(text: str) -> str:
    return "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"


def teacher_messages(question: str, system_prompt: str, example: dict | None = None) -> list[dict]:
    """Messages that make an instruct teacher write `<think>…</think><answer>…</answer>`: the system prompt
    with the format spelled out in the question's language, and one worked example in that format (a
    training record with a solution when there is one)."""
    lang = _language(question)
    system = f"{system_prompt}\n{_FORMAT_RULE[lang]}".strip()
    shot_q, shot_a = (
        (example["question"], example["solution"]) if example and example.get("solution") else _GENERIC_EXAMPLE[lang]
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": shot_q},
        {"role": "assistant", "content": shot_a},
        {"role": "user", "content": question},
    ]
