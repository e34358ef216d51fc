// SentencePiece-style BPE as exported to tokenizer.json (Llama-2,
// stories260K): "▁" marks spaces (Prepend+Replace normalizer or Metaspace
// pre-tokenizer), characters missing from the vocab fall back to "<0xNN>"
// byte tokens, and the decoder maps "▁" back to " " and strips the space the
// normalizer prepended.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer_bpe_base.h"

namespace bwla {

class SentencePieceBpeTokenizer final : public BpeTokenizerBase {
 public:
  SentencePieceBpeTokenizer(const json& root, const std::string& file);
  std::string kind() const override { return "bpe-sentencepiece"; }
  // Leading spaces the decoder strips from decoded text (usually 1).
  int decode_strip() const { return strip_; }

 protected:
  void word_symbols(std::string_view piece, std::vector<int>& syms) const override;
  int whole_word_id(std::string_view piece) const override;
  std::string model_token_bytes(int id, const std::string& token) const override;
  void finish_decode(std::string& text) const override;

 private:
  void parse_decoder(const json& d);

  // Single-character vocab tokens keyed by their UTF-8 bytes packed in a uint32.
  std::unordered_map<uint32_t, int> char_ids_;
  std::vector<std::pair<std::string, std::string>> replacements_;  // decoder Replace
  bool byte_tokens_decode_ = false;  // decoder ByteFallback: "<0xNN>" -> byte
  int strip_ = 0;                    // decoder Strip start / Metaspace prefix
  char strip_char_ = ' ';
};

}  // namespace bwla
