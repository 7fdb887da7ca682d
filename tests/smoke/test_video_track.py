"""`pgrad eval RUN --video` writes an mp4 of the deterministic policy; `--track` hands the run to W&B."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import pgrad
from pgrad.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("video") / "run"
    pgrad.train("ppo", "CartPole-v1", steps=256, out=d, n_steps=64, batch_size=64, epochs=1, eval_every=0,
                eval_episodes=1, progress=False, tensorboard=False)
    return d


def test_video_records_the_deterministic_policy(run_dir, tmp_path, capsys):
    pytest.importorskip("moviepy")
    iio = pytest.importorskip("imageio.v3")
    out = tmp_path / "videos"
    try:
        code = main(["eval", str(run_dir), "--episodes", "1", "--video", "--video-dir", str(out)])
    except Exception as e:  # noqa: BLE001 - no renderer on this machine
        pytest.skip(f"rendering failed headless: {e}")
    assert code == 0
    text = capsys.readouterr().out
    mp4s = sorted(out.glob("*.mp4"))
    assert len(mp4s) == 1 and f"video: {mp4s[0]}" in text
    frames = iio.imread(mp4s[0], index=None)
    ret = float(text.split("(return ")[1].split(")")[0])
    # CartPole pays 1 per step: one frame per step plus the first, and the frames are not blank
    assert abs(frames.shape[0] - (ret + 1)) <= 1
    assert frames.shape[1:] == (400, 600, 3) and np.asarray(frames).std() > 5


def test_video_without_the_extra_is_one_line(run_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # import moviepy -> ImportError
    assert main(["eval", str(run_dir), "--video"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "pgrad: error: video recording needs the video extra: pip install 'pgrad[video]' (moviepy)"


def test_track_without_wandb_fails_before_the_run_starts(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(pgrad.errors.ConfigError, match="pip install wandb"):
        pgrad.train("ppo", "CartPole-v1", steps=64, out=tmp_path / "r", track=True)
    assert not (tmp_path / "r").exists()


def test_track_streams_tensorboard_to_wandb(tmp_path, monkeypatch):
    calls: dict = {}

    class FakeRun:
        def finish(self):
            calls["finished"] = True

    fake = types.ModuleType("wandb")
    fake.util = types.SimpleNamespace(generate_id=lambda: "abc123")
    fake.init = lambda **kw: calls.setdefault("init", kw) and FakeRun()
    fake.__spec__ = types.SimpleNamespace(name="wandb")
    monkeypatch.setitem(sys.modules, "wandb", fake)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake.__spec__ if name == "wandb" else real(name, *a))
    d = tmp_path / "r"
    pgrad.train("ppo", "CartPole-v1", steps=64, out=d, n_steps=32, batch_size=32, epochs=1, eval_every=0,
                eval_episodes=1, progress=False, track=True)
    kw = calls["init"]
    assert kw["sync_tensorboard"] is True and kw["id"] == "abc123" and kw["resume"] == "allow"
    assert kw["config"]["algo"] == "ppo" and kw["name"] == "r"
    assert calls["finished"] and (d / "wandb_id").read_text() == "abc123"
    with pytest.raises(pgrad.errors.ConfigError, match="leave --tensorboard true"):
        pgrad.train("ppo", "CartPole-v1", steps=64, out=tmp_path / "r2", track=True, tensorboard=False)
