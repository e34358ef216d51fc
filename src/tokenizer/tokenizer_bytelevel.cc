#include "tokenizer/tokenizer_bytelevel.h"

#include <array>

#include "core/error.h"
#include "core/log.h"

namespace bwla {

namespace {

bool printable_byte(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct ByteTable {
  std::array<uint32_t, 256> to_cp;
  std::array<int, 512> from_cp;  // code point -> byte, -1 if none
  ByteTable() {
    from_cp.fill(-1);
    uint32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      to_cp[(size_t)b] = printable_byte(b) ? (uint32_t)b : extra++;
      from_cp[to_cp[(size_t)b]] = b;
    }
  }
};
const ByteTable& byte_table() {
  static const ByteTable t;
  return t;
}

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += (char)cp;
  } else if (cp < 0x800) {
    s += (char)(0xC0 | (cp >> 6));
    s += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += (char)(0xE0 | (cp >> 12));
    s += (char)(0x80 | ((cp >> 6) & 0x3F));
    s += (char)(0x80 | (cp & 0x3F));
  } else {
    s += (char)(0xF0 | (cp >> 18));
    s += (char)(0x80 | ((cp >> 12) & 0x3F));
    s += (char)(0x80 | ((cp >> 6) & 0x3F));
    s += (char)(0x80 | (cp & 0x3F));
  }
}

// Decodes one UTF-8 code point at s[i], advancing i; returns -1 (and
// advances one byte) for an invalid sequence.
int64_t next_codepoint(const std::string& s, size_t& i) {
  unsigned char c = (unsigned char)s[i];
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + (size_t)len > s.size()) {
    ++i;
    return -1;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    unsigned char d = (unsigned char)s[i + (size_t)k];
    if ((d & 0xC0) != 0x80) {
      ++i;
      return -1;
    }
    cp = (cp << 6) | (d & 0x3F);
  }
  i += (size_t)len;
  return cp;
}

}  // namespace

uint32_t ByteLevelBpeTokenizer::byte_to_codepoint(uint8_t b) { return byte_table().to_cp[b]; }

int ByteLevelBpeTokenizer::codepoint_to_byte(uint32_t cp) {
  return cp < 512 ? byte_table().from_cp[cp] : -1;
}

ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(const json& root, const std::string& file)
    : BpeTokenizerBase(root, file) {
  int missing = 0;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(s, byte_to_codepoint((uint8_t)b));
    byte_ids_[b] = bpe_.find(s);
    if (byte_ids_[b] < 0) ++missing;
  }
  // Common (e.g. SmolLM lacks bytes that never occur in UTF-8 text); such
  // bytes encode to unk, or are dropped when the model has none.
  if (missing > 0)
    log_debug("'{}': {} of 256 byte-level base tokens are missing from the vocab", file, missing);
  finish_init();
}

void ByteLevelBpeTokenizer::word_symbols(std::string_view piece, std::vector<int>& syms) const {
  bool prev_unk = false;
  for (char c : piece) {
    int id = byte_ids_[(unsigned char)c];
    if (id >= 0) {
      syms.push_back(id);
      prev_unk = false;
    } else {
      push_unknown(syms, prev_unk);
    }
  }
}

int ByteLevelBpeTokenizer::whole_word_id(std::string_view piece) const {
  std::string s;
  s.reserve(piece.size() * 2);
  for (char c : piece) append_utf8(s, byte_to_codepoint((uint8_t)c));
  return bpe_.find(s);
}

std::string ByteLevelBpeTokenizer::model_token_bytes(int id, const std::string& token) const {
  std::string out;
  out.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    size_t start = i;
    int64_t cp = next_codepoint(token, i);
    int b = cp < 0 ? -1 : codepoint_to_byte((uint32_t)cp);
    if (b >= 0) out += (char)b;
    else out.append(token, start, i - start);  // not byte-level encoded: keep as is
  }
  return out;
}

}  // namespace bwla
