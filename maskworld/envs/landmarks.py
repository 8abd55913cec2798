"""`MiniGrid-Landmarks-v0`: four rooms with coloured landmarks, a new layout on every reset.

Built for the revisit benchmark (world-model memory: observe a place, stay away for a gap, come
back and score the returning frames, see `maskworld.eval.revisit_trials`). A memory test needs
places that are worth remembering and that differ between episodes, so that a model cannot
recall them from its weights.

Design choices:
- A square grid (default 13x13) split 2x2 into rooms by one vertical and one horizontal wall;
  each of the four wall segments has one opening, about half of them filled with an *open*
  coloured door (walkable; doors are landmarks too).
- `num_landmarks` objects (Ball/Box/Key) with distinct (type, colour) pairs, so two landmarks are
  never confused. Colours only from red/green/blue/purple/yellow: grey is the wall colour.
- Landmarks never stand in an opening or in the cell on either side of it, and the free cells
  must stay connected (otherwise the layout is redrawn), so every free cell is reachable.
- Reward is always 0 and the episode never terminates; it is truncated at `max_steps`. The
  standard 7 actions are kept so generic collectors work; scripted trials use only
  left/right/forward (0/1/2), which cannot change the world.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Ball, Box, Door, Key
from minigrid.minigrid_env import MiniGridEnv

ENV_ID = "MiniGrid-Landmarks-v0"
LANDMARK_COLORS = ("red", "green", "blue", "purple", "yellow")
LANDMARK_TYPES = (Ball, Box, Key)


class LandmarksEnv(MiniGridEnv):
    """Four rooms + `num_landmarks` coloured objects + open doors; layout drawn from the reset seed."""

    def __init__(self, size: int = 13, num_landmarks: int = 6, max_steps: int = 512, **kwargs: Any):
        if size < 7 or size % 2 == 0:
            # Odd sizes put the dividing walls in the middle with equal rooms of >= 2x2 cells.
            raise ValueError(f"LandmarksEnv size must be odd and >= 7, not {size}")
        if not 0 <= num_landmarks <= len(LANDMARK_COLORS) * len(LANDMARK_TYPES):
            raise ValueError(f"num_landmarks must be in 0..15 (distinct type/colour pairs), not {num_landmarks}")
        self.num_landmarks = num_landmarks
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: "remember the landmarks"),
            grid_size=size,
            max_steps=max_steps,
            see_through_walls=False,
            **kwargs,
        )

    def _gen_grid(self, width: int, height: int) -> None:
        # Redraw until the free cells are connected (a few landmarks can wall off a corner).
        while True:
            self._draw_layout(width, height)
            if self._free_cells_connected():
                return

    def _draw_layout(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        mx, my = width // 2, height // 2
        self.grid.vert_wall(mx, 0, height)
        self.grid.horz_wall(0, my, width)
        # One opening per wall segment: (x, y) of the opening and the two cells it connects.
        openings = [
            (mx, self._rand_int(1, my)),
            (mx, self._rand_int(my + 1, height - 1)),
            (self._rand_int(1, mx), my),
            (self._rand_int(mx + 1, width - 1), my),
        ]
        keep_clear = set()
        for x, y in openings:
            if self._rand_bool():
                self.grid.set(x, y, Door(self._rand_elem(LANDMARK_COLORS), is_open=True))
            else:
                self.grid.set(x, y, None)
            keep_clear |= {(x, y), (x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)}

        pairs = [(t, c) for t in LANDMARK_TYPES for c in LANDMARK_COLORS]
        for t, c in self._rand_subset(pairs, self.num_landmarks):
            self.place_obj(t(c), reject_fn=lambda _env, pos: tuple(pos) in keep_clear)
        self.place_agent()
        self.mission = "remember the landmarks"

    def _free_cells_connected(self) -> bool:
        free = {(x, y) for x in range(self.width) for y in range(self.height) if _walkable(self.grid.get(x, y))}
        start = tuple(self.agent_pos)
        seen, todo = {start}, deque([start])
        while todo:
            x, y = todo.popleft()
            for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if n in free and n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen == free

    def step(self, action: int):
        # pickup/drop/toggle would move or hide landmarks (and collectors pick them at random):
        # they act as `done` (nothing happens), so a place looks the same whenever it is revisited
        if int(action) not in (self.actions.left, self.actions.right, self.actions.forward):
            action = self.actions.done
        obs, _reward, _terminated, truncated, info = super().step(action)
        # No goal: reward 0 and no termination, whatever the action (see the module docstring).
        return obs, 0.0, False, truncated, info


def _walkable(obj: Any) -> bool:
    """Same rule as MiniGridEnv.step's forward move."""
    return obj is None or obj.can_overlap()

