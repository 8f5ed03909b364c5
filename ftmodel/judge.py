"""The LLM judge: scores an answer against the question and gold answer with a rubric prompt.

Scores are parsed robustly (`Score: 8`, `8/10`, `{"score": 8}`, a lone number), normalised to
[0, 1], and cached by a hash of the content, so re-evaluating the same answers costs nothing. A
timeout or a garbage reply is counted as a judge error and yields None, never an exception.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path

from ftmodel.i18n import t
from ftmodel.llm import ChatClient, LLMError, map_chat

RUBRIC = (
    "You are a strict grader of finance answers. Compare the candidate's final answer with the reference "
    "answer and judge its reasoning. Reply with one line: `Score: N` where N is an integer from 0 (wrong) "
    "to 10 (fully correct, sound reasoning)."
)

_PATTERNS = (
    re.compile(r'"score"\s*:\s*(-?\d+(?:\.\d+)?)', re.IGNORECASE),
    re.compile(r"score\s*(?:is|of|=|:)?\s*\**\s*(-?\d+(?:\.\d+)?)(?:\s*/\s*10)?", re.IGNORECASE),
    re.compile(r"(-?\d+(?:\.\d+)?)\s*/\s*10\b"),
    re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*\.?\s*$"),
)


def parse_score(text: str) -> float | None:
    """Extract a 0–10 score from a judge reply and normalise it to [0, 1]; None if there is none."""
    for pattern in _PATTERNS:
        m = pattern.search(text or "")
        if m:
            value = float(m.group(1))
            if 0 <= value <= 10:
                return value / 10.0
            return None  # a number outside the rubric is garbage, not a score
    return None


def _is_score(value) -> bool:
    """Whether a cached value is a score the judge gave (a number in [0, 1]), not a failure or garbage."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def judge_messages(question: str, gold: str, answer: str) -> list[dict]:
    """The rubric prompt for one answer."""
    return [
        {"role": "system", "content": RUBRIC},
        {"role": "user", "content": f"Question: {question}\nReference answer: {gold}\nCandidate answer: {answer}"},
    ]


class Judge:
    """Scores answers with a chat client, caching by content hash (in memory and on disk)."""

    def __init__(self, client: ChatClient, *, model_id: str, cache_path: Path | None = None, concurrency: int = 8):
        self.client = client
        self.model_id = model_id
        self.concurrency = concurrency
        self.cache_path = cache_path
        self.errors = 0
        self.calls = 0
        self._lock = threading.Lock()
        self._cache: dict[str, float | None] = {}
        if cache_path and cache_path.exists():
            for line in cache_path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    row = json.loads(line)
                    key, score = row["key"], row["score"]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line from a crash is re-judged
                # Only a score counts as an answer: a null, a string or a number off the rubric (a
                # hand-edited or foreign file) is asked again, never read as a verdict.
                if isinstance(key, str) and _is_score(score):
                    self._cache[key] = float(score)

    def _key(self, question: str, gold: str, answer: str) -> str:
        return hashlib.sha256(json.dumps([self.model_id, RUBRIC, question, gold, answer]).encode()).hexdigest()

    def _remember(self, key: str, score: float) -> None:
        """Cache a score the judge gave (failures are never stored: a rerun asks for them again)."""
        with self._lock:
            self._cache[key] = score
            if self.cache_path:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.cache_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"key": key, "score": score}) + "\n")

    def score_many(self, triples: list[tuple[str, str, str]]) -> list[float | None]:
        """Score (question, gold, answer) triples concurrently; None marks a judge error."""
        keys = [self._key(*t) for t in triples]
        scores: list[float | None] = [self._cache.get(k) for k in keys]
        first: dict[str, int] = {}  # one request per distinct answer (GRPO groups often repeat one)
        for i, s in enumerate(scores):
            if s is None:
                first.setdefault(keys[i], i)
        for i, reply, error in map_chat(
            self.client, list(first.values()), lambda i: judge_messages(*triples[i]), concurrency=self.concurrency
        ):
            with self._lock:
                self.calls += 1
            if error is not None and error.fatal:
                from ftmodel.context import StageError

                raise StageError(t("judge: {error}", error=error))
            score = parse_score(reply.text) if reply else None
            if score is None:
                with self._lock:
                    self.errors += 1
                continue
            self._remember(keys[i], score)
        return [self._cache.get(k) for k in keys]

    def reward_function(self):
        """A TRL reward function `judge_reward` scoring completions against the gold answer."""
        from ftmodel.answers import extract_answer
        from ftmodel.rewards import completion_text

        def judge_reward(completions, answer, question, **kwargs) -> list[float | None]:
            texts = [completion_text(c) for c in completions]
            triples = [(q, g, extract_answer(t) or t) for q, g, t in zip(question, answer, texts)]
            return self.score_many(triples)  # None (a judge error) is ignored by TRL, not scored 0

        return judge_reward


def build_judge(cfg, ws, log) -> Judge:
    """The judge a config describes, with its cache in the workspace."""
    from ftmodel.context import StageError
    from ftmodel.llm import make_client
    from ftmodel.models import device_for

    j = cfg.judge
    try:
        device = device_for(cfg) if j.backend == "hf" else "cpu"
        client = make_client(j, device=device, trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, LLMError) as e:
        raise StageError(t("judge: cannot load {model}: {reason}", model=j.model, reason=e)) from None
    log(f"judge: {j.backend} {j.model} ({j.base_url if j.backend == 'openai' else 'local'})")
    return Judge(
        client, model_id=f"{j.backend}:{j.model}", cache_path=ws.root / "judge_cache.jsonl", concurrency=j.concurrency
    )
