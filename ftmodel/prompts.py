"""The one way a question becomes a chat prompt, shared by SFT, GRPO and evaluation."""

from __future__ import annotations


def prompt_messages(question: str, system_prompt: str) -> list[dict]:
    """Chat messages for a question: an optional system message, then the user's question."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": question}]
