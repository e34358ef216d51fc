#include "tokenizer/bpe_merges.h"

#include <algorithm>
#include <queue>

#include "core/error.h"
#include "io/json.h"

namespace bwla {

namespace {

// Reads one merge entry as its two token strings.
std::pair<std::string, std::string> parse_merge(const json& m, size_t index,
                                                const std::string& file) {
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    size_t sp = s.find(' ');
    BWLA_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < s.size() &&
                   s.find(' ', sp + 1) == std::string::npos,
               "'{}': model.merges[{}] = \"{}\" is not of the form \"a b\"", file, index, s);
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  BWLA_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
             "'{}': model.merges[{}] must be \"a b\" or [\"a\", \"b\"], got {}", file, index,
             m.dump());
  return {m[0].get<std::string>(), m[1].get<std::string>()};
}

}  // namespace

BpeModel BpeModel::from_json(const json& model, const std::string& file) {
  BWLA_CHECK(model.is_object(), "'{}': \"model\" must be an object", file);
  BpeModel bpe;
  std::fill(std::begin(bpe.byte_ids_), std::end(bpe.byte_ids_), -1);

  auto vit = model.find("vocab");
  BWLA_CHECK(vit != model.end() && vit->is_object(), "'{}': model.vocab missing or not an object",
             file);
  int max_id = -1;
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    BWLA_CHECK(json_is_int(it.value()), "'{}': model.vocab[\"{}\"] is not an integer id", file,
               it.key());
    const int id = (int)it.value().get<int64_t>();
    BWLA_CHECK(id >= 0 && id < (1 << 28), "'{}': model.vocab[\"{}\"] = {} is out of range", file,
               it.key(), id);
    max_id = std::max(max_id, id);
  }
  BWLA_CHECK(max_id >= 0, "'{}': model.vocab is empty", file);
  BWLA_CHECK((int64_t)max_id < (int64_t)vit->size() + kMaxUnusedTokenIds,
             "'{}': model.vocab has {} tokens but ids up to {} (more than {} unused ids)", file,
             vit->size(), max_id, kMaxUnusedTokenIds);
  bpe.tokens_.resize((size_t)max_id + 1);
  bpe.vocab_.reserve(vit->size());
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    int id = it.value().get<int>();
    BWLA_CHECK(bpe.tokens_[(size_t)id].empty(), "'{}': model.vocab id {} is used twice ('{}', '{}')",
               file, id, bpe.tokens_[(size_t)id], it.key());
    bpe.tokens_[(size_t)id] = it.key();
    bpe.vocab_.emplace(it.key(), id);
  }

  auto mit = model.find("merges");
  if (mit != model.end() && !mit->is_null()) {
    BWLA_CHECK(mit->is_array(), "'{}': model.merges must be an array", file);
    bpe.merges_.reserve(mit->size());
    for (size_t i = 0; i < mit->size(); ++i) {
      auto [a, b] = parse_merge((*mit)[i], i, file);
      int ia = bpe.find(a), ib = bpe.find(b);
      BWLA_CHECK(ia >= 0, "'{}': model.merges[{}] references token '{}' not in the vocab", file, i,
                 a);
      BWLA_CHECK(ib >= 0, "'{}': model.merges[{}] references token '{}' not in the vocab", file, i,
                 b);
      int inew = bpe.find(a + b);
      BWLA_CHECK(inew >= 0, "'{}': model.merges[{}] produces '{}' which is not in the vocab", file,
                 i, a + b);
      // First occurrence wins (lowest rank), as in the reference implementation.
      bpe.merges_.emplace(pair_key(ia, ib), MergeInfo{(int)i, inew});
    }
  }

  auto get_bool = [&](const char* key) {
    auto it = model.find(key);
    if (it == model.end() || it->is_null()) return false;
    BWLA_CHECK(it->is_boolean(), "'{}': model.{} must be a boolean", file, key);
    return it->get<bool>();
  };
  bpe.byte_fallback_ = get_bool("byte_fallback");
  bpe.fuse_unk_ = get_bool("fuse_unk");
  bpe.ignore_merges_ = get_bool("ignore_merges");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(key);
    BWLA_CHECK(it == model.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()),
               "'{}': unsupported tokenizer kind: BPE with model.{} set", file, key);
  }
  auto dit = model.find("dropout");
  BWLA_CHECK(dit == model.end() || dit->is_null() || (dit->is_number() && dit->get<double>() == 0.0),
             "'{}': unsupported tokenizer kind: BPE with dropout", file);
  auto uit = model.find("unk_token");
  if (uit != model.end() && !uit->is_null()) {
    BWLA_CHECK(uit->is_string(), "'{}': model.unk_token must be a string", file);
    bpe.unk_id_ = bpe.find(uit->get<std::string>());
    BWLA_CHECK(bpe.unk_id_ >= 0, "'{}': model.unk_token '{}' is not in the vocab", file,
               uit->get<std::string>());
  }
  for (int b = 0; b < 256; ++b) bpe.byte_ids_[b] = bpe.find(fmt::format("<0x{:02X}>", b));
  return bpe;
}

int BpeModel::find(std::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const BpeModel::MergeInfo* BpeModel::find_merge(int a, int b) const {
  auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::merge(std::vector<int>& symbols) const {
  const int n = (int)symbols.size();
  if (n < 2 || merges_.empty()) return;
  if (n == 2) {
    if (const MergeInfo* m = find_merge(symbols[0], symbols[1])) symbols = {m->new_id};
    return;
  }
  // Doubly linked list over positions; a merge keeps the left position alive.
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Cand> heap_storage;
  heap_storage.reserve((size_t)n);
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap(std::greater<Cand>(),
                                                                        std::move(heap_storage));
  auto push_pair = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    if (const MergeInfo* m = find_merge(symbols[left], symbols[next[left]]))
      heap.push({m->rank, left, m->new_id});
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  std::vector<char> alive(n, 1);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    if (!alive[c.pos] || next[c.pos] < 0) continue;
    int right = next[c.pos];
    const MergeInfo* m = find_merge(symbols[c.pos], symbols[right]);
    if (!m || m->new_id != c.new_id) continue;  // stale: a neighbour changed
    symbols[c.pos] = c.new_id;
    alive[right] = 0;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push_pair(prev[c.pos]);
    push_pair(c.pos);
  }
  int w = 0;
  for (int i = 0; i >= 0; i = next[i]) symbols[w++] = symbols[i];
  symbols.resize((size_t)w);
}

bool BpeWordCache::lookup(std::string_view word, std::vector<int>& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(word);
  if (it == map_.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void BpeWordCache::insert(std::string_view word, const int* ids, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (map_.size() >= max_entries_) map_.clear();
  map_.emplace(std::string(word), std::vector<int>(ids, ids + n));
}

}  // namespace bwla
