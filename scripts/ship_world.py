"""Package a trained world for shipping: weights + world.json + prompts.npz (start frames for `play`).

    python scripts/ship_world.py WORLD DATA OUT [--prompts 64]

prompts.npz holds --prompts uint8 frames (N, H, W, 3) drawn from the world's held-out episodes, several from each
when few are held out, so "new world" in `maskworld play` can start from a real-looking frame without shipping the
data set.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from maskworld.data.held_out import world_split
from maskworld.data.store import EpisodeStore


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--data-command", default=None, help="the collect command, for the model card")
    a = ap.parse_args()
    src, out = Path(a.world), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in [src / "world.json", *sorted(src.glob("*.safetensors"))]:  # dynamics, unified or LAM weights alike
        shutil.copy2(f, out / f.name)
    cfg = json.loads((out / "world.json").read_text())
    split = cfg["meta"]["model_card"].get("split", {})
    store = EpisodeStore(a.data)
    _, val, _ = world_split(store, split)  # the card's held-out episodes, found by content where it lists them
    rng = np.random.default_rng(0)
    frames = []
    for k in range(a.prompts if val else 0):  # a few long held-out episodes (CoinRun's) give several frames each
        ep = store.load(val[k % len(val)])
        frames.append(ep.frames[rng.integers(0, len(ep.frames))])
    if not frames:
        raise SystemExit(f"{a.data} holds no held-out episode of this world's split: nothing to take prompts from")
    np.savez_compressed(out / "prompts.npz", frames=np.stack(frames))
    if a.data_command:
        cfg["meta"]["model_card"].setdefault("data", {})["collect_command"] = a.data_command
    (out / "world.json").write_text(json.dumps(cfg, indent=2))
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"shipped {out}: {size / 1e6:.1f} MB, {len(frames)} prompt frames")


if __name__ == "__main__":
    main()
