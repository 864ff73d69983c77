"""Geometry review fixes: straight polygon vertices, Euclidean on-boundary tests, nested set operations'
boundary shares, thin and empty sets, predicate checks, small polygons, numpy points."""

import math
import time

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch
from sciml.problems.pde import Box, Disk, LShape, Polygon

pytestmark = pytest.mark.usefixtures("one_thread")
F = torch.float64


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _phi_and_grad(shape, x, on=None):
    x = x.clone().requires_grad_(True)
    phi = shape.distance(x, on)
    (grad,) = torch.autograd.grad(phi.sum(), x)
    return phi.detach(), grad


def _probe_points():
    """Random points of [0, 2] × [0, 1] and points close to the bottom edge at x = 1 and x = 0.5."""
    near = [(c, y) for c in (1.0, 0.5, 1.0 - 1e-3, 1.0 + 1e-4) for y in (1e-1, 1e-2, 1e-3, 1e-5)]
    grid = torch.rand(500, 2, generator=_g(), dtype=F) * torch.tensor([2.0, 1.0], dtype=F)
    return torch.cat([grid, torch.tensor(near, dtype=F)])


@pytest.mark.parametrize(
    "split",
    [
        [(0, 0), (1, 0), (2, 0), (2, 1), (0, 1)],  # bottom edge split at (1, 0)
        [(0, 0), (0.5, 0), (2, 0), (2, 1), (0, 1)],  # split unevenly (δ must not shrink)
        [(1, 0), (2, 0), (2, 1), (0, 1), (0, 0)],  # the straight vertex is vertex 0
        [(0, 0), (1, 0), (2, 0), (2, 0.5), (2, 1), (0, 1)],  # two straight vertices
    ],
)
def test_straight_vertex_does_not_change_the_polygon_distance(split):
    r4, r5 = Polygon([(0, 0), (2, 0), (2, 1), (0, 1)]), Polygon(split)
    x = _probe_points()
    phi4, grad4 = _phi_and_grad(r4, x)
    phi5, grad5 = _phi_and_grad(r5, x)
    torch.testing.assert_close(phi5, phi4, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(grad5, grad4, rtol=1e-10, atol=1e-13)
    # at (1, 1e-3) the distance is ≈ 1e-3 with |∇φ| ≈ 1 (it was 5e-6 and 1e-2: quadratic vanishing)
    phi, grad = _phi_and_grad(r5, torch.tensor([[1.0, 1e-3]], dtype=F))
    assert abs(float(phi) - 1e-3) < 1e-5 and abs(float(grad.norm()) - 1) < 1e-2
    assert r5.corner_factor(x) is None and r5.reentrant_vertices() == []


def test_straight_vertex_keeps_the_users_edges_as_parts():
    r4 = Polygon([(0, 0), (2, 0), (2, 1), (0, 1)])
    r5 = Polygon([(0, 0), (1, 0), (2, 0), (2, 1), (0, 1)])
    assert r5.parts() == ("boundary", "edge0", "edge1", "edge2", "edge3", "edge4")
    b = r5.sample_boundary(400, _g(), dtype=F, on="edge1")
    assert torch.all(b[:, 1] == 0) and torch.all(b[:, 0] >= 1) and torch.all(b[:, 0] <= 2)
    # the two halves together are the 4-vertex polygon's bottom edge
    x = _probe_points()
    torch.testing.assert_close(
        r5.distance(x, ("edge0", "edge1")), r4.distance(x, "edge0"), rtol=1e-12, atol=0
    )
    # one half alone vanishes on it and not on the other half
    half = r5.distance(torch.tensor([[0.5, 0.0], [1.5, 0.0]], dtype=F), "edge0")
    assert float(half[0]) == pytest.approx(0, abs=1e-12) and float(half[1]) > 0.1
    u = r5.sample(2000, _g(), dtype=F)
    assert r5.inside(u).all() and torch.equal(r5.inside(u), r4.inside(u))


def test_straight_vertex_on_an_l_shape_keeps_its_corner_term():
    split = Polygon([(-1, -1), (0, -1), (1, -1), (1, 0), (0, 0), (0, 1), (-1, 1)])  # (0, -1) on an edge
    lshape = LShape()
    x = torch.rand(400, 2, generator=_g(1), dtype=F) * 2 - 1
    torch.testing.assert_close(split.distance(x), lshape.distance(x), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(split.corner_factor(x), lshape.corner_factor(x), rtol=1e-12, atol=1e-15)
    assert split.reentrant_vertices() == [4]


def test_polygon_on_boundary_is_a_distance_so_hole_corners_are_exact():
    square = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    x = torch.tensor([[1e-4, 1e-4], [2e-6, 2e-6], [1e-8, 0.3], [0.0, 0.0], [0.5, 1.0]], dtype=F)
    assert square.on_boundary(x).tolist() == [False, False, True, True, True]
    lshape = LShape()
    near_vertex = torch.tensor([[-1 + 1e-4, -1 + 1e-4], [-1e-4, -1e-4], [-1 + 2e-4, -1 + 2e-4]], dtype=F)
    assert not lshape.on_boundary(near_vertex).any()
    # a square with a square hole: points 1e-4 … 1e-6 inside the hole near its corner are outside the domain
    domain = Polygon([(0, 0), (2, 0), (2, 2), (0, 2)]) - Polygon(
        [(0.5, 0.5), (1.5, 0.5), (1.5, 1.5), (0.5, 1.5)]
    )
    d = torch.tensor([1e-4, 1.5e-4, 1e-5, 1e-6], dtype=F)
    in_hole = torch.stack([0.5 + d, 0.5 + d], dim=1)
    assert not domain.inside(in_hole).any()
    assert domain.inside(
        torch.tensor([[0.5, 0.5], [0.5 - 1e-4, 0.5 - 1e-4], [0.5 + 1e-4, 0.5]], dtype=F)
    ).all()
    # boundary points stepped outward by 1e-5 leave the domain, near the hole's corners too
    b = domain.sample_boundary(20000, _g(), dtype=F)
    assert not domain.inside(b + 1e-5 * domain.normal(b)).any()


def test_nested_unions_share_boundary_points_by_arc_length():
    a, b, c = Disk((0, 0), 1), Disk((1, 0), 1), Disk((5, 0), 1)
    arcs = 2 * (2 * math.pi - 2 * math.pi / 3)  # A ∪ B: each circle loses a third
    assert (a | b).boundary_measure() == pytest.approx(arcs, rel=0.01)
    share = 2 * math.pi / (arcs + 2 * math.pi)  # 0.4286 of the points on C (it was 0.335)
    n = 40000
    se = math.sqrt(share * (1 - share) / n)
    for shape in ((a | b) | c, c | (a | b)):
        x = shape.sample_boundary(n, _g(), dtype=F)
        assert abs(float((x[:, 0] > 3).double().mean()) - share) < 4 * se


def test_thin_region_raises_quickly_and_a_sparse_one_samples():
    ring = Disk((0, 0), 1.0) - Disk((0, 0), 0.99999)  # 1.6e-5 of its box
    start = time.process_time()
    with pytest.raises(ValueError, match="covers under 1e-4 of its bounding box"):
        ring.sample(64, _g())
    assert time.process_time() - start < 5  # it crawled for 10–46 CPU s
    sparse = Disk((0, 0), 1.0) - Disk((0, 0), 0.9995)  # 7.9e-4 of its box
    x = sparse.sample(512, _g(), dtype=F)
    assert x.shape == (512, 2) and sparse.inside(x).all()


def test_predicates_must_return_booleans_of_one_argument():
    domain = Disk((0, 0), 1) - Disk((0.2, 0.1), 0.4)
    for numbers in (lambda x: x[:, 1], lambda x: x[:, 0] * 0 + 0.3):
        with pytest.raises(TypeError, match=r"x\[:, 1\] > 0"):
            domain.sample_boundary(16, _g(), on=numbers)
    with pytest.raises(TypeError, match="takes one argument"):
        pde.PDEProblem(
            name="p",
            domain=domain,
            fields=("u",),
            residual=lambda x, d, p: d["u_xx"],
            conditions=(pde.Dirichlet(on=lambda x, on_boundary: on_boundary and x[0] > 0),),
        )
    with pytest.raises(ValueError, match=r"one per row; it returned shape \(2,\)"):
        domain.sample_boundary(16, _g(), on=lambda x: x[0] > 0)
    for numpy_mask in (
        lambda x: (x[:, 1] > 0).numpy(),
        lambda x: np.isclose(x[:, 0], 1.0) | (x[:, 1] > 0).numpy(),
    ):
        b = domain.sample_boundary(200, _g(), dtype=F, on=numpy_mask)
        assert b.shape == (200, 2) and torch.all((b[:, 1] > 0) | (b[:, 0] == 1.0))


def test_empty_set_operations_say_the_set_may_be_empty():
    unit = Box(("x", "y"), (0, 0), (1, 1))
    for empty in (Disk((0, 0), 1) & Disk((1.6, 1.6), 1), Disk(radius=1) - Disk(radius=2), unit - unit):
        with pytest.raises(ValueError, match="empty"):
            empty.sample(256, _g())
    with pytest.raises(ValueError, match="empty"):
        (Disk(radius=1) - Disk(radius=2)).sample_boundary(64, _g())


def test_small_polygons_are_accepted_and_collinear_ones_refused():
    side = 1e-7
    tiny = Polygon([(0, 0), (side, 0), (side, side), (0, side)])
    x = tiny.sample(200, _g(), dtype=F)
    assert tiny.inside(x).all() and float(x.max()) <= side
    b = tiny.sample_boundary(200, _g(), dtype=F)
    assert float(tiny._segment_distance(b).min(dim=1).values.max()) <= 1e-22
    with pytest.raises(ValueError, match="no area"):
        Polygon([(1e6, 1e6), (1e6 + 1, 1e6 + 1), (1e6 + 2, 1e6 + 2)])


def test_inside_and_on_boundary_accept_numpy_and_check_the_width():
    disk, box = Disk(), Box(("x", "y"), (0, 0), (1, 1))
    assert disk.inside(np.zeros((2, 2))).tolist() == [True, True]
    assert disk.on_boundary(np.array([[1.0, 0.0], [0.5, 0.0]])).tolist() == [True, False]
    assert box.inside(np.array([[0.5, 0.5], [2.0, 0.5]])).tolist() == [True, False]
    assert LShape().inside(np.array([[0.5, 0.5], [-0.5, 0.5]])).tolist() == [False, True]
    for shape in (disk, LShape(), disk - Disk(radius=0.5)):
        with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
            shape.inside(torch.zeros(2, 3))


def test_space_time_over_a_box_samples_its_lateral_boundary():
    cube = Box(("x", "y", "z"), (0, 0, 0), (1, 1, 1))
    lateral = pde.SpaceTime(cube, 0.0, 2.0)  # the box gives 66 points for 64 candidates: t had 64 rows
    x = lateral.sample_boundary(10, _g(), dtype=F)
    assert x.shape == (10, 4) and cube.on_boundary(x[:, :3]).all()
    assert torch.all((x[:, 3] >= 0) & (x[:, 3] <= 2))


def test_a_predicate_of_the_wrong_form_is_named_by_its_condition():
    square = pde.Box(("x", "y"), (0.0, 0.0), (1.0, 1.0))
    for on, error in ((lambda x, y: x > 0, TypeError), (lambda x: x[:, 1], TypeError)):
        with pytest.raises(error, match=r"^condition 'wall': a boundary predicate `on` takes one argument"):
            pde.PDEProblem(
                name="p", domain=square, fields=("u",), residual=lambda x, d, p: d["u_xx"],
                conditions=(pde.Dirichlet(on=on, name="wall"),),
            )  # fmt: skip

    class Picky(ValueError):  # an exception the predicate raises, whose constructor takes more arguments
        def __init__(self, text, code):
            super().__init__(text)

    def failing(x):
        raise Picky("the user's own check", 7)

    with pytest.raises(ValueError, match="condition 'wall': the user's own check") as info:
        pde.PDEProblem(
            name="p", domain=square, fields=("u",), residual=lambda x, d, p: d["u_xx"],
            conditions=(pde.Dirichlet(on=failing, name="wall"),),
        )  # fmt: skip
    assert isinstance(info.value.__cause__, Picky)  # the user's traceback is kept
