"""Environments, one module per kind (DESIGN.md section 1):

- ``spaces``: Gymnasium ids -> env factories, spaces -> EnvSpec, action scaling;
- ``normalize``: running statistics and observation normalisation;
- ``vector``: the vector env (SAME_STEP autoreset, terminated/truncated kept apart) and evaluation episodes;
- ``atari``: the Atari preprocessing stack (ale-py), training and evaluation variants;
- ``minatar``: MinAtar's 10x10 games;
- ``multiagent``: PettingZoo parallel envs as tensors with an agent axis (MADDPG).
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
    EnvLike,
    EnvSpec,
    GameFactory,
    check_action_space,
    clip_action,
    describe,
    encode_obs,
    env_factory,
    evaluation_factory,
    scale_action,
)
from pgrad.envs.vector import Step, VecEnv, _encode_one, obs_numpy_dtype, obs_torch_dtype, run_episodes

__all__ = [
    "EnvLike", "EnvSpec", "GameFactory", "MultiAgentSpec", "MultiAgentStep", "MultiAgentVecEnv", "ObsNormalizer", "RunningMeanStd",
    "Step", "VecEnv", "_encode_one", "actions_to_dict", "check_action_space", "clip_action", "describe",
    "describe_parallel", "encode_agents", "encode_obs", "env_factory", "evaluation_factory", "parallel_env_factory", "run_episodes",
    "obs_numpy_dtype", "obs_torch_dtype", "run_parallel_episodes", "scale_action",
]
