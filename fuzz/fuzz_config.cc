// libFuzzer target for config.json -> ModelConfig (ModelConfig::load, the path
// every command takes): any bytes must load or throw bwla::Error; an accepted
// config must satisfy the invariants the rest of the code relies on.
// Run: build-fuzz/fuzz_config fuzz/corpus/config -max_total_time=60
#include <cstdint>

#include "core/error.h"
#include "fuzz_common.h"
#include "model/config.h"

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned seed) {
  return bwla_fuzz::mutate(data, size, max_size, seed, 0, size);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = bwla_fuzz::scratch_dir();
  bwla_fuzz::write_file(dir, "config.json",
                        std::string_view(reinterpret_cast<const char*>(data), size));
  bwla::ModelConfig c;
  try {
    c = bwla::ModelConfig::load(dir);
  } catch (const bwla::Error&) {
    return 0;
  }
  if (!(c.hidden > 0 && c.intermediate > 0 && c.n_layers > 0 && c.n_heads > 0 &&
        c.n_kv_heads > 0 && c.vocab > 0 && c.head_dim > 0))
    bwla_fuzz::die("accepted a config with a non-positive size");
  if (c.head_dim % 2 != 0 || c.n_heads % c.n_kv_heads != 0)
    bwla_fuzz::die("accepted a config with odd head_dim or heads not a multiple of kv heads");
  // What `bwla info` and the loaders compute from an accepted config.
  volatile long long sink = c.n_params() + c.n_linear_params();
  for (int id = 0; id < 7; ++id) sink = sink + c.linear_out(id) + c.linear_in(id);
  (void)sink;
  (void)c.to_json().dump();
  return 0;
}
