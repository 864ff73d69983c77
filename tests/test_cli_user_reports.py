"""User reports on the ``sciml`` command line: what a run reports, which options it refuses (before any work),
and what it prints on errors and Ctrl-C.

The heavy parts of the commands are replaced by functions that fail the test if they are reached, so an
option that should be refused up front cannot start a long run here.
"""

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from sciml.cli import main


def _never(*args, **kwargs):
    raise AssertionError("the command started its work instead of refusing the options")


def _refused(argv, capsys, *flags) -> str:
    """Run ``sciml argv``: it must exit 2 with a one-line error naming every one of ``flags``."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for flag in flags:
        assert flag in err, (flag, err)
    return err


# ------------------------------------------------------------------------------------------ bench pde
def _progress(tmp_path, rows):
    from sciml.bench.pde import _fingerprint

    out = tmp_path / "pde"
    out.mkdir()
    full = []
    for problem, seed, rel in rows:
        full.append({"problem": problem, "model": "pinn", "seed": seed, "rel_l2": rel, "iterations": 25,
                     "seconds": 1.0, "cpu_seconds": 1.0, "params": 10, "message": "stored", "device": "cpu",
                     "fingerprint": _fingerprint(problem, "pinn", "quick")})  # fmt: skip
    (out / "pde-progress.json").write_text(
        json.dumps({"budget": "quick", "device": "cpu", "time_windows": None, "rows": full})
    )
    return out


def test_bench_pde_resume_reports_exactly_the_problems_and_seeds_asked_for(tmp_path, capsys):
    """Seeds 0 and 1 (and another problem) stored, then ``--seeds 0 --resume``: the summary and the JSON
    rows are those of seed 0 alone (they used to average both seeds and list the other problem's rows);
    the store keeps every row. One seed's std prints as ``-``; no PIG line when the PIG did not run."""
    out = _progress(tmp_path, [("legendre", 0, 0.1), ("legendre", 1, 0.3), ("poisson", 0, 0.5)])
    argv = ["bench", "pde", "--quick", "--problems", "legendre", "--models", "pinn", "--seeds", "0"]
    assert main([*argv, "--resume", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "seed 0: rel L2" not in text  # nothing trained
    payload = json.loads((out / "pde.json").read_text())
    assert [(r["problem"], r["seed"]) for r in payload["rows"]] == [("legendre", 0)]
    (summary,) = payload["summary"]
    assert summary["seeds"] == 1 and summary["rel_l2_mean"] == pytest.approx(0.1)
    stored = json.loads((out / "pde-progress.json").read_text())["rows"]
    assert len(stored) == 3
    line = next(row for row in text.splitlines() if row.strip().startswith("legendre   pinn"))
    assert line.split()[3:5] == ["0.1", "-"], line  # rel_l2_mean, rel_l2_std
    assert "PIG's error" not in text


def test_bench_pde_refuses_repeated_seeds_problems_and_models(tmp_path, capsys, monkeypatch):
    import sciml.bench.pde as bench_pde

    monkeypatch.setattr(bench_pde, "_step_seconds", _never)
    base = ["bench", "pde", "--quick", "--out", str(tmp_path)]
    _refused([*base, "--problems", "legendre", "--models", "pinn", "--seeds", "0,0"], capsys, "--seeds")
    _refused([*base, "--problems", "legendre,legendre", "--models", "pinn"], capsys, "--problems")
    _refused([*base, "--problems", "legendre", "--models", "pinn,pinn"], capsys, "--models")


def test_bench_pde_interrupt_says_how_to_resume(tmp_path, capsys, monkeypatch):
    import sciml.bench.pde as bench_pde

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    out = _progress(tmp_path, [("legendre", 0, 0.1)])
    monkeypatch.setattr(bench_pde, "_step_seconds", interrupt)
    argv = ["bench", "pde", "--quick", "--problems", "legendre", "--models", "pinn", "--out", str(out)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "pde-progress.json" in err and "--resume" in err


# ------------------------------------------------------------------------------------------ zero counts
@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--settings", "shift-high", "--instances", "0"], "--instances"),
        (["--settings", "shift-high", "--grid-step", "0"], "--grid-step"),
        (["--settings", "shift-high", "--paper-seeds", "0"], "--paper-seeds"),
        (["--settings", "varcoef", "--varcoef-N", "8", "--other-instances", "0"], "--other-instances"),
        (["--settings", "heat", "--heat-N", "8", "--heat-steps", "0"], "--heat-steps"),
        (["--settings", "heat", "--heat-N", "0"], "--heat-N"),
    ],
)
def test_bench_relax_refuses_a_zero_count_instead_of_running_the_default(
    tmp_path, capsys, monkeypatch, extra, flag
):
    import sciml.bench.relax as relax

    monkeypatch.setattr(relax, "_setting", _never)
    _refused(["bench", "relax", "--out", str(tmp_path), *extra], capsys, flag)


@pytest.mark.parametrize("batch", ["0", "-5"])
def test_bench_stiff_refuses_a_batch_below_one(tmp_path, capsys, monkeypatch, batch):
    import sciml.bench.stiff as stiff

    for name in ("_work_precision", "_batched", "_mol"):
        monkeypatch.setattr(stiff, name, _never)
    _refused(["bench", "stiff", "--batch", batch, "--out", str(tmp_path)], capsys, "--batch")


@pytest.mark.parametrize("extra, flag", [(["--paths", "0"], "--paths"), (["--repeats", "0"], "--repeats")])
def test_bench_sde_run_refuses_zero_paths_and_repeats(tmp_path, monkeypatch, extra, flag):
    """Also when ``run`` is called without the command's number checks (it used to run 256 paths)."""
    import argparse

    import sciml.bench.sde as sde

    monkeypatch.setattr(sde, "_work_precision", _never)
    parser = argparse.ArgumentParser()
    sde.add_arguments(parser)
    args = parser.parse_args(["--part", "solvers", *extra])
    args.full, args.out = False, str(tmp_path)
    with pytest.raises(ValueError, match=flag):
        sde.run(args)


# ------------------------------------------------------------------------------------------ duplicates
@pytest.fixture
def no_training(monkeypatch):
    from sciml.bench import node

    monkeypatch.setattr(node, "run_trainings", _never)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["bench", "node", "--tasks", "digits,digits"], "--tasks"),
        (["bench", "node", "--tasks", "digits", "--variants", "vanilla,vanilla"], "--variants"),
        (["bench", "node", "--sweep", "--tasks", "mnist1d", "--weights", "1,1"], "--weights"),
        (["bench", "sde", "--part", "neural", "--tasks", "digits-sde,digits-sde"], "--tasks"),
        (["bench", "sde", "--part", "neural", "--variants", "error,error"], "--variants"),
        (["bench", "relax", "--settings", "shift-high,shift-high"], "--settings"),
        (["bench", "stiff", "--problems", "robertson,robertson"], "--problems"),
        (["bench", "poisson", "--kinds", "obstacles", "obstacles", "--methods", "cg"], "--kinds"),
        (["bench", "poisson", "--kinds", "obstacles", "--methods", "cg", "cg"], "--methods"),
        (["bench", "poisson", "--kinds", "obstacles", "--methods", "cg", "--sizes", "16", "16"], "--sizes"),
        (["bench", "medida", "--cases", "1", "1"], "--cases"),
    ],
)
def test_list_options_refuse_repeated_entries(no_training, tmp_path, capsys, monkeypatch, argv, flag):
    import sciml.bench.poisson as poisson
    import sciml.bench.relax as relax
    import sciml.bench.stiff as stiff
    import sciml.medida

    monkeypatch.setattr(relax, "_setting", _never)
    monkeypatch.setattr(stiff, "_work_precision", _never)
    monkeypatch.setattr(poisson, "make_system", _never)
    monkeypatch.setattr(sciml.medida, "ks_lyapunov_exponent", _never)
    _refused([*argv, "--out", str(tmp_path)], capsys, flag, "more than once")


# ------------------------------------------------------------------------------------------ ignored options
@pytest.fixture
def no_medida(monkeypatch):
    import sciml.medida
    import sciml.medida.cli
    import sciml.medida.qg

    monkeypatch.setattr(sciml.medida, "ks_lyapunov_exponent", _never)
    monkeypatch.setattr(sciml.medida.qg, "qg_truth", _never)
    monkeypatch.setattr(sciml.medida.cli, "run_case", _never)


@pytest.mark.parametrize(
    "argv, flags",
    [
        (["bench", "medida", "--system", "qg", "--cases", "1"], ["--cases", "qg"]),
        (["bench", "medida", "--cases", "1", "--skip-noisy", "--skip-sparse", "--noise", "0.5", "--members",
          "7"], ["--noise", "--members", "--skip-noisy"]),
        (["bench", "medida", "--cases", "1", "--skip-sparse", "--sparse-pairs", "2"], ["--sparse-pairs"]),
        (["bench", "medida", "--cases", "1", "--qg-pairs", "2"], ["--qg-pairs"]),
        (["medida", "--case", "qg-beta", "--features", "library"], ["--features", "QG"]),
        (["medida", "--case", "qg-beta", "--members", "50"], ["--members", "--noise"]),
        (["medida", "--case", "1", "--members", "50"], ["--members", "--noise"]),
        (["medida", "--case", "1", "--localization", "5"], ["--localization", "--noise"]),
    ],
)  # fmt: skip
def test_medida_refuses_options_the_run_would_ignore(no_medida, tmp_path, capsys, argv, flags):
    _refused([*argv, "--out", str(tmp_path)], capsys, *flags)


def test_bench_stiff_mol_refuses_the_options_it_ignores(tmp_path, capsys, monkeypatch):
    import sciml.bench.stiff as stiff

    for name in ("_work_precision", "_batched", "_mol"):
        monkeypatch.setattr(stiff, name, _never)
    argv = ["bench", "stiff", "--mol", "--problems", "robertson", "--batch", "3", "--out", str(tmp_path)]
    _refused(argv, capsys, "--problems", "--batch", "--mol")


@pytest.mark.parametrize(
    "extra, flags",
    [
        (["--iterations", "10", "--adam", "3"], ["--iterations", "--adam"]),
        (["--iterations", "10", "--lbfgs", "3"], ["--iterations", "--lbfgs"]),
        (["--adam", "0", "--lbfgs", "0"], ["--adam", "--lbfgs", "no iterations"]),
    ],
)
def test_pde_refuses_contradictory_iteration_options(tmp_path, capsys, monkeypatch, extra, flags):
    from sciml.pinn.trainer import Trainer

    monkeypatch.setattr(Trainer, "fit", _never)
    argv = [
        "pde",
        "--problem",
        "legendre",
        "--model",
        "pinn",
        "--budget",
        "quick",
        "--out",
        str(tmp_path / "r"),
    ]
    _refused([*argv, *extra], capsys, *flags)


# ------------------------------------------------------------------------------------------ metric units
def test_bench_node_reports_accuracy_changes_in_points_for_every_accuracy_task(tmp_path, capsys, monkeypatch):
    """mnist1d is an accuracy like digits: its metric_delta is in points (it was relative), and the table
    and JSON say so."""
    from sciml.bench import node

    def fake(configs, jobs, root):
        metric = {"vanilla": 80.0, "error": 81.0}
        return [{"task": c.task, "method": c.reg, "seed": c.seed, "test_metric": metric[c.reg],
                 "train_seconds": 1.0, "predict_seconds": 0.1, "predict_nfe": 10.0, "backend": "backprop",
                 "epochs": c.epochs, "weight": c.weight} for c in configs]  # fmt: skip

    monkeypatch.setattr(node, "run_trainings", fake)
    argv = ["bench", "node", "--tasks", "mnist1d", "--variants", "error", "--seeds", "1", "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    error = next(
        r for r in json.loads((tmp_path / "node.json").read_text())["summary"] if r["method"] == "error"
    )
    assert error["metric_delta"] == pytest.approx(1.0) and error["metric_delta_unit"] == "points"
    assert "mnist1d: accuracy %, metric_delta in points" in text


# ------------------------------------------------------------------------------------------ output paths
@pytest.mark.parametrize("where", ["under-a-file", "a-directory"])
def test_bench_checks_the_json_path_before_running(tmp_path, capsys, monkeypatch, where):
    import sciml.bench.relax as relax

    monkeypatch.setattr(relax, "_setting", _never)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    path = tmp_path / ("afile/x.json" if where == "under-a-file" else "adir")
    argv = ["bench", "relax", "--settings", "shift-high", "--out", str(tmp_path / "o"), "--json", str(path)]
    _refused(argv, capsys, "--json", str(path))


@pytest.mark.parametrize("mode, name", [([], "node.json"), (["--sweep"], "node-sweep.json"),
                                        (["--e2e"], "node-e2e.json")])  # fmt: skip
def test_bench_node_modes_write_their_own_json(tmp_path, monkeypatch, mode, name):
    """A sweep and an end-to-end run into one --out keep both files (each used to overwrite node.json)."""
    import sciml.bench.node as node

    monkeypatch.setattr(node, "run", lambda args: {"rows": []})
    assert main(["bench", "node", *mode, "--tasks", "mnist1d", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.glob("*.json")] == [name]


def test_an_os_error_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    import sciml.bench.relax as relax

    def fail(args):
        raise IsADirectoryError(21, "Is a directory", str(tmp_path / "somewhere"))

    monkeypatch.setattr(relax, "run", fail)
    _refused(
        ["bench", "relax", "--out", str(tmp_path)], capsys, "Is a directory", str(tmp_path / "somewhere")
    )


# ------------------------------------------------------------------------------------------ startup
def test_version_does_not_import_the_subcommands():
    code = (
        "import sys; from sciml.cli import main; rc = main(['--version']); print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["0", "False"], out.stdout


def test_ctrl_c_while_the_parser_is_built_is_one_line(capsys, monkeypatch):
    import sciml.cli

    def interrupt():
        raise KeyboardInterrupt

    monkeypatch.setattr(sciml.cli, "build_parser", interrupt)
    try:
        code = main(["bench", "ode", "--help"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while the parser was built escaped as a KeyboardInterrupt traceback")
    assert code == 130
    assert capsys.readouterr().err.strip() == "sciml: interrupted"


# ------------------------------------------------------------------------------------------ late validation
def test_bench_sde_checks_part_two_before_part_one(tmp_path, capsys, monkeypatch):
    import sciml.bench.sde as sde

    monkeypatch.setattr(sde, "_work_precision", _never)
    argv = ["bench", "sde", "--paths", "8", "--repeats", "1", "--tasks", "nosuch", "--out", str(tmp_path)]
    _refused(argv, capsys, "--tasks", "nosuch")
    _refused(["bench", "sde", "--part", "solvers", "--tasks", "digits-sde", "--out", str(tmp_path)], capsys,
             "--tasks", "--part solvers")  # fmt: skip


def test_medida_checks_the_inflation_before_the_spin_up(no_medida, tmp_path, capsys):
    argv = ["medida", "--case", "1", "--inflation", "0.5", "--noise", "0.01", "--out", str(tmp_path)]
    _refused(argv, capsys, "--inflation", ">= 1")


# ------------------------------------------------------------------------------------------ messages
def test_bench_medida_qg_pairs_zero_names_the_flag(no_medida, tmp_path, capsys):
    _refused(
        ["bench", "medida", "--system", "qg", "--qg-pairs", "0", "--out", str(tmp_path)], capsys, "--qg-pairs"
    )


def test_bench_medida_qg_header_names_only_the_kinds_that_ran(tmp_path, capsys, monkeypatch):
    import sciml.medida.qg as qg

    monkeypatch.setattr(qg, "qg_truth", lambda n: SimpleNamespace(L=1.0))
    monkeypatch.setattr(qg, "qg_observations", lambda pairs, n: (np.zeros((pairs, 2, 4, 4)),) * 2)
    case = SimpleNamespace(model=lambda truth: None, true_correction=lambda truth: {})
    monkeypatch.setattr(qg, "QG_CASES", {"qg-fake": case})
    monkeypatch.setattr(qg, "discover_qg", lambda *a, **k: (SimpleNamespace(terms={}), [{"converged": True}]))
    monkeypatch.setattr(qg, "qg_enkf_pairs", _never)
    monkeypatch.setattr(qg, "sparse_qg_pairs", _never)
    argv = ["bench", "medida", "--system", "qg", "--skip-noisy", "--skip-sparse", "--out", str(tmp_path)]
    assert main(argv) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("two-layer QG"))
    assert "8 full noise-free pairs" in header and "sparse" not in header and "EnKF" not in header


def test_pde_resume_with_other_options_gives_command_line_advice(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["pde", "--problem", "legendre", "--model", "pinn", "--budget", "quick", "--no-progress"]
    argv += ["--out", str(out)]
    assert main([*argv, "--iterations", "2"]) == 0
    capsys.readouterr()
    err = _refused([*argv, "--iterations", "3", "--resume"], capsys, "--resume", "--out")
    assert "fit()" not in err and "resume=True" not in err and "TrainConfig" not in err


def test_pde_interrupt_says_where_the_checkpoint_is(tmp_path, capsys, monkeypatch):
    from sciml.pinn.trainer import Trainer

    out = tmp_path / "run"

    def interrupt(self, **kwargs):
        (out / "checkpoint.pt").write_bytes(b"")  # the checkpoint of the last finished period
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupt)
    argv = ["pde", "--problem", "legendre", "--model", "pinn", "--budget", "quick", "--out", str(out)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert str(out / "checkpoint.pt") in err and f"--resume --out {out}" in err


def test_train_interrupt_says_where_the_checkpoint_is(tmp_path, capsys, monkeypatch):
    import sciml.neural_de.cli

    out = tmp_path / "run"

    def interrupt(config):
        out.mkdir()
        (out / "checkpoint.pt").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(sciml.neural_de.cli, "train", interrupt)
    assert main(["train", "node", "--task", "spiral", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert str(out / "checkpoint.pt") in err and f"--resume --out {out}" in err


# ------------------------------------------------------------------------------------------ output
def test_bench_ode_says_when_torchode_is_skipped_and_what_seconds_are(tmp_path, capsys, monkeypatch):
    import sciml.bench.ode as ode

    monkeypatch.setitem(sys.modules, "torchode", None)  # not installed
    monkeypatch.setattr(ode, "_work_precision", lambda tolerances, repeats: [])
    monkeypatch.setattr(ode, "_overhead", lambda *a, **k: [])
    monkeypatch.setattr(ode, "_plot_work_precision", lambda rows, path: None)
    monkeypatch.setattr(ode, "_summary", lambda wp, overhead: [])
    assert main(["bench", "ode", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "torchode is not installed" in text and "seconds: CPU time" in text
    assert "skipped" in json.loads((tmp_path / "ode.json").read_text())["torchode"]


def test_node_png_has_no_unlabelled_reference_line(tmp_path, monkeypatch):
    from sciml.bench import node

    figures = []
    monkeypatch.setattr(node, "save_figure", lambda fig, path, dpi=110: figures.append(fig))
    summary = [{"task": "digits", "method": m, "nfe_vs_vanilla": v, "test_metric": 90.0, "test_std": 1.0}
               for m, v in (("vanilla", 1.0), ("error", 0.6))]  # fmt: skip
    node._plot(summary, tmp_path / "node.png")
    for ax in figures[0].axes:
        for line in ax.get_lines():
            label = line.get_label()
            assert not label.startswith("_") and "target" not in label.lower(), label


def test_stiff_png_labels_only_a_few_log_ticks(tmp_path, monkeypatch):
    """One decade of work or time: matplotlib labelled every minor tick, and the labels overlapped."""
    from sciml.bench import stiff

    figures = []
    monkeypatch.setattr(stiff, "save_figure", lambda fig, path, dpi=110: figures.append(fig))
    rows = [dict(case="c", method=m, tol=t, work=w * 1.6**k, error=3 * t, seconds=s * 1.5**k)
            for m, w, s in (("rodas5p", 300, 0.004), ("scipy-Radau", 900, 0.05))
            for k, t in enumerate([1e-4, 1e-5, 1e-6, 1e-7, 1e-8])]  # fmt: skip
    stiff._plot(rows, "c", tmp_path)
    fig = figures[0]
    fig.canvas.draw()
    for ax in fig.axes:
        assert all(not t.get_text() for t in ax.xaxis.get_minorticklabels())
        shown = [t for t in ax.xaxis.get_majorticklabels() if t.get_text()]
        assert 2 <= len(shown) <= 6
        boxes = [t.get_window_extent() for t in shown]
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "tick labels overlap"


# ------------------------------------------------------------------------------------------ help texts
def _option_help(argv_path: list[str]) -> dict[str, str]:
    """``{flag: help}`` of the sub-command reached by ``argv_path`` (e.g. ``["bench", "pde"]``)."""
    import argparse

    from sciml.cli import build_parser

    parser = build_parser()
    for name in argv_path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return {
        flag: (a.help or "") % {"default": a.default} for a in parser._actions for flag in a.option_strings
    }


@pytest.mark.parametrize(
    "command, flags",
    [
        (["pde"], ["--seed"]),
        (["medida"], ["--seed", "--members", "--localization", "--burn-in", "--out", "--noise", "--windows",
                      "--steps"]),
        (["bench", "pde"], ["--models"]),
        (["bench", "sde"], ["--part", "--tasks", "--variants"]),
        (["bench", "relax"], ["--settings", "--seed"]),
        (["bench", "medida"], ["--qg-pairs", "--noise", "--sparse-pairs", "--qg-n"]),
        (["bench", "poisson"], ["--kinds", "--methods"]),
    ],
)  # fmt: skip
def test_options_say_their_defaults(command, flags):
    helps = _option_help(command)
    for flag in flags:
        assert "default" in helps[flag], f"sciml {' '.join(command)} {flag}: {helps[flag]!r}"


# ------------------------------------------------------------------------------------------ pipes
_LONG_OUTPUT = """
import sys
import sciml.cli as cli

class Flood:  # a sub-command whose output is longer than any pipe buffer
    HELP = "prints many lines"
    def add_arguments(parser):
        pass
    def main(args):
        for i in range(200_000):
            print(f"line {i}")
        return 0

cli.COMMANDS = {"flood": "flood"}
sys.modules["flood"] = Flood
sys.exit(cli.main(["flood"]))
"""


def test_output_into_a_closed_pipe_ends_quietly():
    """`sciml ... | head -1`: once the reader has gone, the command stops with SIGPIPE's status 141 and
    says nothing (no 'error: Broken pipe', no 'Exception ignored' from the interpreter's last flush)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _LONG_OUTPUT], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()  # the reader stops, as `head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""
