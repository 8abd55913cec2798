"""MiniGrid-Landmarks-v0, revisit trials and the landmark-recall metric (revisit benchmark)."""

import numpy as np
import pytest

from maskworld.errors import UserError

pytest.importorskip("minigrid")


@pytest.fixture(scope="module")
def trials():
    from maskworld.eval.revisit_trials import make_trials

    return make_trials(gaps=(8, 32, 128), per_gap=2, seed=0)


def _layout(env, seed):
    env.reset(seed=seed)
    return env.grid.encode(), tuple(env.agent_pos), env.agent_dir


def test_layout_depends_on_seed_only():
    import gymnasium as gym

    import maskworld.envs  # noqa: F401  (registers the id)

    env = gym.make("MiniGrid-Landmarks-v0").unwrapped
    a, b, c = _layout(env, 1), _layout(env, 1), _layout(env, 2)
    assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    assert not np.array_equal(a[0], c[0])
    # 6 landmarks with distinct (type, colour), none grey; the 4 openings are walkable.
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

    grid = a[0]
    objs = [tuple(grid[x, y, :2]) for x in range(13) for y in range(13)
            if grid[x, y, 0] in (OBJECT_TO_IDX["ball"], OBJECT_TO_IDX["box"], OBJECT_TO_IDX["key"])]
    assert len(objs) == 6 == len(set(objs))
    assert all(c != COLOR_TO_IDX["grey"] for _, c in objs)


def test_env_never_ends_early_and_passes_checker():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import maskworld.envs  # noqa: F401

    env = gym.make("MiniGrid-Landmarks-v0", max_steps=20)
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(20):
        _, reward, term, trunc, _ = env.step(int(rng.integers(7)))
        assert reward == 0.0 and not term
    assert trunc


def test_make_env_records_pose():
    from maskworld.envs import KNOWN_ENVS, make_env

    assert "MiniGrid-Landmarks-v0" in [e for e, _ in KNOWN_ENVS]
    env = make_env("MiniGrid-Landmarks-v0", size=64, seed=3, view="partial")
    frame, info = env.reset(seed=3)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert info["agent_pos"].shape == (2,) and 0 <= info["agent_dir"] < 4
    frame, _, _, _, info = env.step(2)
    assert "agent_pos" in info
    env.close()


def test_trials_are_exact_closed_walks(trials):
    for tr in trials:
        n = tr.outbound + tr.gap + 4
        assert tr.outbound == 5 and len(tr.frames) == len(tr.actions_in) == len(tr.poses) == len(tr.views) == n
        assert tr.actions_in[0] == -1 and set(tr.actions_in[1:].tolist()) <= {0, 1, 2}
        assert tr.ret[0] - (tr.outbound - 1) == tr.gap
        assert np.array_equal(tr.poses[tr.ret], tr.poses[tr.match])
        assert np.array_equal(tr.match, np.arange(5))
        # Only left/right/forward: the world is unchanged, so the return scan repeats the outbound one.
        assert np.array_equal(tr.frames[tr.ret], tr.frames[tr.match])
        assert np.array_equal(tr.views[tr.ret], tr.views[tr.match])
        # Poses agree with the actions: turns keep the cell, scan frames turn right.
        assert np.array_equal((tr.poses[1:5, 2] - tr.poses[:4, 2]) % 4, [1, 1, 1, 1])
    away = {tr.gap: tr.away for tr in trials}
    assert away[8] >= 1 and away[32] >= 6 and away[128] >= 8


def test_odd_and_tiny_gaps_are_exact():
    from maskworld.eval.revisit_trials import make_trials

    for tr in make_trials(gaps=(1, 7, 13), per_gap=1, seed=5):
        assert tr.ret[0] - 4 == tr.gap and np.array_equal(tr.poses[tr.ret], tr.poses[tr.match])


def test_trials_are_deterministic():
    from maskworld.eval.revisit_trials import make_trials

    a = make_trials(gaps=(16,), per_gap=2, seed=1)
    b = make_trials(gaps=(16,), per_gap=2, seed=1)
    c = make_trials(gaps=(16,), per_gap=2, seed=2)
    for x, y in zip(a, b):
        assert np.array_equal(x.frames, y.frames) and np.array_equal(x.actions_in, y.actions_in)
    assert not np.array_equal(a[0].frames, c[0].frames)


def _all(trials):
    return np.concatenate([t.frames for t in trials]), np.concatenate([t.views for t in trials])


def test_recall_real_frames(trials):
    from maskworld.eval.revisit_trials import landmark_recall

    frames, views = _all(trials)
    hits, total = landmark_recall(frames, views)
    assert total > 50 and hits / total >= 0.95


def test_recall_fails_on_corrupted_frames(trials):
    from maskworld.eval.revisit_trials import _cell_box, _landmark_mask, landmark_recall

    frames, views = _all(trials)
    for perm in ([1, 2, 0], [2, 0, 1]):  # cyclic channel shifts change every palette colour
        hits, total = landmark_recall(frames[..., perm], views)
        assert hits / total <= 0.2
    hits, total = landmark_recall(np.full_like(frames, 76), views)  # blank highlighted floor
    assert hits / total <= 0.2
    painted = frames.copy()
    for f, v in zip(painted, views):
        for i, j in zip(*np.nonzero(_landmark_mask(v))):
            f[_cell_box(int(i), int(j), 64)] = 76
    hits, total = landmark_recall(painted, views)
    assert hits / total <= 0.2
    # A too-big blob of the right colour fails the area check: fill each landmark cell with it.
    from minigrid.core.constants import COLORS, IDX_TO_COLOR

    smeared = frames.copy()
    for f, v in zip(smeared, views):
        for i, j in zip(*np.nonzero(_landmark_mask(v))):
            f[_cell_box(int(i), int(j), 64)] = COLORS[IDX_TO_COLOR[int(v[i, j, 1])]]
    hits, total = landmark_recall(smeared, views)
    assert hits / total <= 0.2


def test_recall_low_for_other_layouts(trials):
    from maskworld.eval.revisit_trials import landmark_recall

    frames, views = _all(trials)
    hits, total = landmark_recall(np.roll(frames, len(frames) // 2, axis=0), views)
    assert hits / total <= 0.2


def test_bad_inputs_raise_user_errors():
    from maskworld.eval.revisit_trials import landmark_recall, make_trials

    with pytest.raises(UserError):
        landmark_recall(np.zeros((2, 64, 64, 3), np.uint8), np.zeros((3, 7, 7, 3), np.uint8))
    with pytest.raises(UserError):
        make_trials(gaps=(0,), per_gap=1)


def test_recall_of_renderable_cells(trials):
    """recall_renderable scores only cells the reference reconstruction shows: the reference itself gets 1.0, a
    blank world 0.0, and the cell order of landmark_hits lines up between frame sequences."""
    from maskworld.eval.revisit import _scores
    from maskworld.eval.revisit_trials import landmark_hits, landmark_recall

    t = trials[0]
    frames, views = t.frames[t.ret], t.views[t.ret]
    hits = landmark_hits(frames, views)
    assert (int(hits.sum()), len(hits)) == landmark_recall(frames, views)
    ref = [t.frames.copy() for t in trials[:2]]
    for r in ref:  # a reference that loses the right half of every frame: fewer renderable cells
        r[:, :, 32:] = 76
    renderable = [landmark_hits(r[t.ret], t.views[t.ret]) for r, t in zip(ref, trials[:2])]
    assert 0 < sum(int(x.sum()) for x in renderable) < sum(len(x) for x in renderable)
    assert _scores(trials[:2], ref, renderable)["recall_renderable"] == 1.0
    blank = [np.full_like(t.frames, 76) for t in trials[:2]]
    s = _scores(trials[:2], blank, renderable)
    assert s["recall_renderable"] == 0.0 and s["landmarks_renderable"] == sum(int(x.sum()) for x in renderable)
    real = _scores(trials[:2], [t.frames for t in trials[:2]], renderable)
    assert real["recall_renderable"] == 1.0 and real["recall"] >= 0.95
