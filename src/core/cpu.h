// CPU feature detection and the ISA level chosen once at start-up.
// BWLA_ISA=scalar|avx2|avx512 forces a level (never above what the CPU has).
#pragma once
#include <string>

namespace bwla {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512vnni = false,
       avx512vpopcntdq = false, avx512bf16 = false;
  bool amd = false;  // vendor AuthenticAMD (kernel choices measured per vendor)
};

const CpuFeatures& cpu_features();
// Whether a CPU with features f has level isa (Avx512: F/BW/VL/DQ on top of
// Avx2's AVX2/FMA/F16C; VNNI and VPOPCNTDQ are not part of any level).
bool isa_supported(Isa isa, const CpuFeatures& f);
// Best ISA level supported by this CPU.
Isa best_isa();
// The level kernels use: best_isa(), lowered by BWLA_ISA if set.
Isa active_isa();
// For tests: force a level (clamped to best_isa()); returns the level set.
Isa set_active_isa(Isa isa);
const char* isa_name(Isa isa);
Isa parse_isa(const std::string& s);

}  // namespace bwla
