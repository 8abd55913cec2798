"""One small handler per message type, and the table that routes to them.

A handler gets the server, the client and an already-parsed message (protocol.py); it checks what
the schema cannot (an action against the world's controls, a name against the store, a seed's range)
and raises UserError for anything the tab got wrong: the connection answers with an `error` message
and the session carries on.
"""

from __future__ import annotations

from maskworld.errors import UserError
from maskworld.serve import prompts, shared
from maskworld.serve import protocol as p
from maskworld.serve.client import PlayClient
from maskworld.serve.server import PlayServer, preview_frames, restore_session
from maskworld.serve.store import SavedState, validate_name


async def on_action(srv: PlayServer, c: PlayClient, msg: p.Action) -> None:
    a = srv.controls.world_action(msg.action)
    if srv.shared is not None:  # a held key (real-time) or one step's action, on the instance's clock
        shared.press(srv.shared, c, a, keep=c.mode == "realtime")
        return
    c.press(a)
    srv.ticker.wake()


async def on_release(srv: PlayServer, c: PlayClient, msg: p.Release) -> None:
    if srv.shared is not None:
        shared.let_go(srv.shared, c, srv.controls.idle_action)
        return
    c.release()


async def on_mode(srv: PlayServer, c: PlayClient, msg: p.Mode) -> None:
    c.set_mode(msg.mode)
    srv.ticker.wake()


async def on_driver(srv: PlayServer, c: PlayClient, msg: p.Driver) -> None:
    if srv.shared is not None:
        shared.drive(srv.shared, c, msg.driver)
        return
    if msg.driver == "agent" and not srv.has_policy:
        raise UserError("no agent can drive this world: train one with `maskworld train agent --world WORLD` "
                        "or start play with --agent AGENT_DIR")
    c.set_driver(msg.driver)
    srv.ticker.wake()


async def on_reset(srv: PlayServer, c: PlayClient, msg: p.Reset) -> None:
    start = c.start_state
    srv.replace(c, await srv.on_model(restore_session, srv.world, start), start, c.name)


async def on_new(srv: PlayServer, c: PlayClient, msg: p.New) -> None:
    seed = srv.random_seed() if msg.seed is None else msg.seed
    if not 0 <= seed < p.SEED_LIMIT:
        raise UserError(f"'new.seed' must be in 0..{p.SEED_LIMIT - 1}")
    prompt = None
    if msg.text is not None:
        if not getattr(srv.world, "has_own_policy", False):
            raise UserError("this world reads no words: a world from words needs a unified world "
                            "(`maskworld train world --kind unified`)")
        if len(msg.text) > 200:
            raise UserError("'new.text' is longer than 200 characters")
        srv.world.text_ids(msg.text)  # unknown words: refused here, with the words the world knows
        await srv.start(c, msg.text, seed)
        return
    if msg.source == "data":
        if srv.prompts is None:
            size = srv.world.meta.size
            raise UserError(f"this world has no prompts.npz (uint8 frames (N,{size},{size},3)); start from scratch or upload an image")
        prompt = srv.prompts[srv.rng.randrange(len(srv.prompts))]
    await srv.start(c, prompt, seed)


async def on_upload(srv: PlayServer, c: PlayClient, data: bytes) -> None:
    """A binary message: an image to start a new session from, decoded off the event loop."""
    img = await srv.on_decoder(prompts.decode_upload, data, srv.world.meta.size)
    await srv.start(c, img, srv.random_seed())


async def on_save(srv: PlayServer, c: PlayClient, msg: p.Save) -> None:
    """Copy the state out on the model thread (fast), write it on the store's thread (slow): no tick waits for SQLite."""
    name = validate_name(msg.name)
    await srv.on_io(srv.store.check_quota, name)  # refuse before serializing megabytes
    generation = c.generation
    state = await srv.on_model(SavedState.of, c.session)
    meta = await srv.on_io(srv.store.write, name, state, srv.world_path, srv.wid)
    c.mark_saved(name, generation)
    c.send_json(type="saved", name=name, steps=meta["steps"])


async def on_load(srv: PlayServer, c: PlayClient, msg: p.Load) -> None:
    name = validate_name(msg.name)
    state = await srv.on_io(srv.store.load_for, name, srv.wid)
    session = await srv.on_model(srv.store.restore, name, srv.world, *state)
    srv.replace(c, session, state, name)


async def on_list(srv: PlayServer, c: PlayClient, msg: p.ListSessions) -> None:
    rows = await srv.on_io(srv.store.list)
    c.send_json(type="sessions", sessions=[{k: s[k] for k in ("name", "steps", "updated", "total_reward")}
                                           | {"same_world": s["world_id"] == srv.wid} for s in rows])


async def on_preview(srv: PlayServer, c: PlayClient, msg: p.Preview) -> None:
    latent = srv.controls.latent
    if latent is None:
        raise UserError("this world has real actions; the preview strip is for latent-action worlds")
    step, frames = await srv.on_model(preview_frames, srv.world, c.session, latent["num_codes"])
    c.send_json(type="preview", step=step, frames=frames)


async def on_ping(srv: PlayServer, c: PlayClient, msg: p.Ping) -> None:
    c.send_json(type="pong", t=msg.t)


HANDLERS = {p.Action: on_action, p.Release: on_release, p.Mode: on_mode, p.Driver: on_driver, p.Reset: on_reset,
            p.New: on_new, p.Save: on_save, p.Load: on_load, p.ListSessions: on_list, p.Preview: on_preview,
            p.Ping: on_ping}
assert set(HANDLERS) == set(p.MESSAGES.values()), "every message type has a handler"


PRIVATE = (p.Reset, p.New, p.Save, p.Load, p.Preview)
"""Messages about a tab's own session: refused in shared play."""


async def dispatch(srv: PlayServer, c: PlayClient, raw: dict) -> None:
    """One received WebSocket message (ASGI dict) -> its handler."""
    if raw.get("bytes") is not None:
        if srv.shared is not None:
            raise UserError(shared.NOT_SHARED)
        await on_upload(srv, c, raw["bytes"])
        return
    msg = p.parse_message(raw.get("text") or "")
    if srv.shared is not None and isinstance(msg, PRIVATE):
        raise UserError(shared.NOT_SHARED)
    await HANDLERS[type(msg)](srv, c, msg)
