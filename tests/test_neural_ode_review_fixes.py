"""Fixes from the review of NeuralODE/NeuralSDE (the solve's end, t_span gradients, the torchdiffeq backend's
checks, save times, schedules, the regularizer argument): each test failed before its fix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sciml.solvers.solution import SolveError
from torch import nn

from sciml.neural_de import (
    Autonomous,
    ConstantSchedule,
    ErrorEstimateRegularizer,
    ExponentialSchedule,
    LocalErrorRegularizer,
    NeuralODE,
    Steer,
)
from sciml.neural_de.regularizers import DelayedSchedule
from sciml.neural_de.sde import CubicDrift, DiagonalAffine, NeuralSDE

pytestmark = pytest.mark.usefixtures("one_thread")


class _Field(nn.Module):
    """A small field that records the latest time it is evaluated at."""

    def __init__(self, dim: int = 4):
        super().__init__()
        self.lin = nn.Linear(dim, dim)
        self.tmax = -math.inf

    def forward(self, t, y):
        self.tmax = max(self.tmax, float(t))
        return torch.tanh(self.lin(y))


def _field(seed: int = 0) -> _Field:
    torch.manual_seed(seed)
    return _Field()


def _y0(dtype=torch.float32):
    return torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _sde():
    torch.manual_seed(0)
    return NeuralSDE(CubicDrift(8), DiagonalAffine(2, 0.2), (0.0, 4.0), rtol=1e-2, atol=1e-2)


def _sde_y0():
    return torch.tensor([[1.0, 0.5]]).expand(4, 2).clone()


class _SpanProbe(LocalErrorRegularizer):
    """Unbiased local sampling that records the interval it is drawn from."""

    def save_time(self, t_span):
        self.span = t_span
        self.sample = super().save_time(t_span)
        return self.sample


# ------------------------------------------------------------- 1: the solve ends at the last save time
@pytest.mark.parametrize("backend", ["backprop", "continuous"])
def test_the_solve_ends_at_the_last_save_time(backend):
    runs = {}
    for span in ((0.0, 5.0), (0.0, 0.5)):
        field = _field()
        out = NeuralODE(field, span, backend=backend)(_y0(), saveat=[0.2, 0.5])
        runs[span] = (out.ys, out.solution.stats.nfe, field.tmax)
    (ys_long, nfe_long, tmax_long), (ys_short, nfe_short, _) = runs.values()
    assert tmax_long <= 0.5  # was 5.0: the field was integrated to t_span[1]
    assert nfe_long == nfe_short and torch.equal(ys_long, ys_short)


def test_regularizers_see_only_the_solved_interval():
    values = {}
    for span in ((0.0, 5.0), (0.0, 0.5)):
        out = NeuralODE(_field(), span).train()(
            _y0(), saveat=[0.2, 0.5], regularizer=ErrorEstimateRegularizer()
        )
        values[span] = out.regularization.item()
    assert values[(0.0, 5.0)] == values[(0.0, 0.5)]  # was 1.90 against 0.0022
    probe = _SpanProbe(generator=torch.Generator().manual_seed(0))
    NeuralODE(_field(), (0.0, 5.0)).train()(_y0(), saveat=[0.2, 0.5], regularizer=probe)
    assert probe.span == (0.0, 0.5) and 0.0 <= probe.sample < 0.5  # was drawn from [0, 5)


def test_steer_stretches_t_span_and_the_solve_ends_at_the_stretched_last_save_time():
    end = Steer(0.5, torch.Generator().manual_seed(0)).end_time((0.0, 2.0))

    class _SteerProbe(_SpanProbe):
        steer = Steer(0.5, torch.Generator().manual_seed(0))

        def end_time(self, t_span):
            return self.steer.end_time(t_span)

    field, probe = _field(), _SteerProbe(generator=torch.Generator().manual_seed(1))
    out = NeuralODE(field, (0.0, 2.0)).train()(_y0(), saveat=[0.2, 0.5], regularizer=probe)
    last = 0.5 * end / 2.0  # STEER stretches t_span's axis: t1 -> end, the last save time 0.5 -> last
    assert probe.span == (0.0, pytest.approx(last)) and field.tmax <= last + 1e-12  # was end: past 0.5
    assert max(out.solution.ts.tolist()) == pytest.approx(last) and 0.2 * end / 2.0 in out.solution.ts


def test_a_save_time_at_t0_only_solves_nothing_on_every_backend():
    y0 = _y0()
    for backend in ("backprop", "continuous", "torchdiffeq"):
        field = _field()
        out = NeuralODE(field, (0.0, 1.0), backend=backend)(y0, saveat=[0.0])
        assert torch.equal(out.ys[0], y0) and field.tmax == 0.0 and out.solution.stats.nfe == 1
    node = NeuralODE(_field(), (0.0, 1.0)).train()
    for reg in (ErrorEstimateRegularizer(), LocalErrorRegularizer()):
        value = node(y0, saveat=[0.0], regularizer=reg).regularization
        assert value.item() == 0.0 and value.requires_grad


def test_a_neural_sde_solve_ends_at_the_last_save_time():
    sde = _sde()
    out = sde(_sde_y0(), saveat=[0.25, 0.5], entropy=0)
    assert out.solution.ts.tolist() == [0.25, 0.5] and sde._last[0].t_span == (0.0, 0.5)  # was (0, 4)
    probe = _SpanProbe(generator=torch.Generator().manual_seed(0))
    sde.train()(_sde_y0(), saveat=[0.25, 0.5], entropy=0, regularizer=probe)
    assert probe.span == (0.0, 0.5)
    assert torch.equal(sde.eval()(_sde_y0(), saveat=[0.0], entropy=0).ys[0], _sde_y0())


def test_a_fixed_entropy_gives_the_same_path_whatever_the_last_save_time():
    """The Brownian path spans t_span however early the solve ends: a prefix of the save times sees the
    same states."""
    sde = _sde().eval()
    short = sde(_sde_y0(), saveat=[0.5], entropy=123).ys[0]
    long = sde(_sde_y0(), saveat=[0.5, 1.0], entropy=123).ys[0]
    assert torch.allclose(short, long, rtol=1e-4, atol=1e-6)  # the adaptive steps differ, not the path


# ------------------------------------------------------------------ 2: a t_span that requires grad
def test_a_t_span_that_requires_grad_is_refused_with_the_saveat_route():
    T = torch.tensor(2.0, requires_grad=True)
    with pytest.raises(ValueError, match=r"`t_span`.*requires grad.*saveat"):
        NeuralODE(_field(), (0.0, T))
    with pytest.raises(ValueError, match=r"`t_span`.*requires grad"):
        NeuralSDE(CubicDrift(8), DiagonalAffine(2), (torch.tensor(0.0, requires_grad=True), 1.0))
    assert NeuralODE(_field(), (0.0, T.detach())).t_span == (0.0, 2.0)  # a plain tensor still works
    # the route the message gives: the time as a save time that requires grad
    node = NeuralODE(_field(), (0.0, 3.0))
    out = node(_y0(), saveat=T.reshape(1))
    (grad,) = torch.autograd.grad(out.ys.sum(), T)
    assert torch.isfinite(grad) and grad != 0


# ----------------------------------------------------------------------- 3: the torchdiffeq backend
def test_the_torchdiffeq_backend_honours_max_steps_with_a_solve_error():
    node = NeuralODE(_field().double(), backend="torchdiffeq", max_steps=3, rtol=1e-8, atol=1e-8)
    with pytest.raises(
        SolveError, match=r"reached max_steps=3 at t=.* before t1=1 .*Raise `max_steps`"
    ) as info:
        node(_y0(torch.float64))
    assert info.value.solution.status.value == "max_steps"  # was: no limit, 80 evaluations
    assert NeuralODE(_field(), backend="torchdiffeq", max_steps=10)(_y0()).ys.shape == (1, 3, 4)


@pytest.mark.parametrize("saveat", [None, [1.0, 2.0, 3.0]])
def test_the_torchdiffeq_backends_step_limit_is_its_forward_solves_only(saveat):
    """The backward solve keeps torchdiffeq's own limit: with one output interval torchdiffeq's per-interval
    check raised a bare AssertionError in backward(), and a second backward counted on from the first."""
    torch.manual_seed(0)
    field = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 4)).double()
    node = NeuralODE(Autonomous(field), (0.0, 3.0), backend="torchdiffeq", max_steps=12, rtol=1e-7, atol=1e-7)
    out = node(_y0(torch.float64), saveat=saveat)  # the forward solve takes fewer than 12 steps
    loss = out.ys.sum()
    loss.backward(retain_graph=True)  # the backward solves take more
    loss.backward()
    assert out.solution.stats.nfe_adjoint > 2 * 12


def test_the_torchdiffeq_backend_takes_a_step_limit_past_int32():
    """torchdiffeq keeps max_num_steps as an int32: a larger limit is clamped, not an overflow error."""
    assert NeuralODE(_field(), backend="torchdiffeq", max_steps=2**40)(_y0()).ys.shape == (1, 3, 4)


@pytest.mark.parametrize(
    "kwargs, y0, match",
    [
        ({"rtol": -1.0}, None, r"`rtol` must be positive"),
        ({"atol": float("nan")}, None, r"`atol` must be positive"),
        ({}, "nan", r"`y0` must be finite"),
        ({}, "int", r"`y0` must be a floating-point tensor"),
    ],
)
def test_the_torchdiffeq_backend_refuses_what_the_backprop_backend_refuses(kwargs, y0, match):
    state = {None: _y0(), "nan": _y0() * float("nan"), "int": torch.ones(3, 4, dtype=torch.long)}[y0]
    messages = []
    for backend in ("backprop", "torchdiffeq"):
        with pytest.raises(ValueError, match=match) as info:
            NeuralODE(_field(), backend=backend, **kwargs)(state)
        messages.append(str(info.value))
    assert messages[0] == messages[1]  # was: accepted, or torchdiffeq's bare AssertionError


class _BadField(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.lin, self.kind = nn.Linear(4, 4), kind

    def forward(self, t, y):
        out = self.lin(y)
        return {"shape": out[:, :2], "dtype": out.double(), "nan": out * float("nan")}[self.kind]


@pytest.mark.parametrize("kind, match", [("shape", "returned shape"), ("dtype", "returned torch.float64"),
                                         ("nan", r"`f\(t0, y0\)` is not finite")])  # fmt: skip
def test_the_torchdiffeq_backend_checks_the_fields_first_evaluation(kind, match):
    for backend in ("backprop", "torchdiffeq"):
        with pytest.raises(ValueError, match=match):
            NeuralODE(_BadField(kind), backend=backend)(_y0())


def test_max_steps_must_be_a_positive_integer():
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="`max_steps` must be a positive integer"):
            NeuralODE(_field(), backend="torchdiffeq", max_steps=bad)
    assert NeuralODE(_field(), max_steps=np.int64(50)).max_steps == 50  # numpy integers, as odeint takes


# --------------------------------------------------------------------------- 4, 5: save-time inputs
@pytest.mark.parametrize(
    "saveat",
    [
        np.array([0.1, 0.3], np.float32),
        [np.float32(0.1), np.float32(0.3)],
        [torch.tensor(0.1), torch.tensor(0.3)],
        torch.tensor([0.1, 0.3]),
    ],
    ids=["numpy-array", "numpy-scalars", "tensor-scalars", "tensor"],
)
def test_float32_save_times_of_any_container_are_snapped_to_t_span(saveat):
    out = NeuralODE(_field(), (0.0, 0.3))(_y0(), saveat=saveat)
    assert out.ys.shape == (2, 3, 4) and out.solution.ts.tolist()[-1] == 0.3


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_save_time_is_named_as_such(bad):
    with pytest.raises(ValueError, match=r"`saveat` contains NaN or inf"):
        NeuralODE(_field(), (0.0, 0.3))(_y0(), saveat=torch.tensor([0.1, bad]))
    with pytest.raises(ValueError, match=r"`saveat` contains NaN or inf"):
        _sde()(_sde_y0(), saveat=[0.1, bad], entropy=0)


# ------------------------------------------------------------------------------------ 6: schedules
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ConstantSchedule(float("nan")), r"`value`.*finite"),
        (lambda: ConstantSchedule(float("inf")), r"`value`.*finite"),
        (lambda: ConstantSchedule(-1.0), r"`value`.*>= 0"),
        (lambda: ConstantSchedule("1"), r"`value`"),
        (lambda: ExponentialSchedule(float("nan"), 0.1, 10), r"`start`"),
        (lambda: ExponentialSchedule(float("inf"), 0.1, 10), r"`start`"),
        (lambda: ExponentialSchedule(1.0, float("nan"), 10), r"`end`"),
        (lambda: ExponentialSchedule(1.0, 0.0, 10), r"`end`"),
        (lambda: ExponentialSchedule(1.0, 0.1, 2.5), r"`epochs` must be a positive integer"),
        (lambda: ExponentialSchedule(1.0, 0.1, True), r"`epochs` must be a positive integer"),
        (lambda: ExponentialSchedule(1.0, 0.1, float("nan")), r"`epochs` must be a positive integer"),
        (lambda: DelayedSchedule(ConstantSchedule(1.0), float("nan")), r"`delay`"),
        (lambda: DelayedSchedule(ConstantSchedule(1.0), float("inf")), r"`delay`"),
        (lambda: DelayedSchedule(1.0, 2), r"`schedule`"),
    ],
)
def test_schedules_refuse_weights_and_epochs_they_cannot_use(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_valid_schedules_still_work():
    assert ConstantSchedule(0)(3) == 0.0 and ConstantSchedule(np.float32(2.0))(0) == 2.0
    s = ExponentialSchedule(1.0, 0.1, 4.0)
    assert s.epochs == 4 and s(4) == pytest.approx(0.1)
    assert DelayedSchedule(s, 2.0)(2) == 1.0


# ------------------------------------------------------------------ 7: the regularizer's argument
@pytest.mark.parametrize(
    "bad, match",
    [
        (ErrorEstimateRegularizer, r"`regularizer`.*the class ErrorEstimateRegularizer.*Regularizer\(\)"),
        ("error", r"`regularizer`.*'error'"),
        (1.0, r"`regularizer` must be None or a Regularizer instance"),
    ],
)
def test_a_regularizer_that_is_not_an_instance_is_named(bad, match):
    node = NeuralODE(_field()).train()
    with pytest.raises(TypeError, match=match):
        node(_y0(), regularizer=bad)
    with pytest.raises(TypeError, match=match):
        node.eval()(_y0(), regularizer=bad)  # eval mode ignores a regularizer, not a wrong argument
    with pytest.raises(TypeError, match=match):
        _sde().train()(_sde_y0(), regularizer=bad, entropy=0)


# ------------------------------------------------------------------------------------ 8: exports
def test_delayed_schedule_is_exported_with_the_other_schedules():
    import sciml.neural_de as package

    assert package.DelayedSchedule is DelayedSchedule and "DelayedSchedule" in package.__all__


def test_latent_hard_still_solves_through_its_horizon():
    """Its observation grid ends before the horizon; the task appends it so its measurements stay the same."""
    import dataclasses

    from sciml.neural_de.tasks import TASKS, through_horizon

    times = torch.tensor([0.0, 1.0, 2.5])
    assert through_horizon(times, 2.5) is times
    assert through_horizon(times, 3.0).tolist() == [0.0, 1.0, 2.5, 3.0]
    task = dataclasses.replace(TASKS["latent-hard"], n_series=12, n_times=10, latent=3, width=6, hidden=6)
    model = task.model("backprop")
    values, mask, truth = task.data()["train"]
    assert float(model.times[-1]) < task.horizon
    out = model((values[:4], mask[:4], truth[:4]))
    assert float(out.result.solution.ts[-1]) == task.horizon
    assert out.metric_count == int((1 - mask[:4]).sum())  # the prediction has the grid's times only
