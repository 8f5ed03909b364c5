"""The run sentinel's rules over metric rows, its alerts file and its stall check, on rows shaped like
the real ones (the real trainings forced into each failure are in tests/faults/test_fault_sentinel.py)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from ftmodel import i18n
from ftmodel.config import AlertsSection, Config, ConfigError, from_dict
from ftmodel.rundir import create_run
from ftmodel.sentinel import (
    Alert,
    Facts,
    Sentinel,
    check_stall,
    config_notes,
    count_alerts,
    describe,
    read_alerts,
    record_alerts,
    stall_clock,
)
from ftmodel.words import ALERT_RULES
from tests.conftest import ROOT, wait_for


def sft_facts(lr=1.0, max_steps=40):
    return Facts(learning_rate=lr, warmup_ratio=0.03, max_steps=max_steps)


def grpo_facts(**kw):
    base = dict(learning_rate=2e-4, temperature=0.7, num_generations=8, max_completion_length=64, beta=0.04)
    return Facts(**{**base, **kw})


def feed(stage, rows, settings=None, facts=None):
    return Sentinel(stage, settings or AlertsSection(), facts or Facts()).feed_all(rows)


def row(step, **values):
    return {"step": step, "time": 1000.0 + step, **values}


def test_a_nan_grad_norm_alerts_once_per_episode_naming_the_step_and_the_learning_rate():
    # the shape of the real divergence (STACK.md): loss 0.0 with grad_norm NaN from step 10 on
    rows = [
        row(5, loss=42.7, grad_norm=300.0),
        row(10, loss=0.0, grad_norm=math.nan),
        row(15, loss=0.0, grad_norm=math.nan),
    ]
    rows += [row(20, loss=0.1, grad_norm=1.0), row(25, loss=0.1, grad_norm=math.inf)]
    alerts = feed("sft", rows, facts=sft_facts())
    nan = [a for a in alerts if a.rule == "nonfinite_grad_norm"]
    assert [a.step for a in nan] == [10, 25]  # one per episode: again only after it cleared
    assert nan[0].message == "grad-norm is NaN at step 10"
    assert "lower sft.learning_rate (now 1.0)" in nan[0].hint and "sft.warmup_ratio (now 0.03)" in nan[0].hint
    assert math.isnan(nan[0].values["grad_norm"]) and nan[0].key == "nonfinite_grad_norm@10"


def test_untrusted_rows_never_raise_and_never_alert():
    rows = [
        "not a row",
        {"step": "3", "loss": "NaN?"},
        row(1, loss=None, grad_norm=True, reward="x"),
        {"loss": [1, 2]},
        row(2, entropy={"a": 1}, kl=float("nan") if False else "1e9"),
    ]
    for stage in ("sft", "grpo", "distill"):
        assert Sentinel(stage).feed_all(rows) == []


def test_zero_variance_groups_say_whether_groups_are_all_right_or_all_wrong():
    settings = AlertsSection(zero_std_window=3)
    healthy = [row(i, frac_reward_zero_std=0.68, accuracy_reward=0.8) for i in range(1, 30)]  # STACK.md's seed 0
    assert feed("grpo", healthy, settings, grpo_facts()) == []
    right = [row(i, frac_reward_zero_std=0.95, accuracy_reward=0.97) for i in range(1, 4)]
    (alert,) = feed("grpo", right, settings, grpo_facts())
    assert alert.rule == "zero_variance_groups" and alert.step == 3 and "most are all right" in alert.message
    wrong = [row(i, frac_reward_zero_std=1.0, accuracy_reward=0.0) for i in range(1, 4)]
    assert "most are all wrong" in feed("grpo", wrong, settings, grpo_facts())[0].message
    same = [row(i, frac_reward_zero_std=1.0, accuracy_reward=0.5) for i in range(1, 4)]
    (alert,) = feed("grpo", same, settings, grpo_facts(temperature=0.01))
    assert "raise grpo.temperature (now 0.01)" in alert.hint
    assert feed("grpo", same[:2], settings, grpo_facts()) == []  # not for N rows yet


def test_clipped_completions_name_the_limit():
    rows = [row(i, **{"completions/clipped_ratio": 1.0, "completions/mean_length": 8.0}) for i in (1, 2)]
    (alert,) = feed("grpo", rows, AlertsSection(), grpo_facts(max_completion_length=8))
    assert alert.rule == "completions_clipped" and alert.hint == "raise grpo.max_completion_length (now 8)"
    assert alert.message.startswith("100% of completions were cut at grpo.max_completion_length (8 tokens)")
    fine = [row(i, **{"completions/clipped_ratio": 0.0}) for i in range(40)]
    assert feed("grpo", fine, AlertsSection(), grpo_facts()) == []


def test_kl_far_above_its_running_median_or_above_the_bound():
    rows = [row(i, kl=0.01 + 0.001 * i) for i in range(1, 8)] + [row(8, kl=0.5)]
    (alert,) = feed("grpo", rows, AlertsSection(), grpo_facts())
    assert alert.rule == "kl_spike" and alert.step == 8 and "running median" in alert.message
    # a KL growing from 0 early in training is many times its running median, and no spike
    growing = [row(i, kl=v) for i, v in enumerate((0.0, 1e-4, 2e-4, 3e-4, 4e-4, 0.005, 0.01, 0.02, 0.04), 1)]
    assert feed("grpo", growing, AlertsSection(), grpo_facts()) == []
    (alert,) = feed("grpo", [row(1, kl_divergence=3.0)], AlertsSection(), grpo_facts())
    assert alert.variant == "bound" and "alerts.kl_max = 1.0" in alert.message


def test_entropy_collapse_below_the_floor_or_far_below_its_early_level():
    settings = AlertsSection(entropy_window=3)
    healthy = [row(i, entropy=0.07 + 0.01 * math.sin(i)) for i in range(60)]  # the embedded default's level
    assert feed("grpo", healthy, settings, grpo_facts()) == []
    frozen = [row(i, entropy=1e-5) for i in range(1, 4)]
    (alert,) = feed("grpo", frozen, settings, grpo_facts(temperature=0.01))
    assert alert.variant == "floor" and alert.hint == "raise grpo.temperature (now 0.01)"
    falling = [row(i, entropy=1.0) for i in range(1, 4)] + [row(i, entropy=0.05) for i in range(4, 7)]
    (alert,) = feed("grpo", falling, settings, grpo_facts())
    assert alert.variant == "" and alert.step == 6 and "of its early level 1.0" in alert.message


def test_a_reward_that_does_not_move_is_flat_but_a_noisy_one_is_not():
    settings = AlertsSection(reward_flat_window=5)
    assert feed("grpo", [row(i, reward=0.0) for i in range(4)], settings, grpo_facts()) == []
    (alert,) = feed("grpo", [row(i, reward=0.0) for i in range(5)], settings, grpo_facts())
    assert alert.rule == "reward_flat" and alert.step == 4
    noisy = [row(i, reward=1.5 + 0.05 * ((i * 7) % 5)) for i in range(100)]
    assert feed("grpo", noisy, settings, grpo_facts()) == []


def test_the_loss_must_fall_after_warm_up_but_a_low_flat_loss_is_fine():
    settings = AlertsSection(loss_patience_steps=20)
    # the embedded default's shape: falls fast, then flattens near its floor
    healthy = [row(s, loss=6.9 * math.exp(-s / 10) + 0.3) for s in range(5, 500, 5)]
    assert feed("sft", healthy, settings, sft_facts(5e-3, 500)) == []
    flat = [row(s, loss=6.9 + 0.01 * (s % 3)) for s in range(5, 60, 5)]
    (alert,) = feed("sft", flat, settings, sft_facts(1e-7, 60))
    assert alert.rule == "loss_not_falling" and alert.step == 25  # 2 warm-up steps + 20, 3 rows in
    assert "raise sft.learning_rate (now 1e-07)" in alert.hint
    rising = [row(s, loss=6.9 * (1 + s / 10)) for s in range(5, 60, 5)]
    assert feed("sft", rising, settings, sft_facts(1.0, 60))[0].variant == "rising"


def test_a_grad_norm_spike_over_its_running_median():
    rows = [row(s, grad_norm=1.0 + 0.1 * (s % 3)) for s in range(1, 10)] + [row(10, grad_norm=50.0)]
    (alert,) = feed("sft", rows, AlertsSection(), sft_facts())
    assert alert.rule == "grad_norm_spike" and alert.step == 10 and "running median 1.1" in alert.message
    assert feed("grpo", rows, AlertsSection(), grpo_facts()) == []  # an SFT rule


def test_every_rule_has_a_message_and_a_chinese_one():
    i18n.set_language("zh")
    try:
        alert = feed("sft", [row(3, loss=math.nan)], facts=sft_facts())[0]
        assert alert.text() == "第 3 步的 loss 为 NaN" and "调低 sft.learning_rate（当前 1.0）" in alert.hint_text()
        assert describe(alert)[1].startswith("建议：")
    finally:
        i18n.set_language("en")
    assert alert.message == "loss is NaN at step 3"  # the stored text stays English
    assert config_notes("grpo", grpo_facts(beta=0.0)) == ["no KL: grpo.beta is 0"]


def test_stop_on_names_rule_ids_and_an_unknown_one_is_an_error_naming_it():
    cfg = from_dict({"alerts": {"stop_on": ["nonfinite", "stall"]}})
    assert cfg.alerts.stop_on == ["nonfinite", "stall"]
    with pytest.raises(ConfigError, match="alerts.stop_on: unknown rule 'nan_loss' .*nonfinite_loss"):
        from_dict({"alerts": {"stop_on": ["nan_loss"]}}, source="x.toml", text='[alerts]\nstop_on = ["nan_loss"]\n')
    with pytest.raises(ConfigError, match="alerts.stall_floor_s: 0.0 is below the minimum"):
        from_dict({"alerts": {"stall_floor_s": 0.0}})
    assert set(ALERT_RULES) >= {"stall", "nonfinite_loss"}


def alert(key="nonfinite_loss@10", rule="nonfinite_loss"):
    return Alert(rule=rule, stage="sft", step=10, time=time.time(), key=key, params={"value": "NaN", "step": "10"})


def test_recording_is_once_per_key_across_processes_and_runs_the_command_once(tmp_path):
    run = create_run(tmp_path, "sft", config_toml="", argv=[])
    marker = tmp_path / "commands.txt"
    script = (
        "import os,sys; open(sys.argv[1],'a').write(os.environ['FTMODEL_ALERT_RULE']+' '"
        "+os.environ['FTMODEL_ALERT_STEP']+' '+os.environ['FTMODEL_ALERT_MESSAGE']+'\\n')"
    )
    settings = AlertsSection(command=[sys.executable, "-c", script, str(marker)])
    code = (
        "import sys,time; from ftmodel.rundir import Run; from ftmodel.config import AlertsSection; "
        "from ftmodel.sentinel import Alert, record_alerts; from pathlib import Path; "
        f"s = AlertsSection(command={settings.command!r}); "
        "a = Alert(rule='nonfinite_loss', stage='sft', step=10, time=time.time(), key='nonfinite_loss@10', "
        "params={'value': 'NaN', 'step': '10'}); "
        "print(len(record_alerts(Run(Path(sys.argv[1])), [a], s, source=sys.argv[2])))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(run.path), f"p{i}"], env=env, stdout=subprocess.PIPE, text=True
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["0", "0", "0", "1"]
    assert count_alerts(run) == 1 and read_alerts(run)[0].key == "nonfinite_loss@10"
    wait_for(lambda: marker.exists() and marker.read_text(), what="the alert command")
    assert marker.read_text() == "nonfinite_loss 10 loss is NaN at step 10\n"
    assert record_alerts(run, [alert("nonfinite_loss@30")], AlertsSection(), source="t")  # a new episode


def test_a_command_that_hangs_is_killed_after_its_timeout_and_a_missing_one_is_named(tmp_path):
    run = create_run(tmp_path, "sft", config_toml="", argv=[])
    settings = AlertsSection(command=[sys.executable, "-c", "import time; time.sleep(60)"], command_timeout_s=1.0)
    record_alerts(run, [alert()], settings, source="t")
    log = run.path / "alerts_command.log"
    wait_for(lambda: log.exists() and "was killed" in log.read_text(), timeout=30, what="the timeout kill")
    record_alerts(run, [alert("k2")], AlertsSection(command=["/no/such/notifier"]), source="t")
    wait_for(lambda: "could not start" in log.read_text(), timeout=30, what="the missing command named")


def test_the_alerts_file_is_strict_json_and_readers_skip_torn_and_foreign_lines(tmp_path):
    run = create_run(tmp_path, "sft", config_toml="", argv=[])
    a = feed("sft", [row(10, grad_norm=math.nan)], facts=sft_facts())[0]
    record_alerts(run, [a], AlertsSection(), source="trainer")
    line = (run.path / "alerts.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["values"] == {"grad_norm": "NaN"}  # jq and pandas read it
    with open(run.path / "alerts.jsonl", "a") as fh:
        fh.write('[1,2]\n{"rule": 3}\n')
        fh.write('{"rule": "stall", "key": "k", "step": "x", "params": {"idle": "\\u001b[31m"}}\n{"rule": "st')
    alerts = read_alerts(run)
    assert [x.rule for x in alerts] == ["nonfinite_grad_norm", "stall"]
    assert math.isnan(alerts[0].values["grad_norm"]) and alerts[1].step is None
    assert "\x1b" not in alerts[1].text()  # control characters from a file are never printed
    for when in ("Infinity", "NaN", 1e308, -5, "soon", True):  # no time a reader could not format
        (run.path / "alerts.jsonl").write_text(json.dumps({"rule": "stall", "key": "k", "time": when}) + "\n")
        assert read_alerts(run)[0].time == 0.0, when


def running_run(tmp_path, pid, rows, *, started, progress=None, stage="sft"):
    from ftmodel.rundir import process_start_time

    run = create_run(tmp_path, stage, config_toml="", argv=[])
    run.update_state(state="running", pid=pid, proc_start=process_start_time(pid), started=started, **(progress or {}))
    with open(run.metrics_path, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    with open(run.log_path, "w") as fh:
        fh.write("loading\nstep 3 of 40\n")
    return run


@pytest.fixture
def stopped_process():
    """A live process frozen with SIGSTOP, as a user (or a debugger) leaves a stage."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    os.kill(proc.pid, signal.SIGSTOP)
    yield proc
    os.kill(proc.pid, signal.SIGCONT)
    proc.kill()
    proc.wait()


def test_a_stall_is_no_step_for_max_floor_and_k_median_intervals_and_is_recorded_once(tmp_path, stopped_process):
    now = time.time()
    rows = [{"step": s, "time": now - 100 + 2 * s} for s in range(1, 11)]  # a row every 2 s, the last 80 s ago
    run = running_run(tmp_path, stopped_process.pid, rows, started=now - 110)
    settings = AlertsSection(stall_floor_s=30, stall_factor=10)
    clock = stall_clock(run.read_state(), rows, settings)
    assert clock.interval == 2.0 and clock.window == 30 and clock.last_step == 10
    assert check_stall(run, status="running", settings=settings, source="t", now=now - 60) is None  # 20 s idle
    alert = check_stall(run, status="running", settings=settings, source="t", now=now)
    assert alert.rule == "stall" and alert.step == 10 and alert.params["process"] == "stopped (SIGSTOP)"
    assert f"kill -CONT {stopped_process.pid}" in alert.hint and alert.log_tail[-1] == "step 3 of 40"
    assert "no new step for 80 s (last step 10; expected one about every 2 s, waited 30 s)" in alert.message
    again = check_stall(run, status="running", settings=settings, source="other", now=now + 5)
    assert again.key == alert.key and count_alerts(run) == 1  # every checker computes the same key
    assert check_stall(run, status="lost", settings=settings, source="t", now=now) is None
    slow = AlertsSection(stall_floor_s=30, stall_factor=50)  # k × median (100 s) above the floor
    assert check_stall(run, status="running", settings=slow, source="t", now=now, record=False) is None


def test_before_the_first_step_the_startup_window_applies_and_progress_counts_as_a_step(tmp_path, stopped_process):
    now = time.time()
    run = running_run(tmp_path, stopped_process.pid, [], started=now - 100)
    settings = AlertsSection(stall_floor_s=30, stall_startup_s=200)
    assert check_stall(run, status="running", settings=settings, source="t", now=now) is None
    alert = check_stall(run, status="running", settings=settings, source="t", now=now + 150, record=False)
    assert (
        alert.variant == "startup" and "no first step or progress after 4 min 10 s (waited 3 min 20 s)" in alert.message
    )
    run.update_state(progress={"step": 5, "total": 9}, progress_at=now + 140)  # evaluate: progress, no rows
    assert check_stall(run, status="running", settings=settings, source="t", now=now + 150) is None
    assert check_stall(run, status="running", settings=settings, source="t", now=now + 175, record=False).step == 5


def test_the_pipeline_driver_and_a_disabled_sentinel_are_never_stalled(tmp_path, stopped_process):
    now = time.time()
    run = running_run(tmp_path, stopped_process.pid, [], started=now - 10_000, stage="pipeline")
    assert check_stall(run, status="running", settings=AlertsSection(), source="t") is None
    run = running_run(tmp_path, stopped_process.pid, [], started=now - 10_000)
    assert check_stall(run, status="running", settings=AlertsSection(enabled=False), source="t") is None
    assert Config().alerts.enabled and check_stall(run, status="running", source="t") is not None  # defaults


def stalled_workspace(tmp_path, pid):
    """A workspace with one `running` SFT run whose process (`pid`) made no step for 100 s."""
    from ftmodel.config import to_toml

    cfg = Config()
    cfg.alerts.stall_floor_s, cfg.alerts.stall_factor = 30.0, 2.0
    ws = tmp_path / "ws"
    now = time.time()
    run = running_run(
        ws, pid, [{"step": s, "time": now - 120 + s, "loss": 1.0} for s in range(1, 21)], started=now - 130
    )
    run.config_path.write_text(to_toml(cfg))
    return ws, run


def test_runs_and_alerts_find_a_stall_nobody_was_watching_in_english_chinese_and_json(tmp_path, stopped_process):
    from tests.conftest import cli

    ws, run = stalled_workspace(tmp_path, stopped_process.pid)
    listing = cli("runs", "--workspace", str(ws))
    assert listing.returncode == 0 and listing.stdout.splitlines()[0].split()[-1] == "alerts"
    assert next(line for line in listing.stdout.splitlines() if run.id in line).endswith("1 stall")
    (stall,) = read_alerts(run)
    assert stall.source == "ftmodel runs" and stall.step == 20
    shown = cli("alerts", run.id, "--workspace", str(ws)).stdout
    assert f"ALERT stall in {run.id} at step 20" in shown and re.search(r"no new step for 1\d\d s", shown)
    assert f"try: the process is stopped (SIGSTOP or Ctrl-Z): `kill -CONT {stopped_process.pid}`" in shown
    assert "  | step 3 of 40" in shown  # the stage's last log lines
    zh = cli("alerts", "--workspace", str(ws), env={"FTMODEL_LANG": "zh"}).stdout
    assert re.search(r"已 1\d\d s 没有新的步", zh) and "进程已被暂停" in zh and "已暂停（SIGSTOP）" in zh
    (record,) = [json.loads(line) for line in cli("alerts", "--json", "--workspace", str(ws)).stdout.splitlines()]
    assert record["run_id"] == run.id and record["rule"] == "stall" and record["values"]["idle_s"] >= 100
    rules_listed = cli("alerts", "--rules", "--workspace", str(ws)).stdout
    assert all(rule in rules_listed for rule in ALERT_RULES)
    assert count_alerts(run) == 1  # listed three more times, recorded once


def test_no_alerts_is_said_and_the_queue_runner_checks_its_running_jobs(tmp_path, stopped_process):
    from ftmodel.queue import check_stalls
    from tests.conftest import cli

    assert "no alerts in" in cli("alerts", "--workspace", str(tmp_path / "empty")).stdout
    ws, run = stalled_workspace(tmp_path, stopped_process.pid)
    said = []
    check_stalls(ws, [{"id": "job-1", "run_id": run.id, "state": "running"}], said.append)
    assert said and said[0].startswith("job-1: ALERT stall: no new step for") and count_alerts(run) == 1
    assert read_alerts(run)[0].source == "queue runner"
