"""Environments, one module per kind (DESIGN.md section 1):

- ``spaces``: Gymnasium ids -> env factories, spaces -> EnvSpec, action scaling;
- ``normalize``: running statistics and observation normalisation;
- ``vector``: the vector env (SAME_STEP autoreset, terminated/truncated kept apart) and evaluation episodes;
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
    check_action_space,
    clip_action,
    describe,
    env_factory,
    scale_action,
)
from pgrad.envs.vector import Step, VecEnv, _encode_one, run_episodes

__all__ = [
    "EnvLike", "EnvSpec", "MultiAgentSpec", "MultiAgentStep", "MultiAgentVecEnv", "ObsNormalizer", "RunningMeanStd",
    "Step", "VecEnv", "_encode_one", "actions_to_dict", "check_action_space", "clip_action", "describe",
    "describe_parallel", "encode_agents", "env_factory", "parallel_env_factory", "run_episodes",
    "run_parallel_episodes", "scale_action",
]
