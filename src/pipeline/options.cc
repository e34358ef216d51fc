#include "pipeline/options.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bwla {

std::vector<std::string> quantize_methods() {
  auto m = weight_methods();
  m.push_back(kBwlaMethod);
  return m;
}

TransformKind QuantizeOptions::transform_kind() const {
  if (transform == "auto") return is_bwla() ? TransformKind::Okt : TransformKind::None;
  TransformKind k;
  BWLA_CHECK(parse_transform_kind(transform, k),
             "--transform must be none, hadamard, okt or auto, got '{}'", transform);
  return k;
}

std::string QuantizeOptions::effective_transform() const { return transform_name(transform_kind()); }

void QuantizeOptions::finalize() {
  auto ms = quantize_methods();
  BWLA_CHECK(std::find(ms.begin(), ms.end(), method) != ms.end(),
             "unknown method '{}' (available: {})", method, fmt::join(ms, ", "));
  BWLA_CHECK(abits == 4 || abits == 6 || abits == 8 || abits == 16,
             "--abits must be 4, 6, 8 or 16, got {}", abits);
  transform_kind();  // throws on an unknown name
  const std::string wm = is_bwla() ? binarizer : method;
  auto bits = weight_method_bits(wm);
  BWLA_CHECK(!bits.empty(), "unknown weight quantizer '{}' (available: {})", wm,
             fmt::join(weight_methods(), ", "));
  BWLA_CHECK(std::find(bits.begin(), bits.end(), wbits) != bits.end(),
             "method '{}' does not support --wbits {} (supported: {})", wm, wbits,
             fmt::join(bits, ", "));
  BWLA_CHECK(rank_ratio >= 0 && rank_ratio < 1, "--rank-ratio must be in [0, 1), got {}", rank_ratio);
  BWLA_CHECK(psp_opt.rank >= 1, "--rank must be at least 1, got {}", psp_opt.rank);
  BWLA_CHECK(psp_full_iters >= -1,
             "--psp-full-iters must be -1 (all), 0 (auto) or a positive count, got {}", psp_full_iters);
  BWLA_CHECK(okt.iters >= 0, "--okt-iters must be >= 0, got {}", okt.iters);
  // Every option is checked here, before calibration, so that a bad value
  // fails in a second instead of after the work (and never leaves OUT.partial).
  BWLA_CHECK(psp_opt.iters >= 1, "--psp-iters must be at least 1, got {}", psp_opt.iters);
  BWLA_CHECK(std::isfinite(okt.kappa) && okt.kappa >= 0, "--kappa must be >= 0, got {}", okt.kappa);
  BWLA_CHECK(std::isfinite(okt.act_weight) && okt.act_weight >= 0,
             "--act-aware must be >= 0, got {}", okt.act_weight);
  BWLA_CHECK(wq.block_size >= 1, "--block-size must be at least 1, got {}", wq.block_size);
  BWLA_CHECK(wq.group_size >= 0, "--group-size must be >= 0 (0 = per row), got {}", wq.group_size);
  BWLA_CHECK(std::isfinite(wq.damp) && wq.damp >= 0, "--damp must be >= 0, got {}", wq.damp);
  BWLA_CHECK(wq.arb_iters >= 0, "--arb-iters must be >= 0, got {}", wq.arb_iters);
  BWLA_CHECK(calib.n_segments >= 1, "--nsamples must be at least 1, got {}", calib.n_segments);
  BWLA_CHECK(calib.seq_len >= 2, "--seqlen must be at least 2, got {}", calib.seq_len);
  BWLA_CHECK(linear_jobs >= 0, "--linear-jobs must be >= 0, got {}", linear_jobs);
  BWLA_CHECK(stop_after >= 0, "--stop-after must be >= 0, got {}", stop_after);
  BWLA_CHECK(chunk_segments >= 1, "chunk_segments must be >= 1");
  wq.method = wm;
  wq.wbits = wbits;
  wq.seed = seed;
  okt.seed = seed;
  psp_opt.seed = seed;
}

json QuantizeOptions::to_json() const {
  json j;
  j["method"] = method;
  j["wbits"] = wbits;
  j["abits"] = abits;
  j["transform"] = effective_transform();
  j["psp"] = psp;
  if (psp) j["psp_rank"] = psp_opt.rank, j["psp_rank_ratio"] = rank_ratio, j["psp_iters"] = psp_opt.iters, j["psp_full_iters"] = effective_psp_full_iters(),
           j["psp_prox"] = psp_opt.prox == PspOptions::Prox::Truncated ? "truncated" : "soft";
  if (is_bwla()) j["binarizer"] = binarizer;
  j["weight_quantizer"] = {{"method", wq.method}, {"wbits", wq.wbits}, {"group_size", wq.group_size},
                           {"block_size", wq.block_size}, {"damp", wq.damp},
                           {"arb_iters", wq.arb_iters}, {"groups", wq.groups},
                           {"salient_max", wq.salient_max}};
  if (wq.sign_refine > 0) j["weight_quantizer"]["sign_refine"] = wq.sign_refine;
  if (transform_kind() == TransformKind::Okt)
    j["okt"] = {{"iters", okt.iters}, {"kappa", okt.kappa},
                {"mstep", okt.mstep == OktOptions::MStep::Procrustes ? "procrustes" : "cayley"},
                {"hadamard_init", okt.hadamard_init}, {"act_weight", okt.act_weight}};
  j["clip_search"] = clip_search;
  j["calibration"] = {{"source", calib_source_path(calib)}, {"segments", calib.n_segments},
                      {"seq_len", calib.seq_len}, {"seed", calib.seed}};
  j["seed"] = seed;
  return j;
}

}  // namespace bwla
