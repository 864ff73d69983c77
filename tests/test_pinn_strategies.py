"""Training strategies (causal weighting, RAD, gradient-norm balancing, the preconditioned residual) and the
periodic PINN embedding."""

import math

import pytest
import torch
from sciml.problems.pde import Box, Dirichlet, PDEProblem
from sciml.problems.pde.derivatives import AutogradDerivatives

from sciml.pinn import PINN, TrainConfig, Trainer
from sciml.pinn.derivatives import JetDerivatives, derivatives
from sciml.pinn.strategies import GradNormBalance, PreconditionedResidual, causal_residual, rad_points

pytestmark = pytest.mark.usefixtures("one_thread")


def test_causal_weights_follow_the_formula():
    t = torch.tensor([0.1, 0.2, 0.6, 0.9, 0.95], dtype=torch.float64)
    squares = torch.tensor([1.0, 3.0, 4.0, 0.5, 1.5], dtype=torch.float64, requires_grad=True)
    loss, weights = causal_residual(squares, t, 0.0, 1.0, chunks=2, eps=0.5)
    means = torch.tensor(
        [2.0, 2.0], dtype=torch.float64
    )  # chunk [0, .5): (1 + 3)/2; [.5, 1]: (4 + .5 + 1.5)/3
    expected_w = torch.tensor([1.0, math.exp(-0.5 * 2.0)], dtype=torch.float64)
    torch.testing.assert_close(weights, expected_w)
    torch.testing.assert_close(loss, (expected_w * means).mean())
    # the weights are constants in the gradient: d loss / d squares_i = w_chunk / (M · count_chunk)
    (grad,) = torch.autograd.grad(loss, squares)
    torch.testing.assert_close(
        grad, torch.tensor([0.25, 0.25, *([expected_w[1] / 6] * 3)], dtype=torch.float64)
    )
    plain, w0 = causal_residual(squares, t, 0.0, 1.0, chunks=2, eps=0.0)
    torch.testing.assert_close(plain, means.mean())
    torch.testing.assert_close(w0, torch.ones(2, dtype=torch.float64))


def test_rad_concentrates_points_where_the_residual_is_large():
    g = torch.Generator().manual_seed(0)
    pool = torch.rand(4000, 1, generator=g, dtype=torch.float64)

    def residual(x):
        return torch.where(x[:, 0] < 0.1, 100.0, 0.0)

    chosen = rad_points(pool, residual, 500, g, k=1.0, c=0.01)
    assert chosen.shape == (500, 1)
    assert (chosen[:, 0] < 0.1).float().mean() > 0.6  # 10 % of the pool, most of the choice
    assert len(torch.unique(chosen)) == 500  # without replacement
    uniform = rad_points(pool, residual, 500, g, k=1.0, c=1e6)
    assert (uniform[:, 0] < 0.1).float().mean() < 0.2
    zero = rad_points(pool, lambda x: torch.zeros(len(x)), 500, g)  # nothing to adapt to: uniform
    assert zero.shape == (500, 1)


def test_grad_norm_balance_weights_by_inverse_gradient_norms():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    terms = {"a": 3 * p.sum(), "b": p.sum()}  # gradient norms 3·√2 and √2
    balance = GradNormBalance(["a", "b"], {"a": 1.0, "b": 1.0}, every=10, alpha=0.0)
    balance.update(terms, [p])
    assert balance.factors["a"] == pytest.approx(4 / 3) and balance.factors["b"] == pytest.approx(4.0)
    smooth = GradNormBalance(["a", "b"], {"a": 2.0, "b": 1.0}, every=10, alpha=0.5)
    smooth.update(terms, [p])  # factors of the unweighted norms (4/3 and 4) multiply the weights 2 and 1
    assert smooth.factors == pytest.approx({"a": 0.5 + 0.5 * 4 / 3, "b": 0.5 + 0.5 * 4})
    assert smooth.weights()["a"] == pytest.approx(2 * (0.5 + 0.5 * 4 / 3))
    assert balance.due(20) and not balance.due(21)


def test_periodic_pinn_is_exactly_periodic_and_its_jet_matches_autograd():
    g = torch.Generator().manual_seed(0)
    model = PINN(
        2, 1, (16, 16), lower=(-1, 0), upper=(1, 2), periodic=(0,), harmonics=3, generator=g
    ).double()
    t = torch.rand(20, dtype=torch.float64) * 2
    left, right = torch.stack([-torch.ones(20), t], 1).double(), torch.stack([torch.ones(20), t], 1).double()
    torch.testing.assert_close(model(left), model(right), rtol=0, atol=1e-6)  # float32 phases of π
    x = torch.rand(30, 2, dtype=torch.float64) * torch.tensor([2.0, 2.0]) - torch.tensor([1.0, 0.0])
    keys = {(0, dims) for dims in [(), (0,), (1,), (0, 0), (1, 1)]}
    fast = derivatives(model, x, ("x", "t"), ("u",), keys)
    slow = AutogradDerivatives(model, x, ("x", "t"), ("u",))
    assert isinstance(fast, JetDerivatives)
    for key in ("u", "u_x", "u_t", "u_xx", "u_tt"):
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-11, atol=1e-11, msg=key)


def test_periodic_options_are_validated():
    with pytest.raises(ValueError, match="periodic"):
        PINN(2, 1, periodic=(2,))
    with pytest.raises(ValueError, match="twice"):
        PINN(2, 1, periodic=(0, 0))
    with pytest.raises(ValueError, match="harmonics"):
        PINN(2, 1, periodic=(0,), harmonics=0)
    with pytest.raises(ValueError, match="cannot be combined"):
        PINN(2, 1, periodic=(0,), fourier_features=4)


def test_config_validates_the_strategy_settings():
    for bad in (
        {"causal_chunks": -1},
        {"causal_eps": -1.0},
        {"causal_eps": math.nan},
        {"rad": 1},
        {"rad_pool": 0},
        {"rad_c": -1.0},
        {"balance": "ntk"},
        {"balance_every": 0},
        {"balance_alpha": 1.0},
        {"preconditioned": -1.0},
        {"preconditioned": math.inf},
        {"preconditioned_points": 1},
        {"preconditioned_points": -4},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)


def _model(seed=0):
    return PINN(2, 1, (16, 16), lower=(0, 0), upper=(1, 1), generator=torch.Generator().manual_seed(seed))


STRATEGIES = dict(
    causal_chunks=8, causal_eps=1.0, rad=True, balance="grad_norm", balance_every=5, preconditioned=1.0,
    preconditioned_points=8,
)  # fmt: skip


def test_all_strategies_train_and_resume_bit_for_bit(tmp_path, heat_problem, interrupted_trainer):
    problem = heat_problem()
    config = TrainConfig(
        adam_iterations=80, lbfgs_iterations=0, lr=1e-2, n_residual=128, n_condition=32, resample_every=10,
        eval_every=40, checkpoint_every=40, **STRATEGIES,
    )  # fmt: skip
    straight = _model()
    trainer = Trainer(problem, straight, config, checkpoint=tmp_path / "a.pt")
    before = trainer.evaluate()
    result = trainer.fit(progress=False)
    assert result.rel_l2 < 0.5 * before, (before, result.rel_l2)
    assert set(trainer._balance.factors) == {"dirichlet", "initial", "residual", "preconditioned"}
    assert set(trainer._balance.factors.values()) != {1.0}
    assert "loss_preconditioned" in result.history[-1]

    Interrupted = interrupted_trainer(tmp_path / "b.pt", 40)

    with pytest.raises(KeyboardInterrupt):
        Interrupted(problem, _model(), config, checkpoint=tmp_path / "b.pt").fit(progress=False)
    resumed = _model(seed=1)
    again = Trainer(problem, resumed, config, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)
    assert again.iterations == 80
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_causal_weighting_needs_a_time_coordinate():
    problem = PDEProblem(
        "steady",
        Box(("x",), (0.0,), (1.0,)),
        ("u",),
        lambda x, d, p: d["u_xx"] + math.pi**2 * torch.sin(math.pi * d["x"]),
        (Dirichlet(on=("x-", "x+")),),
        exact=lambda x: torch.sin(math.pi * x[:, 0]),
        test_shape=(11,),
    )
    model = PINN(1, 1, (8,), lower=(0,), upper=(1,))
    with pytest.raises(ValueError, match="no time coordinate"):
        Trainer(problem, model, TrainConfig(causal_chunks=4))


def test_bench_pde_skips_deepxde_with_a_message_when_it_is_missing(monkeypatch, tmp_path, capsys):
    import sciml.bench.deepxde_baseline as baseline
    from sciml.cli import main

    monkeypatch.setattr(baseline, "available", lambda: "deepxde is not installed (test)")
    out = str(tmp_path / "b")
    assert (
        main(["bench", "pde", "--quick", "--problems", "legendre", "--models", "pinn,deepxde", "--out", out])
        == 0
    )
    text = capsys.readouterr().out
    assert "DeepXDE baseline skipped: deepxde is not installed (test)" in text
    assert "smoke run" in text


def test_rwf_starts_from_the_plain_network_and_factorises_each_weight():
    torch.manual_seed(0)
    plain = PINN(2, 1, (16, 16), periodic=(0,), generator=torch.Generator().manual_seed(3)).double()
    rwf = PINN(
        2, 1, (16, 16), periodic=(0,), rwf=True, rwf_mean=0.5, generator=torch.Generator().manual_seed(3)
    ).double()
    x = torch.rand(40, 2, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(rwf(x), plain(x), rtol=1e-6, atol=1e-6)  # same function at initialisation
    assert len(rwf.rwf_scales) == len(rwf.layers)
    for s, layer, w in zip(rwf.rwf_scales, rwf.layers, rwf.dense_weights()):
        assert s.shape == (layer.weight.shape[0],)
        torch.testing.assert_close(w, torch.exp(s)[:, None] * layer.weight)  # W = diag(exp(s)) V
    scales = torch.cat([s.detach() for s in rwf.rwf_scales])
    assert abs(float(scales.mean()) - 0.5) < 0.05 and 0.05 < float(scales.std()) < 0.15
    # the scales are trained: a gradient step changes the function through s alone
    rwf(x).sum().backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in rwf.rwf_scales)
    keys = {(0, dims) for dims in [(), (0,), (1,), (0, 0), (1, 1)]}
    fast = derivatives(rwf, x, ("x", "t"), ("u",), keys)
    slow = AutogradDerivatives(rwf, x, ("x", "t"), ("u",))
    for key in ("u", "u_x", "u_t", "u_xx", "u_tt"):
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-11, atol=1e-11, msg=key)
    with pytest.raises(ValueError, match="rwf_std"):
        PINN(2, 1, rwf=True, rwf_std=-0.1)
    with pytest.raises(ValueError, match="rwf"):
        PINN(2, 1, rwf=1)


def _dense_norm(domain, n, r_inside):
    """The preconditioned norm by dense sine matrices (float64), for comparison with the FFT form."""
    j = torch.arange(1, n + 1, dtype=torch.float64)
    sine = torch.sin(math.pi * j[:, None] * j[None, :] / (n + 1)) * math.sqrt(2 / (n + 1))
    axes = [lo + (hi - lo) * j / (n + 1) for lo, hi in zip(domain.lower, domain.upper)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, domain.ndim)
    field = torch.zeros(len(grid), dtype=torch.float64)
    field[domain.inside(grid)] = r_inside
    c = sine @ field.reshape(n, n) @ sine.T
    eig = sum(
        ((math.pi * j / (hi - lo)) ** 2).reshape([-1 if a == b else 1 for b in range(2)])
        for a, (lo, hi) in enumerate(zip(domain.lower, domain.upper))
    )
    return float(((c / eig) ** 2).sum() / n**2)


def test_preconditioned_residual_inverts_the_laplacian_on_the_grid():
    """For r = −Δe with e a sine mode of the box, the norm is mean(e²) on the grid (exact), for any box."""
    box = Box(("x", "t"), (-1.0, 0.0), (1.0, 3.0), time="t")
    norm = PreconditionedResidual(box, 24, dtype=torch.float64)
    x = norm.points
    assert x.shape == (24 * 24, 2) and bool(box.inside(x).all())
    e = 0.7 * torch.sin(3 * math.pi * (x[:, 0] + 1) / 2) * torch.sin(2 * math.pi * x[:, 1] / 3)
    e2 = -0.2 * torch.sin(11 * math.pi * (x[:, 0] + 1) / 2) * torch.sin(5 * math.pi * x[:, 1] / 3)
    eig = (3 * math.pi / 2) ** 2 + (2 * math.pi / 3) ** 2  # −Δ of each mode: eigenvalue × mode
    eig2 = (11 * math.pi / 2) ** 2 + (5 * math.pi / 3) ** 2
    r = eig * e + eig2 * e2
    expected = ((e + e2) ** 2).mean()
    torch.testing.assert_close(norm(r), expected, rtol=1e-12, atol=0)
    # two equations: the sum of the two norms
    torch.testing.assert_close(norm(torch.stack([r, 2 * r], 1)), 5 * expected, rtol=1e-12, atol=0)
    # against dense sine matrices, for a random residual
    g = torch.randn(len(x), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert float(norm(g)) == pytest.approx(_dense_norm(box, 24, g), rel=1e-12)


def test_preconditioned_residual_on_a_disk_counts_only_points_inside():
    from sciml.problems.pde import Disk

    disk = Disk((0.0, 0.0), 1.0)
    norm = PreconditionedResidual(disk, 20, dtype=torch.float64)
    assert 0 < len(norm.points) < 400 and bool(disk.inside(norm.points).all())
    r = torch.cos(norm.points[:, 0] * 3) + norm.points[:, 1]
    assert float(norm(r)) == pytest.approx(_dense_norm(disk, 20, r), rel=1e-12)
    with pytest.raises(ValueError, match="inside the domain"):
        PreconditionedResidual(Disk((0.0, 0.0), 1.0) - Disk((0.0, 0.0), 0.999), 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="preconditioned_points"):
        PreconditionedResidual(disk, 1, dtype=torch.float64)


def test_preconditioned_residual_gradient_float64():
    box = Box(("x", "y", "z"), (0.0, 0.0, 0.0), (1.0, 2.0, 0.5))
    norm = PreconditionedResidual(box, 5, dtype=torch.float64)
    r = torch.randn(len(norm.points), 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (r,))


def test_preconditioned_residual_lets_a_pig_learn_a_high_wavenumber_helmholtz_problem():
    """u'' + u = q with u = sin 6πx: the pointwise loss weighs a smooth error ~1000× below the solution's
    frequency, and along L-BFGS the PIG's error grows; with the preconditioned term it falls (the mechanism
    of the suite's high-wavenumber Helmholtz problem, README)."""
    from sciml.problems.pde import HardConstraint

    from sciml.pinn import PIG, Constrained

    w = 6 * math.pi

    def exact(x):
        return torch.sin(w * x[:, 0])

    problem = PDEProblem(
        "helmholtz-1d", Box(("x",), (-1.0,), (1.0,)), ("u",),
        lambda x, d, p: d["u_xx"] + d["u"] + (w**2 - 1) * exact(x), (Dirichlet(value=exact),),
        exact=exact, test_shape=(401,), loss_weights={"residual": w**-4},
        constraint=HardConstraint(
            particular=lambda x: torch.zeros_like(x[:, 0]), factor=lambda x: 1 - x[:, 0] ** 2,
            enforces=("dirichlet",),
        ),
    )  # fmt: skip
    errors = {}
    for weight in (0.0, 1.0):
        generator = torch.Generator().manual_seed(0)
        pig = PIG(1, 1, n_gaussians=48, sigma=0.05, lower=(-1,), upper=(1,), generator=generator)
        config = TrainConfig(
            adam_iterations=0, lbfgs_iterations=100, n_residual=128, resample_every=10, preconditioned=weight
        )
        model = Constrained(pig, problem.constraint)
        errors[weight] = Trainer(problem, model, config).fit(progress=False).rel_l2
    assert errors[0.0] > 0.5 and errors[1.0] < 0.3, errors


def test_the_disk_helmholtz_example_runs(monkeypatch, capsys):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "helmholtz_disk_preconditioned.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--iterations", "3"])
    runpy.run_path(str(script), run_name="__main__")
    text = capsys.readouterr().out
    assert "preconditioned=0: rel. L2 on the disk" in text and "preconditioned=100: rel. L2" in text
