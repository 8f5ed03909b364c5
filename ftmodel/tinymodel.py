"""Build the embedded default's tiny model and tokenizer locally (no model hub).

The default pipeline must run offline, so its base model is made here: a byte-level
BPE tokenizer trained on generated text, and a small Llama model pre-trained briefly
on a generated corpus. The ML stack (torch, transformers, tokenizers) is imported
inside the functions only: other code imports this module just to read ``TinySpec``,
and importing torch costs seconds. (Just over 400 lines: the whole recipe — tokenizer,
architecture, pre-training loop, atomic cached build — is one cache key, ``VERSION``, so
it stays in one file.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import PreTrainedTokenizerFast

# Bump when the build recipe changes (tokenizer, template, architecture, training loop,
# or the corpus the callers feed in): it is part of the cache key.
VERSION = "6"

TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)

SPEC_FILE = "tiny_spec.json"
_TMP_MARK = ".building-"

# ChatML. The assistant turn (including its <|im_end|>, so the model learns to stop) sits
# inside {% generation %} so that TRL's assistant_only_loss=True can mask everything else.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """Architecture and pre-training recipe of the tiny base model."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 256
    vocab_size: int = 1024
    max_position_embeddings: int = 512
    pretrain_steps: int = 150
    pretrain_batch_size: int = 16
    pretrain_seq_len: int = 128
    pretrain_lr: float = 3e-3
    seed: int = 0

    def fingerprint(self) -> str:
        """Return a short stable hash of every field and VERSION, used as a cache key."""
        payload = {"version": VERSION, **{f.name: getattr(self, f.name) for f in fields(self)}}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def build_tokenizer(texts: list[str], vocab_size: int, padding_side: str = "right") -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on texts and wrap it with a ChatML chat template.

    The result has exactly ``vocab_size`` entries when the texts offer enough merges:
    BPE is trained to ``vocab_size - len(TAG_TOKENS)`` and the tags are added on top.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ValueError("build_tokenizer needs at least one training text")
    base_vocab = vocab_size - len(TAG_TOKENS)
    # 256 byte symbols + the specials must fit, or BPE has nothing to merge into.
    if base_vocab < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} too small for a byte-level BPE")

    tok = Tokenizer(models.BPE())
    # Every digit is its own token, and a number's leading digit carries the space before it
    # (" 45" -> " 4", "5"). BPE would otherwise merge frequent digit groups at random ("45" -> "4",
    # "5" but "172" -> "17", "2"), and with a lone " " before every number, copying one ("sold for
    # 72" -> "sold for 72") would have to pick among all the spaces: a tiny model then copies the
    # wrong number. Measured, gain_or_loss after SFT: 0.54 -> 1.00 (seed 1), 0.60 -> 0.48 (seed 0,
    # which GRPO then takes to 1.00).
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            pre_tokenizers.Split(Regex("\u0120?[0-9]"), behavior="isolated"),  # \u0120 is ByteLevel's space
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=base_vocab,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Tags are NON-special: TRL decodes completions with skip_special_tokens=True, and a
    # special tag would vanish from the text the format reward reads.
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        padding_side=padding_side,
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 30,
    )


def _token_stream(tokenizer, corpus: list[str]) -> list[int]:
    """Tokenize the corpus into one stream, each text followed by eos."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer(corpus, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    return stream


def _pretrain(
    model,
    stream: list[int],
    spec: TinySpec,
    log: Callable[[str], None],
    check_stop: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Pre-train the model in place with plain causal-LM loss on random windows of stream.

    ``check_stop`` is called before every step (it raises to abandon the build, e.g. when
    the stage was asked to stop); ``progress(step, total)`` after every step.
    """
    import torch

    seq = spec.pretrain_seq_len
    if not stream:
        raise ValueError("the pre-training corpus is empty")
    data = torch.tensor(stream, dtype=torch.long)
    # A tiny corpus is repeated so that at least one full window exists.
    if data.numel() < seq + 1:
        data = data.repeat(math.ceil((seq + 1) / max(1, data.numel())))
    gen = torch.Generator().manual_seed(spec.seed)
    steps = spec.pretrain_steps
    warmup = max(1, steps // 10)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    opt = torch.optim.AdamW(model.parameters(), lr=spec.pretrain_lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    model.train()
    losses: list[float] = []
    every = 25
    t0 = time.monotonic()
    if progress is not None:
        progress(0, steps)
    for step in range(steps):
        if check_stop is not None:
            check_stop()  # a step takes well under a second: a stop is honoured at once
        starts = torch.randint(0, data.numel() - seq, (spec.pretrain_batch_size,), generator=gen)
        batch = torch.stack([data[s : s + seq] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step + 1, steps)
        if step == 0 or (step + 1) % every == 0 or step + 1 == steps:
            log(
                f"pretrain step {step + 1}/{steps} loss {losses[-1]:.4f} "
                f"lr {sched.get_last_lr()[0]:.2e} ({time.monotonic() - t0:.1f}s)"
            )
    model.eval()
    tail = losses[-10:]
    return {
        "first_loss": round(losses[0], 4) if losses else None,
        # The mean of the last few steps: one batch's loss is noisy.
        "final_loss": round(sum(tail) / len(tail), 4) if tail else None,
        "last_step_loss": losses[-1] if losses else None,
        "steps": steps,
        "seconds": round(time.monotonic() - t0, 2),
    }


@contextlib.contextmanager
def _torch_threads() -> Iterator[None]:
    """Use every core for the build and restore the caller's thread count afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 16)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Silence transformers' progress bars, which would clutter the stage log."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def build_tiny_base(
    out_dir: Path,
    corpus: list[str],
    tokenizer_texts: list[str],
    spec: TinySpec,
    log: Callable[[str], None] = print,
    check_stop: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Build, pre-train and save the tiny base model and tokenizer atomically at out_dir.

    Everything is written into a temporary directory beside out_dir which is renamed
    into place at the end, so a crash never leaves a half-built model at out_dir.
    An existing out_dir is replaced. ``check_stop`` and ``progress`` go to the
    pre-training loop (see ``_pretrain``).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f"{out_dir.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    try:
        tmp.mkdir()
        tokenizer = build_tokenizer(tokenizer_texts, spec.vocab_size)
        log(f"tokenizer: {len(tokenizer)} tokens ({time.monotonic() - t0:.1f}s)")

        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads,
            num_key_value_heads=spec.num_kv_heads,
            max_position_embeddings=spec.max_position_embeddings,
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            dtype="float32",
        )
        with _torch_threads():
            torch.manual_seed(spec.seed)
            model = LlamaForCausalLM(config)
            n_params = sum(p.numel() for p in model.parameters())
            log(f"model: llama {spec.num_layers}x{spec.hidden_size}, {n_params:,} parameters")
            stream = _token_stream(tokenizer, corpus)
            log(f"pretrain corpus: {len(corpus)} texts, {len(stream):,} tokens")
            stats = _pretrain(model, stream, spec, log, check_stop=check_stop, progress=progress)
        stats.update(num_parameters=n_params, corpus_texts=len(corpus), corpus_tokens=len(stream))

        model.generation_config = GenerationConfig(
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with _quiet_progress_bars():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        stats["build_seconds"] = round(time.monotonic() - t0, 2)
        # Written last: its presence is what marks a directory as complete.
        (tmp / SPEC_FILE).write_text(
            json.dumps(
                {
                    "version": VERSION,
                    "fingerprint": spec.fingerprint(),
                    "spec": asdict(spec),
                    "pretrain": stats,
                },
                indent=2,
            )
            + "\n"
        )
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(
        f"tiny base built at {out_dir} in {stats['build_seconds']:.1f}s "
        f"(loss {stats['first_loss']} -> {stats['final_loss']})"
    )
    return out_dir


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename tmp to out_dir, moving any existing out_dir aside first."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f"{out_dir.name}{_TMP_MARK}old-{uuid.uuid4().hex[:8]}"
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def is_complete(model_dir: Path) -> bool:
    """Tell whether model_dir holds a finished build (its tiny_spec.json exists)."""
    return (Path(model_dir) / SPEC_FILE).is_file()


@contextlib.contextmanager
def _exclusive_lock(path: Path, check_stop: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on path for the duration of the block.

    While another process holds it, poll (calling ``check_stop``) instead of blocking, so a
    stage waiting for someone else's build still honours a stop request.
    """
    import fcntl

    with open(path, "a+") as fh:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (fcntl.LOCK_NB if check_stop else 0))
                break
            except BlockingIOError:
                check_stop()
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_tiny_base(
    cache_root: Path,
    corpus_fn: Callable[[], list[str]],
    tokenizer_texts_fn: Callable[[], list[str]],
    spec: TinySpec,
    log: Callable[[str], None] = print,
    check_stop: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Return the cached tiny base for spec under cache_root, building it if missing.

    The directory is ``cache_root / f"tiny-{spec.fingerprint()}"``. An exclusive lock
    file in cache_root keeps two processes from building the same model at once; the
    corpus functions are only called when a build is needed.
    """
    cache_root = Path(cache_root)
    name = f"tiny-{spec.fingerprint()}"
    out_dir = cache_root / name
    if is_complete(out_dir):
        log(f"tiny base: reusing cached {out_dir}")
        return out_dir
    cache_root.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(cache_root / f".{name}.lock", check_stop):
        # Another process may have finished the build while we waited for the lock.
        if is_complete(out_dir):
            log(f"tiny base: reusing cached {out_dir}")
            return out_dir
        # Under the lock nobody else is building this spec: leftovers are from a crash.
        for stale in cache_root.glob(f"{name}{_TMP_MARK}*"):
            log(f"tiny base: removing leftover {stale.name}")
            shutil.rmtree(stale, ignore_errors=True)
        log(f"tiny base: building {out_dir}")
        return build_tiny_base(
            out_dir, corpus_fn(), tokenizer_texts_fn(), spec, log=log, check_stop=check_stop, progress=progress
        )
