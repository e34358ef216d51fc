// Byte-level BPE (GPT-2 / SmolLM / Qwen / Llama-3): input bytes are mapped to
// printable code points (the GPT-2 byte<->unicode table), split by the
// pre-tokenizer regex and merged by rank; decode maps code points back to bytes.
#pragma once
#include <cstdint>
#include <string>

#include "tokenizer/tokenizer_bpe_base.h"

namespace bwla {

class ByteLevelBpeTokenizer final : public BpeTokenizerBase {
 public:
  // root: a parsed tokenizer.json; file names it in errors.
  ByteLevelBpeTokenizer(const json& root, const std::string& file);
  std::string kind() const override { return "bpe-bytelevel"; }

  // The GPT-2 table: the code point byte b is written as in vocab strings.
  static uint32_t byte_to_codepoint(uint8_t b);
  // Inverse of byte_to_codepoint; -1 for code points outside the table.
  static int codepoint_to_byte(uint32_t cp);

 protected:
  void word_symbols(std::string_view piece, std::vector<int>& syms) const override;
  int whole_word_id(std::string_view piece) const override;
  std::string model_token_bytes(int id, const std::string& token) const override;

 private:
  int byte_ids_[256];  // vocab id of each single-byte token, -1 if absent
};

}  // namespace bwla
