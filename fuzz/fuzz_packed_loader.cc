// libFuzzer target for the packed-model loader (load_model on a directory of
// config.json + model.safetensors, docs/FORMAT.md): any bytes must load or
// throw bwla::Error; a model that loads must run (or fail with bwla::Error):
// two tokens through every layer and the head (the loader's checks are what
// keep the kernels inside their buffers).
// Input: u32 little-endian length N, N bytes of config.json, then the bytes
// of model.safetensors (the rest).
// Run: build-fuzz/fuzz_packed_loader fuzz/corpus/packed_loader -max_total_time=60
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>

#include "core/error.h"
#include "format/model_loader.h"
#include "fuzz_common.h"
#include "model/forward.h"
#include "model/model.h"

// JSON-aware mutations of either JSON part, config.json or the safetensors
// header (its length prefix adjusted), else libFuzzer's own.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned seed) {
  std::minstd_rand rng(seed);
  if (size < 4 || rng() % 2 == 0) return LLVMFuzzerMutate(data, size, max_size);
  uint32_t n;
  std::memcpy(&n, data, 4);
  const size_t cfg_end = 4 + std::min<size_t>(n, size - 4);
  // The JSON bytes [begin, end) and where their length is stored: offset 0
  // (u32, config.json) or `at` (u64, the safetensors header, which then gets
  // the length of what was mutated).
  size_t at = 0, begin = 4, end = cfg_end;
  uint64_t hlen = 0;
  if (rng() % 2 && size >= cfg_end + 8) {
    std::memcpy(&hlen, data + cfg_end, 8);
    at = cfg_end;
    begin = cfg_end + 8;
    end = begin + std::min<uint64_t>(hlen, size - begin);
  }
  const size_t m = bwla_fuzz::mutate_json_value(data, size, max_size, begin, end, rng);
  if (!m) return LLVMFuzzerMutate(data, size, max_size);
  const int64_t delta = (int64_t)m - (int64_t)size;
  if (at == 0) {
    n = (uint32_t)((int64_t)(cfg_end - 4) + delta);
    std::memcpy(data, &n, 4);
  } else {
    hlen = (uint64_t)((int64_t)(end - begin) + delta);
    std::memcpy(data + at, &hlen, 8);
  }
  return m;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t n;
  std::memcpy(&n, data, 4);
  data += 4;
  size -= 4;
  if (n > size) n = (uint32_t)size;
  const std::string& dir = bwla_fuzz::scratch_dir();
  const char* bytes = reinterpret_cast<const char*>(data);
  bwla_fuzz::write_file(dir, "config.json", std::string_view(bytes, n));
  bwla_fuzz::write_file(dir, "model.safetensors", std::string_view(bytes + n, size - n));
  std::unique_ptr<bwla::Model> m;
  try {
    m = bwla::load_model(dir);
  } catch (const bwla::Error&) {
    return 0;
  }
  if ((int)m->layers.size() != m->cfg.n_layers) bwla_fuzz::die("layer count differs from config");
  for (const auto& L : m->layers)
    for (const auto& lin : L.lin)
      if (!lin) bwla_fuzz::die("a loaded layer lacks a linear");
  if (!m->lm_head) bwla_fuzz::die("loaded model without an output head");
  volatile size_t sink = m->param_bytes() + m->decode_bytes_per_token();
  (void)sink;
  bwla::KVCache cache(m->cfg, 2);
  const int tokens[2] = {0, m->cfg.vocab - 1};
  std::vector<float> logits((size_t)m->cfg.vocab);
  try {
    bwla::forward_tokens(*m, tokens, 2, cache, logits.data(), /*all_logits=*/false);
  } catch (const bwla::Error&) {
    // E.g. activations that became NaN (the loader does not check every weight's
    // values): reported as an error, which is all that is asked here.
  }
  return 0;
}
