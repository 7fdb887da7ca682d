"""A3C with one worker and one env performs exactly A2C's computation with one env (DESIGN.md section 3).

Same seed, same hyperparameters, k updates: the final parameters are bit-identical. This checks the whole
Hogwild! path: spawn, shared parameters, shared RMSprop/Adam statistics, gradients copied (not aliased) into
the shared model, the worker's random stream and env seeding, the n-step returns and the loss.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import pgrad
from pgrad.config import make_config
from pgrad.envs import describe
from pgrad.run import load_checkpoint, seed_everything

# every hyperparameter an a2c or a3c preset may set is given explicitly, so presets cannot make them differ
SHARED = dict(num_envs=1, n_steps=5, lr=7e-4, gamma=0.99, vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5,
              hidden=(32, 32), activation="tanh", log_std_init=0.0, anneal_lr=False, norm_obs=False,
              norm_reward=False, rms_alpha=0.99, opt_eps=1e-5, eval_every=0, checkpoint_every=0, progress=False,
              tensorboard=False)


def params(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["nets"]


@pytest.mark.parametrize("env,optimizer", [("CartPole-v1", "rmsprop"), ("Pendulum-v1", "adam")])
def test_one_worker_equals_a2c(env, optimizer, tmp_path):
    k = 60  # updates; CartPole episodes end inside the window, so returns are cut at terminations too
    steps = k * SHARED["n_steps"]
    pgrad.train("a2c", env, steps=steps, seed=5, out=tmp_path / "a2c", optimizer=optimizer, lam=1.0, **SHARED)
    pgrad.train("a3c", env, steps=steps, seed=5, out=tmp_path / "a3c", optimizer=optimizer, workers=1, **SHARED)
    a, b = params(tmp_path / "a2c"), params(tmp_path / "a3c")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # and the parameters did move away from their initial values: the comparison is not vacuous
    module = pgrad.ALGOS["a2c"]
    cfg = make_config(module.Config, "a2c", env, {"optimizer": optimizer, "lam": 1.0, **SHARED})
    seed_everything(5)
    init = module.build(cfg, describe(gym.make(env), env))[0].state_dict()
    assert not torch.equal(init["pi.logits.0.weight" if env == "CartPole-v1" else "pi.mean.0.weight"],
                           b["pi.logits.0.weight" if env == "CartPole-v1" else "pi.mean.0.weight"])
    last = load_checkpoint(tmp_path / "a3c" / "checkpoints" / "last.pt")
    assert last["step"] == steps and last["train"]["counters"]["updates"] == k

