#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/tokenizer_regex.h"

#include <pcre2.h>

#include "core/error.h"

namespace bwla {

namespace {
std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof(buf));
  return n < 0 ? fmt::format("PCRE2 error {}", code) : std::string((const char*)buf, (size_t)n);
}
}  // namespace

TokRegex::TokRegex(const std::string& pattern, const std::string& context)
    : pattern_(pattern), context_(context) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile((PCRE2_SPTR)pattern.data(), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off,
                                   nullptr);
  BWLA_CHECK(code != nullptr, "{}: cannot compile regex /{}/ at offset {}: {}", context, pattern,
             (size_t)err_off, pcre2_message(err));
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

TokRegex::~TokRegex() { pcre2_code_free((pcre2_code*)code_); }

std::string TokRegex::quote(const std::string& s) {
  std::string out;
  for (char c : s) {
    unsigned char u = (unsigned char)c;
    if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u >= 0x80 ||
        u == ' ' || u == '_') {
      out += c;
    } else {
      out += fmt::format("\\x{{{:02x}}}", u);
    }
  }
  return out;
}

void TokRegex::find_all(std::string_view text,
                        std::vector<std::pair<size_t, size_t>>& out) const {
  const pcre2_code* code = (const pcre2_code*)code_;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  BWLA_ASSERT(md != nullptr, "pcre2_match_data_create failed for {}", context_);
  size_t pos = 0;
  const size_t n = text.size();
  while (pos <= n) {
    uint32_t opts = 0;
    int rc = pcre2_match(code, (PCRE2_SPTR)text.data(), n, pos, opts, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code, (PCRE2_SPTR)text.data(), n, pos, PCRE2_NO_JIT, md, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      fail("{}: regex /{}/ failed on input: {}", context_, pattern_, pcre2_message(rc));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      // Empty match: step over one UTF-8 character.
      pos = b + 1;
      while (pos < n && ((unsigned char)text[pos] & 0xC0) == 0x80) ++pos;
    }
  }
  pcre2_match_data_free(md);
}

}  // namespace bwla
