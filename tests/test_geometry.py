"""Geometries: membership, interior/boundary sampling, normals, distance functions, set operations."""

import math

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch
from sciml.problems.pde import Ball, Box, Disk, Interval, LShape, Polygon

G = torch.Generator


def _g(seed=0):
    return G().manual_seed(seed)


def test_disk_sampling_membership_and_reproducibility():
    disk = Disk((0.5, -1.0), 2.0)
    x = disk.sample(4000, _g(), dtype=torch.float64)
    assert x.shape == (4000, 2) and disk.inside(x).all()
    r = (x - torch.tensor([0.5, -1.0], dtype=torch.float64)).norm(dim=1)
    # uniform in area: P(r ≤ R/2) = 1/4
    assert abs(float((r <= 1.0).double().mean()) - 0.25) < 0.03
    assert torch.equal(disk.sample(10, _g(3)), disk.sample(10, _g(3)))
    assert not disk.inside(torch.tensor([[2.6, -1.0], [0.5, 1.1]])).any()


@pytest.mark.parametrize("method", ["sobol", "halton"])
def test_low_discrepancy_sampling_is_more_uniform(method):
    box = Box(("x", "y"), (0, 0), (1, 1))

    def discrepancy(x):
        from scipy.stats import qmc

        return qmc.discrepancy(x.numpy())

    uniform = box.sample(256, _g(), dtype=torch.float64)
    low = box.sample(256, _g(), dtype=torch.float64, method=method)
    assert discrepancy(low) < 0.3 * discrepancy(uniform)
    inside = LShape().sample(200, _g(), method=method)
    assert inside.shape == (200, 2) and LShape().inside(inside).all()
    with pytest.raises(ValueError, match="method"):
        box.sample(4, method="grid")


def test_ball_boundary_normals_and_distance_any_dimension():
    for d in (1, 2, 3, 4):
        ball = Ball((0.0,) * d, 1.5)
        x = ball.sample_boundary(500, _g(), dtype=torch.float64)
        assert torch.allclose(x.norm(dim=1), torch.full((500,), 1.5, dtype=torch.float64))
        assert torch.allclose(ball.normal(x), x / 1.5)
        assert ball.distance(x).abs().max() < 1e-12
        assert (ball.distance(ball.sample(100, _g(), dtype=torch.float64)) >= 0).all()
    assert math.isclose(Ball((0, 0, 0), 2.0).boundary_measure(), 4 * math.pi * 4)


def test_polygon_membership_normals_and_parts():
    L = LShape()
    assert L.parts() == ("boundary", *(f"edge{k}" for k in range(6)))
    pts = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5], [1.5, 0.0]])
    assert L.inside(pts).tolist() == [True, True, True, False, False]
    x = L.sample_boundary(3000, _g(), dtype=torch.float64)
    assert L.on_boundary(x).all()
    n = L.normal(x)
    # outward: a small step along the normal leaves the domain, a step against it stays inside
    assert not L.inside(x + 1e-3 * n).any() or float(L.inside(x + 1e-3 * n).double().mean()) < 0.01
    assert float(L.inside(x - 1e-3 * n).double().mean()) > 0.99
    # uniform along the perimeter (8): the re-entrant edges x = 0 and y = 0 hold 2/8 of the points
    reentrant = ((x[:, 0].abs() < 1e-12) & (x[:, 1] > 0)) | ((x[:, 1].abs() < 1e-12) & (x[:, 0] > 0))
    assert abs(float(reentrant.double().mean()) - 0.25) < 0.03
    # edge 3 runs from (0, 0) to (0, 1): x = 0, outward normal +x
    e3 = L.sample_boundary(50, _g(), dtype=torch.float64, on="edge3")
    assert torch.allclose(e3[:, 0], torch.zeros(50, dtype=torch.float64))
    assert torch.allclose(L.normal(e3, "edge3"), torch.tensor([1.0, 0.0], dtype=torch.float64).expand(50, 2))
    # a clockwise polygon has the same outward normals
    cw = Polygon(L.vertices[::-1].copy())
    assert torch.allclose(cw.normal(x), n)
    with pytest.raises(ValueError, match="parts"):
        L.sample_boundary(4, on="edge9")
    with pytest.raises(ValueError, match="area"):
        Polygon([(0, 0), (1, 1), (2, 2)])


def test_distance_functions_vanish_on_their_parts_and_are_positive_inside():
    L = LShape()
    x = L.sample(500, _g(), dtype=torch.float64)
    b = L.sample_boundary(200, _g(1), dtype=torch.float64)
    assert (L.distance(x) > 0).all() and L.distance(b).abs().max() < 1e-6
    e0 = L.sample_boundary(50, _g(), dtype=torch.float64, on="edge0")
    assert L.distance(e0, "edge0").abs().max() < 1e-6
    assert (L.distance(L.sample_boundary(50, _g(), dtype=torch.float64, on="edge3"), "edge0") > 0).all()
    # normalised: |∇φ| ≈ 1 next to the boundary
    p = torch.tensor([[-0.5, -1 + 1e-4]], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(L.distance(p).sum(), p)
    assert abs(float(grad.norm()) - 1) < 1e-2
    box = Box(("x", "y"), (0, 0), (2, 1))
    faces = box.sample_boundary(100, _g(), dtype=torch.float64, on=("x-", "y+"))
    assert box.distance(faces, ("x-", "y+")).abs().max() < 1e-12
    with pytest.raises(ValueError, match="predicate"):
        box.distance(faces, lambda x: x[:, 0] < 1)


def _laplacian(f, x):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
    return sum(torch.autograd.grad(grad[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(2))


def test_polygon_distance_has_a_bounded_laplacian_at_the_vertices():
    # the plain R-equivalence has |Δφ| ≈ 2/r next to each vertex (2e4 at r = 1e-4); the vertex factor
    # keeps it O(1/δ) however close, while φ stays zero on the edges and positive inside
    L = LShape()
    theta = torch.rand(2000, generator=_g(), dtype=torch.float64) * 2 * math.pi
    ring = torch.stack([theta.cos(), theta.sin()], dim=1)
    for v in L.vertices:
        for r in (1e-2, 1e-4):
            x = torch.as_tensor(v) + r * ring
            off_edges = ((x - torch.as_tensor(v)).abs() > 1e-2 * r).all(dim=1)  # the edges are axis-parallel
            x = x[L.inside(x) & off_edges]
            assert len(x) > 100 and (L.distance(x) > 0).all()
            assert _laplacian(L.distance, x).abs().max() < 50, (v, r)
    b = L.sample_boundary(500, _g(2), dtype=torch.float64)
    assert L.distance(b).abs().max() < 1e-6
    # the named-part distance gets the same treatment at vertices joining two selected edges
    x = torch.tensor([[1e-4, -1e-4], [2e-4, 1e-3]], dtype=torch.float64)  # at the re-entrant corner (0, 0)
    assert _laplacian(lambda p: L.distance(p, ("edge2", "edge3")), x).abs().max() < 50


def test_set_operations():
    big, hole = Disk((0, 0), 1.0), Disk((0.3, 0), 0.4)
    ring = big - hole
    x = ring.sample(2000, _g(), dtype=torch.float64)
    assert ring.inside(x).all() and not (hole.inside(x) & ~hole.on_boundary(x)).any()
    # boundary: the outer circle (length 2π) and the hole (0.8π), uniformly
    b = ring.sample_boundary(4000, _g(), dtype=torch.float64)
    inner = hole.on_boundary(b)
    assert abs(float(inner.double().mean()) - 0.4 / 1.4) < 0.03
    n = ring.normal(b)
    centre = torch.tensor([0.3, 0.0], dtype=torch.float64)
    assert torch.allclose(n[inner], -(b[inner] - centre) / 0.4)  # points into the hole
    assert torch.allclose(n[~inner], b[~inner])
    assert (ring.distance(x) > 0).all() and ring.distance(b).abs().max() < 1e-6
    union = Box(("x", "y"), (0, 0), (2, 1)) | Disk((2, 0.5), 0.5)
    assert union.inside(torch.tensor([[2.4, 0.5], [1.0, 0.5]])).all()
    ub = union.sample_boundary(500, _g(), dtype=torch.float64)
    assert not ((ub[:, 0] > 1e-9) & (ub[:, 0] < 2 - 1e-9) & (ub[:, 1] > 1e-9) & (ub[:, 1] < 1 - 1e-9)).any()
    lens = Disk((0, 0), 1.0) & Disk((1, 0), 1.0)
    assert lens.inside(lens.sample(300, _g())).all() and lens.lower[0] == 0.0
    with pytest.raises(ValueError, match="empty"):
        Disk((0, 0), 1.0) & Disk((5, 0), 1.0)
    with pytest.raises(ValueError, match="coordinates"):
        Disk((0, 0), 1.0) | Disk((0, 0), 1.0, names=("x", "z"))


def test_space_time_and_interval():
    st = Disk().times(0.0, 2.0)
    assert st.names == ("x", "y", "t") and st.time == "t" and st.time_index == 2
    x = st.sample(500, _g(), dtype=torch.float64)
    assert st.inside(x).all() and (x[:, 2] >= 0).all() and (x[:, 2] <= 2).all()
    x0 = st.sample_initial(20, _g())
    assert (x0[:, 2] == 0).all()
    b = st.sample_boundary(50, _g(), dtype=torch.float64)
    assert torch.allclose(b[:, :2].norm(dim=1), torch.ones(50, dtype=torch.float64))
    assert (st.normal(b)[:, 2] == 0).all()
    line = Interval(-1, 2)
    assert isinstance(line, Box) and line.faces() == ("x-", "x+")
    heat = line.times(0, 1)
    assert isinstance(heat, Box) and heat.time == "t" and heat.upper == (2.0, 1.0)


def test_predicate_selected_boundary_part():
    disk = Disk()
    x = disk.sample_boundary(100, _g(), dtype=torch.float64, on=lambda p: p[:, 1] > 0)
    assert (x[:, 1] > 0).all()
    with pytest.raises(ValueError, match="empty or too small"):
        disk.sample_boundary(5, on=lambda p: p[:, 0] > 2)
    assert np.isclose(Box(("x",), (0,), (1,)).boundary_measure(), 2.0)
    assert pde.Geometry in type(disk).__mro__
