"""The eager-PyTorch floor of the on-policy bench rows (A2C, PPO and TRPO at their rl-zoo settings), against pgrad.

For each row it times, on the process CPU clock, one-thread:
- the update: the fewest eager ops that compute the same loss and step (64x64 tanh policy and value networks,
  categorical or Gaussian log-probabilities, the row's loss, global-norm clipping, the optimiser as direct kernel
  calls; for TRPO the conjugate-gradient step on double-backward Fisher-vector products, the line search and the
  value regression), written without any library code, and pgrad's ``update`` on the same batch;
- collection: one vector step of the row's Gymnasium envs (``gymnasium.make``, the same wrappers SB3 gets) with
  the fewest ops that act and store (functional MLP, Gumbel-max or Gaussian sample, log-probability, writes into
  preallocated arrays), and pgrad's own ``collect_rollout`` on its VecEnv;
- value targets per rollout: V of the (next) states and the n-step returns (A2C) or GAE (PPO, TRPO).
Per 100k env steps the floor is updates x update floor + vector steps x collection floor + rollouts x targets
floor (logging and bookkeeping left out, so it is lower than any complete implementation): SB3's time per 100k
over it bounds what this formulation (two networks, as SB3's, in eager PyTorch on one thread) can reach against
SB3. The same two networks stacked into one batched matmul per layer (``Stacked``) are timed too for A2C and PPO:
fewer, larger ops, a lower floor. Pass SB3's measured steps/s (from ``pgrad bench``) to get the bound printed:

    .venv/bin/python benchmarks/onpolicy_floor.py [--sb3-a2c S] [--sb3-ppo S] [--sb3-ppo-pendulum S] [--sb3-trpo S]

Those parts are timed alone, hot in cache, best of several rounds, so their sum is optimistic against a run's
mean steps/s. ``--loop`` runs the a2c-cartpole row (the one whose stacked floor passes 3x) as one whole loop of
the fewest eager ops (``a2c_loop``), stacked and separate, alternating with pgrad's and SB3's bench children,
each a fresh one-thread process, timed as the bench times a run:

    .venv/bin/python benchmarks/onpolicy_floor.py --loop [--reps 3]
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pgrad.algos import a2c, ppo, trpo
from pgrad.bench import best_cpu_ms
from pgrad.core.nets import policy_function
from pgrad.data.collect import collect_rollout
from pgrad.data.rollout import Rollout
from pgrad.envs import VecEnv, describe, env_factory

N = 8  # envs of both rows
STEPS = 100_000


def net(out: int, obs_dim: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out))


class Stacked:
    """Policy and value networks as one batched matmul per layer ([2, in, out] weights; the value uses column 0
    of the last layer's outputs): the same two networks in fewer, larger ops."""

    def __init__(self, obs_dim: int = 4, out: int = 2) -> None:
        shapes = ((obs_dim, 64), (64, 64), (64, out))
        self.params = [torch.randn(2, i, o).mul_(0.1).requires_grad_() for i, o in shapes]
        self.params = [t for w in self.params for t in (w, torch.zeros(2, 1, w.shape[2], requires_grad=True))]

    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w1, b1, w2, b2, w3, b3 = self.params
        h = torch.tanh(torch.baddbmm(b1, obs.expand(2, -1, -1), w1))
        out = torch.baddbmm(b3, torch.tanh(torch.baddbmm(b2, h, w2)), w3)
        return out[0], out[1, :, 0]


def _backward_clip(loss: torch.Tensor, params: list[torch.Tensor], clip: bool = True) -> list[torch.Tensor]:
    """Gradients of ``loss``, clipped to global norm 0.5 in place (unless ``clip`` is False)."""
    for p in params:
        p.grad = None
    loss.backward()
    g = [p.grad for p in params]
    if clip:
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g)))
        torch._foreach_mul_(g, torch.clamp(0.5 / (norm + 1e-6), max=1.0))
    return g


class AdamStep:
    """Adam as one fused kernel call with one step counter; PPO's settings by default (lr 3e-4, eps 1e-5, gradients
    clipped to norm 0.5), TRPO's value regression with lr=1e-3, eps=1e-8, clip=False."""

    def __init__(self, params: list[torch.Tensor], lr: float = 3e-4, eps: float = 1e-5, clip: bool = True):
        self.params, self.step = params, torch.zeros(1)
        self.lr, self.eps, self.clip = lr, eps, clip
        self.m1, self.m2 = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]

    def __call__(self, loss: torch.Tensor) -> None:
        g = _backward_clip(loss, self.params, self.clip)
        with torch.no_grad():
            self.step.add_(1)
            torch._fused_adam_(self.params, g, self.m1, self.m2, [], [self.step[0]] * len(g), amsgrad=False,
                               lr=self.lr, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=self.eps, maximize=False,
                               grad_scale=None, found_inf=None)


class RMSpropStep:
    """RMSprop (lr 7e-4, alpha 0.99, eps 1e-5) as five foreach calls."""

    def __init__(self, params: list[torch.Tensor]):
        self.params, self.sq = params, [torch.zeros_like(p) for p in params]

    def __call__(self, loss: torch.Tensor) -> None:
        g = _backward_clip(loss, self.params)
        with torch.no_grad():
            torch._foreach_mul_(self.sq, 0.99)
            torch._foreach_addcmul_(self.sq, g, g, value=0.01)
            avg = torch._foreach_sqrt(self.sq)
            torch._foreach_add_(avg, 1e-5)
            torch._foreach_addcdiv_(self.params, g, avg, value=-7e-4)


def ppo_update_floor(B: int = 256, env_id: str = "CartPole-v1") -> tuple[float, float, float]:
    """(floor, stacked floor, pgrad) ms of one PPO update: clipped surrogate, value loss, normalised advantages,
    clip, Adam. CartPole: categorical policy; Pendulum: Gaussian with a state-independent log σ."""
    torch.manual_seed(0)
    make, env_id = env_factory(env_id)
    spec = describe(make(), env_id)
    D, discrete = spec.obs_dim, spec.action_kind == "discrete"
    obs = torch.randn(B, D)
    act = torch.randint(0, 2, (B,)) if discrete else torch.randn(B, 1)
    logp_old, adv, ret = torch.full((B,), -0.69 if discrete else -1.0), torch.randn(B), torch.randn(B)
    log_std = torch.zeros(1, requires_grad=True)
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def loss(out: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        if discrete:
            logp = out.log_softmax(-1).gather(1, act[:, None]).squeeze(1)
        else:
            logp = (-0.5 * ((act - out) / log_std.exp()).pow(2) - log_std - half_log_2pi).sum(-1)
        ratio = (logp - logp_old).exp()
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        return -torch.min(ratio * a, ratio.clamp(0.8, 1.2) * a).mean() + 0.5 * (val - ret).pow(2).mean()

    n_out = 2 if discrete else 1
    pi, v = net(n_out, D), net(1, D)
    extra = [] if discrete else [log_std]
    opt = AdamStep(list(pi.parameters()) + list(v.parameters()) + extra)
    st = Stacked(D, n_out)
    st_opt = AdamStep(st.params + extra)
    cfg = ppo.Config()
    nets, popt = ppo.build(cfg, spec)
    batch = {"obs": obs, "actions": act, "logp": logp_old, "adv": adv, "ret": ret, "v": torch.randn(B)}
    return (best_cpu_ms(lambda: opt(loss(pi(obs), v(obs).squeeze(1))), 300),
            best_cpu_ms(lambda: st_opt(loss(*st(obs))), 300), best_cpu_ms(lambda: ppo.update(nets, popt, batch, 0.2, cfg), 300))


def a2c_update_floor(B: int = 40) -> tuple[float, float, float]:
    """(floor, stacked floor, pgrad) ms of one A2C update: policy gradient with A = R - V, value loss, clip,
    RMSprop."""
    torch.manual_seed(0)
    obs, act, ret = torch.randn(B, 4), torch.randint(0, 2, (B,)), torch.randn(B)

    def loss(logits: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        logp = logits.log_softmax(-1).gather(1, act[:, None]).squeeze(1)
        return -(logp * (ret - val.detach())).mean() + 0.5 * (ret - val).pow(2).mean()

    pi, v = net(2), net(1)
    opt = RMSpropStep(list(pi.parameters()) + list(v.parameters()))
    st = Stacked()
    st_opt = RMSpropStep(st.params)

    make, env_id = env_factory("CartPole-v1")
    cfg = a2c.Config(norm_adv=False, ent_coef=0.0)
    nets, aopt = a2c.build(cfg, describe(make(), env_id))
    batch = {"obs": obs, "actions": act, "ret": ret}
    return (best_cpu_ms(lambda: opt(loss(pi(obs), v(obs).squeeze(1))), 300),
            best_cpu_ms(lambda: st_opt(loss(*st(obs))), 300), best_cpu_ms(lambda: a2c.update(nets, aopt, batch, cfg), 300))


def collect_floor(env_id: str = "CartPole-v1", n: int = N, T: int = 5, reps: int = 400) -> tuple[float, float]:
    """(floor, pgrad) ms per vector step of ``n`` envs: act, step, store; T steps per rollout. CartPole acts by
    a Gumbel-max categorical sample, Pendulum by a Gaussian sample clipped to the action bounds."""
    torch.manual_seed(0)
    make, env_id = env_factory(env_id)
    spec = describe(make(), env_id)
    D, discrete = spec.obs_dim, spec.action_kind == "discrete"
    pi = net(2 if discrete else 1, D)
    layers = [(m.weight, m.bias) for m in pi if isinstance(m, nn.Linear)]
    log_std = torch.zeros(1)
    envs = [gym.make(env_id) for _ in range(n)]
    obs = np.stack([e.reset(seed=i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    O, LP = torch.zeros(T, n, D), torch.zeros(T, n)
    A = torch.zeros(T, n, dtype=torch.long) if discrete else torch.zeros(T, n, 1)
    R, TE, TR, NO = np.zeros((T, n), np.float32), np.zeros((T, n), bool), np.zeros((T, n), bool), \
        np.zeros((T, n, D), np.float32)
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    @torch.no_grad()
    def floor() -> None:
        for t in range(T):
            x = torch.from_numpy(obs)
            O[t] = x
            out = F.linear(torch.tanh(F.linear(torch.tanh(F.linear(x, *layers[0])), *layers[1])), *layers[2])
            if discrete:
                logits = torch.log_softmax(out, -1)
                a = (logits - torch.rand_like(logits).clamp_(1e-20, 1.0).log_().neg_().log_()).argmax(-1)
                LP[t] = logits.gather(-1, a[:, None])[:, 0]
                an = a.numpy()
            else:
                eps = torch.randn_like(out)
                a = out + log_std.exp() * eps
                LP[t] = (-0.5 * eps.pow(2) - log_std - half_log_2pi).sum(-1)
                an = a.clamp(-2.0, 2.0).numpy()
            A[t] = a
            for i, e in enumerate(envs):
                o, r, te, tr, _ = e.step(an[i])
                R[t, i], TE[t, i], TR[t, i], NO[t, i] = r, te, tr, o
                if te or tr:
                    o, _ = e.reset()
                obs[i] = o

    venv = VecEnv(make, n, 0, spec)
    nets, _ = a2c.build(a2c.Config(), spec)
    act, bounds = policy_function(nets["pi"]), nets["bounds"]
    ro = Rollout(T, n, spec)

    def sample(o: torch.Tensor):
        d = act(o)
        a = d.sample()
        return a, d.log_prob(a), (a if discrete else bounds.clip(a)).cpu().numpy()

    ours = best_cpu_ms(lambda: collect_rollout(venv, sample, ro), n=reps) / T
    return best_cpu_ms(floor, n=reps) / T, ours


def trpo_update_floor(n: int = 1024, cfg: trpo.Config | None = None) -> tuple[float, float, float, float]:
    """(policy step floor, value fitting floor, pgrad's policy step, pgrad's value fitting) ms per rollout of ``n``
    CartPole samples at the bench settings (15 CG iterations, damping 1e-3, 20 passes of value minibatches of 512).

    The floor's policy step: surrogate and KL from one forward pass, their gradients, CG on Fisher-vector products
    by double backpropagation, the step size and the backtracking line search, each as the fewest eager ops. Both
    start every call from the same parameters, so they take the same number of line-search tries."""
    cfg = cfg or trpo.Config(n_steps=512, num_envs=2, batch_size=512, cg_damping=1e-3, vf_epochs=20, cg_iters=15)
    torch.manual_seed(0)
    make, env_id = env_factory("CartPole-v1")
    nets, vopt = trpo.build(cfg, describe(make(), env_id))
    obs, act, adv, ret = torch.randn(n, 4), torch.randint(0, 2, (n,)), torch.randn(n), torch.randn(n)
    with torch.no_grad():
        logp_old = nets["pi"](obs).log_prob(act)
    params = list(nets["pi"].parameters())
    theta0 = [p.detach().clone() for p in params]
    lin = [m for m in nets["pi"].logits if isinstance(m, nn.Linear)]
    W = [(m.weight, m.bias) for m in lin]

    def logits_of(x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(F.linear(torch.tanh(F.linear(x, *W[0])), *W[1]))
        return torch.log_softmax(F.linear(h, *W[2]), -1)

    def fg(y: torch.Tensor, **kw) -> torch.Tensor:
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(y, params, **kw)])

    def policy_floor() -> None:
        torch._foreach_copy_([p.data for p in params], theta0)
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        lp = logits_of(obs)
        old = lp.detach()
        surr = ((lp.gather(1, act[:, None])[:, 0] - logp_old).exp() * a).mean()
        kl = (old.exp() * (old - lp)).sum(-1).mean()
        g = fg(surr, retain_graph=True)
        gkl = fg(kl, create_graph=True)

        def fvp(v: torch.Tensor) -> torch.Tensor:
            return fg(gkl @ v, retain_graph=True).add_(v, alpha=cfg.cg_damping)

        x, r, d = torch.zeros_like(g), g.clone(), g.clone()
        rr = r @ r
        for _ in range(cfg.cg_iters):
            Ad = fvp(d)
            alpha = rr / (d @ Ad)
            x.add_(alpha * d)
            r.sub_(alpha * Ad)
            rr_new = r @ r
            d = r + (rr_new / rr) * d
            rr = rr_new
        step = torch.sqrt(2 * cfg.max_kl / (x @ fvp(x))) * x
        flat0 = torch.cat([p.reshape(-1) for p in theta0])
        s0 = float(surr.detach())
        with torch.no_grad():
            frac = 1.0
            for _ in range(cfg.ls_max_iter):
                new = (flat0 + frac * step).split([p.numel() for p in params])
                torch._foreach_copy_([p.data for p in params], [t.view_as(p) for t, p in zip(new, params)])
                lp = logits_of(obs)
                s_new = ((lp.gather(1, act[:, None])[:, 0] - logp_old).exp() * a).mean()
                if float((old.exp() * (old - lp)).sum(-1).mean()) <= cfg.max_kl and float(s_new) > s0:
                    break
                frac *= cfg.ls_shrink

    v = net(1)
    vstep = AdamStep(list(v.parameters()), lr=cfg.lr, eps=1e-8, clip=False)

    def value_floor() -> None:
        for _ in range(cfg.vf_epochs):
            for idx in torch.randperm(n).split(cfg.batch_size):
                vstep((v(obs[idx])[:, 0] - ret[idx]).pow(2).mean())

    data = {"obs": obs, "actions": act, "logp": logp_old, "adv": adv}

    def ours_policy() -> None:
        torch._foreach_copy_([p.data for p in params], theta0)
        trpo.update(nets, data, cfg)

    return (best_cpu_ms(policy_floor, n=20, rounds=3), best_cpu_ms(value_floor, n=10, rounds=3),
            best_cpu_ms(ours_policy, n=20, rounds=3), best_cpu_ms(lambda: trpo.fit_value(nets, vopt, obs, ret, cfg), n=10,
                                                          rounds=3))


def returns_floor(T: int, n: int, nstep: bool) -> tuple[float, float]:
    """(floor, pgrad) ms per rollout of T steps of n CartPole envs for the value targets: V of the next states and
    the n-step returns (A2C, ``nstep``) or V of the states and next states and GAE (PPO, TRPO)."""
    torch.manual_seed(0)
    v = net(1)
    r, obs, nxt = torch.rand(T, n), torch.randn(T, n, 4), torch.randn(T, n, 4)
    te, tr = torch.rand(T, n) < 0.05, torch.rand(T, n) < 0.01

    @torch.no_grad()
    def floor() -> None:
        vn = v(nxt)[..., 0]
        coef = 0.99 * (~te).float()
        if nstep:
            done = (te | tr).unbind(0)
            rs, cs, vs = r.unbind(0), coef.unbind(0), vn.unbind(0)
            acc = rs[-1] + cs[-1] * vs[-1]
            out = [acc]
            for t in range(T - 2, -1, -1):
                acc = rs[t] + cs[t] * torch.where(done[t], vs[t], acc)
                out.append(acc)
        else:
            vv = v(obs)[..., 0]
            ds, ks = (r + coef * vn - vv).unbind(0), (0.95 * 0.99 * (~(te | tr)).float()).unbind(0)
            acc = torch.zeros(n)
            out = []
            for t in range(T - 1, -1, -1):
                acc = ds[t] + ks[t] * acc
                out.append(acc)
        torch.stack(out)

    make, env_id = env_factory("CartPole-v1")
    spec = describe(make(), env_id)
    cfg = a2c.Config(n_steps=T, num_envs=n, lam=1.0 if nstep else 0.95)
    nets, _ = a2c.build(cfg, spec)
    ro = Rollout(T, n, spec)
    ro.rewards, ro.obs, ro.next_obs, ro.terminated, ro.truncated = r, obs, nxt, te, tr
    reps = max(20, 2000 // T)
    return best_cpu_ms(floor, n=reps), best_cpu_ms(lambda: a2c.returns(ro, nets["v"], cfg), n=reps)


def a2c_loop(steps: int = STEPS, seed: int = 0, stacked: bool = True) -> dict[str, float]:
    """The a2c-cartpole row as one loop of the fewest eager ops: 8 CartPole envs, 5 steps per update, acting with
    the policy alone (Gumbel-max), n-step returns bootstrapped from V(s') at truncation and at the rollout's end,
    the A2C loss, clipping and RMSprop, with the networks stacked (``Stacked``, the faster floor) or separate.
    Steps/s over the whole loop, as ``pgrad bench`` times an on-policy run (wall and CPU clock), and the mean
    return of the last 20 episodes (it learns: a check that the loop is A2C)."""
    import time

    torch.manual_seed(seed)
    T = 5
    envs = [gym.make("CartPole-v1") for _ in range(N)]
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    if stacked:
        st = Stacked()
        params, forward = st.params, st
        w1, b1, w2, b2, w3, b3 = (p[0] for p in st.params)  # the policy member, for acting

        def policy(x: torch.Tensor) -> torch.Tensor:
            return torch.addmm(b3[0], torch.tanh(torch.addmm(b2[0], torch.tanh(torch.addmm(b1[0], x, w1)), w2)), w3)

        def value(x: torch.Tensor) -> torch.Tensor:
            return forward(x)[1]
    else:
        pi, v = net(2), net(1)
        params = list(pi.parameters()) + list(v.parameters())

        def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return pi(x), v(x)[..., 0]

        policy, value = pi, (lambda x: v(x)[..., 0])
    with torch.no_grad():  # orthogonal init as SB3's and pgrad's: gain sqrt 2 inside, 0.01 (policy) and 1 (value) out
        gains = (math.sqrt(2), math.sqrt(2))
        if stacked:  # [w, b] per layer, each [2, ...]: member 0 the policy, member 1 the value
            for i, w in enumerate(params[0::2]):
                for k in range(2):
                    nn.init.orthogonal_(w[k], gains[i] if i < 2 else (0.01, 1.0)[k])
            members = [params[1::2]]
        else:
            for layers, out_gain in ((pi, 0.01), (v, 1.0)):
                for i, m in enumerate(m for m in layers if isinstance(m, nn.Linear)):
                    nn.init.orthogonal_(m.weight, gains[i] if i < 2 else out_gain)
            members = [[m.bias for m in layers if isinstance(m, nn.Linear)] for layers in (pi, v)]
        for b in (b for bs in members for b in bs):
            b.zero_()
    opt = RMSpropStep(params)
    O, A = torch.zeros(T, N, 4), torch.zeros(T, N, dtype=torch.long)
    R, TE, TR, NO = np.zeros((T, N), np.float32), np.zeros((T, N), bool), np.zeros((T, N), bool), \
        np.zeros((T, N, 4), np.float32)
    tR, tTE, tTR, tNO = (torch.from_numpy(x) for x in (R, TE, TR, NO))
    ep_ret, finished = np.zeros(N), []
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps // (N * T)):
        with torch.no_grad():
            for t in range(T):
                x = torch.from_numpy(obs)
                O[t] = x
                logits = torch.log_softmax(policy(x), -1)
                a = (logits - torch.rand_like(logits).clamp_(1e-20, 1.0).log_().neg_().log_()).argmax(-1)
                A[t] = a
                for i, (e, ai) in enumerate(zip(envs, a.tolist())):
                    o, r, te, tr, _ = e.step(ai)
                    R[t, i], TE[t, i], TR[t, i], NO[t, i] = r, te, tr, o
                    if te or tr:
                        o, _ = e.reset()
                        finished.append(ep_ret[i] + r)
                        ep_ret[i] = -r
                    obs[i] = o
                ep_ret += R[t]
            vn = value(tNO.reshape(T * N, 4)).reshape(T, N)
            coef = 0.99 * (~tTE).float()
            done, rs, cs, vs = (tTE | tTR).unbind(0), tR.unbind(0), coef.unbind(0), vn.unbind(0)
            acc = rs[-1] + cs[-1] * vs[-1]
            out = [acc]
            for t in range(T - 2, -1, -1):
                acc = rs[t] + cs[t] * torch.where(done[t], vs[t], acc)
                out.append(acc)
            ret = torch.stack(out[::-1]).reshape(-1)
        logits, val = forward(O.reshape(T * N, 4))
        logp = logits.log_softmax(-1).gather(1, A.reshape(-1, 1)).squeeze(1)
        opt(-(logp * (ret - val.detach())).mean() + 0.5 * (ret - val).pow(2).mean())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = steps // (N * T) * N * T
    return {"sps": n / wall, "cpu_sps": n / cpu, "episodes": len(finished),
            "last_returns": float(np.mean(finished[-20:])) if finished else float("nan")}


def loop(reps: int) -> None:
    """``a2c_loop`` (stacked and separate), pgrad and SB3 on the a2c-cartpole row, each a fresh one-thread
    process, the order rotated per repetition; steps/s over the run and per-repetition ratios to SB3."""
    from pgrad.bench import ROWS, _spawn, alternate, ratios_line, script_child

    runs = {f"{kind} floor": lambda rep, st=st: script_child(__file__, {"steps": STEPS, "seed": rep, "stacked": st})
            for kind, st in (("stacked", True), ("separate", False))}
    for lib in ("pgrad", "sb3"):
        runs[lib] = lambda rep, lib=lib: _spawn({"lib": lib, "row": "a2c-cartpole", "seed": rep, "ls": 0,
                                                 "steps": ROWS["a2c-cartpole"].steps, "episodes": 1})
    print("a2c-cartpole: " + ratios_line(alternate(runs, reps, "sps")), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for row in ("a2c", "ppo", "ppo-pendulum", "trpo"):
        p.add_argument(f"--sb3-{row}", type=float, default=None, help=f"SB3's steps/s on the {row} row")
    p.add_argument("--loop", action="store_true", help="time the a2c-cartpole row as one floor loop against SB3")
    p.add_argument("--reps", type=int, default=3, help="repetitions of --loop")
    p.add_argument("--loop-child", default=None, help=argparse.SUPPRESS)
    a = vars(p.parse_args())
    torch.set_num_threads(1)
    if a["loop_child"]:
        import json

        print(json.dumps(a2c_loop(**json.loads(a["loop_child"]))))
        return
    if a["loop"]:
        loop(a["reps"])
        return
    coll = {"CartPole-v1/8": collect_floor(), "Pendulum-v1/4": collect_floor("Pendulum-v1", 4),
            "CartPole-v1/2": collect_floor(n=2)}
    for key, (low, ours) in coll.items():
        env_id, n = key.split("/")
        print(f"collection, per vector step of {n} {env_id} envs: floor {low * 1e3:.0f} us, pgrad {ours * 1e3:.0f} us")
    ret = {"a2c-cartpole": returns_floor(5, N, True), "ppo-cartpole": returns_floor(32, N, False),
           "ppo-pendulum": returns_floor(1024, 4, False), "trpo-cartpole": returns_floor(512, 2, False)}
    pol_low, val_low, pol_ours, val_ours = trpo_update_floor()
    print(f"trpo-cartpole: per rollout of 1024 samples, policy step floor {pol_low:.1f} ms, pgrad {pol_ours:.1f} ms; "
          f"value fitting (40 Adam steps) floor {val_low:.1f} ms, pgrad {val_ours:.1f} ms")
    rows = [
        # row, updates and rollouts per 100k steps, (floor, stacked floor, pgrad) ms per update, collection key,
        # SB3 steps/s
        ("a2c-cartpole", STEPS / (N * 5), STEPS / (N * 5), a2c_update_floor(), "CartPole-v1/8", a["sb3_a2c"]),
        ("ppo-cartpole", STEPS / (N * 32) * 20, STEPS / (N * 32), ppo_update_floor(), "CartPole-v1/8", a["sb3_ppo"]),
        ("ppo-pendulum", STEPS / 4096 * 10 * 64, STEPS / 4096, ppo_update_floor(64, "Pendulum-v1"), "Pendulum-v1/4",
         a["sb3_ppo_pendulum"]),
        ("trpo-cartpole", STEPS / 1024, STEPS / 1024, (pol_low + val_low, pol_low + val_low, pol_ours + val_ours),
         "CartPole-v1/2", a["sb3_trpo"]),
    ]
    for name, n_upd, n_ro, (low, low_st, ours), key, sb3 in rows:
        vec_steps = STEPS / int(key.split("/")[1])
        c_low, c_ours = coll[key]
        r_low, r_ours = ret[name]
        print(f"{name}: value targets per rollout: floor {r_low * 1e3:.0f} us, pgrad {r_ours * 1e3:.0f} us")
        floor_s = (n_upd * low + vec_steps * c_low + n_ro * r_low) / 1e3
        floor_st = (n_upd * low_st + vec_steps * c_low + n_ro * r_low) / 1e3
        ours_s = (n_upd * ours + vec_steps * c_ours + n_ro * r_ours) / 1e3
        stacked = f" (stacked networks {low_st:.3f} ms)" if low_st != low else ""
        line = (f"{name}: update floor {low:.3f} ms{stacked}, pgrad {ours:.3f} ms ({ours / low:.2f}x); per 100k steps "
                f"({n_upd:,.0f} updates, {vec_steps:,.0f} vector steps, {n_ro:,.0f} rollouts) floor {floor_s:.1f} s"
                + (f" (stacked {floor_st:.1f} s)" if stacked else "") + f", pgrad's update, collection and targets {ours_s:.1f} s")
        if sb3:
            line += f"; SB3 {STEPS / sb3:.1f} s -> at the floor pgrad/SB3 would be {STEPS / sb3 / floor_s:.2f}x"
            if stacked:
                line += f" (stacked {STEPS / sb3 / floor_st:.2f}x)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
