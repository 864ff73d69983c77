"""User reports on the example scripts (examples/): crashes on odd arguments, arguments refused with one
line (exit 2) before any work, --help texts, the heat example's checkpoint totals, the figures' labels, and
build_and_run.sh's BUILD_DIR taken from the caller's directory.

Scripts run as subprocesses with tiny settings in a temporary directory (nothing is left in the repo)."""

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(tmp_path, script, *args, timeout=120):
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def refused(out, *words):
    """Exit 2 with a one-line argparse-style error (after the usage) naming ``words``, no traceback."""
    assert out.returncode == 2, (out.returncode, out.stdout[-1000:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert "error:" in last and all(w in last for w in words), last
    return last


def load(script):
    path = EXAMPLES / script
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------- D1, D13: --help
def test_medida_help_does_not_crash_on_the_percent_sign(tmp_path):
    out = run(tmp_path, "medida_ks.py", "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1 % observation noise" in out.stdout


@pytest.mark.parametrize(
    "script,option,default",
    [
        ("node_spiral.py", "--epochs", "20"),
        ("node_digits.py", "--epochs", "10"),
        ("node_latent.py", "--epochs", "10"),
        ("neural_sde_spiral.py", "--iterations", "200"),
        ("sde_adaptive_gbm.py", "--paths", "200"),
        ("heat_relax.py", "--checkpoint-every", "100"),
        ("smoke_dcdm.py", "--frames", "60"),
        ("pde_on_a_disk.py", "--out", "runs/disk"),
        ("pinn_vs_pig_helmholtz.py", "--out", "runs/helmholtz"),
        ("pig_variants.py", "--seed", "1"),
    ],
)
def test_help_has_a_description_and_the_defaults(tmp_path, script, option, default):
    out = run(tmp_path, script, "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    text = " ".join(out.stdout.split())
    usage, _, rest = text.partition("options:")
    first_line = (EXAMPLES / script).read_text().split('"""')[1].split()[:4]
    assert " ".join(first_line) in usage  # the module docstring's first paragraph
    assert option in rest and f"(default: {default})" in rest


def test_pig_variants_help_lists_the_problems(tmp_path):
    out = run(tmp_path, "pig_variants.py", "--help")
    assert out.returncode == 0 and "burgers" in out.stdout and "legendre" in out.stdout


# ------------------------------------------------------------------------------------ D2: local_error --steps
def test_local_error_precision_refuses_zero_steps(tmp_path):
    refused(run(tmp_path, "local_error_precision.py", "--steps", "0"), "--steps", ">= 1")


# ----------------------------------------------------------------------------------------------- D3-D5: SDEs
def test_sde_gbm_with_fewer_paths_than_drawn(tmp_path):
    out = run(tmp_path, "sde_adaptive_gbm.py", "--paths", "3", "--out", tmp_path / "o")
    assert out.returncode == 0, out.stderr[-2000:]
    png = tmp_path / "o" / "sde_adaptive_gbm.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png.relative_to(tmp_path)}" in out.stdout or f"wrote {png}" in out.stdout


@pytest.mark.parametrize("paths", ["0", "-1"])
def test_sde_gbm_refuses_no_paths_and_leaves_no_folder(tmp_path, paths):
    refused(run(tmp_path, "sde_adaptive_gbm.py", "--paths", paths, "--out", tmp_path / "o"), "--paths")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args,words",
    [
        (["--paths", "0"], ["--paths", ">= 2"]),
        (["--paths", "1"], ["--paths", ">= 2"]),
        (["--iterations", "-1"], ["--iterations"]),
        (["--iterations", "0"], ["--iterations"]),
        (["--weight", "-1"], ["--weight"]),
        (["--weight", "nan"], ["--weight"]),
    ],
)
def test_neural_sde_refuses_bad_settings_before_any_work(tmp_path, args, words):
    refused(run(tmp_path, "neural_sde_spiral.py", *args, "--out", tmp_path / "o"), *words)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------ D15: the node examples
@pytest.mark.parametrize(
    "script,args,word",
    [
        ("node_spiral.py", ["--epochs", "0"], "--epochs"),
        ("node_digits.py", ["--epochs", "-1"], "--epochs"),
        ("node_latent.py", ["--epochs", "0"], "--epochs"),
        ("node_spiral.py", ["--weight", "-1"], "--weight"),
        ("node_digits.py", ["--weight", "nan"], "--weight"),
        ("node_latent.py", ["--weight", "-0.5"], "--weight"),
    ],
)
def test_node_examples_refuse_nonsense(tmp_path, script, args, word):
    refused(run(tmp_path, script, *args), word)


# ------------------------------------------------------------------------------------- D6, D14, D16, D24: PIG
TINY = '"train": {"adam_iterations": 2, "lbfgs_iterations": 1, "eval_every": 1}'


@pytest.mark.parametrize(
    "bad,word,valid",
    [
        ('{"train": {"lbfgs_iteration": 5}}', "'lbfgs_iteration'", "lbfgs_iterations"),
        ('{"pig": {"n_gaussian": 5}}', "'n_gaussian'", "n_gaussians"),
        ('{"model": "pinn", "pinn": {"hiden": [8]}}', "'hiden'", "hidden"),
    ],
)
def test_pig_variants_checks_every_variant_before_training(tmp_path, bad, word, valid):
    out = run(tmp_path, "pig_variants.py", "--problem", "legendre",
              "--variant", f"good:{{{TINY}}}", "--variant", f"bad:{bad}")  # fmt: skip
    line = refused(out, "--variant 'bad'", word, valid)
    assert "val " not in out.stdout, "the first variant was trained before the second was checked"
    assert "'good'" not in line


@pytest.mark.parametrize(
    "hard,words",
    [('["nope"]', ("'hard'", "'nope'", "'initial'", "'dirichlet'")), ('"initial"', ("'hard'", "list"))],
)
def test_pig_variants_checks_the_hard_conditions_before_training(tmp_path, hard, words):
    out = run(tmp_path, "pig_variants.py", "--problem", "flow-mixing",
              "--variant", f"good:{{{TINY}}}", "--variant", f'bad:{{"hard": {hard}}}')  # fmt: skip
    refused(out, *words)
    assert "val " not in out.stdout, "the first variant was trained before the second was checked"


def test_pig_variants_refuses_an_unknown_problem_and_a_missing_file(tmp_path):
    refused(run(tmp_path, "pig_variants.py", "--problem", "nosuch", "--variant", "a:{}"), "--problem")
    out = run(
        tmp_path,
        "pig_variants.py",
        "--problem",
        "burgers",
        "--validation",
        "missing.npz",
        "--variant",
        "a:{}",
    )
    refused(out, "--validation", "missing.npz")


def test_pig_variants_names_validation_finer_where_it_works(tmp_path):
    line = refused(run(tmp_path, "pig_variants.py", "--problem", "burgers", "--variant", "a:{}"), "burgers")
    assert "--validation finer" in line and "--validation FILE.npz" in line


def test_pig_variants_plot_has_a_legend_on_both_panels(monkeypatch):
    import sciml.checkpoint

    example = load("pig_variants.py")
    figures = []
    monkeypatch.setattr(sciml.checkpoint, "save_figure", lambda fig, path: figures.append(fig))
    history = [{"cpu_seconds": s, "rel_l2": 1.0 / (s + 1), "loss": 2.0 / (s + 1)} for s in range(3)]
    example.plot_curves("x.png", [("a", history), ("b", history)], "test")
    (fig,) = figures
    assert all(axis.get_legend() is not None for axis in fig.axes)


def test_pig_inverse_refuses_more_observations_than_points_before_solving(tmp_path):
    out = run(tmp_path, "pig_inverse_diffusion.py", "--observations", "10000000", timeout=60)
    refused(out, "--observations", "79380")


# ------------------------------------------------------------------------------------------- D14: the rest
def test_helmholtz_disk_refuses_no_iterations(tmp_path):
    for iterations in ("-1", "0"):
        refused(run(tmp_path, "helmholtz_disk_preconditioned.py", "--iterations", iterations), "--iterations")


@pytest.mark.parametrize(
    "script,out",
    [("pde_on_a_disk.py", "afile"), ("smoke_dcdm.py", "afile"), ("pinn_vs_pig_helmholtz.py", "/proc/x"),
     ("sde_adaptive_gbm.py", "afile"), ("neural_sde_spiral.py", "afile")],
)  # fmt: skip
def test_an_out_that_is_a_file_or_unwritable_is_refused(tmp_path, script, out):
    (tmp_path / "afile").write_text("x")
    refused(run(tmp_path, script, "--out", out), "--out")


def test_check_cpp_refuses_a_missing_program(tmp_path):
    refused(run(tmp_path, "cpp/check_cpp.py", "--exe", tmp_path / "missing", "--work", tmp_path), "--exe")
    assert not (tmp_path / "dcdm_2d.pt").exists()


# -------------------------------------------------------------------------------------- D10, D11, D14: heat
@pytest.mark.parametrize(
    "args,word",
    [(["--tuner", "foo"], "--tuner"), (["--N", "0"], "--N"), (["--steps", "0"], "--steps"),
     (["--checkpoint-every", "0"], "--checkpoint-every: must be >= 1")],
)  # fmt: skip
def test_heat_refuses_bad_arguments(tmp_path, args, word):
    refused(run(tmp_path, "heat_relax.py", *args), word)


def test_heat_resume_reports_the_totals_and_always_checkpoints_at_the_end(tmp_path):
    from sciml.problems.linear import HeatEquation2D

    example = load("heat_relax.py")
    heat = HeatEquation2D(N=10, steps=30)
    _, its, _, _ = example.simulate(heat, example.make_tuner("prior", heat, seed=0))
    ckpt = tmp_path / "heat.pt"
    # 20 steps with a checkpoint every 100: one is still written after the last step
    example.simulate(heat.replace(steps=20), example.make_tuner("prior", heat, seed=0), ckpt, every=100)
    assert ckpt.exists()
    _, its_resumed, seconds, omegas = example.simulate(heat, example.make_tuner("prior", heat, 0), ckpt)
    assert its_resumed == its and seconds > 0 and omegas.size == 10


def test_heat_refuses_a_checkpoint_of_another_grid_or_tuner(tmp_path):
    out = run(tmp_path, "heat_relax.py", "--N", "8", "--steps", "3", "--checkpoint", "sub/h.pt",
              "--checkpoint-every", "2")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "created the folder sub" in out.stdout and (tmp_path / "sub" / "h.pt").exists()
    refused(
        run(tmp_path, "heat_relax.py", "--N", "9", "--steps", "3", "--checkpoint", "sub/h.pt"),
        "--N 9",
        "--N 8",
    )
    from sciml.problems.linear import HeatEquation2D

    with pytest.raises(ValueError, match="--tuner bins differs from the checkpoint's --tuner prior"):
        load("heat_relax.py").load_state(tmp_path / "sub" / "h.pt", HeatEquation2D(N=8, steps=3), "bins")
    out = run(tmp_path, "heat_relax.py", "--N", "8", "--steps", "5", "--checkpoint", "sub/h.pt")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "the 3 before the resume" in out.stdout


# ---------------------------------------------------------------------------------------- D12: smoke_dcdm
def test_smoke_torchscript_setup_is_measured_and_the_model_listed(tmp_path):
    out = run(tmp_path, "smoke_dcdm.py", "--size", "16", "--frames", "1", "--torchscript", "--out", "o")
    assert out.returncode == 0, out.stderr[-2000:]
    setup = float(out.stdout.split("DCDM setup ")[1].split()[0])
    assert setup > 0 and "export + torch.jit.load" in out.stdout
    wrote = next(line for line in out.stdout.splitlines() if line.startswith("wrote "))
    assert "dcdm.pt" in wrote and "smoke_dcdm.json" in wrote and "smoke_dcdm.png" in wrote


# ------------------------------------------------------------------------- D18: build_and_run.sh's BUILD_DIR
def test_build_and_run_takes_a_relative_build_dir_from_the_callers_directory(tmp_path):
    """cmake and the interpreter are stubs that record their arguments: no build."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    stubs = {
        "cmake": f'echo "cmake $*" >> "{log}"\n',
        "c++": "exit 0\n",
        "python-stub": f'if [ "$1" = -c ]; then echo "ON /nowhere"; else echo "python $*" >> "{log}"; fi\n',
    }
    for name, body in stubs.items():
        path = bin_dir / name
        path.write_text("#!/usr/bin/env bash\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    caller = tmp_path / "caller"
    caller.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": str(bin_dir / "python-stub")}
    script = EXAMPLES / "cpp" / "build_and_run.sh"
    out = subprocess.run(
        ["bash", str(script), "rel/build"], cwd=caller, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    calls = log.read_text()
    build = caller / "rel" / "build"
    assert f"-B {build} " in calls and f"--build {build} " in calls
    assert f"--exe {build}/pressure_solve --work {build}" in calls
    # without an argument: build/cpp in the repository root, as before
    log.unlink()
    subprocess.run(["bash", str(script)], cwd=caller, env=env, check=True, capture_output=True)
    assert "-B build/cpp " in log.read_text()


# --------------------------------------------------------------------------------------- D7, D17: C++ program
@pytest.mark.slow
def test_pressure_solve_prints_usage_and_one_line_errors(tmp_path):
    import shutil

    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.skip("no cmake or c++: cannot build the C++ example")
    import torch

    root = Path(torch.__file__).parent
    abi = "ON" if torch.compiled_with_cxx11_abi() else "OFF"
    build = tmp_path / "build"
    configure = ["cmake", "-S", str(EXAMPLES / "cpp"), "-B", str(build), f"-DTORCH_ROOT={root}"]
    configure += [f"-DTORCH_CXX11_ABI={abi}", "-DCMAKE_BUILD_TYPE=Release"]
    subprocess.run(configure, check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j", "2"], check=True, capture_output=True, timeout=900)
    exe = str(build / "pressure_solve")
    help_ = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "usage: pressure_solve" in help_.stdout
    (tmp_path / "m.pt").write_text("not a model")
    bad = (
        ["m.pt", "--n", "abc"],
        ["m.pt", "--rtol", "x"],
        ["m.pt", "--n", "99999999999"],
        ["missing.pt"],
        ["m.pt"],
    )
    for args in bad:
        out = subprocess.run([exe, *args], cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode in (1, 2), (args, out.returncode, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)


def test_no_example_writes_outside_runs_by_default():
    """Default output folders are under runs/ (git-ignored), never a new folder in the caller's directory."""
    for script in ("smoke_dcdm.py", "neural_sde_spiral.py", "sde_adaptive_gbm.py", "cpp/check_cpp.py"):
        text = (EXAMPLES / script).read_text()
        assert 'default="runs/' in text, script
