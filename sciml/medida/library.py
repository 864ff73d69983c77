"""The candidate-term library of MEDIDA: ``u^p ∂_x^q u`` evaluated spectrally, user-extensible.

The default library is PDE-FIND's (Rudy et al., Sci. Adv. 2017) as used by MEDIDA (Mojgani,
Chattopadhyay & Hassanzadeh, Chaos 32, 2022): products of ``1, u, …, u^4`` with ``1, u_x, …, u_xxxx``
without the constant, 24 terms. A term ``(p, q)`` here is ``u^p ∂_x^q u`` with ``∂_x^0 u = u``, the same
key a :class:`~sciml.problems.semilinear.SemilinearPeriodicProblem` uses, and it is evaluated by the same
function (:func:`sciml.problems.semilinear.evaluate_term`), so a discovered term enters the corrected model
exactly as it was fitted. Derivatives are spectral (``rfft``/``irfft``), not finite differences.

Users add terms by name (``"u^5"``, ``"u^2*u_xxx"``), by key, or as :class:`Term` objects with a function
of ``u`` and its derivatives (e.g. ``Term("sin(u)", fn=lambda u, d: torch.sin(u))``); a function term can
be discovered but cannot be put into a semilinear model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from sciml.problems.semilinear import evaluate_term, parse_term, spectral_derivative, term_name

__all__ = ["Term", "Library"]

DerivativeFn = Callable[[int], torch.Tensor]


@dataclass(frozen=True)
class Term:
    """One candidate term.

    Args:
        name: how the term is printed.
        key: ``(p, q)`` for ``u^p ∂_x^q u`` (``None`` for a function term).
        fn: for a function term, ``fn(u, d) -> values`` where ``d(q)`` returns ``∂_x^q u``; the result must
            have the shape of ``u`` and be finite.
    """

    name: str
    key: tuple[int, int] | None = None
    fn: Callable[[torch.Tensor, DerivativeFn], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if (self.key is None) == (self.fn is None):
            raise ValueError(f"term {self.name!r}: give exactly one of key=(p, q) or fn=callable")
        if self.fn is not None and not callable(self.fn):
            raise TypeError(f"term {self.name!r}: fn must be callable, got {type(self.fn).__name__}")

    @classmethod
    def of(cls, spec: str | tuple[int, int] | Term) -> Term:
        """A term from a name (``"u*u_x"``), a key ``(1, 1)`` or a :class:`Term`."""
        if isinstance(spec, Term):
            return spec
        if isinstance(spec, str):
            key = parse_term(spec)
        elif isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(v, int) and v >= 0 for v in spec):
            key = (int(spec[0]), int(spec[1]))
        else:
            raise ValueError(
                f"library term {spec!r} is not computable: give a name like 'u^2*u_x', a pair (p, q) of "
                "non-negative integers, or a Term(name, fn=...)"
            )
        return cls(term_name(*key), key=key)


class Library:
    """An ordered set of candidate terms evaluated on periodic grid values.

    Args:
        terms: names, ``(p, q)`` keys or :class:`Term` objects; default :meth:`polynomial` ``(4, 4)``.

    Raises:
        ValueError: an unparseable term or two terms with the same name.

    Example:
        >>> lib = Library.polynomial()  # 24 terms: u, u^2, ..., u_x, u*u_x, ..., u^4*u_xxxx
        >>> len(lib), lib.names[:3]
        (24, ['u', 'u^2', 'u^3'])
        >>> len(lib.extend("u^5"))
        25
    """

    def __init__(self, terms: Iterable[str | tuple[int, int] | Term] | None = None) -> None:
        terms = Library.polynomial().terms if terms is None else [Term.of(t) for t in terms]
        names = [t.name for t in terms]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"library terms must be distinct; repeated: {duplicates}")
        if not terms:
            raise ValueError("the library needs at least one term")
        self.terms: tuple[Term, ...] = tuple(terms)

    @classmethod
    def polynomial(cls, max_power: int = 4, max_derivative: int = 4) -> Library:
        """PDE-FIND's library: ``u^a ∂_x^q u`` products of ``1..u^max_power`` and ``1..∂^max_derivative``,
        constant dropped (``(max_power + 1)(max_derivative + 1) − 1`` terms; 24 by default)."""
        if max_power < 1 or max_derivative < 0:
            raise ValueError(
                f"need max_power >= 1 and max_derivative >= 0, got {max_power}, {max_derivative}"
            )
        keys = [(p, 0) for p in range(max_power)]  # u, u^2, ..., u^max_power
        keys += [(p, q) for q in range(1, max_derivative + 1) for p in range(max_power + 1)]
        keys.sort(key=lambda k: (k[1] > 0, k[1], k[0]) if k[1] else (0, 0, k[0]))
        return cls([Term(term_name(*k), key=k) for k in keys])

    def extend(self, *terms: str | tuple[int, int] | Term) -> Library:
        """A new library with ``terms`` appended."""
        return Library([*self.terms, *(Term.of(t) for t in terms)])

    def __len__(self) -> int:
        return len(self.terms)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    @property
    def keys(self) -> list[tuple[int, int] | None]:
        return [t.key for t in self.terms]

    def index(self, name_or_key: str | tuple[int, int]) -> int:
        """Position of a term given by name or key (``ValueError`` if absent)."""
        name = name_or_key if isinstance(name_or_key, str) else term_name(*name_or_key)
        if isinstance(name_or_key, str) and name not in self.names:
            try:
                name = term_name(*parse_term(name_or_key))
            except ValueError:
                pass
        if name not in self.names:
            raise ValueError(f"term {name_or_key!r} is not in the library ({', '.join(self.names)})")
        return self.names.index(name)

    def evaluate(self, u: torch.Tensor, length: float) -> torch.Tensor:
        """All terms at grid values ``u`` of shape ``(..., n)``: a tensor ``(..., n, len(self))``.

        Raises:
            ValueError: ``u`` holds NaN/inf, or a function term fails, returns another shape or non-finite
                values (the message names the term).
        """
        u = torch.as_tensor(u, dtype=torch.float64)
        if not bool(torch.isfinite(u).all()):
            raise ValueError("the library cannot be evaluated at a state with NaN or inf")
        cache: dict[int, torch.Tensor] = {}

        def d(q: int) -> torch.Tensor:
            if q not in cache:
                cache[q] = spectral_derivative(u, int(q), length)
            return cache[q]

        columns = []
        for term in self.terms:
            if term.key is not None:
                p, q = term.key
                if q == 0 or (q == 1 and p >= 1):  # powers, and u^p u_x in conservation form
                    value = evaluate_term(u, p, q, length)
                else:
                    value = d(q) if p == 0 else u**p * d(q)
            else:
                try:
                    value = torch.as_tensor(term.fn(u, d), dtype=torch.float64)
                except Exception as exc:
                    raise ValueError(f"library term {term.name!r} is not computable: {exc}") from exc
                if value.shape != u.shape:
                    raise ValueError(
                        f"library term {term.name!r} is not computable: it returned shape "
                        f"{tuple(value.shape)} "
                        f"for a state of shape {tuple(u.shape)}"
                    )
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"library term {term.name!r} is not computable here: it gave NaN or inf")
            columns.append(value)
        return torch.stack(columns, dim=-1)

    def __repr__(self) -> str:
        return f"Library({self.names})"


def as_library(library: Library | Sequence | None) -> Library:
    """``None`` -> the default library; a sequence of terms -> a :class:`Library`."""
    if library is None:
        return Library.polynomial()
    if isinstance(library, Library):
        return library
    return Library(library)
