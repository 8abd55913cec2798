"""The unified world's training tasks and their mixture weights (read by `--tasks`), without torch.

Kept apart from `unified_train` so that checking a run's config (and `maskworld --help`) needs no torch.
"""

from __future__ import annotations

import math

from maskworld.errors import UserError

TASKS = ("dynamics", "inverse", "policy", "outcome", "from_words", "describe", "random")
TASK_WEIGHTS = (0.30, 0.10, 0.15, 0.05, 0.15, 0.10, 0.15)


def task_weights(tasks: str | None) -> tuple[float, ...]:
    """The mixture's weights (sampling probabilities after normalisation). `tasks` keeps only the named tasks at
    their default weights ("inverse", "policy,dynamics"), or sets each named task's weight ("dynamics:0.25,
    inverse:0.25,describe:0.1"); tasks not named get weight 0."""
    if not tasks:
        return TASK_WEIGHTS
    items = [t.strip() for t in tasks.split(",") if t.strip()]
    if not items:
        raise UserError(f"--tasks {tasks!r}: name at least one task; choose from {', '.join(TASKS)}")
    chosen: dict[str, float] = {}
    for item in items:
        name, _, weight = item.partition(":")
        name = name.strip()
        if name not in TASKS:
            raise UserError(f"--tasks: {name!r} not a task; choose from {', '.join(TASKS)}")
        if name in chosen:
            raise UserError(f"--tasks: {name!r} named twice")
        if not weight:
            chosen[name] = TASK_WEIGHTS[TASKS.index(name)]
            continue
        try:
            chosen[name] = float(weight)
        except ValueError:
            raise UserError(f"--tasks: weight {weight!r} of {name} is not a number (e.g. {name}:0.2)") from None
        if not math.isfinite(chosen[name]) or chosen[name] < 0:
            raise UserError(f"--tasks: weight {weight!r} of {name} must be a finite number >= 0")
    if sum(chosen.values()) <= 0:
        raise UserError(f"--tasks {tasks!r}: the weights sum to 0; give at least one task a positive weight")
    return tuple(chosen.get(t, 0.0) for t in TASKS)
