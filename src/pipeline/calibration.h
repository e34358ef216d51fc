// Calibration data: N segments of L tokens sampled with a seed from a text
// source (C4 sample JSON lines {"prefix", "gold_completion"} or a raw text
// file such as WikiText-2 valid). The source is tokenized once as one stream
// (documents joined by blank lines) and N start offsets are drawn uniformly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace bwla {

struct CalibOptions {
  // "c4", "wikitext", a file path (.jsonl = C4 format), or "random-tokens"
  // (uniform token ids, no tokenizer needed: for timing runs on random checkpoints).
  std::string source = "c4";
  std::string shared_dir = "../shared";
  int n_segments = 64;
  int seq_len = 512;
  uint64_t seed = 0;
};

std::string calib_source_path(const CalibOptions& o);
// Throws naming the file when it is missing, malformed or too short for N×L tokens.
std::vector<std::vector<int>> sample_calibration(const Tokenizer& tok, const CalibOptions& o);
// N segments of L token ids drawn uniformly from [0, vocab) with o.seed.
std::vector<std::vector<int>> random_token_calibration(int vocab, const CalibOptions& o);
inline bool is_random_token_calibration(const CalibOptions& o) { return o.source == "random-tokens"; }

}  // namespace bwla
