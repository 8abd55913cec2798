"""`maskworld rollout WORLD --data DATA --out video.mp4|gif`: ground truth | generated, side by side."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("rollout", help="write ground-truth and generated frames side by side for held-out episodes",
                       description="Open-loop rollouts on held-out episodes: the world sees --context real frames, "
                                   "then imagines --horizon frames from the logged actions.")
    p.add_argument("world", help="world directory")
    p.add_argument("--data", required=True, help="episode store with held-out episodes")
    p.add_argument("--out", required=True, help="output video: .mp4, .webm or .gif")
    p.add_argument("--episodes", type=int, default=4, help="held-out episodes, stacked vertically")
    p.add_argument("--context", type=int, default=2, help="real frames given before imagining")
    p.add_argument("--horizon", type=int, default=32, help="imagined frames")
    p.add_argument("--scale", type=int, default=3, help="nearest-neighbour upscaling")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def select_episodes(store, world, n: int, min_len: int, seed: int):
    """Held-out episodes with at least min_len frames (the split the world was trained with)."""
    from maskworld.data.held_out import world_split
    from maskworld.errors import UserError

    _, val_ids, _ = world_split(store, world.meta.model_card.get("split", {}))
    ids = [i for i in val_ids if store.length(i) + 1 >= min_len] or [i for i in store.episode_ids if store.length(i) + 1 >= min_len]
    if not ids:
        raise UserError(f"no episode in the store has {min_len} frames; lower --horizon/--context")
    return [store.load(i) for i in ids[:n]]


def run(args) -> int:
    import numpy as np

    from maskworld import load_world
    from maskworld.data.store import EpisodeStore
    from maskworld.eval.rollout import open_loop
    from maskworld.eval.video import side_by_side, upscale, write_video

    world = load_world(args.world)
    store = EpisodeStore(args.data)
    eps = select_episodes(store, world, args.episodes, args.context + args.horizon, args.seed)
    gen = open_loop(world, eps, args.context, args.horizon, args.seed)  # (E, H, ...)
    rows = []
    for e, ep in enumerate(eps):
        gt = ep.frames[args.context : args.context + args.horizon]
        rows.append(side_by_side(upscale(gt, args.scale), upscale(gen[e], args.scale)))
    video = np.concatenate(rows, 1)
    write_video(args.out, video, args.fps)
    print(f"wrote {args.out}: {len(eps)} held-out episodes, left = ground truth, right = generated ({args.horizon} frames)")
    return 0
