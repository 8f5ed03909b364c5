"""Tests for ftmodel.tinymodel: the locally built tokenizer and tiny base model."""

from __future__ import annotations

import fcntl
import json
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ftmodel import tinymodel as tm

# Small enough that a build takes about a second on two cores.
SMALL = tm.TinySpec(
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=64,
    vocab_size=400,
    max_position_embeddings=128,
    pretrain_steps=5,
    pretrain_batch_size=4,
    pretrain_seq_len=32,
)

TAGGED = "<think>a</think><answer>b</answer>"


def finance_corpus(seed: int, n: int) -> list[str]:
    """Generate n simple finance-like sentences and arithmetic lines."""
    r = random.Random(seed)
    who = ["Alice", "Bob", "The bank", "The fund", "A client", "The firm"]
    what = ["interest", "principal", "dividend", "loan", "bond", "deposit", "fee"]
    verbs = ["pays", "earns", "owes", "invests", "borrows", "lends"]
    out = []
    for _ in range(n):
        kind = r.randrange(3)
        if kind == 0:
            out.append(f"{r.choice(who)} {r.choice(verbs)} {r.randint(1, 999)} dollars of {r.choice(what)}.")
        elif kind == 1:
            a, b = r.randint(1, 99), r.randint(1, 99)
            out.append(f"{a} + {b} = {a + b}")
        else:
            out.append(f"What is the {r.choice(what)} at a {r.randint(1, 12)}% rate?")
    return out


@pytest.fixture(scope="module")
def tokenizer():
    return tm.build_tokenizer(finance_corpus(1, 400), 400)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the small base once through ensure_tiny_base; return (cache_root, path, log)."""
    root = tmp_path_factory.mktemp("cache")
    lines: list[str] = []
    path = tm.ensure_tiny_base(
        root, lambda: finance_corpus(0, 300), lambda: finance_corpus(1, 300), SMALL, log=lines.append
    )
    return root, path, lines


def test_module_imports_without_ml_stack():
    code = (
        "import sys, ftmodel.tinymodel; print(any(m in sys.modules for m in ('torch', 'transformers', 'tokenizers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fingerprint_stable_and_sensitive():
    assert tm.TinySpec().fingerprint() == tm.TinySpec().fingerprint()
    assert tm.TinySpec().fingerprint() != tm.TinySpec(seed=1).fingerprint()
    assert tm.TinySpec().fingerprint() != tm.TinySpec(pretrain_lr=1e-3).fingerprint()
    assert len(tm.TinySpec().fingerprint()) == 12


def test_tags_round_trip_and_are_single_tokens(tokenizer):
    ids = tokenizer(TAGGED, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == TAGGED
    for tag in tm.TAG_TOKENS:
        tag_ids = tokenizer(tag, add_special_tokens=False)["input_ids"]
        assert len(tag_ids) == 1
        assert tokenizer.convert_ids_to_tokens(tag_ids[0]) == tag
        assert tag not in tokenizer.all_special_tokens
    text = "<think>12 + 30 = 42</think><answer>42</answer>"
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_numbers_are_digits_with_the_space_on_the_leading_one(tokenizer):
    """ " 72" is " 7", "2" wherever it appears, so a copy of a number starts right after its anchor word."""
    for text in ("and sold them for 72.", "<think>bought at 45, sold for 72, up"):
        tokens = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
        i = tokens.index("\u01207")
        assert tokens[i + 1] == "2" and tokens[i - 1] != "\u0120"  # no lone space token before a number
    assert tokenizer.convert_ids_to_tokens(tokenizer("x=172.5")["input_ids"])[-5:] == ["1", "7", "2", ".", "5"]


def test_special_tokens(tokenizer):
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.bos_token is None
    assert tokenizer.padding_side == "right"
    for tok in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert tok in tokenizer.all_special_tokens
        assert len(tokenizer(tok, add_special_tokens=False)["input_ids"]) == 1
    # No bos is prepended.
    assert (
        tokenizer("Bob pays", add_special_tokens=True)["input_ids"]
        == tokenizer("Bob pays", add_special_tokens=False)["input_ids"]
    )
    # Callers may ask for left padding (batched generation).
    left = tm.build_tokenizer(finance_corpus(1, 100), 320, padding_side="left")
    assert left.padding_side == "left"


def test_chat_template(tokenizer):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}]
    prompt = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n"
    no_gen = tokenizer.apply_chat_template(msgs, tokenize=False)
    assert no_gen == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n"

    conv = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": TAGGED}]
    full = tokenizer.apply_chat_template(conv, tokenize=False)
    assert full == f"<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n{TAGGED}<|im_end|>\n"


def test_assistant_tokens_mask(tokenizer):
    conv = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": TAGGED}]
    out = tokenizer.apply_chat_template(conv, return_assistant_tokens_mask=True, return_dict=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask) and 0 < sum(mask) < len(mask)
    masked = [i for i, m in zip(ids, mask) if m]
    # The masked span is exactly the assistant content plus its <|im_end|>.
    assert tokenizer.decode(masked) == TAGGED + "<|im_end|>"
    assert masked[-1] == tokenizer.eos_token_id


def test_build_reloads_and_generates(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, path, lines = built
    assert path == root / f"tiny-{SMALL.fingerprint()}"
    assert tm.is_complete(path)
    meta = json.loads((path / tm.SPEC_FILE).read_text())
    assert meta["spec"]["hidden_size"] == SMALL.hidden_size
    assert meta["fingerprint"] == SMALL.fingerprint()
    assert meta["pretrain"]["steps"] == 5 and meta["pretrain"]["final_loss"] > 0
    assert any("pretrain step 5/5" in line for line in lines)

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "llama"
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    # The reloaded tokenizer tokenizes like the one that was trained.
    ref = tm.build_tokenizer(finance_corpus(1, 300), SMALL.vocab_size)
    for text in finance_corpus(7, 20) + [TAGGED]:
        assert tok(text)["input_ids"] == ref(text)["input_ids"]
    assert tok.decode(tok(TAGGED)["input_ids"], skip_special_tokens=True) == TAGGED

    batch = tok.apply_chat_template(
        [{"role": "user", "content": "What is the fee?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > batch["input_ids"].shape[1]


def test_ensure_reuses_cache(built):
    root, path, _ = built
    mtime = (path / tm.SPEC_FILE).stat().st_mtime_ns
    lines: list[str] = []

    def boom():
        raise AssertionError("corpus must not be read for a cached build")

    again = tm.ensure_tiny_base(root, boom, boom, SMALL, log=lines.append)
    assert again == path
    assert (path / tm.SPEC_FILE).stat().st_mtime_ns == mtime
    assert any("reusing" in line for line in lines)
    assert not any("building" in line for line in lines)


def test_different_spec_different_dir(built):
    root, path, _ = built
    other_spec = tm.TinySpec(**{**SMALL.__dict__, "seed": 1})
    other = tm.ensure_tiny_base(
        root, lambda: finance_corpus(0, 100), lambda: finance_corpus(1, 300), other_spec, log=lambda _: None
    )
    assert other != path and tm.is_complete(other) and tm.is_complete(path)


def test_half_built_dirs_do_not_count(tmp_path, built):
    _, good, _ = built
    name = f"tiny-{SMALL.fingerprint()}"
    # A crashed build's temp dir, and a target dir without tiny_spec.json.
    stale = tmp_path / f"{name}{tm._TMP_MARK}999-deadbeef"
    shutil.copytree(good, stale)
    (stale / tm.SPEC_FILE).unlink()
    partial = tmp_path / name
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    assert not tm.is_complete(stale) and not tm.is_complete(partial)

    lines: list[str] = []
    path = tm.ensure_tiny_base(
        tmp_path, lambda: finance_corpus(0, 100), lambda: finance_corpus(1, 300), SMALL, log=lines.append
    )
    assert path == partial and tm.is_complete(path)
    assert any("building" in line for line in lines)
    assert not stale.exists()


def test_crash_leaves_nothing_behind(tmp_path):
    out = tmp_path / "tiny-x"

    def crash(line: str) -> None:
        if line.startswith("pretrain step"):
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        tm.build_tiny_base(out, finance_corpus(0, 100), finance_corpus(1, 300), SMALL, log=crash)
    assert list(tmp_path.iterdir()) == []


def test_lock_makes_second_process_wait(tmp_path, built):
    _, good, _ = built
    name = f"tiny-{SMALL.fingerprint()}"
    result: dict[str, Path] = {}

    def must_not_build():
        raise AssertionError("waiter must reuse the build made while it waited")

    def waiter():
        result["path"] = tm.ensure_tiny_base(tmp_path, must_not_build, must_not_build, SMALL, log=lambda _: None)

    with open(tmp_path / f".{name}.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.3)
        assert t.is_alive(), "ensure_tiny_base did not wait for the lock"
        # The lock holder "finishes" its build.
        shutil.copytree(good, tmp_path / name)
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    t.join(timeout=10)
    assert result["path"] == tmp_path / name
