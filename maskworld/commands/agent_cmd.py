"""`maskworld train agent` (its options generated from maskworld.agents.config) and `maskworld eval-agent AGENT`:
an agent trained in the dream, played in the real env, beside a PPO baseline.

    maskworld eval-agent agents/fourrooms --episodes 20 --json agent_eval.json
    maskworld eval-agent agents/fourrooms --baseline-steps 0          # no PPO baseline

The baseline is Stable-Baselines3 PPO (CnnPolicy) trained on the real env for as many real steps as the
agent used in all: its own real steps plus the real transitions the world was trained on (agent.json's
`total_real_steps`; `--baseline-steps` overrides), so the comparison is sample efficiency.
Both play the same `--episodes` real episodes (same seeds), sampling their actions (`--greedy`: argmax).
The results are printed, written into agent.json under "eval" ("eval_greedy" with `--greedy`; `--json` also
writes them apart), and with `--update-card` into the world's model card under "agent" ("agent_greedy").
"""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  maskworld eval-agent agents/fourrooms --episodes 20
  maskworld eval-agent agents/fourrooms --env MiniGrid-FourRooms-v0 --baseline-steps 5000 --json out.json
"""


TRAIN_EXAMPLES = """examples:
  maskworld train agent --world worlds/empty8 --env MiniGrid-Empty-8x8-v0 --real-steps 20000 --sampler-steps 1
  maskworld train agent --world worlds/empty8 --real-steps 20000 --resume          # continue a stopped run
  maskworld train agent --world worlds/empty8 --world-updates 0                    # keep the world frozen
  maskworld eval-agent worlds/empty8/agent --episodes 20                           # real returns + PPO baseline
  maskworld play worlds/empty8/agent/world                                         # watch it (key G: agent drives)
Output: OUT/agent.json + agent.safetensors, OUT/world (the updated world), OUT/_work (checkpoints, TensorBoard)."""


def register_train_agent(tsub) -> None:
    """`maskworld train agent` under `train`'s subcommands."""
    from maskworld.agents.config import AgentConfig
    from maskworld.commands._config_cli import add_config_arguments

    ap = tsub.add_parser("agent", help="an actor-critic trained in imagination, alternating with real experience (Dyna)",
                         description="Train an agent C inside a world (batched imagined rollouts, lambda-returns), "
                                     "collecting real experience with the current policy between rounds and updating "
                                     "the world on it (the Dyna loop).",
                         epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(ap, AgentConfig)
    ap.set_defaults(func=run_train_agent)


def run_train_agent(args) -> int:
    from pathlib import Path

    from maskworld import load_world
    from maskworld.agents.config import AgentConfig
    from maskworld.agents.dyna import train_agent
    from maskworld.commands._config_cli import config_overrides

    cfg = AgentConfig.from_overrides(config_overrides(args, AgentConfig))
    r = cfg.run
    world = load_world(r.world, device=None if r.device == "auto" else r.device)
    out = r.out or str(Path(r.world) / "agent")
    _, m = train_agent(world, env_id=r.env, real_steps=r.real_steps, cfg=cfg.train, seed=r.seed, out=out,
                       progress=r.progress, view=r.view, data=r.data, command=getattr(args, "command_line", None),
                       resume=r.resume, ckpt_minutes=r.ckpt_minutes)
    shown = {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    print(f"agent saved to {out}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval-agent", help="play an agent trained in a world in the real env, beside a PPO baseline",
                       description="Mean real-episode return of an agent trained in imagination (train_agent), "
                                   "against Stable-Baselines3 PPO trained on the real env for the same real steps.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("agent", help="agent directory (agent.json + agent.safetensors)")
    p.add_argument("--env", help="real env id (default: the one the agent was trained against)")
    p.add_argument("--view", choices=["partial", "full"], help="MiniGrid view (default: the one the agent trained with)")
    p.add_argument("--size", type=int, help="frame size (default: the agent's)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=1000, help="cap on one episode's length")
    p.add_argument("--baseline-steps", type=int,
                   help="PPO real steps (default: the agent's real steps + the world's data transitions; 0 = no baseline)")
    p.add_argument("--greedy", action="store_true", help="argmax actions instead of sampling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--update-card", action="store_true", help="store the results in the world's model card (world.json)")
    p.set_defaults(func=run)


def real_gym_env(env_id: str, size: int, view: str, seed: int | None = None, env_kwargs: dict | None = None):
    """A `maskworld.envs` PixelEnv as a gymnasium.Env (uint8 frames), so SB3 trains on the agent's frames."""
    from typing import ClassVar

    import gymnasium as gym
    import numpy as np

    from maskworld.envs.adapter import make_env

    class RealGymEnv(gym.Env):
        metadata: ClassVar[dict] = {"render_modes": []}

        def __init__(self):
            self.env = make_env(env_id, size=size, seed=seed, view=view, **(env_kwargs or {}))
            self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
            self.action_space = gym.spaces.Discrete(self.env.num_actions)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            frame, _ = self.env.reset(seed=int(self.np_random.integers(2**31 - 1)))
            return frame, {}

        def step(self, action):
            frame, r, term, trunc, _ = self.env.step(int(action))
            return frame, float(r), bool(term), bool(trunc), {}

        def close(self):
            self.env.close()

    return RealGymEnv()


def play(policy, env_id: str, size: int, view: str, episodes: int, seed: int, max_steps: int,
         env_kwargs: dict | None = None) -> list[float]:
    """Real-episode returns of `policy(frame (S,S,3)) -> action`, episode k seeded with seed + k."""
    from maskworld.envs.adapter import make_env

    env = make_env(env_id, size=size, seed=seed, view=view, **(env_kwargs or {}))
    out = []
    try:
        for k in range(episodes):
            frame, _ = env.reset(seed=seed + k)
            total = 0.0
            for _ in range(max_steps):
                frame, r, term, trunc, _ = env.step(int(policy(frame)))
                total += r
                if term or trunc:
                    break
            out.append(total)
    finally:
        env.close()
    return out


def ppo_baseline(env_id: str, size: int, view: str, steps: int, seed: int, env_kwargs: dict | None = None):
    """SB3 PPO (CnnPolicy) trained on the real env for `steps` steps -> policy(frame) -> action."""
    import numpy as np

    try:
        from stable_baselines3 import PPO
    except ImportError:
        from maskworld.errors import UserError

        raise UserError("the PPO baseline needs Stable-Baselines3: pip install stable-baselines3 "
                        "(or pass --baseline-steps 0)") from None
    env = real_gym_env(env_id, size, view, seed, env_kwargs)
    model = PPO("CnnPolicy", env, n_steps=min(256, max(16, steps)), batch_size=min(64, max(16, steps)), seed=seed, verbose=0)
    model.learn(total_timesteps=steps)
    env.close()
    return lambda frame: model.predict(np.array(frame), deterministic=False)[0]  # a copy: frames may be read-only


def run(args) -> int:
    import json
    import time
    from pathlib import Path

    import numpy as np
    import torch

    from maskworld.agents.actor_critic import load_agent
    from maskworld.errors import UserError
    from maskworld.eval.uncertainty import mean_ci
    from maskworld.io import atomic_write_text

    if args.episodes < 1:
        raise UserError("--episodes must be >= 1")
    agent, train = load_agent(args.agent)
    env_id = args.env or train.get("env_id")
    if not env_id:
        raise UserError(f"{args.agent}/agent.json names no env; pass --env ENV_ID")
    size = args.size or agent.cfg.image_size
    view = args.view or train.get("view") or "partial"
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    agent_returns = play(lambda f: agent.act(f[None], gen, greedy=args.greedy)[0], env_id, size, view,
                         args.episodes, args.seed, args.max_steps, train.get("env_kwargs"))
    own, total = train.get("real_steps"), train.get("total_real_steps", train.get("real_steps"))
    res = {"agent": str(args.agent), "env_id": env_id, "view": view, "episodes": args.episodes, "seed": args.seed,
           "greedy": bool(args.greedy), "agent.real_steps": own, "agent.total_real_steps": total,
           "agent.mean_return": float(np.mean(agent_returns)), "agent.returns": agent_returns}
    steps = args.baseline_steps if args.baseline_steps is not None else int(total or 0)
    print(f"[eval-agent] agent ({own} real steps of its own, {total} with the world's data): mean return "
          f"{res['agent.mean_return']:.3f} over {args.episodes} episodes of {env_id} ({view} view)")
    rng = np.random.default_rng(args.seed)
    n_actions = agent.cfg.num_actions
    random_returns = play(lambda f: int(rng.integers(n_actions)), env_id, size, view, args.episodes, args.seed,
                          args.max_steps, train.get("env_kwargs"))
    res.update({"random.mean_return": float(np.mean(random_returns)), "random.returns": random_returns})
    print(f"[eval-agent] random actions: mean return {res['random.mean_return']:.3f} on the same episodes")
    # paired: episode k of both runs is the same seeded level, so the level's own luck cancels in the difference
    diff = np.asarray(agent_returns) - np.asarray(random_returns)
    res.update({"agent_minus_random": float(diff.mean()),
                "agent_minus_random_ci": mean_ci(diff, np.arange(len(diff)), seed=args.seed)})
    ci = res["agent_minus_random_ci"]
    print(f"[eval-agent] agent - random: {res['agent_minus_random']:+.3f}"
          + (f" (95 % interval over episodes [{ci[0]:+.3f}, {ci[1]:+.3f}])" if ci else " (one episode: no interval)"))
    if steps > 0:
        policy = ppo_baseline(env_id, size, view, steps, args.seed, train.get("env_kwargs"))
        ppo_returns = play(policy, env_id, size, view, args.episodes, args.seed, args.max_steps, train.get("env_kwargs"))
        res.update({"ppo.real_steps": steps, "ppo.mean_return": float(np.mean(ppo_returns)), "ppo.returns": ppo_returns})
        print(f"[eval-agent] PPO baseline ({steps} real steps): mean return {res['ppo.mean_return']:.3f}")
    res["seconds"] = round(time.time() - t0, 1)
    info = json.loads((Path(args.agent) / "agent.json").read_text())
    info["eval_greedy" if args.greedy else "eval"] = res
    atomic_write_text(Path(args.agent) / "agent.json", json.dumps(info, indent=2))
    if args.json:
        atomic_write_text(args.json, json.dumps(res, indent=1))
        print(f"wrote {args.json}")
    if args.update_card:  # the world it trained in (updated by the Dyna loop) and the one it started from
        for w in dict.fromkeys(p for p in (train.get("world"), train.get("world_started_from")) if p):
            _update_world_card(w, res, train)
        if not (train.get("world") or train.get("world_started_from")):
            _update_world_card(None, res, train)
    return 0


def _update_world_card(world_path, res: dict, train: dict) -> None:
    """Store the agent's numbers under "agent" in the world's model card (world.json, weights untouched)."""
    from maskworld.errors import UserError
    from maskworld.world.world import load_world

    if not world_path:
        raise UserError("agent.json names no world directory; --update-card needs the world the agent was trained in")
    world = load_world(world_path, device="cpu")
    summary = {k: v for k, v in res.items() if not k.endswith(".returns")}
    summary["train"] = {k: train.get(k) for k in ("command", "real_steps", "world_data_steps", "total_real_steps",
                                                  "real_return_last10", "updates", "world_update_steps", "train_s",
                                                  "config", "world")}
    key = "agent_greedy" if res.get("greedy") else "agent"
    world.update_model_card(**{key: summary})
    print(f"stored the agent's numbers in {world_path}/world.json (model_card.{key})")
