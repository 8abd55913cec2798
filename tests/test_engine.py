"""The stepping engine: its ring-buffer KV cache against an independent no-cache reference, rows, conventions."""

import gc

import numpy as np
import pytest
import torch

from maskworld.models.attention import apply_rope, rope_angles
from maskworld.world.engine import Engine, head_values


class SlidingReference:
    """An independent sliding-window KV cache for one session, written from the model's parts: every frame's
    keys/values kept in time order, the last window - 1 frames concatenated in front of each new frame (no
    ring, no scratch slot, no batching)."""

    def __init__(self, dyn):
        self.dyn, self.frames = dyn, []  # per committed frame: [(k, v) per layer], each (1, nh, S, hd)

    def _pass(self, x, pos):
        d = self.dyn
        S, nh = x.shape[1], d.cfg.n_heads
        cos, sin = rope_angles(torch.full((1, S), pos), d.cfg.d_model // nh, d.cfg.rope_base)
        past = self.frames[-(d.cfg.window - 1):]
        own = []
        for i, blk in enumerate(d.blocks):
            q, k, v = blk.attn.qkv(blk.ln1(x)).view(1, S, 3, nh, -1).permute(2, 0, 3, 1, 4)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            K = torch.cat([f[i][0] for f in past] + [k], 2)
            V = torch.cat([f[i][1] for f in past] + [v], 2)
            y = torch.softmax(q @ K.transpose(-1, -2) / (q.shape[-1] ** 0.5), -1) @ V
            x = x + blk.attn.proj(y.transpose(1, 2).reshape(1, S, -1))
            x = x + blk.mlp(blk.ln2(x))
            own.append((k, v))
        return d.ln_f(x), own

    def commit(self, tokens_N, action, pos):
        _, own = self._pass(self.dyn.embed_frames(tokens_N[None, None], torch.tensor([[action]]), 0), pos)
        self.frames.append(own)

    def logits(self, query_N, action, pos):
        h, _ = self._pass(self.dyn.embed_frames(query_N[None, None], torch.tensor([[action]]), 1), pos)
        return self.dyn.tok_head(h[0, 1:])


def _commit_last(ref, s, action):
    ref.commit(torch.from_numpy(s.tokens.reshape(-1).astype(np.int64)), action, s.pos - 1)


@torch.no_grad()
def test_ring_cache_equals_sliding_reference(tiny_world):
    """After every step — past the window, so the ring has wrapped, with rows of different history lengths in one
    batch — the engine's cached pass predicts what an independent time-ordered sliding cache predicts."""
    dyn = tiny_world.dynamics
    null = dyn.cfg.null_action
    eng = Engine(tiny_world)
    sessions = [tiny_world.session(prompt=np.full((64, 64, 3), 40 * i, np.uint8), seed=i, engine=eng) for i in range(3)]
    refs = [SlidingReference(dyn) for _ in sessions]
    for s, ref in zip(sessions, refs):
        _commit_last(ref, s, null)
    for _ in range(2):  # session 2 runs ahead: its window differs from the others'
        sessions[2].step(1)
        _commit_last(refs[2], sessions[2], 1)
    rng = np.random.default_rng(0)
    for t in range(7):
        acts = [int(a) for a in rng.integers(0, tiny_world.num_actions, 3)]
        query = torch.full((3, dyn.cfg.tokens_per_frame), dyn.cfg.mask_id)
        query[:, ::2] = torch.randint(0, dyn.cfg.vocab_size, (3, dyn.cfg.tokens_per_frame))[:, ::2]
        view = eng.cache.view([s.row for s in sessions])
        pos = torch.tensor([s.pos for s in sessions])
        cached = dyn.predict_logits(query, torch.tensor(acts), pos, view)
        for i, (s, ref) in enumerate(zip(sessions, refs)):
            assert torch.allclose(cached[i], ref.logits(query[i], acts[i], s.pos), atol=1e-4), (t, i)
        tiny_world.step_many(sessions, acts)
        for s, ref, a in zip(sessions, refs, acts):
            _commit_last(ref, s, a)
    assert min(s.pos for s in sessions) > dyn.cfg.window  # the ring wrapped in every row


def test_rows_are_reused_and_other_rows_untouched(tiny_world):
    eng = Engine(tiny_world)
    keep = tiny_world.session(seed=1, engine=eng)
    k0 = [k[keep.row].clone() for k in eng.cache.k]
    extra = [tiny_world.session(seed=i, engine=eng) for i in range(2, 6)]
    assert eng.rows_in_use == 5 and eng.cache.rows >= 5
    rows = {s.row for s in extra}
    del extra
    gc.collect()
    assert eng.rows_in_use == 1
    again = tiny_world.session(seed=9, engine=eng)
    assert again.row in rows  # a freed row is claimed again, no growth
    assert all(torch.equal(k[keep.row], k_before) for k, k_before in zip(eng.cache.k, k0))


@pytest.mark.slow
def test_scattered_rows_equal_consecutive_rows(tiny_world):
    """Rows that are not consecutive are gathered for the pass: same frames as a batch of consecutive rows."""
    eng_a, eng_b = Engine(tiny_world), Engine(tiny_world)
    a = [tiny_world.session(seed=i, engine=eng_a) for i in range(4)]
    b = [tiny_world.session(seed=i, engine=eng_b) for i in range(4)]
    for t in range(5):
        acts = [t % 3, 0, 1, 2]
        out_a = eng_a.step([a[3], a[0], a[2]], [acts[3], acts[0], acts[2]])  # scattered, out of order
        out_b = eng_b.step(b[:3] + [b[3]], acts)
        for i, j in ((0, 3), (1, 0), (2, 2)):
            assert np.array_equal(out_a.frames[i], out_b.frames[j]), (t, i)


def test_reward_conventions():
    from maskworld.models.dynamics import FrameHeads

    heads = FrameHeads(torch.tensor([[0.0, 0.0, 3.0], [2.0, 0.0, 0.0]]), torch.tensor([-5.0, 5.0]))
    r, d, c = head_values(heads, "argmax")
    assert list(r) == [1.0, -1.0] and list(d) == [False, True] and list(c) == [1.0, 0.0]
    r, d, c = head_values(heads, "expected")
    assert 0.8 < r[0] < 1.0 and -1.0 < r[1] < -0.6 and c[0] > 0.99 and c[1] < 0.01
    with pytest.raises(ValueError, match="heads"):
        head_values(heads, "mean")


def test_sessions_of_two_engines_cannot_mix(tiny_world):
    from maskworld.errors import UserError

    a, b = tiny_world.session(seed=0, engine=Engine(tiny_world)), tiny_world.session(seed=1)
    with pytest.raises(UserError, match="engines"):
        tiny_world.step_many([a, b], [0, 1])


def test_sessions_saved_in_time_order_still_resume_exactly(tiny_world):
    """A session saved before the ring layout (keys/values in time order, a token-level valid mask) resumes into
    the slots its frames would have had, so it steps exactly like the session it was saved from."""
    s = tiny_world.session(seed=4)
    for a in [0, 1, 2, 0, 1, 2, 1]:  # past the window: the ring has wrapped
        s.step(a)
    tensors, info = s.state_dict()
    cache, F, S = s.engine.cache, s.engine.cache.F, s.engine.cache.S
    n = s.window_frames
    order = [(s.pos - n + i) % F for i in range(n)]  # slots, oldest frame first
    old = {k: v for k, v in tensors.items() if not k.startswith("cache.")}
    for layer in range(cache.n_layers):
        for kv, buf in (("k", cache.k), ("v", cache.v)):
            old[f"cache.{kv}.{layer}"] = torch.cat([buf[layer][s.row:s.row + 1, :, j * S:(j + 1) * S] for j in order], 2).clone()
    old["cache.valid"] = torch.ones(1, n * S, dtype=torch.uint8)
    old_info = {k: v for k, v in info.items() if k != "cache_layout"}
    r = type(s).from_state(tiny_world, old, old_info)
    for a in [2, 0, 1, 1]:
        assert np.array_equal(s.step(a)[0], r.step(a)[0])
