"""The eval report: one self-contained HTML file (readable offline, mailable).

Design choices:
- No new dependencies and nothing fetched: the plots are hand-written SVG (maskworld.eval.plots);
  images are base64 PNG and animations base64 GIF (Pillow), all inline.
- Sections: warnings first (probes that failed their own checks, too few episodes), headline metrics
  with their 95 % intervals and sample sizes, the plot and its reading against the copy-last that
  applies, the probes (tokenizer reconstruction strip, IDM confusion matrices), per-action grids (same
  start frame, one row per action: does the world follow the controls?), ground truth | generated GIFs.
- `write_files` puts the same pictures beside the report as GIF and PNG files (`eval --out DIR`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from maskworld.eval.error_map import error_picture
from maskworld.eval.plots import psnr_plot_svg, revisit_curves_svg
from maskworld.eval.video import side_by_side, strip, upscale, write_png, write_video
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


def _val(m: dict, key: str, unit: str = "") -> str:
    """A metric with its 95 % interval, marked when a probe's check made it invalid."""
    out = f"{_fmt(m.get(key))}{unit}"
    ci = m.get(f"{key}.ci")
    if ci and None not in ci:
        out += f" <span class=ci>[{_fmt(ci[0])}, {_fmt(ci[1])}]</span>"
    if key in (m.get("meta.invalid_keys") or []):
        out = f"<s>{out}</s> <b class=bad>INVALID</b>"
    return out


def _warnings(m: dict) -> str:
    w = m.get("meta.warnings") or []
    if not w:
        return "<p class=ok>No probe or sample-size warning.</p>"
    return "<div class=warn><b>Read with care:</b><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in w) + "</ul></div>"


def _headline(m: dict) -> str:
    n = lambda k: _fmt(m.get(k))  # noqa: E731
    idm_note = (f"generated pairs ({n('control.idm_pairs')} pairs, {n('control.idm_episodes')} episodes); real frames "
                f"{_val(m, 'control.idm_accuracy_real')} ({n('control.idm_pairs_real')} pairs), chance {n('control.chance')}")
    if m.get("control.idm_valid") is False:
        idm_note += f"; probe invalid: {html.escape(str(m.get('control.idm_invalid_reason')))}"
    rows = [
        ("tokenizer PSNR / SSIM / code usage", f"{_val(m, 'tokenizer.psnr', ' dB')} / {n('tokenizer.ssim')} / {n('tokenizer.usage')}",
         f"reconstruction of {n('tokenizer.frames')} real held-out frames of {n('tokenizer.episodes')} episodes"),
        ("tokens changed / patches changed / churn", f"{n('tokenizer.changed_tokens')} / {n('tokenizer.changed_patches')} / "
         f"{n('tokenizer.churn')}", "between consecutive real frames; churn: the code changed although no pixel of its "
         "patch did, which the dynamics must predict from nothing in the picture"),
        ("next-frame PSNR / SSIM", f"{_val(m, 'next_frame.psnr', ' dB')} / {n('next_frame.ssim')}",
         f"one step from real context; {n('next_frame.frames')} frames of {n('next_frame.episodes')} episodes"),
        ("ΔPSNR at t=4", _val(m, "control.delta_psnr", " dB"),
         f"logged minus random actions (Genie); ≈0 = world ignores actions; {n('control.delta_psnr.episodes')} episodes"),
        ("action spread / seed spread at t=4", f"{_val(m, 'control.action_spread')} / {_val(m, 'control.seed_spread')}",
         "mean |difference| (levels of 255) between frames drawn holding different actions from one context with one "
         "sampling seed / between two samplings of the logged actions; 0 / … = world ignores actions"),
        ("action-following (IDM) accuracy", _val(m, "control.idm_accuracy"), idm_note),
    ]
    for name in ("reward", "termination"):
        flag = " <b class=bad>below the majority guess</b>" if m.get(f"{name}.below_majority") else ""
        rows.append((f"{name} accuracy / balanced", f"{_val(m, f'{name}.accuracy')} / {_val(m, f'{name}.balanced_accuracy')}{flag}",
                     f"majority {n(f'{name}.majority')}; {n(f'{name}.transitions')} transitions of {n(f'{name}.episodes')} episodes"))
    body = "".join(f"<tr><th>{html.escape(a)}</th><td>{b}</td><td class=note>{c}</td></tr>" for a, b, c in rows)
    return f"<table>{body}</table><p class=note>[lo, hi]: 95 % interval, episode bootstrap.</p>"


def _horizon_table(m: dict) -> str:
    hs = m.get("meta.horizons", [])
    head = "".join(f"<th>{h}</th>" for h in hs)
    rows = [("world PSNR", "rollout.psnr"), ("copy-last PSNR", "baseline.copy_last.psnr"),
            ("copy-last through the tokenizer", "baseline.copy_last_tok.psnr"), ("tokenizer ceiling PSNR", "baseline.tokenizer.psnr"),
            ("world minus its bar", "rollout.minus_reference")]
    body = "".join(f"<tr><th>{nm}</th>" + "".join(f"<td>{_val(m, f'{k}.{h}')}</td>" for h in hs) + "</tr>" for nm, k in rows)
    plain = [("world SSIM", "rollout.ssim"), ("bar (copy-last used)", "baseline.reference"), ("episodes", "rollout.episodes"),
             ("windows", "rollout.windows")]
    body += "".join(f"<tr><th>{nm}</th>" + "".join(f"<td>{_fmt(m.get(f'{k}.{h}'))}</td>" for h in hs) + "</tr>" for nm, k in plain)
    return f"<table><tr><th>horizon</th>{head}</tr>{body}</table>"


def curve_reading(m: dict) -> str:
    """How to read the PSNR curves for this world: above which copy-last, below which ceiling (plain text)."""
    hs = m.get("meta.horizons", [])
    below = m.get("baseline.ceiling_below_copy_last") or []
    if not below:
        text = "A world should sit above copy-last and below the tokenizer ceiling."
    else:
        text = (f"The tokenizer ceiling is below raw copy-last at horizons {below}: no world decoded by this tokenizer can "
                "beat raw copy-last there, so there a world should sit above copy-last passed through the tokenizer "
                "(and below the ceiling); elsewhere above raw copy-last.")
    verdict = {"above": [], "below": [], "within its interval": []}
    for h in hs:
        ref, ci = m.get(f"baseline.{m.get(f'baseline.reference.{h}', 'copy_last')}.psnr.{h}"), m.get(f"rollout.psnr.{h}.ci")
        if ref is None or m.get(f"rollout.psnr.{h}") is None:
            continue
        if ci and None not in ci and ci[0] <= ref <= ci[1]:
            verdict["within its interval"].append(h)
        else:
            verdict["above" if m[f"rollout.psnr.{h}"] > ref else "below"].append(h)
    parts = [f"{k} at horizons {v}" for k, v in verdict.items() if v]
    return text + (" This world is " + "; ".join(parts) + " (its bar: the copy-last that applies)." if parts else "")


def _confusion(title: str, mat, names: list) -> str:
    if not mat:
        return ""
    names = list(names) + [f"ACTION_{a}" for a in range(len(names), len(mat))]
    head = "".join(f"<th>{html.escape(x)}</th>" for x in names)
    body = "".join(f"<tr><th>{html.escape(names[i])}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                   for i, row in enumerate(mat))
    return f"<h3>{html.escape(title)}</h3><table><tr><th>true \\ predicted</th>{head}</tr>{body}</table>"


def _error_png(maps: dict, scale: int) -> np.ndarray:
    """The error maps (eval/error_map.py) at twice the frames' scale: a map is one frame wide."""
    return upscale(error_picture(maps)[None], 2 * scale)[0]


def _probes(m: dict, artifacts: dict, names: list, scale: int) -> str:
    """Tokenizer reconstruction strip and the IDM's confusion matrices."""
    out = ""
    if artifacts.get("recon") is not None:
        real, recon = artifacts["recon"]
        out += (f'<h3>Tokenizer</h3><img src="{_png(strip(upscale(real, scale), upscale(recon, scale)))}">'
                f"<p class=note>top: real held-out frames; bottom: their reconstruction. {m.get('tokenizer.codes_used')} of "
                f"{m.get('tokenizer.vocab_size')} codes used.</p>")
    if artifacts.get("error_maps") is not None:
        share = m.get("next_frame.error_top5_share")
        out += (f'<h3>Where the next frame is wrong</h3><img src="{_png(_error_png(artifacts["error_maps"], scale))}">'
                "<p class=note>over the teacher-forced pairs: how often each pixel changes between real frames | the "
                "world's next-frame error | the tokenizer's error (both errors on one square-root scale: brighter in the "
                "middle than on the right is the dynamics' part). "
                + (f"{100 * share:.0f} % of the world's error lies on the 5 % of pixels where it is largest.</p>"
                   if share is not None else "</p>"))
    if m.get("control.idm_confusion_real"):
        valid = {True: "valid (above chance on real frames)", False: "INVALID", None: "–"}[m.get("control.idm_valid")]
        out += f"<h3>Inverse-dynamics probe: {valid}</h3>"
        out += _confusion("real held-out pairs", m["control.idm_confusion_real"], names)
        out += _confusion("generated pairs", m.get("control.idm_confusion"), names)
    return out


def _revisit_section(m: dict) -> str:
    """Memory curves over the gap, when `eval --revisit` ran."""
    if "revisit.gaps" not in m:
        return ""
    return ("<h2>Revisit (memory M)</h2><p class=note>Returning to a place after g steps away: PSNR against the real "
            "frames and landmark recall (raw, and over the landmark cells the tokenizer can draw), for memory on, memory off "
            "(window only), oracle retrieval and copy-last.</p>"
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
    names = [name for name, _ in artifacts["grids"][0][1]] if artifacts.get("grids") else []
    title = f"maskworld eval — {html.escape(str(m.get('meta.world', '')))}"
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left}} .note{{color:#666;font-size:90%}} img{{image-rendering:pixelated}}
.ci{{color:#666;font-size:85%}} .bad{{color:#b00}} .ok{{color:#070}} .warn{{background:#fff4e0;border:1px solid #e0a040;padding:0 1em}}
figure{{display:inline-block;margin:0.5em}} pre{{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:85%}}</style></head><body>
<h1>{title}</h1>
<p class=note>data {html.escape(str(m.get('meta.data', '')))}; {m.get('meta.episodes')} held-out episodes
({m.get('meta.episodes_requested')} asked for, {m.get('meta.episodes_available')} available), context {m.get('meta.context')} real
frames, seed {m.get('meta.seed')}, {m.get('meta.sampler_steps')} MaskGIT steps per frame, {m.get('meta.seconds')} s.
How to read it: docs/eval.md.</p>
{_warnings(m)}
<h2>Summary</h2>{_headline(m)}
<h2>Open-loop PSNR vs horizon</h2>
<p>Higher is better. {html.escape(curve_reading(m))}</p>
{psnr_plot_svg(artifacts.get('curve', {}))}
{_horizon_table(m)}
<h2>Probes</h2>{_probes(m, artifacts, names, scale) or '<p>(none)</p>'}
{_revisit_section(m)}
<h2>Per-action grids</h2>{''.join(grids) or '<p>(the world has no actions)</p>'}
<h2>Ground truth | generated</h2>{''.join(gifs)}
<h2>All metrics (JSON)</h2><pre>{html.escape(json.dumps(m, indent=1))}</pre>
</body></html>"""
    atomic_write_text(path, doc)


def write_files(out_dir, artifacts: dict, scale: int = 2) -> list[Path]:
    """The report's pictures as files in `out_dir`: per rollout episode a GIF (ground truth | generated) and a PNG
    strip (ground truth over generated), the tokenizer's reconstruction strip, one PNG per action grid."""
    out, written = Path(out_dir), []
    for i, (title, gt, gen) in enumerate(artifacts.get("gifs", [])):
        stem = f"rollout_{i}_{title.replace(' ', '_')}"
        written.append(write_video(out / f"{stem}.gif", side_by_side(upscale(gt, scale), upscale(gen, scale)), fps=6))
        written.append(write_png(out / f"{stem}.png", strip(upscale(gt, scale), upscale(gen, scale))))
    if artifacts.get("recon") is not None:
        real, recon = artifacts["recon"]
        written.append(write_png(out / "tokenizer_recon.png", strip(upscale(real, scale), upscale(recon, scale))))
    if artifacts.get("error_maps") is not None:
        written.append(write_png(out / "next_frame_error.png", _error_png(artifacts["error_maps"], scale)))
    for start, rows in artifacts.get("grids", []):
        written.append(write_png(out / f"actions_start_{start + 1}.png", strip(*[upscale(fr, scale) for _, fr in rows])))
    return written
