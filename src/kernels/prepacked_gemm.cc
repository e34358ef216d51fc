#include "kernels/prepacked_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "core/error.h"
#include "kernels/panel_gemv.h"

#ifdef BWLA_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace bwla {

bool PrepackedGemm::enabled() {
  const char* e = std::getenv("BWLA_GEMM");
  return available() && !(e && std::strcmp(e, "openblas") == 0);
}

#ifdef BWLA_HAVE_ONEDNN

namespace {
using dnnl::memory;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

memory::desc rows_desc(int rows, int cols) {
  return memory::desc({rows, cols}, memory::data_type::f32, memory::format_tag::ab);
}
}  // namespace

struct PrepackedGemm::Impl {
  memory::desc wdesc;  // the blocked layout chosen for a 128-token product
  memory weights;
  // Single tokens: when the layout is 64-output panels ([K padded to kp] × 64,
  // row-major, one after another — what oneDNN chose on every shape measured),
  // one streaming pass per panel (detail::panel_gemv) reads the weights faster
  // than a 1-row matmul (TinyLlama fp32 decode on EPYC: 3.8 t/s with oneDNN's
  // matmul vs 4.5 with plain OpenBLAS sgemv at 1 thread).
  bool panels = false;
  int kp = 0;
  mutable std::mutex mu;
  mutable std::map<int, dnnl::matmul> prims;  // by token count

  const dnnl::matmul& prim(int n, int out, int in) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = prims.find(n);
    if (it == prims.end()) {
      // The weights layout is fixed; every token count uses it (brgemm kernels
      // accept it for any n, including n = 1).
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(rows_desc(n, in), wdesc, rows_desc(n, out)),
                                      cpu_engine());
      it = prims.emplace(n, dnnl::matmul(pd)).first;
    }
    return it->second;
  }
};

bool PrepackedGemm::available() { return true; }

PrepackedGemm::PrepackedGemm(const float* w, int out, int in)
    : out_(out), in_(in), impl_(std::make_unique<Impl>()) {
  BWLA_CHECK(out > 0 && in > 0 && w != nullptr, "PrepackedGemm: bad weight {}x{}", out, in);
  dnnl::engine& eng = cpu_engine();
  // Weights as the matmul's [K = in, N = out] operand: W row-major [out, in] is
  // that matrix in column-major order ("ba").
  const memory::desc any({in, out}, memory::data_type::f32, memory::format_tag::any);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(rows_desc(128, in), any, rows_desc(128, out)), eng);
  impl_->wdesc = pd.weights_desc();
  impl_->weights = memory(impl_->wdesc, eng);
  const memory::desc plain({in, out}, memory::data_type::f32, memory::format_tag::ba);
  memory src(plain, eng, const_cast<float*>(w));
  dnnl::stream s(eng);
  dnnl::reorder(src, impl_->weights).execute(s, src, impl_->weights);
  s.wait();
  const dnnl_memory_desc_t& d = impl_->wdesc.data;
  const auto& b = d.format_desc.blocking;
  const int64_t kp = d.padded_dims[0];
  impl_->panels = d.format_kind == dnnl_blocked && d.offset0 == 0 && b.inner_nblks == 2 &&
                  b.inner_blks[0] == 16 && b.inner_idxs[0] == 0 && b.inner_blks[1] == 64 &&
                  b.inner_idxs[1] == 1 && b.strides[0] == 16 * 64 && b.strides[1] == kp * 64 &&
                  kp % 16 == 0 && d.padded_dims[1] % 64 == 0;
  impl_->kp = (int)kp;
}

PrepackedGemm::~PrepackedGemm() = default;

size_t PrepackedGemm::bytes() const { return impl_->wdesc.get_size(); }
bool PrepackedGemm::panel_gemv() const { return impl_->panels; }

void PrepackedGemm::forward(const float* x, int n, float* y) const {
  BWLA_CHECK(n >= 1, "PrepackedGemm::forward: token count {} < 1", n);
  if (n == 1 && impl_->panels) {
    const int kp = impl_->kp, blocks = (out_ + 63) / 64;
    // x is read as kp entries: only a K that is not a multiple of 16 needs a
    // zero-padded copy (the common decoder widths read x in place).
    const float* xv = x;
    if (kp != in_) {
      thread_local std::vector<float> xp;
      xp.assign(x, x + in_);
      xp.resize(kp, 0.0f);
      xv = xp.data();
    }
    const float* P = static_cast<const float*>(impl_->weights.get_data_handle());
#pragma omp parallel for schedule(static) if (blocks >= 2 && (long)kp * out_ >= (1L << 15) && !omp_in_parallel())
    for (int blk = 0; blk < blocks; ++blk)
      detail::panel_gemv(P + (size_t)blk * kp * 64, xv, kp, std::min(64, out_ - 64 * blk), y + 64 * blk);
    return;
  }
  const dnnl::matmul& mm = impl_->prim(n, out_, in_);
  dnnl::engine& eng = cpu_engine();
  memory xm(rows_desc(n, in_), eng, const_cast<float*>(x));
  memory ym(rows_desc(n, out_), eng, y);
  dnnl::stream s(eng);
  mm.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, impl_->weights}, {DNNL_ARG_DST, ym}});
  s.wait();
}

#else  // no oneDNN in this build

struct PrepackedGemm::Impl {};
bool PrepackedGemm::available() { return false; }
PrepackedGemm::PrepackedGemm(const float*, int out, int in) : out_(out), in_(in) {
  fail("PrepackedGemm: this build has no oneDNN (install libdnnl-dev and reconfigure)");
}
PrepackedGemm::~PrepackedGemm() = default;
size_t PrepackedGemm::bytes() const { return 0; }
bool PrepackedGemm::panel_gemv() const { return false; }
void PrepackedGemm::forward(const float*, int, float*) const {
  fail("PrepackedGemm: this build has no oneDNN");
}

#endif

}  // namespace bwla
