"""Users' own PDE problems: conditions on boundary parts of any geometry, hard constraints built from the
conditions, training without a known solution and references given later."""

import json
import math
import subprocess
import sys

import h5py
import numpy as np
import pytest
import sciml.problems.pde as pde
import torch
from sciml.problems.pde import (
    Box,
    Dirichlet,
    Disk,
    HardConstraint,
    InitialValue,
    LShape,
    Neumann,
    PDEProblem,
    Robin,
)
from sciml.problems.pde.examples import disk_poisson, lshape_poisson, neumann_poisson
from torch import nn

from sciml.pinn import PIG, PINN, Constrained, TrainConfig, Trainer


def _u(x):  # a smooth test function of (x, y)
    return torch.exp(x[:, 0]) * torch.sin(x[:, 1]) + x[:, 0] ** 2


def _grad(x):
    return torch.stack(
        [torch.exp(x[:, 0]) * torch.sin(x[:, 1]) + 2 * x[:, 0], torch.exp(x[:, 0]) * torch.cos(x[:, 1])], 1
    )


def _laplace(x, d, p):
    return d["u_xx"] + d["u_yy"]


def _problem(domain, conditions, **kw):
    return PDEProblem(
        name="user", domain=domain, fields=("u",), residual=_laplace, conditions=conditions, **kw
    )


@pytest.mark.parametrize("domain", [Disk((0.2, 0.1), 0.8), LShape(), Disk() - Disk((0.3, 0), 0.3)])
def test_neumann_and_robin_use_the_domain_normals(domain):
    exact_flux = lambda x: (_grad(x) * domain.normal(x)).sum(1)  # noqa: E731
    neumann = Neumann(value=exact_flux)
    robin = Robin(alpha=2.0, beta=0.5, value=lambda x: 2 * _u(x) + 0.5 * exact_flux(x))
    problem = _problem(domain, (neumann, robin))
    g = torch.Generator().manual_seed(0)
    for c in (neumann, robin):
        x = c.sample(domain, 300, g, torch.float64)
        assert domain.on_boundary(x).all()
        assert problem.condition_residual_of(c, _u, x).abs().max() < 1e-10
        wrong = problem.condition_residual_of(c, lambda x: _u(x) + x[:, 0] * x[:, 1], x)
        assert wrong.abs().max() > 1e-2


def test_conditions_on_parts_named_or_selected_by_a_predicate():
    disk = Disk()
    top = Dirichlet(value=1.0, on=lambda x: x[:, 1] > 0, name="top")
    bottom = Neumann(on=lambda x: x[:, 1] <= 0, name="bottom")
    problem = _problem(disk, (top, bottom))
    g = torch.Generator().manual_seed(0)
    assert (top.sample(disk, 64, g, torch.float64)[:, 1] > 0).all()
    assert (bottom.sample(disk, 64, g, torch.float64)[:, 1] <= 0).all()
    L = LShape()
    c = Dirichlet(on=("edge3", "edge4"))
    x = c.sample(L, 100, g, torch.float64)
    assert (x[:, 0].abs() < 1e-12).sum() + (x[:, 1] - 1).abs().lt(1e-12).sum() == 100
    with pytest.raises(ValueError, match="parts"):
        _problem(L, (Dirichlet(on="x-"),))
    with pytest.raises(ValueError, match="Box"):
        _problem(disk, (pde.Periodic(coordinate="x"),))
    assert problem.conditions == (top, bottom)


def test_hard_constraints_from_conditions_on_any_domain():
    g = torch.Generator().manual_seed(0)
    for domain, conditions in [
        (Disk(), (Dirichlet(value=_u),)),
        (LShape(), (Dirichlet(value=_u, on=("edge0", "edge1")), Neumann(on="edge3"))),
        (
            Box(("x", "y"), (0, 0), (1, 2)),
            (Dirichlet(value=2.0, on="x-"), Dirichlet(value=_u, on="y+", name="d2")),
        ),
    ]:
        problem = _problem(domain, conditions, constraint="auto")
        enforced = [c for c in conditions if isinstance(c, Dirichlet)]
        assert set(problem.constraint.enforces) == {c.name for c in enforced}
        for net in (PINN(2, 1, (16,), generator=g).double(), PIG(2, 1, 20, generator=g).double()):
            model = Constrained(net, problem.constraint)
            for c in enforced:
                x = c.sample(domain, 200, g, torch.float64)
                assert problem.condition_residual_of(c, model, x).abs().max() < 1e-6
            inside = domain.sample(50, g, dtype=torch.float64)
            assert torch.isfinite(problem.residual_of(model, inside)).all()
    with pytest.raises(ValueError, match="predicate"):
        _problem(Disk(), (Dirichlet(on=lambda x: x[:, 0] > 0),), constraint="auto")


def test_polygon_hard_dirichlet_beside_a_neumann_edge_trains():
    # a Neumann edge next to hard Dirichlet edges: the trimmed distance of an edge at a point on that edge
    # is √0, whose derivative is infinite; it once put NaN into the Neumann loss's gradient at iteration 0
    # (the edge's distance was computed though the edge is not selected)
    square = pde.Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])  # edges y = 0, x = 1, y = 1, x = 0
    exact = lambda x: torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])  # noqa: E731
    problem = PDEProblem(
        name="square-mixed",
        domain=square,
        fields=("u",),
        residual=lambda x, d, p: d["u_xx"] + d["u_yy"] + 2 * math.pi**2 * exact(x),
        conditions=(
            Dirichlet(on=("edge0", "edge2", "edge3")),
            Neumann(value=lambda x: -math.pi * torch.sin(math.pi * x[:, 1]), on="edge1"),
        ),
        exact=exact,
        test_shape=(21, 21),
        constraint="auto",
    )
    g = torch.Generator().manual_seed(0)
    for engine in ("jet", "autograd"):
        model = Constrained(PINN(2, 1, (16, 16), generator=g), problem.constraint)
        trainer = Trainer(problem, model, TrainConfig(n_residual=256, n_condition=64, engine=engine))
        total, terms = trainer.loss(trainer.sample())
        total.backward()
        assert set(terms) == {"residual", "neumann"}
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    config = TrainConfig(adam_iterations=0, lbfgs_iterations=800, n_residual=256, n_condition=64)
    result = Trainer(problem, model, config).fit(progress=False)
    assert result.rel_l2 < 1e-2, result.rel_l2


def test_hard_constraint_with_an_initial_value_in_space_time():
    domain = Disk().times(0.0, 1.0)

    def heat(x, d, p):
        return d["u_t"] - d["u_xx"] - d["u_yy"]

    u0 = lambda x: 1 - x[:, 0] ** 2 - x[:, 1] ** 2  # noqa: E731  (zero on the circle: compatible)
    problem = PDEProblem(
        name="heat-disk",
        domain=domain,
        fields=("u",),
        residual=heat,
        conditions=(Dirichlet(value=0.0), InitialValue(value=u0)),
        constraint="auto",
    )
    g = torch.Generator().manual_seed(0)
    model = Constrained(PINN(3, 1, (16,), generator=g).double(), problem.constraint)
    for c in problem.conditions:
        x = c.sample(domain, 100, g, torch.float64)
        assert problem.condition_residual_of(c, model, x).abs().max() < 1e-6


def _disk_without_solution():
    def residual(x, d, p):
        return d["u_xx"] + d["u_yy"] + 4.0

    return PDEProblem(name="disk", domain=Disk(), fields=("u",), residual=residual, conditions=(Dirichlet(),))


def test_training_without_a_known_solution_and_a_reference_later(tmp_path):
    problem = _disk_without_solution()  # −Δu = 4, u = 0 on the unit circle: u = 1 − r²
    torch.manual_seed(0)
    config = TrainConfig(
        adam_iterations=200, lr=1e-2, n_residual=128, n_condition=32, eval_every=100, dtype="float64"
    )
    trainer = Trainer(problem, PINN(2, 1, (24, 24)), config)
    result = trainer.fit(progress=False)
    assert result.rel_l2 is None and trainer.evaluate() is None
    assert all(h["rel_l2"] is None and h["residual_rms"] >= 0 for h in result.history)
    assert result.history[-1]["residual_rms"] < 0.7 * result.history[0]["residual_rms"]

    exact = lambda x: 1 - x[:, 0] ** 2 - x[:, 1] ** 2  # noqa: E731
    e_callable = trainer.evaluate(reference=exact)
    assert 0 < e_callable < 0.1
    grid = trainer.prediction_grid()
    axes = trainer.reference.axes
    X, Y = np.meshgrid(*axes, indexing="ij")
    outside = X**2 + Y**2 > 1 + 1e-6
    assert np.isnan(grid[..., 0][outside]).all() and np.isfinite(grid[..., 0][~outside]).all()

    pts = Disk().sample(2000, torch.Generator().manual_seed(5), dtype=torch.float64)
    vals = exact(pts).numpy()
    e_points = trainer.evaluate(reference=(pts.numpy(), vals))
    np.savez(tmp_path / "fem.npz", points=pts.numpy(), values=vals)
    with h5py.File(tmp_path / "fem.h5", "w") as f:
        f["points"], f["values"] = pts.numpy(), vals
    assert trainer.evaluate(reference=tmp_path / "fem.npz") == pytest.approx(e_points)
    assert trainer.evaluate(reference=str(tmp_path / "fem.h5")) == pytest.approx(e_points)
    assert abs(e_points - e_callable) < 0.5 * e_callable + 1e-3
    np.savez(tmp_path / "bad.npz", points=pts.numpy())
    with pytest.raises(ValueError, match="values"):
        trainer.evaluate(reference=tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="does not exist"):
        trainer.evaluate(reference=tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="points"):
        trainer.evaluate(reference=(pts.numpy()[:, :1], vals))
    # a user's own solution given to the problem instead of the trainer: told where it goes
    for own in (exact, (pts.numpy(), vals), str(tmp_path / "fem.npz"), tmp_path / "fem.npz"):
        with pytest.raises(TypeError, match=r"Trainer\(problem, model, config, reference=\.\.\.\)"):
            problem.replace(reference=own)


def test_errors_are_taken_on_the_domain_not_its_bounding_box():
    class Exact(nn.Module):
        in_features, out_features = 2, 1

        def forward(self, x):
            return (1 - x[:, 0] ** 2 - x[:, 1] ** 2)[:, None]

    problem = _disk_without_solution()
    # a reference that is right on the disk and wildly off outside it: only the disk counts
    off = lambda x: torch.where(x.norm(dim=1) <= 1, 1 - (x**2).sum(1), torch.full_like(x[:, 0], 1e3))  # noqa: E731
    config = TrainConfig(adam_iterations=0, lbfgs_iterations=0, dtype="float64")
    trainer = Trainer(problem, Exact(), config, reference=off)
    assert trainer.evaluate() < 1e-12


@pytest.mark.parametrize("factory", [disk_poisson, lshape_poisson, neumann_poisson])
def test_example_problems_are_consistent(factory):
    problem = factory()
    x = problem.domain.sample(200, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert problem.residual_of(problem.exact, x).abs().max() < 1e-9
    g = torch.Generator().manual_seed(1)
    for c in problem.conditions:
        xc = c.sample(problem.domain, 100, g, torch.float64)
        assert problem.condition_residual_of(c, problem.exact, xc).abs().max() < 1e-9
    hard = factory(constraint="auto")
    assert isinstance(hard.constraint, HardConstraint)


@pytest.mark.slow  # a CLI run: the suite's Poisson reference grid, plots, metrics
def test_cli_reference_file(tmp_path):
    from sciml.pinn import cli

    problem = pde.get("poisson")
    pts = problem.domain.sample(500, torch.Generator().manual_seed(0), dtype=torch.float64)
    np.savez(tmp_path / "ref.npz", points=pts.numpy(), values=problem.exact(pts).numpy())
    parser = __import__("argparse").ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        ["--problem", "poisson", "--model", "pinn", "--iterations", "3", "--no-progress", "--out",
         str(tmp_path / "run"), "--reference", str(tmp_path / "ref.npz")]
    )  # fmt: skip
    assert cli.main(args) == 0
    metrics = __import__("json").loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["reference"] == f"file {tmp_path / 'ref.npz'}" and math.isfinite(metrics["rel_l2"])
    assert (tmp_path / "run" / "fields.png").stat().st_size > 0  # the prediction (scattered reference)


# ------------------------------------------------------------------------------- re-entrant corners
def _second_derivatives(fn, x):
    """(value, u_xx, u_yy) of the first output column of ``fn`` by autograd."""
    x = x.clone().requires_grad_(True)
    u = fn(x)
    u = u[:, 0] if u.ndim == 2 else u
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    uxx = torch.autograd.grad(g[:, 0].sum(), x, retain_graph=True)[0][:, 0]
    uyy = torch.autograd.grad(g[:, 1].sum(), x)[0][:, 1]
    return u.detach(), uxx.detach(), uyy.detach()


def _ring(r, n=400, lo=0.5 * math.pi, hi=2.0 * math.pi):
    """Points at distance ``r`` from the L-shape's re-entrant corner (0, 0), strictly inside it."""
    theta = torch.linspace(lo, hi, n + 2, dtype=torch.float64)[1:-1]
    return r * torch.stack([theta.cos(), theta.sin()], dim=1)


def test_corner_factor_only_at_reentrant_corners_and_zero_on_the_boundary():
    L = LShape()
    assert L.reentrant_vertices() == [3]
    assert pde.Polygon(L.vertices[::-1].tolist()).reentrant_vertices() == [2]  # clockwise order
    assert pde.Polygon([(0, 0), (1, 0), (0, 1)]).reentrant_vertices() == []
    x = L.sample(100, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert Disk().corner_factor(x) is None and Box(("x", "y"), (0, 0), (1, 1)).corner_factor(x) is None
    assert L.corner_factor(x, ("edge0", "edge2")) is None  # the corner's edges are not both selected
    b = L.sample_boundary(2000, torch.Generator().manual_seed(1), dtype=torch.float64)
    assert L.corner_factor(b).abs().max() < 1e-12
    far = x[x.norm(dim=1) >= 1.0]  # beyond the cut-off (the distance to the nearest other edge)
    assert len(far) > 0 and (L.corner_factor(far) == 0).all()
    assert (L.corner_factor(x[x.norm(dim=1) < 0.9]) != 0).all()
    space_time = L.times(0.0, 1.0)
    xt = torch.cat([x, torch.rand(100, 1, dtype=torch.float64)], dim=1)
    assert torch.equal(space_time.corner_factor(xt), L.corner_factor(x))


def test_corner_factor_makes_the_lshape_ansatz_smooth():
    # with one positive factor φ, N = (u − g)/φ has a direction-dependent limit at the re-entrant corner;
    # the corner factor ψ vanishes like u − g (on both edges' lines), so (u − g)/ψ has one limit there
    problem = lshape_poisson(constraint="auto")
    c = problem.constraint
    assert c.corner is not None
    x = _ring(1e-3)
    gap = problem.exact(x) - c.particular(x)[:, 0]
    one_term = gap / c.factor(x)[:, 0]
    two_term = gap / c.corner(x)[:, 0]
    assert one_term.max() - one_term.min() > 0.5
    assert (two_term.max() - two_term.min()) / two_term.abs().mean() < 1e-3


@pytest.mark.parametrize("kind", ["pinn", "pig"])
def test_lshape_hard_constraint_exact_on_the_boundary_and_smooth_at_the_corner(kind):
    problem = lshape_poisson(constraint="auto")
    outputs = Constrained.outputs(problem.constraint, 1)
    assert outputs == 2 and Constrained.outputs(disk_poisson(constraint="auto").constraint, 1) == 1
    g = torch.Generator().manual_seed(0)
    box = dict(lower=problem.domain.lower, upper=problem.domain.upper, generator=g)
    net = PINN(2, outputs, (16, 16), **box) if kind == "pinn" else PIG(2, outputs, 30, **box)
    model = Constrained(net.double(), problem.constraint)
    assert model.out_features == 1
    # the Dirichlet data exactly, on every edge and along the two edges next to the re-entrant vertex
    t = torch.logspace(-8, -0.5, 40, dtype=torch.float64)
    near = torch.cat([torch.stack([t, 0 * t], 1), torch.stack([0 * t, t], 1)])
    b = torch.cat([problem.domain.sample_boundary(500, g, dtype=torch.float64), near])
    with torch.no_grad():
        assert (model(b)[:, 0] - problem.exact(b)).abs().max() < 1e-12
    # finite, bounded second derivatives ever closer to the corner (the factors' Laplacians stay O(1/δ))
    for r in (1e-2, 1e-4, 1e-6):
        u, uxx, uyy = _second_derivatives(model, _ring(r))
        assert torch.isfinite(uxx).all() and torch.isfinite(uyy).all()
        assert (uxx + uyy).abs().max() < 1e3, r
    # the jet (the trainer's forward-mode derivatives) agrees with autograd, both factors included
    from sciml.pinn import jet as J

    x = problem.domain.sample(64, g, dtype=torch.float64)
    jet = model.jet(x, J.JetSpec(first=(0, 1), second=(0, 1)))
    u, uxx, uyy = _second_derivatives(model, x)
    assert torch.allclose(jet.value[:, 0], u, atol=1e-12)
    assert torch.allclose(jet.second[0, :, 0], uxx, atol=1e-9)
    assert torch.allclose(jet.second[1, :, 0], uyy, atol=1e-9)


def test_constrained_needs_two_outputs_per_field_with_a_corner_factor():
    problem = lshape_poisson(constraint="auto")
    with pytest.raises(ValueError, match="out_features=1"):
        Constrained(PINN(2, 1, (8,)), problem.constraint)
    from sciml.pinn.presets import build_model, preset

    model = build_model(problem, "pinn", preset("poisson"))
    assert model.net.out_features == 2 and model.out_features == 1


def test_boundary_interpolation_keeps_its_derivatives_in_float32():
    # one Dirichlet condition: g is the data itself (its Laplacian 0 for x·y), not (g/φ)/(1/φ), which
    # rounded to Laplacians of ~300 at 1e-5 from an edge in float32; several: the product form of the weights
    c = lshape_poisson(constraint="auto").constraint
    s = torch.tensor([1e-5, 1e-4, 1e-3])
    x = torch.stack([-1 + s, torch.full_like(s, -0.5)], dim=1)
    _, uxx, uyy = _second_derivatives(c.particular, x)
    assert (uxx + uyy).abs().max() < 1e-3
    box = Box(("x", "y"), (0, 0), (1, 1))
    two = _problem(
        box,
        (Dirichlet(value=_u, on=("x-", "y-")), Dirichlet(value=_u, on="x+", name="d2")),
        constraint="auto",
    )
    x = torch.tensor([[1e-5, 0.5], [0.5, 1e-5], [1 - 1e-5, 0.3], [0.4, 0.6]])
    v32, xx32, yy32 = _second_derivatives(two.constraint.particular, x)
    v64, xx64, yy64 = _second_derivatives(two.constraint.particular, x.double())
    assert torch.allclose(v32.double(), v64, atol=1e-6)
    assert torch.allclose((xx32 + yy32).double(), xx64 + yy64, rtol=1e-2, atol=1e-2)


def _disk_problem(value=0.0, **kw):
    return _problem(Disk(), (Dirichlet(value=value),), **kw)


def test_replace_builds_an_auto_constraint_again():
    problem = _disk_problem(constraint="auto")
    x = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    moved = problem.replace(conditions=(Dirichlet(value=1.0),))
    assert torch.allclose(moved.constraint.particular(x), torch.ones(2, 1, dtype=torch.float64))
    bigger = problem.replace(domain=Disk(radius=2.0))
    assert bigger.constraint.factor(torch.tensor([[1.5, 0.0]])).item() > 0.1  # not pinned at r = 1
    assert problem.replace(params={"k": 1.0}).constraint_from_conditions
    assert problem.replace(constraint=None).constraint is None
    with pytest.raises(ValueError, match="pass constraint=None"):
        problem.replace(conditions=(Neumann(),))  # nothing left to build in


def test_replace_refuses_to_keep_a_hand_written_constraint_for_other_data():
    burgers = pde.get("burgers")
    other = (InitialValue(value=lambda x: 0.5 * torch.sin(math.pi * x[:, 0])), Dirichlet(value=0.0))
    with pytest.raises(ValueError, match=r"conditions \['dirichlet', 'initial'\].*constraint="):
        burgers.replace(conditions=other)
    with pytest.raises(ValueError, match="domain"):
        burgers.replace(domain=Box(("x", "t"), (-2.0, 0.0), (2.0, 1.0), time="t"))
    assert burgers.replace(params={"nu": 0.01}).constraint is burgers.constraint  # data unchanged
    assert burgers.replace(conditions=other, constraint=None).constraint is None
    assert burgers.replace(conditions=other, constraint="auto").constraint_from_conditions


def test_constraint_argument_is_checked():
    with pytest.raises(ValueError, match="'auto'"):
        _disk_problem(constraint="Auto")
    with pytest.raises(TypeError, match="HardConstraint"):
        _disk_problem(constraint=1.0)


def test_fingerprint_probes_the_functions_and_is_the_same_in_another_process():
    base = lshape_poisson(constraint="auto").fingerprint()
    assert base == lshape_poisson(constraint="auto").fingerprint()
    code = (
        "import json; from sciml.problems.pde.examples import lshape_poisson; "
        "print(json.dumps(lshape_poisson(constraint='auto').fingerprint()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == json.loads(json.dumps(base))
    problem = _disk_problem()
    changed = [
        problem.replace(residual=lambda x, d, p: d["u_xx"] - d["u_yy"]),
        problem.replace(conditions=(Dirichlet(value=lambda x: x[:, 0]),)),
        problem.replace(domain=Disk(radius=2.0)),
        problem.replace(params={"k": 2.0}),
        problem.replace(constraint="auto"),
    ]
    prints = [problem.fingerprint()] + [p.fingerprint() for p in changed]
    assert all(prints[i] != prints[j] for i in range(len(prints)) for j in range(i))


def test_resume_refuses_a_checkpoint_of_another_problem_with_the_same_name(tmp_path):
    checkpoint = tmp_path / "run.pt"
    config = TrainConfig(adam_iterations=5, n_residual=32, n_condition=16, checkpoint_every=5)
    for value, resume in ((0.0, False), (0.0, True)):  # the same problem resumes
        model = PINN(2, 1, (8,), generator=torch.Generator().manual_seed(0))
        Trainer(_disk_problem(value), model, config, checkpoint=checkpoint).fit(progress=False, resume=resume)
    model = PINN(2, 1, (8,), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"another run \(differs in \['problem'\]\)"):
        Trainer(_disk_problem(1.0), model, config, checkpoint=checkpoint).fit(progress=False, resume=True)


def test_bad_problem_data_get_errors_that_say_what_to_do():
    with pytest.raises(TypeError, match="`value` must be a number or a function"):
        _problem(Disk(), (Dirichlet(value="1.0"),))
    with pytest.raises(ValueError, match="`alpha` must be finite"):
        _problem(Disk(), (Robin(alpha=math.inf),))
    with pytest.raises(ValueError, match="self-intersecting"):
        pde.Polygon([(0, 0), (2, 2), (2, 0), (0, 1)])  # a bow tie
    model = PINN(2, 1, (8,))
    with pytest.raises(ValueError, match="every loss term has weight 0"):
        Trainer(_disk_problem(), model, TrainConfig(weights={"residual": 0, "dirichlet": 0}))
    missing = _disk_problem().replace(residual=lambda x, d, p: d["u_xx"] + p["k"])
    with pytest.raises(ValueError, match=r"params\['k'\], which the problem does not define"):
        Trainer(missing, model, TrainConfig())
    from sciml.pinn import TrainingDiverged

    with pytest.raises(ValueError, match="`value` must be finite"):
        _problem(Disk(), (Dirichlet(value=math.nan),))
    nan_data = _problem(Disk(), (Dirichlet(value=lambda x: torch.sqrt(x[:, 0] - 2)),))  # NaN everywhere
    with pytest.raises(TrainingDiverged, match="at the initial parameters"):
        Trainer(nan_data, model, TrainConfig(adam_iterations=2, n_residual=16)).fit(progress=False)


def test_cli_trains_a_users_own_problem_from_a_file(tmp_path):
    from sciml.pinn import cli

    (tmp_path / "mine.py").write_text(
        "import sciml.problems.pde as pde\n"
        "def disk():\n"
        "    return pde.PDEProblem(name='mine', domain=pde.Disk(), fields=('u',),\n"
        "        residual=lambda x, d, p: d['u_xx'] + d['u_yy'] + 4.0, conditions=(pde.Dirichlet(),),\n"
        "        exact=lambda x: 1 - (x**2).sum(1), test_shape=(21, 21))\n"
        "NOT_A_FUNCTION = 1\n"
    )
    parser = __import__("argparse").ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "run"
    spec = f"{tmp_path / 'mine.py'}:disk"
    args = parser.parse_args(["--problem", spec, "--iterations", "3", "--no-progress", "--out", str(out)])
    assert cli.main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["problem"] == "mine"
    for bad, message in ((":nope", "defines no function 'nope'"), (":NOT_A_FUNCTION", "no function")):
        args = parser.parse_args(["--problem", str(tmp_path / "mine.py") + bad, "--out", str(out)])
        with pytest.raises(ValueError, match=message):
            cli.main(args)
    args = parser.parse_args(["--problem", spec, "--resume", "--out", str(tmp_path / "new")])
    with pytest.raises(ValueError, match="does not exist"):
        cli.main(args)
    assert not (tmp_path / "new").exists()  # --resume without a checkpoint creates nothing
