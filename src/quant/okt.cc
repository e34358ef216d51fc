#include "quant/okt.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "quant/okt_parallel.h"

namespace bwla {

namespace {

constexpr long kParallelMin = kOktParallelMin;
// Relative change of J treated as float rounding (J is recomputed from Z).
constexpr double kRoundTol = 1e-9;

// One data set (weight rows or activation tokens) stored in "layout B":
// element (row i, k, b) of the row reshaped to n1×n2 sits at [k, i·n2 + b] of
// an n1 × (rows·n2) row-major matrix. Then R1ᵀ·(all rows) is one GEMM on the
// left, and the same buffer viewed as (n1·rows) × n2 takes R2 on the right.
struct Block {
  bool is_act = false;
  long rows = 0;
  double norm2 = 0;   // ‖X‖²
  double scale = 0;   // weight in J divided by ‖X‖² (of the whole data set)
  MatrixRM xb;        // data, [n1, rows·n2]
  MatrixRM y, z, t;   // R1ᵀ·X, rotated Z, targets T (all layout B)
  MatrixRM p;         // X·R2 (layout B), valid during an R1 M-step
  VectorD c;          // weights: c_i = mean|Z_i|
  VectorF tau;        // activations: clip level per token
  MatrixRM m;         // this chunk's (unscaled) M-step matrix
  double value = 0;   // contribution to J
};

// Rows [r0, r0 + rows) of x in layout B.
MatrixRM to_layout_b(const MatrixRM& x, long r0, long rows, long n1, long n2) {
  MatrixRM b(n1, rows * n2);
  for (long k = 0; k < n1; ++k)
    for (long i = 0; i < rows; ++i)
      std::memcpy(b.data() + k * rows * n2 + i * n2, x.data() + (r0 + i) * n1 * n2 + k * n2,
                  sizeof(float) * n2);
  return b;
}

// Holds the data split into row chunks; every pass runs one OpenMP loop over
// the chunks (dynamic schedule) with single-threaded Eigen GEMMs inside, so a
// thread descheduled on a busy machine only delays its own chunk, and the
// per-factor matrices are reduced serially afterwards.
class OktSolver {
 public:
  OktSolver(long n1, long n2, const OktOptions& opt) : n1_(n1), n2_(n2), opt_(opt) {}

  void add_data(const MatrixRM& x, bool is_act, double weight) {
    const double norm2 = (double)x.cast<double>().squaredNorm();
    const double scale = norm2 > 0 ? weight / norm2 : 0.0;
    const long chunk = std::max<long>(1, kChunkElems / std::max<long>(1, x.cols()));
    const size_t first = blocks_.size();
    for (long r0 = 0; r0 < x.rows(); r0 += chunk) {
      Block b;
      b.is_act = is_act;
      b.rows = std::min(chunk, x.rows() - r0);
      b.scale = scale;
      if (is_act) {
        b.tau.resize(b.rows);
        for (long t = 0; t < b.rows; ++t)
          b.tau[t] = opt_.act_clip * (float)std::sqrt(x.row(r0 + t).cast<double>().squaredNorm() /
                                                       (double)x.cols());
      }
      blocks_.push_back(std::move(b));
    }
    const long nb = (long)(blocks_.size() - first);
#pragma omp parallel for schedule(dynamic, 1) if (x.size() >= kParallelMin)
    for (long k = 0; k < nb; ++k) {
      Block& b = blocks_[first + k];
      b.xb = to_layout_b(x, k * chunk, b.rows, n1_, n2_);
    }
  }

  // Recomputes Z and J. Changed::R1: R2 must be the one m1() was last called
  // with (P = X·R2 is reused); Changed::R2: Y = R1ᵀ·X is kept.
  enum class Changed { Both, R1, R2 };
  double rotate_and_evaluate(const MatrixD& r1, const MatrixD& r2, Changed changed) {
    const MatrixRM r1t = r1.transpose().cast<float>(), r2f = r2.cast<float>();
    const long nb = (long)blocks_.size();
#pragma omp parallel for schedule(dynamic, 1) if (parallel())
    for (long k = 0; k < nb; ++k) {
      Block& b = blocks_[k];
      if (changed == Changed::R1) {
        // P = X·R2 from m1() is still valid; Z = R1ᵀ·P costs n1 instead of n2
        // multiply-adds per element.
        b.y.noalias() = r1t * b.xb;
        b.z.noalias() = r1t * b.p;
      } else {
        if (changed == Changed::Both) b.y.noalias() = r1t * b.xb;
        b.z.resize(n1_, b.rows * n2_);
        Eigen::Map<const MatrixRM> ym(b.y.data(), n1_ * b.rows, n2_);
        Eigen::Map<MatrixRM> zm(b.z.data(), n1_ * b.rows, n2_);
        zm.noalias() = ym * r2f;
      }
      b.value = b.is_act ? eval_act(b) : eval_weight(b);
    }
    // Summed in block order, not per thread: J is the same at any thread count.
    double j = 0;
    for (const auto& b : blocks_) j += b.value;
    return j;
  }

  // E-step: targets T from the current Z.
  void compute_targets() {
    const long nb = (long)blocks_.size();
#pragma omp parallel for schedule(dynamic, 1) if (parallel())
    for (long k = 0; k < nb; ++k) blocks_[k].is_act ? targets_act(blocks_[k]) : targets_weight(blocks_[k]);
  }

  // M1 = Σ scale·(X·R2)·Tᵀ over blocks (n1×n1).
  MatrixD m1(const MatrixD& r2) {
    const MatrixRM r2f = r2.cast<float>();
    const long nb = (long)blocks_.size();
#pragma omp parallel for schedule(dynamic, 1) if (parallel())
    for (long k = 0; k < nb; ++k) {
      Block& b = blocks_[k];
      b.p.resize(n1_, b.rows * n2_);
      Eigen::Map<const MatrixRM> xm(b.xb.data(), n1_ * b.rows, n2_);
      Eigen::Map<MatrixRM> pm(b.p.data(), n1_ * b.rows, n2_);
      pm.noalias() = xm * r2f;
      b.m.noalias() = b.p * b.t.transpose();
    }
    return reduce(n1_);
  }

  // M2 = Σ scale·Σ_i (R1ᵀ·Wr_i)ᵀ·T_i over blocks (n2×n2); needs Y current.
  MatrixD m2() {
    const long nb = (long)blocks_.size();
#pragma omp parallel for schedule(dynamic, 1) if (parallel())
    for (long k = 0; k < nb; ++k) {
      Block& b = blocks_[k];
      Eigen::Map<const MatrixRM> ym(b.y.data(), n1_ * b.rows, n2_);
      Eigen::Map<const MatrixRM> tm(b.t.data(), n1_ * b.rows, n2_);
      b.m.noalias() = ym.transpose() * tm;
    }
    return reduce(n2_);
  }

 private:
  static constexpr long kChunkElems = 1L << 17;

  bool parallel() const { return blocks_.size() > 1 && total_elems() >= kParallelMin; }
  long total_elems() const {
    long n = 0;
    for (const auto& b : blocks_) n += b.xb.size();
    return n;
  }

  MatrixD reduce(long n) const {
    MatrixD m = MatrixD::Zero(n, n);
    for (const auto& b : blocks_)
      if (b.scale != 0) m += b.scale * b.m.cast<double>();
    return m;
  }

  double eval_weight(Block& b) {
    const long rows = b.rows, n2 = n2_, n1 = n1_;
    const double m = (double)(n1 * n2);
    b.c.resize(rows);
    VectorD sa = VectorD::Zero(rows), s2 = VectorD::Zero(rows);
    for (long k = 0; k < n1; ++k)
      for (long i = 0; i < rows; ++i) {
        const float* zp = b.z.data() + k * rows * n2 + i * n2;
        float fa = 0, f2 = 0;
        for (long j = 0; j < n2; ++j) {
          fa += std::fabs(zp[j]);
          f2 += zp[j] * zp[j];
        }
        sa[i] += fa;
        s2[i] += f2;
      }
    double total = 0;
    for (long i = 0; i < rows; ++i) {
      const double c = sa[i] / m;
      b.c[i] = c;
      total += s2[i] - m * c * c;  // min_c ‖Z_i − c·sign(Z_i)‖²
    }
    return b.scale * total;
  }

  double eval_act(Block& b) {
    const long rows = b.rows, n2 = n2_, n1 = n1_;
    double total = 0;
    for (long k = 0; k < n1; ++k)
      for (long i = 0; i < rows; ++i) {
        const float tau = b.tau[i];
        const float* zp = b.z.data() + k * rows * n2 + i * n2;
        float s = 0;
        for (long j = 0; j < n2; ++j) {
          const float e = std::max(std::fabs(zp[j]) - tau, 0.0f);
          s += e * e;
        }
        total += s;
      }
    return b.scale * total;
  }

  // t = f(z, row) for every length-n2 segment of b.z (segment k of row i at
  // k·rows·n2 + i·n2), into b.t of the same layout.
  template <class F>
  void map_segments(Block& b, F f) {
    const long rows = b.rows, n2 = n2_, n1 = n1_;
    b.t.resize(n1, rows * n2);
    for (long k = 0; k < n1; ++k)
      for (long i = 0; i < rows; ++i) {
        const long off = k * rows * n2 + i * n2;
        Eigen::Map<const Eigen::ArrayXf> z(b.z.data() + off, n2);
        Eigen::Map<Eigen::ArrayXf> t(b.t.data() + off, n2);
        f(z, t, i);
      }
  }

  void targets_weight(Block& b) {
    const float kappa = opt_.kappa;
    const long n2 = n2_;
    map_segments(b, [&](const auto& z, auto& t, long i) {
      const float c = (float)b.c[i];
      if (!(c > 0)) {
        t.setZero();
      } else if (kappa <= 0) {
        t = (z >= 0).select(Eigen::ArrayXf::Constant(n2, c), -c);
      } else {
        // c·(2γ − 1) with γ = sigmoid(2zc/σ²), σ = κc.
        t = c * (z * (1.0f / (kappa * kappa * c))).tanh();
      }
    });
  }

  void targets_act(Block& b) {
    map_segments(b, [&](const auto& z, auto& t, long i) { t = z.max(-b.tau[i]).min(b.tau[i]); });
  }

  long n1_, n2_;
  const OktOptions& opt_;
  std::vector<Block> blocks_;
};

MatrixD polar(const MatrixD& m) {
  Eigen::BDCSVD<MatrixD> svd(m, Eigen::ComputeFullU | Eigen::ComputeFullV);
  return svd.matrixU() * svd.matrixV().transpose();
}

// Maximises tr(Rᵀ·M) (= minimises the fixed-target objective) over orthogonal R.
MatrixD procrustes_step(const MatrixD& m) { return polar(m); }

// Cayley steps on f(R) = −2·tr(Rᵀ·M) starting from r.
MatrixD cayley_step(const MatrixD& r0, const MatrixD& m, const OktOptions& opt) {
  const long n = r0.rows();
  const MatrixD eye = MatrixD::Identity(n, n);
  MatrixD r = r0;
  double f = -2.0 * (r.transpose() * m).trace();
  for (int s = 0; s < opt.cayley_steps; ++s) {
    const MatrixD sm = m * r.transpose();
    const MatrixD a = 2.0 * (sm.transpose() - sm);  // G·Rᵀ − R·Gᵀ with G = −2M
    const double an = a.norm();
    if (!(an > 1e-14)) break;
    double eta = 2.0 * (double)opt.cayley_lr / an;
    bool moved = false;
    for (int bt = 0; bt < 16; ++bt, eta *= 0.5) {
      const MatrixD rn = (eye + 0.5 * eta * a).partialPivLu().solve((eye - 0.5 * eta * a) * r);
      const double fn = -2.0 * (rn.transpose() * m).trace();
      if (fn < f) {
        r = rn;
        f = fn;
        moved = true;
        break;
      }
    }
    if (!moved) break;
  }
  return r;
}

}  // namespace

MatrixRM random_orthogonal_init(int n, uint64_t seed) {
  BWLA_CHECK(n >= 1, "random_orthogonal_init: n must be >= 1, got {}", n);
  Rng rng(seed ^ 0x6F6B74ull);
  if ((n & (n - 1)) == 0) {
    MatrixRM h = MatrixRM::Ones(1, 1);
    while (h.rows() < n) {
      const long s = h.rows();
      MatrixRM g(2 * s, 2 * s);
      g << h, h, h, -h;
      h = std::move(g);
    }
    h *= 1.0f / std::sqrt((float)n);
    // D·H: v·R = (v·D)·H, i.e. the usual randomized Hadamard H·D on inputs
    // (column signs would only flip output signs, which no objective sees).
    for (int j = 0; j < n; ++j)
      if (rng.next_u64() & 1) h.row(j) *= -1.0f;
    return h;
  }
  MatrixD g(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) g(i, j) = rng.normal();
  Eigen::HouseholderQR<MatrixD> qr(g);
  MatrixD q = qr.householderQ();
  const MatrixD rr = qr.matrixQR().triangularView<Eigen::Upper>();
  for (int j = 0; j < n; ++j)
    if (rr(j, j) < 0) q.col(j) *= -1.0;
  return q.cast<float>();
}

MatrixRM xnor_binarize_rows(const MatrixRM& w) {
  MatrixRM out(w.rows(), w.cols());
  const long n = w.cols();
#pragma omp parallel for schedule(static) if (w.size() >= kParallelMin)
  for (long i = 0; i < w.rows(); ++i) {
    const float* x = w.data() + i * n;
    double mu = 0;
    for (long j = 0; j < n; ++j) mu += x[j];
    mu /= (double)std::max<long>(n, 1);
    double a = 0;
    for (long j = 0; j < n; ++j) a += std::fabs(x[j] - mu);
    a /= (double)std::max<long>(n, 1);
    float* o = out.data() + i * n;
    const float muf = (float)mu, af = (float)a;
    for (long j = 0; j < n; ++j) o[j] = (x[j] - muf >= 0 ? af : -af) + muf;
  }
  return out;
}

double binarization_error(const MatrixRM& w) {
  const double n2 = w.cast<double>().squaredNorm();
  if (n2 == 0) return 0.0;
  return (w - xnor_binarize_rows(w)).cast<double>().squaredNorm() / n2;
}

// The checks of learn_okt's inputs; returns whether the activation term is on.
bool check_okt_inputs(const MatrixRM& w, const MatrixRM* act_sample, const OktOptions& opt) {
  BWLA_CHECK(w.rows() > 0 && w.cols() > 0, "learn_okt: empty weight {}x{}", w.rows(), w.cols());
  BWLA_CHECK(w.allFinite(), "learn_okt: weight {}x{} has non-finite values", w.rows(), w.cols());
  BWLA_CHECK(opt.iters >= 0, "learn_okt: iters must be >= 0, got {}", opt.iters);
  BWLA_CHECK(opt.kappa >= 0 && std::isfinite(opt.kappa), "learn_okt: bad kappa {}", opt.kappa);
  BWLA_CHECK(opt.act_weight >= 0, "learn_okt: act_weight must be >= 0, got {}", opt.act_weight);
  BWLA_CHECK(opt.cayley_lr > 0, "learn_okt: cayley_lr must be > 0, got {}", opt.cayley_lr);
  const bool use_act = opt.act_weight > 0 && act_sample != nullptr && act_sample->rows() > 0;
  if (use_act) {
    BWLA_CHECK(act_sample->cols() == w.cols(),
               "learn_okt: activation sample width {} != weight input width {}",
               act_sample->cols(), w.cols());
    BWLA_CHECK(act_sample->allFinite(), "learn_okt: activation sample has non-finite values");
    BWLA_CHECK(opt.act_clip > 0, "learn_okt: act_clip must be > 0, got {}", opt.act_clip);
  }
  if (opt.act_weight > 0 && !use_act)
    log_warn("learn_okt: act_weight > 0 but no activation sample; weight-only");

  return use_act;
}

// One guarded M-step on factor 0 (R1) or 1 (R2): the full step, then (with
// the monotone guard) two shorter blends towards it; a step that raises J is
// rejected and the old factor kept. j is the objective on entry and on exit.
enum class MStepResult { Moved, Stayed, Rejected, NonFiniteFactor, NonFiniteObjective };

MStepResult guarded_mstep(OktSolver& solver, MatrixD& r1, MatrixD& r2, int factor, double& j,
                          const OktOptions& opt) {
  solver.compute_targets();
  MatrixD& r = factor == 0 ? r1 : r2;
  const auto changed = factor == 0 ? OktSolver::Changed::R1 : OktSolver::Changed::R2;
  const MatrixD m = factor == 0 ? solver.m1(r2) : solver.m2();
  const MatrixD r_old = r;
  const MatrixD r_new =
      opt.mstep == OktOptions::MStep::Procrustes ? procrustes_step(m) : cayley_step(r, m, opt);
  if (!r_new.allFinite()) return MStepResult::NonFiniteFactor;
  const int tries = opt.monotone_guard ? 3 : 1;
  double t = 1.0;
  for (int k = 0; k < tries; ++k, t *= 0.5) {
    r = k == 0 ? r_new : polar((1.0 - t) * r_old + t * r_new);
    const double jn = solver.rotate_and_evaluate(r1, r2, changed);
    if (!std::isfinite(jn)) {
      r = r_old;
      j = solver.rotate_and_evaluate(r1, r2, changed);
      return MStepResult::NonFiniteObjective;
    }
    // Equal up to float rounding of the recomputed sums counts as no increase.
    if (!opt.monotone_guard || jn <= j + kRoundTol * std::fabs(j)) {
      const bool moved = jn < j - kRoundTol * std::fabs(j);
      j = jn;
      return moved ? MStepResult::Moved : MStepResult::Stayed;
    }
  }
  r = r_old;
  j = solver.rotate_and_evaluate(r1, r2, changed);
  return MStepResult::Rejected;
}

OktResult learn_okt(const MatrixRM& w, const MatrixRM* act_sample, const OktOptions& opt) {
  const bool use_act = check_okt_inputs(w, act_sample, opt);
  Timer timer;
  const long work = w.size() + (use_act ? act_sample->size() : 0);
  EigenThreadLimit eigen_threads(work < kParallelMin);
  OktResult res;
  const KronFactors f = okt_factors((int)w.cols(), opt.max_factor);
  res.n1 = f.n1;
  res.n2 = f.n2;
  if (!f.usable) {
    log_warn("learn_okt: {}", f.note);
    res.fell_back = true;
    res.note = f.note;
    return res;
  }
  if (!f.note.empty()) res.note = f.note;
  const long n1 = f.n1, n2 = f.n2;

  MatrixD r1 = MatrixD::Identity(n1, n1), r2 = MatrixD::Identity(n2, n2);
  if (opt.hadamard_init) {
    r1 = random_orthogonal_init((int)n1, opt.seed).cast<double>();
    r2 = random_orthogonal_init((int)n2, opt.seed + 0x9E37ull).cast<double>();
  }

  OktSolver solver(n1, n2, opt);
  solver.add_data(w, false, 1.0);
  if (use_act) solver.add_data(*act_sample, true, opt.act_weight);

  auto fail_back = [&](const std::string& why) {
    res.fell_back = true;
    res.note += (res.note.empty() ? "" : "; ") + why;
    log_warn("learn_okt: {}", why);
  };

  double j = solver.rotate_and_evaluate(r1, r2, OktSolver::Changed::Both);
  if (!std::isfinite(j)) {
    fail_back("non-finite objective at the initial rotation; using identity");
    r1.setIdentity();
    r2.setIdentity();
    j = solver.rotate_and_evaluate(r1, r2, OktSolver::Changed::Both);
  }
  res.objective.push_back(j);

  for (int it = 0; it < opt.iters && !res.fell_back; ++it) {
    const double j_start = j;
    int moves = 0;  // M-steps that lowered J beyond rounding
    for (int factor = 0; factor < 2 && !res.fell_back; ++factor) {
      switch (guarded_mstep(solver, r1, r2, factor, j, opt)) {
        case MStepResult::Moved: ++moves; break;
        case MStepResult::Stayed: break;
        case MStepResult::Rejected: ++res.rejected_steps; break;
        case MStepResult::NonFiniteFactor:
          fail_back(fmt::format("non-finite factor at iteration {}; kept last good rotation", it));
          break;
        case MStepResult::NonFiniteObjective:
          fail_back(fmt::format("non-finite objective at iteration {}; kept last good rotation",
                                it));
          break;
      }
    }
    if (res.fell_back) break;
    res.objective.push_back(j);
    if (moves == 0) break;  // fixed point: further iterations repeat this one
    if (opt.tol > 0 && j_start - j < (double)opt.tol * j_start) break;
  }
  if (res.fell_back && res.objective.size() < 2)
    log_debug("learn_okt: fell back before the first iteration");

  res.transform = make_kronecker(r1.cast<float>(), r2.cast<float>());
  res.seconds = timer.seconds();
  log_debug("learn_okt: {}x{} ({}x{}) J {:.5f} -> {:.5f} in {:.2f}s", w.rows(), w.cols(), n1, n2,
            res.objective.front(), res.objective.back(), res.seconds);
  return res;
}

}  // namespace bwla
