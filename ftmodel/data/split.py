"""The train/eval split of user data: by a hash of the question, so a question never straddles and
the split does not depend on row order."""

from __future__ import annotations

import hashlib

from ftmodel.data.loaders import DataError
from ftmodel.i18n import t


def split_records(records: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Split user records deterministically by a hash of the question, so a question never straddles;
    records that arrive with a split (a saved DatasetDict's train/test) keep it."""
    train, evals = [], []
    for r in records:
        if r.get("split") in ("train", "eval"):
            held_out = r["split"] == "eval"
        else:
            h = int.from_bytes(hashlib.sha1(f"{seed}|{r['question']}".encode()).digest()[:4], "big") / 2**32
            held_out = h < eval_fraction
        (evals if held_out else train).append({**r, "split": "eval" if held_out else "train"})
    if not train:
        raise DataError(t("data.source: no training questions left after holding out {share:.0%}", share=eval_fraction))
    return train, evals
