#include "kernels/dispatch.h"

#include <array>

#include "core/error.h"
#include "kernels/act_quant.h"
#include "kernels/binary_gemm.h"
#include "kernels/kron.h"
#include "kernels/lowrank.h"
#include "kernels/panel_gemv.h"
#include "kernels/q4_gemm.h"
#include "kernels/q8_gemm.h"
#include "kernels/rc_gemm.h"
#include "kernels/row_gemv.h"
#include "kernels/vexp.h"

namespace bwla {

KernelTable kernel_table_for(Isa isa, const CpuFeatures& f) {
  BWLA_ASSERT(isa_supported(isa, f), "kernel table for {} on a CPU without it", isa_name(isa));
  using namespace detail;
  KernelTable t;
  t.isa = isa;
  t.vnni = isa == Isa::Avx512 && f.avx512vnni;
  t.vpopcntdq = isa == Isa::Avx512 && f.avx512vpopcntdq;
  const bool v512 = isa == Isa::Avx512, v256 = isa == Isa::Avx2;
#define BWLA_PICK(name) (v512 ? name##_avx512 : v256 ? name##_avx2 : name##_scalar)
  t.vexp = BWLA_PICK(vexp);
  t.silu_mul = BWLA_PICK(silu_mul);
  t.sum16 = BWLA_PICK(sum16);
  t.dot = BWLA_PICK(dot);
  t.dot_f16 = BWLA_PICK(dot_f16);
  t.dot_i8 = BWLA_PICK(dot_i8);
  t.axpy_rows_f16 = BWLA_PICK(axpy_rows_f16);
  t.axpy_rows_i8 = BWLA_PICK(axpy_rows_i8);
  t.lincomb = BWLA_PICK(lincomb);
  t.lincomb_block = BWLA_PICK(lincomb_block);
  t.row_gemv = BWLA_PICK(row_gemv);
  t.panel_gemv = BWLA_PICK(panel_gemv);
  t.minmax = BWLA_PICK(minmax);
  t.quantize_row = BWLA_PICK(quantize_row);
  t.q8_rows = BWLA_PICK(q8_rows);
  t.rc_rows = BWLA_PICK(rc_rows);
#undef BWLA_PICK
  // q4: vpdpbusd where the CPU has VNNI, else AVX512BW multiply-adds.
  t.q4_rows = v512 ? (t.vnni ? q4_rows_avx512_vnni : q4_rows_avx512_bw)
              : v256 ? q4_rows_avx2
                     : q4_rows_scalar;

  // Binary masked sums. The VNNI and mask-add kernels are compiled for VNNI
  // (one translation unit), bit-serial for VPOPCNTDQ.
  auto& ms = t.masked_sums;
  for (auto& m : ms) m = nullptr;
  ms[(int)BinaryKernel::Scalar] = masked_sums_scalar;
  if (isa >= Isa::Avx2) ms[(int)BinaryKernel::Avx2] = masked_sums_avx2;
  if (t.vnni) {
    ms[(int)BinaryKernel::Avx512Vnni] = masked_sums_avx512_vnni;
    ms[(int)BinaryKernel::Avx512MaskAdd] = masked_sums_avx512_maskadd;
  }
  if (t.vpopcntdq) ms[(int)BinaryKernel::Avx512BitSerial] = masked_sums_avx512_bitserial;
  const BinaryKernel wide = t.vnni ? BinaryKernel::Avx512Vnni
                            : isa >= Isa::Avx2 ? BinaryKernel::Avx2
                                               : BinaryKernel::Scalar;
  // Measured (bench/kernels_bench.cc): bit-serial wins single-token GEMV at
  // ≤ 6-bit activations (fewer planes); VNNI wins whenever several tokens
  // share one byte expansion of the weights. At 8 bits the single-token
  // winner depends on the CPU: VNNI on Intel Xeon (Ice Lake), bit-serial on
  // AMD EPYC, whose double-pumped 512-bit units make the byte expansion the
  // bottleneck. MaskAdd is never faster than both.
  t.binary_tokens = wide;
  t.binary_one_token = t.vpopcntdq ? BinaryKernel::Avx512BitSerial : wide;
  t.binary_one_token_a8 =
      t.vpopcntdq && (f.amd || !t.vnni) ? BinaryKernel::Avx512BitSerial : wide;
  t.binary_epilogue_avx512 = v512;
  return t;
}

const KernelTable& kernels() {
  static const std::array<KernelTable, 3> tables = [] {
    std::array<KernelTable, 3> t;
    const Isa best = best_isa();
    for (int i = 0; i < 3; ++i)
      t[i] = kernel_table_for((Isa)std::min(i, (int)best), cpu_features());
    return t;
  }();
  return tables[(int)active_isa()];
}

}  // namespace bwla
