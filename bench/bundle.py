"""Bundles: pack the embedded pipeline's runs, verify and import them, with sizes and times side by side
(plain tar vs gzip, without vs with model weights, a full bundle vs a --new one with nothing new).

    python -m bench.bundle [--workspace W]

Without --workspace it first runs a small embedded pipeline (the tests' small settings, about a
minute on 2 cores) into a temp dir. Nothing is sent anywhere; imports go to temp workspaces.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_workspace(tmp: Path) -> Path:
    from tests.conftest import SMALL_OVERRIDES, write_config

    config = write_config(tmp / "small.toml", SMALL_OVERRIDES)
    ws = tmp / "ws"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ftmodel", "pipeline", "--config", str(config), "--workspace", str(ws), "--no-judge"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=1800,
    )
    print(f"built the embedded pipeline's workspace in {time.perf_counter() - start:.0f} s: {ws}")
    return ws


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", help="an existing workspace (default: run a small pipeline first)")
    a = p.parse_args()

    from ftmodel import bundle

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ws = Path(a.workspace) if a.workspace else build_workspace(tmp)
        # The bench must not change what the box's next `--new` bundle carries: work on a copy's ledger.
        ledger = bundle.ledger_path(ws)
        saved = ledger.read_bytes() if ledger.exists() else None
        try:
            start = time.perf_counter()
            plan = bundle.plan_bundle(ws)
            t_plan = time.perf_counter() - start
            print(
                f"{len(plan.runs)} runs, {len(plan.entries)} files, {bundle.human_size(plan.bytes)} to carry; "
                f"model files left out: {bundle.human_size(plan.model_bytes)} (planned in {t_plan * 1000:.0f} ms)"
            )
            print(
                f"{'bundle':26} {'carried':>10} {'file':>10} {'ratio':>6} {'pack s':>7} {'verify s':>9} {'import s':>9}"
            )
            rows = [("tar", "b.tar", False), ("tar.gz", "b.tar.gz", False), ("tar.gz --with-models", "m.tar.gz", True)]
            for label, name, models in rows:
                info = bundle.make_bundle(ws, tmp / name, with_models=models)
                start = time.perf_counter()
                bundle.verify_bundle(info.path, tmp / f"verify-{name}")
                t_verify = time.perf_counter() - start
                res = bundle.import_bundle(info.path, tmp / f"import-{name}")
                print(
                    f"{label:26} {bundle.human_size(info.bytes_in):>10} {bundle.human_size(info.bytes_out):>10} "
                    f"{info.bytes_out / max(info.bytes_in, 1):6.2f} {info.seconds:7.3f} {t_verify:9.3f} "
                    f"{res.seconds:9.3f}"
                )
            start = time.perf_counter()
            again = bundle.import_bundle(tmp / "b.tar.gz", tmp / "import-b.tar.gz")
            print(
                f"importing the same bundle again: {again.written} written, {again.unchanged} unchanged "
                f"in {time.perf_counter() - start:.3f} s"
            )
            start = time.perf_counter()
            new_plan = bundle.plan_bundle(ws, new_only=True)
            print(
                f"--new right after: {len(new_plan.entries)} files, {bundle.human_size(new_plan.bytes)} "
                f"(planned in {(time.perf_counter() - start) * 1000:.0f} ms)"
            )
        finally:
            if saved is None:
                ledger.unlink(missing_ok=True)
            else:
                ledger.write_bytes(saved)


if __name__ == "__main__":
    main()
