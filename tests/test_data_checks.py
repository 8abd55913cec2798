"""Training refuses, before writing anything, a budget too small to learn, episodes shorter than the window and
data whose frames never change; the same data without the fault trains."""

import numpy as np
import pytest

from maskworld.cli import main
from maskworld.data.store import Episode, StoreWriter
from toy import ACTIONS, make_toy_store


def _still_store(path, episodes=4, T=12):
    meta = {"env_id": "toy/still", "size": 64, "num_actions": 4, "has_actions": True, "action_meanings": ACTIONS,
            "info_keys": []}
    frame = np.full((64, 64, 3), 90, np.uint8)
    with StoreWriter(path, meta) as w:
        for _ in range(episodes):
            w.add(Episode.from_lists([frame] * (T + 1), [0] * T, [0.0] * T, [False] * T, [False] * (T - 1) + [True]))
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("minutes", "too small to train anything useful"),
    ("short", "pass --window"),
    ("still", "same image"),
])
def test_bad_training_input_is_refused_before_writing(tmp_path, capsys, case, message):
    data = _still_store(tmp_path / "d") if case == "still" else make_toy_store(tmp_path / "d", episodes=6, T=3 if case == "short" else 12)
    budget = ["--minutes", "0.2"] if case == "minutes" else ["--steps", "1"]
    out = tmp_path / "w"
    code = main(["train", "world", "--data", data, "--out", str(out), "--preset", "tiny", "--window", "4" if case != "short" else "8",
                 "--no-progress", *budget])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_checks_pass_on_good_data(tmp_path):
    from maskworld.data.store import EpisodeStore
    from maskworld.train.data_checks import check_budget, check_episodes, check_frames_change

    store = EpisodeStore(make_toy_store(tmp_path / "d", episodes=4, T=12))
    ids = store.episode_ids
    check_budget(10.0, 7.0)
    check_episodes(store, ids, 8)
    check_frames_change(store, ids)
