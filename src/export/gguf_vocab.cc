// Tokenizer metadata for GGUF export: SentencePiece .model protobuf or a
// Hugging Face tokenizer.json, turned into GGUF's token/score/type arrays.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>

#include "core/error.h"
#include "io/json.h"
#include "io/mmap.h"
#include "export/gguf_export.h"
#include "tokenizer/tokenizer.h"

namespace bwla {

namespace {

enum TokType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5,
                         kByte = 6 };

// Minimal protobuf wire-format reader (varint, fixed32/64, length-delimited).
struct PbReader {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& file;
  bool done() const { return p >= end; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      BWLA_CHECK(p < end, "{}: truncated protobuf varint", file);
      uint8_t b = *p++;
      v |= (uint64_t)(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("{}: malformed protobuf varint", file);
  }
  // Reads a field key; returns {field number, wire type}.
  std::pair<uint32_t, uint32_t> key() {
    uint64_t k = varint();
    return {(uint32_t)(k >> 3), (uint32_t)(k & 7)};
  }
  PbReader sub() {
    uint64_t n = varint();
    BWLA_CHECK(n <= (uint64_t)(end - p), "{}: protobuf field length {} past the end", file, n);
    PbReader r{p, p + n, file};
    p += n;
    return r;
  }
  float fixed32f() {
    BWLA_CHECK(end - p >= 4, "{}: truncated protobuf fixed32", file);
    float f;
    std::memcpy(&f, p, 4);
    p += 4;
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: BWLA_CHECK(end - p >= 8, "{}: truncated protobuf", file); p += 8; break;
      case 2: sub(); break;
      case 5: BWLA_CHECK(end - p >= 4, "{}: truncated protobuf", file); p += 4; break;
      default: fail("{}: unsupported protobuf wire type {}", file, wire);
    }
  }
};

bool is_byte_token(const std::string& s) {
  return s.size() == 6 && s.rfind("<0x", 0) == 0 && s[5] == '>' && std::isxdigit((unsigned char)s[3]) &&
         std::isxdigit((unsigned char)s[4]);
}

int find_token(const GgufVocab& v, const std::string& s) {
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == s) return (int)i;
  return -1;
}

// Digits(individual) + ByteLevel is SmolLM's pre-tokenizer; ByteLevel alone GPT-2's.
std::string detect_pre(const json& pre) {
  if (pre.is_null()) return "default";
  auto type = pre.value("type", std::string());
  if (type == "ByteLevel") return "gpt-2";
  if (type == "Sequence" && pre.contains("pretokenizers")) {
    const auto& s = pre["pretokenizers"];
    if (s.size() == 2 && s[0].value("type", std::string()) == "Digits" &&
        s[0].value("individual_digits", false) && s[1].value("type", std::string()) == "ByteLevel")
      return "smollm";
  }
  return "default";
}

}  // namespace

GgufVocab vocab_from_sentencepiece_model(const std::string& path) {
  MappedFile f(path);
  PbReader r{f.data(), f.data() + f.size(), path};
  GgufVocab v;
  v.model = "llama";
  v.source = path;
  v.add_bos = true;
  int unk = 0, bos = 1, eos = 2, pad = -1;  // TrainerSpec defaults
  while (!r.done()) {
    auto [field, wire] = r.key();
    if (field == 1 && wire == 2) {  // repeated SentencePiece pieces
      PbReader s = r.sub();
      std::string piece;
      float score = 0;
      int32_t type = kNormal;
      while (!s.done()) {
        auto [f2, w2] = s.key();
        if (f2 == 1 && w2 == 2) {
          PbReader str = s.sub();
          piece.assign((const char*)str.p, (size_t)(str.end - str.p));
        } else if (f2 == 2 && w2 == 5) {
          score = s.fixed32f();
        } else if (f2 == 3 && w2 == 0) {
          type = (int32_t)s.varint();
        } else {
          s.skip(w2);
        }
      }
      BWLA_CHECK(type >= kNormal && type <= kByte, "{}: piece {} ('{}') has unknown type {}", path,
                 v.tokens.size(), piece, type);
      v.tokens.push_back(piece);
      v.scores.push_back(score);
      v.types.push_back(type);
    } else if (field == 2 && wire == 2) {  // TrainerSpec: special ids
      PbReader t = r.sub();
      while (!t.done()) {
        auto [f2, w2] = t.key();
        if (w2 == 0 && f2 >= 40 && f2 <= 43) {
          int id = (int)(int32_t)(uint32_t)t.varint();
          (f2 == 40 ? unk : f2 == 41 ? bos : f2 == 42 ? eos : pad) = id;
        } else {
          t.skip(w2);
        }
      }
    } else {
      r.skip(wire);
    }
  }
  BWLA_CHECK(!v.tokens.empty(), "{}: no SentencePiece pieces (not a tokenizer.model file?)", path);
  int n = (int)v.tokens.size();
  auto valid = [n](int id) { return id >= 0 && id < n ? id : -1; };
  v.unk = valid(unk);
  v.bos = valid(bos);
  v.eos = valid(eos);
  v.pad = valid(pad);
  return v;
}

GgufVocab vocab_from_tokenizer_json(const std::string& dir) {
  const std::string file = dir + "/tokenizer.json";
  json j = load_json_file(file);
  BWLA_CHECK(j.contains("model") && j["model"].is_object(), "{}: no 'model' object", file);
  const json& m = j["model"];
  BWLA_CHECK(m.value("type", std::string()) == "BPE",
             "{}: model.type '{}' cannot be exported to GGUF (BPE only)", file,
             m.value("type", std::string("?")));
  BWLA_CHECK(m.contains("vocab") && m["vocab"].is_object(), "{}: model.vocab missing", file);

  GgufVocab v;
  v.source = file;
  const bool byte_fallback = m.value("byte_fallback", false);
  const std::string dec = j.contains("decoder") ? j["decoder"].dump() : "";
  const bool spm = byte_fallback || dec.find("\u2581") != std::string::npos;
  v.model = spm ? "llama" : "gpt2";
  if (!spm) v.pre = detect_pre(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json());

  // Tokens by id: model vocab plus added tokens.
  std::map<int, std::string> by_id;
  for (auto& [tok, id] : m["vocab"].items()) {
    BWLA_CHECK(id.is_number_integer() && id.get<int>() >= 0, "{}: vocab entry '{}' has a bad id",
               file, tok);
    by_id[id.get<int>()] = tok;
  }
  std::map<int, bool> added;  // id -> special
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (auto& a : j["added_tokens"]) {
      int id = a.value("id", -1);
      BWLA_CHECK(id >= 0, "{}: added token without an id", file);
      by_id[id] = a.value("content", std::string());
      added[id] = a.value("special", false);
    }
  BWLA_CHECK(!by_id.empty(), "{}: empty vocab", file);
  const int n = by_id.rbegin()->first + 1;
  v.tokens.resize(n);
  v.types.assign(n, kUnused);
  for (int i = 0; i < n; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      v.tokens[i] = "[PAD" + std::to_string(i) + "]";
      continue;
    }
    v.tokens[i] = it->second;
    auto a = added.find(i);
    if (a != added.end())
      v.types[i] = a->second ? kControl : kUserDefined;
    else if (spm && byte_fallback && is_byte_token(it->second))
      v.types[i] = kByte;
    else
      v.types[i] = kNormal;
  }
  if (spm && byte_fallback) {
    // llama.cpp's SentencePiece tokenizer looks up "<0xXX>" for every byte of a
    // character outside the vocabulary and aborts (unordered_map::at) when the
    // piece is missing; the embedding table has no rows to add them to.
    const long nbyte = std::count(v.types.begin(), v.types.end(), kByte);
    BWLA_CHECK(nbyte == 256,
               "{}: the tokenizer uses byte fallback but its vocabulary has {} of the 256 "
               "<0xXX> byte pieces; llama.cpp's tokenizer aborts on any character outside the "
               "vocabulary of such a model, so export-gguf refuses it (bwla itself runs it: "
               "ppl, eval, generate)",
               file, nbyte);
  }
  std::string unk_tok = m.contains("unk_token") && m["unk_token"].is_string()
                            ? m["unk_token"].get<std::string>() : "";
  if (!unk_tok.empty()) v.unk = find_token(v, unk_tok);
  if (v.unk >= 0) v.types[v.unk] = kUnknown;

  // Merges: "a b" strings or ["a", "b"] pairs.
  std::vector<std::string> merges;
  if (m.contains("merges") && m["merges"].is_array())
    for (auto& e : m["merges"]) {
      if (e.is_string()) {
        merges.push_back(e.get<std::string>());
      } else {
        BWLA_CHECK(e.is_array() && e.size() == 2, "{}: malformed merge entry {}", file, e.dump());
        merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
      }
    }
  if (spm) {
    // SentencePiece BPE merges the highest-scoring pair first: score = -rank.
    std::map<std::string, int> rank;
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto& s = merges[r];
      auto sp = s.find(' ');
      BWLA_CHECK(sp != std::string::npos, "{}: merge '{}' has no space", file, s);
      rank.emplace(s.substr(0, sp) + s.substr(sp + 1), (int)r);
    }
    v.scores.assign(n, 0.f);
    for (int i = 0; i < n; ++i) {
      auto it = rank.find(v.tokens[i]);
      if (it != rank.end() && v.types[i] == kNormal) v.scores[i] = -(float)(it->second + 1);
    }
  } else {
    v.merges = std::move(merges);
  }

  // BOS/EOS/add_bos as bwla's tokenizer resolves them from the side files.
  auto tok = Tokenizer::load_dir(dir);
  v.bos = tok->bos_id();
  v.eos = tok->eos_id();
  v.add_bos = tok->adds_bos();
  return v;
}

void fit_vocab(GgufVocab& v, int n_vocab) {
  // Added/special tokens past the model's vocab (e.g. a "[PAD]" appended to a
  // tokenizer shared by several checkpoints) have no embedding row: drop them.
  while ((int)v.tokens.size() > n_vocab &&
         (v.types.back() == kControl || v.types.back() == kUserDefined)) {
    v.tokens.pop_back();
    v.types.pop_back();
    if (!v.scores.empty()) v.scores.pop_back();
    ++v.dropped;
  }
  for (int* id : {&v.bos, &v.eos, &v.unk, &v.pad})
    if (*id >= n_vocab) *id = -1;
  const int have = (int)v.tokens.size();
  BWLA_CHECK(have <= n_vocab,
             "{}: tokenizer has {} tokens but config.json vocab_size is {} (tokenizer does not "
             "belong to this model)",
             v.source, have, n_vocab);
  for (int i = have; i < n_vocab; ++i) {
    v.tokens.push_back("[PAD" + std::to_string(i) + "]");
    v.types.push_back(kUnused);
    if (!v.scores.empty()) v.scores.push_back(0.f);
  }
}

}  // namespace bwla
