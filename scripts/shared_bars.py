"""Measure shared play of a world of several agents: two real Chromium pages and the resident agents -> JSON.

    python scripts/shared_bars.py --world worlds/coins --rate 15 --seconds 60 --out shared_bars.json

A `maskworld play WORLD --persistent NAME` server (its own process, as a user runs it) ticks the instance; two
headless Chromium pages (Debian's chromium, driven by Playwright) open it, each takes a free avatar and holds its
own arrow key; the resident agent drives the other avatars. Measured over `--seconds`:
- ticks/s: ticks committed to the timeline (read from the SQLite file) per second of wall time;
- who acted: per avatar, the drivers logged with the ticks of the window (two people, the rest the agent);
- identical frames: the pages' per-tick checksums (`window.mw.sums`) agree on every tick both saw;
- each page's received frames per second.
"""

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)), None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ticks(db) -> list[tuple[int, float, list]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [(r[0], r[1], json.loads(r[2])) for r in con.execute("SELECT tick, t, actors FROM ticks ORDER BY tick")]
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True)
    ap.add_argument("--rate", type=float, default=15.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default="shared_bars.json")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="shared_bars_"))
    db, port = work / "yard.db", free_port()
    log = open(work / "server.log", "w+")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "maskworld", "play", a.world, "--persistent", "yard", "--persistent-db",
                               str(db), "--fps", str(a.rate), "--port", str(port), "--db", str(work / "s.db")],
                              stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    url = f"http://127.0.0.1:{port}/"
    out: dict = {"world": a.world, "rate": a.rate, "seconds": a.seconds}
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            pages = [browser.new_page() for _ in range(2)]
            for page in pages:
                page.goto(url)
                page.wait_for_function("() => window.mw.info && window.mw.frames > 3", timeout=60000)
            for page, key in zip(pages, ("ArrowRight", "ArrowDown")):
                page.click("#driver-you")
                page.wait_for_function("() => window.mw.driver === 'you'")
                page.keyboard.down(key)
            time.sleep(2.0)  # both keys are held from here on
            t0, first = time.time(), ticks(db)[-1][0]
            frames0 = [pg.evaluate("window.mw.frames") for pg in pages]
            time.sleep(a.seconds)
            t1, window = time.time(), [t for t in ticks(db) if t[0] > first]
            frames1 = [pg.evaluate("window.mw.frames") for pg in pages]
            sums = [pg.evaluate("window.mw.sums") for pg in pages]
            common = set(sums[0]) & set(sums[1])
            avatars = pages[0].evaluate("window.mw.header.avatars")
            browser.close()
        drivers = [Counter("agent" if who == "agent" else "person" for _, _, actors in window for who in [actors[i]])
                   for i in range(len(window[0][2]))] if window else []
        out.update({"ticks": len(window), "ticks_per_s": len(window) / (t1 - t0),
                    "page_frames_per_s": [(b - f) / (t1 - t0) for f, b in zip(frames0, frames1)],
                    "drivers_per_avatar": [dict(c) for c in drivers], "avatars_seen_by_page_a": avatars,
                    "common_ticks": len(common), "identical": all(sums[0][k] == sums[1][k] for k in common)})
    finally:
        server.terminate()
        server.wait(20)
    print(json.dumps(out, indent=1))
    Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
