"""Measure a hosted world's persistence and own time with real `maskworld host` processes -> JSON.

    python scripts/host_bars.py --world breakout --out host_bars.json [--kills 10 --kill-minutes 10 --idle-minutes 5]

1. Own time: one host runs `--idle-minutes` with nobody connected; ticks made vs rate x time.
2. Persistence: a host is SIGKILLed `--kills` times at random moments over `--kill-minutes`. Before each kill
   the committed ticks are read from a second connection; after it, every one of them must still be there
   (0 lost), `PRAGMA integrity_check` must say ok, and the restart must resume at the last committed tick.
3. Replay: `maskworld sessions replay` rebuilds every tick from tick 0 and checks each frame's hash.
"""

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def host_cmd(world, db, rate, minutes=None):
    cmd = [sys.executable, "-m", "maskworld", "host", "bars", "--world", world, "--db", str(db), "--rate", str(rate),
           "--no-progress"]
    return cmd + (["--minutes", str(minutes)] if minutes else [])


def committed(db) -> list[int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT tick FROM ticks ORDER BY tick")]
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default="breakout")
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--kill-minutes", type=float, default=10.0)
    ap.add_argument("--idle-minutes", type=float, default=5.0)
    ap.add_argument("--out", default="host_bars.json")
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    work = Path(tempfile.mkdtemp(prefix="host_bars_"))
    out: dict = {"world": a.world, "rate": a.rate}

    if a.idle_minutes > 0:
        db = work / "idle.db"
        t0 = time.monotonic()
        subprocess.run(host_cmd(a.world, db, a.rate, a.idle_minutes), env=env, check=True, capture_output=True)
        took = time.monotonic() - t0
        con = sqlite3.connect(db)
        t = np.array([r[0] for r in con.execute("SELECT t FROM ticks ORDER BY tick")])
        con.close()
        rate = (len(t) - 1) / (t[-1] - t[0])  # the wall clock of the ticks themselves, not the tick count
        gaps = np.diff(t) * 1000
        out["idle"] = {"minutes": a.idle_minutes, "ticks": len(t), "wall_seconds": float(t[-1] - t[0]), "rate": rate,
                       "rate_error": rate / a.rate - 1, "gap_ms_p50": float(np.median(gaps)),
                       "gap_ms_p99": float(np.quantile(gaps, 0.99)), "gap_ms_max": float(gaps.max()), "process_seconds": took}
        print(f"own time: {len(t)} ticks over {t[-1] - t[0]:.1f} s of wall clock = {rate:.4f} ticks/s at a target of "
              f"{a.rate}/s ({100 * (rate / a.rate - 1):+.3f} %); tick gaps p50 {np.median(gaps):.1f} ms, p99 "
              f"{np.quantile(gaps, 0.99):.1f} ms", flush=True)

    db = work / "kill.db"
    rng = np.random.default_rng(0)
    gaps = rng.uniform(0.3, 1.7, a.kills)
    gaps *= a.kill_minutes * 60 / gaps.sum()
    lost, resumed_ok, checks = 0, 0, []
    before: list[int] = []
    for i, gap in enumerate(gaps):
        p = subprocess.Popen(host_cmd(a.world, db, a.rate), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             text=True)
        first = p.stdout.readline()
        want = "created" if i == 0 else f"at tick {before[-1] if before else 0} "
        resumed_ok += want in first
        time.sleep(gap)
        before = committed(db)
        p.send_signal(signal.SIGKILL)
        p.wait()
        after = committed(db)
        missing = len(set(before) - set(after))
        lost += missing
        con = sqlite3.connect(db)
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        con.close()
        checks.append({"kill": i + 1, "after_s": round(float(gap), 1), "committed_before": len(before),
                       "after": len(after), "lost": missing, "integrity": ok, "resumed_at_last": want in first})
        before = after
        print(f"kill {i + 1}: {len(after)} ticks committed, {missing} lost, integrity {ok}, restart "
              f"{'resumed at the last tick' if want in first else 'WRONG: ' + first.strip()}", flush=True)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "maskworld", "sessions", "replay", "bars", "--db", str(db)], env=env,
                       capture_output=True, text=True)
    out["kills"] = {"n": a.kills, "minutes": a.kill_minutes, "lost": lost, "resumed_at_last": resumed_ok,
                    "integrity_ok": all(c["integrity"] == "ok" for c in checks), "ticks": len(before), "detail": checks,
                    "replay_exact": r.returncode == 0, "replay_output": (r.stdout + r.stderr).strip()[-400:],
                    "replay_seconds": time.monotonic() - t0}
    print(f"replay from tick 0: {'every frame equal to its record' if r.returncode == 0 else 'FAILED'}: "
          f"{(r.stdout + r.stderr).strip()[-200:]}")
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
