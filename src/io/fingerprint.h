// Identity of input files, for keying resumable work on what was read rather
// than on a path (an edited checkpoint at the same path must not reuse layers
// quantized from the old one).
#pragma once
#include <string>

#include "io/json.h"

namespace bwla {

// {"file", "bytes", "mtime_ns", "fnv1a64"}: the hash covers the whole file,
// or only the 8-byte length and the JSON header of a .safetensors file (its
// tensor bytes are covered by size and modification time).
json file_fingerprint(const std::string& path);
// Fingerprints of a checkpoint directory's config.json, shard index and
// every .safetensors file, in name order.
json checkpoint_fingerprint(const std::string& dir);

}  // namespace bwla
