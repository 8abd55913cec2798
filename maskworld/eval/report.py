"""The eval report: one self-contained HTML file (readable offline, mailable).

Design choices:
- No new dependencies and nothing fetched: the plots are hand-written SVG (maskworld.eval.plots);
  images are base64 PNG and animations base64 GIF (Pillow), all inline.
- Sections: headline metrics with their baselines, the plot, per-action grids (same start frame,
  one row per action: does the world follow the controls?), ground truth | generated GIFs.
"""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np

from maskworld.eval.plots import psnr_plot_svg, revisit_curves_svg
from maskworld.eval.video import side_by_side, upscale
from maskworld.io import atomic_write_text


def _png(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img.astype(np.uint8))).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _gif(frames_THWC: np.ndarray, fps: int = 6) -> str:
    from PIL import Image

    imgs = [Image.fromarray(np.ascontiguousarray(f.astype(np.uint8))) for f in frames_THWC]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"
    return html.escape(str(v))


def _headline(m: dict) -> str:
    rows = [
        ("tokenizer PSNR / SSIM / code usage", f"{_fmt(m.get('tokenizer.psnr'))} dB / {_fmt(m.get('tokenizer.ssim'))} / {_fmt(m.get('tokenizer.usage'))}", "reconstruction of real held-out frames"),
        ("next-frame PSNR / SSIM", f"{_fmt(m.get('next_frame.psnr'))} dB / {_fmt(m.get('next_frame.ssim'))}", "one step from real context"),
        ("ΔPSNR at t=4", f"{_fmt(m.get('control.delta_psnr'))} dB", "logged minus random actions; ≈0 = world ignores actions"),
        ("action-following (IDM) accuracy", f"{_fmt(m.get('control.idm_accuracy'))}", f"on generated frames; real frames {_fmt(m.get('control.idm_accuracy_real'))}, chance {_fmt(m.get('control.chance'))}"),
        ("reward accuracy", _fmt(m.get("reward.accuracy")), f"majority {_fmt(m.get('reward.majority'))}, balanced {_fmt(m.get('reward.balanced_accuracy'))}"),
        ("termination accuracy", _fmt(m.get("termination.accuracy")), f"majority {_fmt(m.get('termination.majority'))}, balanced {_fmt(m.get('termination.balanced_accuracy'))}"),
    ]
    body = "".join(f"<tr><th>{html.escape(a)}</th><td>{b}</td><td class=note>{html.escape(c)}</td></tr>" for a, b, c in rows)
    return f"<table>{body}</table>"


def _horizon_table(m: dict) -> str:
    hs = m.get("meta.horizons", [])
    head = "".join(f"<th>{h}</th>" for h in hs)
    rows = [("world PSNR", "rollout.psnr"), ("world SSIM", "rollout.ssim"), ("copy-last PSNR", "baseline.copy_last.psnr"),
            ("tokenizer ceiling PSNR", "baseline.tokenizer.psnr"), ("episodes", "rollout.episodes")]
    body = "".join(f"<tr><th>{n}</th>" + "".join(f"<td>{_fmt(m.get(f'{k}.{h}'))}</td>" for h in hs) + "</tr>" for n, k in rows)
    return f"<table><tr><th>horizon</th>{head}</tr>{body}</table>"


def _revisit_section(m: dict) -> str:
    """Memory curves over the gap, when `eval --revisit` ran."""
    if "revisit.gaps" not in m:
        return ""
    return ("<h2>Revisit (memory M)</h2><p class=note>Returning to a place after g steps away: PSNR against the real "
            "frames and landmark recall (raw, and over the landmark cells the tokenizer can draw), for memory on, memory off (window only), oracle retrieval and copy-last.</p>"
            + revisit_curves_svg(m, "psnr") + revisit_curves_svg(m, "recall") + revisit_curves_svg(m, "recall_renderable"))


def write_html(path, metrics: dict, artifacts: dict, scale: int = 2) -> None:
    m = metrics
    grids = []
    for start, rows in artifacts.get("grids", []):
        trs = "".join(f'<tr><th>{html.escape(name)}</th><td><img src="{_png(np.concatenate(list(upscale(fr, scale)), 1))}"></td></tr>'
                      for name, fr in rows)
        grids.append(f"<h3>start {start + 1}</h3><p class=note>first column: last real context frame; "
                     f"then {len(rows[0][1]) - 1} imagined frames holding one action</p><table>{trs}</table>")
    gifs = []
    for title, gt, gen in artifacts.get("gifs", []):
        gifs.append(f'<figure><img src="{_gif(side_by_side(upscale(gt, scale), upscale(gen, scale)))}">'
                    f"<figcaption>{html.escape(title)}: ground truth | generated ({len(gt)} frames)</figcaption></figure>")
    title = f"maskworld eval — {html.escape(str(m.get('meta.world', '')))}"
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left}} .note{{color:#666;font-size:90%}} img{{image-rendering:pixelated}}
figure{{display:inline-block;margin:0.5em}} pre{{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:85%}}</style></head><body>
<h1>{title}</h1>
<p class=note>data {html.escape(str(m.get('meta.data', '')))}; {m.get('meta.episodes')} held-out episodes, context {m.get('meta.context')} real frames,
seed {m.get('meta.seed')}, {m.get('meta.sampler_steps')} MaskGIT steps per frame, {m.get('meta.seconds')} s. How to read it: README.md, “Evaluation and benchmarks”.</p>
<h2>Summary</h2>{_headline(m)}
<h2>Open-loop PSNR vs horizon</h2>
<p class=note>Higher is better. The world should sit above copy-last and below the tokenizer ceiling.</p>
{psnr_plot_svg(artifacts.get('curve', {}))}
{_horizon_table(m)}
{_revisit_section(m)}
<h2>Per-action grids</h2>{''.join(grids) or '<p>(the world has no actions)</p>'}
<h2>Ground truth | generated</h2>{''.join(gifs)}
<h2>All metrics (JSON)</h2><pre>{html.escape(json.dumps(m, indent=1))}</pre>
</body></html>"""
    atomic_write_text(path, doc)
