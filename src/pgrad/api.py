"""Public API: ``train(algo, env, ...) -> Agent``, ``load(path) -> Agent``, ``Agent.act/evaluate/save``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgrad.algos import get_algo
from pgrad.callbacks import RunState
from pgrad.config import coerce, config_from_dict, field_types, make_config
from pgrad.envs import (
    EnvLike,
    EnvSpec,
    ObsNormalizer,
    _encode_one,
    check_action_space,
    check_custom_env,
    describe,
    encode_obs,
    env_factory,
    evaluation_factory,
    extra_hint,
    extra_installed,
    is_custom_id,
    run_episodes,
)
from pgrad.errors import CheckpointError, ConfigError, EnvError, Interrupted, NumericsError, PgradError
from pgrad.run import Run, default_run_dir, load_checkpoint, save_checkpoint

# Settings that may change when a run is resumed; everything else must stay as the run began.
RESUMABLE_OVERRIDES = {"steps", "progress", "tensorboard", "eval_every", "eval_episodes", "checkpoint_every",
                       "log_every", "threads", "select", "track", "on_nonfinite", "stop_at"}


@dataclass
class EvalResult:
    """Undiscounted returns of evaluation episodes."""

    mean_return: float
    std_return: float
    returns: list[float] = field(default_factory=list)
    per_agent: dict[str, float] | None = None  # multi-agent: each agent's mean return (mean_return: their mean)
    total_return: float | None = None  # multi-agent: mean over episodes of the sum over agents

    def __repr__(self) -> str:
        return f"EvalResult(mean_return={self.mean_return:.2f}, std_return={self.std_return:.2f}, episodes={len(self.returns)})"


class Agent:
    """A trained policy: the algorithm's networks, its env spec and the frozen observation statistics."""

    stop_reason: str | None = None  # set by train() when a callback (or stop_at) ended the run early
    steps_trained: int | None = None  # set by train(): the run's env steps (whole batches: may pass ``steps``)

    def __init__(self, algo: str, cfg: Any, spec: EnvSpec, nets: torch.nn.Module,
                 obs_norm: dict[str, Any] | None, factory: Callable | None = None, run_dir: Path | None = None,
                 step: int | None = None):
        self.algo, self.cfg, self.spec, self.nets = algo, cfg, spec, nets
        self.module = get_algo(algo)
        self.obs_norm = ObsNormalizer(spec.obs_dim, cfg.clip_obs, False)
        if obs_norm is not None:
            self.obs_norm.load_state_dict(obs_norm)
        self.factory = factory
        self.run_dir = run_dir
        self.step = step
        self.device = torch.device(cfg.device)
        self.nets.eval()

    def __repr__(self) -> str:
        where = f", run_dir={str(self.run_dir)!r}" if self.run_dir else ""
        return f"Agent({self.algo!r}, {self.spec.env_id!r}, step={self.step}{where})"

    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Env actions for one observation or a batch [B, ...] (deterministic: the mode / no noise)."""
        arr = np.asarray(obs)
        if self.spec.is_image:  # frames as the env gives them (HWC or CHW), one or a batch
            single = arr.ndim < 4 and arr.size == self.spec.obs_dim
            enc = encode_obs(self.spec, arr, batch=True)
        else:
            single = arr.ndim == 0 if self.spec.obs_kind == "discrete" else arr.ndim == 1
            batch = arr.reshape(1, *arr.shape) if single else arr
            enc = np.stack([_encode_one(self.spec, o) for o in batch]) if self.spec.obs_kind == "discrete" \
                else batch.reshape(batch.shape[0], -1).astype(np.float32)
            enc = self.obs_norm(enc, update=False)
        with torch.no_grad():
            a = self.module.act(self.nets, torch.as_tensor(enc, device=self.device), deterministic)
        return a[0] if single else a

    def evaluate(self, episodes: int = 10, seed: int = 12_345, env: EnvLike | None = None) -> EvalResult:
        """Mean undiscounted return of ``episodes`` fresh episodes with deterministic actions (Atari: full games,
        raw score)."""
        factory = evaluation_factory(self._factory(env))
        rets = run_episodes(lambda o: self.module.act(self.nets, o, True), factory, self.spec, episodes, seed,
                            obs_norm=self.obs_norm, device=self.device)
        return EvalResult(float(np.mean(rets)), float(np.std(rets)), rets)

    def _factory(self, env: EnvLike | None) -> Callable:
        if env is not None:
            return env_factory(env)[0]
        if self.factory is None:
            self.factory = env_factory(self.spec.env_id)[0]
        return self.factory

    def learn(self, steps: int,
              callbacks: Callable[[RunState], bool | None] | Sequence[Callable[[RunState], bool | None]] | None = None
              ) -> Agent:
        """Train ``steps`` more env steps in this agent's run directory, exactly as ``pgrad train --resume DIR
        --steps <trained + steps>`` would (from checkpoints/last.pt, not from the best policy this agent may hold),
        and return this agent, updated to what ``pgrad.train`` returns then."""
        if self.run_dir is None or not (Path(self.run_dir) / "checkpoints" / "last.pt").exists():
            raise CheckpointError("this agent has no run directory with checkpoints/last.pt to continue (it was "
                                  "loaded from a policy file): train it with pgrad.train, or pgrad.load(run_dir)")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ConfigError(f"steps={steps!r}: give the number of further env steps, an integer >= 1")
        done = getattr(self, "steps_trained", None)
        if done is None:  # loaded with pgrad.load: the step the run's last checkpoint reached
            done = int(load_checkpoint(Path(self.run_dir) / "checkpoints" / "last.pt")["step"])
        env = None  # the run's own env id, from its config.yaml; an env object or factory given to train is reused
        if self.factory is not None:
            try:
                env_factory(self.spec.env_id)
            except PgradError:
                env = self.factory
        new = train(self.algo, env, resume=self.run_dir, steps=done + steps, callbacks=callbacks)
        self.__dict__.update(new.__dict__)
        return self

    def save(self, path: str | Path) -> Path:
        """Write the policy (networks, config, spec, observation statistics) to a checkpoint file."""
        path = Path(path)
        save_checkpoint(path, {
            "format": "pgrad", "version": 1, "algo": self.algo, "env_id": self.spec.env_id,
            "spec": self.spec.to_dict(), "config": self.cfg.to_dict(), "step": self.step,
            "nets": self.nets.state_dict(), "obs_norm": self.obs_norm.state_dict(),
        })
        return path


class MultiAgent(Agent):
    """The Agent of a multi-agent algorithm (``MULTI_AGENT = True``) on a PettingZoo parallel env."""

    def act(self, obs: Any, deterministic: bool = True) -> Any:  # type: ignore[override]
        """{agent: action} for one {agent: observation} dict (the agents present in it act)."""
        from pgrad.envs import actions_to_dict, encode_agents

        enc = self.obs_norm(encode_agents(self.spec, obs)[None], update=False)
        with torch.no_grad():
            a = self.module.act(self.nets, torch.as_tensor(enc, dtype=torch.float32, device=self.device),
                                deterministic)
        return actions_to_dict(self.spec, a[0], set(obs))

    def evaluate(self, episodes: int = 10, seed: int = 12_345, env: EnvLike | None = None) -> EvalResult:
        """Per-agent undiscounted returns of ``episodes`` fresh episodes; mean_return is the mean over agents."""
        rets, extra = self.module.evaluate_episodes(self.nets, self._factory(env), self.spec, episodes, seed,
                                                    obs_norm=self.obs_norm, device=self.device)
        per_agent = {k.split("/", 1)[1]: v for k, v in extra.items() if k.startswith("return/")}
        return EvalResult(float(np.mean(rets)), float(np.std(rets)), rets, per_agent, extra.get("total_return"))

    def _factory(self, env: EnvLike | None) -> Callable:
        make_env = _env_api(self.module)[0]
        if env is not None:
            return make_env(env)[0]
        if self.factory is None:
            self.factory = make_env(self.spec.env_id)[0]
        return self.factory


def _env_api(module: Any) -> tuple[Callable, Callable, type, type]:
    """(env_factory, describe, spec class, Agent class): Gymnasium's, or those a multi-agent algorithm brings."""
    if getattr(module, "MULTI_AGENT", False):
        return _needs_pettingzoo(module.env_factory), module.describe, module.Spec, MultiAgent
    return env_factory, describe, EnvSpec, Agent


def _needs_pettingzoo(make_env: Callable) -> Callable:
    """A multi-agent env factory that names PettingZoo's extra when an env id is given without it installed (an
    env object or factory is taken as it is: it may be a PettingZoo-like env of the user's own)."""
    def make(env: EnvLike, *args: Any, **kwargs: Any) -> Any:
        if isinstance(env, str) and not extra_installed("marl"):
            raise EnvError(f"{env} is a PettingZoo env id and PettingZoo is not installed; multi-agent envs need "
                           f"{extra_hint('marl')}")
        return make_env(env, *args, **kwargs)

    return make


def _agent_from_checkpoint(ckpt: dict[str, Any], factory: Callable | None = None,
                           run_dir: Path | None = None) -> Agent:
    module = get_algo(ckpt["algo"])
    cfg = config_from_dict(module.Config, ckpt["config"])
    cfg.device = "cpu" if not torch.cuda.is_available() else cfg.device
    _, _, spec_cls, agent_cls = _env_api(module)
    spec = spec_cls.from_dict(ckpt["spec"])
    nets = module.build(cfg, spec)[0]
    try:
        nets.load_state_dict(ckpt["nets"])
    except RuntimeError:
        raise CheckpointError("checkpoint networks do not match this algorithm's networks "
                              "(written with other sizes or by another version)") from None
    return agent_cls(ckpt["algo"], cfg, spec, nets, ckpt.get("obs_norm"), factory, run_dir, ckpt.get("step"))


def load(path: str | Path, env: EnvLike | None = None) -> Agent:
    """Load an Agent from a checkpoint file or a run directory (its best.pt, else last.pt)."""
    path = Path(path)
    run_dir = None
    if path.is_dir():
        run_dir = path
        best, last = path / "checkpoints" / "best.pt", path / "checkpoints" / "last.pt"
        path = best if best.exists() else last
        if not path.exists():
            raise CheckpointError(f"{run_dir} has no checkpoints/best.pt or last.pt; is it a pgrad run directory?")
    elif not path.exists():
        raise CheckpointError(f"no checkpoint or run directory at {path}")
    ckpt = load_checkpoint(path)
    factory = None
    if env is not None:
        make_env, describe_env, spec_cls, _ = _env_api(get_algo(ckpt["algo"]))
        factory, env_id = make_env(env)
        spec = describe_env(factory(), env_id)
        saved = spec_cls.from_dict(ckpt["spec"])
        _check_same_spaces(saved, spec, str(path))
    return _agent_from_checkpoint(ckpt, factory, run_dir)


def _check_same_spaces(saved: EnvSpec, new: EnvSpec, what: str) -> None:
    if hasattr(saved, "same_spaces"):  # multi-agent: the same agents with the same spaces
        if not saved.same_spaces(new):
            raise EnvError(f"{what} was trained on {saved.env_id} (agents {saved.agents}, observations "
                           f"{saved.obs_dims}, actions {saved.act_dims}) but the env given is {new.env_id} "
                           f"(agents {new.agents}, observations {new.obs_dims}, actions {new.act_dims})")
        return
    if (saved.obs_dim, saved.action_kind, saved.n_actions, saved.act_nvec) != \
            (new.obs_dim, new.action_kind, new.n_actions, new.act_nvec):
        sa, na = (f"{s.n_actions}" + (f" of {list(s.act_nvec)} choices" if s.act_nvec else "") for s in (saved, new))
        raise EnvError(
            f"{what} was trained on {saved.env_id} (obs {saved.obs_dim}, {saved.action_kind} actions "
            f"{sa}) but the env given is {new.env_id} (obs {new.obs_dim}, {new.action_kind} actions {na})")
    if (saved.obs_kind, tuple(saved.obs_shape), saved.obs_dtype) != (new.obs_kind, tuple(new.obs_shape), new.obs_dtype):
        raise EnvError(f"{what} was trained on {saved.env_id} with {saved.obs_kind} observations "
                       f"{'x'.join(map(str, saved.obs_shape))} of {saved.obs_dtype} but the env given ({new.env_id}) "
                       f"has {new.obs_kind} observations {'x'.join(map(str, new.obs_shape))} of {new.obs_dtype}")
    if saved.action_kind == "box" and not (np.allclose(saved.act_low, new.act_low)
                                           and np.allclose(saved.act_high, new.act_high)):
        raise EnvError(f"{what} was trained on {saved.env_id} with action bounds [{_fmt(saved.act_low)}, "
                       f"{_fmt(saved.act_high)}] but the env given ({new.env_id}) has [{_fmt(new.act_low)}, "
                       f"{_fmt(new.act_high)}]: its actions would be scaled wrongly")


def _fmt(a: Any) -> str:
    return " ".join(f"{x:g}" for x in np.asarray(a, dtype=np.float64).reshape(-1))


def train(algo: str, env: EnvLike | None = None, *, steps: int | None = None, seed: int | None = None,
          out: str | Path | None = None, resume: str | Path | None = None,
          callbacks: Callable[[RunState], bool | None] | Sequence[Callable[[RunState], bool | None]] | None = None,
          overwrite: bool = False, **hparams: Any) -> Agent:
    """Train ``algo`` on ``env`` and return the Agent (the best evaluated policy unless select='last').

    ``env`` is a Gymnasium id, a gymnasium.Env, a zero-argument factory, or ``"module:Class"`` /
    ``"module:factory"`` naming a custom env in an importable module (kept in config.yaml, so the run can be
    evaluated and resumed later; Gymnasium's env checker runs on it once, its warnings shown as
    ``pgrad.envs.EnvCheckerWarning``). Keyword arguments are hyperparameters of the algorithm's Config (a preset
    for the env applies first; your values win).
    ``resume`` continues the run in that directory from checkpoints/last.pt (``steps`` may be raised; the other
    arguments of the original call may be given again, equal to the saved values).
    ``callbacks``: one or more ``cb(state) -> bool | None`` (pgrad.callbacks); False or StopTraining stops the run
    cleanly, with a checkpoint, and the Agent is returned (``agent.stop_reason`` says why).
    ``overwrite=True`` deletes the run already in ``out`` (a directory with a config.yaml) and starts afresh there;
    by default an existing run is refused, never replaced (scripts that rerun, like examples/, pass it).

    SIGINT (Ctrl-C) or SIGTERM stops the run after the current batch: checkpoints/last.pt is written, then
    ``pgrad.Interrupted`` (a KeyboardInterrupt; ``.step``, ``.run_dir``, ``.signum``) is raised, never a return as
    if training had finished; ``resume=run_dir`` continues it.
    """
    module, algo, cfg, factory, spec, run_dir, ckpt = prepare(algo, env, steps=steps, seed=seed, out=out,
                                                             resume=resume, overwrite=overwrite, **hparams)
    if overwrite and resume is None and (run_dir / "config.yaml").exists():
        import shutil

        shutil.rmtree(run_dir)
    agent_cls = _env_api(module)[3]
    cbs = [] if callbacks is None else [callbacks] if callable(callbacks) else list(callbacks)
    for cb in cbs:
        if not callable(cb):
            raise ConfigError(f"callbacks must be callables taking a pgrad.callbacks.RunState, not {cb!r}")
    run = Run(algo, module, cfg, factory, spec, run_dir, resume=ckpt, callbacks=cbs)
    try:
        nets = module.train(cfg, run)
        run.finish()
    except PgradError:
        raise
    except KeyboardInterrupt:  # a second signal (or Ctrl-C before the handlers): the last complete checkpoint stands
        import signal

        raise Interrupted(run.dir, run.last_ckpt_step, run.stop_signal or signal.SIGINT, saved=False) from None
    except Exception as e:  # non-finite parameters surface elsewhere as a sampling or env error: name them
        bad = run.nonfinite_params()
        if bad:
            raise NumericsError(f"non-finite parameter {bad[0]} at step {run.step} (update {run.updates}), "
                                f"found after {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; "
                                + run._numerics_advice()) from e
        if isinstance(e, MemoryError) or "can't allocate memory" in str(e) or "out of memory" in str(e):
            raise PgradError(f"out of memory at step {run.step} ({type(e).__name__}: {str(e).splitlines()[0]}); "
                             "lower buffer_size, n_steps, num_envs or the network sizes") from e
        raise
    finally:
        run.close()
    if run.stop_signal is not None:
        raise Interrupted(run.dir, run.last_ckpt_step, run.stop_signal)
    best = run.dir / "checkpoints" / "best.pt"
    if cfg.select == "best" and best.exists():
        agent = _agent_from_checkpoint(load_checkpoint(best), factory, run.dir)
    else:
        obs_norm = run.envs.obs_norm.state_dict() if run.envs is not None else None
        agent = agent_cls(algo, cfg, spec, nets, obs_norm, factory, run.dir, run.step)
    agent.stop_reason = run.stop_reason
    agent.steps_trained = run.step
    return agent


def prepare(algo: str, env: EnvLike | None = None, *, steps: int | None = None, seed: int | None = None,
            out: str | Path | None = None, resume: str | Path | None = None, overwrite: bool = False,
            **hparams: Any) -> tuple[Any, str, Any, Callable, Any, Path, dict[str, Any] | None]:
    """Everything ``train`` checks before it starts: the algorithm, the env and its spaces, the hyperparameters,
    the run directory and the checkpoint to resume. Returns (module, algo, cfg, factory, spec, run_dir, ckpt);
    raises a PgradError on bad input. Writes nothing."""
    module = get_algo(algo)
    algo = module.__name__.rsplit(".", 1)[-1]
    make_env, describe_env, spec_cls, _ = _env_api(module)
    overrides = dict(hparams)
    if steps is not None:
        overrides["steps"] = steps
    if seed is not None:
        overrides["seed"] = seed
    ckpt = None
    if resume is not None:
        run_dir = Path(resume)
        if not run_dir.is_dir():
            raise CheckpointError(f"no run directory {run_dir} to resume")
        ckpt, saved = _resume_point(run_dir)
        if saved.get("algo", algo) != algo:
            raise CheckpointError(f"{run_dir} is a {saved['algo']} run, not {algo}; "
                                  f"resume it with `pgrad train {saved['algo']} --resume {run_dir}`")
        saved = {k: v for k, v in saved.items() if k != "algo"}
        if out is not None and Path(out).resolve() != run_dir.resolve():
            raise ConfigError(f"--out {out} and --resume {run_dir} name different directories; a resumed run "
                              f"stays in its own: drop --out")
        base = config_from_dict(module.Config, saved)
        changed = _changed_on_resume(module.Config, base, overrides)
        fixed = sorted(k for k in changed if k not in RESUMABLE_OVERRIDES)
        if fixed:
            was = ", ".join(f"{k}={getattr(base, k)!r}" for k in fixed if hasattr(base, k))
            raise ConfigError(f"cannot change {', '.join(fixed)} when resuming (the run has {was}); only "
                              f"{', '.join(sorted(RESUMABLE_OVERRIDES))} may change")
        cfg = make_config(module.Config, algo, None, {**base.to_dict(), **overrides}, use_preset=False)
        factory, env_id = make_env(env if env is not None else cfg.env)
        trained_on = ckpt["env_id"] if ckpt is not None else cfg.env
        if env_id != trained_on and env is not None and isinstance(env, str):
            raise CheckpointError(f"{run_dir} was trained on {trained_on}, not {env_id}; "
                                  f"resume it with `pgrad train {algo} {trained_on} --resume {run_dir}`")
    else:
        if env is None:
            raise EnvError("no environment given: pass a Gymnasium id such as 'CartPole-v1'")
        factory, env_id = make_env(env)
        cfg = make_config(module.Config, algo, env_id, overrides)
        run_dir = Path(out) if out is not None else default_run_dir(algo, env_id, cfg.seed)
        if (run_dir / "config.yaml").exists() and not overwrite:
            raise PgradError(f"{run_dir} already holds a run; resume it with --resume {run_dir} "
                             "or choose another --out")
    probe = factory()
    spec = describe_env(probe, env_id)
    probe.close()
    check_action_space(spec, algo, module.SPACES)
    _check_observations(spec, algo, module, cfg)
    if getattr(cfg, "backend", None) == "ray" and not extra_installed("ray"):  # now, not once the run has begun
        raise ConfigError(f"backend=ray needs Ray, which is not installed: {extra_hint('ray')}")
    multi_agent = getattr(module, "MULTI_AGENT", False)
    if resume is None and not multi_agent and is_custom_id(env_id):  # a user's env: Gymnasium's checker, once
        check_custom_env(factory, env_id)
    if ckpt is not None:
        _check_same_spaces(spec_cls.from_dict(ckpt["spec"]), spec, str(run_dir))
    return module, algo, cfg, factory, spec, run_dir, ckpt


def _changed_on_resume(cls: type, base: Any, overrides: dict[str, Any]) -> list[str]:
    """Names of the overrides whose value differs from the resumed run's: a value equal to the saved one, as typed
    on the command line again ("3" for 3, "64 64" for (64, 64)), is no change."""
    tps, names = field_types(cls), cls.field_names()
    changed = []
    for key, value in overrides.items():
        k = key.replace("-", "_")
        if k in names and coerce(k, tps[k], value) != getattr(base, k):  # unknown names: make_config says so
            changed.append(k)
    return changed


def _check_observations(spec: Any, algo: str, module: Any, cfg: Any) -> None:
    """Refuse what would silently break image observations (DESIGN.md section 6)."""
    if not getattr(spec, "is_image", False):
        return
    if not getattr(module, "IMAGES", True):
        raise EnvError(f"{algo} reads flat vector observations and {spec.env_id} gives "
                       f"{'x'.join(map(str, spec.obs_shape))} frames; use an algorithm for pixels "
                       "(`pgrad list` shows them)")
    if cfg.norm_obs:
        raise ConfigError(f"norm_obs would z-score every pixel of {spec.env_id}; the encoder scales frames itself "
                          "(uint8 / 255, bool as 0 or 1): leave --norm-obs off")
    if getattr(cfg, "batch_norm", False):
        raise ConfigError(f"batch_norm normalises raw inputs, here the pixels of {spec.env_id}; the CNN encoder "
                          "scales them already: leave --batch-norm off")
    from pgrad.core.encoders import make_encoder

    make_encoder(spec, cfg.net)  # a frame too small for the encoder, or a user encoder of the wrong shape


def _resume_point(run_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(checkpoint, its config with "algo") to resume ``run_dir`` from. A run killed before its first checkpoint
    (step 0) has none: it starts again from its config.yaml (ckpt None), as nothing it did can be lost."""
    last = run_dir / "checkpoints" / "last.pt"
    cfg_path = run_dir / "config.yaml"
    if not last.exists() and cfg_path.exists() and not (run_dir / "checkpoints" / "best.pt").exists():
        import yaml

        try:
            saved = yaml.safe_load(cfg_path.read_text())
        except yaml.YAMLError:
            saved = None
        if not isinstance(saved, dict) or "algo" not in saved:
            raise CheckpointError(f"{cfg_path} is not a pgrad config.yaml and {run_dir} has no checkpoint to resume")
        return None, saved
    ckpt = load_checkpoint(last)
    if "train" not in ckpt:
        raise CheckpointError(f"{run_dir}/checkpoints/last.pt holds no training state; it cannot be resumed")
    return ckpt, {**ckpt["config"], "algo": ckpt["algo"]}


def evaluate(agent: Agent | str | Path, env: EnvLike | None = None, episodes: int = 10,
             seed: int = 12_345) -> EvalResult:
    """Evaluate an Agent, a checkpoint file or a run directory."""
    if not isinstance(agent, Agent):
        agent = load(agent, env)
    return agent.evaluate(episodes=episodes, seed=seed, env=env)
