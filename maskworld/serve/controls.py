"""What the play page's keys do: controls -> the world's actions.

A world with real actions: one control per action, bound from the action meanings (keys.py).
A world trained on action-free video (latent actions): keys 1..K press the latent codes directly
(the page shows a preview strip of what each does from the current frame); when the world has a
real->latent map (fitted on a few labelled transitions), the game's own actions come first, bound
as in the game, each sending the latent code it maps to.

`Controls.to_action[i]` is the world action that control i sends; `idle` is the control held in
real-time mode while no key is pressed (NOOP if the game has one; else, in a latent world, its most
frequent code, which in game footage is usually "nothing much happens").
"""

from __future__ import annotations

from dataclasses import dataclass

from maskworld.errors import UserError
from maskworld.serve import keys


@dataclass
class Controls:
    meanings: list[str]
    to_action: list[int]
    bindings: list[dict]
    idle: int | None
    latent: dict | None = None
    """Latent worlds: {"num_codes": K, "controls": [control index of code k]} for the preview strip."""

    def world_action(self, control: int | str) -> int:
        """A control from the page (index or meaning name, any case) -> the world action it sends.

        The one check an action from the page gets: what comes out is a world action (every entry of
        `to_action` is one), so the ticker and the world never see a control index."""
        if isinstance(control, str):
            upper = [m.upper() for m in self.meanings]
            if control.upper() not in upper:
                raise UserError(f"unknown action {control[:40]!r}; this world's actions are {', '.join(self.meanings)}")
            control = upper.index(control.upper())
        if isinstance(control, bool) or not isinstance(control, int) or not 0 <= control < len(self.to_action):
            raise UserError(f"action {control!r} is outside 0..{len(self.to_action) - 1} ({', '.join(self.meanings)})")
        return self.to_action[control]

    @property
    def idle_action(self) -> int | None:
        """The world action held while no key is pressed (None: real-time mode waits for a key)."""
        return None if self.idle is None else self.to_action[self.idle]


def for_world(world) -> Controls:
    if getattr(world.meta, "agents", 1) > 1:  # several agents: the keys move one avatar, the host joins the actions
        meanings = list(world.meta.agent_action_meanings)
        return Controls(meanings, list(range(len(meanings))), keys.bindings(meanings), keys.idle_action(meanings))
    if world.lam is None:
        meanings = list(world.action_meanings)
        return Controls(meanings, list(range(len(meanings))), keys.bindings(meanings), keys.idle_action(meanings))
    K = world.lam.cfg.num_codes
    info = world.meta.latent_actions or {}
    amap = info.get("action_map") or {}
    real = list(amap.get("real_action_meanings") or [])
    to_latent = list(amap.get("to_latent") or [])
    if len(real) != len(to_latent):
        real, to_latent = [], []
    digits = [str(k + 1) if k < 9 else None for k in range(K)]
    env_b = keys.bindings(real, reserved={d for d in digits if d})
    latent_b = [{"action": len(real) + k, "meaning": f"latent {k + 1}", "keys": [d] if d else [],
                 "label": d or "(click)"} for k, d in enumerate(digits)]
    meanings = real + [f"LATENT_{k + 1}" for k in range(K)]
    to_action = to_latent + list(range(K))
    for b in env_b + latent_b:
        b["code"] = to_action[b["action"]]
    idle = keys.idle_action(real)
    if idle is None:
        share = (info.get("val_usage") or {}).get("share") or []
        idle = len(real) + (max(range(len(share)), key=share.__getitem__) if len(share) == K else 0)
    return Controls(meanings, to_action, env_b + latent_b, idle,
                    latent={"num_codes": K, "controls": [len(real) + k for k in range(K)], "has_map": bool(real)})
