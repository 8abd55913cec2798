"""Data layer: episode store, collection, video import, clip sampling and the token cache.

Alignment used everywhere a model sees data ("the action precedes its frame"):
`actions_in[t]` is the action that led INTO frame t (`actions[start+t-1]`); the first frame of an
episode has the NULL action id `num_actions`. See `maskworld/data/clips.py`.
"""

from maskworld.data.store import Episode, EpisodeStore, StoreWriter, merge_stores, partition, split_ids

__all__ = ["Episode", "EpisodeStore", "StoreWriter", "merge_stores", "partition", "split_ids"]
