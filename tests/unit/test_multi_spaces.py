"""MultiDiscrete and MultiBinary actions: the product distributions against torch.distributions, the spaces as
EnvSpecs, every algorithm that claims them training a few hundred steps (acting, saving, loading), and one-line
errors for the algorithms and spaces that are not supported."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import distributions as td

import pgrad
from pgrad.algos import ALGOS
from pgrad.cli import main
from pgrad.core.distributions import Bernoulli, MultiCategorical
from pgrad.core.nets import BernoulliPolicy, MultiCategoricalPolicy, policy_function, policy_net
from pgrad.data.rollout import Rollout
from pgrad.envs import EnvSpec, describe
from pgrad.envs.identity import MultiBinaryIdentityEnv, MultiDiscreteIdentityEnv
from pgrad.errors import EnvError

MULTI = ("reinforce", "a2c", "a3c", "ppo", "trpo")
NVEC = (3, 1, 5, 2)  # uneven: the padded layout is exercised, a one-choice component included
QUIET = dict(progress=False, tensorboard=False, eval_episodes=2)


# ----------------------------------------------------------------------------- distributions
def reference_multicategorical(logits: torch.Tensor, nvec: tuple[int, ...]) -> list[td.Categorical]:
    return [td.Categorical(logits=block) for block in logits.split(list(nvec), -1)]


def test_multicategorical_matches_independent_categoricals():
    torch.manual_seed(0)
    logits = torch.randn(7, sum(NVEC)) * 3
    other = torch.randn(7, sum(NVEC))
    d, ref = MultiCategorical(logits, NVEC), reference_multicategorical(logits, NVEC)
    a = torch.stack([c.sample() for c in ref], -1)
    assert a.shape == (7, len(NVEC))
    torch.testing.assert_close(d.log_prob(a), sum(c.log_prob(a[:, i]) for i, c in enumerate(ref)))
    torch.testing.assert_close(d.entropy(), sum(c.entropy() for c in ref))
    ref_o = reference_multicategorical(other, NVEC)
    torch.testing.assert_close(d.kl(MultiCategorical(other, NVEC)),
                               sum(td.kl_divergence(c, o) for c, o in zip(ref, ref_o)))
    assert torch.equal(d.mode(), torch.stack([block.argmax(-1) for block in logits.split(list(NVEC), -1)], -1))
    assert d.kl(d).abs().max() < 1e-6 and torch.isfinite(d.entropy()).all()


def test_multicategorical_samples_each_component_with_its_probabilities():
    torch.manual_seed(1)
    logits = torch.randn(sum(NVEC))
    d = MultiCategorical(logits.expand(20_000, -1), NVEC)
    a = d.sample()
    for i, (block, n) in enumerate(zip(logits.split(list(NVEC)), NVEC)):
        assert int(a[:, i].max()) < n  # never a padded choice
        freq = torch.bincount(a[:, i], minlength=n).float() / a.shape[0]
        torch.testing.assert_close(freq, block.softmax(-1), atol=0.015, rtol=0)


def test_multicategorical_gradient_matches_reference():
    torch.manual_seed(2)
    logits = torch.randn(5, sum(NVEC), requires_grad=True)
    a = torch.stack([c.sample() for c in reference_multicategorical(logits.detach(), NVEC)], -1)
    (MultiCategorical(logits, NVEC).log_prob(a).sum() + MultiCategorical(logits, NVEC).entropy().sum()).backward()
    g = logits.grad.clone()
    logits.grad = None
    ref = reference_multicategorical(logits, NVEC)
    (sum(c.log_prob(a[:, i]).sum() + c.entropy().sum() for i, c in enumerate(ref))).backward()
    torch.testing.assert_close(g, logits.grad)


def test_bernoulli_matches_torch():
    torch.manual_seed(3)
    logits, other = torch.randn(9, 4) * 4, torch.randn(9, 4)
    d, ref = Bernoulli(logits), td.Bernoulli(logits=logits)
    a = ref.sample().long()
    torch.testing.assert_close(d.log_prob(a), ref.log_prob(a.float()).sum(-1))
    torch.testing.assert_close(d.entropy(), ref.entropy().sum(-1))
    torch.testing.assert_close(d.kl(Bernoulli(other)), td.kl_divergence(ref, td.Bernoulli(logits=other)).sum(-1))
    assert torch.equal(d.mode(), (logits > 0).long())
    s = Bernoulli(logits[0].expand(20_000, -1)).sample()
    assert s.dtype == torch.long and set(s.unique().tolist()) <= {0, 1}
    torch.testing.assert_close(s.float().mean(0), torch.sigmoid(logits[0]), atol=0.015, rtol=0)
    big = Bernoulli(torch.tensor([[60.0, -60.0]]))  # saturated: no inf, no nan
    assert torch.isfinite(big.log_prob(torch.tensor([[0, 1]]))).all() and torch.isfinite(big.entropy()).all()


# ----------------------------------------------------------------------------- spaces, heads, storage
def test_spaces_describe_and_heads():
    md = describe(MultiDiscreteIdentityEnv(NVEC), "md")
    assert (md.action_kind, md.n_actions, md.act_nvec, md.obs_dim) == ("multidiscrete", 4, NVEC, sum(NVEC))
    assert EnvSpec.from_dict(md.to_dict()) == md
    mb = describe(MultiBinaryIdentityEnv(5), "mb")
    assert (mb.action_kind, mb.n_actions, mb.act_nvec) == ("multibinary", 5, ())
    torch.manual_seed(0)
    pi_md, pi_mb = policy_net(md, (16,)), policy_net(mb, (16,))
    assert isinstance(pi_md, MultiCategoricalPolicy) and isinstance(pi_mb, BernoulliPolicy)
    obs = torch.randn(3, md.obs_dim)
    for pi, o, k in ((pi_md, obs, 4), (pi_mb, torch.randn(3, 5), 5)):
        d, f = pi(o), policy_function(pi)(o)  # the module-free acting path gives the same distribution
        a = d.sample()
        assert a.shape == (3, k) and a.dtype == torch.long
        torch.testing.assert_close(d.log_prob(a), f.log_prob(a))
    ro = Rollout(4, 2, md)
    assert ro.actions.shape == (4, 2, 4) and ro.actions.dtype == torch.long


def test_unsupported_spaces_are_one_line_errors():
    class BoxMatrix(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        action_space = gym.spaces.MultiDiscrete([[2, 2], [2, 2]])

    with pytest.raises(EnvError, match="pgrad handles Discrete, 1-D Box, 1-D MultiDiscrete and 1-D MultiBinary"):
        describe(BoxMatrix(), "m")

    class Offset(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        action_space = gym.spaces.MultiDiscrete([3, 3], start=[1, 0])

    with pytest.raises(EnvError, match="must start at 0"):
        describe(Offset(), "o")

    class DictObs(gym.Env):
        observation_space = gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,), np.float32)})
        action_space = gym.spaces.Discrete(2)

    with pytest.raises(EnvError, match="pgrad reads Box .vectors, images. and Discrete observations"):
        describe(DictObs(), "d")


@pytest.mark.parametrize("algo", sorted(set(ALGOS) - set(MULTI) - {"maddpg"}))
def test_algorithms_without_the_maths_refuse_in_one_line(algo, tmp_path):
    with pytest.raises(EnvError) as e:
        pgrad.train(algo, MultiDiscreteIdentityEnv, steps=100, out=tmp_path / "run", **QUIET)
    msg = str(e.value)
    assert msg.startswith(f"{algo} does not support MultiDiscrete actions") and "\n" not in msg
    assert "it needs" in msg and not (tmp_path / "run").exists()


def test_the_cli_refusal_names_the_supported_spaces(capsys):
    code = main(["train", "sac", "pgrad.envs.identity:MultiBinaryIdentityEnv", "--steps", "10"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "sac does not support MultiBinary actions of pgrad.envs.identity:MultiBinaryIdentityEnv; it needs Box" in err


# ----------------------------------------------------------------------------- every algorithm that claims them
def hparams(algo: str) -> dict:
    if algo in ("a2c", "ppo", "trpo"):
        return {"n_steps": 32, "num_envs": 2}
    if algo == "a3c":
        return {"workers": 1, "n_steps": 16}
    return {"num_envs": 2}


@pytest.mark.parametrize("env_cls", [MultiDiscreteIdentityEnv, MultiBinaryIdentityEnv])
@pytest.mark.parametrize("algo", MULTI)
def test_algorithm_trains_acts_saves_and_loads(algo, env_cls, tmp_path):
    assert {"multidiscrete", "multibinary"} <= set(ALGOS[algo].SPACES)
    agent = pgrad.train(algo, env_cls, steps=256, seed=0, out=tmp_path / "run", **QUIET, **hparams(algo))
    env = env_cls()
    obs, _ = env.reset(seed=0)
    a = agent.act(obs)
    assert a.shape == env.action_space.shape and env.action_space.contains(a.astype(env.action_space.dtype))
    batch = agent.act(np.stack([obs, obs]), deterministic=False)
    assert batch.shape == (2, *env.action_space.shape)
    res = agent.evaluate(episodes=2)
    k = len(env.action_space.nvec) if env_cls is MultiDiscreteIdentityEnv else env.action_space.n
    assert 0 <= res.mean_return <= k * env.length
    path = agent.save(tmp_path / "agent.pt")
    again = pgrad.load(path, env=env_cls)
    assert np.array_equal(again.act(obs), a)


def test_the_action_spaces_example_of_docs_customise_runs(tmp_path, customise_examples):
    import re

    blocks, run = customise_examples
    for code in blocks("Action spaces"):
        out = run(code, tmp_path)
        score = float(re.search(r"evaluation ([0-9.]+) of 48", out.stdout).group(1))
        assert score >= 45.0  # the learning test's threshold, the same run
        assert re.search(r"^action \[[0-2] [0-2] [0-2]\] for the targets", out.stdout, re.M), out.stdout
