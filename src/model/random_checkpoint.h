// Random-weight Hugging Face checkpoints with real shapes, for tests of every
// architecture and for speed/memory work.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"

namespace bwla {

struct RandomCheckpointSpec {
  std::string preset;  // see random_presets()
  std::string arch;    // override: llama, mistral, qwen2, qwen3 ("" = preset's)
  DType dtype = DType::BF16;
  uint64_t seed = 0;
  int n_layers = 0;    // override (0 = preset's)
  std::string tokenizer_dir;  // copy tokenizer files from here ("" = none)
};

std::vector<std::string> random_presets();
// The config.json the preset produces.
json random_config(const RandomCheckpointSpec& spec);
// Writes config.json + model.safetensors (+ tokenizer files) into out_dir.
void write_random_checkpoint(const RandomCheckpointSpec& spec, const std::string& out_dir);

}  // namespace bwla
