"""Composite rendering (world/compose.py): only cells whose token (or a neighbour's) changed are redrawn, a real frame is shown as
it is, and the choice round-trips through world.json and is checked there."""

import json

import numpy as np
import pytest

from maskworld.errors import UserError
from maskworld.world.compose import composite


def test_composite_redraws_exactly_the_changed_cells():
    rng = np.random.default_rng(0)
    shown = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    rendered = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    before = np.zeros((2, 4, 4), np.int64)
    now = before.copy()
    now[0, 1, 2] = 5  # one cell of row 0 changes; row 1 changes nowhere
    out = composite(shown, before, now, rendered)
    assert (out[1] == shown[1]).all()
    redraw = np.zeros((16, 16), bool)
    redraw[0:12, 4:16] = True  # cells (0..2, 1..3): the changed one and its eight neighbours
    assert (out[0][redraw] == rendered[0][redraw]).all()
    assert (out[0][~redraw] == shown[0][~redraw]).all()


def test_a_composite_world_shows_real_frames_and_keeps_their_pixels_where_tokens_stay(tiny_world):
    w = tiny_world
    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, (w.meta.size, w.meta.size, 3), dtype=np.uint8)
    w.render = "tokens"
    s_tok = w.session(real, seed=3)
    assert not (s_tok.frame == real).all()  # the tokenizer's rendering of a random image is not the image
    w.render = "composite"
    s = w.session(real, seed=3)
    assert (s.frame == real).all()
    before = s.tokens.copy()
    frame, _, _ = s.step(0)
    frame_tok, _, _ = s_tok.step(0)
    assert (s.tokens == s_tok.tokens).all()  # the rendering mode never changes what the world imagines
    from maskworld.world.compose import redrawn_cells

    g = w.dynamics.cfg.grid
    cell = w.meta.size // g
    same = np.repeat(np.repeat(~redrawn_cells(before[None], s.tokens[None])[0], cell, 0), cell, 1)
    assert (frame[same] == real[same]).all()
    assert (frame[~same] == frame_tok[~same]).all()


def test_render_mode_round_trips_and_bad_values_are_refused(tiny_world, tmp_path):
    from maskworld import load_world

    tiny_world.meta.render = "composite"
    d = tiny_world.save(tmp_path / "w")
    assert load_world(d).render == "composite"
    cfg = json.loads((d / "world.json").read_text())
    cfg["meta"]["render"] = "pixels"
    (d / "world.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="render"):
        load_world(d)


def test_a_saved_composite_session_resumes_exactly(tiny_world):
    """A composite frame is drawn over the frame shown before, so a saved session keeps that frame: resumed, the
    same actions give the same frames as the session that never stopped."""
    from maskworld.world.session import Session

    w = tiny_world
    w.render = "composite"
    real = np.random.default_rng(2).integers(0, 256, (w.meta.size, w.meta.size, 3), dtype=np.uint8)
    s = w.session(real, seed=5)
    s.step(0)
    blob, info = s.to_bytes()
    r = Session.from_bytes(w, blob, info)
    assert (r.frame == s.frame).all()
    for a in (1, 2, 0):
        assert (s.step(a)[0] == r.step(a)[0]).all()


def test_composite_frames_are_the_same_stepped_together_or_alone(tiny_world):
    """The engine composites a batch in one call: each session's frames equal those it gets stepped alone."""
    from maskworld.world.engine import Engine

    w = tiny_world
    w.render = "composite"
    rng = np.random.default_rng(4)
    reals = rng.integers(0, 256, (2, w.meta.size, w.meta.size, 3), dtype=np.uint8)
    eng = Engine(w, rows=2)
    together = [w.session(reals[i], seed=i, engine=eng) for i in range(2)]
    alone = [w.session(reals[i], seed=i, engine=Engine(w, rows=1)) for i in range(2)]
    for a in (0, 1, 2):
        frames = eng.step(together, [a, 2 - a]).frames
        for i, s in enumerate(alone):
            assert (frames[i] == s.step([a, 2 - a][i])[0]).all()
