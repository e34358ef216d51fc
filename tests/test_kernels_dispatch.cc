// The kernel table (kernels/dispatch.h): one table per ISA level, the active
// one selected by set_active_isa, and the per-feature choices for CPUs this
// machine is not, above all AVX-512 without VNNI (whose float kernels must
// stay AVX-512 while the vpdpbusd ones fall back).
#include <gtest/gtest.h>

#include "core/cpu.h"
#include "kernels/binary_gemm.h"
#include "kernels/dispatch.h"
#include "kernels/kron.h"
#include "kernels/lowrank.h"
#include "kernels/q4_gemm.h"
#include "kernels/vexp.h"

namespace bwla {
namespace {

CpuFeatures avx2_cpu() {
  CpuFeatures f;
  f.avx2 = f.fma = f.f16c = true;
  return f;
}
CpuFeatures avx512_cpu(bool vnni, bool vpopcntdq, bool amd) {
  CpuFeatures f = avx2_cpu();
  f.avx512f = f.avx512bw = f.avx512dq = f.avx512vl = true;
  f.avx512vnni = vnni;
  f.avx512vpopcntdq = vpopcntdq;
  f.amd = amd;
  return f;
}

TEST(KernelTable, ActiveTableFollowsTheLevel) {
  const Isa before = active_isa();
  for (int i = 0; i <= (int)best_isa(); ++i) {
    set_active_isa((Isa)i);
    const KernelTable& kt = kernels();
    EXPECT_EQ(kt.isa, (Isa)i);
    const KernelTable want = kernel_table_for((Isa)i, cpu_features());
    EXPECT_EQ(kt.vexp, want.vexp) << isa_name((Isa)i);
    EXPECT_EQ(kt.q4_rows, want.q4_rows) << isa_name((Isa)i);
    EXPECT_EQ(default_binary_kernel(6, 1), want.binary_one_token);
    EXPECT_EQ(default_binary_kernel(6, 4), want.binary_tokens);
  }
  set_active_isa(Isa::Scalar);
  EXPECT_EQ(kernels().vexp, detail::vexp_scalar);
  EXPECT_EQ(default_binary_kernel(6, 1), BinaryKernel::Scalar);
  EXPECT_FALSE(binary_kernel_available(BinaryKernel::Avx2));
  set_active_isa(before);
}

TEST(KernelTable, Avx512WithoutVnniKeepsTheFloatKernels) {
  const KernelTable t = kernel_table_for(Isa::Avx512, avx512_cpu(false, false, false));
  EXPECT_EQ(t.isa, Isa::Avx512);
  EXPECT_EQ(t.vexp, detail::vexp_avx512);
  EXPECT_EQ(t.dot, detail::dot_avx512);
  EXPECT_EQ(t.dot_i8, detail::dot_i8_avx512);
  EXPECT_TRUE(t.binary_epilogue_avx512);
  // vpdpbusd kernels fall back.
  EXPECT_EQ(t.q4_rows, detail::q4_rows_avx512_bw);
  EXPECT_EQ(t.masked_sums[(int)BinaryKernel::Avx512Vnni], nullptr);
  EXPECT_EQ(t.masked_sums[(int)BinaryKernel::Avx512MaskAdd], nullptr);
  EXPECT_EQ(t.masked_sums[(int)BinaryKernel::Avx512BitSerial], nullptr);
  EXPECT_EQ(t.binary_tokens, BinaryKernel::Avx2);
  EXPECT_EQ(t.binary_one_token, BinaryKernel::Avx2);
  EXPECT_EQ(t.masked_sums[(int)BinaryKernel::Avx2], detail::masked_sums_avx2);
  // With VPOPCNTDQ but no VNNI, decode takes the bit-serial kernel.
  const KernelTable p = kernel_table_for(Isa::Avx512, avx512_cpu(false, true, false));
  EXPECT_EQ(p.binary_one_token, BinaryKernel::Avx512BitSerial);
  EXPECT_EQ(p.binary_one_token_a8, BinaryKernel::Avx512BitSerial);
  EXPECT_EQ(p.binary_tokens, BinaryKernel::Avx2);
}

TEST(KernelTable, VnniAndVendorChoices) {
  const KernelTable intel = kernel_table_for(Isa::Avx512, avx512_cpu(true, true, false));
  EXPECT_EQ(intel.q4_rows, detail::q4_rows_avx512_vnni);
  EXPECT_EQ(intel.binary_tokens, BinaryKernel::Avx512Vnni);
  EXPECT_EQ(intel.binary_one_token, BinaryKernel::Avx512BitSerial);
  EXPECT_EQ(intel.binary_one_token_a8, BinaryKernel::Avx512Vnni);
  const KernelTable amd = kernel_table_for(Isa::Avx512, avx512_cpu(true, true, true));
  EXPECT_EQ(amd.binary_one_token_a8, BinaryKernel::Avx512BitSerial);
  const KernelTable no_pop = kernel_table_for(Isa::Avx512, avx512_cpu(true, false, false));
  EXPECT_EQ(no_pop.binary_one_token, BinaryKernel::Avx512Vnni);
  // The AVX2 level of an AVX-512 CPU is the AVX2 table.
  const KernelTable lowered = kernel_table_for(Isa::Avx2, avx512_cpu(true, true, true));
  EXPECT_EQ(lowered.vexp, detail::vexp_avx2);
  EXPECT_EQ(lowered.q4_rows, detail::q4_rows_avx2);
  EXPECT_FALSE(lowered.vnni);
  EXPECT_EQ(lowered.masked_sums[(int)BinaryKernel::Avx512Vnni], nullptr);
  EXPECT_FALSE(lowered.binary_epilogue_avx512);
  const KernelTable scalar = kernel_table_for(Isa::Scalar, avx2_cpu());
  EXPECT_EQ(scalar.lincomb_block, detail::lincomb_block_scalar);
  EXPECT_EQ(scalar.binary_tokens, BinaryKernel::Scalar);
}

// Every entry of every table this CPU has is filled.
TEST(KernelTable, NoEmptyEntries) {
  for (int i = 0; i <= (int)best_isa(); ++i) {
    const KernelTable t = kernel_table_for((Isa)i, cpu_features());
    const void* entries[] = {(void*)t.vexp, (void*)t.silu_mul, (void*)t.sum16, (void*)t.dot,
                             (void*)t.dot_f16, (void*)t.dot_i8, (void*)t.axpy_rows_f16,
                             (void*)t.axpy_rows_i8, (void*)t.lincomb, (void*)t.lincomb_block,
                             (void*)t.row_gemv, (void*)t.panel_gemv, (void*)t.minmax,
                             (void*)t.quantize_row, (void*)t.q4_rows, (void*)t.q8_rows};
    for (const void* e : entries) EXPECT_NE(e, nullptr) << isa_name((Isa)i);
    for (BinaryKernel k : {t.binary_one_token, t.binary_one_token_a8, t.binary_tokens})
      EXPECT_NE(t.masked_sums[(int)k], nullptr) << binary_kernel_name(k);
  }
}

}  // namespace
}  // namespace bwla
