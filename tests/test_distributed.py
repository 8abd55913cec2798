"""Multi-process training: real `torchrun --nproc-per-node 2` runs on CPU (gloo), tiny preset, toy data.

- Same global batch, same steps: 2 processes end where 1 process ends (weights and losses within 1e-5;
  measured differences are ~1e-7, float rounding of the gradient all-reduce).
- Checkpoints move between process counts: a 1-process checkpoint resumes with 2, a 2-process one with 1.
- SIGKILL of one rank: torchrun tears the group down, the last checkpoint is intact, `--resume` finishes.
- `--data-split rank`: each rank reads, tokenizes and samples only its own episodes; the ranks' parts are
  disjoint, cover the training split and share at most one shard file (unit tests: test_rank_split.py).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import maskworld
from maskworld.cli import main
from maskworld.data.store import EpisodeStore, StoreWriter
from maskworld.data.token_cache import TokenCache
from maskworld.train import checkpoint, dist
from toy import ACTIONS, toy_episode

STEPS = 40  # dynamics steps; the tokenizer gets 4
ARGS = ["--steps", str(STEPS), "--tok-steps", "4", "--preset", "tiny", "--no-progress", "--seed", "0", "--ckpt-minutes", "0"]
TOL = 1e-5
ROOT = Path(__file__).parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """32 px toy store: 8 episodes of 12 steps in 4 shards (fast enough for several runs in a test)."""
    path = tmp_path_factory.mktemp("dist") / "data"
    rng = np.random.default_rng(0)
    meta = {"env_id": "toy/square", "size": 32, "num_actions": 4, "has_actions": True, "action_meanings": ACTIONS,
            "info_keys": []}
    with StoreWriter(path, meta, episodes_per_shard=2) as w:
        for _ in range(8):
            w.add(toy_episode(rng, 12, size=32, cell=8))
    return str(path)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (conftest's one_thread)."""


def torchrun(*args, wait=True):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = TORCHRUN + ["-m", "maskworld", "train", "world"] + [str(a) for a in args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def weights(world):
    return {f: load_file(str(Path(world) / f"{f}.safetensors")) for f in ("tokenizer", "dynamics")}


def assert_close(a, b, tol=TOL):
    wa, wb = weights(a), weights(b)
    for f in wa:
        assert wa[f].keys() == wb[f].keys()
        diff = max((wa[f][k] - wb[f][k]).abs().max().item() for k in wa[f])
        assert diff < tol, f"{f}: max weight difference {diff:.2e} between {a} and {b}"


def logged(world, stage, key="loss"):
    """{step: value} of a TensorBoard scalar (steps 1, 20, 40 here)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(Path(world) / "_work" / "tb" / stage))
    ea.Reload()
    return {e.step: e.value for e in ea.Scalars(f"{stage}/{key}")}


@pytest.fixture(scope="module")
def one_proc(data, tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("one") / "w"
    try:
        assert main(["train", "world", "--data", data, "--out", str(out)] + ARGS) == 0
    finally:
        torch.set_num_threads(n)
    return out


@pytest.mark.slow
def test_two_processes_match_one(data, one_proc, tmp_path):
    out = tmp_path / "w2"
    stdout = torchrun("--data", data, "--out", out, *ARGS)
    assert stdout.count("[world] saved") == 1  # rank 0 alone prints (and writes)
    assert_close(one_proc, out)
    for stage in ("tokenizer", "dynamics"):
        l1, l2 = logged(one_proc, stage), logged(out, stage)
        assert l1.keys() == l2.keys() and len(l1) >= 1
        for s in l1:
            assert abs(l1[s] - l2[s]) <= TOL * abs(l1[s]), (stage, s, l1[s], l2[s])
    w = maskworld.load_world(out)  # the 2-process world loads and steps in one process
    assert w.meta.model_card["processes"] == 2 and w.meta.model_card["dynamics_train"]["steps"] == STEPS
    frame, _, _ = w.session(seed=0).step(0)
    assert frame.shape == (32, 32, 3)


def _ckpt_step(out) -> int:
    last = checkpoint.latest_checkpoint(Path(out) / "_work" / "ckpt_dynamics")
    return -1 if last is None else int(last.name.split("-")[1])


def _rank_pids(launcher_pid: int) -> dict[int, int]:
    """{rank: pid} of torchrun's worker processes."""
    out = {}
    for pid in subprocess.run(["pgrep", "-P", str(launcher_pid)], capture_output=True, text=True).stdout.split():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ranks = [int(e[5:]) for e in env if e.startswith(b"RANK=")]
        if ranks:
            out[ranks[0]] = int(pid)
    return out


@pytest.mark.slow
def test_checkpoints_cross_process_counts_and_survive_sigkill(data, one_proc, tmp_path, monkeypatch):
    out = tmp_path / "w"
    # 1) One process dies at dynamics step 10: a 1-process checkpoint.
    import maskworld.train.loop as loop

    calls = {"n": 0}
    real_lr_at = loop.lr_at

    def dying_lr_at(*a, **k):
        calls["n"] += 1
        if calls["n"] > 4 + 10:  # 4 tokenizer steps, then 10 dynamics steps
            raise KeyboardInterrupt
        return real_lr_at(*a, **k)

    monkeypatch.setattr(loop, "lr_at", dying_lr_at)
    assert main(["train", "world", "--data", data, "--out", str(out)] + ARGS) != 0
    monkeypatch.setattr(loop, "lr_at", real_lr_at)
    assert _ckpt_step(out) == 10 and not (out / "world.json").exists()

    # 2) Two processes resume it; SIGKILL rank 1 once they have checkpointed past step 10.
    p = torchrun("--data", data, "--out", out, "--resume", *ARGS, wait=False)
    try:
        deadline = time.time() + 120
        while _ckpt_step(out) <= 12 and time.time() < deadline and p.poll() is None:
            time.sleep(0.02)
        pids = _rank_pids(p.pid)
        assert p.poll() is None and 1 in pids, "the 2-process run ended before the kill; make it longer"
        os.kill(pids[1], signal.SIGKILL)
        assert p.wait(timeout=60) != 0  # torchrun tears the group down and fails
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    killed_at = _ckpt_step(out)
    assert 12 < killed_at < STEPS and not (out / "world.json").exists()
    last = checkpoint.latest_checkpoint(out / "_work" / "ckpt_dynamics")
    assert {f.name for f in last.iterdir()} == {"model.safetensors", "optim.safetensors", "state.json"}
    load_file(str(last / "model.safetensors")), load_file(str(last / "optim.safetensors"))  # intact

    # 3) The 2-process checkpoint resumes in one process ...
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert main(["train", "world", "--data", data, "--out", str(copy), "--resume"] + ARGS) == 0
    # ... and with two processes again; both end where the uninterrupted 1-process run ends.
    stdout = torchrun("--data", data, "--out", out, "--resume", *ARGS)
    assert f"resumed from {last} at step {killed_at}" in stdout
    assert not list((out / "_work" / "ckpt_dynamics").glob(".tmp-*"))
    assert maskworld.load_world(out).meta.model_card["dynamics_train"]["steps"] == STEPS
    assert_close(one_proc, copy)
    assert_close(one_proc, out)


def test_fsdp_and_batch_errors(data, tmp_path, capsys):
    assert main(["train", "world", "--data", data, "--out", str(tmp_path / "a"), "--device", "cpu", "--fsdp"] + ARGS) == 2
    assert "--fsdp" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert main(["train", "world", "--data", data, "--out", "memory://w"] + ARGS) == 2
    assert "local" in capsys.readouterr().err
    assert dist.Part(1, 2).slice(8) == slice(4, 8) and dist.part() is None and dist.world_size() == 1
    dist.check_batch("--batch", 7)  # one process: any batch


@pytest.mark.slow
def test_rank_split_reads_disjoint_episodes(data, one_proc, tmp_path):
    """Two ranks, each reading, tokenizing and sampling only its own run of the store."""
    out = tmp_path / "wr"
    torchrun("--data", data, "--out", out, "--data-split", "rank", *ARGS)
    work = out / "_work"
    train_ids, _ = EpisodeStore(data).split(seed=0, val_fraction=0.1)
    reads = [json.loads((work / "reads" / f"tokenizer.rank-{r}-of-2.json").read_text()) for r in (0, 1)]
    caches = [TokenCache(str(work / f"cache_train.rank-{r}-of-2")) for r in (0, 1)]
    pools = [r["episodes"] for r in reads]  # what each rank's tokenizer drew its frames from
    cached = [c.episode_ids.tolist() for c in caches]  # what each rank's dynamics drew its windows from
    for a, b in (pools, cached):
        assert a and b and not set(a) & set(b) and sorted(a + b) == train_ids, (a, b)
    assert pools == cached  # one partition for both stages
    assert len(set(reads[0]["shards"]) & set(reads[1]["shards"])) <= 1  # contiguous runs: at most one shared shard
    assert not (work / "cache_train").exists()  # nobody tokenized the whole training split
    state = json.loads((checkpoint.latest_checkpoint(work / "ckpt_dynamics") / "state.json").read_text())
    assert isinstance(state["rank_stream"], int)  # what --resume needs to continue every rank's own random stream
    w = maskworld.load_world(out)
    card = w.meta.model_card
    assert card["processes"] == 2 and card["data_split"] == "rank" and card["dynamics_train"]["steps"] == STEPS
    assert np.isfinite(card["dynamics_train"]["val_loss"])
    assert maskworld.load_world(one_proc).meta.model_card["data_split"] == "global"  # the default
    frame, _, _ = w.session(seed=0).step(0)
    assert frame.shape == (32, 32, 3)
