"""An agent directory -> the policy `maskworld play` lets drive (frames -> world actions).

The play server takes the policy as a plain callable, so serving never imports agents; this is the
one place an agent is turned into one.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskworld.agents.actor_critic import load_agent
from maskworld.errors import UserError


def load_policy(path, world):
    """-> (policy: frames (B,S,S,3) uint8 -> (B,) world actions, summary dict for the page).

    UserError if the agent is corrupt or was made for another world (action count, frame size)."""
    import torch


    agent, train = load_agent(path, device=world.device)
    if agent.cfg.num_actions != world.num_actions or agent.cfg.image_size != world.meta.size:
        raise UserError(f"agent {path} acts with {agent.cfg.num_actions} actions on {agent.cfg.image_size}px frames but "
                        f"this world has {world.num_actions} actions and {world.meta.size}px frames; pick the agent "
                        "trained in this world (--agent) or play without one (--no-agent)")
    gen = torch.Generator().manual_seed(0)
    info = json.loads((Path(path) / "agent.json").read_text())
    ev = info.get("eval") or {}
    summary = {"name": Path(path).name, "env_id": train.get("env_id"), "real_steps": train.get("real_steps"),
               "mean_return": ev.get("agent.mean_return")}
    return (lambda frames: agent.act(frames, gen)), summary
