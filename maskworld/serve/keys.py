"""Action meanings -> keyboard bindings for the play page.

Design choices:
- A binding is a *chord*: the set of `KeyboardEvent.key` values held together. Compound meanings are
  split into parts (`UP_RIGHT`, Atari's `UPRIGHTFIRE`, Crafter's `move_left`), each part maps to one key,
  so diagonals are two arrows held together, as in the games themselves.
- Arrows for directions (MiniGrid's FORWARD is ArrowUp), Space for FIRE/TOGGLE/DO/JUMP, a few mnemonic
  letters, and digits (then letters) as the fallback for anything else or any collision.
- NOOP gets a fallback key too (so step mode can step it), and is the action held in real-time mode
  while no key is pressed (`idle_action`).
"""

from __future__ import annotations

import re

# meaning part -> key (KeyboardEvent.key)
PART_KEYS = {
    "LEFT": "ArrowLeft", "RIGHT": "ArrowRight", "UP": "ArrowUp", "DOWN": "ArrowDown", "FORWARD": "ArrowUp",
    "FIRE": " ", "TOGGLE": " ", "DO": " ", "JUMP": " ", "INTERACT": " ",
    "PICKUP": "p", "DROP": "d", "DONE": "Enter", "SLEEP": "z",
}
# single-letter procgen buttons (W, A, S, D, Q, E) are their own keys
_DIRECTIONS = ("FIRE", "RIGHT", "LEFT", "DOWN", "UP")  # Atari glues these together: UPRIGHTFIRE
_IGNORED_PARTS = {"MOVE"}  # Crafter: move_left -> LEFT
FALLBACK_KEYS = list("1234567890") + list("qwertyuiopasfghjklxcvbnm")
NOOP_NAMES = {"NOOP", "NONE", "IDLE", "NO_OP"}
KEY_LABELS = {"ArrowLeft": "←", "ArrowRight": "→", "ArrowUp": "↑", "ArrowDown": "↓", " ": "Space", "Enter": "Enter"}


def _parts(meaning: str) -> list[str] | None:
    """'UP_RIGHT' -> ['UP', 'RIGHT']; 'UPLEFTFIRE' -> ['UP', 'LEFT', 'FIRE']; None if not derivable."""
    out = []
    for word in re.split(r"[_\s\-+]+", meaning.upper()):
        if not word or word in _IGNORED_PARTS:
            continue
        if word in PART_KEYS or re.fullmatch(r"[A-Z]", word):
            out.append(word)
            continue
        rest = word  # greedy split of glued Atari directions
        while rest:
            head = next((d for d in _DIRECTIONS if rest.startswith(d)), None)
            if head is None:
                return None
            out.append(head)
            rest = rest[len(head):]
    return out or None


def _chord(meaning: str) -> tuple[str, ...] | None:
    parts = _parts(meaning)
    if parts is None:
        return None
    keys = []
    for p in parts:
        k = PART_KEYS.get(p, p.lower() if len(p) == 1 else None)
        if k is None:
            return None
        if k not in keys:
            keys.append(k)
    return tuple(keys)


def label(keys) -> str:
    return " + ".join(KEY_LABELS.get(k, k.upper() if len(k) == 1 else k) for k in keys)


def idle_action(meanings: list[str]) -> int | None:
    """The action held when no key is pressed in real-time mode: NOOP if the world has one."""
    for i, m in enumerate(meanings):
        if m.upper() in NOOP_NAMES:
            return i
    return None


def bindings(meanings: list[str], reserved: set[str] = frozenset()) -> list[dict]:
    """-> [{"action": i, "meaning": m, "keys": [...], "label": "↑ + →"}], one per action, chords unique.

    `reserved` keys are never used (a latent world keeps its digits for the latent codes)."""
    chords: list[tuple[str, ...] | None] = []
    used: set[tuple[str, ...]] = set()
    for m in meanings:
        c = None if m.upper() in NOOP_NAMES else _chord(m)
        if c is not None and set(c) & set(reserved):
            c = None
        if c is not None and frozenset(c) in {frozenset(u) for u in used}:
            c = None  # collision (e.g. FIRE and TOGGLE in one world): the second falls back
        chords.append(c)
        if c is not None:
            used.add(c)
    taken = {k for c in used for k in c} | set(reserved)
    spare = iter(k for k in FALLBACK_KEYS if k not in taken)
    out = []
    for i, (m, c) in enumerate(zip(meanings, chords)):
        if c is None:
            k = next(spare, None)
            c = (k,) if k is not None else ()  # more than ~30 unbindable actions: the rest are click-only
        out.append({"action": i, "meaning": m, "keys": list(c), "label": label(c) if c else "(click)"})
    return out
