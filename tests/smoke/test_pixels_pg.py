"""Pixels for the algorithms whose heads each own an encoder: REINFORCE (with and without a baseline), the
action-value actor-critic, the off-policy actor-critic and TRPO (DESIGN.md section 6).

TRPO solves the image identity task; every algorithm runs on it and on MinAtar Breakout, evaluates, saves and
reloads, and acts on a raw channel-last frame; TRPO runs on Atari Breakout; the Fisher-vector product is the
exact Fisher through a convolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pgrad
from pgrad.core.distributions import Categorical
from pgrad.core.encoders import MinAtarCNN
from pgrad.core.natural import fisher_vector_product, flat_grad
from pgrad.core.nets import CategoricalPolicy, Encoded, encoded
from pgrad.envs.identity import ImageIdentityEnv
from pgrad.run import load_checkpoint

HEADS = {"reinforce": ("pi", "v"), "actor_critic": ("pi", "q"), "off_policy_ac": ("pi", "q", "q_target"),
         "trpo": ("pi", "v")}


def identity() -> ImageIdentityEnv:
    return ImageIdentityEnv(4, 10, 1, "bool")


def raw_frame(env_id: str) -> np.ndarray:
    """A frame as the env gives it: channel last, in its own dtype."""
    if env_id == "identity":
        env = identity()
    else:
        from pgrad.envs.minatar import make_minatar

        env = make_minatar(env_id, False)
    frame = env.reset(seed=0)[0]
    assert frame.ndim == 3 and frame.shape[-1] in (1, 4) and frame.dtype == np.bool_
    return frame


def assert_own_encoders(nets: torch.nn.ModuleDict, algo: str) -> None:
    """Each head is Encoded with an encoder of its own: no parameter is shared between heads."""
    heads = [h for h in HEADS[algo] if h in nets]
    seen: set[int] = set()
    for h in heads:
        assert isinstance(nets[h], Encoded), h
        ptrs = {p.data_ptr() for p in nets[h].parameters()}
        assert not ptrs & seen, f"{h} shares parameters with another head"
        seen |= ptrs


def test_fisher_vector_product_is_the_fisher_through_a_convolution():
    torch.manual_seed(0)
    pi = encoded(MinAtarCNN((1, 4, 4), "bool", out_dim=3), CategoricalPolicy(3, 2, (), "tanh"))
    params = list(pi.parameters())
    P = sum(p.numel() for p in params)
    obs = torch.rand(6, 1, 4, 4) > 0.5
    dist = pi(obs)
    kl = Categorical(dist.logits.detach()).kl(dist).mean()
    fvp = fisher_vector_product(kl, params)
    F = torch.stack([fvp(e) for e in torch.eye(P)])
    exact = torch.zeros(P, P)  # E_s Σ_a π(a|s) ∇ln π(a|s) ∇ln π(a|s)ᵀ
    for i in range(6):
        for a in range(2):
            logp = pi(obs[i:i + 1]).log_prob(torch.tensor([a]))[0]
            g = flat_grad(logp, params)
            exact += logp.exp().detach() * torch.outer(g, g) / 6
    assert torch.allclose(F, exact, atol=1e-6)
    assert exact[:16 * 9].abs().sum() > 0  # the conv weights are in F


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trpo_solves_image_identity(seed, tmp_path, quiet):
    agent = pgrad.train("trpo", identity, steps=4000, seed=seed, out=tmp_path / "run", eval_every=0,
                        eval_episodes=1, num_envs=4, n_steps=64, **quiet)
    assert_own_encoders(agent.nets, "trpo")
    res = agent.evaluate(episodes=5)
    assert res.mean_return >= 0.9 * 16, res.returns


CASES = [
    ("reinforce", {}),
    ("reinforce", {"baseline": "value", "vf_iters": 2}),
    ("actor_critic", {}),
    ("off_policy_ac", {}),
    ("off_policy_ac", {"replay": True, "learning_starts": 200, "batch_size": 32, "buffer_size": 2000, "tau": 0.05}),
]


@pytest.mark.parametrize("env_id", ["identity", "MinAtar/Breakout-v1"])
@pytest.mark.parametrize("algo,kw", CASES, ids=[f"{a}-{i}" for i, (a, _) in enumerate(CASES)])
def test_runs_evaluates_saves_and_acts_on_frames(algo, kw, env_id, tmp_path, quiet):
    run_dir = tmp_path / "run"
    agent = pgrad.train(algo, identity if env_id == "identity" else env_id, steps=1500, seed=0, out=run_dir,
                        eval_every=0, eval_episodes=1, num_envs=2, **kw, **quiet)
    assert agent.step >= 1500
    assert_own_encoders(agent.nets, algo)
    res = agent.evaluate(episodes=2)
    assert len(res.returns) == 2 and np.isfinite(res.mean_return)
    frame = raw_frame("identity" if env_id == "identity" else env_id)
    a = agent.act(frame)
    assert np.ndim(a) == 0 and 0 <= int(a) < agent.spec.n_actions
    again = pgrad.load(run_dir)
    assert np.array_equal(again.act(frame), a)
    batch = np.stack([frame, frame])
    assert np.array_equal(again.act(batch), np.stack([a, a]))
    if kw.get("replay"):  # frames stay bool in replay, [rows, N, C, H, W]
        fields = load_checkpoint(run_dir / "checkpoints" / "last.pt")["train"]["tracked"]["replay"]["fields"]
        for k in ("obs", "next_obs"):
            assert fields[k].dtype == torch.bool and tuple(fields[k].shape[2:]) == agent.spec.obs_shape


def test_trpo_identity_runs_with_a_subsampled_fisher(tmp_path, quiet):
    agent = pgrad.train("trpo", identity, steps=1024, seed=0, out=tmp_path / "run", eval_every=0, eval_episodes=1,
                        num_envs=4, n_steps=64, fvp_subsample=4, **quiet)
    with open(tmp_path / "run" / "progress.csv") as f:
        header, *rows = [line.split(",") for line in f.read().splitlines()]
    kls = [float(r[header.index("kl")]) for r in rows]
    assert all(0.0 <= kl <= agent.cfg.max_kl for kl in kls)
    assert any(float(r[header.index("ls_accepted")]) == 1.0 for r in rows)


@pytest.mark.slow
def test_trpo_runs_on_atari(tmp_path, quiet):
    agent = pgrad.train("trpo", "BreakoutNoFrameskip-v4", steps=2000, seed=0, out=tmp_path / "run", eval_every=0,
                        eval_episodes=1, num_envs=4, n_steps=128, cg_iters=3, fvp_subsample=8, vf_epochs=1,
                        batch_size=256, ls_max_iter=3, **quiet)
    assert agent.step >= 2000 and agent.spec.obs_shape == (4, 84, 84) and agent.spec.obs_dtype == "uint8"
    assert_own_encoders(agent.nets, "trpo")
    from pgrad.envs.atari import make_atari

    frame = make_atari("BreakoutNoFrameskip-v4", False).reset(seed=0)[0]  # the stack of 4 84x84 uint8 frames
    a = agent.act(frame)
    assert np.ndim(a) == 0 and 0 <= int(a) < agent.spec.n_actions
    assert np.array_equal(pgrad.load(tmp_path / "run").act(frame), a)
