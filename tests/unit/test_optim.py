"""pgrad.core.optim: the lean steps give torch.optim's results bit for bit, through checkpoints and fallbacks."""

import io

import pytest
import torch

from pgrad.core import optim

SHAPES = [(8, 4), (8,), (3, 8), (3,)]


def _params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).requires_grad_() for s in SHAPES]


def _grads(params: list[torch.Tensor], t: int, skip: int | None = None) -> None:
    g = torch.Generator().manual_seed(100 + t)
    for i, p in enumerate(params):
        p.grad = None if i == skip else torch.randn(p.shape, generator=g)


def _groups(params: list[torch.Tensor], **second: float) -> list[dict]:
    return [{"params": params[:2]}, {"params": params[2:], **second}]


CASES = [
    (torch.optim.Adam, optim.Adam, {"lr": 1e-2, "eps": 1e-5, "fused": True}, {"lr": 3e-3}),
    (torch.optim.Adam, optim.Adam, {"lr": 1e-2, "betas": (0.5, 0.9), "weight_decay": 0.1, "fused": True}, {}),
    (torch.optim.RMSprop, optim.RMSprop, {"lr": 7e-3, "alpha": 0.99, "eps": 1e-5}, {"lr": 1e-3}),
    (torch.optim.RMSprop, optim.RMSprop, {"lr": 7e-3, "weight_decay": 0.01}, {}),
]


@pytest.mark.parametrize("ref_cls,cls,kw,second", CASES)
def test_same_bits_as_torch_through_lr_change_and_checkpoint(ref_cls, cls, kw, second):
    ref_p, p = _params(), _params()
    ref, opt = ref_cls(_groups(ref_p, **second), **kw), cls(_groups(p, **second), **kw)
    for t in range(12):
        if t == 4:  # an lr schedule writes param_groups, as anneal_lr does
            for o in (ref, opt):
                o.param_groups[0]["lr"] *= 0.5
        if t == 6:  # resume both from a serialised checkpoint into fresh optimisers
            buf_ref, buf = io.BytesIO(), io.BytesIO()
            torch.save(ref.state_dict(), buf_ref)
            torch.save(opt.state_dict(), buf)
            ref, opt = ref_cls(_groups(ref_p, **second), **kw), cls(_groups(p, **second), **kw)
            ref.load_state_dict(torch.load(io.BytesIO(buf_ref.getvalue())))
            opt.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
        skip = 1 if t == 8 else None  # one parameter without a gradient: torch's path, then the lean one again
        _grads(ref_p, t, skip)
        _grads(p, t, skip)
        ref.step()
        opt.step()
        for a, b in zip(ref_p, p):
            assert torch.equal(a, b), f"step {t}"
    for a, b in zip(ref_p, p):
        sa, sb = ref.state[a], opt.state[b]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert float(opt.state[p[0]]["step"]) == 12 and float(opt.state[p[1]]["step"]) == 11


def test_lean_path_is_taken_and_counts_every_parameter():
    p = _params()
    opt = optim.Adam(p, lr=1e-3, fused=True)
    _grads(p, 0)
    opt.step()
    steps = [opt.state[q]["step"] for q in p]
    assert all(s._base is steps[0]._base and s._base is not None for s in steps)  # one counter buffer
    opt.step()
    assert [float(s) for s in steps] == [2.0] * len(p)


def test_step_hooks_still_run():
    p = _params()
    opt = optim.RMSprop(p, lr=1e-3)
    seen = []
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append(1))
    _grads(p, 0)
    opt.step()
    assert seen == [1]


def test_zero_grad():
    p = _params()
    opt = optim.Adam(p, lr=1e-3, fused=True)
    _grads(p, 0)
    opt.zero_grad()
    assert all(q.grad is None for q in p)
    _grads(p, 0)
    opt.zero_grad(set_to_none=False)
    assert all(torch.equal(q.grad, torch.zeros_like(q)) for q in p)


def test_options_outside_the_lean_cases_go_to_torch():
    ref_p, p = _params(), _params()
    ref = torch.optim.RMSprop(ref_p, lr=1e-2, momentum=0.9, centered=True)
    opt = optim.RMSprop(p, lr=1e-2, momentum=0.9, centered=True)
    for t in range(3):
        _grads(ref_p, t)
        _grads(p, t)
        ref.step()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ref_p, p))
