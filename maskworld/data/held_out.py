"""Which episodes a world held out, named by content, so it is evaluated on them wherever they are.

A world's training split is drawn from its store's episode ids (`store.split_ids`). The same episodes can sit under
other ids in another store: a store collected again, merged, or written before `collect` stored its episodes in
order. A split recomputed there from ids mixes training episodes into the held-out ones, and every number read on
them flatters the world. So the world's card lists its held-out episodes by content, as [length, fingerprint]
pairs (`Episode.fingerprint`: every frame and action), and a reader finds them in whatever store it is given:

- `card_entries(store, ids)`: the pairs of a store's episodes (the card's `split.held_out`), `card_split` the
  card's whole split;
- `world_split(store, split)`: (train ids, held-out ids, how): the held-out episodes found by content when the
  card lists them (the length is a manifest lookup, so only episodes of a listed length are read), else the split
  by ids, as for worlds whose cards predate the list.
"""

from __future__ import annotations

from dataclasses import dataclass

from maskworld.data.store import EpisodeStore, split_ids


@dataclass
class HeldOut:
    """How a store's held-out episodes were found for a world."""

    by: str
    """"content": the card's listed episodes, found by fingerprint; "ids": the split by ids (no list, or none of
    the listed episodes is in this store)."""
    listed: int | None
    """Episodes the card lists as held out (None: the card has no list)."""
    found: int
    """Of those, in this store."""

    def as_metrics(self) -> dict:
        return {"meta.held_out_by": self.by, "meta.held_out_listed": self.listed, "meta.held_out_found": self.found}

    def warning(self, store_path: str) -> str | None:
        """A sentence when the held-out episodes could not be made sure of."""
        if self.listed is None:
            return None
        if self.found == 0:
            return (f"none of the {self.listed} episodes this world held out is in {store_path}: the episodes read here "
                    "come from the split by ids, and whether the world trained on them cannot be checked. Evaluate on "
                    "the store it was trained on, or one made by the same `maskworld collect` command")
        if self.found < self.listed:
            return (f"{self.found} of the {self.listed} episodes this world held out are in {store_path}; only those "
                    "are read")
        return None


def card_entries(store: EpisodeStore, ids: list[int]) -> list[list]:
    """[length, fingerprint] of each episode `ids` of `store`, sorted (the card's `split.held_out`)."""
    return sorted([int(store.length(i)), store.load(i).fingerprint()] for i in ids)


def card_split(store: EpisodeStore, seed: int, val_fraction: float, val_ids: list[int],
               inherited: str | None = None) -> dict:
    """A world card's training split: how it was drawn and its held-out episodes by content. inherited: the --init
    world whose held-out episodes these are (a fine-tune's parent trained on every other episode)."""
    return {"seed": seed, "val_fraction": val_fraction, "val_episodes": len(val_ids),
            "held_out": card_entries(store, val_ids), **({"held_out_from": inherited} if inherited else {})}


def find_listed(store: EpisodeStore, entries: list) -> list[int]:
    """Ids of the episodes of `store` whose [length, fingerprint] is in `entries` (sorted)."""
    by_length: dict[int, set[str]] = {}
    for length, fp in entries:
        by_length.setdefault(int(length), set()).add(str(fp))
    return sorted(i for i in store.episode_ids
                  if store.length(i) in by_length and store.load(i).fingerprint() in by_length[store.length(i)])


def world_split(store: EpisodeStore, split: dict) -> tuple[list[int], list[int], HeldOut]:
    """(train ids, held-out ids, how they were found) of `store` for a world whose card's split is `split`."""
    listed = split.get("held_out")
    if listed:
        val = find_listed(store, listed)
        if val:
            chosen = set(val)
            return [i for i in store.episode_ids if i not in chosen], val, HeldOut("content", len(listed), len(val))
    train, val = split_ids(store.episode_ids, int(split.get("seed", 0)), float(split.get("val_fraction", 0.1)))
    return train, val, HeldOut("ids", len(listed) if listed else None, 0)
