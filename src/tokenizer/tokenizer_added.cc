#include "tokenizer/tokenizer_added.h"

#include <algorithm>

#include "core/error.h"
#include "io/json.h"

namespace bwla {

namespace {
bool is_ws(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
}  // namespace

TokAddedTokens TokAddedTokens::from_json(const json& j, const std::string& file) {
  TokAddedTokens at;
  at.by_first_byte_.resize(256);
  if (j.is_null()) return at;
  BWLA_CHECK(j.is_array(), "'{}': \"added_tokens\" must be an array", file);
  for (size_t i = 0; i < j.size(); ++i) {
    const json& e = j[i];
    BWLA_CHECK(e.is_object() && e.contains("id") && json_is_int(e["id"]) &&
                   e.contains("content") && e["content"].is_string(),
               "'{}': added_tokens[{}] needs an integer \"id\" and a string \"content\"", file, i);
    AddedToken t;
    t.id = (int)e["id"].get<int64_t>();
    BWLA_CHECK(t.id >= 0 && t.id < (1 << 28), "'{}': added_tokens[{}].id = {} is out of range",
               file, i, t.id);
    t.content = e["content"].get<std::string>();
    BWLA_CHECK(!t.content.empty(), "'{}': added_tokens[{}] has empty content", file, i);
    auto flag = [&](const char* k) { return e.contains(k) && e[k].is_boolean() && e[k].get<bool>(); };
    t.special = flag("special");
    t.lstrip = flag("lstrip");
    t.rstrip = flag("rstrip");
    at.tokens_.push_back(std::move(t));
  }
  for (size_t i = 0; i < at.tokens_.size(); ++i)
    at.by_first_byte_[(unsigned char)at.tokens_[i].content[0]].push_back((int)i);
  for (auto& v : at.by_first_byte_)
    std::stable_sort(v.begin(), v.end(), [&](int a, int b) {
      return at.tokens_[(size_t)a].content.size() > at.tokens_[(size_t)b].content.size();
    });
  return at;
}

int TokAddedTokens::find(std::string_view content) const {
  for (const auto& t : tokens_)
    if (t.content == content) return t.id;
  return -1;
}

int TokAddedTokens::max_id() const {
  int m = -1;
  for (const auto& t : tokens_) m = std::max(m, t.id);
  return m;
}

void TokAddedTokens::split(std::string_view text, std::vector<Segment>& out) const {
  size_t plain_begin = 0;  // start of the pending ordinary-text segment
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const AddedToken* hit = nullptr;
    if (!tokens_.empty()) {
      for (int k : by_first_byte_[(unsigned char)text[i]]) {
        const AddedToken& t = tokens_[(size_t)k];
        if (text.compare(i, t.content.size(), t.content) == 0) {
          hit = &t;
          break;
        }
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t b = i, e = i + hit->content.size();
    if (hit->lstrip)
      while (b > plain_begin && is_ws((unsigned char)text[b - 1])) --b;
    if (hit->rstrip)
      while (e < n && is_ws((unsigned char)text[e])) ++e;
    if (b > plain_begin) out.push_back({plain_begin, b, -1});
    out.push_back({b, e, hit->id});
    plain_begin = i = e;
  }
  if (plain_begin < n) out.push_back({plain_begin, n, -1});
}

}  // namespace bwla
