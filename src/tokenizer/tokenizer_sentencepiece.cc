#include "tokenizer/tokenizer_sentencepiece.h"

#include "core/error.h"
#include "io/json.h"
#include "tokenizer/tokenizer_pretokenize.h"

namespace bwla {

namespace {

const char* const kSpace = "\u2581";  // "▁"

// Byte length of the UTF-8 character starting at s[i] (1 for invalid bytes).
size_t utf8_char_len(std::string_view s, size_t i) {
  unsigned char c = (unsigned char)s[i];
  size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (len == 1 || i + len > s.size()) return 1;
  for (size_t k = 1; k < len; ++k)
    if (((unsigned char)s[i + k] & 0xC0) != 0x80) return 1;
  return len;
}

uint32_t pack(std::string_view ch) {
  uint32_t key = 0;
  for (size_t k = 0; k < ch.size(); ++k) key |= (uint32_t)(unsigned char)ch[k] << (8 * k);
  return key;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

SentencePieceBpeTokenizer::SentencePieceBpeTokenizer(const json& root, const std::string& file)
    : BpeTokenizerBase(root, file) {
  for (int id = 0; id < bpe_.size(); ++id) {
    const std::string& t = bpe_.token(id);
    if (!t.empty() && t.size() <= 4 && utf8_char_len(t, 0) == t.size()) char_ids_.emplace(pack(t), id);
  }
  auto it = root.find("decoder");
  if (it == root.end() || it->is_null()) {
    replacements_.emplace_back(kSpace, " ");
    byte_tokens_decode_ = bpe_.byte_fallback();
  } else {
    parse_decoder(*it);
  }
  finish_init();
}

void SentencePieceBpeTokenizer::parse_decoder(const json& d) {
  BWLA_CHECK(d.is_object() && d.contains("type") && d["type"].is_string(),
             "'{}': decoder must be an object with a \"type\"", file_);
  const std::string type = d["type"].get<std::string>();
  if (type == "Sequence") {
    BWLA_CHECK(d.contains("decoders") && d["decoders"].is_array(),
               "'{}': decoder Sequence has no \"decoders\" array", file_);
    for (const auto& sub : d["decoders"]) parse_decoder(sub);
  } else if (type == "Replace") {
    const json& pat = d.value("pattern", json());
    BWLA_CHECK(pat.is_object() && pat.contains("String") && pat["String"].is_string() &&
                   d.contains("content") && d["content"].is_string(),
               "'{}': decoder Replace needs pattern {{\"String\": ...}} and \"content\"", file_);
    replacements_.emplace_back(pat["String"].get<std::string>(), d["content"].get<std::string>());
  } else if (type == "ByteFallback") {
    byte_tokens_decode_ = true;
  } else if (type == "Fuse") {
    // Concatenation is what decode does anyway.
  } else if (type == "Strip") {
    std::string content = d.value("content", std::string(" "));
    BWLA_CHECK(content.size() == 1, "'{}': decoder Strip with content '{}' is unsupported", file_,
               content);
    strip_char_ = content[0];
    auto int_field = [&](const char* key) {
      auto f = d.find(key);
      return f == d.end() ? 0 : json_int(*f, fmt::format("'{}': decoder Strip.{}", file_, key));
    };
    strip_ = int_field("start");
    int stop = int_field("stop");
    BWLA_CHECK(stop == 0, "'{}': decoder Strip with stop = {} is unsupported", file_, stop);
  } else if (type == "Metaspace") {
    std::string rep = d.value("replacement", std::string(kSpace));
    replacements_.emplace_back(rep, " ");
    std::string scheme;
    if (d.contains("prepend_scheme") && d["prepend_scheme"].is_string())
      scheme = d["prepend_scheme"].get<std::string>();
    else
      scheme = d.value("add_prefix_space", true) ? "always" : "never";
    if (scheme != "never") {
      strip_ = 1;
      strip_char_ = ' ';
    }
  } else {
    fail("'{}': unsupported tokenizer kind: decoder type '{}' in a SentencePiece-style tokenizer",
         file_, type);
  }
}

void SentencePieceBpeTokenizer::word_symbols(std::string_view piece,
                                             std::vector<int>& syms) const {
  bool prev_unk = false;
  for (size_t i = 0; i < piece.size();) {
    size_t len = utf8_char_len(piece, i);
    std::string_view ch = piece.substr(i, len);
    i += len;
    auto it = char_ids_.find(pack(ch));
    if (it != char_ids_.end()) {
      syms.push_back(it->second);
      prev_unk = false;
      continue;
    }
    if (bpe_.byte_fallback()) {
      bool all = true;
      for (char c : ch) all = all && bpe_.byte_token((uint8_t)c) >= 0;
      if (all) {
        for (char c : ch) syms.push_back(bpe_.byte_token((uint8_t)c));
        prev_unk = false;
        continue;
      }
    }
    push_unknown(syms, prev_unk);
  }
}

int SentencePieceBpeTokenizer::whole_word_id(std::string_view piece) const {
  return bpe_.find(piece);
}

std::string SentencePieceBpeTokenizer::model_token_bytes(int id, const std::string& token) const {
  if (byte_tokens_decode_ && token.size() == 6 && token.compare(0, 3, "<0x") == 0 &&
      token[5] == '>') {
    int hi = hex_digit(token[3]), lo = hex_digit(token[4]);
    if (hi >= 0 && lo >= 0) return std::string(1, (char)(hi * 16 + lo));
  }
  std::string s = token;
  for (const auto& [from, to] : replacements_) replace_all(s, from, to);
  return s;
}

void SentencePieceBpeTokenizer::finish_decode(std::string& text) const {
  size_t k = 0;
  while (k < (size_t)strip_ && k < text.size() && text[k] == strip_char_) ++k;
  text.erase(0, k);
}

}  // namespace bwla
