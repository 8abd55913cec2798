"""The worlds shipped in the package, by name: `maskworld/worlds/NAME/` holds a world directory (world.json +
*.safetensors). `maskworld play NAME`, `maskworld demo --world NAME` and `gym.make("maskworld/Dream-v0",
world=NAME)` accept these names; "default" is the one played when none is given."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT = "default"


def shipped() -> dict[str, Path]:
    """name -> directory of every shipped world, "default" first."""
    found = {p.name: p for p in sorted(ROOT.iterdir()) if (p / "world.json").is_file()}
    return dict(sorted(found.items(), key=lambda kv: kv[0] != DEFAULT))


def describe(path: Path) -> str:
    """One line: the game and what the model card says of its training."""
    try:
        cfg = json.loads((path / "world.json").read_text())
        meta = cfg.get("meta", {})
    except (OSError, ValueError, AttributeError):
        return "unreadable world.json"
    card = meta.get("model_card") or {}
    times = card.get("train_time_s") or {}
    seconds = sum(v for v in times.values() if isinstance(v, (int, float)))
    text = str(meta.get("env_id", "unknown game"))
    memory = (cfg.get("dynamics") or {}).get("memory_frames", 0)
    if isinstance(memory, int) and memory > 0:
        text += " (remembers: memory M)"
    if int(meta.get("agents", 1) or 1) > 1:
        text += f" ({meta['agents']} agents, played shared)"
    if (path / "unified.safetensors").exists():
        text += " (unified: words, frames, actions)"
    if seconds:
        text += f", trained {seconds / 60:.0f} min on {card.get('device', '?')}"
    return text


def agents(path: Path) -> int:
    """Avatars of a shipped world (several: it plays shared, `--persistent`)."""
    try:
        return int(json.loads((path / "world.json").read_text()).get("meta", {}).get("agents", 1))
    except (OSError, ValueError, TypeError):
        return 1


def resolve(name: str) -> Path | None:
    """The directory of shipped world `name`, or None."""
    return shipped().get(name)


def locate(world: str | Path) -> Path:
    """A world argument -> its directory: an existing path as it is, else a shipped world's name, else the path
    (for the caller to refuse)."""
    path = Path(world).expanduser()
    return path if path.exists() else resolve(str(world)) or path
