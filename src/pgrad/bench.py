"""``pgrad bench``: pgrad against Stable-Baselines3 / sb3-contrib, side by side, at the same hyperparameters.

    pgrad bench                                   # every row, 3 repetitions (16-25 minutes on 2 cores)
    pgrad bench --rows ppo-cartpole sac-pendulum --reps 5 --json bench.json --markdown bench.md
    pgrad bench --quick                           # a smoke check: tiny budgets, 1 repetition (< 3 minutes)
    pgrad bench --contention                      # steps/s kept beside one busy process (see below)

Every (row, library, repetition) is a fresh subprocess with one torch thread (OMP/MKL threads 1). The libraries
alternate: pgrad first on even repetitions, SB3 first on odd ones, so drift in machine load hits both. Both get
the same seed in a repetition.

Steps/s is environment steps over the training loop:
- on-policy rows: SB3's ``learn()``; pgrad's loop from the start of training to its last progress row (its
  final evaluation, checkpoint and plot are excluded, as SB3 does none of them);
- off-policy rows: the learning phase only, from step ``learning_starts`` (the end of the uniform-random
  warm-up) to the end of training, on the wall clock and on the process's CPU clock (CPU time hardly moves
  when other processes share the machine, so the CPU ratio is the one to trust on a loaded machine).
The ratio is the median of the per-repetition ratios pgrad/SB3 (and their min-max). Final returns are of the
last policies, deterministic actions, fresh episodes with the same seeds for both libraries. Peak RSS is the
child's VmHWM at its end (training and evaluation).

Limits, printed once: each env's step rate with random actions and no learning (the row's number of envs, one
process), a single-thread float32 matmul peak, and for off-policy rows the FLOP rate pgrad's updates achieve
(FLOPs of one update counted by ``torch.utils.flop_counter.FlopCounterMode`` × updates / time inside update()).
Off-policy rows also get a matmul floor: every matmul of two updates (forward and backward) is recorded with its
shapes and strides, and the same calls are replayed alone on random tensors; their CPU time is what an update
costs with everything but its matmuls free. With pgrad's other time per step unchanged, that bounds the ratio
any float32 implementation on this BLAS could reach: cpu_ratio / (1 - u (1 - floor / update)), u the share of
CPU time inside updates.
Memory: the bytes pgrad's ReplayBuffer takes for 1M HalfCheetah-v5 transitions (nominal and measured RSS).

``--contention`` (``contention()``) runs the rows (default ppo-cartpole and sac-pendulum) with each library at its
own default threads instead (child spec ``"threads": "default"``: no OMP/MKL variables, no
``torch.set_num_threads(1)``; pgrad keeps ``Config.threads = 1``, SB3 torch's one thread per core), each run
once alone and once beside one CPU-bound process started just before the child and killed right after. It
reports the threads used, steps/s alone and busy, and the share kept (busy/alone, median of per-repetition
ratios), on the wall clock (where a collapse shows) and the CPU clock.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pgrad.errors import ConfigError, PgradError

ON, OFF = "on-policy", "off-policy"
TARGET = {ON: 3.0, OFF: 1.5}
INSTALL = "pip install stable-baselines3 sb3-contrib"
REPLAY_TARGET_MB = 200.0


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    """One benchmark: a pgrad algorithm and its SB3 peer on one env, at the same hyperparameters."""

    name: str
    algo: str
    env: str
    kind: str
    num_envs: int
    steps: int  # total env steps of the default budget (off-policy: learning_starts included)
    quick_steps: int
    sb3: Callable[[int, int], Any]  # (seed, learning_starts) -> SB3 model, not yet trained
    pgrad: dict[str, Any] = field(default_factory=dict)  # pgrad Config values (learning_starts set per run)
    learning_starts: int = 0
    quick_learning_starts: int = 0
    sb3_package: str = "stable_baselines3"
    extra_package: str | None = None  # e.g. mujoco, ale_py
    target: float | None = None  # the row's own speed target (else the kind's)
    evaluate: bool = True  # evaluate the trained policies (off for Atari: a full game costs more than the budget)

    @property
    def doc(self) -> str:
        return " ".join((self.sb3.__doc__ or "").split())

    def budget(self, quick: bool, steps: int | None) -> tuple[int, int]:
        """(total env steps, learning_starts) for one run."""
        ls = self.quick_learning_starts if quick else self.learning_starts
        total = steps if steps is not None else (self.quick_steps if quick else self.steps)
        if self.kind == OFF and total <= ls:
            raise ConfigError(
                f"--steps {total} leaves no learning steps for {self.name}: it must exceed "
                f"learning_starts={ls}"
            )
        return total, ls


def _vec(env: str, n: int, seed: int) -> Any:
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(env, n_envs=n, seed=seed)


def _sb3_a2c_cartpole(seed: int, ls: int) -> Any:
    """rl-baselines3-zoo A2C CartPole-v1: 8 envs, ent_coef 0; SB3 defaults otherwise: n_steps 5, lr 7e-4,
    gamma 0.99, gae_lambda 1, vf_coef 0.5, max_grad_norm 0.5, RMSprop (alpha 0.99, eps 1e-5), no advantage
    normalisation, 64x64 tanh actor-critic. Budget 100k steps (quick 4k)."""
    from stable_baselines3 import A2C

    return A2C("MlpPolicy", _vec("CartPole-v1", 8, seed), ent_coef=0.0, seed=seed, device="cpu", verbose=0)


def _sb3_ppo_cartpole(seed: int, ls: int) -> Any:
    """rl-baselines3-zoo PPO CartPole-v1: 8 envs, n_steps 32, batch_size 256, gae_lambda 0.8, gamma 0.98,
    n_epochs 20, ent_coef 0, lr 1e-3 and clip 0.2 both annealed linearly to 0; SB3 defaults otherwise: vf_coef
    0.5, max_grad_norm 0.5, advantages normalised, 64x64 tanh. Budget 50k steps (quick 4k)."""
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", _vec("CartPole-v1", 8, seed), n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
               n_epochs=20, ent_coef=0.0, learning_rate=lambda f: 1e-3 * f, clip_range=lambda f: 0.2 * f,
               seed=seed, device="cpu", verbose=0)  # fmt: skip


def _sb3_ppo_pendulum(seed: int, ls: int) -> Any:
    """rl-baselines3-zoo PPO Pendulum-v1 without its gSDE and VecNormalize (pgrad has no gSDE): 4 envs,
    n_steps 1024, gae_lambda 0.95, gamma 0.9, n_epochs 10, ent_coef 0, lr 1e-3, clip 0.2; SB3 defaults
    otherwise: batch_size 64, vf_coef 0.5, max_grad_norm 0.5, 64x64 tanh, log_std_init 0. Budget 32,768 steps
    (8 rollouts; quick 4,096 = 1 rollout)."""
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", _vec("Pendulum-v1", 4, seed), n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10,
               ent_coef=0.0, learning_rate=1e-3, clip_range=0.2, seed=seed, device="cpu", verbose=0)  # fmt: skip


def _sb3_trpo_cartpole(seed: int, ls: int) -> Any:
    """rl-baselines3-zoo TRPO CartPole-v1: 2 envs, n_steps 512, batch_size 512 (value minibatch), cg_damping 1e-3,
    gae_lambda 0.98, gamma 0.99, lr 1e-3 (value function), n_critic_updates 20; sb3-contrib defaults otherwise:
    target_kl 0.01, cg_max_steps 15, line search 0.8 x 10, advantages normalised, 64x64 tanh policy and value.
    Budget 40,960 steps (quick 4,096)."""
    from sb3_contrib import TRPO

    return TRPO("MlpPolicy", _vec("CartPole-v1", 2, seed), n_steps=512, batch_size=512, cg_damping=1e-3,
                gae_lambda=0.98, gamma=0.99, learning_rate=1e-3, n_critic_updates=20, seed=seed, device="cpu",
                verbose=0)  # fmt: skip


_DPG_ZOO = {"gamma": 0.98, "buffer_size": 200_000, "train_freq": 1, "gradient_steps": 1, "learning_rate": 1e-3,
            "batch_size": 256, "tau": 0.005, "policy_kwargs": {"net_arch": [400, 300]}}  # fmt: skip


def _sb3_dpg(cls_name: str, seed: int, ls: int, **extra: Any) -> Any:
    import gymnasium as gym
    import numpy as np
    import stable_baselines3
    from stable_baselines3.common.noise import NormalActionNoise

    cls = getattr(stable_baselines3, cls_name)
    return cls("MlpPolicy", gym.make("Pendulum-v1"), learning_starts=ls, seed=seed, device="cpu", verbose=0,
               action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), **_DPG_ZOO, **extra)  # fmt: skip


def _sb3_ddpg_pendulum(seed: int, ls: int) -> Any:
    """rl-baselines3-zoo DDPG Pendulum-v1: gamma 0.98, buffer 200k, learning_starts 10000, Gaussian action noise
    σ 0.1, train_freq 1, gradient_steps 1, lr 1e-3 (actor and critic), 400x300 ReLU; SB3 defaults otherwise:
    batch_size 256, tau 0.005, one env. Budget 12k steps = 10k random + 2k learning (quick 500 + 500)."""
    return _sb3_dpg("DDPG", seed, ls)


def _sb3_td3_pendulum(seed: int, ls: int) -> Any:
    """rl-baselines3-zoo TD3 Pendulum-v1: as DDPG (gamma 0.98, buffer 200k, learning_starts 10000, Gaussian σ 0.1,
    lr 1e-3, 400x300 ReLU, batch 256, tau 0.005) plus SB3's TD3 defaults: 2 critics, policy_delay 2,
    target_policy_noise 0.2, target_noise_clip 0.5. Budget 12k steps = 10k random + 2k learning (quick 500 +
    500)."""
    return _sb3_dpg("TD3", seed, ls, policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5)


def _sb3_sac_pendulum(seed: int, ls: int) -> Any:
    """rl-baselines3-zoo SAC Pendulum-v1: lr 1e-3; SB3 defaults otherwise: learning_starts 100, buffer 1e6,
    batch 256, tau 0.005, gamma 0.99, train_freq 1, gradient_steps 1, ent_coef 'auto' (initial α 1, target
    entropy -|A|), 256x256 ReLU, one env. Budget 2,100 steps = 100 random + 2k learning (quick 100 + 500)."""
    import gymnasium as gym
    from stable_baselines3 import SAC

    return SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_rate=1e-3, learning_starts=ls, seed=seed, device="cpu",
               verbose=0)  # fmt: skip


def _sb3_sac_halfcheetah(seed: int, ls: int) -> Any:
    """SAC HalfCheetah-v5 at the SAC paper's / rl-zoo's values (lr 3e-4, buffer 1e6, batch 256, tau 0.005,
    gamma 0.99, train_freq 1, gradient_steps 1, ent_coef 'auto', 256x256 ReLU, one env) with a short budget:
    learning_starts 1000 instead of the zoo's 10000 so the budget is mostly learning. Budget 3k steps = 1k
    random + 2k learning (quick 300 + 300); returns at this budget are far from trained."""
    import gymnasium as gym
    from stable_baselines3 import SAC

    return SAC("MlpPolicy", gym.make("HalfCheetah-v5"), learning_rate=3e-4, learning_starts=ls, seed=seed,
               device="cpu", verbose=0)  # fmt: skip


# fmt: off
# pgrad Config values of each row (the SB3 side is in the row's _sb3_* builder, whose docstring states both).
def _sb3_ppo_atari(seed: int, ls: int) -> Any:
    """PPO Atari as SB3's CnnPolicy: BreakoutNoFrameskip-v4 through SB3's AtariWrapper and a 4-frame stack, 8 envs,
    n_steps 128, n_epochs 4, batch_size 256, lr 2.5e-4, clip 0.1, ent_coef 0.01, vf_coef 0.5, max_grad_norm 0.5,
    gae_lambda 0.95, gamma 0.99; the Nature CNN shared by linear π and V heads (net_arch []). Budget 10,240 steps
    (10 rollouts; quick 2,048); no evaluation (one full game costs more than the budget)."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=8, seed=seed), 4)
    return PPO("CnnPolicy", env, n_steps=128, n_epochs=4, batch_size=256, learning_rate=2.5e-4, clip_range=0.1,
               ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, gae_lambda=0.95, gamma=0.99, seed=seed, device="cpu",
               verbose=0)  # fmt: skip


_ON_COMMON = {"hidden": (64, 64), "activation": "tanh"}
_DPG_PGRAD = {"gamma": 0.98, "buffer_size": 200_000, "noise_sigma": 0.1, "train_freq": 1, "gradient_steps": 1,
              "lr": 1e-3, "hidden": (400, 300), "activation": "relu", "batch_size": 256, "tau": 0.005}
_SAC_PGRAD = {"version": "auto", "buffer_size": 1_000_000, "batch_size": 256, "tau": 0.005, "gamma": 0.99,
              "train_freq": 1, "gradient_steps": 1, "alpha_init": 1.0, "hidden": (256, 256), "activation": "relu"}

ROWS: dict[str, Row] = {r.name: r for r in [
    Row("a2c-cartpole", "a2c", "CartPole-v1", ON, num_envs=8, steps=100_000, quick_steps=4_000,
        sb3=_sb3_a2c_cartpole, pgrad={
            "n_steps": 5, "lr": 7e-4, "gamma": 0.99, "lam": 1.0, "ent_coef": 0.0, "vf_coef": 0.5,
            "max_grad_norm": 0.5, "optimizer": "rmsprop", "rms_alpha": 0.99, "opt_eps": 1e-5, "norm_adv": False,
            **_ON_COMMON}),
    Row("ppo-cartpole", "ppo", "CartPole-v1", ON, num_envs=8, steps=50_000, quick_steps=4_096,
        sb3=_sb3_ppo_cartpole, pgrad={
            "n_steps": 32, "batch_size": 256, "lam": 0.8, "gamma": 0.98, "epochs": 20, "ent_coef": 0.0, "lr": 1e-3,
            "anneal_lr": True, "clip_eps": 0.2, "anneal_clip": True, "vf_coef": 0.5, "max_grad_norm": 0.5,
            "norm_adv": True, **_ON_COMMON}),
    Row("ppo-pendulum", "ppo", "Pendulum-v1", ON, num_envs=4, steps=32_768, quick_steps=4_096,
        sb3=_sb3_ppo_pendulum, pgrad={
            "n_steps": 1024, "batch_size": 64, "lam": 0.95, "gamma": 0.9, "epochs": 10, "ent_coef": 0.0, "lr": 1e-3,
            "anneal_lr": False, "clip_eps": 0.2, "anneal_clip": False, "vf_coef": 0.5, "max_grad_norm": 0.5,
            "norm_adv": True, "log_std_init": 0.0, **_ON_COMMON}),
    Row("ppo-atari", "ppo", "BreakoutNoFrameskip-v4", ON, num_envs=8, steps=10_240, quick_steps=2_048,
        sb3=_sb3_ppo_atari, extra_package="ale_py", target=1.5, evaluate=False, pgrad={
            "n_steps": 128, "batch_size": 256, "epochs": 4, "lr": 2.5e-4, "anneal_lr": False, "clip_eps": 0.1,
            "anneal_clip": False, "gamma": 0.99, "lam": 0.95, "vf_coef": 0.5, "ent_coef": 0.01, "max_grad_norm": 0.5,
            "norm_adv": True, "hidden": (), "activation": "relu", "net": "nature"}),
    Row("trpo-cartpole", "trpo", "CartPole-v1", ON, num_envs=2, steps=40_960, quick_steps=4_096,
        sb3=_sb3_trpo_cartpole, sb3_package="sb3_contrib", pgrad={
            "n_steps": 512, "batch_size": 512, "cg_damping": 1e-3, "lam": 0.98, "gamma": 0.99, "lr": 1e-3,
            "vf_epochs": 20, "max_kl": 0.01, "cg_iters": 15, "ls_shrink": 0.8, "ls_max_iter": 10, "norm_adv": True,
            **_ON_COMMON}),
    Row("ddpg-pendulum", "ddpg", "Pendulum-v1", OFF, num_envs=1, steps=12_000, quick_steps=1_000,
        learning_starts=10_000, quick_learning_starts=500, sb3=_sb3_ddpg_pendulum,
        pgrad={"noise": "gaussian", **_DPG_PGRAD}),
    Row("td3-pendulum", "td3", "Pendulum-v1", OFF, num_envs=1, steps=12_000, quick_steps=1_000,
        learning_starts=10_000, quick_learning_starts=500, sb3=_sb3_td3_pendulum,
        pgrad={"n_critics": 2, "policy_delay": 2, "target_noise": 0.2, "target_noise_clip": 0.5, **_DPG_PGRAD}),
    Row("sac-pendulum", "sac", "Pendulum-v1", OFF, num_envs=1, steps=2_100, quick_steps=600,
        learning_starts=100, quick_learning_starts=100, sb3=_sb3_sac_pendulum, pgrad={"lr": 1e-3, **_SAC_PGRAD}),
    Row("sac-halfcheetah", "sac", "HalfCheetah-v5", OFF, num_envs=1, steps=3_000, quick_steps=600,
        learning_starts=1_000, quick_learning_starts=300, sb3=_sb3_sac_halfcheetah, extra_package="mujoco",
        pgrad={"lr": 3e-4, **_SAC_PGRAD}),
]}
# fmt: on


def select_rows(names: list[str] | None) -> list[Row]:
    """The rows named (all when None), in the order given; a one-line error for an unknown name."""
    if not names:
        return list(ROWS.values())
    bad = [n for n in names if n not in ROWS]
    if bad:
        raise ConfigError(
            f"unknown bench row{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}; rows: "
            f"{', '.join(ROWS)}"
        )
    return [ROWS[n] for n in dict.fromkeys(names)]


def check_installed(rows: list[Row]) -> None:
    """A one-line error when SB3 / sb3-contrib (or MuJoCo for a MuJoCo row) is missing."""
    for pkg in sorted({r.sb3_package for r in rows} | {"stable_baselines3"}):
        if importlib.util.find_spec(pkg) is None:
            raise PgradError(
                f"pgrad bench needs Stable-Baselines3 and sb3-contrib: {INSTALL} "
                f"(or pip install 'pgrad[bench]')"
            )
    for r in rows:
        if r.extra_package and importlib.util.find_spec(r.extra_package) is None:
            extra = "pgrad[atari]" if r.extra_package == "ale_py" else "gymnasium[mujoco]"
            raise PgradError(f"row {r.name} needs {r.extra_package}: pip install '{extra}' (or leave it out with --rows)")


# ----------------------------------------------------------------------------- child processes
def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def best_cpu_ms(f: Callable[[], Any], n: int, rounds: int = 5) -> float:
    """The best mean CPU ms per call of ``f`` over ``rounds`` of ``n`` calls, after max(n // 3, 10) warm-up calls:
    the process clock, so other processes on the machine do not count (benchmarks/*_floor.py)."""
    for _ in range(max(n // 3, 10)):
        f()
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(n):
            f()
        best = min(best, (time.process_time() - t) / n * 1e3)
    return best


def alternate(
    runs: dict[str, Callable[[int], dict[str, Any]]], reps: int, key: str, say: Callable[[str], None] = print
) -> dict[str, list[float]]:
    """Each run once per repetition (called with the repetition), the order rotated by one each time so drift in
    machine load hits all of them; ``key`` of each result, per run (benchmarks/*_floor.py --loop)."""
    names = list(runs)
    out: dict[str, list[float]] = {k: [] for k in names}
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            out[name].append(runs[name](rep)[key])
            say(f"  rep {rep} {name}: {out[name][-1]:,.1f} steps/s")
    return out


def script_child(path: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``python path --loop-child JSON`` as a fresh one-thread process; its last stdout line, parsed."""
    out = subprocess.run(
        [sys.executable, path, "--loop-child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"),
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ratios_line(sps: dict[str, list[float]], ref: str = "sb3") -> str:
    """Median steps/s per run, and each run's per-repetition ratios to ``ref``, sorted."""
    med = ", ".join(f"{k} {statistics.median(v):,.1f}" for k, v in sps.items())
    per = "; ".join(
        f"{k} " + ", ".join(f"{x:.2f}" for x in sorted(a / b for a, b in zip(v, sps[ref])))
        for k, v in sps.items()
        if k != ref
    )
    return f"steps/s, median of {len(sps[ref])}: {med}; over {ref} per repetition: {per}"


def rss_mib() -> float:
    """This process's resident memory now (VmRSS), MiB; Linux only (benchmarks/soak.py samples it too)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def _window(marks: list[tuple[int, float, float]], start_step: int) -> dict[str, float]:
    """Steps, wall seconds and CPU seconds from the mark at ``start_step`` (or the first one) to the last."""
    first = next((m for m in marks if m[0] >= start_step), marks[0])
    last = marks[-1]
    steps, wall, cpu = last[0] - first[0], last[1] - first[1], last[2] - first[2]
    return {
        "window_steps": steps,
        "window_start": first[0],
        "wall_s": wall,
        "cpu_s": cpu,
        "sps": steps / max(wall, 1e-9),
        "cpu_sps": steps / max(cpu, 1e-9),
    }


def _eval_sb3(model: Any, env_id: str, episodes: int, seed: int) -> list[float]:
    import gymnasium as gym

    env = gym.make(env_id)
    rets = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            a, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(a)
            total += float(r)
            done = term or trunc
        rets.append(total)
    return rets


def _child_sb3(row: Row, seed: int, steps: int, ls: int, episodes: int) -> dict[str, Any]:
    from stable_baselines3.common.callbacks import BaseCallback

    marks: list[tuple[int, float, float]] = []

    class Mark(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == ls:
                marks.append((ls, time.perf_counter(), time.process_time()))
            return True

    model = row.sb3(seed, ls)
    marks.append((0, time.perf_counter(), time.process_time()))
    model.learn(steps, callback=Mark() if row.kind == OFF else None)
    marks.append((model.num_timesteps, time.perf_counter(), time.process_time()))
    res = _window(marks, ls if row.kind == OFF else 0)
    res["returns"] = _eval_sb3(model, row.env, episodes, 10_000 + seed) if row.evaluate else []
    return res


def _matmul_recorder() -> Any:
    """A TorchDispatchMode that records each mm/addmm/bmm/baddbmm call (shapes, strides, scalars)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    ops = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default}

    class Recorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[Any, list[Any], dict[str, Any]]] = []

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if func in ops:
                spec = [
                    (tuple(a.shape), a.stride(), a.dtype) if isinstance(a, torch.Tensor) else a for a in args
                ]
                self.calls.append((func, spec, dict(kwargs)))
            return func(*args, **kwargs)

    return Recorder()


def matmul_floor_ms(
    calls: list[tuple[Any, list[Any], dict[str, Any]]], updates: int, reps: int = 30
) -> float:
    """CPU milliseconds per update of the recorded matmuls, replayed alone at the same shapes and strides."""
    import torch

    def make(a: Any) -> Any:
        if isinstance(a, tuple) and len(a) == 3 and isinstance(a[2], torch.dtype):
            shape, stride, dtype = a
            n = 1 + sum((d - 1) * st for d, st in zip(shape, stride)) if all(shape) else 0
            return torch.randn(n, dtype=dtype).as_strided(shape, stride)  # expanded inputs keep stride 0
        return a

    made = [(f, [make(a) for a in spec], kw) for f, spec, kw in calls]
    best = math.inf
    for r in range(reps + 3):
        c = time.process_time()
        for f, args, kw in made:
            f(*args, **kw)
        if r >= 3:
            best = min(best, time.process_time() - c)
    return best / updates * 1e3


def _child_pgrad(
    row: Row, seed: int, steps: int, ls: int, episodes: int, one_thread: bool = True
) -> dict[str, Any]:
    from torch.utils.flop_counter import FlopCounterMode

    import pgrad
    import pgrad.run

    marks: list[tuple[int, float, float]] = []
    run_cls = pgrad.run.Run
    orig_init, orig_log = run_cls.__init__, run_cls._log_row

    def init(self: Any, *a: Any, **k: Any) -> None:
        orig_init(self, *a, **k)
        marks.append((self.step, time.perf_counter(), time.process_time()))

    def log_row(self: Any) -> None:
        marks.append((self.step, time.perf_counter(), time.process_time()))
        orig_log(self)

    run_cls.__init__, run_cls._log_row = init, log_row  # type: ignore[method-assign]
    kw = dict(
        row.pgrad,
        num_envs=row.num_envs,
        eval_every=0,
        eval_episodes=1,
        checkpoint_every=0,
        select="last",
        progress=False,
        tensorboard=False,
    )
    if one_thread:
        kw["threads"] = 1  # else Config's default
    upd: dict[str, float] = {"n": 0, "wall": 0.0, "cpu": 0.0, "flops": 0.0, "counted": 0}
    recorder = _matmul_recorder()
    if row.kind == OFF:
        kw.update(learning_starts=ls, log_every=math.gcd(ls, steps))
        module = pgrad.ALGOS[row.algo]
        orig_update = module.update

        def update(*a: Any, **k: Any) -> Any:
            if upd["counted"] < 2:  # FLOPs of two updates (TD3: one with and one without the actor step)
                with FlopCounterMode(display=False) as fc, recorder:
                    out = orig_update(*a, **k)
                upd["flops"] += fc.get_total_flops()
                upd["counted"] += 1
                return out
            t, c = time.perf_counter(), time.process_time()
            out = orig_update(*a, **k)
            upd["wall"] += time.perf_counter() - t
            upd["cpu"] += time.process_time() - c
            upd["n"] += 1
            return out

        module.update = update
    with tempfile.TemporaryDirectory() as d:
        agent = pgrad.train(row.algo, row.env, steps=steps, seed=seed, out=f"{d}/run", **kw)
        res = _window(marks, ls if row.kind == OFF else 0)
        res["returns"] = [float(x) for x in agent.evaluate(episodes=episodes, seed=10_000 + seed).returns] \
            if row.evaluate else []
    if row.kind == OFF and upd["counted"]:
        res["update"] = {
            "flops_per_update": upd["flops"] / upd["counted"],
            "updates_timed": upd["n"],
            "update_wall_s": upd["wall"],
            "update_cpu_s": upd["cpu"],
            "matmul_calls": len(recorder.calls) / upd["counted"],
            "matmul_floor_ms": matmul_floor_ms(recorder.calls, int(upd["counted"])),
        }
    return res


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    one_thread = spec.get("threads") != "default"  # "default": each library's own thread setting
    if one_thread:
        torch.set_num_threads(1)
    torch.optim.Adam(
        [torch.nn.Parameter(torch.zeros(1))]
    )  # first optimiser imports torch._dynamo: pay it here
    if spec["lib"] == "limits":
        return _child_limits(spec)
    if spec["lib"] == "memory":
        return _child_memory()
    row = ROWS[spec["row"]]
    args = (row, spec["seed"], spec["steps"], spec["ls"], spec["episodes"])
    res = _child_pgrad(*args, one_thread=one_thread) if spec["lib"] == "pgrad" else _child_sb3(*args)
    res["torch_threads"] = torch.get_num_threads()
    res["peak_rss_mib"] = _peak_rss_mib()
    return res


def _child_limits(spec: dict[str, Any]) -> dict[str, Any]:
    """Env-only step rates (random actions, no learning) and a single-thread float32 matmul peak."""
    import gymnasium as gym
    import torch

    from pgrad.envs import env_factory

    envs = {}
    for env_id, n in spec["envs"]:  # the env pgrad trains on (Atari: its preprocessing)
        vec = gym.vector.SyncVectorEnv([env_factory(env_id)[0]] * n)
        vec.reset(seed=0)
        vec.action_space.seed(0)
        k, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < spec["seconds"]:
            for _ in range(50):
                vec.step(vec.action_space.sample())
            k += 50
        envs[f"{env_id} x{n}"] = k * n / (time.perf_counter() - t0)
        vec.close()
    size = 1024
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = math.inf
    for _ in range(10):  # the CPU clock: what another process takes from this core does not count
        c = time.process_time()
        for _ in range(4):
            torch.mm(a, b)
        best = min(best, (time.process_time() - c) / 4)
    return {"env_sps": envs, "matmul_gflops": 2 * size**3 / best / 1e9, "matmul_size": size}


def _child_memory() -> dict[str, Any]:
    """pgrad's ReplayBuffer at 1M HalfCheetah-v5 transitions (obs 17, action 6), filled: nominal and RSS bytes."""
    from pgrad.data.replay import ReplayBuffer

    before = rss_mib()
    buf = ReplayBuffer(1_000_000, 1, (17,), (6,))
    for t in buf.fields.values():
        t.fill_(1)  # touch every page: torch.zeros memory is only resident once written
    after = rss_mib()
    fields = {k: t.numel() * t.element_size() for k, t in buf.fields.items()}
    nominal = sum(fields.values())
    return {
        "capacity": 1_000_000,
        "nominal_bytes": nominal,
        "rss_delta_mib": after - before,
        "bytes_per_transition": nominal / 1_000_000,
        "fields": fields,
    }


def _child_env(spec: dict[str, Any]) -> dict[str, str]:
    """The child's environment: OMP/MKL threads 1, or with "threads": "default" neither variable (torch's own)."""
    if spec.get("threads") == "default":
        return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "pgrad.bench", "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=_child_env(spec),
        check=False,
    )
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["(no output)"]
        sys.stderr.write(out.stderr[-4000:])
        raise PgradError(f"bench child {spec.get('row', spec['lib'])}/{spec['lib']} failed: {tail[0]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the bench
def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def run_row(
    row: Row,
    reps: int,
    quick: bool = False,
    steps: int | None = None,
    episodes: int | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run one row ``reps`` times per library, alternating the order; per-run results and their summary."""
    total, ls = row.budget(quick, steps)
    episodes = episodes if episodes is not None else (3 if quick else 10)
    runs: dict[str, list[dict[str, Any]]] = {"pgrad": [], "sb3": []}
    for rep in range(reps):
        for lib in ["pgrad", "sb3"] if rep % 2 == 0 else ["sb3", "pgrad"]:
            r = _spawn(
                {"lib": lib, "row": row.name, "seed": rep, "steps": total, "ls": ls, "episodes": episodes}
            )
            r["return"] = statistics.fmean(r["returns"]) if r["returns"] else math.nan
            runs[lib].append(r)
            cpu = f" (CPU clock {r['cpu_sps']:,.0f})" if row.kind == OFF else ""
            say(
                f"  {row.name} rep {rep} {lib:5s}: {r['sps']:9,.0f} steps/s{cpu}, return {r['return']:8.1f}, "
                f"peak RSS {r['peak_rss_mib']:.0f} MiB"
            )
    p, s = runs["pgrad"], runs["sb3"]
    ratios = [a["sps"] / b["sps"] for a, b in zip(p, s)]
    cpu_ratios = [a["cpu_sps"] / b["cpu_sps"] for a, b in zip(p, s)]
    summary: dict[str, Any] = {
        "row": row.name,
        "algo": row.algo,
        "env": row.env,
        "kind": row.kind,
        "num_envs": row.num_envs,
        "steps": total,
        "learning_starts": ls,
        "window_steps": p[0]["window_steps"],
        "eval_episodes": episodes,
        "hyperparameters": row.doc,
        "target": row_target(row),
        "sps": {lib: _stats([r["sps"] for r in runs[lib]]) for lib in runs},
        "cpu_sps": {lib: _stats([r["cpu_sps"] for r in runs[lib]]) for lib in runs},
        "ratio": _stats(ratios),
        "cpu_ratio": _stats(cpu_ratios),
        "return": {lib: _stats([r["return"] for r in runs[lib]]) for lib in runs},
        "peak_rss_mib": {lib: _stats([r["peak_rss_mib"] for r in runs[lib]]) for lib in runs},
        "runs": runs,
    }
    summary["met"] = summary["ratio"]["median"] >= row_target(row)
    summary["cpu_met"] = summary["cpu_ratio"]["median"] >= row_target(row)
    ups = [r["update"] for r in p if "update" in r and r["update"]["updates_timed"]]
    if ups:
        summary["update_gflops"] = {
            "flops_per_update": ups[0]["flops_per_update"],
            "cpu": statistics.median(
                u["flops_per_update"] * u["updates_timed"] / u["update_cpu_s"] / 1e9 for u in ups
            ),
            "wall": statistics.median(
                u["flops_per_update"] * u["updates_timed"] / u["update_wall_s"] / 1e9 for u in ups
            ),
            "update_share_of_cpu": statistics.median(u["update_cpu_s"] / r["cpu_s"] for u, r in zip(ups, p)),
        }
        if all("matmul_floor_ms" in u for u in ups):
            g = summary["update_gflops"]
            g["update_ms"] = statistics.median(1e3 * u["update_cpu_s"] / u["updates_timed"] for u in ups)
            g["matmul_floor_ms"] = statistics.median(u["matmul_floor_ms"] for u in ups)
            g["matmul_calls"] = ups[0]["matmul_calls"]
            share = g["update_share_of_cpu"]
            g["ratio_bound"] = summary["cpu_ratio"]["median"] / (
                1 - share * (1 - g["matmul_floor_ms"] / g["update_ms"])
            )
    return summary


def row_target(row: Row) -> float:
    return row.target if row.target is not None else TARGET[row.kind]


def bench(
    rows: list[str] | None = None,
    reps: int = 3,
    quick: bool = False,
    steps: int | None = None,
    episodes: int | None = None,
    limits: bool = True,
    memory: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the rows (all when None) and the limits; returns everything the table, JSON and markdown show."""
    chosen = _prepare(rows, reps, quick, steps)
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "machine": _machine(),
        "reps": reps,
        "quick": quick,
        "rows": [],
    }
    out["versions"] = _versions()
    say(
        f"pgrad bench: {len(chosen)} rows x {reps} repetitions x 2 libraries, one torch thread each, "
        f"alternating order; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    if limits:
        envs = sorted({(r.env, r.num_envs) for r in chosen})
        out["limits"] = _spawn({"lib": "limits", "envs": envs, "seconds": 0.3 if quick else 1.5})
    if memory:
        out["memory"] = _spawn({"lib": "memory"})
    for r in chosen:
        say(f"{r.name}: {r.algo} {r.env}, {r.budget(quick, steps)[0]:,} steps")
        try:
            out["rows"].append(run_row(r, reps, quick, steps, episodes, say))
        except PgradError as e:
            # one failed row (its child's traceback is on stderr) does not lose the others
            say(f"  {r.name}: {e}")
            out["rows"].append({"row": r.name, "kind": r.kind, "error": str(e)})
    out["machine"]["load_end"] = os.getloadavg()[0]
    out["seconds"] = time.perf_counter() - t0
    return out


def _prepare(rows: list[str] | None, reps: int, quick: bool, steps: int | None) -> list[Row]:
    """The chosen rows, every argument and budget error raised before anything runs."""
    if reps < 1:
        raise ConfigError(f"--reps must be at least 1, got {reps}")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be positive, got {steps}")
    chosen = select_rows(rows)
    check_installed(chosen)
    for r in chosen:
        r.budget(quick, steps)
    return chosen


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_start": os.getloadavg()[0],
    }


# ----------------------------------------------------------------------------- contention
CONTENTION_ROWS = ["ppo-cartpole", "sac-pendulum"]
BUSY = "while True: pass"  # one CPU-bound process: python -c BUSY
CONDS = ("alone", "busy")


def _spawn_busy(spec: dict[str, Any]) -> dict[str, Any]:
    """``_spawn(spec)`` beside one CPU-bound process, started just before the child and killed right after."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        return _spawn(spec)
    finally:
        busy.kill()
        busy.wait()


def contention_row(
    row: Row,
    reps: int,
    quick: bool = False,
    steps: int | None = None,
    episodes: int = 1,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Each library at its own default threads, alone and beside a busy process, ``reps`` times (orders
    alternating); per-run results and their summary."""
    total, ls = row.budget(quick, steps)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        lib: {c: [] for c in CONDS} for lib in ("pgrad", "sb3")
    }
    for rep in range(reps):
        for lib in ["pgrad", "sb3"] if rep % 2 == 0 else ["sb3", "pgrad"]:
            for cond in CONDS if rep % 2 == 0 else CONDS[::-1]:
                spec = {
                    "lib": lib,
                    "row": row.name,
                    "seed": rep,
                    "steps": total,
                    "ls": ls,
                    "episodes": episodes,
                    "threads": "default",
                }
                r = _spawn_busy(spec) if cond == "busy" else _spawn(spec)
                runs[lib][cond].append(r)
                say(
                    f"  {row.name} rep {rep} {lib:5s} {cond:5s}: {r['sps']:9,.0f} steps/s "
                    f"(CPU clock {r['cpu_sps']:,.0f}), torch threads {r['torch_threads']}"
                )

    def per_rep(key: str, a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, float]:
        return _stats([x[key] / y[key] for x, y in zip(a, b)])

    return {
        "row": row.name,
        "algo": row.algo,
        "env": row.env,
        "kind": row.kind,
        "steps": total,
        "learning_starts": ls,
        "window_steps": runs["pgrad"]["alone"][0]["window_steps"],
        "threads": {lib: sorted({r["torch_threads"] for c in CONDS for r in runs[lib][c]}) for lib in runs},
        "sps": {lib: {c: _stats([r["sps"] for r in runs[lib][c]]) for c in CONDS} for lib in runs},
        "cpu_sps": {lib: {c: _stats([r["cpu_sps"] for r in runs[lib][c]]) for c in CONDS} for lib in runs},
        "retained": {lib: per_rep("sps", runs[lib]["busy"], runs[lib]["alone"]) for lib in runs},
        "cpu_retained": {lib: per_rep("cpu_sps", runs[lib]["busy"], runs[lib]["alone"]) for lib in runs},
        "ratio": {c: per_rep("sps", runs["pgrad"][c], runs["sb3"][c]) for c in CONDS},
        "runs": runs,
    }


def contention(
    rows: list[str] | None = None,
    reps: int = 3,
    quick: bool = False,
    steps: int | None = None,
    episodes: int | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Steps/s of each library at its own default torch threads, alone and beside one busy process, for the
    rows (default ``CONTENTION_ROWS``); returns everything its table, JSON and markdown show."""
    chosen = _prepare(rows or CONTENTION_ROWS, reps, quick, steps)
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "machine": _machine(),
        "reps": reps,
        "quick": quick,
        "busy": f"python -c {BUSY!r}",
        "rows": [],
    }
    out["versions"] = _versions()
    say(
        f"pgrad bench --contention: {len(chosen)} rows x {reps} repetitions x 2 libraries x alone/busy, "
        f"each library at its default torch threads; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    for r in chosen:
        say(f"{r.name}: {r.algo} {r.env}, {r.budget(quick, steps)[0]:,} steps")
        try:
            out["rows"].append(contention_row(r, reps, quick, steps, episodes or 1, say))
        except PgradError as e:
            say(f"  {r.name}: {e}")
            out["rows"].append({"row": r.name, "kind": r.kind, "error": str(e)})
    out["machine"]["load_end"] = os.getloadavg()[0]
    out["seconds"] = time.perf_counter() - t0
    return out


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    vs = {}
    for pkg in ("pgrad", "torch", "gymnasium", "stable-baselines3", "sb3-contrib"):
        try:
            vs[pkg] = version(pkg)
        except PackageNotFoundError:
            vs[pkg] = "-"
    return vs


# ----------------------------------------------------------------------------- output
def _spread(s: dict[str, float], digits: int = 0, suffix: str = "") -> str:
    f = f",.{digits}f"
    if s["min"] == s["max"]:
        return f"{s['median']:{f}}{suffix}"
    return f"{s['median']:{f}}{suffix} [{s['min']:{f}}–{s['max']:{f}}]"


COLUMNS = [
    "row",
    "steps timed",
    "pgrad steps/s",
    "SB3 steps/s",
    "pgrad/SB3",
    "target",
    "met",
    "pgrad CPU steps/s",
    "SB3 CPU steps/s",
    "CPU ratio",
    "pgrad return",
    "SB3 return",
    "pgrad RSS MiB",
    "SB3 RSS MiB",
]


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for s in result["rows"]:
        if "error" in s:
            rows.append([s["row"], f"failed: {s['error']}"] + ["-"] * (len(COLUMNS) - 2))
            continue
        off = s["kind"] == OFF
        met = "yes" if s["met"] else "no"
        rows.append(
            [
                s["row"],
                f"{s['window_steps']:,}" + (f" (after {s['learning_starts']:,})" if off else ""),
                _spread(s["sps"]["pgrad"]),
                _spread(s["sps"]["sb3"]),
                _spread(s["ratio"], 2, "x"),
                f"≥{s['target']:g}x",
                met + (f" (CPU: {'yes' if s['cpu_met'] else 'no'})" if off else ""),
                _spread(s["cpu_sps"]["pgrad"]) if off else "-",
                _spread(s["cpu_sps"]["sb3"]) if off else "-",
                _spread(s["cpu_ratio"], 2, "x") if off else "-",
                _spread(s["return"]["pgrad"], 1),
                _spread(s["return"]["sb3"], 1),
                f"{s['peak_rss_mib']['pgrad']['median']:.0f}",
                f"{s['peak_rss_mib']['sb3']['median']:.0f}",
            ]
        )
    return rows


def limits_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    lim = result.get("limits")
    if lim:
        lines.append(
            "Env-only step rate (sync vector env of the row's envs, random actions, no learning): "
            + "; ".join(f"{k}: {v:,.0f} steps/s" for k, v in lim["env_sps"].items())
        )
        lines.append(
            f"Single-thread float32 matmul peak (torch.mm {lim['matmul_size']}x{lim['matmul_size']}, CPU clock): "
            f"{lim['matmul_gflops']:.1f} GFLOP/s"
        )
    for s in result["rows"]:
        g = s.get("update_gflops")
        if g:
            pct = f" = {100 * g['cpu'] / lim['matmul_gflops']:.0f}% of peak" if lim else ""
            lines.append(
                f"{s['row']}: pgrad updates {g['flops_per_update'] / 1e6:.1f} MFLOP each, "
                f"{g['cpu']:.2f} GFLOP/s on the CPU clock{pct} ({g['wall']:.2f} wall); updates take "
                f"{100 * g['update_share_of_cpu']:.0f}% of the learning phase's CPU time"
            )
            if "matmul_floor_ms" in g:
                lines.append(
                    f"{s['row']}: one update {g['update_ms']:.2f} ms CPU; its {g['matmul_calls']:.0f} matmuls "
                    f"replayed alone {g['matmul_floor_ms']:.2f} ms ({100 * g['matmul_floor_ms'] / g['update_ms']:.0f}%)"
                    f" -> with all else in the updates free, pgrad/SB3 (CPU clock) <= {g['ratio_bound']:.2f}x "
                    f"(target {s['target']:.1f}x)"
                )
    mem = result.get("memory")
    if mem:
        mb = mem["nominal_bytes"] / 1e6
        fields = ", ".join(f"{k} {v / 1e6:.0f}" for k, v in mem["fields"].items())
        verdict = "meets" if mb < REPLAY_TARGET_MB else "misses"
        lines.append(
            f"Replay memory, 1M HalfCheetah-v5 transitions (obs 17, action 6, float32): {mb:.1f} MB "
            f"nominal ({mem['bytes_per_transition']:.0f} B/transition: {fields} MB), "
            f"{mem['rss_delta_mib'] * 1.048576:.1f} MB resident after filling; {verdict} the "
            f"{REPLAY_TARGET_MB:.0f} MB target"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    return _markdown(
        result,
        "pgrad bench",
        "one torch thread per process",
        COLUMNS,
        table_rows(result),
        limits_lines(result),
    )


def _markdown(
    result: dict[str, Any],
    command: str,
    setting: str,
    columns: list[str],
    rows: list[list[str]],
    notes: list[str],
) -> str:
    """A heading line (command, repetitions, machine, load, versions), the table, then the notes as a list."""
    m, n = result["machine"], result["reps"]
    head = (
        f"{command}{' --quick' if result['quick'] else ''}, {n} repetition{'s' if n > 1 else ''}, "
        f"{m['cpus']} CPUs ({m['processor']}), {setting}, load average {m['load_start']:.1f} → "
        f"{m.get('load_end', float('nan')):.1f}; versions: "
        + ", ".join(f"{k} {v}" for k, v in result.get("versions", {}).items())
    )
    lines = [head, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [""] + [f"- {x}" for x in notes]
    return "\n".join(lines) + "\n"


CONTENTION_COLUMNS = [
    "row",
    "library",
    "torch threads",
    "steps/s alone",
    "steps/s busy",
    "retained",
    "CPU steps/s alone",
    "CPU steps/s busy",
    "CPU retained",
]


def contention_table_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for s in result["rows"]:
        if "error" in s:
            rows.append([s["row"], f"failed: {s['error']}"] + ["-"] * (len(CONTENTION_COLUMNS) - 2))
            continue
        for lib, name in (("pgrad", "pgrad"), ("sb3", "SB3")):
            rows.append(
                [
                    s["row"],
                    name,
                    "/".join(map(str, s["threads"][lib])),
                    _spread(s["sps"][lib]["alone"]),
                    _spread(s["sps"][lib]["busy"]),
                    _spread(s["retained"][lib], 2),
                    _spread(s["cpu_sps"][lib]["alone"]),
                    _spread(s["cpu_sps"][lib]["busy"]),
                    _spread(s["cpu_retained"][lib], 2),
                ]
            )
    return rows


def contention_lines(result: dict[str, Any]) -> list[str]:
    """One reading per row: the share of wall steps/s each library keeps, and pgrad/SB3 alone and busy."""
    lines = []
    for s in result["rows"]:
        if "error" in s:
            continue
        keep = {lib: f"{100 * s['retained'][lib]['median']:.0f}%" for lib in ("pgrad", "sb3")}
        th = {lib: "/".join(map(str, s["threads"][lib])) for lib in ("pgrad", "sb3")}
        lines.append(
            f"{s['row']} ({s['window_steps']:,} steps timed): beside one busy process pgrad (threads: {th['pgrad']}) "
            f"keeps {keep['pgrad']} of its wall steps/s, SB3 (threads: {th['sb3']}) {keep['sb3']}; "
            f"pgrad/SB3 {s['ratio']['alone']['median']:.2f}x alone, {s['ratio']['busy']['median']:.2f}x busy"
        )
    return lines


def contention_markdown(result: dict[str, Any]) -> str:
    setting = (
        f"each library at its default torch threads, alone and beside one busy process (`{result['busy']}`)"
    )
    return _markdown(
        result,
        "pgrad bench --contention",
        setting,
        CONTENTION_COLUMNS,
        contention_table_rows(result),
        contention_lines(result),
    )


USAGE = f"""usage: pgrad bench [--rows ROW ...] [--reps N] [--quick] [--steps N] [--episodes N] [--json FILE]
                   [--markdown FILE] [--contention]

pgrad against Stable-Baselines3 / sb3-contrib at the same hyperparameters, each run a fresh one-thread
process, libraries alternating. Rows (default: all): {", ".join(ROWS)}.

  --contention      instead: each library at its own default torch threads, alone and beside one busy
                    process; steps/s kept (default rows: {" ".join(CONTENTION_ROWS)}; --episodes default 1)
  --rows ROW ...    rows to run
  --reps N          repetitions per library (default 3; --quick: 1)
  --quick           tiny budgets for a smoke check (under 3 minutes)
  --steps N         total env steps of every row (overrides the budgets; off-policy: > learning_starts)
  --episodes N      evaluation episodes per run (default 10; --quick: 3)
  --json FILE       write every number to FILE
  --markdown FILE   write the table as markdown to FILE

Needs {INSTALL}. See docs/benchmarks.md.
"""


def main(argv: list[str]) -> int:
    from pgrad.cli import _Parser

    if "-h" in argv or "--help" in argv:
        print(USAGE)
        return 0
    p = _Parser(prog="pgrad bench", add_help=False)
    p.add_argument("--rows", nargs="+", default=None)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    p.add_argument("--contention", action="store_true")
    a = p.parse_args(argv)
    reps = a.reps if a.reps is not None else (1 if a.quick else 3)
    run, md = (contention, contention_markdown) if a.contention else (bench, markdown)
    result = run(a.rows, reps=reps, quick=a.quick, steps=a.steps, episodes=a.episodes)
    print()
    print(md(result))
    print(f"\n{result['seconds'] / 60:.1f} minutes")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md(result))
    return 0


def _register() -> None:
    from pgrad.cli import COMMANDS

    COMMANDS["bench"] = ("pgrad vs Stable-Baselines3 speed table at the same hyperparameters", main)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    print(json.dumps(_child(json.loads(sys.argv[2]))))
else:
    _register()
