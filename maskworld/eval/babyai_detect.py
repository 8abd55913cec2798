"""A weight-free detector for BabyAI's top-down frames: which object of which colour is in each grid cell.

Every cell of a full-view frame (`--view full`: the room's W x W cells, S / W pixels each) is compared with
minigrid's own renderings of every object it may hold (ball, box, key in each of the six colours, the empty floor,
a wall, the agent facing each way), each with and without the highlight of the agent's view; the nearest
rendering (mean absolute difference over the cell's pixels) names the cell. Nothing is learned, so a frame that
a world draws is judged by the game's own pictures, the same way as a real frame (the landmark-recall idea of
the revisit benchmark). A cell further than `MAX_DIFF` from every rendering is called unknown.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from maskworld.errors import UserError

COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
TYPES = ("ball", "box", "key")
MAX_DIFF = 40.0
"""Mean absolute difference (of 255) above which a cell matches no rendering: a smear is not an object."""


@lru_cache(maxsize=4)
def templates(tile: int) -> tuple[np.ndarray, list[tuple[str, str | None]]]:
    """(K, tile, tile, 3) float32 renderings and their labels (type, colour); type "floor"/"wall"/"agent"."""
    from minigrid.core.grid import Grid
    from minigrid.core.world_object import Ball, Box, Key, Wall

    pics, labels = [], []
    for highlight in (False, True):
        for cls, name in ((Ball, "ball"), (Box, "box"), (Key, "key")):
            for c in COLORS:
                pics.append(Grid.render_tile(cls(c), highlight=highlight, tile_size=tile))
                labels.append((name, c))
        pics.append(Grid.render_tile(None, highlight=highlight, tile_size=tile))
        labels.append(("floor", None))
        for d in range(4):
            pics.append(Grid.render_tile(None, agent_dir=d, highlight=highlight, tile_size=tile))
            labels.append(("agent", None))
        pics.append(Grid.render_tile(Wall(), highlight=highlight, tile_size=tile))
        labels.append(("wall", None))
    return np.stack(pics).astype(np.float32), labels


def cells(frame: np.ndarray, room: int) -> list[tuple[str, str | None]]:
    """Labels of the room x room cells of a full-view frame (S,S,3), row by row; ("unknown", None) for smears."""
    frame = np.asarray(frame)
    S = frame.shape[0]
    if frame.ndim != 3 or frame.shape[1] != S or S % room:
        raise UserError(f"the detector needs a square full-view frame whose side is a multiple of {room} cells, "
                        f"got {frame.shape}")
    tile = S // room
    pics, labels = templates(tile)
    grid = frame.astype(np.float32).reshape(room, tile, room, tile, 3).transpose(0, 2, 1, 3, 4).reshape(-1, tile, tile, 3)
    diff = np.abs(grid[:, None] - pics[None]).mean(axis=(2, 3, 4))  # (cells, K)
    best = diff.argmin(1)
    return [labels[k] if diff[i, k] <= MAX_DIFF else ("unknown", None) for i, k in enumerate(best)]


def shows(frame: np.ndarray, obj_type: str, color: str, room: int = 8) -> bool:
    """Does the frame show an object of this type and colour?"""
    return (obj_type, color) in cells(frame, room)


def count_objects(frame: np.ndarray, room: int = 8) -> int:
    """How many cells of the frame hold a ball, box or key (of any colour): a world that floods its room with
    objects shows the named one by chance, so this is read beside `shows`."""
    return sum(t in TYPES for t, _ in cells(frame, room))


def named_object(mission: str) -> tuple[str, str] | None:
    """The (type, colour) an instruction names ("go to the red ball" -> ("ball", "red")); None if it names none."""
    m = re.search(r"\b(" + "|".join(COLORS) + r")\s+(" + "|".join(TYPES) + r")\b", mission.lower())
    return (m.group(2), m.group(1)) if m else None
