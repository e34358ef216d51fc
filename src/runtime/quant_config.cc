#include "runtime/quant_config.h"

#include "core/error.h"
#include "runtime/transform_kind.h"

namespace bwla {

bool is_quantized_config(const ModelConfig& cfg) {
  return cfg.raw.contains("quantization_config") && cfg.raw["quantization_config"].is_object();
}

void check_promised_tensors(const TensorStore& st, const json& q, const std::string& p,
                            const std::string& file) {
  const std::string where = file + ", quantization_config";
  const std::string transform = json_string(q, "transform", "", where);
  const bool psp = json_bool(q, "psp", false, where);
  TransformKind kind = TransformKind::None;  // stays None for a name it does not know
  const bool known = parse_transform_kind(transform, kind);
  const std::string want = transform_info(kind).tensor;
  BWLA_CHECK(want.empty() || st.has(p + want),
             "'{}': quantization_config.transform is '{}' but '{}' is missing", file, transform,
             p + want);
  if (known && kind == TransformKind::None)
    for (const auto& t : kTransformKinds)
      BWLA_CHECK(!*t.tensor || !st.has(p + t.tensor),
                 "'{}': quantization_config.transform is 'none' but '{}' has a transform", file, p);
  BWLA_CHECK(!psp || st.has(p + ".psp_a"),
             "'{}': quantization_config.psp is true but '{}' is missing", file, p + ".psp_a");
  BWLA_CHECK(psp || !q.contains("psp") || !st.has(p + ".psp_a"),
             "'{}': quantization_config.psp is false but '{}' is present", file, p + ".psp_a");
}

}  // namespace bwla
