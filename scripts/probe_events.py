"""Does a world imagine its rare events? Replays the real transitions into reward/termination frames.

    python scripts/probe_events.py WORLD                     # the world's data, held-out episodes
    python scripts/probe_events.py WORLD --split train --json probe.json

For every event transition (nonzero reward or termination) of the chosen episodes, from the real frames
before it, the world imagines the real actions with the agent's imagination path (`agents.imagination.imagine`,
heads "expected", `--sampler-steps` MaskGIT steps, 1 as `train agent` is usually run):
- `ctxC`: C real frames of context ending just before the event, then the real event action: the imagined
  reward (p(+1) - p(-1)), p(end), and `entered`, the share of imagined frames that, in the box where the real event
  frame shows the agent (MiniGrid's red triangle), look like that frame rather than like the frame before it.
- `teacher`: the heads on the real event frame after C = max(contexts) real frames (real tokens, no imagination):
  what the heads give when the frame is imagined exactly; `teacher_none` the same on random frames that are no
  event (false alarms: oversampling events shifts the heads' priors).
- `replayK`: one real start frame K steps before the event, then the K real actions: the imagined return
  (sum of reward x alive), the share of replays whose return exceeds 0.5, and `entered` on the last frame.
- `uniform`: rollouts of `--horizon` steps from random data frames under a uniform policy: mean imagined
  return per rollout (the reward an agent's first updates see).
Used to compare a world trained with `--event-share` against one trained on uniform clips.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--data", help="episode store (default: the path on the world's model card)")
    ap.add_argument("--split", choices=["val", "train", "all"], default="val", help="episodes to probe (default val)")
    ap.add_argument("--contexts", default="1,3", help="context lengths C (default 1,3)")
    ap.add_argument("--replay", type=int, default=5, help="K real steps replayed from one start frame (default 5)")
    ap.add_argument("--sampler-steps", type=int, default=1)
    ap.add_argument("--uniform", type=int, default=128, help="uniform-policy rollouts (0: none)")
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    import numpy as np
    import torch

    from maskworld import load_world
    from maskworld.agents.imagination import imagine
    from maskworld.world.engine import Engine
    from maskworld.world.session import Session
    from maskworld.data.store import EpisodeStore

    torch.set_num_threads(a.threads)
    world = load_world(a.world)
    card = world.meta.model_card or {}
    store = EpisodeStore(a.data or card["data"]["path"])
    split = card.get("split", {})
    train_ids, val_ids = store.split(seed=split.get("seed", 0), val_fraction=split.get("val_fraction", 0.1))
    ids = {"val": val_ids, "train": train_ids, "all": list(store.episode_ids)}[a.split]
    sampler = dataclasses.replace(world.sampler, steps=a.sampler_steps)
    rng = np.random.default_rng(a.seed)

    def rendered(frames):  # (B,S,S,3) -> what the world can show of them (through the tokenizer), float
        g = world.dynamics.cfg.grid
        t = world.tokenizer.tokenize_uint8(torch.from_numpy(np.ascontiguousarray(frames)).to(world.device))
        return world.tokenizer.render_uint8(t.view(len(frames), g, g)).cpu().numpy().astype(np.float32)

    def agent_box(frame):  # where MiniGrid's agent (a red triangle) stands in a real frame, 1px wider
        f = frame.astype(np.int16)
        ys, xs = np.nonzero((f[..., 0] > 150) & (f[..., 1] < 100) & (f[..., 2] < 100))
        out = np.zeros(f.shape[:2], bool)
        if len(ys):
            out[max(ys.min() - 1, 0) : ys.max() + 2, max(xs.min() - 1, 0) : xs.max() + 2] = True
        return out

    def entered(imagined, goal, prev):
        """Share of imagined frames that, where the real event frame has the agent, look like it (rendered through the
        tokenizer: the agent on the goal is drawn orange there) rather than like the frame before (no agent there)."""
        im, g, p = imagined.astype(np.float32), rendered(goal), rendered(prev)
        hits = []
        for j in range(len(im)):
            b = agent_box(goal[j])
            hits.append(np.abs(im[j][b] - g[j][b]).mean() < np.abs(im[j][b] - p[j][b]).mean() if b.any() else False)
        return float(np.mean(hits))

    def replay(starts, start_actions, actions_BK):
        k = {"t": 0}

        def act(_obs):
            k["t"] += 1
            return actions_BK[:, k["t"] - 1]

        seeds = rng.integers(0, 2**31 - 1, len(actions_BK))
        return imagine(world, act, starts, actions_BK.shape[1], seeds, start_actions, sampler=sampler)

    @torch.no_grad()
    def teacher(frames_BCS3, acts_BC):  # commit real frames one by one -> the heads on the last
        eng = Engine(world, rows=len(frames_BCS3))
        sessions = [Session(world, b, engine=eng) for b in range(len(frames_BCS3))]
        for j in range(frames_BCS3.shape[1]):
            acts = [None if a < 0 else int(a) for a in acts_BC[:, j]]
            heads = eng.observe(sessions, frames_BCS3[:, j], acts, render=False)
        p = torch.softmax(heads.reward.float(), -1)
        return float((p[:, 2] - p[:, 0]).mean()), float(torch.sigmoid(heads.term.float()).mean())

    events = []  # (episode, event frame n)
    for i in ids:
        ep = store.load(i)
        for t in np.flatnonzero((ep.rewards != 0) | ep.terminated):
            events.append((ep, int(t) + 1))
    out = {"world": a.world, "split": a.split, "events": len(events), "sampler_steps": a.sampler_steps}
    if events:
        goal = np.stack([ep.frames[n] for ep, n in events])
        prev = np.stack([ep.frames[n - 1] for ep, n in events])
        last_act = np.array([[int(ep.actions[n - 1])] for ep, n in events])
        for c in (int(x) for x in a.contexts.split(",")):
            ok = [j for j, (ep, n) in enumerate(events) if n - c >= 0]
            if c == 1:
                starts, sa = prev[ok], None
            else:
                starts = np.stack([events[j][0].frames[events[j][1] - c : events[j][1]] for j in ok])
                sa = np.array([[-1] + [int(events[j][0].actions[m - 1]) for m in range(events[j][1] - c + 1, events[j][1])] for j in ok])
            ro = replay(starts, sa, last_act[ok])
            out[f"ctx{c}"] = {"n": len(ok), "reward": float(ro.rewards[0].mean()), "p_end": float(1 - ro.continues[0].mean()),
                              "entered": entered(ro.obs[-1], goal[ok], prev[ok])}
        c = max(int(x) for x in a.contexts.split(","))
        ok = [j for j, (ep, n) in enumerate(events) if n - c >= 0]
        fr = np.stack([events[j][0].frames[events[j][1] - c : events[j][1] + 1] for j in ok])
        ac = np.array([[-1] + [int(events[j][0].actions[m - 1]) for m in range(events[j][1] - c + 1, events[j][1] + 1)] for j in ok])
        r, d = teacher(fr, ac)
        out["teacher"] = {"n": len(ok), "context": c, "reward": r, "p_end": d}
        quiet = []  # (episode, frame n) of non-event frames with c frames before them
        for ep in {id(e): e for e, _ in events}.values() if a.split == "val" else [store.load(int(i)) for i in ids[:40]]:
            hit = np.concatenate([[True], (ep.rewards != 0) | ep.terminated])
            quiet += [(ep, n) for n in range(c, len(ep.frames)) if not hit[n]]
        pick = [quiet[j] for j in rng.choice(len(quiet), min(256, len(quiet)), replace=False)]
        fr = np.stack([ep.frames[n - c : n + 1] for ep, n in pick])
        ac = np.array([[-1] + [int(ep.actions[m - 1]) for m in range(n - c + 1, n + 1)] for ep, n in pick])
        r, d = teacher(fr, ac)
        out["teacher_none"] = {"n": len(pick), "context": c, "reward": r, "p_end": d}
        K = a.replay
        ok = [j for j, (ep, n) in enumerate(events) if n - K >= 0]
        if K > 0 and ok:
            starts = np.stack([events[j][0].frames[events[j][1] - K] for j in ok])
            acts = np.array([[int(events[j][0].actions[m]) for m in range(events[j][1] - K, events[j][1])] for j in ok])
            ro = replay(starts, None, acts)
            ret = (ro.alive * ro.rewards).sum(0).numpy()
            out[f"replay{K}"] = {"n": len(ok), "return": float(ret.mean()), "hit": float((ret > 0.5).mean()),
                                 "entered": entered(ro.obs[-1], goal[ok], prev[ok])}
    if a.uniform:
        frames = [store.load(int(i)).frames for i in rng.choice(ids, min(len(ids), 32), replace=False)]
        starts = np.stack([f[rng.integers(0, len(f) - 1)] for f in (frames[j % len(frames)] for j in range(a.uniform))])
        A = world.num_actions
        ro = imagine(world, lambda o: rng.integers(0, A, len(o)), starts, a.horizon, rng.integers(0, 2**31 - 1, a.uniform),
                     sampler=sampler)
        ret = (ro.alive * ro.rewards).sum(0).numpy()
        out["uniform"] = {"n": a.uniform, "horizon": a.horizon, "return": float(ret.mean()), "hit": float((ret > 0.5).mean())}
    print(json.dumps(out, indent=1))
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
