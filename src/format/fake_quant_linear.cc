#include "format/fake_quant_linear.h"

#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "core/blas_par.h"
#include "core/error.h"
#include "quant/act_quant.h"

namespace bwla {

FakeQuantLinear::FakeQuantLinear(FakeQuantParts p) : p_(std::move(p)) {
  const long out = p_.w_hat.rows(), in = p_.w_hat.cols();
  BWLA_ASSERT(!p_.transform || p_.transform->dim() == in, "transform dim {} vs in {}",
              p_.transform ? p_.transform->dim() : 0, in);
  BWLA_ASSERT(p_.lr_a.size() == 0 || (p_.lr_a.rows() == out && p_.lr_b.cols() == in &&
                                      p_.lr_a.cols() == p_.lr_b.rows()),
              "low-rank shapes {}x{} {}x{}", p_.lr_a.rows(), p_.lr_a.cols(), p_.lr_b.rows(),
              p_.lr_b.cols());
  BWLA_ASSERT(p_.bias.empty() || (long)p_.bias.size() == out, "bias {}", p_.bias.size());
}

void FakeQuantLinear::forward(const float* x, int n, float* y) const {
  const int in = in_features(), out = out_features();
  // Per-thread scratch that only grows: a fresh multi-MB vector per call would be
  // mmap'd and page-faulted in every time.
  thread_local std::vector<float> xq;
  if (xq.size() < (size_t)n * in) xq.resize((size_t)n * in);
  std::memcpy(xq.data(), x, sizeof(float) * (size_t)n * in);
  if (p_.transform) p_.transform->apply_rows(xq.data(), n);
  if (p_.abits < 16) fake_quant_acts(xq.data(), n, in, p_.abits, p_.act_clip);
  par_sgemm_nt(n, out, in, 1.0f, xq.data(), in, p_.w_hat.data(), in, 0.0f, y, out);
  if (p_.lr_a.size()) {
    const int r = (int)p_.lr_a.cols();
    std::vector<float> t((size_t)n * r);
    par_sgemm_nt(n, r, in, 1.0f, x, in, p_.lr_b.data(), in, 0.0f, t.data(), r);
    par_sgemm_nt(n, out, r, 1.0f, t.data(), r, p_.lr_a.data(), r, 1.0f, y, out);
  }
  if (!p_.bias.empty())
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < out; ++o) y[(size_t)t * out + o] += p_.bias[o];
}

size_t FakeQuantLinear::param_bytes() const {
  return (p_.w_hat.size() + p_.lr_a.size() + p_.lr_b.size() + p_.bias.size()) * 4;
}

std::string FakeQuantLinear::describe() const {
  return fmt::format("fake-quant a{} clip {:.2f}{}{}", p_.abits, p_.act_clip,
                     p_.transform ? " " + p_.transform->kind() : "",
                     p_.lr_a.size() ? fmt::format(" lowrank {}", p_.lr_a.cols()) : "");
}

}  // namespace bwla
