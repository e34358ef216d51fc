// Tokenizers loaded from a Hugging Face tokenizer.json: byte-level BPE
// (GPT-2 / SmolLM / Qwen / Llama-3) and SentencePiece-style BPE with byte
// fallback (Llama-2, stories260K).
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace bwla {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads DIR/tokenizer.json (+ tokenizer_config.json, config.json and
  // generation_config.json when present, for BOS/EOS and add_bos defaults).
  // Throws bwla::Error naming the file for anything unreadable or unknown.
  static std::unique_ptr<Tokenizer> load_dir(const std::string& dir);
  // Loads one tokenizer.json file (no side config files).
  static std::unique_ptr<Tokenizer> load_file(const std::string& tokenizer_json);

  // Encodes text. add_special: prepend BOS when the tokenizer's convention
  // is to add it (Llama/SentencePiece: yes; GPT-2 style: per config).
  // Special/added tokens written literally in the text are matched as such.
  virtual std::vector<int> encode(const std::string& text, bool add_special = true) const = 0;
  // Exact inverse of encode for ordinary text (special tokens rendered as
  // their content unless skip_special).
  virtual std::string decode(const std::vector<int>& ids, bool skip_special = false) const = 0;
  // The raw bytes of one token as they appear in decoded text (no leading-space
  // stripping); used for streaming output and byte-length normalisation.
  virtual std::string token_bytes(int id) const = 0;

  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 if none
  virtual int eos_id() const = 0;  // -1 if none
  virtual bool adds_bos() const = 0;
  // "bpe-bytelevel" or "bpe-sentencepiece"
  virtual std::string kind() const = 0;
};

// Throws unless every id the tokenizer can produce is a row of the model's
// embedding table (checked when both are loaded, not at the first such token).
void check_tokenizer_vocab(const Tokenizer& tok, int model_vocab, const std::string& dir);

// Length of the longest prefix of s that does not end inside a UTF-8
// sequence: what a token stream can show before the next token completes it.
size_t complete_utf8_prefix(const std::string& s);

}  // namespace bwla
