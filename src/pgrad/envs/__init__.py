"""Environments, one module per kind (DESIGN.md section 1):

- ``spaces``: Gymnasium ids and custom ``module:Class`` envs -> env factories, the optional extras they need,
  spaces -> EnvSpec, action scaling;
- ``normalize``: running statistics and observation normalisation;
- ``vector``: the vector env (SAME_STEP autoreset, terminated/truncated kept apart) and evaluation episodes;
- ``atari``: the Atari preprocessing stack (ale-py), training and evaluation variants;
- ``minatar``: MinAtar's 10x10 games;
- ``multiagent``: PettingZoo parallel envs as tensors with an agent axis (MADDPG);
- ``identity``: identity tasks with a known optimum (images, MultiDiscrete actions) for tests.
"""

from pgrad.envs.multiagent import (
    MultiAgentSpec,
    MultiAgentStep,
    MultiAgentVecEnv,
    actions_to_dict,
    describe_parallel,
    encode_agents,
    parallel_env_factory,
    run_parallel_episodes,
)
from pgrad.envs.normalize import ObsNormalizer, RunningMeanStd
from pgrad.envs.spaces import (
    EXTRAS,
    EnvCheckerWarning,
    EnvLike,
    EnvSpec,
    GameFactory,
    check_action_space,
    check_custom_env,
    clip_action,
    custom_env,
    describe,
    encode_obs,
    env_factory,
    evaluation_factory,
    extra_for,
    extra_hint,
    extra_installed,
    is_custom_id,
    missing_extra,
    scale_action,
)
from pgrad.envs.vector import Step, VecEnv, _encode_one, obs_numpy_dtype, obs_torch_dtype, run_episodes

__all__ = [
    "EXTRAS", "EnvCheckerWarning", "EnvLike", "EnvSpec", "GameFactory", "MultiAgentSpec", "MultiAgentStep", "MultiAgentVecEnv", "ObsNormalizer", "RunningMeanStd",
    "Step", "VecEnv", "_encode_one", "actions_to_dict", "check_action_space", "check_custom_env", "clip_action",
    "custom_env", "describe", "describe_parallel", "encode_agents", "encode_obs", "env_factory", "evaluation_factory",
    "extra_for", "extra_hint", "extra_installed", "is_custom_id", "missing_extra", "parallel_env_factory", "run_episodes",
    "obs_numpy_dtype", "obs_torch_dtype", "run_parallel_episodes", "scale_action",
]
