"""The batching loop: every due session of every client -> one `world.step_many` call.

Design choices:
- The ticker is one thread, and it is the model thread: it runs *all* model work, batched steps and
  the jobs handlers hand it (new sessions, restores, snapshots for saving, previews). The event loop
  never runs the model, so sockets stay responsive, and a session is never read while it is being
  stepped. Slow work that needs no model (SQLite, image decoding) runs on neither (server.py's pools).
- A plain thread rather than an asyncio task: it serves clients on any event loop (uvicorn has one;
  Starlette's TestClient may run each WebSocket on its own), and frames go back with
  `loop.call_soon_threadsafe`.
- A global clock at --fps: in real-time mode a client is due once per tick (its key held, or the idle
  action), so all real-time clients share one batch per tick; in step mode a client is due as soon as it
  has a queued action, and wakes the thread at once. When the model is slower than the tick, every
  batch takes everyone due (throughput grows with batch size, latency stays one batch).
- The agent is injected: `policy` maps frames (B,S,S,3) uint8 to world actions (B,), so serving
  does not depend on how agents are trained or stored.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import NamedTuple

import numpy as np

from maskworld.serve.client import PlayClient
from maskworld.serve.protocol import FrameInfo, encode_frame

log = logging.getLogger("maskworld.serve")



class Job(NamedTuple):
    """One client's part of a batch, read under the lock: the driver with the action, so a switch during the
    step cannot mix them."""

    client: PlayClient
    session: object
    generation: int
    action: int | None
    driver: str


Policy = Callable[[np.ndarray], "np.ndarray | list[int]"]


class Ticker:
    def __init__(self, world, fps: float = 20.0, max_batch: int = 64, policy: Policy | None = None):
        """policy: frames (B,S,S,3) uint8 -> (B,) world actions, for clients whose driver is "agent"."""
        if not fps > 0:
            raise ValueError("fps must be positive")
        self.world, self.period, self.max_batch, self.policy = world, 1.0 / fps, max_batch, policy
        self.clients: set[PlayClient] = set()
        self.lock = threading.RLock()  # guards client state shared with the event loop(s); clients take it too
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.frames = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self.lock:
            if self._thread is None:
                self._stop = False
                self._thread = threading.Thread(target=self._run, name="maskworld-ticker", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def add(self, client: PlayClient) -> None:
        self.start()
        with self.lock:
            self.clients.add(client)
        self._wake.set()

    def remove(self, client: PlayClient) -> None:
        client.close()
        with self.lock:
            self.clients.discard(client)

    def wake(self) -> None:
        self._wake.set()

    async def run_model(self, fn, *args):
        """Run `fn(*args)` on the model thread, between batches."""
        self.start()
        fut: Future = Future()
        self._jobs.put((fn, args, fut))
        self._wake.set()
        return await asyncio.wrap_future(fut)

    # ------------------------------------------------------------------ the loop (model thread)
    def _run_jobs(self) -> None:
        while True:
            try:
                fn, args, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001  (handed back to the awaiting handler, which re-raises it)
                fut.set_exception(e)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop:
            self._wake.clear()
            self._run_jobs()
            tick = int((time.monotonic() - t0) / self.period)
            with self.lock:
                due = [c for c in self.clients if c.is_due(tick)][: self.max_batch]
                jobs = [Job(c, *c.take_action(tick)) for c in due]
                realtime = any(c.mode == "realtime" and c.session is not None for c in self.clients)
            if jobs:
                self._step(jobs)
            else:
                self._wake.wait(t0 + (tick + 1) * self.period - time.monotonic() if realtime else None)

    def _step(self, jobs: list[Job]) -> None:
        try:
            t = time.perf_counter()
            actions = self._actions(jobs)
            outs = list(self.world.step_many([j.session for j in jobs], actions))
            ms = (time.perf_counter() - t) * 1000
            images = [encode_frame(frame, j.client.fmt) for j, (frame, _, _) in zip(jobs, outs)]
            infos = [FrameInfo.of(j.session, reward=float(reward), done=bool(done), model_ms=ms, batch=len(jobs),
                                  action=int(a), driver=j.driver) for j, a, (_, reward, done) in zip(jobs, actions, outs)]
        except Exception as e:  # a model bug must not kill the server: report it, keep ticking
            log.exception("batched step failed")
            for j in jobs:
                j.client.drop_pending()
                self._post(j.client, j.client.send_json, type="error", message=f"step failed: {type(e).__name__}: {e}")
            return
        self.batches += 1
        self.frames += len(jobs)
        for j, info, image in zip(jobs, infos, images):
            self._post(j.client, j.client.deliver, j.generation, info, image)

    def _actions(self, jobs: list[Job]) -> list[int]:
        """The clients' actions, with the policy's (one batched forward on the current frames) for agent-driven ones."""
        actions = [j.action for j in jobs]
        idx = [i for i, j in enumerate(jobs) if j.driver == "agent"]
        if idx and self.policy is None and getattr(self.world, "has_own_policy", False):
            for i in idx:  # a unified world's own policy: the next action by mask, toward the session's words
                actions[i] = jobs[i].session.act()
            return actions
        if idx and self.policy is not None:
            for i, a in zip(idx, self.policy(np.stack([jobs[i].session.frame for i in idx]))):
                actions[i] = int(a)
        return actions

    def _post(self, c: PlayClient, fn, *args, **kw) -> None:
        if c.closed:
            return
        try:
            c.loop.call_soon_threadsafe(lambda: fn(*args, **kw))
        except RuntimeError:  # its event loop is gone
            self.remove(c)
