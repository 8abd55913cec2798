"""What the handlers share: the world, its controls, the store, the ticker and two small worker pools.

Three places run work, and each kind of work has one:
- the event loop: parsing, routing, queuing messages (never blocks);
- the model thread (the ticker): everything that touches the model or a live session;
- worker pools: slow work that needs neither, SQLite (one thread: the store has one connection)
  and upload decoding (two threads: bounded CPU, however many tabs upload at once).
"""

from __future__ import annotations

import asyncio
import base64
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from maskworld.errors import UserError
from maskworld.serve import controls as controls_mod
from maskworld.serve import shared as shared_mod
from maskworld.serve.client import PlayClient
from maskworld.serve.controls import Controls
from maskworld.serve.prompts import load_prompts
from maskworld.serve.protocol import encode_frame
from maskworld.serve.store import SessionStore, world_id
from maskworld.serve.ticker import Policy, Ticker
from maskworld.world.session import Session


@dataclass
class PlayServer:
    world: object
    world_path: Path
    store: SessionStore
    ticker: Ticker
    controls: Controls
    hello: dict
    """The `hello` message's fields (also served as /api/info)."""
    prompts: object | None = None
    has_policy: bool = False
    wid: str = ""
    shared: object | None = None
    """Shared play (shared.py): the hosted instance every tab views, or None (a private session per tab)."""
    rng: random.SystemRandom = field(default_factory=random.SystemRandom)
    io_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="maskworld-db"))
    decode_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="maskworld-decode"))

    async def on_model(self, fn, *args):
        return await self.ticker.run_model(fn, *args)

    async def on_io(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.io_pool, fn, *args)

    async def on_decoder(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.decode_pool, fn, *args)

    def replace(self, c: PlayClient, session, start_state, name: str | None) -> None:
        c.replace_session(session, start_state, name)
        self.ticker.wake()

    async def start(self, c: PlayClient, prompt, seed: int) -> None:
        """A fresh session for `c`, from scratch (prompt None) or from an image; in shared play, the shared one."""
        if self.shared is not None:
            await self.on_model(shared_mod.join, self.shared, c)
            return
        self.replace(c, *await self.on_model(new_session, self.world, prompt, seed), None)

    def drop(self, c: PlayClient) -> None:
        """A tab is gone: stop stepping for it (and in shared play, let go of its avatar)."""
        self.ticker.remove(c)
        if self.shared is not None:
            shared_mod.leave(self.shared, c)

    def random_seed(self) -> int:
        return self.rng.randrange(2**31)

    def shutdown(self) -> None:
        self.ticker.stop()
        self.io_pool.shutdown(wait=False, cancel_futures=True)
        self.decode_pool.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------------- model-thread jobs
def new_session(world, prompt, seed):
    s = world.session(prompt=prompt, seed=seed)
    return s, s.to_bytes()


def restore_session(world, state):
    if hasattr(world, "restore_session"):  # a unified world's sessions are its own
        return world.restore_session(*state)
    return Session.from_bytes(world, *state)


def preview_frames(world, session, num_codes: int) -> tuple[int, list[str]]:
    """One step with every latent code, from copies of the session -> (the session's step, K PNG data URLs)."""
    state = session.to_bytes()
    copies = [Session.from_bytes(world, *state) for _ in range(num_codes)]
    out = world.step_many(copies, list(range(num_codes)))
    return session.steps, ["data:image/png;base64," + base64.b64encode(encode_frame(f, "png")).decode() for f, _, _ in out]


# ---------------------------------------------------------------------------- assembly
def build_server(world, world_path, store: SessionStore, *, fps: float, max_batch: int, policy: Policy | None,
                 policy_info: dict | None, shared=None, shared_name: str | None = None) -> PlayServer:
    """policy: frames -> world actions, for the "Agent drives" switch; policy_info: its summary for the page.
    shared: a hosted instance (shared.py) every tab views at its own rate, named shared_name."""
    world_path = Path(world_path).resolve()
    ctrl = controls_mod.for_world(world)
    if shared is None and getattr(world.meta, "agents", 1) > 1:
        raise UserError(f"{world_path.name} is a world of {world.meta.agents} agents acting at once: play it shared, "
                        "each person with an avatar (`maskworld play WORLD --persistent NAME`)")
    prompts = load_prompts(world_path, world.meta.size)
    wid = world_id(world_path)
    hello = {"env_id": world.meta.env_id, "size": world.meta.size, "actions": ctrl.meanings, "bindings": ctrl.bindings,
             "idle_action": ctrl.idle, "fps": fps, "has_prompts": prompts is not None, "world": world_path.name,
             "world_id": wid, "latent": ctrl.latent, "agent": (policy_info or {"name": "agent"}) if policy is not None else None}
    if getattr(world, "has_own_policy", False):  # a unified world: words start it, its own policy can drive
        if shared is not None:
            raise UserError("a unified world plays private sessions only; drop --persistent")
        hello |= {"words": list(world.vocab.words[2:]),
                  "agent": policy_info or {"name": "the world's own policy (by mask)"}}
    if shared is not None:
        hello |= {"fps": shared.rate, "shared": {"name": shared_name, "rate": shared.rate, "avatars": shared.avatars},
                  "agent": policy_info or {"name": "resident agent"}}
        ticker: Ticker = shared_mod.SharedTicker(world, shared)
    else:
        ticker = Ticker(world, fps=fps, max_batch=max_batch, policy=policy)
    own = getattr(world, "has_own_policy", False)
    return PlayServer(world, world_path, store, ticker, ctrl, hello, prompts=prompts, has_policy=policy is not None or own,
                      wid=wid, shared=shared)
