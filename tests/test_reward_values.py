"""The reward head's classes are the game's reward values where they are few (models/reward_values.py)."""

import numpy as np
import pytest
import torch

import maskworld
from maskworld.cli import main
from maskworld.models.dynamics import FrameHeads
from maskworld.models.reward_values import SIGN_VALUES, class_values, reward_class, reward_values_for, zero_class
from maskworld.world.engine import head_values
from toy import make_toy_store


def test_the_data_s_few_reward_values_become_the_classes():
    coins = np.array([0, 1, 0, 2, 3, 0, 1], np.float32)
    assert reward_values_for(coins) == [0.0, 1.0, 2.0, 3.0]
    assert reward_values_for(np.array([0.0, 10.0])) == [0.0, 10.0]  # CoinRun: a coin is worth 10, not 1
    assert reward_values_for(np.array([1.0, 4.0, 7.0])) == [0.0, 1.0, 4.0, 7.0]  # 0 is always a class
    assert reward_values_for(np.array([0.0, 1.0, -1.0])) is None  # the sign already says it all
    assert reward_values_for(np.array([0.0, 1.0])) is None
    assert reward_values_for(1 - 0.9 * np.arange(50) / 50) is None  # MiniGrid's time-discounted reward: many values
    assert class_values(None) == SIGN_VALUES and zero_class(None) == 1 and zero_class([0.0, 10.0]) == 0


def test_a_reward_s_class_is_its_nearest_value_or_its_sign():
    r = torch.tensor([0.0, 3.0, 2.0, 1.0, 2.6, -0.5])
    assert reward_class(r, [0.0, 1.0, 2.0, 3.0]).tolist() == [0, 3, 2, 1, 3, 0]
    assert reward_class(r, None).tolist() == [1, 2, 2, 2, 2, 0]


def test_each_class_pays_its_value_and_a_sign_head_pays_one_for_three_coins():
    """A step in which three coins are taken: the value head pays 3, the sign head of the same confidence 1."""
    logits = torch.tensor([[0.0, 0.0, 0.0, 6.0], [6.0, 0.0, 0.0, 0.0]])
    heads = FrameHeads(logits, torch.tensor([-5.0, -5.0]), values=(0.0, 1.0, 2.0, 3.0))
    r, _, _ = head_values(heads, "argmax")
    assert list(r) == [3.0, 0.0]
    r, _, _ = head_values(heads, "expected")
    p = torch.softmax(logits, -1).numpy()
    assert r == pytest.approx(p @ np.array([0.0, 1.0, 2.0, 3.0]), abs=1e-5) and 2.9 < r[0] < 3.0
    sign = FrameHeads(torch.tensor([[0.0, 0.0, 6.0]]), torch.tensor([-5.0]))
    assert head_values(sign, "argmax")[0][0] == 1.0


def test_a_head_of_more_classes_than_values_is_refused():
    from maskworld.models.dynamics import Dynamics, DynamicsConfig

    with pytest.raises(ValueError, match="reward_values"):
        Dynamics(DynamicsConfig(vocab_size=16, grid=2, num_actions=2, d_model=16, n_layers=1, n_heads=2,
                                reward_values=[0.0, 1.0, 5.0], reward_classes=3 + 1))


def test_a_world_file_whose_reward_values_and_classes_disagree_is_refused(tiny_world):
    import json

    from maskworld.errors import UserError

    f = tiny_world.path / "world.json"
    cfg = json.loads(f.read_text())
    cfg["dynamics"]["reward_values"] = [0.0, 1.0, 2.0, 3.0]  # four values, three classes in the weights
    f.write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="reward_values"):
        maskworld.load_world(tiny_world.path)


@pytest.mark.slow
def test_a_world_trained_on_rewards_of_several_values_predicts_them(tmp_path, one_thread):
    """Entering one corner pays 1, the other 5: the trained world's head has the classes 0, 1, 5, its steps return
    one of them, and an agent may train in it; on data that pays only 1 the world keeps the sign classes, and such a
    world continued (--init) on the data of two values gets a fresh head of their classes, every other weight kept."""
    from maskworld.agents.dream_env import check_world_for_rl

    data = make_toy_store(tmp_path / "d", episodes=12, T=16, far_corner=5.0)
    out = tmp_path / "w"
    tiny = ["--preset", "tiny", "--no-progress", "--seed", "0", "--steps", "3"]
    assert main(["train", "world", "--data", data, "--out", str(out)] + tiny) == 0
    w = maskworld.load_world(out)
    cfg = w.dynamics.cfg
    assert cfg.reward_values == [0.0, 1.0, 5.0] and cfg.reward_classes == 3
    assert w.dynamics.reward_head.out_features == 3
    assert cfg.reward_logit_shift is None or len(cfg.reward_logit_shift) == 3
    check_world_for_rl(w)
    s = w.session(seed=0)
    for a in (0, 1, 2, 3):
        _, r, _ = s.step(a)
        assert r in (0.0, 1.0, 5.0)
    plain = make_toy_store(tmp_path / "d1", episodes=12, T=16)
    assert main(["train", "world", "--data", plain, "--out", str(tmp_path / "w1")] + tiny) == 0
    sign = maskworld.load_world(tmp_path / "w1")
    assert sign.dynamics.cfg.reward_values is None and sign.dynamics.reward_head.out_features == 3
    ft = tmp_path / "ft"
    assert main(["train", "dynamics", "--data", data, "--out", str(ft), "--init", str(tmp_path / "w1")] + tiny[:-1] + ["1"]) == 0
    cont = maskworld.load_world(ft)
    assert cont.dynamics.cfg.reward_values == [0.0, 1.0, 5.0]
    near = [(v - cont.dynamics.state_dict()[k]).abs().max().item() for k, v in sign.dynamics.state_dict().items()
            if not k.startswith("reward_head.")]
    assert max(near) < 0.05  # one small step from the init world's weights; only the reward head is new
