"""A new user's run through README's "your own PDE" section and the PDE examples: observations given as a
column, the reference file recorded by name, and plots that say what they show."""

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch

from sciml.pinn import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def test_observations_take_one_fields_values_as_a_column():
    points = np.linspace(0.1, 0.9, 9)[:, None]
    values = np.sin(np.pi * points)  # (9, 1), as a column sliced from a data table
    column = pde.Observations(points=points, values=values)
    flat = pde.Observations(points=points, values=values[:, 0])
    np.testing.assert_array_equal(column.values, flat.values)
    assert column.values.shape == (9,)
    message = r"shape \(9,\) \(or \(9, 1\)\).*one Observations condition per field"
    with pytest.raises(ValueError, match=message):
        pde.Observations(points=points, values=np.hstack([values, values]))


def test_metrics_name_the_reference_file_and_the_panels_say_the_reference_is_not_on_a_grid(
    tmp_path, monkeypatch
):
    import json

    import sciml.checkpoint

    problem = pde.get("poisson")
    points = problem.domain.sample(200, torch.Generator().manual_seed(0), dtype=torch.float64)
    file = tmp_path / "fem.npz"
    np.savez(file, points=points.numpy(), values=problem.exact(points).numpy())
    figures = []
    monkeypatch.setattr(sciml.checkpoint, "save_figure", lambda fig, path, dpi=None: figures.append(fig))
    out = tmp_path / "run"
    args = ["--problem", "poisson", "--model", "pinn", "--iterations", "2", "--no-progress"]
    args += ["--out", str(out)]
    parser = __import__("argparse").ArgumentParser()
    cli.add_arguments(parser)
    assert cli.main(parser.parse_args([*args, "--reference", str(file)])) == 0
    assert json.loads((out / "metrics.json").read_text())["reference"] == f"file {file}"
    fields_png, history_png = figures
    titles = [a.get_title() for a in fields_png.axes if a.get_title()]
    assert titles and all("(no reference on a grid)" in t for t in titles), titles
    legend = [t.get_text() for t in history_png.axes[0].get_legend().get_texts()]
    assert "loss (weighted sum)" in legend and "loss_residual (unweighted)" in legend


def test_residual_statistics_without_a_reference_are_told_apart_in_the_history_plot(monkeypatch):
    import sciml.checkpoint

    figures = []
    monkeypatch.setattr(sciml.checkpoint, "save_figure", lambda fig, path, dpi=None: figures.append(fig))
    history = [{"iteration": 10, "phase": "adam", "loss": 1.0, "loss_residual": 1.0, "rel_l2": None,
                "residual_rms": 0.5, "residual_max": 2.0}]  # fmt: skip
    cli.plot_history("unused.png", history, "no reference")
    rms, worst = figures[0].axes[1].get_lines()
    assert rms.get_color() != worst.get_color()


def test_the_history_plot_draws_keys_that_only_later_entries_log(monkeypatch):
    """A run resumed from a checkpoint written before per-field errors were logged has them only in its
    later entries: the plot still draws them."""
    import sciml.checkpoint

    figures = []
    monkeypatch.setattr(sciml.checkpoint, "save_figure", lambda fig, path, dpi=None: figures.append(fig))
    old = {"iteration": 10, "phase": "adam", "loss": 1.0, "loss_residual": 1.0, "rel_l2": 0.5}
    new = {**old, "iteration": 20, "rel_l2_u": 0.4, "rel_l2_v": 0.6, "loss_walls": 0.1}
    cli.plot_history("unused.png", [old, new], "resumed")
    errors = [t.get_text() for t in figures[0].axes[1].get_legend().get_texts()]
    losses = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert {"u", "v"} <= set(errors) and "loss_walls (unweighted)" in losses
