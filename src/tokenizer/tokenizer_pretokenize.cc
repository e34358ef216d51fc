#include "tokenizer/tokenizer_pretokenize.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"

namespace bwla {

const char* const kGpt2SplitPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

namespace {

std::string type_of(const json& j, const std::string& file, const char* what) {
  BWLA_CHECK(j.is_object(), "'{}': {} must be an object, got {}", file, what, j.dump());
  auto it = j.find("type");
  BWLA_CHECK(it != j.end() && it->is_string(), "'{}': {} has no \"type\"", file, what);
  return it->get<std::string>();
}

std::string str_field(const json& j, const char* key, const std::string& file, const char* what,
                      const std::string& dflt = {}) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  BWLA_CHECK(it->is_string(), "'{}': {}.{} must be a string", file, what, key);
  return it->get<std::string>();
}

bool bool_field(const json& j, const char* key, const std::string& file, const char* what,
                bool dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  BWLA_CHECK(it->is_boolean(), "'{}': {}.{} must be a boolean", file, what, key);
  return it->get<bool>();
}

// {"String": s} -> quoted regex; {"Regex": r} -> r.
std::string pattern_of(const json& j, const std::string& file, const char* what) {
  auto it = j.find("pattern");
  BWLA_CHECK(it != j.end() && it->is_object(), "'{}': {} has no \"pattern\" object", file, what);
  if (it->contains("String") && (*it)["String"].is_string())
    return TokRegex::quote((*it)["String"].get<std::string>());
  if (it->contains("Regex") && (*it)["Regex"].is_string()) return (*it)["Regex"].get<std::string>();
  fail("'{}': {}.pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}", file, what,
       it->dump());
}

bool is_space_byte(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

}  // namespace

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  if (pos == 0) return;
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

// ---------------------------------------------------------------- normalizer

void TokNormalizer::parse(const json& j, const std::string& file, std::vector<Op>& ops) {
  if (j.is_null()) return;
  std::string type = type_of(j, file, "normalizer");
  if (type == "Sequence") {
    auto it = j.find("normalizers");
    BWLA_CHECK(it != j.end() && it->is_array(), "'{}': normalizer Sequence has no \"normalizers\"",
               file);
    for (const auto& sub : *it) parse(sub, file, ops);
  } else if (type == "Prepend") {
    Op op;
    op.kind = Op::Prepend;
    op.a = str_field(j, "prepend", file, "normalizer Prepend");
    ops.push_back(std::move(op));
  } else if (type == "Replace") {
    const json& pat = j.value("pattern", json());
    std::string content = str_field(j, "content", file, "normalizer Replace");
    if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
      Op op;
      op.kind = Op::Replace;
      op.a = pat["String"].get<std::string>();
      op.b = content;
      ops.push_back(std::move(op));
    } else {
      Op op;
      op.kind = Op::ReplaceRegex;
      op.b = content;
      op.re = std::make_shared<TokRegex>(pattern_of(j, file, "normalizer Replace"),
                                         fmt::format("'{}': normalizer Replace", file));
      ops.push_back(std::move(op));
    }
  } else if (type == "Strip") {
    Op op;
    op.kind = Op::Strip;
    op.left = bool_field(j, "strip_left", file, "normalizer Strip", true);
    op.right = bool_field(j, "strip_right", file, "normalizer Strip", true);
    ops.push_back(std::move(op));
  } else if (type == "NFC" || type == "NFKC") {
    // Identity for text already in NFC (virtually all real text); not implemented.
    log_warn("'{}': normalizer {} is not applied (input assumed already normalized)", file, type);
  } else {
    fail("'{}': unsupported tokenizer kind: normalizer type '{}'", file, type);
  }
}

TokNormalizer TokNormalizer::from_json(const json& j, const std::string& file) {
  TokNormalizer n;
  parse(j, file, n.ops_);
  return n;
}

bool TokNormalizer::prepends() const {
  return std::any_of(ops_.begin(), ops_.end(),
                     [](const Op& op) { return op.kind == Op::Prepend && !op.a.empty(); });
}

std::string TokNormalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const auto& op : ops_) {
    switch (op.kind) {
      case Op::Prepend:
        if (!s.empty()) s.insert(0, op.a);
        break;
      case Op::Replace:
        replace_all(s, op.a, op.b);
        break;
      case Op::ReplaceRegex: {
        std::vector<std::pair<size_t, size_t>> m;
        op.re->find_all(s, m);
        if (m.empty()) break;
        std::string out;
        size_t pos = 0;
        for (auto [b, e] : m) {
          out.append(s, pos, b - pos);
          out += op.b;
          pos = e;
        }
        out.append(s, pos, std::string::npos);
        s.swap(out);
        break;
      }
      case Op::Strip: {
        size_t b = 0, e = s.size();
        if (op.left)
          while (b < e && is_space_byte((unsigned char)s[b])) ++b;
        if (op.right)
          while (e > b && is_space_byte((unsigned char)s[e - 1])) --e;
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  return s;
}

// ------------------------------------------------------------- pre-tokenizer

void TokPreTokenizer::parse(const json& j, const std::string& file, std::vector<Stage>& stages) {
  if (j.is_null()) return;
  std::string type = type_of(j, file, "pre_tokenizer");
  const std::string ctx = fmt::format("'{}': pre_tokenizer {}", file, type);
  if (type == "Sequence") {
    auto it = j.find("pretokenizers");
    BWLA_CHECK(it != j.end() && it->is_array(),
               "'{}': pre_tokenizer Sequence has no \"pretokenizers\"", file);
    for (const auto& sub : *it) parse(sub, file, stages);
  } else if (type == "ByteLevel") {
    Stage st;
    st.kind = Stage::ByteLevel;
    st.add_prefix_space = bool_field(j, "add_prefix_space", file, "pre_tokenizer ByteLevel", true);
    if (bool_field(j, "use_regex", file, "pre_tokenizer ByteLevel", true))
      st.re = std::make_shared<TokRegex>(kGpt2SplitPattern, ctx);
    stages.push_back(std::move(st));
  } else if (type == "Split") {
    Stage st;
    st.kind = Stage::RegexSplit;
    st.re = std::make_shared<TokRegex>(pattern_of(j, file, "pre_tokenizer Split"), ctx);
    std::string b = str_field(j, "behavior", file, "pre_tokenizer Split", "Isolated");
    if (b == "Removed") st.behavior = Behavior::Removed;
    else if (b == "Isolated") st.behavior = Behavior::Isolated;
    else if (b == "MergedWithPrevious") st.behavior = Behavior::MergedWithPrevious;
    else if (b == "MergedWithNext") st.behavior = Behavior::MergedWithNext;
    else if (b == "Contiguous") st.behavior = Behavior::Contiguous;
    else fail("'{}': pre_tokenizer Split: unknown behavior '{}'", file, b);
    st.invert = bool_field(j, "invert", file, "pre_tokenizer Split", false);
    stages.push_back(std::move(st));
  } else if (type == "Digits") {
    Stage st;
    st.kind = Stage::RegexSplit;
    bool individual = bool_field(j, "individual_digits", file, "pre_tokenizer Digits", false);
    st.re = std::make_shared<TokRegex>(individual ? "\\p{N}" : "\\p{N}+", ctx);
    stages.push_back(std::move(st));
  } else if (type == "Whitespace") {
    Stage st;
    st.kind = Stage::RegexSplit;
    st.re = std::make_shared<TokRegex>("\\w+|[^\\w\\s]+", ctx);
    st.behavior = Behavior::Removed;
    st.invert = true;
    stages.push_back(std::move(st));
  } else if (type == "WhitespaceSplit") {
    Stage st;
    st.kind = Stage::RegexSplit;
    st.re = std::make_shared<TokRegex>("\\s+", ctx);
    st.behavior = Behavior::Removed;
    stages.push_back(std::move(st));
  } else if (type == "Metaspace") {
    Stage st;
    st.kind = Stage::Metaspace;
    st.replacement = str_field(j, "replacement", file, "pre_tokenizer Metaspace", "\u2581");
    BWLA_CHECK(!st.replacement.empty(), "'{}': pre_tokenizer Metaspace: empty replacement", file);
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      st.prepend = str_field(j, "prepend_scheme", file, "pre_tokenizer Metaspace");
      BWLA_CHECK(st.prepend == "always" || st.prepend == "first" || st.prepend == "never",
                 "'{}': pre_tokenizer Metaspace: unknown prepend_scheme '{}'", file, st.prepend);
    } else {
      st.prepend =
          bool_field(j, "add_prefix_space", file, "pre_tokenizer Metaspace", true) ? "always" : "never";
    }
    st.ms_split = bool_field(j, "split", file, "pre_tokenizer Metaspace", true);
    stages.push_back(std::move(st));
  } else {
    fail("'{}': unsupported tokenizer kind: pre_tokenizer type '{}'", file, type);
  }
}

TokPreTokenizer TokPreTokenizer::from_json(const json& j, const std::string& file) {
  TokPreTokenizer p;
  parse(j, file, p.stages_);
  return p;
}

bool TokPreTokenizer::has_byte_level() const {
  return std::any_of(stages_.begin(), stages_.end(),
                     [](const Stage& st) { return st.kind == Stage::ByteLevel; });
}

bool TokPreTokenizer::has_metaspace() const { return !metaspace_prepend().empty(); }

std::string TokPreTokenizer::metaspace_prepend() const {
  std::string r;
  for (const auto& st : stages_)
    if (st.kind == Stage::Metaspace) r = st.prepend;
  return r;
}

void TokPreTokenizer::split_regex(const TokRegex& re, Behavior behavior, bool invert,
                                  std::string_view text, std::vector<std::string>& out) {
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all(text, m);
  // Cover the text with (begin, end, is_delimiter) regions.
  struct Region {
    size_t b, e;
    bool delim;
  };
  std::vector<Region> regions;
  regions.reserve(2 * m.size() + 1);
  size_t pos = 0;
  for (auto [b, e] : m) {
    if (b > pos) regions.push_back({pos, b, invert});
    regions.push_back({b, e, !invert});
    pos = e;
  }
  if (pos < text.size()) regions.push_back({pos, text.size(), invert});

  std::vector<std::pair<size_t, size_t>> pieces;
  switch (behavior) {
    case Behavior::Isolated:
      for (const auto& r : regions) pieces.emplace_back(r.b, r.e);
      break;
    case Behavior::Removed:
      for (const auto& r : regions)
        if (!r.delim) pieces.emplace_back(r.b, r.e);
      break;
    case Behavior::MergedWithPrevious: {
      bool prev_delim = false;
      for (const auto& r : regions) {
        if (r.delim && !prev_delim && !pieces.empty()) pieces.back().second = r.e;
        else pieces.emplace_back(r.b, r.e);
        prev_delim = r.delim;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool next_delim = false;
      for (size_t i = regions.size(); i-- > 0;) {
        const auto& r = regions[i];
        if (r.delim && !next_delim && !pieces.empty()) pieces.back().first = r.b;
        else pieces.emplace_back(r.b, r.e);
        next_delim = r.delim;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
    case Behavior::Contiguous: {
      bool have_prev = false, prev_delim = false;
      for (const auto& r : regions) {
        if (have_prev && r.delim && prev_delim) pieces.back().second = r.e;
        else pieces.emplace_back(r.b, r.e);
        have_prev = true;
        prev_delim = r.delim;
      }
      break;
    }
  }
  for (auto [b, e] : pieces)
    if (e > b) out.emplace_back(text.substr(b, e - b));
}

void TokPreTokenizer::apply_stage(const Stage& st, std::string_view piece, bool first,
                                  std::vector<std::string>& out) const {
  switch (st.kind) {
    case Stage::RegexSplit:
      split_regex(*st.re, st.behavior, st.invert, piece, out);
      break;
    case Stage::ByteLevel: {
      std::string s;
      std::string_view v = piece;
      if (st.add_prefix_space && (piece.empty() || piece[0] != ' ')) {
        s.reserve(piece.size() + 1);
        s += ' ';
        s += piece;
        v = s;
      }
      if (st.re) split_regex(*st.re, Behavior::Isolated, false, v, out);
      else if (!v.empty()) out.emplace_back(v);
      break;
    }
    case Stage::Metaspace: {
      std::string s(piece);
      replace_all(s, " ", st.replacement);
      bool starts = s.compare(0, st.replacement.size(), st.replacement) == 0;
      if (!starts && (st.prepend == "always" || (st.prepend == "first" && first)))
        s.insert(0, st.replacement);
      if (!st.ms_split) {
        if (!s.empty()) out.push_back(std::move(s));
      } else {
        // Split before every replacement (MergedWithNext on the literal).
        size_t b = 0;
        for (size_t hit = s.find(st.replacement, 1); hit != std::string::npos;
             hit = s.find(st.replacement, hit + st.replacement.size())) {
          out.emplace_back(s.substr(b, hit - b));
          b = hit;
        }
        if (b < s.size()) out.emplace_back(s.substr(b));
      }
      break;
    }
  }
}

void TokPreTokenizer::split(std::string_view text, bool at_start,
                            std::vector<std::string>& out) const {
  if (text.empty()) return;
  if (stages_.empty()) {
    out.emplace_back(text);
    return;
  }
  std::vector<std::string> cur, nxt;
  apply_stage(stages_[0], text, at_start, cur);
  for (size_t i = 1; i < stages_.size(); ++i) {
    nxt.clear();
    for (size_t k = 0; k < cur.size(); ++k) apply_stage(stages_[i], cur[k], at_start && k == 0, nxt);
    cur.swap(nxt);
  }
  for (auto& p : cur) out.push_back(std::move(p));
}

}  // namespace bwla
