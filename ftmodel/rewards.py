"""Reward functions for TRL's GRPOTrainer, as plain callables over completions.

TRL logs each reward as ``rewards/<__name__>/mean``, so the function names are the metric names.
"""

from __future__ import annotations

from typing import Any

from ftmodel.answers import AnswerRules, answers_match, extract_answer, parse_strict


def completion_text(completion: Any) -> str:
    """Return the text of a completion given as a string or as a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    # Conversational datasets give [{"role": "assistant", "content": ...}]; the reply is the last message.
    if isinstance(completion, (list, tuple)) and completion:
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            # Multimodal-style content parts: keep only the text parts.
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return content if isinstance(content, str) else ""
    return ""


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """Reward 1.0 for a strictly well-formed think-then-answer completion, else 0.0."""
    return [1.0 if parse_strict(completion_text(c))[0] else 0.0 for c in completions]


def accuracy_reward(
    completions: list,
    answer: list[str],
    qtype: list[str] | None = None,
    rules: AnswerRules | None = None,
    **kwargs: Any,
) -> list[float]:
    """Reward 1.0 when the (leniently extracted) answer matches the gold answer, else 0.0."""
    qtypes = qtype if qtype is not None else [None] * len(answer)
    return [
        1.0 if answers_match(extract_answer(completion_text(c)), str(gold), q, rules) else 0.0
        for c, gold, q in zip(completions, answer, qtypes, strict=True)
    ]


def accuracy_reward_with(rules: AnswerRules):
    """accuracy_reward bound to the config's answer rules, keeping its name (TRL's metric name)."""

    def bound(completions: list, answer: list[str], qtype: list[str] | None = None, **kwargs: Any) -> list[float]:
        return accuracy_reward(completions, answer, qtype, rules)

    bound.__name__ = bound.__qualname__ = accuracy_reward.__name__
    return bound
