#include "runtime/packed_linear.h"

#include <fmt/format.h>

#include <omp.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cstring>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/act_quant.h"
#include "kernels/binary_gemm.h"
#include "kernels/lowrank.h"

namespace bwla {

PackedLinear::PackedLinear(PackedParts p) : p_(std::move(p)) {
  BWLA_ASSERT(p_.planes.empty() != !p_.rc, "packed linear with {} planes and {} ARB-RC matrix",
              p_.planes.size(), p_.rc ? "an" : "no");
  const int out = out_features(), in = in_features();
  for (auto& pl : p_.planes)
    BWLA_ASSERT(pl.rows == out && pl.cols == in, "plane shape {}x{} vs {}x{}", pl.rows, pl.cols,
                out, in);
  BWLA_ASSERT(!p_.transform || p_.transform->dim() == in, "transform dim {} vs in {}",
              p_.transform->dim(), in);
  lr_ = &lowrank_traits(p_.lr_dtype);
  const size_t eb = lr_->elem_bytes;
  const bool i8 = p_.lr_dtype == LowRankDtype::I8;
  BWLA_ASSERT(p_.lr_a.size() == (size_t)out * p_.rank * eb && p_.lr_b.size() == (size_t)p_.rank * in * eb &&
                  p_.lr_s8.size() == (i8 ? (size_t)p_.rank : 0),
              "low-rank bytes {} {} rank {} ({}, {} scales)", p_.lr_a.size(), p_.lr_b.size(),
              p_.rank, lr_->name, p_.lr_s8.size());
  BWLA_ASSERT(p_.bias.empty() || p_.bias.size() == (size_t)out, "bias {}", p_.bias.size());
  BWLA_ASSERT(p_.abits >= 2 && p_.abits <= 8, "abits {}", p_.abits);
  BWLA_ASSERT(p_.block_scales.empty() || p_.block_scales.size() == p_.planes.size(),
              "block scales {} for {} planes", p_.block_scales.size(), p_.planes.size());
  lr_at_.resize(p_.lr_a.size());
  for (int i = 0; i < out; ++i)
    for (int k = 0; k < p_.rank; ++k)
      std::memcpy(&lr_at_[((size_t)k * out + i) * eb], &p_.lr_a[((size_t)i * p_.rank + k) * eb], eb);
  // Only the transposed copy is read from here on.
  std::vector<uint8_t>().swap(p_.lr_a);
}

namespace {
// Calls fn(job, a, b) with this thread's share [a, b) of each job's units, the
// units of all jobs laid end to end and split evenly over nth threads.
template <class F>
void for_share(int njobs, const int* work, int tid, int nth, F&& fn) {
  long total = 0;
  for (int j = 0; j < njobs; ++j) total += work[j];
  const long lo = total * tid / nth, hi = total * (tid + 1) / nth;
  long base = 0;
  for (int j = 0; j < njobs; ++j) {
    const long a = std::max(lo, base), b = std::min(hi, base + work[j]);
    if (a < b) fn(j, (int)(a - base), (int)(b - base));
    base += work[j];
  }
}

// Software prefetch into L2 of the first `bytes` of sign-plane rows [r0, r1)
// and as many from the middle of that range (the decode GEMV streams both halves
// at once).
void prefetch_plane(const PackedBinary& pl, int r0, int r1, size_t bytes) {
  if (r1 <= r0 || bytes == 0) return;
  const size_t row_bytes = (size_t)pl.words_per_row * 8;
  const int mid = r0 + (r1 - r0) / 2;
  for (int part = 0; part < 2; ++part) {
    const int a = part ? mid : r0, b = part ? r1 : mid;
    const char* p = reinterpret_cast<const char*>(pl.row(a));
    const size_t n = std::min(bytes / 2, (size_t)(b - a) * row_bytes);
    for (size_t o = 0; o < n; o += 64) _mm_prefetch(p + o, _MM_HINT_T1);
  }
}
}  // namespace

// One forward_token_group call: a job per linear, and the steps that every
// thread of one parallel region runs in order, each over its share of the
// units of all jobs (barriers where a step reads what the previous wrote).
class TokenGroup {
 public:
  TokenGroup(const PackedLinear* const* lins, float* const* ys, int count, const float* x, int n);
  void run() const;

 private:
  struct Job {
    const PackedLinear* L;
    float* y;
    float *xr, *scratch, *u, *tmp;
    QuantActs* qa;
    const float* src;  // the quantizer's input: xr when transformed, else x
    BinaryKernel kern;
    int stages;
  };
  void prefetch_planes(int tid, int nth) const;
  void psp_project(int tid, int nth) const;
  void transform_stage(int s, int tid, int nth) const;
  void quantize(int tid, int nth) const;
  void outputs(int tid, int nth) const;
  // fn(job, a, b) over this thread's share of per-job units work(job).
  template <class W, class F>
  void share(int tid, int nth, W&& work, F&& fn) const {
    int w[PackedLinear::kMaxGroup];
    for (int j = 0; j < count_; ++j) w[j] = work(jobs_[j]);
    for_share(count_, w, tid, nth, [&](int j, int a, int b) { fn(jobs_[j], a, b); });
  }
  static int row_units(const Job& jb) { return (jb.L->out_features() + 15) / 16; }

  Job jobs_[PackedLinear::kMaxGroup];
  int count_, n_, in_, max_stages_ = 0;
  const float* x_;
};

TokenGroup::TokenGroup(const PackedLinear* const* lins, float* const* ys, int count,
                       const float* x, int n)
    : count_(count), n_(n), in_(lins[0]->in_features()), x_(x) {
  BWLA_ASSERT(count >= 1 && count <= PackedLinear::kMaxGroup, "token group of {} linears", count);
  BWLA_ASSERT(n >= 1 && n <= PackedLinear::kMaxTokens, "token group of {} tokens", n);
  // Scratch of the calling thread, reached inside the region only through the
  // jobs' pointers (a thread_local named there would be each thread's own).
  constexpr int G = PackedLinear::kMaxGroup;
  thread_local std::vector<float> xr_tl[G], scratch_tl[G], u_tl[G], tmp_tl[G];
  thread_local QuantActs qa_tl[G];
  for (int j = 0; j < count; ++j) {
    const PackedLinear& L = *lins[j];
    const PackedParts& p = L.parts();
    BWLA_ASSERT(L.in_features() == in_ && L.groupable(),
                "token group: linear {} has in {} vs {}, {} block-scale planes, ARB-RC {}", j,
                L.in_features(), in_, p.block_scales.size(), (bool)p.rc);
    Job& jb = jobs_[j];
    jb.L = &L;
    jb.y = ys[j];
    jb.stages = p.transform ? p.transform->shared_stages() : 0;
    if (p.transform) {
      xr_tl[j].assign(x, x + (size_t)n * in_);
      scratch_tl[j].resize((size_t)n * in_);
    }
    u_tl[j].resize((size_t)n * p.rank);
    if (p.planes.size() > 1) tmp_tl[j].resize((size_t)n * L.out_features());
    jb.xr = xr_tl[j].data();
    jb.scratch = scratch_tl[j].data();
    jb.u = u_tl[j].data();
    jb.tmp = tmp_tl[j].data();
    jb.qa = &qa_tl[j];
    jb.src = p.transform ? jb.xr : x;
    jb.kern = default_binary_kernel(p.abits, n);
    BWLA_CHECK(binary_kernel_available(jb.kern), "binary kernel {} needs ISA above active {}",
               binary_kernel_name(jb.kern), isa_name(active_isa()));
    max_stages_ = std::max(max_stages_, jb.stages);
  }
}

void TokenGroup::run() const {
#pragma omp parallel
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    prefetch_planes(tid, nth);
    psp_project(tid, nth);
    for (int s = 0; s < max_stages_; ++s) {
      transform_stage(s, tid, nth);
#pragma omp barrier
    }
    quantize(tid, nth);
#pragma omp barrier
    outputs(tid, nth);
  }
}

// The sign planes are read only after the PSP projection, the OKT stages and
// the quantization; start this thread's share (up to 1 MiB, Zen 4's L2)
// streaming into L2 now, so DRAM is busy during that compute. W1A6
// TinyLlama tg128 at 2 threads, EPYC, 4 interleaved series of 4–8 runs:
// +4.6 % on the pooled means (0 to +10 % per series); 1 thread and the
// SmolLM2 shape unchanged within noise; 4 MiB was slower.
void TokenGroup::prefetch_planes(int tid, int nth) const {
  constexpr size_t budget = size_t(1) << 20;
  long units = 0;
  for (int j = 0; j < count_; ++j) units += row_units(jobs_[j]);
  share(tid, nth, row_units, [&](const Job& jb, int a, int b) {
    const PackedBinary& pl = jb.L->parts().planes[0];
    const int r0 = std::min(pl.rows, a * 16), r1 = std::min(pl.rows, b * 16);
    prefetch_plane(pl, r0, r1, (size_t)(budget * nth * (double)(b - a) / units));
  });
}

// PSP branches: u = B·x on the untransformed input, split over rank.
void TokenGroup::psp_project(int tid, int nth) const {
  share(tid, nth, [](const Job& jb) { return jb.L->parts().rank; }, [&](const Job& jb, int k0, int k1) {
    for (int t = 0; t < n_; ++t)
      jb.L->psp_project(x_ + (size_t)t * in_, k0, k1, jb.u + (size_t)t * jb.L->parts().rank);
  });
}

// Input transforms, stage s (of those that have it).
void TokenGroup::transform_stage(int s, int tid, int nth) const {
  share(tid, nth, [s](const Job& jb) { return s < jb.stages ? jb.L->parts().transform->stage_work(s) : 0; },
        [&](const Job& jb, int a, int b) {
          for (int t = 0; t < n_; ++t)
            jb.L->parts().transform->run_stage(s, jb.xr + (size_t)t * in_, jb.scratch + (size_t)t * in_, a,
                                       b);
        });
}

// Activation quantization: one thread per linear.
void TokenGroup::quantize(int tid, int nth) const {
  for (int j = tid; j < count_; j += nth) {
    const Job& jb = jobs_[j];
    quantize_acts(jb.src, n_, in_, jb.L->parts().abits, jb.L->parts().act_clip, *jb.qa);
  }
}

// Output rows in 16-row units: bit planes, low-rank expansion, bias.
void TokenGroup::outputs(int tid, int nth) const {
  share(tid, nth, row_units, [&](const Job& jb, int a, int b) {
    const PackedParts& p = jb.L->parts();
    const int out = jb.L->out_features();
    const int r0 = std::min(out, a * 16), r1 = std::min(out, b * 16);
    if (r1 <= r0) return;
    binary_gemm(p.planes[0], *jb.qa, jb.y, r0, r1, jb.kern);
    for (size_t k = 1; k < p.planes.size(); ++k) {
      binary_gemm(p.planes[k], *jb.qa, jb.tmp, r0, r1, jb.kern);
      for (int t = 0; t < n_; ++t)
        for (int i = r0; i < r1; ++i) jb.y[(size_t)t * out + i] += jb.tmp[(size_t)t * out + i];
    }
    for (int t = 0; t < n_; ++t) {
      jb.L->psp_expand(jb.u + (size_t)t * p.rank, r0, r1, jb.y + (size_t)t * out);
      if (!p.bias.empty())
        for (int i = r0; i < r1; ++i) jb.y[(size_t)t * out + i] += p.bias[i];
    }
  });
}

void PackedLinear::forward_token_group(const PackedLinear* const* lins, float* const* ys, int count,
                                       const float* x, int n) {
  TokenGroup(lins, ys, count, x, n).run();
}

void PackedLinear::forward_siblings(const Linear* const* lins, float* const* ys, int count,
                                    const float* x, int n) const {
  if (n <= PackedLinear::kMaxTokens && count <= PackedLinear::kMaxGroup &&
      omp_get_max_threads() > 1 && !omp_in_parallel()) {
    const PackedLinear* pl[PackedLinear::kMaxGroup];
    bool ok = true;
    for (int j = 0; j < count && ok; ++j) {
      pl[j] = dynamic_cast<const PackedLinear*>(lins[j]);
      ok = pl[j] && pl[j]->groupable() && pl[j]->in_features() == lins[0]->in_features();
    }
    if (ok) {
      PackedLinear::forward_token_group(pl, ys, count, x, n);
      return;
    }
  }
  for (int j = 0; j < count; ++j) lins[j]->forward(x, n, ys[j]);
}

void PackedLinear::forward(const float* x, int n, float* y) const {
  if (n <= kMaxTokens && groupable() && omp_get_max_threads() > 1 && !omp_in_parallel()) {
    const PackedLinear* self = this;
    forward_token_group(&self, &y, 1, x, n);
    return;
  }
  const int in = in_features(), out = out_features();
  thread_local std::vector<float> xr;
  thread_local QuantActs qa;
  const float* src = x;
  if (p_.transform) {
    xr.resize((size_t)n * in);
    std::memcpy(xr.data(), x, sizeof(float) * xr.size());
    p_.transform->apply_rows(xr.data(), n);
    src = xr.data();
  }
  quantize_acts(src, n, in, p_.abits, p_.act_clip, qa);
  if (p_.rc) {
    // ARB-RC: fp32 masked sums over the dequantized activations (rc_gemm.h).
    thread_local RcActs ra;
    xr.resize((size_t)n * in);
    dequantize_acts(qa, xr.data());
    rc_prepare(*p_.rc, xr.data(), n, ra);
    rc_gemm(*p_.rc, ra, y);
  } else {
    forward_planes(qa, y);
  }
  psp_add(x, n, y);
  if (!p_.bias.empty())
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < out; ++o) y[(size_t)t * out + o] += p_.bias[o];
}

void PackedLinear::forward_planes(const QuantActs& qa, float* y) const {
  thread_local std::vector<float> tmp;
  const size_t ny = (size_t)qa.tokens * out_features();
  auto plane = [&](size_t k, float* dst) {
    if (p_.block_scales.empty())
      binary_gemm_omp(p_.planes[k], qa, dst);
    else
      binary_gemm_blocked(p_.planes[k], p_.block_scales[k], qa, dst);
  };
  plane(0, y);
  if (p_.planes.size() > 1) {
    tmp.resize(ny);
    for (size_t k = 1; k < p_.planes.size(); ++k) {
      plane(k, tmp.data());
      for (size_t i = 0; i < ny; ++i) y[i] += tmp[i];
    }
  }
}

void PackedLinear::psp_project(const float* x, int k0, int k1, float* u) const {
  lr_->project(x, in_features(), p_.lr_b.data(), p_.lr_s8.data(), k0, k1, u);
}

void PackedLinear::psp_expand(const float* u, int r0, int r1, float* y) const {
  if (p_.rank == 0) return;
  lr_->expand(u, p_.rank, lr_at_.data(), out_features(), r0, r1, y);
}

void PackedLinear::psp_add(const float* x, int n, float* y) const {
  if (p_.rank == 0) return;
  lr_->add(x, n, in_features(), p_.lr_b.data(), lr_at_.data(), p_.lr_s8.data(), p_.rank,
           out_features(), y);
}

size_t PackedLinear::param_bytes() const {
  size_t b = 0;
  for (auto& pl : p_.planes)
    b += (size_t)pl.rows * pl.words_per_row * 8 + (pl.alpha.size() + pl.mu.size()) * 4 +
         pl.row_popcount.size() * 4;
  for (auto& s : p_.block_scales) b += (s.alpha.size() + s.mu.size() + s.popcount.size()) * 4;
  if (p_.rc) {
    const RcMatrix& m = *p_.rc;
    b += (m.sign.size() + m.sparse.size() + m.salient.size() + m.sign2.size()) * 8 +
         (m.a.size() + m.mu.size() + m.c.size() + m.sal_cols.size() + m.sal_start.size()) * 4;
  }
  if (p_.transform) b += (size_t)(p_.transform->storage_bits() / 8);
  return b + lr_at_.size() + p_.lr_b.size() + (p_.bias.size() + p_.lr_s8.size()) * 4;
}

std::string PackedLinear::describe() const {
  return fmt::format("packed {}{}{} a{} clip {:.2f}{}{}",
                     p_.rc ? std::string("column groups") : fmt::format("{} plane", p_.planes.size()),
                     p_.rc || p_.planes.size() == 1 ? "" : "s",
                     p_.block_scales.empty() ? "" : fmt::format(" {}-col scale blocks", p_.block_scales[0].block_cols),
                     p_.abits, p_.act_clip,
                     p_.transform ? fmt::format(" {}", p_.transform->kind()) : std::string(),
                     p_.rank ? fmt::format(" lowrank {}{}", p_.rank,
                                          p_.lr_dtype == LowRankDtype::F32 ? "" : std::string(" ") + lr_->name)
                             : "");
}

}  // namespace bwla
