"""`maskworld bench --quick` end to end: every key present, numbers sane."""

import json

from maskworld.cli import main

KEYS = ["speed.ar_vs_maskgit", "train.tokens_per_s", "train.flops_per_s", "matmul.flops_per_s", "train.matmul_share",
        "machine.cores", "machine.torch", "machine.threads", "machine.device", "machine.cpu", "meta.seconds"]


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


def test_bench_world_quick(tiny_world, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", str(tmp_path / "world"), "--quick", "--json", str(out), "--no-progress"]) == 0
    m = json.loads(out.read_text())
    _check(m)
    assert m["model.window"] == 4 and m["meta.world"] == str(tmp_path / "world")


def test_bench_random_world_quick(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--preset", "tiny", "--quick", "--json", str(out), "--no-progress"]) == 0
    m = json.loads(out.read_text())
    _check(m)
    assert m["meta.world"] == "random:tiny"


def test_bench_bad_json_path(tmp_path):
    assert main(["bench", "--quick", "--json", str(tmp_path / "missing" / "b.json")]) == 2
