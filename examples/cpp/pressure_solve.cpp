// The pressure step of a 2D smoke solver, in C++, solved by sciml's exported DCDM TorchScript module.
//
// A simulation code's view: it owns a staggered (MAC) grid of n x n cells with a solid disc, an
// intermediate velocity on the cell faces, and assembles its pressure matrix itself in the layout fluid
// codes keep (Bridson, "Fluid Simulation for Computer Graphics", 5.3): Adiag and one coupling per axis.
// It loads the solver with libtorch alone (no Python) and calls
//
//     (x, iterations, residuals, status) = solver(b, diag, couplings, x0, rtol, atol, maxiter, null_labels)
//
// (the contract documented in sciml.dcdm.DCDM.export). Fields are float64 tensors of shape (n, n), index
// [i][j] = cell (x_i, y_j), C order.
//
//   pressure_solve MODEL.pt [--n 64] [--box] [--rtol 1e-8] [--out system.bin]      (--help: the usage)
//
// plume (default): closed bottom and sides (Neumann), open top (Dirichlet p = 0), like
// sciml.solvers.fluid.plume_grid. --box: every wall closed: the pure-Neumann system of a closed container,
// singular with the constant in its null space, passed as null_labels (all zeros: one region).
// --out writes n, the fields diag, couplings[0], couplings[1], b and the solution x (float64, C order) so
// that a test can check the system and the answer against Python.

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string model;
  int n = 64;
  bool box = false;
  double rtol = 1e-8;
  std::string out;
};

constexpr int kMaxN = 4096;  // n x n cells: larger grids would need gigabytes here

const char* const kUsage =
    "usage: pressure_solve MODEL.pt [--n N] [--box] [--rtol R] [--out FILE]\n"
    "  MODEL.pt   the exported DCDM TorchScript file (sciml dcdm export MODEL.pt)\n"
    "  --n N      cells per side, 8 to 4096 (default 64)\n"
    "  --box      every wall closed (pure Neumann) instead of the plume's open top\n"
    "  --rtol R   relative tolerance, > 0 (default 1e-8)\n"
    "  --out FILE write n, iterations, the fields diag, couplings, b and the solution x (float64)\n";

[[noreturn]] void fail(const std::string& message) {
  std::cerr << "pressure_solve: " << message << "\n";
  std::exit(2);
}

// the whole text as an int / a double, or a one-line error naming the flag (std::stoi / std::stod throw
// std::invalid_argument or std::out_of_range, and accept trailing garbage such as "12abc")
int parse_int(const std::string& flag, const std::string& text) {
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) fail(flag + " needs an integer, got '" + text + "'");
  if (value < 8 || value > kMaxN) fail(flag + " must lie in [8, " + std::to_string(kMaxN) + "], got " + text);
  return static_cast<int>(value);
}

double parse_double(const std::string& flag, const std::string& text) {
  std::size_t used = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) fail(flag + " needs a number, got '" + text + "'");
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int k = 1; k < argc; ++k) {
    const std::string a = argv[k];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
  }
  if (argc < 2 || std::string(argv[1]).rfind("--", 0) == 0) {
    std::cerr << kUsage;
    std::exit(2);
  }
  o.model = argv[1];
  for (int k = 2; k < argc; ++k) {
    std::string a = argv[k];
    auto value = [&](const char* flag) -> std::string {
      if (k + 1 >= argc) fail(std::string(flag) + " needs a value");
      return argv[++k];
    };
    if (a == "--n") {
      o.n = parse_int("--n", value("--n"));
    } else if (a == "--box") {
      o.box = true;
    } else if (a == "--rtol") {
      o.rtol = parse_double("--rtol", value("--rtol"));
      if (!(o.rtol > 0) || !std::isfinite(o.rtol)) fail("--rtol must be a finite number > 0");
    } else if (a == "--out") {
      o.out = value("--out");
    } else {
      fail("unknown argument " + a + " (--help for the usage)");
    }
  }
  return o;
}

}  // namespace

int run(const Options& opt) {
  torch::jit::script::Module solver;
  try {  // before any work: a missing or foreign file is one line, not libtorch's stack trace
    solver = torch::jit::load(opt.model);
  } catch (const c10::Error& e) {
    std::cerr << "pressure_solve: could not load " << opt.model << ": " << e.what_without_backtrace() << "\n";
    return 1;
  }
  const int n = opt.n;
  const double h = 1.0 / n;
  const double inv_h2 = 1.0 / (h * h);
  auto at = [n](int i, int j) { return static_cast<std::size_t>(i) * n + j; };
  auto centre = [h](int i) { return (i + 0.5) * h; };

  // geometry: a solid disc (the obstacle the smoke flows around)
  std::vector<char> solid(static_cast<std::size_t>(n) * n, 0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double dx = centre(i) - 0.5, dy = centre(j) - 0.55;
      solid[at(i, j)] = dx * dx + dy * dy < 0.12 * 0.12;
    }
  auto fluid = [&](int i, int j) { return i >= 0 && j >= 0 && i < n && j < n && !solid[at(i, j)]; };

  // pressure matrix (negative Laplacian, cell-centred): diag and couplings to (i+1, j) and (i, j+1).
  // A face to a fluid cell adds 1/h²; to a solid or a closed wall nothing; the open top wall (p = 0 half a
  // cell above the last centres) adds 2/h² to the diagonal.
  std::vector<double> diag(static_cast<std::size_t>(n) * n, 0.0), cx(diag.size(), 0.0), cy(diag.size(), 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (!fluid(i, j)) continue;
      double d = 0.0;
      const int di[4] = {-1, 1, 0, 0}, dj[4] = {0, 0, -1, 1};
      for (int f = 0; f < 4; ++f) {
        const int a = i + di[f], b = j + dj[f];
        if (fluid(a, b)) d += inv_h2;
        else if (!opt.box && b == n) d += 2.0 * inv_h2;  // open top
      }
      diag[at(i, j)] = d;
      if (fluid(i + 1, j)) cx[at(i, j)] = inv_h2;
      if (fluid(i, j + 1)) cy[at(i, j)] = inv_h2;
    }

  // intermediate velocity on the faces: a buoyant blob rising plus a swirl; zero on faces of solids and of
  // closed walls (u: (n+1) x n faces normal to x, v: n x (n+1) faces normal to y)
  std::vector<double> u(static_cast<std::size_t>(n + 1) * n, 0.0), v(static_cast<std::size_t>(n) * (n + 1), 0.0);
  const double pi = 3.14159265358979323846;
  for (int i = 0; i <= n; ++i)
    for (int j = 0; j < n; ++j) {
      const double x = i * h, y = centre(j);
      const bool open = fluid(i - 1, j) && fluid(i, j);
      u[static_cast<std::size_t>(i) * n + j] = open ? 0.3 * std::sin(pi * y) * std::cos(2 * pi * x) : 0.0;
    }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= n; ++j) {
      const double x = centre(i), y = j * h;
      const double blob = std::exp(-((x - 0.45) * (x - 0.45) + (y - 0.25) * (y - 0.25)) / 0.01);
      bool open = fluid(i, j - 1) && fluid(i, j);
      if (!opt.box && j == n) open = fluid(i, j - 1);  // the open top lets flow out
      v[static_cast<std::size_t>(i) * (n + 1) + j] = open ? blob + 0.1 * std::sin(3 * pi * x) : 0.0;
    }
  // right-hand side b = -div(u) / dt with dt = 1
  std::vector<double> rhs(diag.size(), 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (!fluid(i, j)) continue;
      const double div = (u[static_cast<std::size_t>(i + 1) * n + j] - u[static_cast<std::size_t>(i) * n + j] +
                          v[static_cast<std::size_t>(i) * (n + 1) + j + 1] - v[static_cast<std::size_t>(i) * (n + 1) + j]) /
                         h;
      rhs[at(i, j)] = -div;
    }

  auto field = [n](std::vector<double>& data) {
    return torch::from_blob(data.data(), {n, n}, torch::kFloat64).clone();
  };
  torch::Tensor tb = field(rhs), tdiag = field(diag);
  std::vector<torch::Tensor> couplings = {field(cx), field(cy)};

  at::set_num_threads(1);  // one thread: what sciml measured to be fastest for this solver
  torch::NoGradGuard no_grad;

  std::vector<torch::jit::IValue> inputs;
  inputs.emplace_back(tb);
  inputs.emplace_back(tdiag);
  inputs.emplace_back(c10::List<torch::Tensor>(couplings));
  inputs.emplace_back(c10::IValue());  // x0: None
  inputs.emplace_back(opt.rtol);
  inputs.emplace_back(0.0);  // atol
  inputs.emplace_back(static_cast<int64_t>(1000));
  if (opt.box) {  // one closed region: its constant is the null space
    inputs.emplace_back(torch::where(tdiag > 0, torch::zeros({n, n}, torch::kInt64),
                                     torch::full({n, n}, -1, torch::kInt64)));
  } else {
    inputs.emplace_back(c10::IValue());
  }
  auto output = solver.forward(inputs).toTuple();
  torch::Tensor x = output->elements()[0].toTensor().contiguous();
  const int64_t iterations = output->elements()[1].toInt();
  torch::Tensor history = output->elements()[2].toTensor();
  const int64_t status = output->elements()[3].toInt();
  auto names = solver.attr("status_names").toList();
  const std::string status_name = names.get(status).toStringRef();

  // the residual, computed here from the matrix this program assembled (not by the solver)
  const double* px = x.data_ptr<double>();
  double rr = 0.0, bb = 0.0, mean = 0.0;
  std::size_t count = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (!fluid(i, j)) continue;
      double ax = diag[at(i, j)] * px[at(i, j)];
      if (i + 1 < n) ax -= cx[at(i, j)] * px[at(i + 1, j)];
      if (i > 0) ax -= cx[at(i - 1, j)] * px[at(i - 1, j)];
      if (j + 1 < n) ax -= cy[at(i, j)] * px[at(i, j + 1)];
      if (j > 0) ax -= cy[at(i, j - 1)] * px[at(i, j - 1)];
      const double r = rhs[at(i, j)] - ax;
      rr += r * r;
      bb += rhs[at(i, j)] * rhs[at(i, j)];
      mean += px[at(i, j)];
      ++count;
    }
  std::cout << (opt.box ? "closed box (pure Neumann)" : "plume (open top)") << " " << n << "x" << n
            << ": status " << status_name << ", iterations " << iterations
            << ", relative residual " << std::sqrt(rr / bb) << " (solver's own: "
            << history[history.size(0) - 1].item<double>() / std::sqrt(bb) << ")"
            << ", mean pressure " << mean / count << "\n";

  if (!opt.out.empty()) {
    std::ofstream file(opt.out, std::ios::binary);
    const int64_t header[2] = {n, iterations};
    file.write(reinterpret_cast<const char*>(header), sizeof(header));
    for (const std::vector<double>* f : {&diag, &cx, &cy, &rhs})
      file.write(reinterpret_cast<const char*>(f->data()), static_cast<std::streamsize>(f->size() * sizeof(double)));
    file.write(reinterpret_cast<const char*>(px), static_cast<std::streamsize>(diag.size() * sizeof(double)));
    if (!file) {
      std::cerr << "could not write " << opt.out << "\n";
      return 1;
    }
  }
  return status_name == "converged" ? 0 : 3;
}

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  try {
    return run(opt);
  } catch (const c10::Error& e) {  // e.g. a TorchScript file that is not an exported DCDM solver
    std::cerr << "pressure_solve: " << opt.model << ": " << e.what_without_backtrace() << "\n";
    return 1;
  }
}
