"""`maskworld map-actions WORLD --data LABELLED --transitions 200`: bind a game's real actions to a
latent-action world's codes from a few labelled transitions, so `maskworld play` uses the game's keys."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("map-actions", help="fit the real->latent action map of a world trained on video",
                       description="For a world trained on action-free video: infer the latent action of a few "
                                   "labelled transitions (a store with real actions), map each real action to its "
                                   "most frequent code, score the map on held-out labelled transitions, and write "
                                   "it into WORLD/world.json (play then binds the game's own keys).")
    p.add_argument("world", help="world directory trained on action-free data (has lam.safetensors)")
    p.add_argument("--data", required=True, help="episode store with real actions, from the same game")
    p.add_argument("--transitions", type=int, default=200, help="labelled transitions to fit on (default 200)")
    p.add_argument("--heldout", type=int, default=2000, help="held-out labelled transitions to score on (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _latents_of(world, store, ids, limit: int):
    """(real actions, latent codes) of the first `limit` transitions of these episodes."""
    import numpy as np

    from maskworld.eval.latent import infer_latents

    real, lat, n = [], [], 0
    for i in ids:
        if n >= limit:
            break
        ep = store.load(int(i))
        real.append(np.asarray(ep.actions))
        lat.append(infer_latents(world, ep.frames))
        n += len(ep.actions)
    return np.concatenate(real)[:limit], np.concatenate(lat)[:limit]


def run(args) -> int:
    import numpy as np

    from maskworld import load_world
    from maskworld.data.store import EpisodeStore
    from maskworld.errors import UserError
    from maskworld.world.latent import fit_action_map, map_accuracy

    if args.transitions < 1 or args.heldout < 1:
        raise UserError("--transitions and --heldout must be >= 1")
    world = load_world(args.world)
    if world.lam is None:
        raise UserError(f"{args.world} has real actions (no latent-action model); map-actions is for worlds trained on video")
    if world.path is None:
        raise UserError(f"{args.world} was loaded from a URL; map-actions rewrites world.json, so give a local directory")
    store = EpisodeStore(args.data)
    meanings = list(store.meta.get("action_meanings") or [])
    n_real = int(store.meta.get("num_actions") or 0)
    if not store.meta.get("has_actions", True) or n_real < 1:
        raise UserError(f"{args.data} has no actions (video); map-actions needs transitions with their real actions")
    if int(store.meta.get("size", world.meta.size)) != world.meta.size:
        raise UserError(f"{args.data} holds {store.meta.get('size')}px frames, the world {world.meta.size}px; "
                        f"collect with --size {world.meta.size}")
    train_ids, val_ids = store.split(seed=args.seed, val_fraction=0.25)
    rng = np.random.default_rng(args.seed)
    real_tr, lat_tr = _latents_of(world, store, rng.permutation(train_ids), 10 * args.transitions)
    K = world.lam.cfg.num_codes
    amap = fit_action_map(real_tr, lat_tr, n_real, K, args.transitions, seed=args.seed)
    real_va, lat_va = _latents_of(world, store, val_ids, args.heldout)
    acc = map_accuracy(amap["to_latent"], real_va, lat_va, n_real, K)
    if acc["accuracy"] is None:
        raise UserError(f"{args.data} has no labelled held-out transitions to score the map; collect a few more episodes")
    amap.update({"val_" + k: v for k, v in acc.items()})
    amap.update({"real_action_meanings": meanings or [f"ACTION_{a}" for a in range(n_real)], "data": str(args.data),
                 "command": getattr(args, "command_line", None)})
    world.meta.latent_actions["action_map"] = amap
    world.update_model_card()  # rewrites world.json (atomically) with the new map
    names = amap["real_action_meanings"]
    print("real action -> latent code: " + ", ".join(f"{names[a]}->{c + 1}" for a, c in enumerate(amap["to_latent"])))
    print(f"fit on {amap['fit_transitions']} labelled transitions; held-out accuracy {acc['accuracy']:.3f} "
          f"(most frequent code alone {acc['majority']:.3f}, {acc['transitions']} transitions); written to {world.path / 'world.json'}")
    return 0
