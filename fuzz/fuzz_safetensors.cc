// libFuzzer target for the safetensors header parser: any byte string must
// either parse into tensors that lie inside the buffer or throw bwla::Error.
// Build: CXX=clang++ cmake -B build-fuzz -DBWLA_FUZZ=ON && ninja -C build-fuzz fuzz_safetensors
// Run:   build-fuzz/fuzz_safetensors fuzz/corpus/safetensors -max_total_time=60
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    bwla::SafeTensorsIndex idx = bwla::parse_safetensors(data, size, "<fuzz>");
    for (const auto& [name, v] : idx.tensors) {
      // Every view must lie inside the input and match dtype x shape.
      if (v.nbytes && (v.data < data || v.data + v.nbytes > data + size)) {
        std::fprintf(stderr, "tensor '%s' escapes the buffer\n", name.c_str());
        std::abort();
      }
      if ((size_t)v.numel() * bwla::dtype_size(v.dtype) != v.nbytes) {
        std::fprintf(stderr, "tensor '%s' size mismatch\n", name.c_str());
        std::abort();
      }
      // Touch the bytes so ASan sees any out-of-range view.
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < v.nbytes; i += 97) sink = sink + v.data[i];
      if (v.nbytes) sink = sink + v.data[v.nbytes - 1];
    }
  } catch (const bwla::Error&) {
  }
  return 0;
}
