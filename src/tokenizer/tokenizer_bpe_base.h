// Shared machinery of the BPE tokenizer kinds: added-token splitting,
// normalizer, pre-tokenizer, cached per-word BPE, BOS/EOS handling and
// decode-by-concatenation. Subclasses supply the initial symbols of a word
// and the bytes each vocabulary token stands for.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"
#include "tokenizer/bpe_merges.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_added.h"
#include "tokenizer/tokenizer_pretokenize.h"

namespace bwla {

class BpeTokenizerBase : public Tokenizer {
 public:
  // Ids added around every encode(text, true): prefix (BOS) and suffix (EOS).
  struct Specials {
    int bos = -1;
    int eos = -1;
    std::vector<int> prefix;
    std::vector<int> suffix;
  };

  std::vector<int> encode(const std::string& text, bool add_special = true) const override;
  std::string decode(const std::vector<int>& ids, bool skip_special = false) const override;
  std::string token_bytes(int id) const override;
  int vocab_size() const override { return (int)token_bytes_.size(); }
  int bos_id() const override { return specials_.bos; }
  int eos_id() const override { return specials_.eos; }
  bool adds_bos() const override { return !specials_.prefix.empty(); }

  const Specials& specials() const { return specials_; }
  void set_specials(Specials s);
  // Id of a token given its tokenizer.json string (added tokens first, then
  // the BPE vocabulary); -1 if absent.
  int token_id(std::string_view token) const;
  // The token's string as written in tokenizer.json.
  std::string token_string(int id) const;
  bool is_special(int id) const { return id >= 0 && id < vocab_size() && special_[(size_t)id]; }
  const BpeModel& bpe() const { return bpe_; }
  const std::string& source() const { return file_; }

 protected:
  // Parses model, added_tokens, normalizer and pre_tokenizer of root.
  BpeTokenizerBase(const json& root, const std::string& file);
  // Must be called at the end of the subclass constructor (uses the virtuals).
  void finish_init();

  // Appends the initial (pre-merge) symbol ids of one pre-tokenized piece.
  virtual void word_symbols(std::string_view piece, std::vector<int>& syms) const = 0;
  // Id of the whole piece as one vocabulary token (for ignore_merges), or -1.
  virtual int whole_word_id(std::string_view piece) const = 0;
  // The bytes a model vocabulary token stands for in decoded text.
  virtual std::string model_token_bytes(int id, const std::string& token) const = 0;
  // Final fix-up of decoded text (e.g. stripping the prepended space).
  virtual void finish_decode(std::string& text) const {}

  // Pushes unk for an unknown character honouring fuse_unk; drops it if the
  // model has no unk token.
  void push_unknown(std::vector<int>& syms, bool& prev_unk) const;

  std::string file_;
  BpeModel bpe_;
  TokAddedTokens added_;
  TokNormalizer normalizer_;
  TokPreTokenizer pretok_;

 private:
  void encode_piece(std::string_view piece, std::vector<int>& out,
                    std::vector<int>& scratch) const;

  std::vector<std::string> token_bytes_;  // indexed by id (model + added)
  std::vector<char> special_;
  Specials specials_;
  mutable BpeWordCache cache_;
};

}  // namespace bwla
