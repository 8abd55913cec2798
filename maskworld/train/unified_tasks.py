"""The unified world's training tasks and their mixture weights (read by `--tasks`), without torch.

Kept apart from `unified_train` so that checking a run's config (and `maskworld --help`) needs no torch.
"""

from __future__ import annotations

from maskworld.errors import UserError

TASKS = ("dynamics", "inverse", "policy", "outcome", "from_words", "describe", "random")
TASK_WEIGHTS = (0.30, 0.10, 0.15, 0.05, 0.15, 0.10, 0.15)


def task_weights(tasks: str | None) -> tuple[float, ...]:
    """The mixture's weights; `tasks` ("inverse" or "policy,dynamics") keeps only those, renormalised."""
    if not tasks:
        return TASK_WEIGHTS
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    bad = [t for t in names if t not in TASKS]
    if bad or not names:
        raise UserError(f"--tasks: {bad or tasks!r} not a task; choose from {', '.join(TASKS)}")
    return tuple(w if t in names else 0.0 for t, w in zip(TASKS, TASK_WEIGHTS))
