// Saving and loading bwla fake-quant models: an output directory in the
// Hugging Face quantized-model convention (config.json with a
// quantization_config block; tensors in model.safetensors). Per decoder
// linear with prefix P (e.g. model.layers.0.self_attn.q_proj):
//   P.weight     F32 [out,in]   dequantized weights in the transformed basis
//   P.bias       F32 [out]      when the architecture has one
//   P.act_clip   F32 [1]        activation clip ratio (abits in the config)
//   P.okt_r1/_r2 F32 [n1,n1] / [n2,n2]   OKT Kronecker factors, or
//   P.hadamard_seed I64 [1]     seed of a randomized Hadamard transform
//   P.psp_a/_b   F32 [out,r] / [r,in]    low-rank branch on the raw input
//   P.storage_bits F64 [1]      honest storage count of this linear
//   P.rc_code U8 [out,in], P.rc_a F32 [4,out,blocks], P.rc_mu F32 [3,out,blocks],
//   P.rc_c F32 [4,in], P.rc_block_cols I64 [1]
//                               arb-rc only: the factors of P.weight
//                               (quant/rc_factors.h), all or none
// quantization_config.format_version is checked at load.
#pragma once
#include <memory>

#include "model/model.h"
#include "runtime/quant_config.h"
#include "quant/rc_factors.h"

namespace bwla {

constexpr int kFakeQuantFormatVersion = 1;

// Builds every layer of m from its store according to quantization_config.
void load_quantized_layers(Model& m);

// Writes a quantized model directory atomically: the tensors in w, config.json
// = cfg with quantization_config's quant_method/format_version set, extra
// files (name -> text), and the tokenizer files copied from src_dir; built in
// out_dir.tmp, then renamed over out_dir.
void write_quantized_dir(const SafeTensorsWriter& w, json cfg, const std::string& src_dir,
                         const std::string& out_dir,
                         const std::vector<std::pair<std::string, std::string>>& extra_files = {});

// Writes one layer's tensors (used for resumable per-layer checkpoints).
void add_layer_tensors(class SafeTensorsWriter& w, const Model& m, int layer);
// Rebuilds layer l from a store holding add_layer_tensors' output.
LayerWeights load_quantized_layer(const TensorStore& st, const ModelConfig& c, int l, int abits);

// The ARB-RC factor tensors of linear `p` ([out, in]): written by
// add_layer_tensors; read back validated (shapes, codes, finite values; a
// partial set is an error), null when the linear has none.
void add_rc_tensors(class SafeTensorsWriter& w, const std::string& p, const RcFactors& f);
std::shared_ptr<const RcFactors> read_rc_tensors(const TensorStore& st, const std::string& p,
                                                 int out, int in);

}  // namespace bwla
