"""ftmodel: LoRA fine-tuning pipeline engine (no UI imports)."""
