"""Chat clients for teacher and judge models: an OpenAI-compatible server or a local model.

The OpenAI client is stdlib only (urllib): bounded timeouts, retries with exponential backoff on
refused connections, timeouts, HTTP 429/5xx and malformed replies, and a clear error for
everything else (401 names the environment variable that should hold the key). `map_chat` runs
many requests with bounded concurrency. The key is read from the environment at call time and
never stored.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class LLMError(RuntimeError):
    """A request that failed for good; `fatal` when no other request can succeed either (bad key)."""

    def __init__(self, message: str, *, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


@dataclass
class Reply:
    """One chat completion's text and token usage."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatClient(Protocol):
    """Anything that answers a list of chat messages."""

    def chat(self, messages: list[dict]) -> Reply: ...


class OpenAIChatClient:
    """A client of an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "", timeout_s: float = 60.0,
                 max_retries: int = 3, max_tokens: int = 1024, temperature: float = 0.0,
                 backoff_s: float = 0.5, sleep: Callable[[float], None] = time.sleep):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.backoff_s = backoff_s
        self._sleep = sleep

    def _request(self, messages: list[dict]) -> urllib.request.Request:
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                           "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def _once(self, messages: list[dict]) -> Reply:
        """One attempt; raises _Retry for what a retry may fix, LLMError for what it cannot."""
        try:
            with urllib.request.urlopen(self._request(messages), timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read(300).decode("utf-8", "replace").strip()
            if e.code in (401, 403):
                raise LLMError(f"{self.url}: HTTP {e.code} (unauthorized): check the key in ${self.api_key_env}",
                               fatal=True) from None
            if e.code == 404:
                raise LLMError(f"{self.url}: HTTP 404: no such endpoint or model {self.model!r}: {detail[:200]}",
                               fatal=True) from None
            if e.code in RETRY_STATUS:
                raise _Retry(f"HTTP {e.code} {detail[:120]}") from None
            raise LLMError(f"{self.url}: HTTP {e.code}: {detail[:200]}") from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise _Retry(f"{type(reason).__name__}: {reason}") from None
        try:
            data = json.loads(raw)
            text = data["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Retry(f"malformed reply ({e}): {raw[:120]!r}") from None
        usage = data.get("usage") or {}
        return Reply(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    def chat(self, messages: list[dict]) -> Reply:
        """Send one chat request, retrying with exponential backoff and jitter; raise LLMError at the end."""
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                return self._once(messages)
            except _Retry as e:
                last = str(e)
                if attempt < self.max_retries:
                    self._sleep(self.backoff_s * (2 ** attempt) * (0.5 + random.random()))
        raise LLMError(f"{self.url}: gave up after {self.max_retries + 1} attempts: {last}")


class _Retry(Exception):
    """A failure worth retrying."""


class HFChatClient:
    """A local model directory answering chat messages with transformers (one request at a time)."""

    def __init__(self, model_dir: str, *, max_tokens: int = 256, temperature: float = 0.0, device: str = "cpu",
                 trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=trust_remote_code).to(device)
        self.model.eval()
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._lock = threading.Lock()  # one generate at a time: the model is not re-entrant

    def chat(self, messages: list[dict]) -> Reply:
        """Generate a reply to the messages with the local model."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        sample = self.temperature > 0
        with self._lock, self._torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_tokens, do_sample=sample,
                                      temperature=self.temperature if sample else None,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        new = out[0, enc["input_ids"].shape[1]:]
        return Reply(self.tokenizer.decode(new, skip_special_tokens=True), enc["input_ids"].shape[1], len(new))


def check_service(service, section: str) -> None:
    """Fail early on a teacher/judge that cannot work: no model name, or a missing local model dir."""
    from ftmodel.context import StageError

    if service.backend == "openai" and not service.model:
        raise StageError(f"{section}.model: name the model served at {service.base_url}")
    if service.backend == "hf" and not (Path(service.model).expanduser() / "config.json").exists():
        raise StageError(f"{section}.model: {service.model or '(empty)'} is not a local model directory")


def make_client(service, *, device: str = "cpu", trust_remote_code: bool = False) -> ChatClient:
    """Build the client a [distill] or [judge] section describes."""
    if service.backend == "openai":
        return OpenAIChatClient(service.base_url, service.model, api_key_env=service.api_key_env,
                                timeout_s=service.timeout_s, max_retries=service.max_retries,
                                max_tokens=service.max_tokens, temperature=service.temperature)
    if service.backend == "hf":
        return HFChatClient(service.model, max_tokens=service.max_tokens, temperature=service.temperature,
                            device=device, trust_remote_code=trust_remote_code)
    raise ValueError(f"no chat client for backend {service.backend!r}")


def map_chat(client: ChatClient, items: Iterable, to_messages: Callable[[object], list[dict]], *,
             concurrency: int) -> Iterator[tuple[object, Reply | None, LLMError | None]]:
    """Ask about every item with at most `concurrency` requests in flight; yield (item, reply, error)
    as each finishes. Items are submitted lazily, so a stop between results leaves little in flight."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending = {}

        def submit_next() -> bool:
            try:
                item = next(items)
            except StopIteration:
                return False
            pending[pool.submit(client.chat, to_messages(item))] = item
            return True

        for _ in range(concurrency):
            if not submit_next():
                break
        while pending:
            done = next(as_completed(pending))
            item = pending.pop(done)
            try:
                yield item, done.result(), None
            except LLMError as e:
                yield item, None, e
            submit_next()
