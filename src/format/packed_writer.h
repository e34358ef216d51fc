// Writing the packed bwla model format (runtime/packed_format.h,
// docs/FORMAT.md) from a fake-quant directory (quant_model.h).
#pragma once
#include <string>

#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "runtime/packed_format.h"

namespace bwla {

// Storage of the PSP factors: the scale dtype, or int8 with one scale per rank
// component (format version 3).
enum class PspStorage { ScaleDtype, I8 };

struct PackOptions {
  DType scale_dtype = DType::F16;  // α, μ and the PSP factors: F16 or F32
  // PSP factors: "scale" (scale_dtype) or "i8" (int8, one scale per rank
  // component in scale_dtype: about half the bytes of F16).
  // Default i8: PSP costs half the bits of F16 (the one-plane layout stays
  // within 1.25 bits/weight at the TinyLlama shape and 1.30 at SmolLM2-135M).
  PspStorage psp_dtype = PspStorage::I8;
  // Bit planes per linear (see bit_planes.h). The default takes every layout
  // bwla writes: the one-plane default needs 1, the column-group layouts up to 7
  // (and cost that many bits; `pack` says so).
  int max_planes = kPackedMaxPlanesLimit;
  // Output head (and the embedding table when tied): f16, q8 (int8 + fp32
  // scale per row), q4 (4-bit, fp16 scale per 32 columns; int8 activations),
  // or keep (the source's dtype).
  // Default q4: the head is the largest tensor a decode step reads, and 4 bits
  // of it cost about as much quality as the 1-bit decoder's own noise on the
  // real models (docs/RESULTS.md, speed and default-layout sections).
  TableDtype head_dtype = TableDtype::Q4;
  // Embedding table of an untied model (read one row per token).
  TableDtype embed_dtype = TableDtype::F16;
  // Column-group layouts whose factors quantize stored: the column-group form
  // (format 4; about the fake-quant bits, fp32 masked-sum kernel) by default,
  // or thermometer bit planes (integer kernels, about twice the bits).
  // ARB-RC (real column scales) has only the column-group form.
  bool groups_as_planes = false;
};

struct PackReport {
  double bits_per_weight = 0;         // decoder linears, every side tensor counted
  double fake_quant_bits_per_weight = 0;  // the source's own estimate
  size_t decoder_linear_bytes = 0;    // bytes of the decoder linears' tensors
  long decoder_linear_weights = 0;    // Σ out·in over packed linears
  size_t other_bytes = 0;             // embeddings, norms, lm_head, dense linears
  size_t embed_bytes = 0, head_bytes = 0;  // parts of other_bytes (tied: all in embed_bytes)
  std::string embed_dtype, head_dtype;     // as written ("Q8" = I8 + per-row F32 scale, "Q4")
  size_t file_bytes = 0;              // model.safetensors
  int max_planes_used = 0;
  int rc_linears = 0;                 // linears stored in the ARB-RC form
  json summary() const;
};

// Packs the fake-quant model in qdir into out_dir (built in out_dir.tmp, then
// renamed over out_dir). Errors name the linear and why it cannot be packed.
PackReport pack_quantized_dir(const std::string& qdir, const std::string& out_dir,
                              const PackOptions& opt = {});

}  // namespace bwla
