// Fakes for the zero-shot evaluation tests: a byte tokenizer (one token per
// byte, BOS = 256, optional "ab" merge = 257) and a LanguageModel whose next-
// token distribution is any function of the full prefix.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/lm.h"
#include "tokenizer/tokenizer.h"

namespace bwla::test {

class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int kBos = 256, kAB = 257, kVocab = 258;
  explicit ByteTokenizer(bool merge_ab = false, bool add_bos = true)
      : merge_ab_(merge_ab), add_bos_(add_bos) {}
  std::vector<int> encode(const std::string& text, bool add_special = true) const override {
    std::vector<int> ids;
    if (add_special && add_bos_) ids.push_back(kBos);
    for (size_t i = 0; i < text.size(); ++i) {
      if (merge_ab_ && text[i] == 'a' && i + 1 < text.size() && text[i + 1] == 'b') {
        ids.push_back(kAB);
        ++i;
      } else {
        ids.push_back((unsigned char)text[i]);
      }
    }
    return ids;
  }
  std::string decode(const std::vector<int>& ids, bool skip_special = false) const override {
    std::string s;
    for (int id : ids) s += token_bytes(id);
    return s;
  }
  std::string token_bytes(int id) const override {
    if (id == kBos) return "";
    if (id == kAB) return "ab";
    return std::string(1, (char)id);
  }
  int vocab_size() const override { return kVocab; }
  int bos_id() const override { return add_bos_ ? kBos : -1; }
  int eos_id() const override { return -1; }
  bool adds_bos() const override { return add_bos_; }
  std::string kind() const override { return "fake-bytes"; }

 private:
  bool merge_ab_, add_bos_;
};

// Next-token probabilities (or raw logits) as a function of the whole prefix.
class FakeLM : public LanguageModel {
 public:
  using RowFn = std::function<void(const std::vector<int>& prefix, float* logits)>;
  FakeLM(int vocab, int max_ctx, RowFn fn) : vocab_(vocab), max_ctx_(max_ctx), fn_(std::move(fn)) {}

  int vocab_size() const override { return vocab_; }
  int max_context() const override { return max_ctx_; }
  void reset() override { toks_.clear(); }
  int position() const override { return (int)toks_.size(); }
  void truncate(int n) override {
    BWLA_CHECK(n >= 0 && n <= position(), "truncate({}) beyond position {}", n, position());
    toks_.resize((size_t)n);
  }
  void append(const int* tokens, int n, float* logits) override {
    BWLA_CHECK(position() + n <= max_ctx_, "append past max_context");
    for (int i = 0; i < n; ++i) {
      toks_.push_back(tokens[i]);
      fn_(toks_, logits + (size_t)i * vocab_);
    }
    fed += n;
    ++appends;
  }
  long fed = 0, appends = 0;

 private:
  int vocab_, max_ctx_;
  RowFn fn_;
  std::vector<int> toks_;
};

// Logits = log(p) of a distribution where token `fav(prefix)` has probability
// q and the others share 1 - q uniformly.
inline FakeLM::RowFn favourite_row(int vocab, double q, std::function<int(const std::vector<int>&)> fav) {
  return [=](const std::vector<int>& prefix, float* row) {
    float rest = (float)std::log((1.0 - q) / (vocab - 1));
    for (int v = 0; v < vocab; ++v) row[v] = rest;
    row[fav(prefix)] = (float)std::log(q);
  };
}

// Pseudo-random logits that depend on every token of the prefix (and so on
// its length): any KV-cache mistake changes the numbers.
inline FakeLM::RowFn hash_row(int vocab) {
  return [=](const std::vector<int>& prefix, float* row) {
    uint64_t h = 1469598103934665603ull;
    for (int t : prefix) h = (h ^ (uint64_t)(t + 1)) * 1099511628211ull;
    for (int v = 0; v < vocab; ++v) {
      uint64_t x = h + 0x9E3779B97F4A7C15ull * (uint64_t)(v + 1);
      x ^= x >> 31;
      x *= 0xBF58476D1CE4E5B9ull;
      x ^= x >> 29;
      row[v] = (float)((double)(x >> 11) * 0x1.0p-53 * 6.0 - 3.0);
    }
  };
}

}  // namespace bwla::test
