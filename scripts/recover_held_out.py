"""Name a world's held-out episodes by content after the fact, from the prompt frames it ships.

Worlds trained before cards listed their held-out episodes (data/held_out.py) carry only the split's seed, which
picks episodes by id: on a store collected again, with other ids, that split reads the world's training episodes.
A shipped world's `prompts.npz` holds frames of its held-out episodes; this finds, in a store made by the card's
collect command, the episodes those frames come from (a frame shared by several episodes, such as a reset frame,
identifies none), and with --write adds them to the card's `split.held_out`, so eval reads those episodes.

    python scripts/recover_held_out.py maskworld/worlds/breakout data/breakout            # report
    python scripts/recover_held_out.py maskworld/worlds/breakout data/breakout --write    # and write the card

Writes the episodes it identifies for certain; where a group of prompt frames fits several episodes (frames every
episode shares) that held-out episode is left out, so eval reads fewer episodes, all of them held out. The card
says how many were recovered (`split.held_out_recovered`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from maskworld.data.held_out import card_entries
from maskworld.data.store import EpisodeStore
from maskworld.io import atomic_write_text


def frame_key(frame: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frame).tobytes()).hexdigest()


def episodes_of_prompts(store: EpisodeStore, prompts: np.ndarray, n: int) -> tuple[list[int], int, int]:
    """(ids of the held-out episodes, held-out episodes that fit several, held-out episodes not in the store: the
    store differs, e.g. the policy changed since). scripts/ship_world.py took prompt k from held-out
    episode k mod n, so the frames k, k + n, k + 2n, ... come from one episode: the episodes holding all of them."""
    keys = [frame_key(f) for f in prompts]
    seen: dict[str, set[int]] = {k: set() for k in keys}
    for i in store.episode_ids:
        for f in store.load(i).frames:
            k = frame_key(f)
            if k in seen:
                seen[k].add(i)
    groups = [set.intersection(*(seen[keys[k]] for k in range(g, len(keys), n))) for g in range(min(n, len(keys)))]
    found: set[int] = set()
    while True:  # an episode is one group's: take out those found and look again
        new = {next(iter(c - found)) for c in groups if len(c - found) == 1 and not c & found}
        if not new:
            break
        found |= new
    return sorted(found), sum(len(c) > 1 and not c & found for c in groups), sum(not c for c in groups)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("world", help="world directory with world.json and prompts.npz")
    p.add_argument("data", help="a store made by the command in the card's data.collect_command")
    p.add_argument("--write", action="store_true", help="add the episodes found to the card's split.held_out")
    p.add_argument("--parent", help="a world this one was continued from (--init), its card already holding "
                   "split.held_out: keep only episodes it held out too, since it trained on the rest")
    a = p.parse_args(argv)
    world = Path(a.world)
    card_file = world / "world.json"
    cfg = json.loads(card_file.read_text())
    split = cfg["meta"]["model_card"].setdefault("split", {})
    store = EpisodeStore(a.data)
    want = split.get("val_episodes")
    if not want:
        print(f"error: {card_file} does not say how many episodes were held out (split.val_episodes)", file=sys.stderr)
        return 1
    frames = np.load(world / "prompts.npz")["frames"]
    ids, unclear, missing = episodes_of_prompts(store, frames, int(want))
    print(f"{world.name}: its prompt frames identify {len(ids)} of its {want} held-out episodes in {a.data} "
          f"({unclear} fit several episodes, {missing} are not in it, {max(0, int(want) - len(frames))} have no "
          "prompt frame)")
    if a.parent:
        parent = json.loads((Path(a.parent) / "world.json").read_text())["meta"]["model_card"].get("split") or {}
        if not parent.get("held_out"):
            print(f"error: {a.parent}'s card lists no held-out episodes; recover them first", file=sys.stderr)
            return 1
        theirs = {tuple(e) for e in parent["held_out"]}
        kept = [i for i, e in zip(ids, card_entries(store, ids)) if tuple(e) in theirs]
        print(f"{len(kept)} of them were held out by {a.parent} too (it trained on the others)")
        ids = kept
    if not a.write:
        return 0
    if not ids:
        print(f"error: no held-out episode found: not written (is {a.data} made by "
              f"`{cfg['meta']['model_card'].get('data', {}).get('collect_command')}`?)", file=sys.stderr)
        return 1
    split["held_out"] = card_entries(store, ids)
    split["held_out_recovered"] = (f"{len(ids)} of {want}, from prompts.npz (scripts/recover_held_out.py)"
                                   + (f", held out by {Path(a.parent).name} too" if a.parent else ""))
    atomic_write_text(card_file, json.dumps(cfg, indent=2))
    print(f"wrote split.held_out ({len(ids)} episodes) into {card_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
