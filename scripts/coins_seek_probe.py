"""Does a Coins world's imagination reward a coin-seeking policy as the real game does? -> printed table + JSON.

    python scripts/coins_seek_probe.py maskworld/worlds/coins --data data/coins --out seek_probe.json

A diagnostic for agents trained in a world of `MultiAgent-Coins-v0` (not part of the package: the policy reads
the game's colours). Two policies act on frames: `seek` moves each avatar one cell toward its nearest coin (found
by the game's colours on the cell centres), `random` draws joint actions uniformly. Each plays
- the real game: reward per step over `--episodes` episodes of `--steps` steps;
- the world: imagined reward per step (the reward head's expectation, as `train agent` uses it) over `--horizon`
  steps from `--starts` real start frames of the world's data, and the coins the world draws per frame.
If the world's imagined reward ranks `seek` far less above `random` than the game does, an agent trained in the
world has little to learn from, whatever the agent.
"""

import argparse

import numpy as np
import torch

from maskworld import load_world
from maskworld.agents.imagination import imagine
from maskworld.agents.starts import load_data_starts
from maskworld.envs.base import joint_action
from maskworld.envs.coins import AGENT_COLORS, COIN, N, CoinsEnv
from maskworld.io import atomic_write_json

MOVE_TOWARD = ((-1, 0, 1), (1, 0, 2), (0, -1, 3), (0, 1, 4))  # (dy, dx sign to close, action): UP DOWN LEFT RIGHT


def cell_colours(frames_BSS3: np.ndarray, tile: int = 8) -> np.ndarray:
    """(B,S,S,3) frames -> (B,G,G,3) int colours of the cells' centre pixels."""
    return frames_BSS3[:, tile // 2::tile, tile // 2::tile].astype(int)


def is_coin(colours: np.ndarray) -> np.ndarray:
    """(..., 3) cell colours -> (...) bool: coin-coloured."""
    return np.abs(colours - np.array(COIN)).sum(-1) < 60


def coins_drawn(frames_BSS3: np.ndarray) -> np.ndarray:
    """(B,S,S,3) -> (B,) cells whose centre is coin-coloured."""
    return is_coin(cell_colours(frames_BSS3)).sum((-1, -2))


def seek(frames_BSS3: np.ndarray, agents: int, rng: np.random.Generator) -> np.ndarray:
    """Each avatar steps toward its nearest coin (a random move where no avatar or coin is seen) -> (B,) joint actions."""
    out = []
    for c in cell_colours(frames_BSS3):
        coins = np.argwhere(is_coin(c))  # (k, 2) as (y, x)
        moves = []
        for i in range(agents):
            d = np.abs(c - np.array(AGENT_COLORS[i])).sum(-1)
            y, x = np.unravel_index(d.argmin(), d.shape)
            a = int(rng.integers(N))
            if len(coins) and d.min() < 80:
                ty, tx = coins[np.abs(coins - [y, x]).sum(1).argmin()]
                opts = [act for dy, dx, act in MOVE_TOWARD if (dy and np.sign(ty - y) == dy) or (dx and np.sign(tx - x) == dx)]
                a = opts[int(rng.integers(len(opts)))] if opts else 0
            moves.append(a)
        out.append(joint_action(moves, N))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--data", required=True, help="the world's data store (start frames)")
    ap.add_argument("--episodes", type=int, default=5, help="real episodes per policy")
    ap.add_argument("--steps", type=int, default=256, help="steps per real episode")
    ap.add_argument("--starts", type=int, default=64, help="imagined rollouts per policy, one per data frame")
    ap.add_argument("--horizon", type=int, default=15, help="imagined steps per rollout (train agent's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="JSON file for the numbers")
    args = ap.parse_args()
    world = load_world(args.world)
    if world.meta.env_id != "MultiAgent-Coins-v0":
        raise SystemExit(f"{args.world} is a world of {world.meta.env_id}, not of MultiAgent-Coins-v0: this probe reads Coins' colours")
    agents = len(world.dynamics.cfg.action_factors or [0])
    rng = np.random.default_rng(args.seed)
    policies = {"seek": lambda f: seek(f, agents, rng), "random": lambda f: rng.integers(world.num_actions, size=len(f))}
    env = CoinsEnv(agents=agents)
    starts = load_data_starts(world, args.data, 4 * args.starts, args.seed)[: args.starts]
    res = {"world": args.world, "agents": agents, "horizon": args.horizon, "starts": len(starts)}
    for name, pol in policies.items():
        total = 0.0
        for k in range(args.episodes):
            f, _ = env.reset(seed=args.seed + 1000 + k)
            for _ in range(args.steps):
                f, r, *_ = env.step(int(pol(f[None])[0]))
                total += r
        with torch.no_grad():
            ro = imagine(world, pol, starts, args.horizon, range(len(starts)))
        res[name] = {"real_reward_per_step": total / (args.episodes * args.steps),
                     "imagined_reward_per_step": float(ro.rewards.mean()),
                     "imagined_coins_per_frame": float(coins_drawn(ro.obs.reshape(-1, *ro.obs.shape[2:])).mean())}
        print(f"{name:6s} real {res[name]['real_reward_per_step']:.3f} a step, imagined {res[name]['imagined_reward_per_step']:.3f} "
              f"a step, {res[name]['imagined_coins_per_frame']:.2f} coins drawn a frame", flush=True)
    if args.out:
        atomic_write_json(args.out, res, indent=2)


if __name__ == "__main__":
    main()
