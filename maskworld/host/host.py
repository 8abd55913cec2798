"""A hosted world: one persistent world instance that ticks on its own clock, with or without anyone watching.

Design choices:
- The host owns the instance's one session and its timeline (timeline.py). Tick n happens at
  start + n / rate on the host's clock (absolute deadlines, so the rate does not drift with the step time;
  ticks that fall behind, e.g. while the machine is busy, are made back to back until the schedule is met, so
  the world's time keeps its average rate), whether or not any person is connected.
- Each avatar is driven by whoever holds it (`hold`/`act`), else by the resident agent: a policy
  (frames -> actions, e.g. an agent trained in this world by `maskworld agent train`) or, without one, a
  seeded random walk. Who chose every action is logged with it.
- Opening an existing instance resumes it at its last committed tick: the nearest snapshot, then the logged
  actions after it, checked against the logged frame hashes (a mismatch means the world's weights or the
  numerics changed: refused, not papered over). Torch runs with the instance's thread count, so the
  numerics are those it was recorded with.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from maskworld.envs.base import joint_action, split_action
from maskworld.errors import UserError
from maskworld.host.timeline import FORMAT, Tick, Timeline, frame_hash
from maskworld.serve.prompts import load_prompts
from maskworld.serve.store import world_id
from maskworld.world.session import Session

AGENT = "agent"


class Host:
    def __init__(self, world, timeline: Timeline, session: Session, rate: float, policy: Callable | None = None,
                 snapshot_every: int = 100):
        self.world, self.timeline, self.session = world, timeline, session
        self.rate, self.policy, self.snapshot_every = float(rate), policy, int(snapshot_every)
        self.tick_no = timeline.last_tick
        self.frame = session.frame
        self.avatars = max(1, int(getattr(world.meta, "agents", 1)))  # worlds of several agents: one per avatar
        self._held: dict[int, tuple[str, int | None, bool]] = {}  # avatar -> (who, pending action, kept)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(int(timeline.meta().get("seed", 0)) + self.tick_no)

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, world, path, rate: float = 10.0, seed: int = 0, policy: Callable | None = None,
             snapshot_every: int = 100) -> Host:
        """Resume the instance at `path` (its rate and seed are its own), or create it from `world`."""
        path = Path(path)
        wid = world_id(world.path) if world.path is not None else "unsaved"
        if path.is_file():
            tl = Timeline(path)
            meta = tl.meta()
            if meta.get("world_id") != wid:
                raise UserError(f"{path} was recorded in world {meta.get('world')} ({meta.get('world_id')}), not in "
                                f"{world.path} ({wid}): host it with that world, or branch a new instance")
            torch.set_num_threads(int(meta["threads"]))
            session = restore(world, tl, tl.last_tick)
            return cls(world, tl, session, float(meta["rate"]), policy, int(meta.get("snapshot_every", snapshot_every)))
        if not rate > 0:
            raise UserError(f"--rate {rate}: give ticks per second > 0")
        tl = Timeline(path, create=True)
        prompts = load_prompts(world.path, world.meta.size) if world.path is not None else None
        session = Session.start(world, prompt=None if prompts is None else prompts[seed % len(prompts)], seed=seed)
        where = str(Path(world.path).resolve()) if world.path is not None else None
        tl.set_meta(format=FORMAT, world=where, world_id=wid, sampler=sampler_record(world), seed=seed, rate=float(rate),
                    threads=torch.get_num_threads(), snapshot_every=snapshot_every, created=time.time(),
                    start_hash=frame_hash(session.frame))
        tl.save_snapshot(0, session.to_bytes())
        return cls(world, tl, session, rate, policy, snapshot_every)

    # ---------------------------------------------------------------- controllers
    def hold(self, avatar: int, who: str) -> None:
        """`who` (a person's id) takes an avatar; the resident agent drives it no more until `release`."""
        self._check_avatar(avatar)
        with self._lock:
            if avatar in self._held and self._held[avatar][0] != who:
                raise UserError(f"avatar {avatar} is held by {self._held[avatar][0]}")
            self._held[avatar] = (who, None, False)

    def release(self, avatar: int) -> None:
        with self._lock:
            self._held.pop(avatar, None)

    def act(self, avatar: int, who: str, action: int, keep: bool = False) -> None:
        """The holder's action for the next tick (the last one given before the tick counts; none = NOOP 0);
        keep: for every tick until the next call (a held key)."""
        with self._lock:
            if self._held.get(avatar, (None,))[0] != who:
                raise UserError(f"{who} does not hold avatar {avatar}")
            self._held[avatar] = (who, self._check_own_action(action), bool(keep))

    @property
    def avatar_actions(self) -> list[str]:
        return avatar_actions(self.world)

    def _check_own_action(self, action) -> int:
        if self.avatars == 1:
            return self.session.check_action(action)
        n = len(self.avatar_actions)
        if isinstance(action, bool) or not isinstance(action, (int, np.integer)) or not 0 <= int(action) < n:
            raise UserError(f"action {action!r}: an avatar's actions are 0..{n - 1} ({', '.join(self.avatar_actions)})")
        return int(action)

    def _check_avatar(self, avatar: int) -> None:
        if not 0 <= avatar < self.avatars:
            raise UserError(f"avatar {avatar}: this world has avatars 0..{self.avatars - 1}")

    def drivers(self) -> list[str]:
        with self._lock:
            return [self._held[a][0] if a in self._held else AGENT for a in range(self.avatars)]

    # ---------------------------------------------------------------- time
    def _choose(self) -> tuple[list[int], list[str]]:
        with self._lock:
            held = dict(self._held)
            for a, (who, _, keep) in held.items():  # an action counts once, unless it is kept
                if not keep:
                    self._held[a] = (who, None, False)
        actions, actors = [], []
        resident = None
        if self.policy is not None and len(held) < self.avatars:
            resident = split_action(int(self.policy(self.frame[None])[0]), self.avatars, len(self.avatar_actions))
        for a in range(self.avatars):
            if a in held:
                actions.append(held[a][1] if held[a][1] is not None else 0)
                actors.append(held[a][0])
            elif resident is not None:
                actions.append(resident[a])
                actors.append(AGENT)
            else:
                actions.append(int(self._rng.integers(len(self.avatar_actions))))
                actors.append(AGENT)
        return actions, actors

    def step(self) -> Tick:
        """One tick now: choose, step the world, commit the tick."""
        actions, actors = self._choose()
        frame, reward, _ = self.session.step(joint_action(actions, len(self.avatar_actions)))
        self.tick_no += 1
        tick = Tick(self.tick_no, time.time(), actions, actors, float(reward), frame_hash(frame))
        snap = self.session.to_bytes() if self.tick_no % self.snapshot_every == 0 else None
        self.timeline.append(tick, snap)
        self.frame = frame
        return tick

    def run(self, seconds: float | None = None, ticks: int | None = None, stop: threading.Event | None = None,
            on_tick: Callable[[Tick], None] | None = None) -> int:
        """Tick at the instance's rate until `seconds` pass, `ticks` were made, or `stop` is set -> ticks made."""
        start, made = time.monotonic(), 0
        while not (stop is not None and stop.is_set()):
            if ticks is not None and made >= ticks:
                break
            due = start + made / self.rate
            now = time.monotonic()
            if seconds is not None and due - start >= seconds:
                break
            if due > now:
                if stop is not None:
                    if stop.wait(due - now):
                        break
                else:
                    time.sleep(due - now)
            tick = self.step()
            made += 1
            if on_tick is not None:
                on_tick(tick)
        return made

    def close(self) -> None:
        self.timeline.close()


def avatar_actions(world) -> list[str]:
    """What one avatar can do: the world's actions, or in a world of several agents each agent's own."""
    if int(getattr(world.meta, "agents", 1)) > 1:
        return list(world.meta.agent_action_meanings)
    return list(world.action_meanings)


def sampler_record(world) -> dict:
    """How the world draws its frames, beside its weights: a timeline replays bit for bit only under the same."""
    return dataclasses.asdict(world.sampler) | {"rollout": getattr(world, "rollout", "joint")}


def _check_sampler(path, recorded: dict | None, now: dict) -> None:
    """UserError naming the sampler settings that differ from the recording's (timelines from before the sampler
    was recorded are not checked here; their replay still checks every frame)."""
    if recorded is None:
        return
    diff = {k: (recorded.get(k), now.get(k)) for k in sorted(set(recorded) | set(now)) if recorded.get(k) != now.get(k)}
    if diff:
        said = ", ".join(f"{k} {a!r} (now {b!r})" for k, (a, b) in diff.items())
        raise UserError(f"{path} was recorded with the sampler's {said}: its ticks replay only under the same; give "
                        "the world those settings (world.json's sampler, or the same flags), or branch a new instance")


def _replayed(world, timeline: Timeline, start: int, upto: int | None):
    """From the snapshot at or before `start`: yields (session, tick, frame) for that snapshot, then for every logged
    tick after it up to `upto`, each frame checked against its logged hash (a mismatch: the world's weights or the
    numerics, torch version or threads, differ from the recording's; refused)."""
    _check_sampler(timeline.path, timeline.meta().get("sampler"), sampler_record(world))
    at, blob, info = timeline.snapshot_at_or_before(start)
    session = Session.from_bytes(world, blob, info)
    yield session, at, session.frame
    n = len(avatar_actions(world))
    for tk in timeline.ticks(at, upto):
        frame, _, _ = session.step(joint_action(tk.actions, n))
        if frame_hash(frame) != tk.frame_hash:
            raise UserError(f"{timeline.path}: replaying tick {tk.tick} gives another frame than the one recorded; the "
                            "world's weights, its sampler or the numerics (torch version, threads) differ from the "
                            "recording's")
        yield session, tk.tick, frame


def restore(world, timeline: Timeline, tick: int) -> Session:
    """The session as it was right after `tick`: the nearest snapshot, then the logged actions, each frame checked."""
    session = None
    for session, _, _ in _replayed(world, timeline, tick, tick):
        pass
    return session


def replay(world, timeline: Timeline, upto: int | None = None):
    """Frames of ticks 0..upto from the start state, each checked against its logged hash -> yields (tick, frame)."""
    for _, tick, frame in _replayed(world, timeline, 0, upto):
        yield tick, frame
