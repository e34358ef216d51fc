// quantization_config, the block of config.json that marks a bwla quantized
// model (fake-quant, format/quant_model.h, or packed, runtime/packed_format.h),
// and the checks both loaders make against it.
#pragma once
#include <string>

#include "io/json.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace bwla {

// quantization_config.quant_method of a fake-quant model (format/quant_model.h).
inline constexpr const char* kFakeQuantMethod = "bwla";

bool is_quantized_config(const ModelConfig& cfg);

// Throws unless the tensors that quantization_config promises for the
// quantized linear with prefix `p` are stored: its transform's factors
// (`transform`: okt, hadamard; none means neither) and the PSP branch (`psp`).
void check_promised_tensors(const TensorStore& st, const json& q, const std::string& p,
                            const std::string& file);

}  // namespace bwla
