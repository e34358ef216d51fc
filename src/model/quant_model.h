// Loading and saving bwla quantized models (fake-quant layers in the
// Hugging Face quantized-model convention: config.json with a
// quantization_config block, tensors in safetensors).
#pragma once
#include "model/model.h"

namespace bwla {

// True when config.json carries a bwla quantization_config.
bool is_quantized_config(const ModelConfig& cfg);
// Builds every layer of m from its store according to quantization_config.
void load_quantized_layers(Model& m);

}  // namespace bwla
