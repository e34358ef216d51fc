// Loading a model directory of any storage bwla reads, as llama.cpp's model
// loader sits beside (not inside) its model: an fp32 / fp16 / bf16 Hugging
// Face checkpoint, a fake-quant bwla model (quantization_config, format v1) or
// a packed one (docs/FORMAT.md). The storage of the embedding table and head
// is looked up in one table by tensor dtype (kTableReaders in the .cc).
#pragma once
#include <memory>
#include <string>

#include "model/model.h"

namespace bwla {

// Loads config.json and every tensor. A directory that holds a bwla quantized
// model (config.json with quantization_config) is loaded with its quantized
// linears. prepack_dense: fp32 dense linears (and an untied fp32 head) are
// re-laid-out for PrepackedGemm when it is enabled and their plain weights
// freed (inference only: the quantization pipeline and tests reading
// DenseLinear::weight() load without it).
std::unique_ptr<Model> load_model(const std::string& dir, bool prepack_dense = false);

// Loads config, embeddings, norms and head only; layers are left empty (the
// pipeline loads one layer at a time with load_dense_layer).
std::unique_ptr<Model> load_model_skeleton(const std::string& dir);

}  // namespace bwla
