"""D4PG audit (issue 20, points 3 and 7): the priority written back is D_KL(Φ𝒯Z_w' ‖ Z_w); the target's mass on the
edge atoms and the share clipped there are logged; an unset support is derived from the warm-up's rewards, kept
through resume, and a support too narrow for the returns is warned about once."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch

import pgrad
from pgrad.algos import d4pg
from pgrad.config import make_config, preset_for
from pgrad.core.losses import categorical_clipped_mass
from pgrad.data.replay import extend
from pgrad.envs import EnvSpec
from pgrad.errors import ConfigError
from pgrad.run import load_checkpoint

SMALL = dict(hidden=(16, 16), batch_size=32, learning_starts=150, chunk=25, n_step=3)


def spec() -> EnvSpec:
    """Three-dimensional observations, one action in [-1, 1]."""
    return EnvSpec("test", 3, "box", 0, "box", 1, act_low=np.array([-1.0], np.float32),
                   act_high=np.array([1.0], np.float32))


def projection_loop(r, discount, p, atoms):
    """Bellemare et al. (2017), Algorithm 1, one sample and one atom at a time (float64)."""
    B, M = p.shape
    v_min, v_max = atoms[0].item(), atoms[-1].item()
    dz = (v_max - v_min) / (M - 1)
    m = torch.zeros(B, M, dtype=torch.float64)
    for i in range(B):
        for j in range(M):
            b = (min(max(r[i].item() + discount[i].item() * atoms[j].item(), v_min), v_max) - v_min) / dz
            lo, hi = math.floor(b), math.ceil(b)
            if lo == hi:
                m[i, lo] += p[i, j].item()
            else:
                m[i, lo] += p[i, j].item() * (hi - b)
                m[i, hi] += p[i, j].item() * (b - lo)
    return m


# ---------------------------------------------------------------------------- point 3: priorities
def test_priority_written_back_is_the_kl_divergence_of_the_sampled_batch():
    torch.manual_seed(0)
    cfg = make_config(d4pg.Config, "d4pg", None, dict(hidden=(8, 8), batch_size=16, n_atoms=11, v_min=-5.0,
                                                      v_max=5.0, alpha=0.7, buffer_size=64))
    es = spec()
    nets, opt = d4pg.build(cfg, es)
    replay = d4pg.learner_replay(cfg, es)
    n = 40
    disc = torch.where(torch.rand(n, 1) < 0.2, 0.0, cfg.gamma ** 3)
    extend(replay, torch.randn(n, 1, 3), torch.rand(n, 1, 1) * 2 - 1, torch.randn(n, 1) * 3, disc == 0,
           torch.zeros(n, 1, dtype=torch.bool), torch.randn(n, 1, 3), gamma_n=disc)
    atoms = torch.linspace(cfg.v_min, cfg.v_max, cfg.n_atoms)
    before = copy.deepcopy(nets)
    drawn = {}
    sample = replay.sample

    def spy(*args):
        drawn.update(sample(*args))
        return drawn

    replay.sample = spy
    d4pg.learn(nets, opt, replay, atoms, cfg, beta=0.5)

    # the same quantity, from the networks as they were, in float64 with loops
    with torch.no_grad():
        p_next = torch.softmax(before["z_targ"](drawn["next_obs"], before["mu_targ"](drawn["next_obs"])), -1).double()
        logp = torch.log_softmax(before["z"](drawn["obs"], drawn["actions"]), -1).double()
    m = projection_loop(drawn["rewards"].double(), drawn["gamma_n"].double(), p_next, atoms.double())
    kl = torch.tensor([sum(m[i, j] * (math.log(m[i, j]) - logp[i, j]) for j in range(cfg.n_atoms) if m[i, j] > 0)
                       for i in range(cfg.batch_size)], dtype=torch.float64)
    ce = -(m * logp).sum(-1)
    written = torch.from_numpy(replay.tree.leaves(drawn["index"].numpy()))
    assert torch.allclose(written, (kl + replay.eps) ** cfg.alpha, rtol=1e-5, atol=1e-7)
    # and it is not the cross-entropy: the two differ by the target's entropy H(m) > 0
    assert ((ce - kl) > 0.05).all()
    assert not torch.allclose(written, (ce + replay.eps) ** cfg.alpha, rtol=1e-2)


# ---------------------------------------------------------------------------- point 7: the support
def test_clipped_mass_counts_the_shifted_atoms_outside_the_support():
    atoms = torch.tensor([-1.0, 0.0, 1.0])
    p = torch.tensor([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
    r = torch.tensor([0.0, 0.5, -3.0, 0.5])
    discount = torch.tensor([0.9, 1.0, 0.0, 0.0])
    # Tz: [-0.9, 0, 0.9] inside; [-0.5, 0.5, 1.5] the last out; -3 everywhere out; 0.5 everywhere in
    expected = torch.tensor([0.0, 0.5, 1.0, 0.0])
    assert torch.allclose(categorical_clipped_mass(r, discount, p, atoms), expected)


def test_update_logs_edge_mass_and_clipped_mass_on_a_constructed_batch():
    torch.manual_seed(1)
    cfg = make_config(d4pg.Config, "d4pg", None, dict(hidden=(8, 8), n_atoms=3, v_min=-1.0, v_max=1.0))
    nets, opt = d4pg.build(cfg, spec())
    atoms = torch.linspace(-1.0, 1.0, 3)
    # terminated rows (γ^n = 0): the target is the point r, projected on [-1, 0, 1]
    r = torch.tensor([5.0, 0.0, 0.5, -0.25])  # m = [0,0,1], [0,1,0], [0,.5,.5], [.25,.75,0]
    b = {"obs": torch.randn(4, 3), "actions": torch.zeros(4, 1), "rewards": r, "gamma_n": torch.zeros(4),
         "next_obs": torch.randn(4, 3)}
    metrics, _ = d4pg.update(nets, opt, b, atoms, cfg)
    assert torch.isclose(metrics["edge_mass"], torch.tensor((1.0 + 0.0 + 0.5 + 0.25) / 4))
    assert torch.isclose(metrics["clipped_mass"], torch.tensor(1.0 / 4))  # only r = 5 lies outside [-1, 1]


def test_derivation_rule():
    g, N = 0.9, 2  # 1 - γ^N = 0.19
    lo, hi = d4pg.derive_support(torch.tensor([-1.0, -3.0, 0.5]), g, N)
    assert lo == pytest.approx(2 * -3.0 / 0.19) and hi == pytest.approx(2 * 0.5 / 0.19)
    assert d4pg.derive_support(torch.tensor([-1.0, -2.0]), g, N) == pytest.approx((2 * -2.0 / 0.19, 0.0))
    assert d4pg.derive_support(torch.tensor([0.5, 2.0]), g, N) == pytest.approx((0.0, 2 * 2.0 / 0.19))
    assert d4pg.derive_support(torch.zeros(5), g, N) == (-1.0, 1.0)
    assert d4pg.derive_support(torch.tensor([-1.0]), g, N, v_max=3.0) == pytest.approx((2 * -1.0 / 0.19, 3.0))
    with pytest.raises(ConfigError, match="set both v_min and v_max"):
        d4pg.derive_support(torch.tensor([-1.0, -2.0]), g, N, v_min=1.0)  # derived v_max = 0 < 1


def test_who_sets_the_support():
    cfg = make_config(d4pg.Config, "d4pg", "MountainCarContinuous-v0", {})
    assert cfg.v_min is None and cfg.v_max is None  # no preset: derived
    pend = make_config(d4pg.Config, "d4pg", "Pendulum-v1", {})
    assert (pend.v_min, pend.v_max) == (preset_for("d4pg", "Pendulum-v1")["v_min"], 0.0)
    user = make_config(d4pg.Config, "d4pg", "Pendulum-v1", {"v_min": "none", "v_max": None})
    assert user.v_min is None and user.v_max is None  # the user can ask for derivation over a preset
    with pytest.raises(ConfigError, match="gamma=1"):
        make_config(d4pg.Config, "d4pg", None, {"gamma": 1.0})
    make_config(d4pg.Config, "d4pg", None, {"gamma": 1.0, "v_min": -10, "v_max": 10})
    with pytest.raises(ConfigError, match="exceeds buffer_size"):  # the other cross-field checks still run
        make_config(d4pg.Config, "d4pg", None, {"batch_size": 64, "buffer_size": 32})


def test_a_run_derives_its_support_from_the_warm_up(tmp_path, quiet):
    run = tmp_path / "run"
    # the run ends with the chunk that reaches learning_starts: its replay holds exactly the warm-up's transitions
    pgrad.train("d4pg", "Pendulum-v1", steps=SMALL["learning_starts"], seed=0, out=run, v_min=None, v_max=None,
                eval_every=0, eval_episodes=1, **SMALL, **quiet)
    ck = load_checkpoint(run / "checkpoints" / "last.pt")
    lo, hi = ck["train"]["tracked"]["state"]["support"]
    R = ck["train"]["tracked"]["replay"]["fields"]["rewards"]
    assert R.shape[0] == SMALL["learning_starts"] - (SMALL["n_step"] - 1)  # complete 3-step windows
    gamma = ck["config"]["gamma"]  # Pendulum's preset: 0.98
    g = gamma ** SMALL["n_step"]
    assert (lo, hi) == pytest.approx((2 * min(0.0, R.min().item() / (1 - g)), 2 * max(0.0, R.max().item() / (1 - g))))
    # Pendulum's rewards lie in [-16.3, 0]: v_max is the exact bound 0
    assert hi == 0.0 and -2 * 16.3 / (1 - gamma) <= lo < -2 * 1.0
    assert f"[{lo:.4g}, {hi:.4g}], derived from the rewards of {R.shape[0]} warm-up" in (run / "run.log").read_text()


def test_a_support_too_narrow_warns_once(tmp_path, quiet):
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"clipped onto its edge atoms.*Set v_min and v_max") as rec:
        pgrad.train("d4pg", "Pendulum-v1", steps=600, seed=0, out=run, v_min=-10.0, v_max=10.0, log_every=100,
                    eval_every=0, eval_episodes=1, **SMALL, **quiet)
    assert sum("clipped onto its edge atoms" in str(w.message) for w in rec) == 1
    assert (run / "run.log").read_text().count("clipped onto its edge atoms") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the derived support clips nothing on the same run
        pgrad.train("d4pg", "Pendulum-v1", steps=600, seed=0, out=tmp_path / "derived", v_min=None, v_max=None,
                    log_every=100, eval_every=0, eval_episodes=1, **SMALL, **quiet)


@pytest.mark.parametrize("learning_starts", [150, 450])  # the split at 300 after / before the derivation
def test_resume_with_a_derived_support_equals_the_straight_run(learning_starts, tmp_path, quiet):
    kw = dict(eval_every=300, eval_episodes=2, seed=2, v_min=None, v_max=None, beta=1.0,
              **{**SMALL, "learning_starts": learning_starts}, **quiet)
    pgrad.train("d4pg", "Pendulum-v1", out=tmp_path / "straight", steps=600, **kw)
    pgrad.train("d4pg", "Pendulum-v1", out=tmp_path / "resumed", steps=300, **kw)
    pgrad.train("d4pg", None, resume=tmp_path / "resumed", steps=600, **quiet)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert a["train"]["tracked"]["state"]["support"] == b["train"]["tracked"]["state"]["support"]
    assert a["train"]["tracked"]["state"]["support"] is not None
    for k in a["nets"]:
        assert torch.equal(a["nets"][k], b["nets"][k]), k
