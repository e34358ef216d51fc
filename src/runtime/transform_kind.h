// The input transforms a quantized linear may carry, with one name table for
// the option, quantization_config and the report (parsed once, at the edge).
#pragma once
#include <string>

namespace bwla {

enum class TransformKind { None, Hadamard, Okt };

struct TransformKindInfo {
  TransformKind kind;
  const char* name;
  const char* tensor;  // the tensor of a linear that holds it ("" for none)
};

// Indexed by the enum's value.
inline constexpr TransformKindInfo kTransformKinds[] = {
    {TransformKind::None, "none", ""},
    {TransformKind::Hadamard, "hadamard", ".hadamard_seed"},
    {TransformKind::Okt, "okt", ".okt_r1"},
};

static_assert(kTransformKinds[(int)TransformKind::None].kind == TransformKind::None &&
              kTransformKinds[(int)TransformKind::Hadamard].kind == TransformKind::Hadamard &&
              kTransformKinds[(int)TransformKind::Okt].kind == TransformKind::Okt);

inline const TransformKindInfo& transform_info(TransformKind k) { return kTransformKinds[(int)k]; }
inline const char* transform_name(TransformKind k) { return transform_info(k).name; }
// The kind called `name`; false when there is none.
inline bool parse_transform_kind(const std::string& name, TransformKind& out) {
  for (const auto& e : kTransformKinds)
    if (name == e.name) {
      out = e.kind;
      return true;
    }
  return false;
}

}  // namespace bwla
