"""Hand-written SVG line plots for the eval report and `maskworld revisit --svg` (no plotting dependency).

- `psnr_plot_svg`: open-loop PSNR against the horizon, with the copy-last baselines (raw and through the
  tokenizer) and the tokenizer ceiling;
- `revisit_curves_svg`: a revisit metric against the gap g, one line per arm;
both on `log2_plot_svg`'s log2 x axis.
"""

from __future__ import annotations

import html
import math


def log2_plot_svg(xs: list, series: list, xlabel: str, ylabel: str, ticks: list, lo: float, hi: float,
                  width: int = 520, height: int = 300) -> str:
    """Lines over a log2 x axis -> SVG text. series: [(label, color, {x: y or None})]; ticks: y values labelled."""
    ml, mr, mt, mb = 55, 150, 20, 40
    x0, x1 = math.log2(xs[0]), max(math.log2(xs[-1]), math.log2(xs[0]) + 1)

    def px(x):
        return ml + (math.log2(x) - x0) / (x1 - x0) * (width - ml - mr)

    def py(v):
        return mt + (hi - v) / (hi - lo) * (height - mt - mb)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             f'<rect x="{ml}" y="{mt}" width="{width - ml - mr}" height="{height - mt - mb}" fill="none" stroke="#ccc"/>']
    for v in ticks:
        parts.append(f'<line x1="{ml}" x2="{width - mr}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#eee"/>'
                     f'<text x="{ml - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    parts += [f'<text x="{px(x):.1f}" y="{height - mb + 15}" text-anchor="middle">{x}</text>' for x in xs]
    parts.append(f'<text x="{(ml + width - mr) / 2}" y="{height - 6}" text-anchor="middle">{html.escape(xlabel)}</text>'
                 f'<text x="12" y="{(mt + height - mb) / 2}" transform="rotate(-90 12 {(mt + height - mb) / 2})" '
                 f'text-anchor="middle">{html.escape(ylabel)}</text>')
    for i, (label, color, ys) in enumerate(series):
        pts = [(px(x), py(ys[x])) for x in xs if ys.get(x) is not None]
        if pts:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in pts]
        ly = mt + 10 + 16 * i
        parts.append(f'<line x1="{width - mr + 10}" x2="{width - mr + 28}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/>'
                     f'<text x="{width - mr + 32}" y="{ly + 4}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def psnr_plot_svg(curve: dict, width: int = 520, height: int = 300) -> str:
    """curve {h: {"rollout": dB, "copy_last": dB, "copy_last_tok": dB, "tokenizer": dB}} -> SVG, x on a log2 axis."""
    keys = [("rollout", "world (open loop)", "#d62728"), ("copy_last", "copy last frame", "#7f7f7f"),
            ("copy_last_tok", "copy last, tokenized", "#bcbd22"), ("tokenizer", "tokenizer ceiling", "#1f77b4")]
    hs = sorted(curve)
    vals = [v for h in hs for k, _, _ in keys if (v := curve[h].get(k)) is not None]
    if not hs or not vals:
        return "<p>(no horizons to plot)</p>"
    lo, hi = math.floor(min(vals) / 5) * 5, math.ceil(max(vals) / 5) * 5
    hi = hi if hi > lo else lo + 5
    series = [(label, color, {h: curve[h].get(k) for h in hs}) for k, label, color in keys]
    return log2_plot_svg(hs, series, "horizon (frames imagined)", "PSNR (dB)", list(range(int(lo), int(hi) + 1, 5)),
                         lo, hi, width, height)


def revisit_curves_svg(metrics: dict, metric: str = "psnr", width: int = 560, height: int = 300) -> str:
    """Revisit curves (maskworld.eval.revisit) over the gap g (log axis) of one metric, one line per arm -> SVG text."""
    gaps = metrics["revisit.gaps"]
    colors = {"memory": "#d62728", "no_memory": "#1f77b4", "oracle": "#2ca02c", "copy_last": "#7f7f7f",
              "memory_envpose": "#ff7f0e", "tokenizer": "#17becf"}
    spare = ["#9467bd", "#8c564b", "#e377c2", "#bcbd22"]
    series = [(a, colors.get(a, spare[i % 4]), {g: metrics.get(f"revisit.{a}.{metric}.{g}") for g in gaps})
              for i, a in enumerate(metrics["revisit.arms"])]
    vals = [v for _, _, ys in series for v in ys.values() if v is not None]
    if not vals:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    pad = 0.05 * (max(vals) - min(vals) + 1e-9)
    lo, hi = min(vals) - pad, max(vals) + pad
    return log2_plot_svg(gaps, series, "gap g (steps away)", f"revisit {metric}", [lo + (hi - lo) * i / 4 for i in range(5)],
                         lo, hi, width, height)
