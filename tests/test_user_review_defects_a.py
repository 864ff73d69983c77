"""User-reported defects: broadcast residuals and exact solutions ((n,) mixed with (n, 1) gives (n, n)),
Dirichlet conditions of one field that disagree on a common part of the boundary, numpy condition values,
which condition returned a value of the wrong shape, and the periodic-embedding advice off a Box."""

import warnings

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch

from sciml.pinn import PINN, TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

SQUARE = pde.Box(("x", "y"), (0, 0), (1, 1))
TINY = TrainConfig(adam_iterations=2, n_residual=32, n_condition=8, eval_every=2)


def _laplace(residual=None, conditions=None, domain=SQUARE, fields=("u",), **kw):
    residual = residual or (lambda x, d, p: d["u_xx"] + d["u_yy"])
    conditions = conditions or (pde.Dirichlet(),)
    return pde.PDEProblem(
        name="b", domain=domain, fields=fields, residual=residual, conditions=conditions, **kw
    )


def _net(domain=SQUARE, out=1, **kw):
    g = torch.Generator().manual_seed(0)
    return PINN(domain.ndim, out, (8,), lower=domain.lower, upper=domain.upper, generator=g, **kw)


def _trainer(problem, out=1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(problem, _net(problem.domain, out), TINY)


# ------------------------------------------------------------------------- 1. broadcast residuals
BROADCAST = lambda x, d, p: d["u_xx"] + d["u_yy"] + torch.sin(x[:, 0:1])  # noqa: E731  (n,) + (n, 1)


@pytest.mark.parametrize("n_equations", [1, 8])
def test_a_broadcast_residual_is_named_and_not_taken_for_equations(n_equations):
    """The probe's point count was 8: (8, 8) read as 8 equations, and n_equations=8 then trained silently."""
    with pytest.raises(ValueError, match=r"broadcast") as info:
        _trainer(_laplace(BROADCAST, n_equations=n_equations))
    text = str(info.value)
    assert "x[:, 0]" in text and "x[:, 0:1]" in text and "set n_equations" not in text


def test_a_residual_with_more_columns_than_equations_still_says_set_n_equations():
    wide = lambda x, d, p: torch.stack([d["u_xx"] + i for i in range(8)], dim=1)  # noqa: E731
    with pytest.raises(ValueError, match=r"set n_equations=8 in PDEProblem") as info:
        _trainer(_laplace(wide))
    assert "broadcast" not in str(info.value)


def test_a_broadcast_inside_a_stacked_system_is_named():
    system = lambda x, d, p: torch.stack([d["u_xx"] + torch.sin(x[:, 0:1]), d["v_xx"]], 1)  # noqa: E731
    conditions = (pde.Dirichlet(field="u", name="ub"), pde.Dirichlet(field="v", name="vb"))
    with pytest.raises(ValueError, match=r"broadcast.*x\[:, 0\]"):
        _trainer(_laplace(system, conditions, fields=("u", "v"), n_equations=2), out=2)


def test_a_residual_whose_shape_changes_with_the_point_count_stops_training():
    """The residual's shape is checked at every loss evaluation too (no extra evaluation): never trains."""

    def residual(x, d, p):
        r = d["u_xx"] + d["u_yy"]
        return r if x.shape[0] <= 16 else torch.stack([r, r], dim=1)  # right at the probe, wrong later

    trainer = _trainer(_laplace(residual))
    with pytest.raises(ValueError, match=r"residual returned \(32, 2\) for 32 points.*n_equations = 1"):
        trainer.fit(progress=False)


def test_a_broadcast_condition_value_is_named():
    value = lambda x: torch.sin(x[:, 0:1]) * x[:, 1]  # noqa: E731
    with pytest.raises(ValueError, match=r"condition 'walls'.*broadcast.*x\[:, 0\]"):
        _trainer(_laplace(conditions=(pde.Dirichlet(value=value, name="walls"),)))


# ------------------------------------------------------------------------- 2. a broadcasting exact solution
def test_a_broadcasting_exact_is_refused_before_it_runs_on_the_whole_grid():
    sizes = []

    def exact(x):
        sizes.append(x.shape[0])
        return torch.sin(x[:, 0:1]) * torch.sin(x[:, 1])  # (n, n)

    problem = _laplace(exact=exact, test_shape=(41, 41))
    x = torch.rand(1681, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"`exact` returned shape \((\d+), \1\).*broadcast.*x\[:, 0\]"):
        problem.exact_values(x)
    assert sizes and max(sizes) < 100  # never the whole grid (an n² tensor)
    good = _laplace(exact=lambda x: torch.sin(x[:, 0]) * torch.sin(x[:, 1]), test_shape=(41, 41))
    assert good.exact_values(x).shape == (1681, 1)


# ------------------------------------------------------------------------- 3. overlapping Dirichlet parts
def test_dirichlet_conditions_that_disagree_on_a_common_part_are_refused():
    a = pde.Dirichlet(value=0.0, on=("x-", "y-"), name="a")
    b = pde.Dirichlet(value=1.0, on=("y-", "x+"), name="b")
    for constraint in (None, "auto"):
        with pytest.raises(
            ValueError, match=r"'a' \(on \('x-', 'y-'\)\) and 'b'.*'u' both hold on 'y-'.*disjoint"
        ):
            _laplace(conditions=(a, b), constraint=constraint)
    with pytest.raises(
        ValueError, match=r"'all' .* and 'left' .* on 'x-'"
    ):  # a function value, part inside the other
        _laplace(conditions=(
            pde.Dirichlet(value=lambda x: x[:, 1], name="all"), pde.Dirichlet(on="x-", name="left")
        ))  # fmt: skip
    with pytest.raises(ValueError, match=r"'l0' .* and 'l1' .*"):  # 1-D: the same end point
        _laplace(
            lambda x, d, p: d["u_xx"], domain=pde.Interval(0.0, 1.0),
            conditions=(pde.Dirichlet(on="x-", name="l0"), pde.Dirichlet(value=1.0, on="x-", name="l1")),
        )  # fmt: skip


def test_dirichlet_conditions_meeting_at_corners_agreeing_or_apart_are_accepted():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # lid-driven-cavity-like: the faces share only corners
        _laplace(conditions=(pde.Dirichlet(on="x-", name="a"), pde.Dirichlet(value=1.0, on="y-", name="b")))
        _laplace(
            conditions=(pde.Dirichlet(value=1.0, name="all"), pde.Dirichlet(value=1.0, on="x-", name="left")),
            constraint="auto",
        )  # the values agree
        _laplace(
            lambda x, d, p: torch.stack([d["u_xx"], d["v_xx"]], 1), fields=("u", "v"), n_equations=2,
            conditions=(pde.Dirichlet(field="u", name="a"), pde.Dirichlet(field="v", value=1.0, name="b")),
        )  # other fields  # fmt: skip
        heat = pde.Interval(0.0, 1.0).times(0.0, 1.0)
        _laplace(
            lambda x, d, p: d["u_t"] - d["u_xx"], domain=heat,
            conditions=(
                pde.Dirichlet(on=lambda x: x[:, 1] < 0.5, name="early"),
                pde.Dirichlet(value=1.0, on=lambda x: x[:, 1] >= 0.5, name="late"),
                pde.InitialValue(),
            ),
        )  # disjoint in time  # fmt: skip


def test_dirichlet_data_that_are_zero_up_to_rounding_agree_with_zero():
    """A wall's exact values, sin(π)·… ≈ 1e-16 (8.7e-8 in float32), agree with a redundant 0 on that wall."""
    for dtype in (torch.float64, torch.float32):

        def exact(x, dtype=dtype):
            x = x.to(dtype)
            return torch.sin(torch.pi * x[:, 0]) * torch.sin(torch.pi * x[:, 1])

        _laplace(conditions=(pde.Dirichlet(value=exact, name="walls"), pde.Dirichlet(on="x+", name="right")))


def test_the_overlap_fix_gives_a_whole_boundary_condition_the_other_parts():
    """Lid-driven cavity written as walls everywhere plus a lid: the fix names the walls' parts."""
    walls, lid = pde.Dirichlet(name="walls"), pde.Dirichlet(value=1.0, on="y+", name="lid")
    with pytest.raises(ValueError, match=r"both hold on 'y\+'.*e\.g\. 'walls' on=\('x-', 'x\+', 'y-'\)"):
        _laplace(conditions=(walls, lid))
    _laplace(conditions=(pde.Dirichlet(on=("x-", "x+", "y-"), name="walls"), lid))  # the fix works


def test_many_named_polygon_edges_are_not_sampled_pairwise():
    """Conditions on different named parts share corners at most: no sampling, however many there are."""
    angles = np.linspace(0, 2 * np.pi, 41)[:-1]
    polygon = pde.Polygon(np.stack([np.cos(angles), np.sin(angles)], 1))
    edges = [e for e in polygon.parts() if e != "boundary"]
    calls = []
    original = pde.Dirichlet.sample

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)

    conditions = tuple(pde.Dirichlet(value=float(k), on=e, name=e) for k, e in enumerate(edges))
    pde.Dirichlet.sample = counting
    try:
        _laplace(conditions=conditions, domain=polygon)
    finally:
        pde.Dirichlet.sample = original
    assert len(edges) == 40 and calls == []


# ------------------------------------------------------------------------- 4. numpy condition values
def test_a_numpy_condition_value_gets_a_clear_error_naming_the_condition():
    problem = _laplace(conditions=(pde.Dirichlet(value=lambda x: np.sin(x[:, 0]), name="walls"),))
    with pytest.raises(TypeError, match=r"condition 'walls' \(Dirichlet on the whole boundary\)") as info:
        _trainer(problem)
    text = str(info.value)
    assert "torch.sin" in text and "torch tensors" in text and "differentiable" in text


# ------------------------------------------------------------------------- 5. which value had the wrong shape
def test_the_wrong_shape_message_names_the_condition():
    residual = lambda x, d, p: torch.stack([d["u_xx"] - d["v"], d["v_yy"] + d["u"]], 1)  # noqa: E731
    problem = _laplace(
        residual, fields=("u", "v"), n_equations=2,
        conditions=(
            pde.Dirichlet(field="u", value=lambda x: x[:, 0], on="x-", name="u-left"),
            pde.Dirichlet(field="u", value=lambda x: x, on="x+", name="u-right"),  # (n, 2)
            pde.Dirichlet(field="v", name="v-walls"),
        ),
    )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"condition 'u-right' \(Dirichlet on 'x\+'\): `value` returned shape"
    ):
        _trainer(problem, out=2)


# ------------------------------------------------------------------------- 6. periodic advice off a Box
def _periodic_warnings(problem, column):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(problem, _net(problem.domain, periodic=[column]), TINY)
    return [str(w.message) for w in caught if "periodic" in str(w.message)]


def test_the_periodic_embedding_advice_depends_on_the_domain():
    annulus = pde.Disk() - pde.Disk(radius=0.5)
    (text,) = _periodic_warnings(_laplace(domain=annulus), 0)
    assert "add Periodic" not in text and "periodic=" in text and "opposite faces" in text
    (text,) = _periodic_warnings(_laplace(), 0)  # on a Box the condition is the fix
    assert "add Periodic(coordinate='x')" in text
    heat = _laplace(lambda x, d, p: d["u_t"] - d["u_xx"], domain=pde.Interval(0.0, 1.0).times(0.0, 1.0),
                    conditions=(pde.Dirichlet(), pde.InitialValue()))  # fmt: skip
    (text,) = _periodic_warnings(heat, 1)  # time: no Periodic condition applies
    assert "add Periodic" not in text and "time" in text
