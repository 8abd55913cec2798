"""--preset auto: the preset whose tokens per parameter in the budget come nearest ~20, from measured step times."""

import torch

from maskworld.train import auto_preset
from maskworld.train.auto_preset import Probe, choose_preset


def _fake_probe(step_s: dict):
    params = {"tiny": 400_000, "compact": 650_000, "small": 3_600_000, "base": 15_000_000}
    calls = []

    def probe(name, device, image_size=64, num_actions=8, vocab=1000, optimizer="muon"):
        calls.append(name if optimizer == "muon" else f"{name}/{optimizer}")
        return Probe(name, params[name], step_s[name], 10_000)
    return probe, calls


def test_the_preset_nearest_twenty_tokens_per_parameter(monkeypatch):
    # 60 min x 0.7 = 2520 s. tiny 2520/0.1*1e4/4e5 = 630, compact 2520/0.6*1e4/6.5e5 = 65, small 2520/5*1e4/3.6e6 = 1.4
    probe, calls = _fake_probe({"tiny": 0.1, "compact": 0.6, "small": 5.0, "base": 50.0})
    monkeypatch.setattr(auto_preset, "probe", probe)
    name, why = choose_preset(60, torch.device("cpu"))
    assert name == "compact" and calls == ["tiny", "compact", "small"] and "undertrained" in why[2]
    # CoinRun on one core: tiny saw ~50 tokens per parameter, compact ~16 -> compact, although it is below 20
    probe, calls = _fake_probe({"tiny": 2520 * 1e4 / 4e5 / 50, "compact": 2520 * 1e4 / 6.5e5 / 16, "small": 50.0, "base": 500.0})
    monkeypatch.setattr(auto_preset, "probe", probe)
    assert choose_preset(60, torch.device("cpu"))[0] == "compact" and calls == ["tiny", "compact"]
    # a shorter budget: tiny 30, compact 11 -> tiny
    probe, calls = _fake_probe({"tiny": 2520 * 1e4 / 4e5 / 30, "compact": 2520 * 1e4 / 6.5e5 / 11, "small": 50.0, "base": 500.0})
    monkeypatch.setattr(auto_preset, "probe", probe)
    assert choose_preset(60, torch.device("cpu"))[0] == "tiny"
    probe, calls = _fake_probe({"tiny": 0.1, "compact": 0.15, "small": 0.2, "base": 5.0})
    monkeypatch.setattr(auto_preset, "probe", probe)
    assert choose_preset(60, torch.device("cpu"))[0] == "small" and calls == ["tiny", "compact", "small", "base"]
    calls.clear()  # the probe times the optimizer the run will use
    choose_preset(60, torch.device("cpu"), optimizer="adamw")
    assert calls == ["tiny/adamw", "compact/adamw", "small/adamw", "base/adamw"]


def test_steps_budget_and_nothing_enough(monkeypatch):
    assert choose_preset(None, torch.device("cpu"))[0] == "small"
    probe, calls = _fake_probe({"tiny": 100.0, "compact": 200.0, "small": 500.0, "base": 5000.0})
    monkeypatch.setattr(auto_preset, "probe", probe)
    assert choose_preset(5, torch.device("cpu"))[0] == "tiny" and calls == ["tiny"]  # the smallest when none is enough


@__import__("pytest").mark.slow
def test_probe_times_a_real_step():
    for optimizer in ("muon", "adamw"):
        p = auto_preset.probe("tiny", torch.device("cpu"), optimizer=optimizer)
        assert p.params > 100_000 and p.step_s > 0 and p.tokens_per_step == 8 * 4 * 65


def test_resume_keeps_the_recorded_choice(tmp_path):
    import json

    from maskworld.commands.train_cmd import auto_preset

    work = tmp_path / "w" / "_work"
    work.mkdir(parents=True)
    (work / "preset.json").write_text(json.dumps({"preset": "tiny", "why": []}))
    assert auto_preset({"out": str(tmp_path / "w"), "resume": True, "data": "d", "minutes": 60}, "world")[0] == "tiny"
    assert auto_preset({"out": str(tmp_path / "new"), "resume": True, "data": "d", "minutes": 60}, "world")[0] == "small"
