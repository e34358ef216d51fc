#include "core/cpu.h"

#include <cstdlib>

#include "core/error.h"
#include "core/log.h"

namespace bwla {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.f16c = true;  // implied by AVX2-era CPUs we target; checked via avx2
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512dq = __builtin_cpu_supports("avx512dq");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
    c.avx512vnni = __builtin_cpu_supports("avx512vnni");
    c.avx512vpopcntdq = __builtin_cpu_supports("avx512vpopcntdq");
    c.avx512bf16 = __builtin_cpu_supports("avx512bf16");
    c.amd = __builtin_cpu_is("amd");
    return c;
  }();
  return f;
}

bool isa_supported(Isa isa, const CpuFeatures& f) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return f.avx2 && f.fma && f.f16c;
    // VNNI / VPOPCNTDQ are not part of the level: kernels/dispatch.cc picks
    // the kernels that need them per feature.
    case Isa::Avx512:
      return isa_supported(Isa::Avx2, f) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  }
  return false;
}

Isa best_isa() {
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (isa_supported(isa, cpu_features())) return isa;
  return Isa::Scalar;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& s) {
  if (s == "scalar") return Isa::Scalar;
  if (s == "avx2") return Isa::Avx2;
  if (s == "avx512") return Isa::Avx512;
  fail("unknown ISA '{}' (expected scalar, avx2 or avx512)", s);
}

namespace {
Isa initial_isa() {
  Isa best = best_isa();
  const char* e = std::getenv("BWLA_ISA");
  if (!e || !*e) return best;
  Isa want = parse_isa(e);
  if ((int)want > (int)best) {
    log_warn("BWLA_ISA={} not supported by this CPU; using {}", e, isa_name(best));
    return best;
  }
  return want;
}
Isa g_isa = initial_isa();
}  // namespace

Isa active_isa() { return g_isa; }
Isa set_active_isa(Isa isa) {
  g_isa = (int)isa > (int)best_isa() ? best_isa() : isa;
  return g_isa;
}

}  // namespace bwla
