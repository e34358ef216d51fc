#include "model/packed_linear.h"

#include <fmt/format.h>

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/cpu.h"
#include "core/error.h"
#include "kernels/act_quant.h"
#include "kernels/binary_gemm.h"
#include "kernels/lowrank.h"

namespace bwla {

PackedLinear::PackedLinear(PackedParts p) : p_(std::move(p)) {
  BWLA_ASSERT(!p_.planes.empty(), "packed linear without planes{}", "");
  const int out = p_.planes[0].rows, in = p_.planes[0].cols;
  for (auto& pl : p_.planes)
    BWLA_ASSERT(pl.rows == out && pl.cols == in, "plane shape {}x{} vs {}x{}", pl.rows, pl.cols,
                out, in);
  BWLA_ASSERT(!p_.transform || p_.transform->dim() == in, "transform dim {} vs in {}",
              p_.transform->dim(), in);
  const bool f16 = !p_.lr_a16.empty() || !p_.lr_b16.empty();
  const size_t la = f16 ? p_.lr_a16.size() : p_.lr_a.size();
  const size_t lb = f16 ? p_.lr_b16.size() : p_.lr_b.size();
  BWLA_ASSERT(la == (size_t)out * p_.rank && lb == (size_t)p_.rank * in &&
                  (!f16 || (p_.lr_a.empty() && p_.lr_b.empty())),
              "low-rank sizes {} {} rank {} (fp16 {})", la, lb, p_.rank, f16);
  BWLA_ASSERT(p_.bias.empty() || p_.bias.size() == (size_t)out, "bias {}", p_.bias.size());
  BWLA_ASSERT(p_.abits >= 2 && p_.abits <= 8, "abits {}", p_.abits);
  BWLA_ASSERT(p_.block_scales.empty() || p_.block_scales.size() == p_.planes.size(),
              "block scales {} for {} planes", p_.block_scales.size(), p_.planes.size());
  lr_at_.resize(p_.lr_a.size());
  lr_at16_.resize(p_.lr_a16.size());
  for (int i = 0; i < out; ++i)
    for (int k = 0; k < p_.rank; ++k) {
      if (f16) lr_at16_[(size_t)k * out + i] = p_.lr_a16[(size_t)i * p_.rank + k];
      else lr_at_[(size_t)k * out + i] = p_.lr_a[(size_t)i * p_.rank + k];
    }
  // Only the transposed copy is read from here on.
  std::vector<float>().swap(p_.lr_a);
  std::vector<uint16_t>().swap(p_.lr_a16);
}

void PackedLinear::forward_token_shared(const float* x, float* y) const {
  const int in = in_features(), out = out_features(), rank = p_.rank;
  const bool f16 = !lr_at16_.empty();
  // Scratch of the calling thread, reached inside the region only through these
  // pointers (a thread_local named there would be each thread's own instance).
  thread_local std::vector<float> xr_tl, scratch_tl, u_tl, tmp_tl;
  thread_local QuantActs qa_tl;
  if (p_.transform) {
    xr_tl.assign(x, x + in);
    scratch_tl.resize((size_t)in);
  }
  u_tl.resize((size_t)rank);
  if (p_.planes.size() > 1) tmp_tl.resize((size_t)out);
  float* const xr = xr_tl.data();
  float* const scratch = scratch_tl.data();
  float* const u = u_tl.data();
  float* const tmp = tmp_tl.data();
  QuantActs& qa = qa_tl;
  const float* const src = p_.transform ? xr : x;
  const BinaryKernel kern = default_binary_kernel(p_.abits, 1);
  BWLA_CHECK(binary_kernel_available(kern), "binary kernel {} needs ISA above active {}",
             binary_kernel_name(kern), isa_name(active_isa()));
  const int units = (out + 15) / 16;
#pragma omp parallel
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    if (rank > 0) {  // PSP branch: u = B·x on the untransformed input, split over rank
      const int k0 = rank * tid / nth, k1 = rank * (tid + 1) / nth;
      if (f16) lowrank_project_f16(x, in, p_.lr_b16.data(), k0, k1, u);
      else lowrank_project(x, in, p_.lr_b.data(), k0, k1, u);
    }
    if (p_.transform) p_.transform->apply_one_shared(xr, scratch, tid, nth);
#pragma omp single
    quantize_acts(src, 1, in, p_.abits, p_.act_clip, qa);
    // (implicit barrier of the single: qa and u are complete)
    const int r0 = std::min(out, (int)((long)units * tid / nth) * 16);
    const int r1 = std::min(out, (int)((long)units * (tid + 1) / nth) * 16);
    if (r1 > r0) {
      binary_gemm(p_.planes[0], qa, y, r0, r1, kern);
      for (size_t k = 1; k < p_.planes.size(); ++k) {
        binary_gemm(p_.planes[k], qa, tmp, r0, r1, kern);
        for (int i = r0; i < r1; ++i) y[i] += tmp[i];
      }
      if (rank > 0 && f16) lowrank_expand_f16(u, rank, lr_at16_.data(), out, r0, r1, y);
      else if (rank > 0) lowrank_expand(u, rank, lr_at_.data(), out, r0, r1, y);
      if (!p_.bias.empty())
        for (int i = r0; i < r1; ++i) y[i] += p_.bias[i];
    }
  }
}

void PackedLinear::forward(const float* x, int n, float* y) const {
  if (n == 1 && p_.block_scales.empty() && omp_get_max_threads() > 1 && !omp_in_parallel()) {
    forward_token_shared(x, y);
    return;
  }
  const int in = in_features(), out = out_features();
  thread_local std::vector<float> xr, tmp;
  thread_local QuantActs qa;
  const float* src = x;
  if (p_.transform) {
    xr.resize((size_t)n * in);
    std::memcpy(xr.data(), x, sizeof(float) * xr.size());
    p_.transform->apply_rows(xr.data(), n);
    src = xr.data();
  }
  quantize_acts(src, n, in, p_.abits, p_.act_clip, qa);
  auto plane = [&](size_t k, float* dst) {
    if (p_.block_scales.empty())
      binary_gemm_omp(p_.planes[k], qa, dst);
    else
      binary_gemm_blocked(p_.planes[k], p_.block_scales[k], qa, dst);
  };
  plane(0, y);
  if (p_.planes.size() > 1) {
    tmp.resize((size_t)n * out);
    for (size_t k = 1; k < p_.planes.size(); ++k) {
      plane(k, tmp.data());
      for (size_t i = 0; i < tmp.size(); ++i) y[i] += tmp[i];
    }
  }
  if (p_.rank > 0 && !lr_at16_.empty())
    lowrank_add_f16(x, n, in, p_.lr_b16.data(), lr_at16_.data(), p_.rank, out, y);
  else if (p_.rank > 0)
    lowrank_add(x, n, in, p_.lr_b.data(), lr_at_.data(), p_.rank, out, y);
  if (!p_.bias.empty())
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < out; ++o) y[(size_t)t * out + o] += p_.bias[o];
}

size_t PackedLinear::param_bytes() const {
  size_t b = 0;
  for (auto& pl : p_.planes)
    b += (size_t)pl.rows * pl.words_per_row * 8 + (pl.alpha.size() + pl.mu.size()) * 4 +
         pl.row_popcount.size() * 4;
  for (auto& s : p_.block_scales) b += (s.alpha.size() + s.mu.size() + s.popcount.size()) * 4;
  if (p_.transform) b += (size_t)(p_.transform->storage_bits() / 8);
  return b + (lr_at_.size() + p_.lr_b.size() + p_.bias.size()) * 4 +
         (lr_at16_.size() + p_.lr_b16.size()) * 2;
}

std::string PackedLinear::describe() const {
  return fmt::format("packed {} plane{}{} a{} clip {:.2f}{}{}", p_.planes.size(),
                     p_.planes.size() == 1 ? "" : "s",
                     p_.block_scales.empty() ? "" : fmt::format(" {}-col scale blocks", p_.block_scales[0].block_cols),
                     p_.abits, p_.act_clip,
                     p_.transform ? fmt::format(" {}", p_.transform->kind()) : std::string(),
                     p_.rank ? fmt::format(" lowrank {}{}", p_.rank, lr_at16_.empty() ? "" : " f16") : "");
}

}  // namespace bwla
