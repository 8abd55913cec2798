"""`maskworld bench --quick` end to end: every key present, numbers sane."""

import json

from maskworld.cli import main

KEYS = ["speed.ar_vs_maskgit", "train.tokens_per_s", "train.flops_per_s", "train.flops_per_step", "train.flops_per_s_6nd",
        "matmul.flops_per_s", "train.matmul_share", "machine.cores", "machine.torch", "machine.threads", "machine.device",
        "machine.cpu", "meta.seconds"]


def _check(m):
    for k in KEYS:
        assert k in m, k
    for k in (1, 2, 4, 8):
        for key in ("speed.ms_per_frame", "speed.fps", "speed.cache_speedup", "speed.nocache_decode_ms"):
            assert m[f"{key}.K{k}"] > 0, f"{key}.K{k}"
    for n in (1, 4, 16):
        assert m[f"sessions.{n}.fps"] > 0 and m[f"sessions.{n}.p95_ms"] >= m[f"sessions.{n}.p50_ms"] > 0
    assert m["speed.ar_vs_maskgit"] > 1  # 64 forward passes cannot beat a handful
    assert 0 < m["train.matmul_share"]
    # counted FLOPs of one step over its time
    assert abs(m["train.flops_per_s"] - m["train.flops_per_step"] / (m["train.step_ms"] / 1000)) < 1e-6 * m["train.flops_per_s"]


@__import__("pytest").mark.slow
def test_bench_world_quick(tiny_world, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", str(tmp_path / "world"), "--quick", "--json", str(out), "--no-progress"]) == 0
    m = json.loads(out.read_text())
    _check(m)
    assert m["model.window"] == 4 and m["meta.world"] == str(tmp_path / "world")


@__import__("pytest").mark.slow
def test_bench_random_world_quick(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--preset", "tiny", "--quick", "--json", str(out), "--no-progress"]) == 0
    m = json.loads(out.read_text())
    _check(m)
    assert m["meta.world"] == "random:tiny"


def test_bench_bad_json_path(tmp_path):
    assert main(["bench", "--quick", "--json", str(tmp_path / "missing" / "b.json")]) == 2


@__import__("pytest").mark.slow
def test_bench_decoder_quality_on_data(tmp_path):
    """--data adds horizon-8 PSNR of MaskGIT vs token-by-token decoding of the same world."""
    from test_eval import random_toy_world
    from toy import make_toy_store

    data = make_toy_store(tmp_path / "data", episodes=20, T=16)
    world = random_toy_world(tmp_path / "world")
    out = tmp_path / "bench.json"
    assert main(["bench", str(world), "--quick", "--data", data, "--quality-episodes", "2", "--json", str(out),
                 "--no-progress"]) == 0
    m = json.loads(out.read_text())
    assert m["quality.episodes"] == 2
    for k in ("maskgit", "autoregressive"):
        assert 0 < m[f"quality.psnr_h8.{k}"] <= 60
    assert main(["bench", "--quick", "--data", data]) == 2  # decoders of a trained world only


def test_autoregressive_order_in_sessions(tiny_world):
    import dataclasses

    import numpy as np
    import torch

    from maskworld.models.sampler import decode_autoregressive

    tiny_world.sampler = dataclasses.replace(tiny_world.sampler, order="autoregressive", temperature=0.0)
    s = tiny_world.session(prompt=np.zeros((64, 64, 3), np.uint8), seed=0)
    cache, pos = s.engine.cache.view([s.row]), s.pos
    expected = decode_autoregressive(tiny_world.dynamics, cache, torch.tensor([1]), torch.tensor([pos]), 0.0, [s.gen])
    frame, _, _ = s.step(1)
    assert np.array_equal(s.tokens.ravel(), expected[0].numpy())


def test_attention_flops_are_counted_on_cpu():
    """The CPU attention kernel is invisible to torch's counter by default: a step of attention alone must count
    4·B·H·Lq·Lk·hd forward and 2.5x that backward, not zero."""
    import torch
    import torch.nn.functional as F

    from maskworld.eval.bench import step_flops

    q = torch.randn(2, 3, 40, 8, requires_grad=True)
    k, v = torch.randn(2, 3, 30, 8), torch.randn(2, 3, 30, 8)

    def step():
        F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(40, 30, dtype=torch.bool)).sum().backward()

    assert step_flops(step) == 4 * 2 * 3 * 40 * 30 * 8 * 7 // 2


def test_compiled_training_step_is_timed_beside_eager(monkeypatch):
    """--compile times the same step through torch.compile. The "eager" backend keeps the test quick (inductor's
    CPU compile takes minutes); what is tested is that the compiled module trains and its numbers are reported."""
    import functools

    import torch

    from maskworld.eval.bench import bench_training, random_world

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    m = bench_training(random_world("tiny"), batch=2, warmup=0, iters=1, compile=True)
    assert m["train.compiled.tokens_per_s"] > 0 and m["train.compiled.compile_s"] > 0
    assert m["train.compile_speedup"] == m["train.compiled.tokens_per_s"] / m["train.tokens_per_s"]


def test_bench_rejects_an_empty_training_batch():
    assert main(["bench", "--quick", "--train-batch", "0"]) == 2
