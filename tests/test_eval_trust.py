"""`maskworld eval` tells the truth: intervals and sample sizes, the ceiling that applies, probes that check
themselves, heads corrected for event oversampling. Every check is paired with the case that must not trip it.

Tiny data (tests/toy.py's square on a 4x4 grid) and an untrained toy world: its tokenizer draws noise, so its
ceiling sits far below raw copy-last, which is exactly the case the report must call out.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

from maskworld.cli import main
from test_eval import random_toy_world
from toy import make_toy_store, toy_episode

FAST = ["--idm-steps", "60", "--no-progress"]


def single_action_store(path, episodes=16, T=24):
    """The toy with every action LEFT: nothing for an inverse-dynamics model to tell apart."""
    from maskworld.data.store import StoreWriter

    rng = np.random.default_rng(1)
    meta = {"env_id": "toy/square", "size": 64, "num_actions": 4, "has_actions": True,
            "action_meanings": ["LEFT", "RIGHT", "UP", "DOWN"], "info_keys": []}
    with StoreWriter(path, meta) as w:
        for _ in range(episodes):
            ep = toy_episode(rng, T)
            w.add(dataclasses.replace(ep, actions=np.zeros_like(ep.actions)))
    return str(path)


def terminating_store(path, episodes=12, T=24):
    """The toy with every episode terminated (not truncated) on its last transition."""
    from maskworld.data.store import StoreWriter

    rng = np.random.default_rng(2)
    meta = {"env_id": "toy/square", "size": 64, "num_actions": 4, "has_actions": True,
            "action_meanings": ["LEFT", "RIGHT", "UP", "DOWN"], "info_keys": []}
    with StoreWriter(path, meta) as w:
        for _ in range(episodes):
            ep = toy_episode(rng, T)
            w.add(dataclasses.replace(ep, terminated=ep.truncated.copy(), truncated=np.zeros_like(ep.truncated)))
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two evaluations of the untrained toy world: on the toy (enough episodes, --strict, --out) and on the
    single-action toy asking for more episodes than it holds."""
    import torch as _t

    threads = _t.get_num_threads()
    _t.set_num_threads(1)
    d = tmp_path_factory.mktemp("trust")
    data, one = make_toy_store(d / "data"), single_action_store(d / "one")
    world = random_toy_world(d / "world")
    assert main(["eval", str(world), "--data", data, "--episodes", "6", "--strict", "--out", str(d / "out"), *FAST]) == 0
    assert main(["eval", str(world), "--data", one, "--episodes", "50", "--html", str(d / "one.html"),
                 "--json", str(d / "one.json"), *FAST]) == 0
    _t.set_num_threads(threads)
    return {"d": d, "data": data, "world": world, "ok": json.loads((d / "out" / "eval.json").read_text()),
            "one": json.loads((d / "one.json").read_text()), "one_html": (d / "one.html").read_text()}


@pytest.mark.slow
def test_too_few_heldout_episodes_warns_and_strict_exits(runs, capsys):
    """Asked for 50 of ~4 held-out episodes: a warning in the JSON and the report naming the real ways to get more;
    with --strict the command refuses (exit 3) before evaluating. Enough episodes: no warning, --strict passes."""
    one = runs["one"]
    assert one["meta.episodes_requested"] == 50 and one["meta.episodes"] == one["meta.episodes_available"] < 50
    short = [w for w in one["meta.warnings"] if w.startswith("only ")]
    assert len(short) == 1 and "maskworld collect" in short[0] and "--val-fraction" in short[0]
    assert "held-out episodes were available" in runs["one_html"] and "--val-fraction" in runs["one_html"]
    rc = main(["eval", str(runs["world"]), "--data", runs["data"], "--episodes", "50", "--strict", *FAST])
    assert rc == 3 and "--val-fraction" in capsys.readouterr().err
    ok = runs["ok"]
    assert ok["meta.episodes"] == 6 and not any(w.startswith("only ") for w in ok["meta.warnings"])


@pytest.mark.slow
def test_every_headline_metric_has_interval_and_sample_size(runs):
    m = runs["ok"]
    for k in ["next_frame.psnr", "control.delta_psnr", "control.idm_accuracy", "control.idm_accuracy_real", "reward.accuracy",
              "reward.balanced_accuracy", "termination.accuracy"] + [
              f"{k}.{h}" for h in m["meta.horizons"] for k in ("rollout.psnr", "baseline.copy_last.psnr", "baseline.copy_last_tok.psnr")]:
        lo, hi = m[f"{k}.ci"]
        assert lo - 1e-9 <= m[k] <= hi + 1e-9, k
    assert m["next_frame.episodes"] == m["reward.episodes"] == m["control.idm_episodes"] == 6
    assert m["control.idm_pairs"] > 0 and m["control.delta_psnr.episodes"] == 6 and m["rollout.episodes.1"] == 6


@pytest.mark.slow
def test_ceiling_below_copy_last_is_said_and_the_fair_bar_used(runs):
    """The untrained tokenizer's ceiling is far below raw copy-last: JSON and report say so and compare the world
    with copy-last through the tokenizer. The opposite metrics keep the plain reading and raw copy-last."""
    from maskworld.eval.evaluate import ceiling_reading
    from maskworld.eval.report import curve_reading

    m = runs["ok"]
    hs = m["meta.horizons"]
    assert m["baseline.ceiling_below_copy_last"] == hs
    assert all(m[f"baseline.reference.{h}"] == "copy_last_tok" for h in hs)
    assert m["baseline.copy_last_tok.psnr.1"] < m["baseline.copy_last.psnr.1"]
    assert any("ceiling is below raw copy-last" in w for w in m["meta.warnings"])
    html = (runs["d"] / "out" / "report.html").read_text()
    assert "copy-last passed through the tokenizer" in html and "should sit above copy-last and below" not in html
    good = {"rollout.psnr.1": 30.0, "baseline.copy_last.psnr.1": 25.0, "baseline.copy_last_tok.psnr.1": 24.0,
            "baseline.tokenizer.psnr.1": 35.0, "rollout.psnr.1.ci": [29.0, 31.0], "meta.horizons": [1]}
    good.update(ceiling_reading(good, [1]))
    assert good["baseline.ceiling_below_copy_last"] == [] and good["baseline.reference.1"] == "copy_last"
    text = curve_reading(good)
    assert "should sit above copy-last and below the tokenizer ceiling" in text and "above at horizons [1]" in text


@pytest.mark.slow
def test_tokenizer_flags_low_usage_and_reconstruction_below_copy_last(runs):
    """The untrained tokenizer draws noise: flagged against copy-last (PSNR of the mean squared error on both sides,
    so copy-last's exact matches at the PSNR cap do not decide it). Healthy numbers raise no flag; a collapsed
    codebook does, but not a near-lossless one that uses few codes because the frames have few kinds of patch."""
    from maskworld.eval.evaluate import trust_checks

    m = runs["ok"]
    assert m["tokenizer.below_copy_last"] and m["tokenizer.psnr_mse"] < m["baseline.copy_last.psnr_mse.1"] - 3
    assert any("the tokenizer reconstructs" in w for w in m["meta.warnings"])
    base = {"tokenizer.usage": 0.3, "tokenizer.codes_used": 300, "tokenizer.vocab_size": 1000, "tokenizer.psnr_mse": 35.0,
            "baseline.copy_last.psnr_mse.1": 30.0}
    assert trust_checks(dict(base), None)["meta.warnings"] == []
    bad = dict(base, **{"tokenizer.usage": 0.01, "tokenizer.codes_used": 10, "tokenizer.psnr_mse": 20.0})
    warn = trust_checks(bad, None)["meta.warnings"]
    assert bad["tokenizer.low_usage"] and bad["tokenizer.below_copy_last"] and len(warn) == 2
    few_kinds = dict(base, **{"tokenizer.usage": 0.007, "tokenizer.codes_used": 7, "tokenizer.psnr_mse": 54.0})
    assert trust_checks(few_kinds, None)["meta.warnings"] == [] and not few_kinds["tokenizer.low_usage"]  # lossless


@pytest.mark.slow
def test_action_blind_idm_is_marked_invalid(runs):
    """One action in the data: the IDM answers it always, is not above chance, and its numbers are marked invalid
    in the JSON and the report. On the toy's four actions the same probe is valid."""
    one = runs["one"]
    assert one["control.idm_valid"] is False and "single action" in one["control.idm_invalid_reason"]
    assert "control.idm_accuracy" in one["meta.invalid_keys"]
    assert "INVALID" in runs["one_html"] and any("probe is not valid" in w for w in one["meta.warnings"])
    ok = runs["ok"]
    assert ok["control.idm_valid"] is True and ok["meta.invalid_keys"] == []
    conf = np.array(ok["control.idm_confusion_real"])
    assert conf.shape == (4, 4) and conf.sum() == ok["control.idm_pairs_real"]


def test_idm_on_shuffled_labels_is_not_above_chance(tmp_path, one_thread):
    """A probe trained on labels shuffled across transitions cannot read actions: invalid; the same probe on the
    true labels is valid."""
    from maskworld.data.store import EpisodeStore
    from maskworld.eval import idm
    from maskworld.eval.metrics import majority_accuracy
    from maskworld.eval.uncertainty import mean_ci

    store = EpisodeStore(make_toy_store(tmp_path / "d", episodes=24))
    train, held = idm.PairSet(store.load(i) for i in range(16)), idm.PairSet(store.load(i) for i in range(16, 24))
    a, b, y = held.pairs(np.arange(len(held)))
    chance = majority_accuracy(y)
    verdict = {}
    for name, labels in (("true", train.actions.copy()), ("shuffled", np.random.default_rng(0).permutation(train.actions))):
        train.actions = labels
        pred = idm.predict_actions(idm.train_idm(train, 4, 40, 0, "cpu", progress=False), a, b, "cpu")
        verdict[name] = idm.probe_validity(pred, y, chance, mean_ci(pred == y, held.episode))
    assert verdict["true"] == (True, "") and verdict["shuffled"][0] is False


def test_bootstrap_resamples_episodes_not_frames():
    """Frames within an episode are correlated: the episode bootstrap is wider than a frame bootstrap would be,
    deterministic given the seed, and undefined with one episode."""
    from maskworld.eval.uncertainty import balanced_accuracy_ci, mean_ci

    rng = np.random.default_rng(0)
    per_ep = rng.normal(0, 1, 8)
    values, groups = np.repeat(per_ep, 50) + rng.normal(0, 0.01, 400), np.repeat(np.arange(8), 50)
    lo, hi = mean_ci(values, groups)
    flo, fhi = mean_ci(values, np.arange(400))  # every frame its own cluster
    assert lo < values.mean() < hi and (hi - lo) > 3 * (fhi - flo)
    assert mean_ci(values, groups, seed=3) == mean_ci(values, groups, seed=3)
    assert mean_ci(values, np.zeros(400)) is None
    pred, true = np.r_[np.ones(40), np.zeros(360)], np.r_[np.ones(20), np.zeros(380)]
    blo, bhi = balanced_accuracy_ci(pred, true, np.repeat(np.arange(8), 50))
    assert blo <= (1.0 + 360 / 380) / 2 <= bhi


def overfiring_world(path):
    """The untrained toy world with a reward head that answers "positive reward" on every frame."""
    import maskworld

    w = maskworld.load_world(random_toy_world(path))
    with torch.no_grad():
        w.dynamics.reward_head.weight.zero_()
        w.dynamics.reward_head.bias.copy_(torch.tensor([-5.0, 0.0, 0.5]))
    return w


def head_scores(world, episodes):
    from maskworld.eval.evaluate import head_metrics, teacher_forced

    return head_metrics(teacher_forced(world, episodes, seed=0, progress=False), seed=0)


def toy_cache(store, path):
    from maskworld.data.token_cache import write_token_cache

    return write_token_cache(path, store, store.episode_ids, lambda f: np.zeros((len(f), 4, 4), np.int64), progress=False)


def test_overfiring_reward_head_is_flagged_and_the_prior_correction_lowers_it(tmp_path, one_thread):
    """A head that fires everywhere scores below the majority guess: flagged. The shifts head_prior computes for a
    run that oversampled events pull its positive logit down and it stops over-firing; with no oversampling
    (share 0) there is no shift and the flag stays."""
    from maskworld.data.store import EpisodeStore
    from maskworld.train.head_prior import set_head_prior

    store = EpisodeStore(make_toy_store(tmp_path / "d", episodes=16))
    eps = [store.load(i) for i in range(6)]
    w = overfiring_world(tmp_path / "w")
    cache = toy_cache(store, tmp_path / "cache")
    before = head_scores(w, eps)
    assert before["reward.below_majority"] and before["reward.predicted_nonzero"] > before["reward.nonzero"]
    set_head_prior(w.dynamics.cfg, cache, share=0.0)
    assert w.dynamics.cfg.reward_logit_shift is None and head_scores(w, eps)["reward.below_majority"]
    prior = set_head_prior(w.dynamics.cfg, cache, share=0.9)
    assert prior["train_prior"]["reward"][2] > 3 * prior["data_prior"]["reward"][2]
    shift = w.dynamics.cfg.reward_logit_shift
    assert shift[2] < 0 < shift[1]
    after = head_scores(w, eps)
    assert after["reward.predicted_nonzero"] < before["reward.predicted_nonzero"] and not after["reward.below_majority"]
    assert after["reward.accuracy"] > before["reward.accuracy"]


def test_termination_prior_shift_is_a_log_odds_difference(tmp_path):
    """Terminations oversampled in training: the shift is negative and equals logit(p_data) - logit(p_train);
    the same data with share 0 gets none."""
    from maskworld.data.store import EpisodeStore
    from maskworld.train.head_prior import head_prior

    cache = toy_cache(EpisodeStore(terminating_store(tmp_path / "d")), tmp_path / "cache")
    p = head_prior(cache, window=4, num_actions=4, share=0.5)
    pd, pt = p["data_prior"]["termination"], p["train_prior"]["termination"]
    assert 0 < pd < pt
    assert p["term_logit_shift"] == pytest.approx(np.log(pd / (1 - pd)) - np.log(pt / (1 - pt)), abs=0.05)
    assert head_prior(cache, window=4, num_actions=4, share=0.0)["term_logit_shift"] == 0.0


@pytest.mark.slow
def test_out_writes_gifs_and_png_strips(runs):
    files = {p.name for p in (runs["d"] / "out").iterdir()}
    assert {"eval.json", "report.html", "tokenizer_recon.png", "next_frame_error.png"} <= files
    assert "Where the next frame is wrong" in (runs["d"] / "out" / "report.html").read_text()
    gifs, pngs = [f for f in files if f.startswith("rollout_") and f.endswith(".gif")], [f for f in files if f.endswith(".png")]
    assert len(gifs) == 4 and len(pngs) >= 5 and any(f.startswith("actions_start_") for f in files)
    from PIL import Image

    with Image.open(runs["d"] / "out" / sorted(gifs)[0]) as im:
        assert im.n_frames > 1


def test_grey_soup_is_caught_by_the_mean_colour_gap_and_composite_worlds_keep_raw_copy_last():
    """A rollout that dissolves into grey moves the mean colour by tens of levels and is warned about; the real
    frames themselves score 0. A composite world is read against raw copy-last even below the tokenizer ceiling."""
    from maskworld.eval.evaluate import ceiling_reading, mean_colour_gap, trust_checks

    rng = np.random.default_rng(0)
    real = np.zeros((4, 16, 16, 3), np.uint8)
    real[..., 0] = rng.integers(150, 256, (4, 16, 16))  # a red game
    soup = np.full_like(real, 110)
    assert mean_colour_gap(real, real) == 0.0
    gap = mean_colour_gap(soup, real)
    assert gap > 50
    healthy = {"tokenizer.usage": 0.3, "tokenizer.codes_used": 300, "tokenizer.vocab_size": 1000}
    warn = trust_checks(dict(healthy, **{"rollout.mean_colour_gap.8": gap, "rollout.mean_colour_gap.1": 2.0}), None)["meta.warnings"]
    assert len(warn) == 1 and "soup" in warn[0] and "{8:" in warn[0]
    m = {"rollout.psnr.1": 30.0, "baseline.copy_last.psnr.1": 35.0, "baseline.copy_last_tok.psnr.1": 24.0,
         "baseline.tokenizer.psnr.1": 25.0}
    assert ceiling_reading(dict(m), [1])["baseline.reference.1"] == "copy_last_tok"
    assert ceiling_reading(dict(m), [1], composite=True)["baseline.reference.1"] == "copy_last"
