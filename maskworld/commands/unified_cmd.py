"""`maskworld unified imagine|describe`: the tasks of a unified world (words, frames, actions in one model) from the
command line. Its quality protocol is `maskworld eval` (which recognises a unified world)."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  maskworld unified imagine worlds/babyai --text "go to the red ball" --out red_ball.gif
  maskworld unified imagine worlds/babyai --text "go to a green key" --actions 1,2,2 --out key.png
  maskworld unified describe worlds/babyai --data data/babyai --episodes 5
"""


def register(sub) -> None:
    p = sub.add_parser("unified", help="a unified world's tasks: a world from words, its own policy, words from frames",
                       description="One set of weights does every task by what it hides (docs/unified.md).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="unified_command", metavar="TASK", required=True)
    im = s.add_parser("imagine", help="generate a first frame from words, then roll the world with given actions or "
                                      "with its own policy", epilog=EXAMPLES,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    im.add_argument("world", help="a unified world directory (`maskworld train world --kind unified`)")
    im.add_argument("--text", required=True, help="the instruction, in the words of the world's data")
    im.add_argument("--actions", help="comma-separated action ids to take (default: the world's own policy drives)")
    im.add_argument("--steps", type=int, default=8, help="steps under the world's own policy (without --actions)")
    im.add_argument("--out", required=True, help="a .png strip or a .gif of the frames")
    im.add_argument("--seed", type=int, default=0)
    im.add_argument("--scale", type=int, default=3, help="nearest-neighbour upscaling of the picture")
    im.set_defaults(func=run_imagine)
    de = s.add_parser("describe", help="the instruction each held-out expert episode shows, and the actions inferred "
                                       "between its frames, beside the truth", epilog=EXAMPLES,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    de.add_argument("world", help="a unified world directory")
    de.add_argument("--data", required=True, help="an episode store with mission texts (its held-out split is used)")
    de.add_argument("--episodes", type=int, default=5, help="held-out episodes to describe")
    de.set_defaults(func=run_describe)


def run_imagine(args) -> int:
    import numpy as np

    from maskworld.errors import UserError
    from maskworld.eval.video import upscale, write_video
    from maskworld.world.unified import load_unified_world

    if not args.out.endswith((".png", ".gif")):
        raise UserError(f"--out {args.out}: write a .png strip or a .gif")
    w = load_unified_world(args.world)
    actions = None
    if args.actions:
        try:
            actions = [int(a) for a in args.actions.split(",")]
        except ValueError:
            raise UserError(f"--actions {args.actions!r}: give comma-separated integers, e.g. 1,2,2") from None
    s = w.session(text=args.text, seed=args.seed)
    frames, taken = [s.frame], []
    for t in range(len(actions) if actions is not None else args.steps):
        a = actions[t] if actions is not None else s.act()
        frame, reward, done = s.step(a)
        frames.append(frame)
        taken.append(w.action_meanings[a] if a < len(w.action_meanings) else str(a))
        if done:
            break
    video = upscale(np.stack(frames), args.scale)
    if args.out.endswith(".gif"):
        write_video(args.out, video, 4)
    else:
        from PIL import Image

        Image.fromarray(np.concatenate(list(video), axis=1)).save(args.out)
    who = "given" if actions is not None else "the world's own policy"
    print(f"wrote {args.out}: a world from {args.text!r}, {len(frames) - 1} steps by {who}: {' '.join(taken) or '-'}")
    return 0


def run_describe(args) -> int:
    from maskworld.data.held_out import world_split
    from maskworld.data.store import EpisodeStore
    from maskworld.world.unified import load_unified_world

    w = load_unified_world(args.world)
    store = EpisodeStore(args.data)
    _, val, _ = world_split(store, w.meta.model_card.get("split", {}))
    default = store.meta.get("policy")
    expert = [i for i in val if (store.entry(i).get("policy") or default) == "bot"] or val
    for i in expert[:args.episodes]:
        ep = store.load(i)
        said = w.describe(ep.frames, ep.actions)
        acts = w.infer_actions(ep.frames)
        print(f"episode {i}: truth {store.entry(i).get('mission')!r}; the world says {said!r}; actions "
              f"{ep.actions.tolist()} inferred {acts.tolist()}")
    return 0
