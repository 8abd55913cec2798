"""The unified masked world (words, frames, actions, outcomes in one model): data with words, the model and its
decoder, the training pipeline, the tasks as API and CLI, and the metrics that judge them (each shown to fail)."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from maskworld.errors import UserError
from maskworld.models.text import PAD, TextVocab
from maskworld.models.unified import Unified, UnifiedConfig
from maskworld.models.unified_decode import decode


@pytest.fixture(scope="module")
def babyai_store(tmp_path_factory):
    from maskworld.data.collect import CollectConfig, collect

    out = str(tmp_path_factory.mktemp("babyai") / "data")
    collect(CollectConfig(env_id="BabyAI-GoToLocal-v0", steps=600, out=out, policy="bot:0.6,explore:0.4", view="full",
                          progress=False, bench_seconds=0.05))
    return out


def test_text_vocab_round_trip_and_refusals():
    v = TextVocab.build(["go to the red ball", "go to a green key"])
    ids = v.encode("Go to the RED ball")
    assert ids.shape == (v.length,) and ids[-1] == PAD
    assert v.decode(ids) == "go to the red ball"
    assert v.unknown("go to the pink ball") == ["pink"]
    with pytest.raises(UserError, match="words"):
        v.encode("go to the red ball and then go to the green key now")
    assert TextVocab.from_dict(v.to_dict()) == v
    with pytest.raises(UserError, match="mission"):
        TextVocab.build([])


def test_collect_stores_missions_and_which_policy_played(babyai_store):
    from maskworld.data.store import EpisodeStore

    s = EpisodeStore(babyai_store)
    assert s.meta["has_text"] is True
    entries = [s.entry(e) for e in s.episode_ids]
    assert all(e["mission"].startswith(("go to", "pick up")) for e in entries)
    assert {e["policy"] for e in entries} == {"bot", "explore"}
    bot = [e for e in entries if e["policy"] == "bot" and e["length"] < 60]
    rewards = [s.load(i).rewards.sum() for i in s.episode_ids if s.entry(i)["policy"] == "bot"]
    assert bot and np.mean(np.asarray(rewards) > 0) > 0.9  # the expert solves its missions


def test_bot_policy_is_refused_where_the_env_has_no_expert(tmp_path):
    from maskworld.data.collect import CollectConfig, collect

    out = tmp_path / "d"
    with pytest.raises(UserError, match="no expert"):
        collect(CollectConfig(env_id="MiniGrid-Empty-8x8-v0", steps=50, out=str(out), policy="bot", progress=False,
                              bench_seconds=0.05))
    assert not out.exists()  # refused before anything was written
    with pytest.raises(UserError, match="not a policy"):
        collect(CollectConfig(env_id="MiniGrid-Empty-8x8-v0", steps=50, out=str(out), policy="bot:1,walk", progress=False))


def test_detector_finds_the_named_object_and_rejects_wrong_colours(babyai_store):
    from maskworld.data.store import EpisodeStore
    from maskworld.eval.babyai_detect import COLORS, cells, count_objects, named_object, shows

    s = EpisodeStore(babyai_store)
    for e in s.episode_ids[:10]:
        frame, mission = s.load(e).frames[0], s.entry(e)["mission"]
        kind, colour = named_object(mission)
        assert shows(frame, kind, colour)
        absent = [c for c in COLORS if (kind, c) not in cells(frame, 8)]
        assert absent and not any(shows(frame, kind, c) for c in absent)
        assert not shows(np.full_like(frame, 128), kind, colour)  # a grey smear shows nothing
        assert count_objects(np.full_like(frame, 128)) == 0
    assert named_object("go to the purple box") == ("box", "purple") and named_object("open the door") is None
    from maskworld.envs import make_env

    env = make_env("BabyAI-GoToLocal-v0", 64, view="full")  # the objects the game placed, counted in its pixels
    try:
        for seed in range(5):
            frame, _ = env.reset(seed=seed)
            grid = env.env.unwrapped.grid.grid
            assert count_objects(frame) == sum(o is not None and o.type in ("ball", "box", "key") for o in grid) >= 1
    finally:
        env.close()


def _tiny_model(**kw):
    torch.manual_seed(0)
    return Unified(UnifiedConfig(vocab_size=20, num_actions=3, text_vocab=9, text_len=5, grid=2, window=3, d_model=32,
                                 n_layers=2, n_heads=2, **kw)).eval()


def _ids(m, B=2, T=3):
    c = m.cfg
    g = torch.Generator().manual_seed(1)
    return {"text": torch.randint(0, c.text_vocab, (B, c.text_len), generator=g),
            "act": torch.randint(0, c.num_actions, (B, T), generator=g),
            "frame": torch.randint(0, c.vocab_size, (B, T, c.tokens_per_frame), generator=g),
            "out": torch.randint(0, c.outcome_classes, (B, T), generator=g)}


def test_padded_steps_are_never_attended_to():
    m = _tiny_model()
    ids = _ids(m)
    ok = torch.tensor([[True, True, False], [True, True, True]])
    a = m(ids["text"], ids["act"], ids["frame"], ids["out"], ok)
    ids2 = {k: v.clone() for k, v in ids.items()}
    ids2["frame"][0, 2] = (ids2["frame"][0, 2] + 1) % m.cfg.vocab_size
    ids2["act"][0, 2] = (ids2["act"][0, 2] + 1) % m.cfg.num_actions
    b = m(ids2["text"], ids2["act"], ids2["frame"], ids2["out"], ok)
    torch.testing.assert_close(a["frame"][0, :2], b["frame"][0, :2])
    torch.testing.assert_close(a["text"][0], b["text"][0])


def test_the_action_token_reads_what_changed_into_its_step():
    """action_delta: a step's change code is the mean code of the cells that differ from the step before, both
    visible; nothing changed, a hidden frame or the first step give zero, and a different change a different code."""
    m = _tiny_model(action_delta=True)
    torch.nn.init.normal_(m.delta[2].weight)
    c = m.cfg
    frame = torch.full((1, 3, c.tokens_per_frame), 4)
    frame[0, 1, 0] = 7  # step 1: cell 0 changes 4 -> 7; step 2: frame hidden
    frame[0, 2] = c.frame_mask
    code = m.change_code(frame, m.emb_frame(frame))
    assert torch.count_nonzero(code[0, 0]) == 0 and torch.count_nonzero(code[0, 2]) == 0
    assert torch.count_nonzero(code[0, 1]) > 0
    same = frame.clone()
    same[0, 1, 0] = 4
    assert torch.count_nonzero(m.change_code(same, m.emb_frame(same))) == 0
    other = frame.clone()
    other[0, 1, 0] = 9
    assert not torch.allclose(m.change_code(other, m.emb_frame(other))[0, 1], code[0, 1])
    ids = _ids(m)  # and the action logits hear it: change one cell of the last step
    a = m(ids["text"], ids["act"], ids["frame"], ids["out"])["act"]
    ids["frame"][:, 2, 0] = (ids["frame"][:, 2, 0] + 1) % c.vocab_size
    assert not torch.allclose(a[:, 2], m(ids["text"], ids["act"], ids["frame"], ids["out"])["act"][:, 2])


@pytest.mark.parametrize("delta", [False, True])
def test_a_causal_clip_cannot_see_later_steps_and_a_bidirectional_one_can(delta):
    """Diffusion forcing's condition: in a causal clip a step (and the text) reads nothing of the steps after it,
    so every later frame can be a target in one pass; padding still hides what it hid."""
    m = _tiny_model(causal_dynamics=True, action_delta=delta)
    if delta:
        torch.nn.init.normal_(m.delta[2].weight)
    ids = _ids(m)
    causal = torch.tensor([True, False])
    a = m(ids["text"], ids["act"], ids["frame"], ids["out"], None, causal)
    ids2 = {k: v.clone() for k, v in ids.items()}
    ids2["frame"][:, 2] = (ids2["frame"][:, 2] + 1) % m.cfg.vocab_size
    ids2["act"][:, 2] = (ids2["act"][:, 2] + 1) % m.cfg.num_actions
    b = m(ids2["text"], ids2["act"], ids2["frame"], ids2["out"], None, causal)
    torch.testing.assert_close(a["frame"][0, :2], b["frame"][0, :2])
    torch.testing.assert_close(a["text"][0], b["text"][0])
    assert not torch.allclose(a["frame"][0, 2], b["frame"][0, 2])  # the step itself does see its own tokens
    assert not torch.allclose(a["frame"][1, :2], b["frame"][1, :2])  # bidirectional: earlier steps read it
    assert not torch.allclose(a["text"][1], b["text"][1])
    ok = torch.tensor([[True, False, False], [True, True, True]])
    c = m(ids["text"], ids["act"], ids["frame"], ids["out"], ok, causal)
    d = m(ids2["text"], ids2["act"], ids2["frame"], ids2["out"], ok, causal)
    torch.testing.assert_close(c["frame"][0, :2], d["frame"][0, :2])


def test_decode_fills_only_what_is_hidden_and_repeats_with_the_same_seed():
    m = _tiny_model()
    ids = _ids(m)
    todo = torch.zeros_like(ids["frame"], dtype=torch.bool)
    todo[:, -1] = True
    out1 = decode(m, ids, "frame", todo, steps=3, temperature=1.0, generator=torch.Generator().manual_seed(5))
    out2 = decode(m, ids, "frame", todo, steps=3, temperature=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out1["frame"], out2["frame"])
    assert torch.equal(out1["frame"][:, :-1], ids["frame"][:, :-1])
    assert (out1["frame"] < m.cfg.vocab_size).all()  # nothing left as MASK
    for k in ("text", "act", "out"):
        assert torch.equal(out1[k], ids[k])


def test_guidance_pushes_from_the_words_and_is_nothing_without_them():
    """Classifier-free guidance: c + w (c - u) is c where the text is hidden anyway (c == u), and decodes otherwise
    where the words matter; the text stream itself cannot be guided by the text."""
    m = _tiny_model()
    ids = _ids(m, B=8)
    todo = torch.zeros_like(ids["frame"], dtype=torch.bool)
    todo[:, 0] = True

    def run(ids, w):
        return decode(m, ids, "frame", todo, steps=3, temperature=0.0, guidance=w)["frame"]

    assert not torch.equal(run(ids, 0.0), run(ids, 8.0))
    no_text = {**ids, "text": torch.full_like(ids["text"], m.cfg.text_mask)}
    assert torch.equal(run(no_text, 0.0), run(no_text, 8.0))
    with pytest.raises(ValueError, match="cannot decode the text"):
        decode(m, ids, "text", torch.ones_like(ids["text"], dtype=torch.bool), guidance=1.0)


def test_a_hidden_frame_starts_from_the_last_one():
    """The copy prior: an untrained model's most likely hidden token is the one the cell had a step before."""
    m = _tiny_model()
    ids = _ids(m)
    ids["frame"][:, -1] = m.cfg.frame_mask
    with torch.no_grad():
        m.copy_bonus.fill_(50.0)
        logits = m(ids["text"], ids["act"], ids["frame"], ids["out"])["frame"]
    assert torch.equal(logits[:, -1].argmax(-1), ids["frame"][:, -2])


def test_task_masks_hide_what_each_task_predicts():
    from maskworld.train.unified_tasks import TASKS, task_weights
    from maskworld.train.unified_train import Clips, hide

    cfg = UnifiedConfig(vocab_size=20, num_actions=3, text_vocab=9, text_len=5, grid=2, window=4)
    B = len(TASKS)
    clips = Clips(np.ones((B, 5), np.int64), np.ones((B, 4), np.int64), np.ones((B, 4, 4), np.int64),
                  np.full((B, 4), 2), np.ones((B, 4), bool), np.arange(B))
    m = hide(clips, cfg, np.random.default_rng(0))
    i = {t: TASKS.index(t) for t in TASKS}
    assert m["frame"][i["dynamics"], 3].any() and not m["frame"][i["dynamics"], :3].any()
    assert not m["causal"].any()  # a world trained bidirectionally keeps its one target and its attention
    assert m["act"][i["inverse"], 1:].any() and not m["frame"][i["inverse"]].any()
    t = int(np.nonzero(m["act"][i["policy"]])[0][0])
    assert m["frame"][i["policy"], t].all() and not m["ok"][i["policy"], t + 1:].any()
    assert m["frame"][i["from_words"], 0].any() and not m["ok"][i["from_words"], 1:].any()
    clips.task[:] = i["from_words"]
    drop = np.mean([hide(clips, cfg, np.random.default_rng(s))["text"].all(1).mean() for s in range(40)])
    assert 0.03 < drop < 0.2  # TEXT_DROP: the unconditional side of guidance is trained too
    assert m["text"][i["describe"]].any() and not m["frame"][i["describe"]].any()
    causal = dataclasses.replace(cfg, causal_dynamics=True)
    firsts = []
    for seed in range(20):  # a causal dynamics clip: every frame from its first target on, none before
        clips.task[:] = i["dynamics"]
        m = hide(clips, causal, np.random.default_rng(seed))
        assert m["causal"].all()
        for b in range(B):
            hidden = m["frame"][b].any(-1)
            k = int(np.argmax(hidden))
            assert 1 <= k and hidden[k:].all() and not hidden[:k].any() and m["out"][b, k:].all()
            firsts.append(k)
    assert set(firsts) == {1, 2, 3}
    assert task_weights("inverse") == tuple(1.0 * (t == "inverse") * w for t, w in zip(TASKS, task_weights(None)))
    with pytest.raises(UserError, match="not a task"):
        task_weights("teleport")
    w = task_weights("inverse:0.5,describe,dynamics:0")  # a weight each, the default where none is given
    assert w == tuple({"inverse": 0.5, "describe": task_weights(None)[TASKS.index("describe")]}.get(t, 0.0)
                      for t in TASKS)
    for bad, says in (("inverse:lots", "not a number"), ("inverse:-1", ">= 0"), ("inverse:nan", "finite"),
                      ("inverse:0", "sum to 0"), ("inverse,inverse:2", "twice"), (",", "at least one")):
        with pytest.raises(UserError, match=says):
            task_weights(bad)


def test_clips_for_words_come_from_where_the_words_are_true():
    """from_words clips open their episode; policy and describe clips come from the expert's episodes, and half the
    describe clips end at the episode's end (where the instruction has been carried out)."""
    from types import SimpleNamespace

    from maskworld.train.unified_tasks import TASKS
    from maskworld.train.unified_train import draw_clips

    lengths = np.array([9, 12, 7, 10])
    rows = int(lengths.sum())
    step = np.concatenate([np.arange(n) for n in lengths])  # each row's step in its episode, stored as its token
    cache = SimpleNamespace(lengths=lengths, offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]), grid=(1, 1),
                            tokens=step[:, None], actions_in=np.zeros(rows, np.int64), rewards_in=np.zeros(rows),
                            terminated_in=np.zeros(rows, bool), num_actions=3)
    texts = np.arange(4)[:, None].repeat(2, 1)  # episode e's text is [e, e]
    expert = np.array([False, True, False, True])
    for task in ("from_words", "policy", "describe"):
        w = tuple(float(t == task) for t in TASKS)
        c = draw_clips(cache, texts, expert, 400, 4, np.random.default_rng(0), w)
        ep = c.text[:, 0]
        first = c.frame[:, 0, 0]
        if task == "from_words":
            assert (first == 0).all() and set(ep) == {0, 1, 2, 3}
            continue
        assert set(ep) == {1, 3}
        if task == "describe":
            at_end = first == lengths[ep] - 4
            assert 0.4 < at_end.mean() < 0.65  # half by design, plus the random starts that happen to end there


def test_train_unified_world_then_every_task(babyai_store, tmp_path, one_thread):
    from maskworld.train.world_train import TrainArgs, run_train
    from maskworld.world.unified import load_unified_world
    from maskworld.world.world import load_world

    out = tmp_path / "w"
    run_train(TrainArgs(data=babyai_store, out=str(out), kind="unified", preset="tiny", steps=4, tok_steps=3,
                        progress=False))
    cfg = json.loads((out / "world.json").read_text())
    assert cfg["kind"] == "unified" and (out / "unified.safetensors").exists()
    with pytest.raises(UserError, match="unified world"):
        load_world(out)
    w = load_unified_world(out)
    assert w.meta.model_card["unified_train"]["optimizer"] == "muon"  # the dynamics' default
    s = w.session(text="go to the red ball", seed=3)
    again = w.session(text="go to the red ball", seed=3)
    assert np.array_equal(s.frame, again.frame) and s.frame.shape == (64, 64, 3)
    frame, reward, done = s.step(2)
    assert frame.shape == (64, 64, 3) and reward in (-1.0, 0.0, 1.0) and isinstance(done, bool)
    assert 0 <= s.act() < 7
    # the policy draws its actions from the session's generator (the same seed draws the same), temperature 0 is
    # the most likely action every time
    draws = [w.session(text="go to the red ball", seed=5).act() for _ in range(2)]
    assert draws[0] == draws[1]
    s5 = w.session(text="go to the red ball", seed=5)
    assert len({s5.act() for _ in range(40)}) > 1  # an untrained policy is close to uniform
    assert len({s5.act(temperature=0) for _ in range(5)}) == 1
    from maskworld.data.store import EpisodeStore

    st = EpisodeStore(babyai_store)
    ep = st.load(st.episode_ids[0])
    assert w.infer_actions(ep.frames).shape == (len(ep.actions),)
    assert isinstance(w.describe(ep.frames, ep.actions), str)
    with pytest.raises(UserError, match="never read"):
        w.session(text="go to the pink ball")

    # continued training (--init, into an --out that takes the world's tokenizer): the world's config and weights, a
    # small step away from them; a kind mismatch is refused before anything is written
    from maskworld.cli import main

    cont = tmp_path / "cont"
    args = ["train", "dynamics", "--data", babyai_store, "--out", str(cont), "--steps", "1", "--init", str(out),
            "--no-progress"]
    assert main(args + ["--kind", "unified", "--optimizer", "adamw"]) == 0
    w2 = load_unified_world(cont)
    assert w2.model.cfg == w.model.cfg and w2.meta.model_card["unified_train"]["init"] == str(out)
    assert w2.meta.model_card["unified_train"]["optimizer"] == "adamw"
    diff = max((w.model.state_dict()[k] - v).abs().max().item() for k, v in w2.model.state_dict().items())
    assert 0 < diff < 0.05  # a fresh initialisation would be far away
    assert main(args) == 2  # --init a unified world, but this run trains the dynamics kind


def test_unified_kind_needs_words_in_the_data(tmp_path):
    from maskworld.data.collect import CollectConfig, collect
    from maskworld.train.world_train import TrainArgs, run_train

    data = tmp_path / "d"
    collect(CollectConfig(env_id="MiniGrid-Empty-8x8-v0", steps=100, out=str(data), progress=False, bench_seconds=0.05))
    with pytest.raises(UserError, match="words"):
        run_train(TrainArgs(data=str(data), out=str(tmp_path / "w"), kind="unified", preset="tiny", steps=2))
    assert not (tmp_path / "w").exists()


def test_inverse_metric_fails_for_a_model_that_ignores_the_frames(babyai_store):
    """The accuracy is the share of real actions matched: always answering one action scores that action's share."""
    from maskworld.data.store import EpisodeStore
    from maskworld.eval.unified_eval import eval_inverse

    st = EpisodeStore(babyai_store)

    class Blind:
        cfg = UnifiedConfig(num_actions=7)

        def infer_actions(self, frames):
            return np.full(len(frames) - 1, 2)

    ids = st.episode_ids[:8]
    m = eval_inverse(Blind(), st, ids)
    acts = np.concatenate([st.load(i).actions for i in ids])
    assert m["inverse.unified.accuracy"] == pytest.approx(float(np.mean(acts == 2)))
    # The pixel IDM beside it reads the frames: above the blind answer on episodes it was not trained on.
    from maskworld.eval.unified_eval import PixelIdm

    pixel = PixelIdm(st, st.episode_ids[8:], 7, steps=300, seed=0, device="cpu", progress=False)
    m = eval_inverse(Blind(), st, ids, pixel=pixel)
    assert m["inverse.pixel_idm.accuracy"] > m["inverse.unified.accuracy"] + 0.1, m


def test_delta_psnr_is_zero_for_an_action_blind_world_and_positive_for_one_that_follows():
    """ΔPSNR compares the logged actions with random ones from the same first frames: a world whose frames do not
    depend on the action scores exactly 0; one that draws what the logged action did scores above 0."""
    from types import SimpleNamespace

    from maskworld.eval.unified_eval import _delta_metrics

    rng = np.random.default_rng(0)
    looks = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)  # what each action leads to
    eps = []
    for _ in range(5):
        acts = rng.integers(0, 3, size=6)
        eps.append(SimpleNamespace(actions=acts, frames=np.stack([looks[0]] + [looks[a] for a in acts])))

    def blind(frame0):
        return lambda a: frame0

    def follows(frame0):
        return lambda a: looks[a]

    blind_m, follows_m = (_delta_metrics("w", f, eps, 3, 0, None) for f in (blind, follows))
    assert blind_m["dynamics.w.delta_psnr.4"] == 0.0 and blind_m["dynamics.w.delta_psnr.4.ci95"] == [0.0, 0.0]
    lo, hi = follows_m["dynamics.w.delta_psnr.4.ci95"]
    assert 0 < lo <= follows_m["dynamics.w.delta_psnr.4"] <= hi and follows_m["dynamics.w.delta_psnr.4"] > 5.0


@pytest.mark.slow
def test_cli_imagine_and_describe(babyai_store, tmp_path):
    from maskworld.train.world_train import TrainArgs, run_train

    out = tmp_path / "w"
    run_train(TrainArgs(data=babyai_store, out=str(out), kind="unified", preset="tiny", steps=2, tok_steps=2,
                        progress=False))
    mw = [sys.executable, "-m", "maskworld"]
    r = subprocess.run(mw + ["unified", "imagine", str(out), "--text", "go to the red ball", "--steps", "2", "--out",
                             str(tmp_path / "a.png")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.png").exists()
    r = subprocess.run(mw + ["unified", "describe", str(out), "--data", babyai_store, "--episodes", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "truth" in r.stdout, r.stderr
    r = subprocess.run(mw + ["eval", str(out), "--data", babyai_store, "--tasks", "inverse,describe", "--json",
                             str(tmp_path / "e.json"), "--no-progress", "--idm-steps", "20"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    e = json.loads((tmp_path / "e.json").read_text())
    assert "inverse.unified.accuracy" in e and e["inverse.pixel_idm.steps"] == 20 and "inverse.pixel_idm.accuracy" in e
    assert e["meta.held_out_by"] == "content" and e["meta.held_out_found"] == e["meta.held_out_listed"] > 0
    r = subprocess.run(mw + ["eval", str(out), "--data", babyai_store, "--tasks", "from_words", "--words", "2",
                             "--guidance", "3", "--sampler-steps", "2", "--json", str(tmp_path / "g.json"),
                             "--no-progress"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = json.loads((tmp_path / "g.json").read_text())
    assert got["from_words.guidance"] == 3.0 and "from_words.unguided_shows_object" in got
    assert got["from_words.objects_real"] >= 1 and got["from_words.shows_object_sparse"] <= got["from_words.shows_object"]
    assert got["meta.sampler_steps"] == 2  # the MaskGIT passes a unified world decodes with, as for every world
    r = subprocess.run(mw + ["eval", str(out), "--data", babyai_store, "--tasks", "from_words", "--guidance", "-1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--guidance" in r.stderr
    r = subprocess.run(mw + ["unified", "imagine", str(out), "--text", "go to the pink ball", "--out",
                             str(tmp_path / "b.png")], capture_output=True, text=True)
    assert r.returncode == 2 and "pink" in r.stderr and not (tmp_path / "b.png").exists()


def _random_unified_world(path):
    """A unified world with random weights (no training): enough for play's plumbing."""
    from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
    from maskworld.world.unified import UnifiedMeta, UnifiedWorld

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(channels=16, num_res=1))
    vocab = TextVocab.build(["go to the red ball", "go to a green key"])
    model = Unified(UnifiedConfig(vocab_size=tok.cfg.vocab_size, num_actions=7, text_vocab=vocab.size,
                                  text_len=vocab.length, grid=tok.cfg.grid, window=3, d_model=32, n_layers=1, n_heads=2))
    meanings = ["LEFT", "RIGHT", "FORWARD", "PICKUP", "DROP", "TOGGLE", "DONE"]
    return UnifiedWorld(tok, model, vocab, UnifiedMeta(env_id="BabyAI-GoToLocal-v0", action_meanings=meanings)).save(path)


def test_play_a_unified_world_from_words_with_its_own_policy(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from maskworld.serve.app import create_app
    from maskworld.serve.store import SessionStore
    from maskworld.world.unified import load_unified_world
    from test_serve import next_of

    world = load_unified_world(_random_unified_world(tmp_path / "u"))
    app = create_app(world, world_path=tmp_path / "u", store=SessionStore(tmp_path / "s.db"))
    with TestClient(app) as client, client.websocket_connect("/ws?mode=step") as ws:
        hello = next_of(ws, "json", "hello")[1]
        assert "red" in hello["words"] and hello["agent"]["name"].startswith("the world's own policy")
        next_of(ws, "frame")
        ws.send_text('{"type": "new", "text": "go to the pink ball"}')
        assert "never read" in next_of(ws, "json", "error")[1]["message"]
        ws.send_text('{"type": "new", "text": "go to the red ball", "seed": 3}')
        _, h, first = next_of(ws, "frame")
        assert h["step"] == 0
        ws.send_text('{"type": "action", "action": 2}')
        _, h, _ = next_of(ws, "frame")
        assert h["step"] == 1 and h["action"] == 2
        ws.send_text('{"type": "save", "name": "words"}')
        next_of(ws, "json", "saved")
        ws.send_text('{"type": "driver", "driver": "agent"}')
        ws.send_text('{"type": "mode", "mode": "realtime"}')
        for _ in range(20):
            _, h, _ = next_of(ws, "frame")
            if h["driver"] == "agent" and h["step"] >= 3:
                break
        else:
            raise AssertionError("the world's own policy never drove")
        ws.send_text('{"type": "mode", "mode": "step"}')
        ws.send_text('{"type": "load", "name": "words"}')
        for _ in range(20):  # frames of the realtime ticks still in flight, then the loaded session's
            _, h, _ = next_of(ws, "frame")
            if h["step"] == 1:
                break
        else:
            raise AssertionError("the saved session did not come back at its step")
