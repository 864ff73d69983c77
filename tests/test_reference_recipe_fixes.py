"""Refusals of the built-in reference recipes for problems they cannot solve (instead of wrong references)."""

import math

import pytest
import torch
from sciml.problems import pde
from sciml.solvers.fd.reference import reference_solution

D = 0.1


def _heat_residual(x, d, p):
    return d["u_t"] - p["D"] * d["u_xx"]


def _semilinear(conditions, lower=0.0, upper=1.0):
    return pde.PDEProblem(
        name="sl-heat",
        domain=pde.Interval(lower, upper).times(0.0, 0.1),
        fields=("u",),
        residual=_heat_residual,
        conditions=conditions,
        params={"D": D},
        reference=pde.SemilinearReference(terms=lambda p: {(0, 2): p["D"]}, n_points=64, dt=1e-3, n_times=6),
    )


def _nld(conditions, domain=None, exponent=0, residual=_heat_residual):
    return pde.PDEProblem(
        name="nld-heat",
        domain=domain or pde.Interval(0.0, 1.0).times(0.0, 0.1),
        fields=("u",),
        residual=residual,
        conditions=conditions,
        params={"D": D},
        reference=pde.NonlinearDiffusionReference(exponent=exponent, n_intervals=16, stride=1, n_times=3),
    )


def _sine(x):
    return torch.sin(math.pi * x[:, 0])


def test_semilinear_checks_dirichlet_walls(tmp_path):
    u0 = pde.InitialValue(value=lambda x: x[:, 0] * (1 - x[:, 0]))
    with pytest.raises(ValueError, match=r"(?s)'dirichlet'.*Trainer\(reference="):
        reference_solution(_semilinear((pde.Dirichlet(value=0.0), u0)), directory=tmp_path)
    odd = pde.InitialValue(value=lambda x: -_sine(x))  # zero walls hold by symmetry, as for Burgers
    reference_solution(_semilinear((pde.Dirichlet(value=0.0), odd), -1.0, 1.0), directory=tmp_path)


@pytest.mark.parametrize("condition", [pde.Neumann(value=0.0, on="x+"), pde.Robin(on="x-")])
def test_semilinear_refuses_neumann_and_robin(tmp_path, condition):
    problem = _semilinear((condition, pde.InitialValue(value=lambda x: torch.cos(2 * math.pi * x[:, 0]))))
    with pytest.raises(ValueError, match=type(condition).__name__):
        reference_solution(problem, directory=tmp_path)


def test_semilinear_refuses_non_periodic_initial_value(tmp_path):
    with pytest.raises(ValueError, match="not periodic"):
        reference_solution(_semilinear((pde.InitialValue(value=lambda x: x[:, 0]),)), directory=tmp_path)


def test_nonlinear_diffusion_refuses_time_dependent_walls(tmp_path):
    walls = pde.Dirichlet(value=lambda x: torch.exp(-x[:, 1]) * torch.cos(math.pi * x[:, 0]))
    problem = _nld((walls, pde.InitialValue(value=lambda x: torch.cos(math.pi * x[:, 0]))))
    with pytest.raises(ValueError, match="constant.*'dirichlet'"):
        reference_solution(problem, directory=tmp_path)


def test_nonlinear_diffusion_refuses_non_box_domain(tmp_path):
    problem = _nld(
        (pde.Dirichlet(value=0.0), pde.InitialValue(value=lambda x: 1 - x[:, 0] ** 2 - x[:, 1] ** 2)),
        domain=pde.Disk((0.0, 0.0), 1.0).times(0.0, 0.1),
        residual=lambda x, d, p: d["u_t"] - p["D"] * (d["u_xx"] + d["u_yy"]),
    )
    with pytest.raises(ValueError, match="box"):
        reference_solution(problem, directory=tmp_path)


def test_nonlinear_diffusion_refuses_predicate_dirichlet(tmp_path):
    left = pde.Dirichlet(value=0.0, on=lambda x: x[:, 0] < 0.5, name="left")
    problem = _nld((left, pde.Dirichlet(value=0.0, on="x+", name="right"), pde.InitialValue(value=_sine)))
    with pytest.raises(ValueError, match="'left'.*predicate"):
        reference_solution(problem, directory=tmp_path)


def test_nonlinear_diffusion_refuses_neumann_beside_dirichlet(tmp_path):
    conditions = (pde.Dirichlet(value=0.0), pde.Neumann(value=0.0, on="x+"), pde.InitialValue(value=_sine))
    with pytest.raises(ValueError, match="'neumann'"):
        reference_solution(_nld(conditions), directory=tmp_path)


def test_nonlinear_diffusion_refuses_negative_u_with_odd_exponent(tmp_path):
    def residual(x, d, p):
        return d["u_t"] - p["D"] * (d["u"] * d["u_xx"] + d["u_x"] ** 2)

    conditions = (pde.Dirichlet(value=0.0), pde.InitialValue(value=lambda x: -_sine(x)))
    with pytest.raises(ValueError, match="minimum -1"):
        reference_solution(_nld(conditions, exponent=1, residual=residual), directory=tmp_path)

    def residual2(x, d, p):
        return d["u_t"] - p["D"] * (d["u"] ** 2 * d["u_xx"] + 2 * d["u"] * d["u_x"] ** 2)

    reference_solution(_nld(conditions, exponent=2, residual=residual2), directory=tmp_path)  # u² ≥ 0


@pytest.mark.parametrize(
    ("recipe", "field"),
    [
        (pde.NonlinearDiffusionReference, "stride"),
        (pde.NonlinearDiffusionReference, "n_intervals"),
        (pde.NonlinearDiffusionReference, "n_times"),
        (pde.SemilinearReference, "x_stride"),
        (pde.SemilinearReference, "n_points"),
        (pde.SemilinearReference, "n_times"),
        (pde.SemilinearReference, "dt"),
    ],
)
def test_recipes_validate_their_fields(recipe, field):
    extra = {"terms": lambda p: {(0, 2): 1.0}} if recipe is pde.SemilinearReference else {}
    with pytest.raises(ValueError, match=f"`{field}`"):
        recipe(**extra, **{field: 0})


def test_nonlinear_diffusion_checks_the_residual(tmp_path):
    conditions = (pde.Dirichlet(value=0.0), pde.InitialValue(value=_sine))
    with pytest.raises(ValueError, match="exponent=0"):  # a heat equation with the default exponent 1
        reference_solution(_nld(conditions, exponent=1), directory=tmp_path)
    reaction = _nld(conditions, residual=lambda x, d, p: d["u_t"] - p["D"] * d["u_xx"] - 5 * d["u"])
    with pytest.raises(ValueError, match="residual"):
        reference_solution(reaction, directory=tmp_path)
    with pytest.raises(ValueError, match="u_xxxx"):  # a derivative the recipe's PDE lacks
        reference_solution(
            _nld(conditions, residual=lambda x, d, p: d["u_t"] + d["u_xxxx"]), directory=tmp_path
        )
    scaled = _nld(conditions, residual=lambda x, d, p: 2 * p["D"] * d["u_xx"] - 2 * d["u_t"])
    reference_solution(scaled, directory=tmp_path)  # any non-zero multiple of u_t - D u_xx


def test_semilinear_checks_the_residual(tmp_path):
    problem = pde.PDEProblem(
        name="sl-burgers",
        domain=pde.Interval(-1.0, 1.0).times(0.0, 0.1),
        fields=("u",),
        residual=lambda x, d, p: d["u_t"] + d["u"] * d["u_x"] - p["nu"] * d["u_xx"],
        conditions=(pde.InitialValue(value=lambda x: -_sine(x)), pde.Periodic(coordinate="x")),
        params={"nu": 0.05},
        reference=pde.SemilinearReference(
            terms=lambda p: {(0, 2): p["nu"], (1, 1): 1.0}, n_points=64, dt=1e-3, n_times=6
        ),
    )
    with pytest.raises(ValueError, match=r"u\*u_x"):
        reference_solution(problem, directory=tmp_path)


# ------------------------------------------------------------------ the residual probe (diff review)
def test_a_correct_residual_computed_in_float32_is_accepted(tmp_path):
    conditions = (pde.Dirichlet(value=0.0), pde.InitialValue(value=_sine))
    in_float32 = _nld(conditions, residual=lambda x, d, p: (d["u_t"] - p["D"] * d["u_xx"]).float())
    reference_solution(in_float32, directory=tmp_path)  # rounding of float32 is not a wrong equation


def test_a_term_with_a_zero_coefficient_is_accepted_and_a_nonzero_one_named(tmp_path):
    conditions = (pde.Dirichlet(value=0.0), pde.InitialValue(value=_sine))

    def advected(v):
        return lambda x, d, p: d["u_t"] + v * d["u_x"] - p["D"] * d["u_xx"]

    reference_solution(_nld(conditions, residual=advected(0.0)), directory=tmp_path)  # the same PDE
    with pytest.raises(ValueError, match="the residual uses u_x"):
        reference_solution(_nld(conditions, residual=advected(1.0)), directory=tmp_path)


def test_a_residual_reading_the_points_is_checked_and_one_the_probe_cannot_run_warns(tmp_path):
    conditions = (pde.Dirichlet(value=0.0), pde.InitialValue(value=_sine))
    wrong = _nld(conditions, residual=lambda x, d, p: d["u_t"] - 2 * p["D"] * d["u_xx"] + 0 * d.x[:, 0])
    with pytest.raises(ValueError, match="is not u_t"):
        reference_solution(wrong, directory=tmp_path)

    def needs_the_trainer(x, d, p):
        return d["u_t"] - p["D"] * d.derivative(0, (0, 0))  # an internal method the probe does not have

    with pytest.warns(UserWarning, match="could not check the residual"):
        reference_solution(_nld(conditions, residual=needs_the_trainer), directory=tmp_path)
