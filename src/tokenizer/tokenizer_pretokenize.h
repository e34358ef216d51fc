// The text stages of a Hugging Face tokenizer.json ahead of the BPE model:
// normalizer (Prepend / Replace / Strip / NFC, possibly in a Sequence) and
// pre-tokenizer (ByteLevel, Split, Digits, Metaspace, Whitespace[Split],
// possibly in a Sequence), each turning one text segment into word pieces.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"
#include "tokenizer/tokenizer_regex.h"

namespace bwla {

// Replaces every occurrence of `from` in s by `to`, left to right, without
// rescanning what was put in (an empty `from` changes nothing).
void replace_all(std::string& s, const std::string& from, const std::string& to);

class TokNormalizer {
 public:
  // j may be null (identity). Throws bwla::Error naming `file` for unknown types.
  static TokNormalizer from_json(const json& j, const std::string& file);
  std::string apply(std::string_view text) const;
  bool empty() const { return ops_.empty(); }
  // True if some op prepends text (e.g. the SentencePiece "▁").
  bool prepends() const;

 private:
  struct Op {
    enum Kind { Prepend, Replace, ReplaceRegex, Strip } kind = Prepend;
    std::string a, b;  // Prepend: a = text; Replace: a -> b
    bool left = false, right = false;
    std::shared_ptr<TokRegex> re;
  };
  static void parse(const json& j, const std::string& file, std::vector<Op>& ops);
  std::vector<Op> ops_;
};

// The GPT-2 pre-tokenization regex used by ByteLevel(use_regex = true).
extern const char* const kGpt2SplitPattern;

class TokPreTokenizer {
 public:
  static TokPreTokenizer from_json(const json& j, const std::string& file);
  // Splits one (normalized) segment into non-empty pieces appended to out.
  // at_start: the segment begins the input (for Metaspace prepend_scheme "first").
  void split(std::string_view text, bool at_start, std::vector<std::string>& out) const;
  bool has_byte_level() const;
  bool has_metaspace() const;
  // Metaspace prepend scheme of the last Metaspace stage: "always"/"first"/"never" ("" if none).
  std::string metaspace_prepend() const;

 private:
  enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
  struct Stage {
    enum Kind { RegexSplit, ByteLevel, Metaspace } kind = RegexSplit;
    std::shared_ptr<TokRegex> re;  // RegexSplit, ByteLevel (null if use_regex = false)
    Behavior behavior = Behavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    std::string replacement;        // Metaspace
    std::string prepend = "always"; // Metaspace
    bool ms_split = true;           // Metaspace
  };
  static void parse(const json& j, const std::string& file, std::vector<Stage>& stages);
  static void split_regex(const TokRegex& re, Behavior behavior, bool invert, std::string_view text,
                          std::vector<std::string>& out);
  void apply_stage(const Stage& st, std::string_view piece, bool first, std::vector<std::string>& out) const;
  std::vector<Stage> stages_;
};

}  // namespace bwla
