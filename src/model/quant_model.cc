#include "model/quant_model.h"

#include "core/error.h"

namespace bwla {

bool is_quantized_config(const ModelConfig& cfg) {
  return cfg.raw.contains("quantization_config") && cfg.raw["quantization_config"].is_object();
}

void load_quantized_layers(Model& m) {
  fail("'{}/config.json': quantized models are not supported yet", m.dir);
}

}  // namespace bwla
