"""Load test for `maskworld play`: N concurrent WebSocket sessions against a server on this machine.

    # against a running server
    python scripts/load_test.py --url http://127.0.0.1:8000/ --clients 16 --duration 60
    # or start one on a free port for the test
    python scripts/load_test.py --spawn path/to/world --clients 16 --duration 60 --out load.json

Phases: one client alone for --single-duration seconds (the baseline), then --clients at once for
--duration seconds. Step mode (default) is closed loop: each client sends an action and waits for its
frame, so the server is always saturated and latency = action sent -> frame received (including the
wait for the next batch). Real-time mode measures the delivered frame rate at the server's --fps and
the latency from a key change to the first frame made with it.

Prints one JSON object: errors, aggregate FPS vs the single session's FPS, p50/p95 frame latency,
mean batch size. Loopback only and bounded (at most 64 clients, 600 s).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlencode, urlsplit

MAX_CLIENTS, MAX_SECONDS, FRAME_TIMEOUT = 64, 600, 30.0


def unpack_header(msg: bytes) -> dict:
    n = int.from_bytes(msg[:4], "little")
    return json.loads(msg[4 : 4 + n])


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        sys.exit(f"error: cannot resolve {host!r}")
    if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        sys.exit(f"error: {url} is not on this machine; the load test only runs against loopback servers")


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


class Stats:
    def __init__(self):
        self.frames, self.latencies_ms, self.batches, self.errors, self.model_ms = 0, [], [], [], []


async def client(ws_url: str, mode: str, seconds: float, stats: Stats, seed: int, n_actions_hint: int = 3) -> int:
    import websockets

    frames = 0
    try:
        async with websockets.connect(f"{ws_url}&{urlencode({'seed': seed, 'mode': mode})}", max_size=2**22,
                                      open_timeout=FRAME_TIMEOUT) as ws:
            hello, first = None, False
            while hello is None or not first:  # hello, then the first frame
                m = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
                if isinstance(m, str):
                    j = json.loads(m)
                    if j.get("type") == "hello":
                        hello = j
                    elif j.get("type") == "error":
                        stats.errors.append(j["message"])
                else:
                    first = True
            n = len(hello["actions"])
            rng = random.Random(seed)
            end = time.perf_counter() + seconds
            if mode == "step":
                while time.perf_counter() < end:
                    t = time.perf_counter()
                    await ws.send(json.dumps({"type": "action", "action": rng.randrange(n)}))
                    while True:
                        m = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
                        if isinstance(m, bytes):
                            break
                        j = json.loads(m)
                        if j.get("type") == "error":
                            stats.errors.append(j["message"])
                    h = unpack_header(m)
                    stats.latencies_ms.append((time.perf_counter() - t) * 1000)
                    stats.batches.append(h.get("batch") or 1)
                    stats.model_ms.append(h.get("model_ms") or 0.0)
                    frames += 1
            else:  # realtime: change the held key every 0.5 s, time until a frame carries it
                sent_at, want, next_change = None, None, time.perf_counter()
                while time.perf_counter() < end:
                    now = time.perf_counter()
                    if now >= next_change:
                        want, sent_at, next_change = rng.randrange(n), now, now + 0.5
                        await ws.send(json.dumps({"type": "action", "action": want}))
                    m = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
                    if isinstance(m, str):
                        j = json.loads(m)
                        if j.get("type") == "error":
                            stats.errors.append(j["message"])
                        continue
                    h = unpack_header(m)
                    frames += 1
                    stats.batches.append(h.get("batch") or 1)
                    stats.model_ms.append(h.get("model_ms") or 0.0)
                    if sent_at is not None and h.get("action") == want:
                        stats.latencies_ms.append((time.perf_counter() - sent_at) * 1000)
                        sent_at = None
    except Exception as e:  # connection refused/closed, timeouts: counted, not fatal
        stats.errors.append(f"{type(e).__name__}: {e}")
    stats.frames += frames
    return frames


async def phase(ws_url: str, clients: int, seconds: float, mode: str) -> dict:
    stats = Stats()
    t = time.perf_counter()
    per = await asyncio.gather(*[client(ws_url, mode, seconds, stats, seed=i) for i in range(clients)])
    wall = time.perf_counter() - t
    return {
        "clients": clients, "seconds": round(wall, 2), "frames": stats.frames,
        "aggregate_fps": round(stats.frames / seconds, 2),
        "per_client_fps": {"min": round(min(per) / seconds, 2), "mean": round(sum(per) / clients / seconds, 2),
                           "max": round(max(per) / seconds, 2)},
        "latency_ms": {"p50": _r(percentile(stats.latencies_ms, 50)), "p95": _r(percentile(stats.latencies_ms, 95)),
                       "max": _r(max(stats.latencies_ms, default=None))},
        "model_ms_per_batch_p50": _r(percentile(stats.model_ms, 50)),
        "mean_batch": _r(sum(stats.batches) / len(stats.batches) if stats.batches else None),
        "errors": len(stats.errors), "error_examples": sorted(set(stats.errors))[:5],
    }


def _r(x):
    return None if x is None else round(x, 2)


def spawn(world: str, fps: float, threads: int | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"maskworld-load-{port}.db")
    proc = subprocess.Popen([sys.executable, "-m", "maskworld", "play", world, "--port", str(port), "--db", db,
                             "--fps", str(fps)] + (["--threads", str(threads)] if threads else []), stdout=sys.stderr)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        if proc.poll() is not None:
            sys.exit(f"error: the server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return proc, url
        except OSError:
            if time.time() > deadline:
                proc.kill()
                sys.exit("error: the server did not start in 120 s")
            time.sleep(0.3)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="page URL of a running server, e.g. http://127.0.0.1:8000/")
    src.add_argument("--spawn", metavar="WORLD", help="start `maskworld play WORLD` on a free port for the test")
    p.add_argument("--token", default=os.environ.get("MASKWORLD_TOKEN"))
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=60.0, help="seconds with all clients")
    p.add_argument("--single-duration", type=float, default=10.0, help="seconds of the one-client baseline (0: skip)")
    p.add_argument("--mode", choices=("step", "realtime"), default="step")
    p.add_argument("--fmt", choices=("rgba", "png"), default="rgba", help="frame encoding asked of the server")
    p.add_argument("--fps", type=float, default=20.0, help="server --fps with --spawn")
    p.add_argument("--threads", type=int, default=None, help="server --threads with --spawn")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS:
        sys.exit(f"error: --clients must be 1..{MAX_CLIENTS}")
    if not 0 < args.duration <= MAX_SECONDS or not 0 <= args.single_duration <= MAX_SECONDS:
        sys.exit(f"error: durations must be at most {MAX_SECONDS} s")
    try:
        import websockets  # noqa: F401
    except ImportError:
        sys.exit("error: pip install websockets")

    proc = None
    if args.spawn:
        proc, url = spawn(args.spawn, args.fps, args.threads)
    else:
        url = args.url
    try:
        check_loopback(url)
        parts = urlsplit(url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        ws_url = f"{scheme}://{parts.netloc}/ws?" + urlencode({"token": args.token or "", "fmt": args.fmt})
        result = {"url": f"{parts.scheme}://{parts.netloc}/", "mode": args.mode, "fmt": args.fmt}
        if args.single_duration > 0:
            result["single"] = asyncio.run(phase(ws_url, 1, args.single_duration, args.mode))
        result["concurrent"] = asyncio.run(phase(ws_url, args.clients, args.duration, args.mode))
        if "single" in result and result["single"]["aggregate_fps"]:
            result["aggregate_vs_single"] = round(result["concurrent"]["aggregate_fps"] / result["single"]["aggregate_fps"], 2)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 1 if result["concurrent"]["errors"] or result.get("single", {}).get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
