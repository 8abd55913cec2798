"""Quality against the training budget, from `maskworld eval` folders of worlds trained for different minutes.

Each run is GAME:MINUTES:EVAL_DIR (the folder `maskworld eval W --out EVAL_DIR` wrote). Prints one markdown table
(open-loop PSNR world / copy-last at h = 1, 4, 8, 16, Genie's ΔPSNR, inverse-dynamics accuracy on generated over real
frames, the worst mean-colour gap), and optionally writes

- `--svg PATH`: PSNR at h = 8 against minutes (log2 axis), world and copy-last per game;
- `--strip PATH`: per game, the first frames of the first rollout window, ground truth over each budget's world
  (every eval of one data set with one seed rolls out the same windows, so the rows show the same moments).

    python scripts/budget_table.py --run breakout:10:eval_breakout_10 --run breakout:60:eval_breakout_60 \\
        --run coinrun:10:eval_coinrun_10 --svg budget.svg --strip budget.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskworld.eval.plots import log2_plot_svg  # noqa: E402

HORIZONS = (1, 4, 8, 16)
COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"]


def parse_run(text: str) -> tuple[str, int, Path]:
    try:
        game, minutes, folder = text.split(":", 2)
        return game, int(minutes), Path(folder)
    except ValueError:
        raise SystemExit(f"--run {text!r}: give GAME:MINUTES:EVAL_DIR, e.g. breakout:10:eval_breakout_10")


def row(game: str, minutes: int, m: dict) -> str:
    def cell(h):
        w, c = m.get(f"rollout.psnr.{h}"), m.get(f"baseline.copy_last.psnr.{h}")
        if w is None or c is None:
            return "–"
        return f"{'**' if w >= c else ''}{w:.1f}{'**' if w >= c else ''} / {c:.1f}"

    d, ci = m.get("control.delta_psnr", float("nan")), m.get("control.delta_psnr.ci") or [float("nan")] * 2
    gen_acc, real_acc = m.get("control.idm_accuracy"), m.get("control.idm_accuracy_real")
    idm = "–" if gen_acc is None or real_acc is None else (
        f"{gen_acc:.3f} / {real_acc:.3f} ({100 * gen_acc / max(real_acc, 1e-9):.0f} %)"
        + ("" if m.get("control.idm_valid", True) else ", probe invalid"))
    gaps = {h: m[f"rollout.mean_colour_gap.{h}"] for h in HORIZONS if f"rollout.mean_colour_gap.{h}" in m}
    worst = max(gaps, key=gaps.get) if gaps else None
    gap = f"{gaps[worst]:.1f} (h = {worst})" if worst else "–"
    return (f"| {game}, {minutes} min | {m.get('tokenizer.psnr', float('nan')):.1f} | "
            + " | ".join(cell(h) for h in HORIZONS)
            + f" | {d:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] | {idm} | {gap} |")


def budget_svg(runs: list[tuple[str, int, dict]]) -> str:
    minutes = sorted({mi for _, mi, _ in runs})
    games = sorted({g for g, _, _ in runs})
    series = []
    for i, g in enumerate(games):
        c = COLOURS[i % len(COLOURS)]
        series.append((f"{g}: world h8", c, {mi: m.get("rollout.psnr.8") for gg, mi, m in runs if gg == g}))
        series.append((f"{g}: copy-last h8", c + "80", {mi: m.get("baseline.copy_last.psnr.8") for gg, mi, m in runs if gg == g}))
    vals = [v for _, _, ys in series for v in ys.values() if v is not None]
    lo, hi = 5 * (min(vals) // 5), 5 * (max(vals) // 5 + 1)
    return log2_plot_svg(minutes, series, "training minutes (2-core CPU)", "open-loop PSNR at h = 8 (dB)",
                         list(range(int(lo), int(hi) + 1, 5)), lo, hi, width=620)


def _first_frames(im, top: int, width: int, tile: int, tile_px: int):
    """One row of an eval strip (truth or generated), its first `width` pixels, scaled to `tile_px` high."""
    from PIL import Image

    row = im.crop((0, top, width, top + tile))
    return row.resize((max(1, round(row.width * tile_px / tile)), tile_px), Image.NEAREST)


def strip(runs: list[tuple[str, int, Path]], frames: int = 8, tile_px: int = 64):
    """Ground truth over each budget's rollout, first `frames` frames of rollout window 0, one block per game;
    frames `tile_px` high (the eval's PNGs are upscaled)."""
    from PIL import Image, ImageDraw

    blocks = []
    for g in sorted({g for g, _, _ in runs}):
        rows, labels = [], []
        for _, mi, folder in sorted((r for r in runs if r[0] == g), key=lambda r: r[1]):
            pngs = sorted(folder.glob("rollout_0_*.png"))
            if not pngs:
                continue
            im = Image.open(pngs[0]).convert("RGB")
            tile = (im.height - 2) // 2  # truth row, 2 px, generated row
            n = json.loads((folder / "eval.json").read_text())["meta.horizons"][-1]
            step = (im.width + (im.width - n * tile) // max(n - 1, 1)) // n  # a frame and the gap after it
            width = step * min(frames, n) - (step - tile)
            if not rows:
                rows.append(_first_frames(im, 0, width, tile, tile_px))
                labels.append(f"{g}: real")
            rows.append(_first_frames(im, tile + 2, width, tile, tile_px))
            labels.append(f"{mi} min")
        if rows:
            blocks.append((rows, labels))
    if not blocks:
        raise SystemExit("no rollout_0_*.png in the eval folders: run maskworld eval with --out")
    left, w = 90, max(r.width for rows, _ in blocks for r in rows)
    h = sum(sum(r.height + 2 for r in rows) + 8 for rows, _ in blocks)
    out = Image.new("RGB", (left + w, h), "white")
    d, y = ImageDraw.Draw(out), 0
    for rows, labels in blocks:
        for r, lab in zip(rows, labels):
            out.paste(r, (left, y))
            d.text((4, y + r.height // 2 - 6), lab, fill="black")
            y += r.height + 2
        y += 8
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="GAME:MINUTES:EVAL_DIR (repeat)")
    p.add_argument("--svg", help="write PSNR at h = 8 against minutes here")
    p.add_argument("--strip", help="write ground truth over every budget's rollout here (PNG)")
    p.add_argument("--tile", type=int, default=64, help="frame height in the strip, pixels (default 64)")
    args = p.parse_args(argv)
    runs = [parse_run(r) for r in args.run]
    for _, _, folder in runs:
        if not (folder / "eval.json").exists():
            raise SystemExit(f"{folder}/eval.json: not found; run `maskworld eval WORLD --data D --out {folder}` first")
    loaded = [(g, mi, json.loads((f / "eval.json").read_text())) for g, mi, f in runs]
    print("| | tokenizer | " + " | ".join(f"h = {h}" for h in HORIZONS)
          + " | ΔPSNR (t = 4) | IDM generated / real | mean-colour gap, worst h ≤ 16 |")
    print("|---" * (len(HORIZONS) + 5) + "|")
    for g, mi, m in sorted(loaded, key=lambda r: (r[0], r[1])):
        print(row(g, mi, m))
    if args.svg:
        Path(args.svg).write_text(budget_svg(loaded))
        print(f"wrote {args.svg}")
    if args.strip:
        from PIL import Image

        # a 256-colour palette: half the bytes of the full-colour strip, no visible change at this size
        strip(runs, tile_px=args.tile).quantize(256, method=Image.Quantize.MEDIANCUT).save(args.strip, optimize=True)
        print(f"wrote {args.strip}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
