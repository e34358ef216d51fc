// Calibration data: N segments of L tokens sampled with a seed from a text
// source (C4 sample JSON lines {"prefix", "gold_completion"} or a raw text
// file such as WikiText-2 valid). The source is tokenized once as one stream
// (documents joined by blank lines) and N start offsets are drawn uniformly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace bwla {

struct CalibOptions {
  std::string source = "c4";  // "c4", "wikitext" or a file path (.jsonl = C4 format)
  std::string shared_dir = "../shared";
  int n_segments = 64;
  int seq_len = 512;
  uint64_t seed = 0;
};

std::string calib_source_path(const CalibOptions& o);
// Throws naming the file when it is missing, malformed or too short for N×L tokens.
std::vector<std::vector<int>> sample_calibration(const Tokenizer& tok, const CalibOptions& o);

}  // namespace bwla
