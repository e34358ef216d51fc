// Added / special tokens of a tokenizer.json ("added_tokens"): matched
// literally in the raw input (leftmost, longest first) before normalization
// and pre-tokenization.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"

namespace bwla {

struct AddedToken {
  int id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;  // swallow whitespace before the match
  bool rstrip = false;  // swallow whitespace after the match
};

class TokAddedTokens {
 public:
  // j: the "added_tokens" array (may be null). Throws bwla::Error naming file.
  static TokAddedTokens from_json(const json& j, const std::string& file);

  struct Segment {
    size_t begin, end;  // byte range in the input
    int id;             // added token id, or -1 for ordinary text
  };
  // Covers text with segments in order; ordinary-text segments are non-empty.
  void split(std::string_view text, std::vector<Segment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  // Id of the added token with this content, or -1.
  int find(std::string_view content) const;
  int max_id() const;

 private:
  std::vector<AddedToken> tokens_;
  // For each first byte, indices into tokens_ sorted by decreasing length.
  std::vector<std::vector<int>> by_first_byte_;
};

}  // namespace bwla
