"""Image observations: the spec of an image space, encode_obs at the env boundary, and the encoders."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from pgrad.config import make_config, preset_for
from pgrad.core.encoders import FlatFrames, ImpalaCNN, MinAtarCNN, NatureCNN, UserEncoder, make_encoder
from pgrad.core.nets import Encoded, encoded, policy_function, policy_net
from pgrad.envs import EnvSpec, describe, encode_obs
from pgrad.envs.identity import ImageIdentityEnv
from pgrad.errors import ConfigError, EnvError


def _spec(env: gym.Env) -> EnvSpec:
    return describe(env, "test")


@pytest.mark.parametrize("shape,dtype,chw,hwc", [
    ((84, 84, 4), np.uint8, (4, 84, 84), True),     # channel-last stack
    ((4, 84, 84), np.uint8, (4, 84, 84), False),    # channel-first stack (pgrad's Atari wrapper)
    ((210, 160, 3), np.uint8, (3, 210, 160), True),  # a raw Atari screen
    ((10, 10, 10), np.bool_, (10, 10, 10), True),  # MinAtar Seaquest: square, so channel-last as Gymnasium's
    ((10, 10, 4), np.bool_, (4, 10, 10), True),
    ((36, 48), np.uint8, (1, 36, 48), False),      # grayscale: one channel
])
def test_image_spaces_are_detected_with_their_layout(shape, dtype, chw, hwc):
    env = gym.make("CartPole-v1")
    env.observation_space = gym.spaces.Box(0, 255 if dtype == np.uint8 else 1, shape, dtype)
    spec = _spec(env)
    assert spec.is_image and spec.obs_shape == chw and spec.obs_hwc == hwc
    assert spec.obs_dtype == np.dtype(dtype).name and spec.obs_dim == int(np.prod(shape))
    assert EnvSpec.from_dict(spec.to_dict()) == spec  # checkpoints round-trip the observation spec


def test_float_and_vector_boxes_stay_flat():
    env = gym.make("CartPole-v1")
    assert _spec(env).obs_kind == "box" and _spec(env).obs_shape == (4,)
    env.observation_space = gym.spaces.Box(0, 1, (8, 8, 3), np.float32)  # not uint8/bool: flattened as before
    spec = _spec(env)
    assert spec.obs_kind == "box" and spec.obs_shape == (192,)


def test_a_version_1_spec_loads_with_defaults():
    old = {"env_id": "CartPole-v1", "obs_dim": 4, "obs_kind": "box", "n_obs_discrete": 0, "action_kind": "discrete",
           "n_actions": 2, "act_low": None, "act_high": None, "max_episode_steps": 500}
    spec = EnvSpec.from_dict(old)
    assert spec.obs_shape == (4,) and spec.obs_dtype == "float32" and not spec.is_image


def test_encode_obs_transposes_channel_last_once_and_keeps_the_dtype():
    env = ImageIdentityEnv(4, 12, 3, "uint8", channel_last=True)
    spec = _spec(env)
    frame, _ = env.reset(seed=0)
    one = encode_obs(spec, frame)
    assert one.shape == (3, 12, 12) and one.dtype == np.uint8
    np.testing.assert_array_equal(one, frame.transpose(2, 0, 1))
    batch = encode_obs(spec, np.stack([frame, frame]), batch=True)
    assert batch.shape == (2, 3, 12, 12) and batch.dtype == np.uint8


def test_vec_env_keeps_uint8_frames():
    from pgrad.envs import VecEnv

    spec = _spec(ImageIdentityEnv(4, 36))
    envs = VecEnv(lambda: ImageIdentityEnv(4, 36), 3, 0, spec)
    assert envs.obs.dtype == torch.uint8 and envs.obs.shape == (3, 1, 36, 36)
    step = envs.step(np.zeros(3, np.int64))
    assert step.obs.dtype == torch.uint8 and step.next_obs.shape == (3, 1, 36, 36)
    assert int(step.obs.max()) == 255


@pytest.mark.parametrize("cls,size,dtype,out", [(NatureCNN, 84, "uint8", 512), (MinAtarCNN, 10, "bool", 128),
                                                 (ImpalaCNN, 64, "uint8", 256)])
def test_encoders_scale_inside_and_keep_leading_dims(cls, size, dtype, out):
    torch.manual_seed(0)
    enc = cls((4, size, size), dtype)
    tdtype = torch.uint8 if dtype == "uint8" else torch.bool
    x = torch.randint(0, 256 if dtype == "uint8" else 2, (3, 5, 4, size, size)).to(tdtype)  # ACER-style [T, B, ...]
    h = enc(x)
    assert h.shape == (3, 5, out) and h.dtype == torch.float32 and enc.out_dim == out
    flat = enc(x.reshape(15, 4, size, size)).reshape(3, 5, out)
    torch.testing.assert_close(h, flat)
    scale = 1 / 255 if dtype == "uint8" else 1.0
    torch.testing.assert_close(h, enc.net(x.reshape(15, 4, size, size).float() * scale).reshape(3, 5, out))
    assert not any(getattr(m, "inplace", False) for m in enc.modules())  # K-FAC hooks read layer outputs


def test_nature_cnn_layers_are_the_papers():
    enc = NatureCNN((4, 84, 84))
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == \
        [(32, (8, 8), (4, 4)), (64, (4, 4), (2, 2)), (64, (3, 3), (1, 1))]
    fc = [m for m in enc.modules() if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fc] == [(3136, 512)]


def test_make_encoder_routes_by_frame_size_and_refuses_what_cannot_work():
    small, large = _spec(ImageIdentityEnv(4, 10, 1, "bool")), _spec(ImageIdentityEnv(4, 36))
    assert isinstance(make_encoder(small), MinAtarCNN) and isinstance(make_encoder(large), NatureCNN)
    assert isinstance(make_encoder(large, "impala"), ImpalaCNN)
    assert make_encoder(_spec(gym.make("CartPole-v1"))) is None  # vectors keep today's networks
    with pytest.raises(EnvError, match="minimum|36x36.*--net minatar"):
        make_encoder(small, "nature")
    with pytest.raises(EnvError, match="needs image observations"):
        make_encoder(_spec(gym.make("CartPole-v1")), "cnn")
    with pytest.raises(ConfigError, match="not an encoder"):
        make_encoder(large, "resnet")
    with pytest.warns(UserWarning, match="every pixel"):
        import pgrad.core.encoders as E

        E._warned_mlp = False
        flat = make_encoder(large, "mlp")
    assert isinstance(flat, FlatFrames) and flat.out_dim == 36 * 36


class TinyEncoder(nn.Module):
    def __init__(self, spec: EnvSpec):
        super().__init__()
        self.lin = nn.Linear(int(np.prod(spec.obs_shape)), 7)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.lin(obs.flatten(1).float())


def make_tiny(spec: EnvSpec) -> nn.Module:
    return TinyEncoder(spec)


def test_user_encoders_by_import_path_and_shape_checks():
    spec = _spec(ImageIdentityEnv(4, 10, 1, "bool"))
    enc = make_encoder(spec, "tests.unit.test_encoders:make_tiny")
    assert isinstance(enc, UserEncoder) and enc.out_dim == 7
    assert enc(torch.zeros(2, 3, 1, 10, 10, dtype=torch.bool)).shape == (2, 3, 7)
    with pytest.raises(ConfigError, match="cannot import"):
        make_encoder(spec, "tests.unit.test_encoders:nothing_here")

    class Bad(nn.Module):
        def forward(self, obs):
            return obs.float()  # [B, 1, 10, 10]: not features

    with pytest.raises(ConfigError, match=r"float features \[B, F\]"):
        make_encoder(spec, Bad())


def test_encoded_policy_function_equals_the_module():
    spec = _spec(ImageIdentityEnv(4, 10, 1, "bool"))
    enc = make_encoder(spec)
    pi = encoded(enc, policy_net(spec, (), in_dim=enc.out_dim))
    assert isinstance(pi, Encoded)
    x = torch.randint(0, 2, (5, 1, 10, 10)).bool()
    torch.testing.assert_close(policy_function(pi)(x).logits, pi(x).logits)
    assert encoded(None, pi.head) is pi.head


@pytest.mark.parametrize("algo", ["ppo", "a2c", "a3c", "acer", "acktr", "trpo"])
@pytest.mark.parametrize("family", ["atari", "minatar"])
def test_family_presets_are_valid_configs(algo, family):
    from pgrad.algos import get_algo

    env_id = "BreakoutNoFrameskip-v4" if family == "atari" else "MinAtar/Breakout-v1"
    preset = preset_for(algo, env_id)
    assert preset, f"no {family} preset for {algo}"
    cfg = make_config(get_algo(algo).Config, algo, env_id, {})
    assert all(getattr(cfg, k) == (tuple(v) if isinstance(v, list) else v) for k, v in preset.items())


def test_small_uint8_vectors_are_not_images_and_tiny_frames_are_read_flat():
    env = gym.make("CartPole-v1")
    env.observation_space = gym.spaces.Box(0, 1, (2, 8), np.uint8)  # counts, not pixels: a vector as before
    assert _spec(env).obs_kind == "box" and _spec(env).obs_shape == (16,)
    env.observation_space = gym.spaces.Box(0, 255, (2, 8), np.uint8)  # pixels too small for a convolution
    spec = _spec(env)
    assert spec.is_image and isinstance(make_encoder(spec), FlatFrames)
    with pytest.raises(EnvError, match="smaller than the 3x3"):
        make_encoder(spec, "minatar")


def test_raw_ale_envs_resume_as_not_exact_and_stack_no_frames():
    pytest.importorskip("ale_py")
    from pgrad.envs import VecEnv, env_factory
    from pgrad.envs.atari import make_atari, restores_whole, stacked_frames

    raw = lambda: gym.make("ALE/Breakout-v5")  # noqa: E731  (pickles its constructor arguments only)
    assert not restores_whole(raw()) and restores_whole(make_atari("BreakoutNoFrameskip-v4", True))
    spec = describe(raw(), "ALE/Breakout-v5")
    envs = VecEnv(raw, 1, 0, spec)
    envs.step(np.zeros(1, np.int64))
    assert not envs.load_state_dict(envs.state_dict())  # run.log will say the episodes restart
    assert stacked_frames(spec, raw) == 0
    factory, env_id = env_factory("BreakoutNoFrameskip-v4")
    assert stacked_frames(describe(factory(), env_id), factory) == 4


def test_a_version_1_checkpoint_loads_and_acts(tmp_path):
    import pgrad
    from pgrad.run import load_checkpoint, save_checkpoint

    agent = pgrad.train("ppo", "CartPole-v1", steps=256, seed=0, out=tmp_path / "r", n_steps=64, eval_every=0,
                        eval_episodes=1, progress=False, tensorboard=False)
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    for k in ("obs_shape", "obs_dtype", "obs_hwc"):  # what a file of format 1 did not have
        del ckpt["spec"][k]
    del ckpt["config"]["net"]
    ckpt["version"] = 1
    save_checkpoint(tmp_path / "old.pt", ckpt)
    old = pgrad.load(tmp_path / "old.pt")
    obs = np.zeros(4, np.float32)
    assert old.spec.obs_shape == (4,) and old.cfg.net == "auto" and old.act(obs) == agent.act(obs)
