#include "tokenizer/tokenizer_bpe_base.h"

#include <algorithm>

#include "core/error.h"

namespace bwla {

namespace {
// Pieces longer than this are not cached (whole lines in SentencePiece mode
// are unique, caching them would only cost memory).
constexpr size_t kMaxCachedPiece = 64;

const json& field_or_null(const json& root, const char* key) {
  static const json null_json;
  auto it = root.find(key);
  return it == root.end() ? null_json : *it;
}
}  // namespace

BpeTokenizerBase::BpeTokenizerBase(const json& root, const std::string& file)
    : file_(file),
      bpe_(BpeModel::from_json(field_or_null(root, "model"), file)),
      added_(TokAddedTokens::from_json(field_or_null(root, "added_tokens"), file)),
      normalizer_(TokNormalizer::from_json(field_or_null(root, "normalizer"), file)),
      pretok_(TokPreTokenizer::from_json(field_or_null(root, "pre_tokenizer"), file)) {}

void BpeTokenizerBase::finish_init() {
  BWLA_CHECK((int64_t)added_.max_id() <
                 (int64_t)bpe_.size() + (int64_t)added_.tokens().size() + kMaxUnusedTokenIds,
             "'{}': added_tokens ids go up to {} for {} vocabulary ids and {} added tokens "
             "(more than {} unused ids)",
             file_, added_.max_id(), bpe_.size(), added_.tokens().size(), kMaxUnusedTokenIds);
  int n = std::max(bpe_.size(), added_.max_id() + 1);
  token_bytes_.assign((size_t)n, std::string());
  special_.assign((size_t)n, 0);
  for (int id = 0; id < bpe_.size(); ++id)
    if (!bpe_.token(id).empty()) token_bytes_[(size_t)id] = model_token_bytes(id, bpe_.token(id));
  for (const auto& t : added_.tokens()) {
    token_bytes_[(size_t)t.id] = t.content;
    special_[(size_t)t.id] = t.special ? 1 : 0;
  }
}

void BpeTokenizerBase::set_specials(Specials s) {
  for (int id : {s.bos, s.eos})
    BWLA_CHECK(id >= -1 && id < vocab_size(), "'{}': special token id {} out of range [0, {})",
               file_, id, vocab_size());
  for (const auto* v : {&s.prefix, &s.suffix})
    for (int id : *v)
      BWLA_CHECK(id >= 0 && id < vocab_size(), "'{}': special token id {} out of range [0, {})",
                 file_, id, vocab_size());
  specials_ = std::move(s);
}

int BpeTokenizerBase::token_id(std::string_view token) const {
  int id = added_.find(token);
  return id >= 0 ? id : bpe_.find(token);
}

std::string BpeTokenizerBase::token_string(int id) const {
  BWLA_CHECK(id >= 0 && id < vocab_size(), "token id {} out of range [0, {})", id, vocab_size());
  for (const auto& t : added_.tokens())
    if (t.id == id) return t.content;
  return id < bpe_.size() ? bpe_.token(id) : std::string();
}

void BpeTokenizerBase::push_unknown(std::vector<int>& syms, bool& prev_unk) const {
  if (bpe_.unk_id() < 0) return;
  if (!(bpe_.fuse_unk() && prev_unk)) syms.push_back(bpe_.unk_id());
  prev_unk = true;
}

void BpeTokenizerBase::encode_piece(std::string_view piece, std::vector<int>& out,
                                    std::vector<int>& scratch) const {
  const bool cacheable = piece.size() <= kMaxCachedPiece;
  if (cacheable && cache_.lookup(piece, out)) return;
  scratch.clear();
  int whole = bpe_.ignore_merges() ? whole_word_id(piece) : -1;
  if (whole >= 0) {
    scratch.push_back(whole);
  } else {
    word_symbols(piece, scratch);
    bpe_.merge(scratch);
  }
  if (cacheable) cache_.insert(piece, scratch.data(), scratch.size());
  out.insert(out.end(), scratch.begin(), scratch.end());
}

std::vector<int> BpeTokenizerBase::encode(const std::string& text, bool add_special) const {
  std::vector<int> out;
  if (add_special) out = specials_.prefix;
  out.reserve(text.size() / 3 + 8);
  std::vector<TokAddedTokens::Segment> segs;
  added_.split(text, segs);
  std::vector<std::string> pieces;
  std::vector<int> scratch;
  for (const auto& seg : segs) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
      continue;
    }
    std::string_view raw(text.data() + seg.begin, seg.end - seg.begin);
    pieces.clear();
    if (normalizer_.empty()) {
      pretok_.split(raw, seg.begin == 0, pieces);
    } else {
      std::string norm = normalizer_.apply(raw);
      pretok_.split(norm, seg.begin == 0, pieces);
    }
    for (const auto& p : pieces) encode_piece(p, out, scratch);
  }
  if (add_special) out.insert(out.end(), specials_.suffix.begin(), specials_.suffix.end());
  return out;
}

std::string BpeTokenizerBase::decode(const std::vector<int>& ids, bool skip_special) const {
  std::string s;
  for (int id : ids) {
    BWLA_CHECK(id >= 0 && id < vocab_size(), "decode: token id {} out of range [0, {}) for '{}'",
               id, vocab_size(), file_);
    if (skip_special && special_[(size_t)id]) continue;
    s += token_bytes_[(size_t)id];
  }
  finish_decode(s);
  return s;
}

std::string BpeTokenizerBase::token_bytes(int id) const {
  BWLA_CHECK(id >= 0 && id < vocab_size(), "token_bytes: token id {} out of range [0, {}) for '{}'",
             id, vocab_size(), file_);
  return token_bytes_[(size_t)id];
}

}  // namespace bwla
