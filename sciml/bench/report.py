"""What every benchmark shares: timing, mean ± std, ratio tables and the JSON file.

A benchmark module (``sciml/bench/<name>.py``) defines ``DESCRIPTION``, optionally
``add_arguments(parser)``, and ``run(args) -> dict``. ``args`` always has ``full`` (bool) and ``out``
(a directory for PNGs); the returned payload ``{"benchmark": name, "rows": [...], ...}`` is written as JSON
by the ``sciml bench`` command. Baselines run in the same process as our methods, and tables report ratios,
because these machines are shared and absolute times are noisy.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "time_call", "mean_std", "ratio", "format_table", "print_table", "check_unique", "refuse_ignored",
    "blank_single_std",
]  # fmt: skip


def time_call(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1, min_seconds: float = 0.0) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs (seconds).

    If ``min_seconds`` > 0, each timed run loops ``fn`` until it has taken at least that long and reports
    the time per call, which steadies very short calls.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        times.append(elapsed / n)
    return statistics.median(times)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value; NaN for none, and for values of which one
    is not finite, e.g. a diverged run's error: ``statistics.stdev`` raises on NaN)."""
    values = [float(v) for v in values]
    if not values or not all(math.isfinite(v) for v in values):
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``, NaN when the baseline is zero or missing."""
    try:
        return float(value) / float(baseline) if baseline else math.nan
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str | None = None) -> str:
    """Plain-text table of ``rows`` restricted to ``columns`` (missing entries shown as ``-``)."""
    cells = [[_fmt(row.get(c, math.nan)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    """Print :func:`format_table` followed by a blank line."""
    print(format_table(rows, columns, title), end="\n\n", flush=True)


def check_unique(items: Iterable[Any], flag: str) -> None:
    """Refuse a list option that names an entry twice: it would run (or average) the same thing twice.

    Raises:
        ValueError: naming ``flag`` and the repeated entries.
    """
    seen: list[Any] = []
    repeated: list[Any] = []
    for item in items:
        if item in seen and item not in repeated:
            repeated.append(item)
        seen.append(item)
    if repeated:
        raise ValueError(f"{flag} lists {', '.join(map(str, repeated))} more than once; give each entry once")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def refuse_ignored(args: argparse.Namespace, names: Iterable[str], why: str) -> None:
    """Refuse options the run would ignore: each of ``names`` (argument names) given on the command line
    (not None, not False; their defaults are None so that a given value is told from the default).

    Raises:
        ValueError: naming the options and ``why`` they would be ignored.
    """
    given = [_flag(n) for n in names if getattr(args, n, None) not in (None, False)]
    if given:
        verb = "is" if len(given) == 1 else "are"
        raise ValueError(
            f"{', '.join(given)} {verb} ignored {why}: drop {'it' if len(given) == 1 else 'them'}"
        )


def blank_single_std(rows: Sequence[Mapping[str, Any]], count: str, stds: Sequence[str]) -> list[dict]:
    """Copies of ``rows`` for a printed table: the ``stds`` columns of a row whose ``count`` is below 2 shown
    as ``-`` (a standard deviation of one value is undefined; the JSON keeps the rows as they are)."""
    return [
        {**row, **{k: math.nan for k in stds if k in row}} if row.get(count, 2) < 2 else dict(row)
        for row in rows
    ]
