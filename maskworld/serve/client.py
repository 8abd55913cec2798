"""One browser tab: its session, mode, driver, held/queued actions and outbox.

Design choices:
- Its methods are the only writers of its state. The state is shared by two threads (the tab's event
  loop and the model thread), so every method that changes it takes the lock it shares with the
  ticker (reentrant: the ticker calls `is_due` / `take_action` while already holding it).
- Actions arrive already in world-action space (`Controls.world_action`); nothing here checks them.
- A generation counter: replacing the session (reset, new, resume) bumps it, and a frame computed
  for the old session is dropped instead of sent.
- The outbox is small and drops its oldest message when full: a slow tab never blocks the ticker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading

from maskworld.errors import UserError
from maskworld.serve.protocol import FrameInfo, encode_frame, frame_message

MAX_PENDING_STEPS = 16  # step-mode actions queued per client before new ones are refused
OUTBOX_SIZE = 8


class PlayClient:
    def __init__(self, lock: threading.RLock, fmt: str = "rgba", mode: str = "realtime", idle_action: int | None = None):
        """lock: the ticker's. idle_action: the world action held in real-time mode while no key is pressed."""
        self._lock = lock
        self.fmt, self.mode, self.idle_action = fmt, mode, idle_action
        self.driver = "you"  # or "agent": the injected policy picks the actions
        self.who: str | None = None  # shared play: this tab's viewer id
        self.session = None
        self.name: str | None = None  # saved-session name, once saved or resumed
        self.start_state: tuple[bytes, str] | None = None  # what "reset" returns to
        self.held: int | None = idle_action
        self.pending: collections.deque[int] = collections.deque()
        self.last_tick = -1
        self.generation = 0
        self.closed = False
        self.frames_sent = 0
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue = asyncio.Queue(OUTBOX_SIZE)

    # ------------------------------------------------------------------ event loop: the tab's requests
    def press(self, action: int) -> None:
        """A key: queued (step mode) or held (real-time mode)."""
        with self._lock:
            if self.mode != "step":
                self.held = action
            elif len(self.pending) >= MAX_PENDING_STEPS:
                raise UserError("too many queued steps; wait for frames before pressing more keys")
            else:
                self.pending.append(action)

    def release(self) -> None:
        with self._lock:
            if self.idle_action is not None:
                self.held = self.idle_action

    def set_mode(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
            self.pending.clear()
        self.send_json(type="mode", mode=mode)

    def set_driver(self, driver: str) -> None:
        with self._lock:
            self.driver = driver
            self.pending.clear()
            self.held = self.idle_action
        self.send_json(type="driver", driver=driver)

    def replace_session(self, session, start_state, name: str | None) -> None:
        """A new session (new, reset, resume) and its first frame. Under the lock, so the ticker cannot
        pick the session up before its first frame is read: that frame is consistent."""
        with self._lock:
            self.session, self.start_state, self.name = session, start_state, name
            self.generation += 1
            self.pending.clear()
            self.held = self.idle_action
            self._push_frame(FrameInfo.of(session), encode_frame(session.frame, self.fmt))

    def mark_saved(self, name: str, generation: int) -> None:
        """The session of `generation` was saved as `name` (unless it has been replaced since)."""
        with self._lock:
            if generation == self.generation:
                self.name = name

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self.pending.clear()

    # ------------------------------------------------------------------ model thread (ticker)
    def is_due(self, tick: int) -> bool:
        with self._lock:
            if self.closed or self.session is None:
                return False
            if self.pending:
                return True
            if self.driver == "agent":  # real-time: the agent acts every tick; step mode: one step per key press
                return self.mode == "realtime" and self.last_tick < tick
            return self.mode == "realtime" and self.held is not None and self.last_tick < tick

    def take_action(self, tick: int) -> tuple:
        """-> (session, generation, world action, driver) for this tick's batch; the driver is read with the
        action, so a switch during the step cannot mix them."""
        with self._lock:
            if self.pending:
                a = self.pending.popleft()
                if self.mode == "realtime":
                    self.held = a
            else:
                a = self.held
            self.last_tick = tick
            return self.session, self.generation, a, self.driver

    def drop_pending(self) -> None:
        with self._lock:
            self.pending.clear()

    # ------------------------------------------------------------------ event loop: messages down
    def deliver(self, generation: int, info: FrameInfo, image: bytes) -> None:
        """A frame from the ticker, unless the session was replaced meanwhile."""
        if generation == self.generation and not self.closed:
            self._push_frame(info, image)

    def _push_frame(self, info: FrameInfo, image: bytes) -> None:
        self.frames_sent += 1
        self.push(frame_message(self.frames_sent, self.fmt, self.mode, self.name, self.driver, info, image))

    def send_json(self, **msg) -> None:
        self.push(json.dumps(msg))

    def push(self, msg) -> None:
        """Queue a message (str = JSON, bytes = frame) for the sender; drop the oldest when full."""
        if self.closed:
            return
        while True:
            try:
                self.outbox.put_nowait(msg)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.outbox.get_nowait()
