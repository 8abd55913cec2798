"""Muon + AdamW (maskworld.train.muon): the orthogonalised update, which weights take it, and the AdamW half."""

import torch

from maskworld.models.dynamics import Dynamics, DynamicsConfig
from maskworld.train.muon import MuonAdamW, is_hidden_matrix, make_optimizer, orthogonalise


def test_orthogonalise_pushes_singular_values_toward_one():
    torch.manual_seed(0)
    for shape in [(64, 32), (32, 96)]:
        g = torch.randn(shape) * 3.0  # a Gaussian matrix: singular values spread ~6x
        s = torch.linalg.svdvals(orthogonalise(g))
        assert s.shape[0] == min(shape) and 0.5 < float(s.min()) and float(s.max()) < 1.3  # the quintic's band
        s_in = torch.linalg.svdvals(g)
        assert float(s_in.max() / s_in.min()) > 2 * float(s.max() / s.min())  # the spread shrinks


def test_only_block_matrices_take_muon_steps():
    model = Dynamics(DynamicsConfig(vocab_size=50, num_actions=3, d_model=32, n_layers=2, n_heads=2, window=3))
    hidden = {n for n, p in model.named_parameters() if is_hidden_matrix(n, p)}
    assert hidden and all(n.startswith("blocks.") and n.endswith("weight") for n in hidden)
    assert not any("emb" in n or "ln" in n for n in hidden)
    opt = make_optimizer(model, 1e-3, "muon")
    kinds = {g["kind"]: sum(p.numel() for p in g["params"]) for g in opt.param_groups if g["kind"] == "muon"}
    assert kinds["muon"] == sum(p.numel() for n, p in model.named_parameters() if n in hidden)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))  # every weight, once


def test_adamw_groups_match_torch_adamw_and_muon_descends():
    torch.manual_seed(0)
    w0, target = torch.randn(6, 4), torch.randn(6, 4)
    a, b = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    ref = torch.optim.AdamW([a], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.05)
    ours = MuonAdamW([{"params": [b], "weight_decay": 0.05}], lr=1e-2)
    for _ in range(5):
        for p, o in ((a, ref), (b, ours)):
            o.zero_grad()
            ((p - target) ** 2).sum().backward()
            o.step()
    assert torch.allclose(a, b, atol=1e-6)
    m = w0.clone().requires_grad_()
    opt = MuonAdamW([{"params": [m], "kind": "muon", "weight_decay": 0.0}], lr=0.05)
    start = float(((m - target) ** 2).sum().detach())
    for _ in range(60):
        opt.zero_grad()
        ((m - target) ** 2).sum().backward()
        opt.step()
    assert float(((m - target) ** 2).sum().detach()) < 0.2 * start
    state = opt.state_dict()
    again = MuonAdamW([{"params": [m], "kind": "muon", "weight_decay": 0.0}], lr=0.02)
    again.load_state_dict(state)
    assert torch.equal(again.state[m]["momentum_buffer"], opt.state[m]["momentum_buffer"])
