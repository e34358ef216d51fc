// The packed bwla model format ("bwla-packed", docs/FORMAT.md): real 1-bit
// storage written from a fake-quant directory (quant_model.h) and loaded into
// PackedLinear layers with the sign bits memory-mapped.
#pragma once
#include <string>

#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace bwla {

constexpr const char* kPackedQuantMethod = "bwla-packed";
constexpr int kPackedFormatVersion = 1;
constexpr int kPackedMaxPlanesLimit = 8;  // loader limit; the writer's default is lower

struct PackOptions {
  DType scale_dtype = DType::F16;  // α, μ and the PSP factors: F16 or F32
  int max_planes = 4;              // bit planes per linear (see bit_planes.h)
};

struct PackReport {
  double bits_per_weight = 0;         // decoder linears, every side tensor counted
  double fake_quant_bits_per_weight = 0;  // the source's own estimate
  size_t decoder_linear_bytes = 0;    // bytes of the decoder linears' tensors
  long decoder_linear_weights = 0;    // Σ out·in over packed linears
  size_t other_bytes = 0;             // embeddings, norms, lm_head, dense linears
  size_t file_bytes = 0;              // model.safetensors
  int max_planes_used = 0;
  json summary() const;
};

bool is_packed_config(const ModelConfig& cfg);

// Packs the fake-quant model in qdir into out_dir (built in out_dir.tmp, then
// renamed over out_dir). Errors name the linear and why it cannot be packed.
PackReport pack_quantized_dir(const std::string& qdir, const std::string& out_dir,
                              const PackOptions& opt = {});

// Builds every layer of m (loaded with Model::load_skeleton) from its packed store.
void load_packed_layers(Model& m);

}  // namespace bwla
