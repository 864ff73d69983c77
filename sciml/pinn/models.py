"""Models that map coordinates to fields: a tanh MLP (PINN) and Physics-Informed Gaussians (PIG).

Both take raw coordinates ``(n, in_features)``, rescale the problem's box to ``[−1, 1]^d`` inside, and
return ``(n, out_features)``. Both also implement :meth:`jet` — value plus first and pure second input
derivatives in one forward pass (:mod:`sciml.pinn.jet`) — which the trainer uses for residuals; any other
``torch.nn.Module`` works too, through reverse-mode autograd.

* :class:`PINN` — Raissi, Perdikaris & Karniadakis, *Physics-informed neural networks*, JCP 2019: a tanh
  MLP, optionally behind random Fourier features (Tancik et al., NeurIPS 2020; Wang, Wang & Perdikaris,
  CMAME 2021).
* :class:`PIG` — Kang et al., *PIG: Physics-Informed Gaussians as Adaptive Parametric Mesh
  Representations*, ICLR 2025: ``feature_c(x) = Σ_n w_{n,c} exp(−½ |Lₙᵀ(x − μₙ)|²)`` with learnable means,
  scales (diagonal, or a full covariance via a Cholesky factor Lₙ of the precision) and k-dimensional
  weights, followed by a one-hidden-layer tanh MLP.
* :class:`Constrained` — the hard-constraint output transform ``u = g(x) + h(x) N(x)`` of a problem's
  :class:`~sciml.problems.pde.problem.HardConstraint`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn

from sciml.pinn import jet as J
from sciml.problems.pde.problem import HardConstraint

__all__ = ["PINN", "PIG", "Constrained", "count_parameters"]

#: largest quadratic form evaluated: exp(−50) ≈ 2e-22 stays far from float32's subnormals (< 1.2e-38)
_Q_MAX = 100.0


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _bounds(in_features: int, lower, upper) -> tuple[torch.Tensor, torch.Tensor]:
    lower = torch.full((in_features,), -1.0) if lower is None else torch.as_tensor(lower, dtype=torch.float64)
    upper = torch.full((in_features,), 1.0) if upper is None else torch.as_tensor(upper, dtype=torch.float64)
    if lower.shape != (in_features,) or upper.shape != (in_features,) or not torch.all(upper > lower):
        raise ValueError(f"`lower`/`upper` must have {in_features} entries with lower < upper")
    return (lower + upper) / 2, (upper - lower) / 2


def _real(value) -> bool:
    """A real number (Python or numpy scalar), not a bool or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _columns(value, name: str) -> tuple:
    """``value`` as a tuple: one integer alone is accepted too.

    Raises:
        ValueError: neither an integer nor an iterable (naming ``name``).
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),)
    try:
        return tuple(value)
    except TypeError:
        raise ValueError(f"`{name}` must be an integer or a list of integers, got {value!r}") from None


def _check_features(in_features: int, out_features: int) -> None:
    for name, value in (("in_features", in_features), ("out_features", out_features)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}")


def _output_scale(value, out_features: int) -> torch.Tensor | None:
    """``output_scale`` as a ``(out_features,)`` tensor (``None`` stays ``None``).

    Raises:
        ValueError: not one positive finite number or ``out_features`` of them (naming the argument).
    """
    if value is None:
        return None
    try:
        scales = [value] * out_features if _real(value) else list(value)
    except TypeError:
        scales = [value]
    if len(scales) != out_features or not all(_real(s) and math.isfinite(s) and s > 0 for s in scales):
        example = (1.0,) + (1e-3,) * (out_features - 1)
        raise ValueError(
            f"`output_scale` must be a positive finite number or {out_features} of them (one per output "
            f"field, e.g. output_scale={example}), got {value!r}"
        )
    return torch.tensor([float(s) for s in scales], dtype=torch.get_default_dtype())


class _Normalized(nn.Module):
    """Holds the box centre and half-widths as buffers (the input map to [−1, 1]^d), and the optional
    ``output_scale`` buffer that multiplies the outputs (``None``: not in the state dict)."""

    def _set_box(self, in_features: int, lower, upper) -> None:
        centre, half = _bounds(in_features, lower, upper)
        self.register_buffer("box_centre", centre.float())
        self.register_buffer("box_half", half.float())

    def _set_output_scale(self, value, out_features: int) -> None:
        self.register_buffer("output_scale", _output_scale(value, out_features))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.box_centre) / self.box_half

    def scaled(self, out: torch.Tensor) -> torch.Tensor:
        """The outputs times ``output_scale`` (unchanged without one)."""
        return out if self.output_scale is None else out * self.output_scale


class PINN(_Normalized):
    """A tanh multilayer perceptron from coordinates to fields.

    Args:
        in_features: number of coordinates.
        out_features: number of fields.
        hidden: widths of the hidden layers (one integer: one hidden layer of that width).
        lower, upper: the problem's box (inputs are mapped to [−1, 1]); default [−1, 1]^d.
        fourier_features: if > 0, the inputs first go through ``[sin(2π B x), cos(2π B x)]`` with a fixed
            ``B ~ N(0, fourier_scale²)`` of this many rows.
        fourier_scale: standard deviation of ``B``.
        periodic: input columns (one integer: one column) that are periodic over the box (period = the box
            width, so the box must be the domain's extent there; the trainer checks it): each is replaced by
            ``cos(kπh), sin(kπh)``, k = 1..``harmonics``, of its normalised value h ∈ [−1, 1], so the network
            is exactly periodic in it (Dong & Ni, JCP 2021; Wang et al., *An expert's guide to training
            PINNs*, 2023). Not combined with ``fourier_features``.
        harmonics: number of harmonics per periodic column.
        rwf: random weight factorisation of every dense layer (Wang, Wang, Wang & Perdikaris, *Random
            weight factorization improves the training of continuous neural representations*, 2022; the
            expert's guide, 2023): ``W = diag(exp(s)) V`` with a trainable log-scale ``s`` per output
            neuron, ``s ~ N(rwf_mean, rwf_std²)`` at initialisation and ``V = W₀ / exp(s)`` for the Glorot
            ``W₀``, so the initial function is that of the plain network; only the parametrisation (and
            hence the gradient descent path) changes.
        rwf_mean, rwf_std: mean and standard deviation of the initial log-scales (the guide: 1.0 and 0.1,
            or 0.5 and 0.1).
        output_scale: a positive number, or one per output field, that multiplies the outputs (a buffer, saved
            in the state dict; default none): a field of size ~1e-3 next to one of size ~1 is learned as a
            network output of size ~1, ``output_scale=(1.0, 1e-3)``; the jet derivatives are scaled alike.
        generator: seeds the initialisation.

    Raises:
        ValueError: non-positive sizes, periodic columns out of range, a negative ``rwf_std``, or an
            ``output_scale`` that is not one positive finite number or one per output.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64, 64),
        *,
        lower: Sequence[float] | None = None,
        upper: Sequence[float] | None = None,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        periodic: Sequence[int] = (),
        harmonics: int = 1,
        rwf: bool = False,
        rwf_mean: float = 1.0,
        rwf_std: float = 0.1,
        output_scale: float | Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_features(in_features, out_features)
        if not isinstance(rwf, bool):
            raise ValueError(f"`rwf` must be True or False, got {rwf!r}")
        for name, value in (("rwf_mean", rwf_mean), ("rwf_std", rwf_std)):
            if rwf and not _real(value):
                raise ValueError(f"`{name}` must be a number, got {value!r} ({type(value).__name__})")
        if rwf and not (math.isfinite(rwf_mean) and math.isfinite(rwf_std) and rwf_std >= 0):
            raise ValueError(f"`rwf_mean` must be finite and `rwf_std` ≥ 0, got {rwf_mean!r}, {rwf_std!r}")
        hidden = _columns(hidden, "hidden")
        periodic = _columns(periodic, "periodic")
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < in_features for i in periodic):
            raise ValueError(f"`periodic` must list input columns in [0, {in_features}), got {periodic!r}")
        if len(set(periodic)) != len(periodic):
            raise ValueError(f"`periodic` lists a column twice: {periodic!r}")
        if isinstance(harmonics, bool) or not isinstance(harmonics, int) or harmonics < 1:
            raise ValueError(f"`harmonics` must be a positive integer, got {harmonics!r}")
        if periodic and fourier_features:
            raise ValueError("`periodic` and `fourier_features` cannot be combined; choose one embedding")
        if not hidden or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden):
            raise ValueError(f"`hidden` must be a non-empty list of positive widths, got {hidden!r}")
        features = fourier_features
        if isinstance(features, bool) or not isinstance(features, int) or features < 0:
            raise ValueError(f"`fourier_features` must be an integer ≥ 0, got {fourier_features!r}")
        if fourier_features and not (
            isinstance(fourier_scale, (int, float))
            and not isinstance(fourier_scale, bool)
            and math.isfinite(fourier_scale)
            and fourier_scale > 0
        ):
            raise ValueError(f"`fourier_scale` must be a positive finite number, got {fourier_scale!r}")
        self.in_features, self.out_features = in_features, out_features
        self._set_box(in_features, lower, upper)
        self._set_output_scale(output_scale, out_features)
        width = in_features
        self.periodic = periodic
        if periodic:
            # rows kπ e_i (the phases of the harmonics) and the selection of the non-periodic columns
            rows = [
                k * math.pi * torch.eye(in_features)[i] for i in periodic for k in range(1, harmonics + 1)
            ]
            self.register_buffer("periodic_phase", torch.stack(rows))
            keep = [i for i in range(in_features) if i not in periodic]
            self.register_buffer("periodic_keep", torch.eye(in_features)[keep])
            width = 2 * len(rows) + len(keep)
        if fourier_features:
            B = torch.randn(fourier_features, in_features, generator=generator) * fourier_scale
            self.register_buffer("fourier", 2 * math.pi * B)
            width = 2 * fourier_features
        else:
            self.fourier = None
        sizes = (width, *hidden, out_features)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer in self.layers:
            fan_in, fan_out = layer.weight.shape[1], layer.weight.shape[0]
            std = math.sqrt(2.0 / (fan_in + fan_out))  # Glorot normal
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                layer.bias.zero_()
        #: RWF log-scales, one vector per layer (``layer.weight`` then holds ``V``); None without RWF
        self.rwf_scales: nn.ParameterList | None = None
        if rwf:
            scales = []
            for layer in self.layers:
                s = rwf_mean + rwf_std * torch.randn(layer.weight.shape[0], generator=generator)
                with torch.no_grad():
                    layer.weight.div_(torch.exp(s)[:, None])
                scales.append(nn.Parameter(s))
            self.rwf_scales = nn.ParameterList(scales)

    def dense_weights(self) -> list[torch.Tensor]:
        """The effective weight matrix of each dense layer (``diag(exp(s)) V`` with RWF)."""
        if self.rwf_scales is None:
            return [layer.weight for layer in self.layers]
        return [torch.exp(s)[:, None] * layer.weight for s, layer in zip(self.rwf_scales, self.layers)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.normalize(x)
        if self.periodic:
            z = h @ self.periodic_phase.T
            h = torch.cat([torch.cos(z), torch.sin(z), h @ self.periodic_keep.T], dim=-1)
        if self.fourier is not None:
            z = h @ self.fourier.T
            h = torch.cat([torch.sin(z), torch.cos(z)], dim=-1)
        weights = self.dense_weights()
        for W, layer in zip(weights[:-1], self.layers[:-1]):
            h = torch.tanh(torch.nn.functional.linear(h, W, layer.bias))
        return self.scaled(torch.nn.functional.linear(h, weights[-1], self.layers[-1].bias))

    def jet(self, x: torch.Tensor, spec: J.JetSpec) -> J.Jet:
        """Value and input derivatives in one forward pass (see :mod:`sciml.pinn.jet`)."""
        jet = J.affine(J.input_jet(x, spec), self.box_centre, self.box_half)
        if self.periodic:
            z = J.linear(jet, self.periodic_phase, None)
            keep = J.linear(jet, self.periodic_keep, None)
            if spec.second and keep.second is None:  # the identity's second derivatives are zero
                zeros = keep.value.new_zeros(len(spec.second), *keep.value.shape)
                keep = J.Jet(keep.value, keep.first, zeros)
            jet = J.concat([J.cos(z, spec), J.sin(z, spec), keep])
        if self.fourier is not None:
            z = J.linear(jet, self.fourier, None)
            jet = J.concat([J.sin(z, spec), J.cos(z, spec)])
        weights = self.dense_weights()
        for W, layer in zip(weights[:-1], self.layers[:-1]):
            jet = J.tanh(J.linear(jet, W, layer.bias), spec)
        return J.scale(J.linear(jet, weights[-1], self.layers[-1].bias), self.output_scale)


class PIG(_Normalized):
    """Physics-Informed Gaussians: a learnable Gaussian feature layer and a small tanh MLP.

    Args:
        in_features: number of coordinates.
        out_features: number of fields.
        n_gaussians: number of Gaussians ``N``.
        feature_dim: ``k``, the dimension of each Gaussian's weight vector (features fed to the MLP).
        hidden: width of the MLP's one hidden layer.
        sigma: initial scale of every Gaussian, in the normalised [−1, 1] coordinates: one number for
            every axis, or one per input column (anisotropic Gaussians, e.g. narrower along a long time
            axis on which the solution oscillates).
        full_covariance: learn a full covariance per Gaussian (a lower-triangular Cholesky factor of the
            precision, positive diagonal) instead of diagonal scales.
        weight_std: standard deviation of the initial Gaussian weights.
        channels: ``"shared"`` — ``N`` Gaussians, each with a ``k``-dimensional weight vector (the paper's
            description); ``"separate"`` — each of the ``k`` features has its own ``N`` Gaussians with a
            scalar weight (``k·N`` Gaussians in all; the authors' released code). ``"separate"`` costs
            ``k`` times the Gaussian evaluations of ``"shared"`` for the same ``N``.
        lower, upper: the problem's box; the means start uniform in it.
        output_scale: a positive number, or one per output field, that multiplies the outputs (a buffer, saved
            in the state dict; default none): a field of size ~1e-3 next to one of size ~1 is learned as a
            network output of size ~1, ``output_scale=(1.0, 1e-3)``; the jet derivatives are scaled alike.
        generator: seeds the initialisation.

    Raises:
        ValueError: non-positive sizes or scales (``output_scale`` too: one positive finite number or one
            per output), an unknown ``channels``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_gaussians: int = 400,
        *,
        feature_dim: int = 4,
        hidden: int = 16,
        sigma: float | Sequence[float] = 0.1,
        full_covariance: bool = False,
        weight_std: float = 0.01,
        channels: str = "shared",
        lower: Sequence[float] | None = None,
        upper: Sequence[float] | None = None,
        output_scale: float | Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_features(in_features, out_features)
        if channels not in ("shared", "separate"):
            raise ValueError(f"`channels` must be 'shared' or 'separate', got {channels!r}")
        for name, value in (("n_gaussians", n_gaussians), ("feature_dim", feature_dim), ("hidden", hidden)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        try:
            sigmas = [sigma] * in_features if _real(sigma) else list(sigma)
        except TypeError:
            sigmas = [sigma]
        valid = [_real(s) and s > 0 for s in sigmas]
        if len(sigmas) != in_features or not all(v and math.isfinite(s) for v, s in zip(valid, sigmas)):
            raise ValueError(
                f"`sigma` must be a positive number or {in_features} positive numbers (one per input "
                f"column), got {sigma!r}"
            )
        sigmas = [float(s) for s in sigmas]
        if not weight_std >= 0:
            raise ValueError(f"`weight_std` must be ≥ 0, got {weight_std}")
        self.in_features, self.out_features = in_features, out_features
        self.full_covariance = bool(full_covariance)
        self._set_box(in_features, lower, upper)
        self._set_output_scale(output_scale, out_features)
        self.channels = channels
        d = in_features
        if channels == "separate":  # k sets of N Gaussians: channel c holds rows c·N … (c+1)·N − 1
            n_gaussians = n_gaussians * feature_dim
        self.means = nn.Parameter(torch.rand(n_gaussians, d, generator=generator) * 2 - 1)
        # diagonal: log of the inverse scales; full: log-diagonal and strictly lower part of the
        # Cholesky factor L of the precision (q = |Lᵀ (x − μ)|²)
        inv_scale = -torch.log(torch.tensor(sigmas, dtype=torch.float32))
        self.log_inv_scale = nn.Parameter(inv_scale.expand(n_gaussians, d).clone())
        if self.full_covariance:
            self.offdiag = nn.Parameter(torch.zeros(n_gaussians, d, d))
            self.register_buffer("_tril", torch.tril(torch.ones(d, d), diagonal=-1))
        else:
            self.offdiag = None
        if channels == "shared":
            weights = torch.randn(n_gaussians, feature_dim, generator=generator)
            self.weights = nn.Parameter(weights * weight_std)
        else:  # one scalar weight per Gaussian, placed in its channel's column by a fixed one-hot matrix
            self.weights = nn.Parameter(torch.randn(n_gaussians, generator=generator) * weight_std)
            channel = torch.arange(n_gaussians) // (n_gaussians // feature_dim)
            self.register_buffer("_onehot", nn.functional.one_hot(channel, feature_dim).float())
        self.feature_dim = feature_dim
        self.hidden = nn.Linear(feature_dim, hidden)
        self.output = nn.Linear(hidden, out_features)
        for layer in (self.hidden, self.output):
            std = math.sqrt(2.0 / sum(layer.weight.shape))
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                layer.bias.zero_()

    @property
    def n_gaussians(self) -> int:
        """All Gaussians (``k·N`` with ``channels="separate"``)."""
        return self.means.shape[0]

    def weight_matrix(self) -> torch.Tensor:
        """The Gaussians' weights as ``(n_gaussians, k)``: features are ``Φ @ weight_matrix()``."""
        if self.channels == "shared":
            return self.weights
        return self.weights[:, None] * self._onehot

    def cholesky(self) -> torch.Tensor:
        """The precision's Cholesky factors ``L`` (``(N, d, d)``, lower-triangular)."""
        diag = torch.diag_embed(torch.exp(self.log_inv_scale))
        if self.offdiag is None:
            return diag
        return diag + self.offdiag * self._tril

    def precision(self) -> torch.Tensor:
        """``P = L Lᵀ`` per Gaussian, ``(N, d, d)``; the quadratic form is ``(h − μ)ᵀ P (h − μ)``."""
        L = self.cholesky()
        return L @ L.transpose(1, 2)

    def _pairs(self) -> list[tuple[int, int]]:
        d = self.in_features
        return [(i, j) for i in range(d) for j in range(i, d) if i == j or self.offdiag is not None]

    def _phi(self, h: torch.Tensor, P: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``Φ = exp(−½ (h − μ)ᵀ P (h − μ))`` as ``(n, N)``, the quadratic form expanded into one matmul:
        ``Σ_ij P_ij h_i h_j − 2 Σ_i b_i h_i + μᵀ b`` with ``b = P μ``."""
        monomials, rows = [], []
        for i, j in self._pairs():
            monomials.append(h[:, i] * h[:, j])
            rows.append(P[:, i, j] * (1.0 if i == j else 2.0))
        for i in range(h.shape[1]):
            monomials.append(h[:, i])
            rows.append(-2 * b[:, i])
        monomials.append(torch.ones_like(h[:, 0]))
        rows.append((self.means * b).sum(1))
        q = torch.stack(monomials, dim=1) @ torch.stack(rows)
        # beyond 10 standard deviations a Gaussian is < 2e-22: clamping there keeps exp() and the products
        # after it out of the subnormal range, where x86 floating point is an order of magnitude slower.
        # In place and outside autograd (exp's backward needs only its output), so the gradient passes
        # straight through — it is ~1e-22 times the gradient there anyway.
        with torch.no_grad():
            q.clamp_(max=_Q_MAX)
        return torch.exp(-0.5 * q)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The Gaussian features ``(n, k)``."""
        P = self.precision()
        b = (P @ self.means[:, :, None])[:, :, 0]
        return self._phi(self.normalize(x), P, b) @ self.weight_matrix()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scaled(self.output(torch.tanh(self.hidden(self.features(x)))))

    def _feature_jet(self, h: torch.Tensor, spec: J.JetSpec) -> J.Jet:
        """Features and their derivatives by one ``Φ @ [weight blocks]`` product.

        With ``g_j = Σ_i P_ji h_i − b_j``: ``∂Φ/∂h_j = −Φ g_j`` and ``∂²Φ/∂h_j² = Φ (g_j² − P_jj)``.
        Both are polynomials in ``h`` (per point) times functions of the Gaussian (per column), so
        ``(Φ ⊙ c(h) r_n) W = c(h) · Φ (r ⊙ W)``: every derivative is a sum of point-wise polynomial
        factors times columns of a single matrix product — no ``(n, N)`` array besides ``Φ`` is formed.
        """
        P = self.precision()
        b = (P @ self.means[:, :, None])[:, :, 0]
        phi = self._phi(h, P, b)
        W = self.weight_matrix()
        d = h.shape[1]
        full = self.offdiag is not None
        blocks: list[torch.Tensor] = [W]
        # each output is a list of (point factor or None, block index, sign)
        first_terms, second_terms = [], []
        for j in spec.first:
            terms = []
            for i in range(d):
                if full or i == j:
                    blocks.append(P[:, j, i, None] * W)
                    terms.append((h[:, i], len(blocks) - 1, -1.0))
            blocks.append(b[:, j, None] * W)
            terms.append((None, len(blocks) - 1, 1.0))
            first_terms.append((j, terms))
        for j in spec.second:
            terms = []
            for i in range(d):
                for k in range(i, d):
                    if not full and not (i == j == k):
                        continue
                    blocks.append(P[:, j, i, None] * P[:, j, k, None] * W)
                    terms.append((h[:, i] * h[:, k], len(blocks) - 1, 1.0 if i == k else 2.0))
                if full or i == j:
                    blocks.append(P[:, j, i, None] * b[:, j, None] * W)
                    terms.append((h[:, i], len(blocks) - 1, -2.0))
            blocks.append((b[:, j] ** 2 - P[:, j, j])[:, None] * W)
            terms.append((None, len(blocks) - 1, 1.0))
            second_terms.append((j, terms))
        k = W.shape[1]
        M = phi @ torch.cat(blocks, dim=1)

        def combine(terms) -> torch.Tensor:
            out = 0.0
            for factor, block, sign in terms:
                column = M[:, block * k : (block + 1) * k]
                out = out + sign * (column if factor is None else factor[:, None] * column)
            return out

        value = M[:, :k]
        first = torch.stack([combine(t) / self.box_half[j] for j, t in first_terms]) if spec.first else None
        second = (
            torch.stack([combine(t) / self.box_half[j] ** 2 for j, t in second_terms])
            if spec.second
            else None
        )
        return J.Jet(value, first, second)

    def jet(self, x: torch.Tensor, spec: J.JetSpec) -> J.Jet:
        """Value and input derivatives in one forward pass (Gaussian layer analytic, see ``_feature_jet``)."""
        jet = self._feature_jet(self.normalize(x), spec)
        jet = J.tanh(J.linear(jet, self.hidden.weight, self.hidden.bias), spec)
        return J.scale(J.linear(jet, self.output.weight, self.output.bias), self.output_scale)


class Constrained(nn.Module):
    """``u = particular(x) + factor(x) · N(x)``: a hard-constraint output transform around ``net``.

    When the constraint has a ``corner`` factor (a polygon with a re-entrant corner, see
    ``Geometry.corner_factor``), ``net`` has twice the fields' outputs ``(N₁, N₂)`` and
    ``u = particular + factor · N₁ + corner · N₂``: with a single positive factor ``(u − g)/φ`` has no limit
    at such a corner, and the relative L2 error of a PINN on the L-shape stalls near 1e-2.

    Args:
        net: the model (PINN, PIG or any module with ``in_features``/``out_features``); build it with
            ``Constrained.outputs(constraint, n_fields)`` outputs.
        constraint: the problem's :class:`~sciml.problems.pde.problem.HardConstraint`.

    Raises:
        TypeError: ``constraint`` is not a HardConstraint.
        ValueError: ``net`` declares an output count that does not fit the constraint.
    """

    def __init__(self, net: nn.Module, constraint: HardConstraint) -> None:
        super().__init__()
        if not isinstance(constraint, HardConstraint):
            raise TypeError(f"`constraint` must be a HardConstraint, got {type(constraint).__name__}")
        self.net = net
        self.constraint = constraint
        self.in_features = getattr(net, "in_features", None)
        out = getattr(net, "out_features", None)
        self.split = constraint.corner is not None
        if self.split and out is not None and out % 2:
            raise ValueError(
                f"this constraint has a corner factor (re-entrant corners): `net` needs 2 outputs per "
                f"field (N₁ and N₂), got out_features={out}; build it with "
                f"Constrained.outputs(constraint, n_fields) outputs"
            )
        self.out_features = out // 2 if self.split and out is not None else out
        self._cache = None
        # trainable scalars of the ansatz (float64 start values; the trainer casts the model's dtype)
        self.scalars = nn.ParameterDict(
            {
                k: nn.Parameter(torch.tensor(float(v), dtype=torch.float64))
                for k, v in constraint.parameters.items()
            }
        )

    def _fixed(self) -> tuple[Callable, Callable]:
        """``particular`` and ``factor`` as functions of the points (bound to the trainable scalars)."""
        return self.constraint.bind(dict(self.scalars))

    @staticmethod
    def outputs(constraint: HardConstraint | None, n_fields: int) -> int:
        """Outputs the wrapped network needs: ``2 · n_fields`` with a corner factor, else ``n_fields``."""
        return 2 * n_fields if constraint is not None and constraint.corner is not None else n_fields

    @staticmethod
    def _columns(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if isinstance(v, (int, float)):  # a fill, not a host-to-device copy
            v = x.new_full((x.shape[0],), float(v))
        elif not torch.is_tensor(v):
            v = torch.as_tensor(v, dtype=x.dtype, device=x.device).expand(x.shape[0])
        return v[:, None] if v.ndim == 1 else v

    def _halves(self, width: int) -> int:
        """Number of fields of a network output of ``width`` columns.

        Raises:
            ValueError: an odd width with a corner factor.
        """
        if not self.split:
            return width
        if width % 2:
            raise ValueError(
                f"this constraint has a corner factor: the network must return 2 columns per field, "
                f"got {width}"
            )
        return width // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        particular, factor = self._fixed()
        g = self._columns(particular(x), x)
        h = self._columns(factor(x), x)
        n = self.net(x)
        if not self.split:
            return g + h * n
        f = self._halves(n.shape[1])
        c = self._columns(self.constraint.corner(x), x)
        return g + h * n[:, :f] + c * n[:, f:]

    def _fixed_jets(self, x: torch.Tensor, spec: J.JetSpec) -> tuple[J.Jet, J.Jet, J.Jet | None]:
        """Jets of ``particular``, ``factor`` and ``corner`` (parameter-free), cached for the same points
        tensor: the collocation points stay fixed between resamplings, so the autograd work is done once per
        set. With trainable scalars they are recomputed each call and keep their graph."""
        if self.constraint.parameters:
            particular, factor = self._fixed()
            g = J.function_jet(particular, x, spec, detach=False)
            h = J.function_jet(factor, x, spec, detach=False)
            return g, h, J.function_jet(self.constraint.corner, x, spec) if self.split else None
        cache = self._cache
        if cache is None or cache[0] is not x or cache[1] != x._version or cache[2] != spec:
            g = J.function_jet(self.constraint.particular, x, spec)
            h = J.function_jet(self.constraint.factor, x, spec)
            c = J.function_jet(self.constraint.corner, x, spec) if self.split else None
            cache = self._cache = (x, x._version, spec, g, h, c)
        return cache[3], cache[4], cache[5]

    @staticmethod
    def _slice(jet: J.Jet, columns: slice) -> J.Jet:
        return J.Jet(*(None if t is None else t[..., columns] for t in jet))

    def jet(self, x: torch.Tensor, spec: J.JetSpec) -> J.Jet:
        if not hasattr(self.net, "jet"):
            raise AttributeError("the wrapped model has no jet(); use autograd derivatives")
        n = self.net.jet(x, spec)
        g, h, c = self._fixed_jets(x, spec)
        if self.split:
            f = self._halves(n.value.shape[-1])
            hn = J.product(h, self._slice(n, slice(0, f)), spec)
            cn = J.product(c, self._slice(n, slice(f, None)), spec)
            hn = J.Jet(*(None if a is None else a + b for a, b in zip(hn, cn)))
        else:
            hn = J.product(h, n, spec)
        value = g.value + hn.value
        first = None if hn.first is None else g.first + hn.first
        second = None
        if spec.second:
            second = hn.second if g.second is None else g.second + hn.second
        return J.Jet(value, first, second)
