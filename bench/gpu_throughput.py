"""GPU throughput: SFT tokens/s and GRPO steps/s on a small real model size, ours vs plain TRL,
side by side (it drives bench.train_overhead with a model built locally: no hub access).

    python -m bench.gpu_throughput [--hidden 1024 --layers 16 --heads 16] [--sft-steps 60] [--grpo-steps 15]
                                    [--device cuda] [--dtype bfloat16] [--rounds 2]

The default size (hidden 1024, 16 layers, ~0.2B parameters plus embeddings) is a Llama-style
model with random weights: throughput depends on the shapes, not on what the weights know.
`--device cpu --hidden 64 --layers 2 --dtype float32` checks the script itself on a CPU machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_model(out: Path, hidden: int, layers: int, heads: int) -> Path:
    """Save a random-weight Llama model with the embedded default's tokenizer (tags included)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftmodel.data import bank
    from ftmodel.tinymodel import build_tokenizer

    tok = build_tokenizer(bank.tokenizer_corpus(0), 1024)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 11 // 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 4),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(cfg)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters -> {out}", flush=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--sft-steps", type=int, default=60)
    p.add_argument("--grpo-steps", type=int, default=15)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    model_dir = build_model(Path(tempfile.mkdtemp(prefix="ftmodel-gpu-model-")), a.hidden, a.layers, a.heads)
    settings = [
        f"model.name_or_path={model_dir}",
        f"model.device={a.device}",
        f"model.dtype={a.dtype}",
        "lora.modules_to_save=[]",
        "sft.batch_size=16",
        "grpo.batch_size=16",
        "grpo.num_generations=8",
        "grpo.max_completion_length=128",
        "model.max_seq_length=512",
    ]
    argv = [
        sys.executable,
        "-m",
        "bench.train_overhead",
        "--rounds",
        str(a.rounds),
        "--sft-steps",
        str(a.sft_steps),
        "--grpo-steps",
        str(a.grpo_steps),
        "--report-tokens",
        *[x for s in settings for x in ("--set", s)],
    ]
    sys.exit(subprocess.call(argv, cwd=ROOT))


if __name__ == "__main__":
    main()
