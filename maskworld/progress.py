"""Progress output that suits where it goes: one helper for every long command.

    with Progress(total=3000, desc="collect MiniGrid-Empty-8x8-v0", unit="steps") as p:
        for ...:
            p.update(n, loss=0.42)          # metrics are optional; the latest ones are shown
    summary("collect", steps=3000, minutes=2.7, throughput=1234, unit="frames/s")

- On a terminal (the stream is a tty): a tqdm bar.
- Anywhere else (a file, a pipe, CI, nohup): one plain line every `interval` seconds with the step, rate,
  ETA and the latest metrics, and never a carriage return: a log read later, or by a program, must hold
  whole lines, and a redirected tqdm bar writes thousands of `\\r`-joined updates into one line.
- `bar=False` (a command's `--no-progress`) keeps the plain lines even on a terminal; `enabled=False`
  (e.g. ranks other than 0) prints nothing.
- The interval is 30 s, or MASKWORLD_PROGRESS_INTERVAL (seconds), or the `interval` argument.
- `summary` prints one line when a stage ends, with numbers rounded for people (`12.8 min`).
Progress goes to stderr (stdout stays for results); the summary is a result and goes to stdout.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import IO, Any

ENV_INTERVAL = "MASKWORLD_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0


def interval_s(interval: float | None = None) -> float:
    """The plain-line interval: the argument, else the environment variable, else 30 s."""
    if interval is not None:
        return float(interval)
    text = os.environ.get(ENV_INTERVAL, "").strip()
    try:
        return max(0.0, float(text)) if text else DEFAULT_INTERVAL
    except ValueError:  # a typo in an env var should not kill a long run
        return DEFAULT_INTERVAL


def is_tty(stream: IO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like objects without isatty
        return False


def num(x: float) -> str:
    """A number for people: three significant digits, whole numbers from 100 on (12.8, 0.0123, 636, 12345)."""
    if x is None or isinstance(x, bool):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def duration(seconds: float) -> str:
    """0.9 s, 45 s, 12.8 min, 3.2 h."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{num(seconds / 60)} min"
    return f"{num(seconds / 3600)} h"


def _metrics(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={num(v) if isinstance(v, (int, float)) else v}" for k, v in metrics.items())


class Progress:
    """A tqdm bar on a terminal, periodic plain lines elsewhere (see the module docstring)."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "steps", initial: int = 0,
                 interval: float | None = None, bar: bool = True, enabled: bool = True, stream: IO | None = None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval_s(interval)
        self.enabled = enabled
        self.metrics: dict[str, Any] = {}
        self.frac: float | None = None
        self._n0, self._t0 = initial, time.monotonic()
        self._last_line = self._t0
        self._bar = None
        if enabled and bar and is_tty(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True,
                             mininterval=1.0)

    @property
    def is_bar(self) -> bool:
        return self._bar is not None

    def update(self, n: int = 1, frac: float | None = None, **metrics: Any) -> None:
        """`n` more units done; `frac`: the share of the budget done when it is not a count (a time budget);
        `metrics`: the latest values to show (loss, accuracy ...)."""
        self.n += n
        if frac is not None:
            self.frac = min(1.0, max(0.0, float(frac)))
        if metrics:
            self.metrics.update(metrics)
        if not self.enabled:
            return
        if self._bar is not None:
            if metrics:
                self._bar.set_postfix({k: num(v) if isinstance(v, (int, float)) else v for k, v in self.metrics.items()},
                                      refresh=False)
            if frac is not None and self.total is None:
                self._bar.set_description(f"{self.desc} {100 * self.frac:.0f}%", refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self.write(self.line(now))

    def set_metrics(self, **metrics: Any) -> None:
        """Change the shown metrics without counting a step."""
        self.update(0, **metrics)

    def done_share(self) -> float | None:
        if self.frac is not None:
            return self.frac
        if self.total:
            return min(1.0, self.n / self.total)
        return None

    def line(self, now: float | None = None) -> str:
        """The plain progress line: `[desc] 120/400 steps (30%), 3.2 steps/s, ETA 1.5 min, loss=6.36`."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._t0, 1e-9)
        rate = (self.n - self._n0) / elapsed
        parts = [f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"]
        share = self.done_share()
        if share is not None:
            parts[0] += f" ({100 * share:.0f}%)"
        parts.append(f"{num(rate)} {self.unit}/s")
        if share is not None and 0 < share < 1:
            if self.total and self.frac is None and rate > 0:
                eta = (self.total - self.n) / rate
            else:  # the share of a time budget: the rest at the pace so far
                eta = elapsed * (1 - share) / share
            parts.append(f"ETA {duration(eta)}")
        text = ", ".join(parts)
        if self.metrics:
            text += ", " + _metrics(self.metrics)
        return f"[{self.desc}] {text}" if self.desc else text

    def write(self, text: str) -> None:
        """A whole line that does not break a bar on a terminal."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def summary(stage: str, steps: int | None = None, minutes: float | None = None, throughput: float | None = None,
            unit: str = "tokens/s", metric: dict[str, float] | str | None = None, steps_unit: str = "optimizer steps",
            enabled: bool = True, stream: IO | None = None) -> str:
    """Print (to stdout) and return the line that closes a stage:
    `[dynamics] done: 400 optimizer steps in 12.8 min, 636 tokens/s, loss=6.36`."""
    parts = []
    if steps is not None:
        parts.append(f"{steps} {steps_unit}")
    if minutes is not None:
        parts[-1:] = [f"{parts[-1]} in {duration(60 * minutes)}"] if parts else [duration(60 * minutes)]
    if throughput is not None:
        parts.append(f"{num(throughput)} {unit}")
    if metric:
        parts.append(metric if isinstance(metric, str) else _metrics(metric))
    text = f"[{stage}] done: " + ", ".join(parts)
    if enabled:
        out = sys.stdout if stream is None else stream
        out.write(text + "\n")
        out.flush()
    return text


def track(iterable, total: int | None = None, desc: str = "", unit: str = "steps", enabled: bool = True):
    """Iterate with progress: `for x in track(xs, desc="idm")` (a bar on a terminal, plain lines elsewhere)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total=total, desc=desc, unit=unit, enabled=enabled) as bar:
        for x in iterable:
            yield x
            bar.update(1)
