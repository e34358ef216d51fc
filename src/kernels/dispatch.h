// The compute kernels every dispatching entry point calls, chosen once from the
// CPU's features (as gemma.cpp's dynamic dispatch and ggml's cpu-feats do):
// one table per ISA level this CPU has, filled on first use; kernels() is the
// table of the active level (core/cpu.h: best_isa(), lowered by BWLA_ISA or,
// in tests, set_active_isa()). Entry points index it instead of branching on
// the ISA at each call.
//
// Levels and features are separate: AVX-512 F/BW/VL/DQ make the Avx512
// level; VNNI (vpdpbusd) and VPOPCNTDQ only choose the binary / q4 kernels
// that need them, so a CPU with AVX-512 but without VNNI still runs the
// AVX-512 float kernels.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/cpu.h"

namespace bwla {

struct Q4Matrix;
struct Q4Acts;
struct Q8Matrix;
struct RcMatrix;
struct RcActs;
namespace detail {
struct SumsArgs;
}

// binary_gemm.h's kernels.
enum class BinaryKernel {
  Auto,
  Scalar,         // reference
  Avx2,           // bits → byte masks (shuffle/compare), maddubs, 16-bit accumulators
  Avx512Vnni,     // mask → 0/−1 bytes (vpmovm2b), vpdpbusd; rows×tokens register tile
  Avx512MaskAdd,  // masked byte adds (mask register = weight word), periodic vpsadbw widening
  Avx512BitSerial,  // activation bit planes AND weight words, vpopcntq (needs AVX512_VPOPCNTDQ)
};
constexpr int kNumBinaryKernels = 6;

struct KernelTable {
  Isa isa = Isa::Scalar;  // the level the entries were chosen for
  bool vnni = false, vpopcntdq = false;

  // vexp.h
  void (*vexp)(const float* x, float* y, long n);
  void (*silu_mul)(float* a, const float* b, long n);
  float (*sum16)(const float* x, long n);
  // lowrank.h: dot products and row combinations of the PSP branch
  float (*dot)(const float* a, const float* b, int n);
  float (*dot_f16)(const uint16_t* a, const float* b, int n);
  float (*dot_i8)(const int8_t* a, const float* b, int n);
  void (*axpy_rows_f16)(const float* u, int terms, const uint16_t* rows, long rs, int n, float* y);
  void (*axpy_rows_i8)(const float* u, int terms, const int8_t* rows, long rs, int n, float* y);
  // kron.h: out[0..n) = Σ_c coef[c·cs]·rows[c·rs + 0..n), one row or nrows at once
  void (*lincomb)(const float* coef, long cs, int terms, const float* rows, long rs, int n,
                  float* out);
  void (*lincomb_block)(const float* coef, long crs, long ccs, int nrows, int terms,
                        const float* rows, long rs, int n, float* out, long os);
  // row_gemv.h, panel_gemv.h
  void (*row_gemv)(int rows, int k, const float* w, size_t ldw, const float* x, float* y);
  void (*panel_gemv)(const float* P, const float* x, int kp, int n_out, float* y);
  // act_quant.h
  void (*minmax)(const float* x, int n, float* mn, float* mx);
  int32_t (*quantize_row)(const float* x, int n, float inv_scale, float zero, float qmax,
                          uint8_t* q);
  // q4_gemm.h, q8_gemm.h: rows [r0, r1) for all tokens
  void (*q4_rows)(const Q4Matrix& m, const Q4Acts& a, int r0, int r1, float* y);
  void (*q8_rows)(const Q8Matrix& m, const float* x, int tokens, int r0, int r1, float* y);
  // rc_gemm.h: ARB-RC rows [r0, r1) for all tokens
  void (*rc_rows)(const RcMatrix& m, const RcActs& a, int r0, int r1, float* y);
  // binary_gemm.h: the masked-sum kernel of each BinaryKernel (null: not on
  // this CPU), the ones Auto resolves to, and the epilogue's vector width.
  void (*masked_sums[kNumBinaryKernels])(const detail::SumsArgs& a);
  BinaryKernel binary_one_token;     // decode, ≤ 6-bit activations
  BinaryKernel binary_one_token_a8;  // decode, 7- and 8-bit activations
  BinaryKernel binary_tokens;        // several tokens share the weights' expansion
  bool binary_epilogue_avx512 = false;
};

// The table of the active ISA level.
const KernelTable& kernels();

// The table for level `isa` on a CPU with features `f` (isa must be one `f`
// supports). Exposed so tests can check the choices for CPUs other than this
// one, e.g. AVX-512 without VNNI.
KernelTable kernel_table_for(Isa isa, const CpuFeatures& f);

}  // namespace bwla
