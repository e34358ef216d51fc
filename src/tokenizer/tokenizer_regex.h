// Thin PCRE2 wrapper used by the tokenizer pre-tokenizers: UTF-8 + Unicode
// properties (UCP), tolerant of invalid UTF-8, JIT-compiled when available.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bwla {

class TokRegex {
 public:
  // Compiles pattern; throws bwla::Error mentioning `context` (file/key) on a
  // bad pattern.
  TokRegex(const std::string& pattern, const std::string& context);
  ~TokRegex();
  TokRegex(const TokRegex&) = delete;
  TokRegex& operator=(const TokRegex&) = delete;

  // Appends the [begin, end) byte ranges of all non-overlapping, non-empty
  // matches in text, left to right. Safe to call from several threads.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }
  bool jit() const { return jit_; }

  // Pattern matching the literal string s.
  static std::string quote(const std::string& s);

 private:
  std::string pattern_;
  std::string context_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace bwla
