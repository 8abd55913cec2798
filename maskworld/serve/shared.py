"""Shared play: every tab views one persistent world instance, on the instance's own clock.

`maskworld play --persistent NAME` hands the play server a hosted instance (maskworld.host; serving never
imports it, it only calls the methods of `SharedWorld`). Design choices:
- The model thread is the instance's clock: tick n at start + n / rate, whether or not any tab is open, so
  the world keeps its own time; every tab gets the same frame for the same tick (the page shows the tick as
  its step), encoded once per format.
- A tab watches until it takes an avatar ("You drive": the first one nobody holds; a world trained on several
  agents has one avatar per agent): then its keys are that avatar's actions, and no other tab can take it until
  it lets go ("Agent drives") or closes; the resident agent drives whatever nobody holds. Every frame says who
  drives each avatar.
- Starting over, loading or saving a private session makes no sense in a shared world: those messages are
  refused with a pointer to the timeline's own tools (replay, branch).
"""

from __future__ import annotations

import itertools
import time
from typing import Protocol

from maskworld.errors import UserError
from maskworld.serve.client import PlayClient
from maskworld.serve.protocol import FrameInfo, encode_frame
from maskworld.serve.ticker import Ticker

_ids = itertools.count(1)


class SharedWorld(Protocol):
    """What shared play needs of a hosted instance (maskworld.host.host.Host has it)."""

    rate: float
    avatars: int
    session: object
    frame: object
    tick_no: int

    def step(self): ...  # -> a Tick (tick, actions, actors, reward, ...)

    def hold(self, avatar: int, who: str) -> None: ...

    def release(self, avatar: int) -> None: ...

    def act(self, avatar: int, who: str, action: int, keep: bool = False) -> None: ...

    def drivers(self) -> list[str]: ...


def viewer_id() -> str:
    return f"viewer-{next(_ids)}"


class SharedTicker(Ticker):
    """The model thread of shared play: the instance's clock, and a broadcast of every tick to every tab."""

    def __init__(self, world, shared: SharedWorld):
        super().__init__(world, fps=shared.rate, max_batch=1, policy=None)
        self.shared = shared

    def _run(self) -> None:
        t0, made = time.monotonic(), 0
        while not self._stop:
            self._wake.clear()
            self._run_jobs()
            due = t0 + made / self.shared.rate
            if due > time.monotonic():
                self._wake.wait(due - time.monotonic())  # woken early by a job: run it, then wait the rest
                continue
            try:
                t = time.perf_counter()
                tick = self.shared.step()
                ms = (time.perf_counter() - t) * 1000
            except Exception as e:  # noqa: BLE001  (reported to every tab; the clock keeps going)
                with self.lock:
                    clients = list(self.clients)
                for c in clients:
                    self._post(c, c.send_json, type="error", message=f"tick failed: {type(e).__name__}: {e}")
                made += 1
                continue
            made += 1
            self.batches += 1
            self.frames += 1
            self._broadcast(tick, ms)

    def _broadcast(self, tick, ms: float) -> None:
        with self.lock:
            clients = [c for c in self.clients if not c.closed and c.session is not None]
        images: dict[str, bytes] = {}
        for c in clients:
            if c.fmt not in images:
                images[c.fmt] = encode_frame(self.shared.frame, c.fmt)
            mine = _avatar_of(self.shared, c)
            own = 0 if mine is None else mine
            actor = tick.actors[own]
            info = FrameInfo.of(self.shared.session, reward=tick.reward, done=False, model_ms=ms, batch=1,
                                action=int(tick.actions[own]), driver="you" if actor == c.who else actor,
                                avatars=["you" if a == c.who else a for a in tick.actors])
            self._post(c, c.deliver, c.generation, info, images[c.fmt])


def _avatar_of(shared: SharedWorld, c: PlayClient) -> int | None:
    """The avatar this tab holds, None while it watches."""
    who = getattr(c, "who", None)
    drivers = shared.drivers()
    return drivers.index(who) if who in drivers else None


def join(shared: SharedWorld, c: PlayClient) -> None:
    """A new tab watches the shared session (its current frame is sent at once)."""
    c.who = viewer_id()
    c.driver = "agent"
    c.replace_session(shared.session, None, None)


def leave(shared: SharedWorld, c: PlayClient) -> None:
    mine = _avatar_of(shared, c)
    if mine is not None:
        shared.release(mine)


def press(shared: SharedWorld, c: PlayClient, action: int, keep: bool) -> None:
    """A key of the tab holding an avatar: its action from the next tick on (kept while held in real-time mode)."""
    mine = _avatar_of(shared, c)
    if mine is None:
        raise UserError(f"you are watching: the avatars are driven by {', '.join(shared.drivers())}; press "
                        "'You drive' (key G) to take one")
    shared.act(mine, c.who, action, keep=keep)


def let_go(shared: SharedWorld, c: PlayClient, idle: int | None) -> None:
    """The held key is released: the idle action (or NOOP) from the next tick on."""
    mine = _avatar_of(shared, c)
    if mine is not None:
        shared.act(mine, c.who, idle if idle is not None else 0, keep=idle is not None)


def drive(shared: SharedWorld, c: PlayClient, driver: str) -> None:
    """'you': take the first avatar nobody holds; 'agent': let the resident agent have yours back."""
    if driver == "you":
        if _avatar_of(shared, c) is None:
            drivers = shared.drivers()
            free = [a for a, d in enumerate(drivers) if d == "agent"]
            if not free:
                raise UserError(f"every avatar is held ({', '.join(drivers)}); watch, or wait for one to be let go")
            shared.hold(free[0], c.who)
    else:
        leave(shared, c)
    c.set_driver(driver)


NOT_SHARED = ("this is a shared persistent world: starting over, loading and saving private sessions are off; its "
              "history is in its timeline (`maskworld sessions replay NAME`, `maskworld sessions branch NAME NEW --at T`)")
