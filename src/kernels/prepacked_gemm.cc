#include "kernels/prepacked_gemm.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "core/error.h"

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
}

PrepackedGemm::~PrepackedGemm() = default;

size_t PrepackedGemm::bytes() const { return impl_->wdesc.get_size(); }

void PrepackedGemm::forward(const float* x, int n, float* y) const {
  BWLA_CHECK(n >= 1, "PrepackedGemm::forward: token count {} < 1", n);
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
void PrepackedGemm::forward(const float*, int, float*) const {
  fail("PrepackedGemm: this build has no oneDNN");
}

#endif

}  // namespace bwla
