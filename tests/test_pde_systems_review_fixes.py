"""Review of PDE systems (several fields, several equations): per-equation residual weights, per-equation
residual statistics, ``output_scale`` of PINN / PIG, the fields' scale warning, the residual's shape, a
reference file's ``fields`` array, per-field initial conditions, ``exact`` without ``test_shape`` and the
conditions' docstrings."""

import math
import warnings

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch
from sciml.problems.pde.derivatives import AutogradDerivatives

from sciml.pinn import PIG, PINN, TrainConfig, Trainer
from sciml.pinn.derivatives import derivatives
from sciml.pinn.strategies import PreconditionedResidual

pytestmark = pytest.mark.usefixtures("one_thread")

_LINE = pde.Interval(0.0, 1.0)
_TINY = TrainConfig(adam_iterations=2, n_residual=32, n_condition=8, eval_every=1, resample_every=0)


def _two_scales(**changes) -> pde.PDEProblem:
    """``u' = π cos(πx)``, ``v' = −1e-3 π sin(πx)`` with ``u(0) = 0``, ``v(0) = 1e-3``: u ~ 1, v ~ 1e-3."""

    def residual(x, d, p):
        s, c = torch.sin(math.pi * x[:, 0]), torch.cos(math.pi * x[:, 0])
        return torch.stack([d["u_x"] - math.pi * c, d["v_x"] + 1e-3 * math.pi * s], dim=1)

    conditions = (
        pde.Dirichlet(field="u", on="x-", name="u0"),
        pde.Dirichlet(field="v", on="x-", value=1e-3, name="v0"),
    )
    base = dict(
        name="two-scales",
        domain=_LINE,
        fields=("u", "v"),
        residual=residual,
        conditions=conditions,
        n_equations=2,
        exact=lambda x: torch.stack([torch.sin(math.pi * x[:, 0]), 1e-3 * torch.cos(math.pi * x[:, 0])], 1),
        test_shape=(101,),
    )
    return pde.PDEProblem(**{**base, **changes})


def _net(out=2, seed=0, **kwargs) -> PINN:
    return PINN(
        1, out, (8,), lower=(0.0,), upper=(1.0,), generator=torch.Generator().manual_seed(seed), **kwargs
    )


def _quiet(*args, **kwargs) -> Trainer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(*args, **kwargs)


# ------------------------------------------------------------------------------ 1. per-equation weights
def test_per_equation_residual_weights_multiply_the_squared_columns_and_the_log_stays_unweighted():
    problem = _two_scales(conditions=())
    x = torch.linspace(0.05, 0.95, 16)[:, None]
    r = problem.residual_of(_net(), x).detach()
    for trainer in (
        _quiet(problem, _net(), _TINY.replace(weights={"residual": (1.0, 4.0)})),
        _quiet(problem.replace(loss_weights={"residual": [1.0, 4.0]}), _net(), _TINY),
    ):
        assert trainer.weights["residual"] == 1.0
        total, terms = trainer.loss({"residual": x})
        weighted = (r[:, 0] ** 2 + 4 * r[:, 1] ** 2).mean() / 2
        assert float(total.detach()) == pytest.approx(float(weighted), rel=1e-5)
        assert float(terms["residual"]) == pytest.approx(float((r**2).mean()), rel=1e-5)  # as logged


def test_per_equation_weights_compose_with_the_preconditioned_residual_and_causal_weighting():
    problem = _two_scales(conditions=())
    x = torch.linspace(0.05, 0.95, 16)[:, None]
    cfg = _TINY.replace(weights={"residual": (1.0, 9.0)}, preconditioned=2.0, preconditioned_points=8)
    trainer = _quiet(problem, _net(), cfg)
    total, terms = trainer.loss({"residual": x})
    pre = PreconditionedResidual(problem.domain, 8, dtype=torch.float32)
    r, rp = (problem.residual_of(trainer.model, y).detach() for y in (x, pre.points))
    scaled = rp * torch.tensor([1.0, 3.0])  # √w per column
    expected = (r[:, 0] ** 2 + 9 * r[:, 1] ** 2).mean() / 2 + 2.0 * pre(scaled)
    assert float(total.detach()) == pytest.approx(float(expected), rel=1e-4)
    assert float(terms["preconditioned"]) == pytest.approx(float(pre(rp)), rel=1e-4)
    heat = pde.PDEProblem(
        "heat2",
        pde.Interval(0.0, 1.0).times(0.0, 1.0),
        ("u", "v"),
        lambda x, d, p: torch.stack([d["u_t"] - d["u_xx"], d["v_t"] - d["v_xx"]], dim=1),
        (pde.InitialValue(field="u"), pde.InitialValue(field="v", name="iv")),
        n_equations=2,
    )
    net = PINN(2, 2, (8,), lower=(0.0, 0.0), upper=(1.0, 1.0), generator=torch.Generator().manual_seed(1))
    causal = _quiet(
        heat, net, _TINY.replace(weights={"residual": (1.0, 0.0)}, causal_chunks=4, causal_eps=0.0)
    )
    xt = torch.rand(64, 2, generator=torch.Generator().manual_seed(2))
    points = {
        "residual": xt,
        "initial": xt[:8] * torch.tensor([1.0, 0.0]),
        "iv": xt[:8] * torch.tensor([1.0, 0.0]),
    }
    total, terms = causal.loss(points)
    rh = heat.residual_of(net, xt).detach()
    chunk = (xt[:, 1] * 4).long().clamp(0, 3)
    means = torch.stack([(rh[chunk == k, 0] ** 2).mean() / 2 for k in range(4)])  # weight 0 on v
    residual_part = float((total - terms["initial"] - terms["iv"]).detach())
    assert residual_part == pytest.approx(float(means.mean()), rel=1e-4)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"residual": (1.0, 2.0, 3.0)}, r"3 per-equation weight\(s\).*n_equations = 2.*\(1\.0, 1\.0\)"),
        ({"residual": (1.0, -1.0)}, r"`weights\['residual'\]` must be a finite number ≥ 0 or a tuple"),
        ({"residual": (1.0, math.inf)}, r"one per equation \(n_equations = \?\)"),
        ({"residual": (0.0, 0.0)}, r"every equation weight 0"),
        ({"u0": (1.0, 2.0)}, r"loss weight 'u0' must be a finite number ≥ 0.*only 'residual'"),
    ],
)
def test_per_equation_weights_are_checked_naming_n_equations(weights, match):
    with pytest.raises(ValueError, match=match):
        _quiet(_two_scales(), _net(), _TINY.replace(weights=weights))


def test_problem_loss_weights_per_equation_are_checked_against_n_equations():
    with pytest.raises(ValueError, match=r"`loss_weights\['residual'\]` has 1 .* n_equations = 2"):
        _two_scales(loss_weights={"residual": (1.0,)})
    assert _two_scales(loss_weights={"residual": np.array([1, 2])}).weight("residual") == (1.0, 2.0)


def test_tuple_weights_survive_to_dict_resume_and_grad_norm_balance(tmp_path):
    cfg = _TINY.replace(
        adam_iterations=6, weights={"residual": [1.0, 1e4]}, balance="grad_norm", balance_every=2
    )
    assert cfg.to_dict()["weights"] == {"residual": (1.0, 1e4)}
    path = tmp_path / "run.pt"
    first = _quiet(_two_scales(), _net(), cfg, checkpoint=path).fit(progress=False)
    assert all(math.isfinite(e["loss"]) for e in first.history)
    again = _quiet(_two_scales(), _net(), cfg, checkpoint=path).fit(progress=False, resume=True)
    assert again.history == first.history


def test_per_equation_weights_teach_a_small_field_that_equal_weights_leave_unlearned():
    def run(**kwargs):
        cfg = TrainConfig(
            adam_iterations=200, n_residual=64, n_condition=1, eval_every=200, resample_every=0, lr=1e-2,
            dtype="float64", **kwargs,
        )  # fmt: skip
        net = PINN(1, 2, (16, 16), lower=(0.0,), upper=(1.0,), generator=torch.Generator().manual_seed(0))
        return _quiet(_two_scales(), net, cfg).fit(progress=False).rel_l2_fields["v"]

    plain, weighted = run(), run(weights={"residual": (1.0, 1e6), "v0": 1e6})
    assert plain > 1.0  # v's error stays above 100 %
    assert weighted < 0.1 * plain


# ------------------------------------------------------------------------------ 2. per-equation statistics
def test_residual_statistics_name_each_equation():
    trainer = _quiet(_two_scales(), _net(), _TINY)
    stats = trainer.residual_statistics()
    assert {"residual_rms_0", "residual_max_0", "residual_rms_1", "residual_max_1"} <= set(stats)
    assert stats["residual_rms"] == pytest.approx(
        math.sqrt((stats["residual_rms_0"] ** 2 + stats["residual_rms_1"] ** 2) / 2), rel=1e-5
    )
    assert stats["residual_max"] == pytest.approx(max(stats["residual_max_0"], stats["residual_max_1"]))
    assert "residual_rms_1" in trainer.fit(progress=False).history[-1]


# ------------------------------------------------------------------------------ 3. output_scale
@pytest.mark.parametrize("kind", ["pinn", "pig"])
def test_output_scale_multiplies_the_outputs_and_the_jet_derivatives(kind):
    def build(scale):
        g = torch.Generator().manual_seed(3)
        if kind == "pinn":
            return PINN(2, 2, (8, 8), lower=(0.0, 0.0), upper=(1.0, 2.0), output_scale=scale, generator=g)
        return PIG(2, 2, 16, sigma=0.5, lower=(0.0, 0.0), upper=(1.0, 2.0), output_scale=scale, generator=g)

    plain, scaled = build(None), build((2.0, 1e-3))
    assert "output_scale" in scaled.state_dict() and "output_scale" not in plain.state_dict()
    x = torch.rand(16, 2, generator=torch.Generator().manual_seed(4)).double()
    plain, scaled = plain.double(), scaled.double()
    assert torch.allclose(scaled(x), plain(x) * torch.tensor([2.0, 1e-3], dtype=torch.float64))
    keys = ["u", "u_x", "u_xx", "v_y", "v_yy"]
    names, fields = ("x", "y"), ("u", "v")
    requested = {(0, ()), (0, (0,)), (0, (0, 0)), (1, (1,)), (1, (1, 1))}
    jet = derivatives(scaled, x, names, fields, requested, engine="jet")
    auto = AutogradDerivatives(scaled, x, names, fields)
    for key in keys:
        torch.testing.assert_close(jet[key], auto[key], rtol=1e-9, atol=1e-12)
    reference = AutogradDerivatives(plain, x, names, fields)
    factor = scaled.output_scale[1]  # (1e-3 as stored: a float32 buffer, then cast)
    torch.testing.assert_close(jet["v_yy"], factor * reference["v_yy"], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("scale", [0.0, -1.0, (1.0,), (1.0, math.nan), "big"])
def test_output_scale_is_checked(scale):
    with pytest.raises(ValueError, match=r"`output_scale` must be a positive finite number or 2 of them"):
        _net(output_scale=scale)
    with pytest.raises(ValueError, match=r"`output_scale`"):
        PIG(1, 2, 4, output_scale=scale)


def test_output_scale_teaches_a_small_field():
    def run(scale):
        cfg = TrainConfig(
            adam_iterations=200, n_residual=64, n_condition=1, eval_every=200, resample_every=0, lr=1e-2,
            dtype="float64",
        )  # fmt: skip
        g = torch.Generator().manual_seed(0)
        net = PINN(1, 2, (16, 16), lower=(0.0,), upper=(1.0,), output_scale=scale, generator=g)
        return _quiet(_two_scales(), net, cfg).fit(progress=False).rel_l2_fields["v"]

    plain, scaled = run(None), run((1.0, 1e-3))
    assert plain > 1.0
    assert scaled < 0.1 * plain


# ------------------------------------------------------------------------------ 4. scale warning
def test_fields_of_very_different_scales_warn_once_with_both_fixes():
    fixes = r"differ by more than 100× \(u 0\.7\d*, v 0\.0007\d*\).*output_scale=.*"
    fixes += r"weights=\{'residual': \(1\.0, 1000000\.0\)\}"
    with pytest.warns(UserWarning, match=fixes) as record:
        Trainer(_two_scales(), _net(), _TINY)
    assert sum("differ by more than" in str(w.message) for w in record) == 1
    no_reference = _two_scales(exact=None)  # the conditions' data: u(0) = 0 is all zero and left out
    data = pde.Observations(field="u", points=np.array([[0.5]]), values=np.array([2.0]))
    with pytest.warns(UserWarning, match=r"the conditions' data differ by more than 100× \(u 2, v 0\.001\)"):
        Trainer(no_reference.replace(conditions=(*no_reference.conditions, data)), _net(), _TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(no_reference, _net(), _TINY)  # (only v has nonzero data)
        both = _TINY.replace(weights={"residual": (1.0, 1e6)})
        Trainer(_two_scales(), _net(output_scale=(1.0, 1e-3)), both)  # both fixes: nothing to say
    for model, config in ((_net(output_scale=(1.0, 1e-3)), _TINY), (_net(), both)):  # one alone: warned
        with pytest.warns(UserWarning, match=r"differ by more than 100×.*the two together work best"):
            Trainer(_two_scales(), model, config)


# ------------------------------------------------------------------------------ 5. residual shape
def test_the_residual_shape_is_checked_with_a_fix():
    base = _two_scales()
    for residual, match in (
        (lambda x, d, p: d["u_x"] - d["v_x"], r"returned \(8,\).*\(8, 2\) \(n_equations = 2\).*leave equat"),
        (lambda x, d, p: [d["u_x"], d["v_x"]], r"returned list .*return torch\.stack\(\[\.\.\.\], dim=1\)"),
        (lambda x, d, p: torch.stack([d["u_x"], d["v_x"]]), r"\(2, 8\).*along dim=1 \(or transpose\)"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            _quiet(base.replace(residual=residual), _net(), _TINY)
    one = pde.PDEProblem("one", _LINE, ("u",), lambda x, d, p: d["u_x"] - 1, (pde.Dirichlet(on="x-"),))
    _quiet(one, _net(1), _TINY)  # (n,) for one equation stays fine


# ------------------------------------------------------------------------------ 6. reference `fields`
def test_a_reference_file_with_fields_is_put_in_the_problems_order(tmp_path):
    problem = _two_scales(exact=None, conditions=())
    points = np.linspace(0.025, 0.975, 20)[:, None]
    u, v = np.sin(np.pi * points[:, 0]), 1e-3 * np.cos(np.pi * points[:, 0])
    path = tmp_path / "ref.npz"
    np.savez(path, points=points, values=np.stack([v, u], 1), fields=np.array(["v", "u"]))
    trainer = _quiet(problem, _net(), _TINY, reference=path)
    np.testing.assert_allclose(trainer._test_u.cpu().numpy(), np.stack([u, v], 1))
    bad = tmp_path / "bad.npz"
    np.savez(bad, points=points, values=np.stack([v, u], 1), fields=np.array(["v", "w"]))
    with pytest.raises(ValueError, match=r"array 'fields' \['v', 'w'\] .* problem's fields \['u', 'v'\]"):
        _quiet(problem, _net(), _TINY, reference=bad)


# ------------------------------------------------------------------------------ 7. per-field initial value
def test_each_field_differentiated_in_time_needs_its_initial_condition():
    domain = pde.Interval(0.0, 1.0).times(0.0, 1.0)
    net = PINN(2, 3, (8,), lower=(0.0, 0.0), upper=(1.0, 1.0))
    residual = lambda x, d, p: torch.stack([d["u_t"] - d["p_x"], d["v_tt"] - d["v_xx"], d["p"] - d["u"]], 1)  # noqa: E731
    initial = (pde.InitialValue(field="u"), pde.InitialValue(field="v", name="v0"))
    problem = pde.PDEProblem("sys", domain, ("u", "v", "p"), residual, initial[:1], n_equations=3)
    with pytest.warns(UserWarning, match=r"no InitialValue and no InitialVelocity condition for field 'v'.*"
                      r"\['v_tt'\].*InitialValue\(field='v', value=u0\)") as record:  # fmt: skip
        Trainer(problem, net, _TINY)
    assert not any("field 'u'" in str(w.message) or "field 'p'" in str(w.message) for w in record)
    with pytest.warns(UserWarning, match=r"no InitialVelocity condition for field 'v'.*InitialVelocity\("):
        Trainer(problem.replace(conditions=initial), net, _TINY)
    speed = pde.InitialVelocity(field="v", name="v1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(problem.replace(conditions=(*initial, speed)), net, _TINY)  # p needs none


# ------------------------------------------------------------------------------ 8. exact without test_shape
def test_an_exact_solution_without_test_shape_uses_the_default_grid():
    problem = _two_scales(test_shape=None)
    assert problem.test_shape == (1001,)
    square = pde.Box(("x", "y"), (0.0, 0.0), (1.0, 1.0))
    moved = problem.replace(
        domain=square, conditions=(), residual=lambda x, d, p: torch.stack([d["u_x"], d["v_y"]], 1)
    )
    assert moved.test_shape == (201, 201)
    assert problem.replace(test_shape=(11,)).test_shape == (11,)


# ------------------------------------------------------------------------------ 9. condition docstrings
@pytest.mark.parametrize(
    "kind",
    [pde.Dirichlet, pde.Neumann, pde.Robin, pde.InitialValue, pde.InitialVelocity, pde.Observations],
)
def test_condition_docstrings_list_field_and_name(kind):
    doc = kind.__doc__
    assert "        field:" in doc and "several" in doc and "        name:" in doc, f"{kind.__name__}: {doc}"


def test_a_numpy_scalar_weight_is_a_number_and_the_loss_sums_its_terms_in_a_fixed_order(tmp_path):
    """The total loss adds its terms in the problem's order, not in a set's (which changes with
    PYTHONHASHSEED, and so would the float32 sum's last bits and an L-BFGS run)."""
    import subprocess
    import sys

    assert TrainConfig(weights={"residual": np.array(2.0)}).weights["residual"] == 2.0
    script = tmp_path / "total.py"
    script.write_text(
        "import torch, sciml.problems.pde as pde\n"
        "from sciml.pinn import PINN, TrainConfig, Trainer\n"
        "walls = [pde.Neumann(value=0.1 * k + 0.3, on=lambda x, k=k: x[:, 0] > k / 10, name=f'w{k}')\n"
        "         for k in range(8)]\n"
        "p = pde.PDEProblem(name='many', domain=pde.Interval(0.0, 1.0), fields=('u',),\n"
        "                   residual=lambda x, d, p: d['u_xx'] + 1.0, conditions=walls)\n"
        "net = PINN(1, 1, (8,), lower=(0.0,), upper=(1.0,), generator=torch.Generator().manual_seed(0))\n"
        "t = Trainer(p, net, TrainConfig(adam_iterations=1, n_residual=64, n_condition=64))\n"
        "print(float(t.loss(t.sample())[0]).hex())\n"
    )
    totals = set()
    for seed in ("1", "2", "3", "4", "5", "6"):
        env = {**__import__("os").environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}
        run = [sys.executable, str(script)]
        out = subprocess.run(run, capture_output=True, text=True, env=env, check=True)
        totals.add(out.stdout.strip())
    assert len(totals) == 1, totals


def test_the_scale_warning_suggests_an_output_scale_for_every_column_of_a_corner_split_network():
    """On an L-shape the hard constraint has a corner factor and the network two columns per field (N₁, N₂):
    the suggested ``output_scale`` has one entry per column, so it can be pasted as it is."""
    from sciml.pinn import Constrained

    exact = lambda x: torch.stack([x[:, 0] + 2.0, 1e-3 * (x[:, 1] + 2.0)], 1)  # noqa: E731
    problem = pde.PDEProblem(
        name="l-pair", domain=pde.LShape(), fields=("u", "v"), n_equations=2,
        residual=lambda x, d, p: torch.stack([d["u_xx"] + d["u_yy"], d["v_xx"] + d["v_yy"]], 1),
        conditions=(pde.Dirichlet(value=lambda x: exact(x)[:, 0], field="u", name="u-walls"),
                    pde.Dirichlet(value=lambda x: exact(x)[:, 1], field="v", name="v-walls")),
        exact=exact, test_shape=(21, 21), constraint="auto",
    )  # fmt: skip
    assert problem.constraint.corner is not None
    lower, upper = problem.domain.lower, problem.domain.upper
    net = PINN(2, Constrained.outputs(problem.constraint, 2), (8,), lower=lower, upper=upper)
    with pytest.warns(UserWarning, match=r"output_scale=\(1\.0, 0\.001, 1\.0, 0\.001\)"):
        Trainer(problem, Constrained(net, problem.constraint), _TINY)
    scaled = PINN(2, 4, (8,), lower=lower, upper=upper, output_scale=(1.0, 1e-3, 1.0, 1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = _TINY.replace(weights={"residual": (1, 1e6)})
        Trainer(problem, Constrained(scaled, problem.constraint), both)
