"""The batching loop: every due session of every client -> one `world.step_many` call.

Design choices:
- The ticker is one thread, and it is the model thread: it runs *all* model work, batched steps and
  the jobs handlers hand it (new sessions, resumes, saves). The event loop never runs the model, so
  sockets stay responsive, and a session is never read while it is being stepped.
- A plain thread rather than an asyncio task: it serves clients on any event loop (uvicorn has one;
  Starlette's TestClient runs each WebSocket on its own), and frames go back with
  `loop.call_soon_threadsafe`.
- A global clock at --fps: in real-time mode a client is due once per tick (its key held, or the idle
  action), so all real-time clients share one batch per tick; in step mode a client is due as soon as it
  has a queued action, and wakes the thread at once. When the model is slower than the tick, every
  batch takes everyone due (throughput grows with batch size, latency stays one batch).
- Each client has a generation counter: replacing its session (reset, new, resume) bumps it, and a
  frame computed for the old session is dropped instead of sent.
- Clients never block the ticker: frames go into a small per-client outbox that drops the oldest
  message when full; a closed client is skipped and forgotten (no stuck state on disconnect).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import json
import logging
import queue
import struct
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("maskworld.serve")

MAX_PENDING_STEPS = 16  # step-mode actions queued per client before new ones are refused
OUTBOX_SIZE = 8


def encode_frame(frame: np.ndarray, fmt: str) -> bytes:
    """(H,W,3) uint8 -> raw RGBA bytes (what canvas putImageData takes) or PNG."""
    if fmt == "png":
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()
    h, w, _ = frame.shape
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = frame, 255
    return rgba.tobytes()


def pack_frame(header: dict, payload: bytes) -> bytes:
    """One binary WebSocket message: uint32 LE header length | JSON header | image bytes."""
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<I", len(h)) + h + payload


def unpack_frame(msg: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack_from("<I", msg)
    return json.loads(msg[4 : 4 + n]), msg[4 + n :]


@dataclass(eq=False)  # identity semantics: clients live in a set
class PlayClient:
    """One browser tab: its session, mode, held/queued actions and outbox (on its event loop)."""

    fmt: str = "rgba"
    idle_action: int | None = None
    session: object | None = None
    name: str | None = None  # saved-session name, once saved or resumed
    start_state: tuple[bytes, str] | None = None  # what "reset" returns to
    mode: str = "realtime"  # or "step"
    driver: str = "you"  # or "agent": the world's trained agent picks the actions (issue 8)
    held: int | None = None
    pending: collections.deque = field(default_factory=collections.deque)
    last_tick: int = -1
    generation: int = 0
    closed: bool = False
    frames_sent: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    outbox: asyncio.Queue | None = None

    def __post_init__(self):
        self.loop = asyncio.get_running_loop()
        self.outbox = asyncio.Queue(OUTBOX_SIZE)

    def push(self, msg) -> None:
        """(event loop) Queue a message (str = JSON, bytes = frame) for the sender; drop the oldest when full."""
        if self.closed:
            return
        while True:
            try:
                self.outbox.put_nowait(msg)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.outbox.get_nowait()

    def send_json(self, **msg) -> None:
        self.push(json.dumps(msg))

    def deliver(self, generation: int, header: dict, payload: bytes) -> None:
        """(event loop) A frame from the ticker, unless the session was replaced meanwhile."""
        if generation == self.generation and not self.closed:
            self.push(pack_frame(frame_header(self, self.session, **header), payload))

    def replace_session(self, session, start_state=None, name=None) -> None:
        """(event loop, under the ticker's lock)"""
        self.session, self.name, self.start_state = session, name, start_state
        self.generation += 1
        self.pending.clear()
        self.held = self.idle_action

    def is_due(self, tick: int) -> bool:
        if self.closed or self.session is None:
            return False
        if self.pending:
            return True
        if self.driver == "agent":  # real-time: the agent acts every tick; step mode: one step per key press
            return self.mode == "realtime" and self.last_tick < tick
        return self.mode == "realtime" and self.held is not None and self.last_tick < tick

    def next_action(self, tick: int) -> int:
        if self.pending:
            a = self.pending.popleft()
            if self.mode == "realtime":
                self.held = a
        else:
            a = self.held
        self.last_tick = tick
        return a


class Ticker:
    def __init__(self, world, fps: float = 20.0, max_batch: int = 64, agent=None):
        """agent: a callable (B,S,S,3) uint8 frames -> (B,) world actions, for clients whose driver is "agent"."""
        if not fps > 0:
            raise ValueError("fps must be positive")
        self.world, self.period, self.max_batch, self.agent = world, 1.0 / fps, max_batch, agent
        self.clients: set[PlayClient] = set()
        self.lock = threading.Lock()  # guards client state shared with the event loop(s)
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
        with self.lock:
            client.closed = True
            client.pending.clear()
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
            except BaseException as e:  # handed back to the awaiting handler
                fut.set_exception(e)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop:
            self._wake.clear()
            self._run_jobs()
            tick = int((time.monotonic() - t0) / self.period)
            with self.lock:
                due = [c for c in self.clients if c.is_due(tick)][: self.max_batch]
                # the driver is read here, under the lock, with the action: a switch during the step cannot mix them
                jobs = [(c, c.session, c.generation, c.next_action(tick), c.driver) for c in due]
                realtime = any(c.mode == "realtime" and c.session is not None for c in self.clients)
            if not jobs:
                self._wake.wait(t0 + (tick + 1) * self.period - time.monotonic() if realtime else None)
                continue
            try:
                t = time.perf_counter()
                jobs = self._agent_actions(jobs)
                outs = self.world.step_many([j[1] for j in jobs], [j[3] for j in jobs])
                ms = (time.perf_counter() - t) * 1000
                payloads = [encode_frame(f, c.fmt) for (f, _, _), (c, *_) in zip(outs, jobs)]
            except Exception as e:  # a model bug must not kill the server: report it, keep ticking
                log.exception("batched step failed")
                for c, *_ in jobs:
                    c.pending.clear()
                    self._post(c, c.send_json, type="error", message=f"step failed: {type(e).__name__}: {e}")
                continue
            self.batches += 1
            self.frames += len(jobs)
            for (c, sess, gen, a, driver), payload, (frame, reward, done) in zip(jobs, payloads, outs):
                header = {"model_ms": ms, "batch": len(jobs), "action": a, "reward": reward, "done": done,
                          "step": sess.steps, "total_reward": sess.total_reward, "size": frame.shape[:2], "driver": driver}
                self._post(c, c.deliver, gen, header, payload)

    def _agent_actions(self, jobs: list) -> list:
        """Jobs of agent-driven clients get the agent's action on their current frame (one batched forward)."""
        idx = [i for i, job in enumerate(jobs) if job[4] == "agent"]
        if not idx or self.agent is None:
            return jobs
        acts = self.agent(np.stack([jobs[i][1].frame for i in idx]))
        jobs = list(jobs)
        for i, a in zip(idx, acts):
            c, sess, gen, _, driver = jobs[i]
            jobs[i] = (c, sess, gen, int(a), driver)
        return jobs

    def _post(self, c: PlayClient, fn, *args, **kw) -> None:
        if c.closed:
            return
        try:
            c.loop.call_soon_threadsafe(lambda: fn(*args, **kw))
        except RuntimeError:  # its event loop is gone
            self.remove(c)


def frame_header(c: PlayClient, s, model_ms=None, batch=None, action=None, reward=0.0, done=None, step=None,
                 total_reward=None, size=None, driver=None) -> dict:
    """Header of a frame message; step/reward fields come from the batch when the ticker made the frame."""
    h, w = size or s.frame.shape[:2]
    c.frames_sent += 1
    return {
        "seq": c.frames_sent, "w": w, "h": h, "fmt": c.fmt, "step": s.steps if step is None else step, "reward": reward,
        "total_reward": s.total_reward if total_reward is None else total_reward, "done": s.done if done is None else done,
        "model_ms": model_ms, "batch": batch, "action": action, "mode": c.mode, "name": c.name,
        "driver": c.driver if driver is None else driver,  # who chose the action that made this frame
        # frames held by memory M (None: the world has none, or it is switched off)
        "memory": s.memory_frames if getattr(s, "memory_on", False) else None,
    }
