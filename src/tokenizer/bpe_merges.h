// BPE model core shared by every tokenizer kind: the vocabulary (token string
// <-> id), the merge rank table and the merge loop, plus a thread-safe
// per-word result cache.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/json.h"

namespace bwla {

// Hash allowing unordered_map<std::string, ...>::find(std::string_view).
struct BpeStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using BpeStringMap = std::unordered_map<std::string, V, BpeStringHash, std::equal_to<>>;

// Most unused ids (holes) a tokenizer's id space may have: tables are indexed
// by id, so ids far beyond the number of tokens would only cost memory (a
// 30-byte tokenizer.json could otherwise ask for gigabytes).
constexpr int kMaxUnusedTokenIds = 1 << 16;

class BpeModel {
 public:
  // Parses the "model" object of a tokenizer.json (type "BPE"): vocab, merges
  // ("a b" strings or ["a", "b"] pairs), unk_token, byte_fallback, fuse_unk,
  // ignore_merges. `file` names the source in error messages.
  static BpeModel from_json(const json& model, const std::string& file);

  // Applies merges by rank (lowest first, leftmost on ties) to the symbol ids
  // in place, exactly like a repeated "merge the best adjacent pair" loop.
  void merge(std::vector<int>& symbols) const;

  // -1 if the token string is not in the vocabulary.
  int find(std::string_view token) const;
  // One past the largest id in the vocabulary.
  int size() const { return (int)tokens_.size(); }
  // The token's string as written in tokenizer.json ("" for holes).
  const std::string& token(int id) const { return tokens_[(size_t)id]; }
  int num_merges() const { return (int)merges_.size(); }

  int unk_id() const { return unk_id_; }
  bool byte_fallback() const { return byte_fallback_; }
  bool fuse_unk() const { return fuse_unk_; }
  bool ignore_merges() const { return ignore_merges_; }
  // Id of "<0xNN>" for byte b, or -1.
  int byte_token(uint8_t b) const { return byte_ids_[b]; }

 private:
  struct MergeInfo {
    int rank;
    int new_id;
  };
  static uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
  const MergeInfo* find_merge(int a, int b) const;

  std::vector<std::string> tokens_;
  BpeStringMap<int> vocab_;
  std::unordered_map<uint64_t, MergeInfo> merges_;
  int byte_ids_[256];
  int unk_id_ = -1;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
};

// Word -> ids cache guarded by a mutex; bounded (cleared when it grows past
// max_entries) so memory stays small on long runs.
class BpeWordCache {
 public:
  explicit BpeWordCache(size_t max_entries = 1 << 18) : max_entries_(max_entries) {}
  // Appends the cached ids to out and returns true on a hit.
  bool lookup(std::string_view word, std::vector<int>& out) const;
  void insert(std::string_view word, const int* ids, size_t n);

 private:
  size_t max_entries_;
  mutable std::mutex mu_;
  BpeStringMap<std::vector<int>> map_;
};

}  // namespace bwla
