"""Progress output suits where it goes: a bar on a terminal, whole plain lines in a file, a rounded summary."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from maskworld.progress import ENV_INTERVAL, Progress, duration, interval_s, num, summary

ROOT = Path(__file__).resolve().parents[1]


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_bar_on_a_tty_plain_lines_elsewhere():
    tty, log = FakeTty(), io.StringIO()
    with Progress(total=10, desc="stage", stream=tty) as p:
        assert p.is_bar
        for _ in range(10):
            p.update(1, loss=0.123456)
    assert "\r" in tty.getvalue()  # tqdm redraws its line

    with Progress(total=10, desc="stage", stream=log, interval=0) as p:
        assert not p.is_bar
        for i in range(10):
            p.update(1, loss=1 / (i + 1))
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10 and lines[4].startswith("[stage] 5/10 steps (50%), ")
    assert re.search(r"steps/s, ETA [\d.]+ s, loss=0\.2$", lines[4]), lines[4]


def test_no_bar_on_a_tty_when_asked_and_silent_when_disabled():
    tty = FakeTty()
    with Progress(total=4, desc="s", stream=tty, bar=False, interval=0) as p:  # --no-progress: log lines
        p.update(2)
    assert tty.getvalue().startswith("[s] 2/4 steps (50%), ") and "\r" not in tty.getvalue()
    quiet = io.StringIO()
    with Progress(total=4, stream=quiet, enabled=False, interval=0) as p:  # e.g. ranks other than 0
        p.update(2)
    assert quiet.getvalue() == ""


def test_lines_come_at_the_interval_and_time_budgets_show_their_share():
    log = io.StringIO()
    p = Progress(desc="d", stream=log, interval=3600)
    for _ in range(100):
        p.update(1)
    assert log.getvalue() == ""  # nothing before the interval
    p.interval = 0
    p.update(1, frac=0.25, acc=0.5)
    assert re.fullmatch(r"\[d\] 101 steps \(25%\), [\d.]+ steps/s, ETA [\d.]+ s, acc=0\.5\n", log.getvalue())


def test_interval_from_env(monkeypatch):
    monkeypatch.setenv(ENV_INTERVAL, "0.2")
    assert interval_s() == 0.2 and interval_s(5) == 5
    monkeypatch.setenv(ENV_INTERVAL, "soon")
    assert interval_s() == 30.0
    monkeypatch.delenv(ENV_INTERVAL)
    assert interval_s() == 30.0


def test_summary_rounds_for_people():
    out = io.StringIO()
    line = summary("dynamics", steps=400, minutes=12.7996, throughput=636.33, metric={"loss": 6.3612, "val_acc": 0.13234},
                   stream=out)
    assert line == "[dynamics] done: 400 optimizer steps in 12.8 min, 636 tokens/s, loss=6.36 val_acc=0.132"
    assert out.getvalue() == line + "\n"
    assert (num(12345.6), num(0.0123456), duration(0.43), duration(44.6), duration(5400)) == ("12346", "0.0123", "0.4 s",
                                                                                          "45 s", "1.5 h")


def test_collect_into_a_file_logs_plain_lines_and_a_summary(tmp_path):
    """A real command with its output redirected to a file (nohup, CI): progress lines, a summary, no \\r."""
    log = tmp_path / "collect.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{ENV_INTERVAL: "0.01"})
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, "-m", "maskworld", "collect", "--env", "MiniGrid-Empty-5x5-v0", "--steps", "300",
                            "--out", str(tmp_path / "data"), "--num-envs", "1", "--size", "32"],
                           stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path, env=env, timeout=120)
    text = log.read_text()
    assert r.returncode == 0, text
    assert "\r" not in text
    lines = text.splitlines()
    progress = [line for line in lines if re.match(r"\[collect MiniGrid-Empty-5x5-v0\] \d+/300 steps \(\d+%\), [\d.]+ steps/s", line)]
    assert progress, text
    assert any(re.fullmatch(r"\[collect\] done: 300 steps in [\d.]+ s, \d+(\.\d+)? frames/s, episodes=\d+", line) for line in lines), text
