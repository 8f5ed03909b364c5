"""The console's resume (`e`): a dialog shows where the checkpoint continues — step, next learning rate,
data position, changed config keys — as `ftmodel sft --resume` prints it, then starts the resume; a
changed LoRA shape is refused in the dialog, changed data is offered with --force. No torch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ftmodel.launcher import LaunchError
from tests.conftest import write_config
from tests.tui.fake_runs import make_run
from tests.tui.test_app import make_app, select_stage, until
from tui.dialogs import ResumeScreen

pytestmark = pytest.mark.anyio
RUN = "sft-20260101-000000-0001"


def stopped_sft_run(ws: Path) -> Path:
    """A cancelled SFT run of the default config (100 steps) with a whole checkpoint at step 40."""
    path = make_run(ws, RUN, "sft", "cancelled", progress=(40, 100), exit_code=130)
    write_config(path / "config.toml", {"sft": {"max_steps": 100}})
    ckpt = path / "checkpoints" / "checkpoint-40"
    ckpt.mkdir(parents=True)
    state = {"global_step": 40, "max_steps": 100, "epoch": 0.32, "train_batch_size": 16, "log_history": []}
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    return path


def dialog_text(app) -> str:
    return app.screen.text if isinstance(app.screen, ResumeScreen) else ""


@pytest.fixture
def launches(monkeypatch):
    """Record what the console asks the launcher to start (and start nothing)."""
    seen = []

    def start_stage(stage, cfg, workspace, args, *, argv, **kw):
        seen.append((stage, args, argv))
        raise LaunchError("recorded by the test")

    monkeypatch.setattr("ftmodel.launcher.start_stage", start_stage)
    return seen


async def test_the_resume_dialog_shows_where_the_checkpoint_continues_and_resumes_on_yes(ws, tmp_path, launches):
    stopped_sft_run(ws)
    cfg = write_config(tmp_path / "now.toml", {"sft": {"max_steps": 100, "save_steps": 20}})
    app = make_app(ws, cfg)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.selected_run == RUN, what="the run selected")
        await pilot.press("e")
        await until(pilot, lambda: dialog_text(app), what="the resume dialog")
        text = dialog_text(app)
        # cosine over 100 steps, 3 warm-up steps (0.03 × 100), peak 5e-3: the rate after 40 steps
        lr = 5e-3 * 0.5 * (1 + math.cos(math.pi * (40 - 3) / 97))
        assert f"resuming {RUN} from checkpoint-40" in text
        assert "step: 40/100 (the next step is 41)" in text
        assert f"learning rate: {lr:.4g} next (cosine, peak 0.005 from the checkpoint, 3 warm-up steps of 100)" in text
        assert "data position: epoch 0.320, 640 samples seen" in text
        assert "sft.save_steps: 50 → 20" in text and " !" not in text
        assert app.screen.question == f"Resume {RUN} from checkpoint-40?"
        await pilot.press("y")
        await until(pilot, lambda: launches, what="the launch")
    stage, args, argv = launches[0]
    assert stage == "sft" and args["resume"] == RUN and "force" not in args
    assert argv[-2:] == ["--resume", RUN]


async def test_a_changed_lora_shape_is_refused_in_the_dialog(ws, tmp_path, launches):
    stopped_sft_run(ws)
    cfg = write_config(tmp_path / "now.toml", {"sft": {"max_steps": 100}, "lora": {"r": 8}})
    app = make_app(ws, cfg)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.selected_run == RUN, what="the run selected")
        await pilot.press("e")
        await until(pilot, lambda: dialog_text(app), what="the resume dialog")
        text = dialog_text(app)
        assert "lora.r: 16 → 8 !" in text
        assert f"--resume {RUN}: lora.r changed since the checkpoint was saved" in text
        assert app.screen.question is None  # nothing to answer: the dialog only says why
        await pilot.press("y")
        await until(pilot, lambda: not isinstance(app.screen, ResumeScreen), what="the dialog closed")
        await pilot.pause(0.2)
    assert launches == []


async def test_changed_data_is_offered_with_force(ws, tmp_path, launches):
    stopped_sft_run(ws)
    cfg = write_config(tmp_path / "now.toml", {"sft": {"max_steps": 100}, "data": {"seed": 5}})
    app = make_app(ws, cfg)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_stage(app, pilot, "sft")
        await until(pilot, lambda: app.main.selected_run == RUN, what="the run selected")
        await pilot.press("e")
        await until(pilot, lambda: dialog_text(app), what="the resume dialog")
        assert "data.seed: 0 → 5 !" in dialog_text(app)
        assert app.screen.question == "Continue on the new data anyway (--force)?"
        await pilot.press("y")
        await until(pilot, lambda: launches, what="the launch")
    _, args, argv = launches[0]
    assert args == {"resume": RUN, "force": True} and argv[-3:] == ["--resume", RUN, "--force"]
