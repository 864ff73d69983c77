"""Forward-mode Taylor jets: a network's value, first and pure second input derivatives in one pass.

A PDE residual needs ``u``, a few first derivatives and a few pure second derivatives (``u_xx``, ``u_tt``)
at every collocation point. Reverse-mode autograd gets them with one backward pass per derivative through
the whole network (and keeps those graphs for the parameter gradient). Propagating the *jet*
``(value, ∂_j value, ∂_jj value)`` forward through each layer instead costs a few matrix products per
layer and gives all of them at once (the "forward Laplacian" idea: Li et al., *Forward Laplacian*,
Nature Machine Intelligence 2024). For the tanh MLPs and Gaussian feature layers here it is 1.4–6× faster
per training step than nested reverse mode (``sciml bench pde`` prints the measured ratio).

Layout: ``value`` is ``(n, width)``; ``first`` is ``(m, n, width)`` for the ``m`` coordinates in
``spec.first`` (a size-1 point axis means "the same for every point", as after the first linear layer);
``second`` is ``(s, n, width)`` for the pure second derivatives along ``spec.second`` or ``None`` (zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = [
    "JetSpec",
    "Jet",
    "input_jet",
    "linear",
    "tanh",
    "sin",
    "cos",
    "affine",
    "scale",
    "product",
    "function_jet",
]


@dataclass(frozen=True)
class JetSpec:
    """Which derivatives a jet carries.

    Args:
        first: input columns with first derivatives (must include every column of ``second``).
        second: input columns with pure second derivatives.
    """

    first: tuple[int, ...] = ()
    second: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        first = tuple(sorted(set(self.first) | set(self.second)))
        object.__setattr__(self, "first", first)
        object.__setattr__(self, "second", tuple(sorted(set(self.second))))

    @property
    def second_in_first(self) -> list[int]:
        """Positions in ``first`` of each ``second`` column."""
        return [self.first.index(j) for j in self.second]


class Jet(NamedTuple):
    value: torch.Tensor
    first: torch.Tensor | None
    second: torch.Tensor | None


def input_jet(x: torch.Tensor, spec: JetSpec) -> Jet:
    """The jet of the identity map at points ``x`` (``(n, d)``): unit first derivatives, zero second."""
    if not spec.first:
        return Jet(x, None, None)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)[list(spec.first)]
    return Jet(x, eye[:, None, :], None)


def affine(jet: Jet, shift: torch.Tensor, scale: torch.Tensor) -> Jet:
    """``(value − shift) / scale`` column-wise (input normalisation)."""
    first = None if jet.first is None else jet.first / scale
    second = None if jet.second is None else jet.second / scale
    return Jet((jet.value - shift) / scale, first, second)


def scale(jet: Jet, factor: torch.Tensor | None) -> Jet:
    """``value · factor`` column-wise (a model's output scale; ``None``: the jet as it is)."""
    if factor is None:
        return jet
    return Jet(*(None if t is None else t * factor for t in jet))


def linear(jet: Jet, weight: torch.Tensor, bias: torch.Tensor | None) -> Jet:
    """``value @ weight.T + bias``; derivatives are mapped by ``weight`` alone."""
    value = jet.value @ weight.T
    if bias is not None:
        value = value + bias
    first = None if jet.first is None else jet.first @ weight.T
    second = None if jet.second is None else jet.second @ weight.T
    return Jet(value, first, second)


def _elementwise(jet: Jet, spec: JetSpec, f0: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor) -> Jet:
    """Chain rule for an elementwise function with value f0, first derivative f1 and second f2."""
    first = None if jet.first is None else f1 * jet.first
    second = None
    if spec.second:
        g = jet.first[spec.second_in_first]
        second = f2 * g * g
        if jet.second is not None:
            second = second + f1 * jet.second
    return Jet(f0, first, second)


def tanh(jet: Jet, spec: JetSpec) -> Jet:
    """``tanh`` of a jet."""
    s = torch.tanh(jet.value)
    if jet.first is None:
        return Jet(s, None, None)
    d1 = 1 - s * s
    return _elementwise(jet, spec, s, d1, -2 * s * d1)


def sin(jet: Jet, spec: JetSpec) -> Jet:
    """``sin`` of a jet."""
    s = torch.sin(jet.value)
    if jet.first is None:
        return Jet(s, None, None)
    return _elementwise(jet, spec, s, torch.cos(jet.value), -s)


def cos(jet: Jet, spec: JetSpec) -> Jet:
    """``cos`` of a jet."""
    c = torch.cos(jet.value)
    if jet.first is None:
        return Jet(c, None, None)
    return _elementwise(jet, spec, c, -torch.sin(jet.value), -c)


def concat(jets: list[Jet]) -> Jet:
    """Concatenate jets along the feature axis."""
    value = torch.cat([j.value for j in jets], dim=-1)
    if jets[0].first is None:
        return Jet(value, None, None)
    n = value.shape[0]
    first = torch.cat([j.first.expand(j.first.shape[0], n, j.first.shape[-1]) for j in jets], dim=-1)
    if all(j.second is None for j in jets):
        return Jet(value, first, None)
    second = torch.cat(
        [
            j.second if j.second is not None else value.new_zeros(first.shape[0], n, j.value.shape[-1])
            for j in jets
        ],
        dim=-1,
    )
    return Jet(value, first, second)


def product(a: Jet, b: Jet, spec: JetSpec) -> Jet:
    """Elementwise product of two jets (Leibniz rule)."""
    value = a.value * b.value
    if not spec.first:
        return Jet(value, None, None)
    first = a.first * b.value + a.value * b.first
    second = None
    if spec.second:
        pos = spec.second_in_first
        second = 2 * a.first[pos] * b.first[pos]
        if a.second is not None:
            second = second + a.second * b.value
        if b.second is not None:
            second = second + a.value * b.second
    return Jet(value, first, second)


def function_jet(fn, x: torch.Tensor, spec: JetSpec, *, detach: bool = True) -> Jet:
    """The jet of a parameter-free function ``fn`` (points -> ``(n,)`` or ``(n, c)``) by autograd, detached.

    Used for the fixed factors of hard constraints; it costs a few backward passes through ``fn`` only.
    With ``detach=False`` the jet keeps its graph (``fn`` with trainable scalars: gradients reach them).
    """
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        v = fn(xr)
        if isinstance(v, (int, float)):  # a fill, not a host-to-device copy
            v = x.new_full((x.shape[0],), float(v))
        elif not torch.is_tensor(v):
            v = torch.as_tensor(v, dtype=x.dtype, device=x.device).expand(x.shape[0])
        if v.ndim == 1:
            v = v[:, None]
        if v.shape[0] != x.shape[0]:
            v = v.expand(x.shape[0], v.shape[-1])
        firsts, seconds = [], []
        for c in range(v.shape[1]):
            col = v[:, c]
            if col.requires_grad:
                (g,) = torch.autograd.grad(
                    col.sum(),
                    xr,
                    create_graph=bool(spec.second) or not detach,
                    retain_graph=True,
                    allow_unused=True,
                )  # the columns may share a graph
            else:
                g = None
            g = torch.zeros_like(xr) if g is None else g
            firsts.append(g[:, list(spec.first)].T if spec.first else None)
            if spec.second:
                rows = []
                for j in spec.second:
                    if g[:, j].requires_grad:
                        (h,) = torch.autograd.grad(
                            g[:, j].sum(), xr, retain_graph=True, allow_unused=True, create_graph=not detach
                        )
                    else:
                        h = None
                    rows.append(torch.zeros_like(xr[:, 0]) if h is None else h[:, j])
                seconds.append(torch.stack(rows))
    first = torch.stack(firsts, dim=-1) if spec.first else None
    second = torch.stack(seconds, dim=-1) if spec.second else None
    if detach:
        v, first, second = (None if t is None else t.detach() for t in (v, first, second))
    return Jet(v, first, second)
