// Tokenizer factory: reads tokenizer.json, picks the BPE flavour from its
// model / pre_tokenizer / decoder, and sets BOS/EOS from the post_processor
// and (for load_dir) the side config files.
#include "tokenizer/tokenizer.h"

#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "io/json.h"
#include "io/json.h"
#include "tokenizer/tokenizer_bytelevel.h"
#include "tokenizer/tokenizer_sentencepiece.h"

namespace bwla {

namespace {

// True if j (or something nested in a Sequence) has "type": type.
bool has_type(const json& j, const std::string& type) {
  if (j.is_object()) {
    auto it = j.find("type");
    if (it != j.end() && it->is_string() && it->get<std::string>() == type) return true;
    for (const auto& [k, v] : j.items())
      if ((v.is_array() || v.is_object()) && has_type(v, type)) return true;
  } else if (j.is_array()) {
    for (const auto& v : j)
      if (has_type(v, type)) return true;
  }
  return false;
}

const json& member(const json& root, const char* key) {
  static const json null_json;
  auto it = root.find(key);
  return it == root.end() ? null_json : *it;
}

// Ids of the special tokens TemplateProcessing puts before/after sequence A.
void parse_post_processor(const json& pp, const BpeTokenizerBase& tok,
                          BpeTokenizerBase::Specials& sp) {
  if (pp.is_null() || !pp.is_object()) return;
  const std::string type = pp.value("type", std::string());
  const std::string& file = tok.source();
  if (type == "Sequence") {
    if (pp.contains("processors") && pp["processors"].is_array())
      for (const auto& sub : pp["processors"]) parse_post_processor(sub, tok, sp);
  } else if (type == "TemplateProcessing") {
    const json& single = member(pp, "single");
    const json& specials = member(pp, "special_tokens");
    BWLA_CHECK(single.is_array(), "'{}': post_processor TemplateProcessing has no \"single\"", file);
    bool after = false;
    sp.prefix.clear();
    sp.suffix.clear();
    for (const auto& item : single) {
      if (item.contains("Sequence")) {
        after = true;
        continue;
      }
      BWLA_CHECK(item.contains("SpecialToken") && item["SpecialToken"].contains("id"),
                 "'{}': post_processor: unexpected template item {}", file, item.dump());
      std::string name = item["SpecialToken"]["id"].get<std::string>();
      std::vector<int> ids;
      if (specials.is_object() && specials.contains(name) && specials[name].contains("ids")) {
        const json& v = specials[name]["ids"];
        BWLA_CHECK(v.is_array(), "'{}': post_processor special_tokens['{}'].ids is not an array",
                   file, name);
        for (size_t i = 0; i < v.size(); ++i)
          ids.push_back(json_int(v[i], fmt::format("'{}': post_processor special_tokens['{}'].ids[{}]",
                                                   file, name, i)));
      } else {
        int id = tok.token_id(name);
        BWLA_CHECK(id >= 0, "'{}': post_processor special token '{}' is unknown", file, name);
        ids = {id};
      }
      auto& dst = after ? sp.suffix : sp.prefix;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
    if (sp.prefix.size() == 1) sp.bos = sp.prefix[0];
    if (sp.suffix.size() == 1) sp.eos = sp.suffix[0];
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    const json& cls = member(pp, "cls");
    const json& sep = member(pp, "sep");
    const std::string what = fmt::format("'{}': post_processor {}", file, type);
    if (cls.is_array() && cls.size() == 2)
      sp.prefix = {json_int(cls[1], what + ".cls[1]")}, sp.bos = sp.prefix[0];
    if (sep.is_array() && sep.size() == 2)
      sp.suffix = {json_int(sep[1], what + ".sep[1]")}, sp.eos = sp.suffix[0];
  } else if (type != "ByteLevel") {
    log_warn("'{}': post_processor type '{}' ignored", file, type);
  }
}

std::unique_ptr<BpeTokenizerBase> make_tokenizer(const json& root, const std::string& file) {
  BWLA_CHECK(root.is_object(), "'{}': a tokenizer.json must be a JSON object", file);
  const json& model = member(root, "model");
  BWLA_CHECK(model.is_object(), "'{}': no \"model\" object", file);
  std::string type;
  if (model.contains("type") && model["type"].is_string()) type = model["type"].get<std::string>();
  else if (model.contains("merges")) type = "BPE";
  BWLA_CHECK(type == "BPE",
             "'{}': unsupported tokenizer kind: model type '{}' (only BPE is supported)", file,
             type.empty() ? std::string("<missing>") : type);
  const json& pre = member(root, "pre_tokenizer");
  const json& dec = member(root, "decoder");
  const json& norm = member(root, "normalizer");
  if (has_type(pre, "ByteLevel") || has_type(dec, "ByteLevel"))
    return std::make_unique<ByteLevelBpeTokenizer>(root, file);
  bool sp_like = model.value("byte_fallback", false) || has_type(pre, "Metaspace") ||
                 has_type(dec, "Metaspace") || has_type(dec, "ByteFallback") ||
                 has_type(norm, "Prepend");
  BWLA_CHECK(sp_like,
             "'{}': unsupported tokenizer kind: BPE without a ByteLevel or SentencePiece-style "
             "(Metaspace / Prepend / byte_fallback) pipeline",
             file);
  return std::make_unique<SentencePieceBpeTokenizer>(root, file);
}

// bos_token / eos_token in tokenizer_config.json: a string, {"content": ...} or null.
std::optional<std::string> token_content(const json& cfg, const char* key, const std::string& file) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail("'{}': {} must be a string or {{\"content\": ...}}", file, key);
}

// bos_token_id / eos_token_id in config.json / generation_config.json: int, [int...] or null.
std::optional<int> token_id_field(const json& cfg, const char* key, const std::string& file) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  const std::string what = fmt::format("'{}': {}", file, key);
  if (it->is_number_integer()) return json_int(*it, what);
  if (it->is_array() && !it->empty() && (*it)[0].is_number_integer())
    return json_int((*it)[0], what + "[0]");
  if (it->is_array() && it->empty()) return std::nullopt;
  fail("'{}': {} must be an integer or a list of integers", file, key);
}

// Builds the tokenizer and its post-processor specials from one tokenizer.json;
// JSON type errors deep in the structure become bwla::Error naming the file.
std::unique_ptr<BpeTokenizerBase> build(const std::string& path, BpeTokenizerBase::Specials& sp) {
  json root = load_json_file(path);
  try {
    auto tok = make_tokenizer(root, path);
    parse_post_processor(member(root, "post_processor"), *tok, sp);
    return tok;
  } catch (const json::exception& e) {
    fail("'{}': unexpected tokenizer.json structure: {}", path, e.what());
  }
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load_file(const std::string& tokenizer_json) {
  BpeTokenizerBase::Specials sp;
  auto tok = build(tokenizer_json, sp);
  tok->set_specials(sp);
  return tok;
}

std::unique_ptr<Tokenizer> Tokenizer::load_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string tj = (fs::path(dir) / "tokenizer.json").string();
  BWLA_CHECK(fs::is_directory(dir), "'{}': tokenizer directory not found", dir);
  BWLA_CHECK(fs::exists(tj), "'{}': no tokenizer.json in this directory", tj);
  BpeTokenizerBase::Specials sp;
  auto tok = build(tj, sp);

  auto lookup = [&](const std::string& content, const std::string& file, const char* key) {
    int id = tok->token_id(content);
    if (id < 0) log_warn("'{}': {} '{}' is not a known token; ignored", file, key, content);
    return id;
  };
  std::optional<int> bos, eos;
  std::optional<bool> add_bos, add_eos;
  const std::string tc = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(tc)) {
    json cfg = load_json_file(tc);
    BWLA_CHECK(cfg.is_object(), "'{}': must be a JSON object", tc);
    if (auto s = token_content(cfg, "bos_token", tc)) {
      int id = lookup(*s, tc, "bos_token");
      if (id >= 0) bos = id;
    }
    if (auto s = token_content(cfg, "eos_token", tc)) {
      int id = lookup(*s, tc, "eos_token");
      if (id >= 0) eos = id;
    }
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean())
      add_bos = cfg["add_bos_token"].get<bool>();
    if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean())
      add_eos = cfg["add_eos_token"].get<bool>();
  }
  for (const char* name : {"config.json", "generation_config.json"}) {
    const std::string path = (fs::path(dir) / name).string();
    if (!fs::exists(path)) continue;
    json cfg = load_json_file(path);
    BWLA_CHECK(cfg.is_object(), "'{}': must be a JSON object", path);
    if (!bos) bos = token_id_field(cfg, "bos_token_id", path);
    if (!eos) eos = token_id_field(cfg, "eos_token_id", path);
  }
  if (bos) sp.bos = *bos;
  if (eos) sp.eos = *eos;
  if (add_bos) {
    if (*add_bos && sp.bos < 0) log_warn("'{}': add_bos_token is true but there is no BOS token", tc);
    sp.prefix.clear();
    if (*add_bos && sp.bos >= 0) sp.prefix = {sp.bos};
  }
  if (add_eos) {
    sp.suffix.clear();
    if (*add_eos && sp.eos >= 0) sp.suffix = {sp.eos};
  }
  tok->set_specials(sp);
  return tok;
}

void check_tokenizer_vocab(const Tokenizer& tok, int model_vocab, const std::string& dir) {
  BWLA_CHECK(tok.vocab_size() <= model_vocab,
             "'{}': tokenizer.json has {} tokens but config.json's vocab_size is {}: ids {} and up "
             "have no embedding row",
             dir, tok.vocab_size(), model_vocab, model_vocab);
}

size_t complete_utf8_prefix(const std::string& s) {
  size_t n = s.size(), i = n;
  int back = 0;
  while (i > 0 && back < 4) {
    unsigned char ch = (unsigned char)s[i - 1];
    if ((ch & 0xC0) != 0x80) {
      int need = ch < 0x80 ? 1 : (ch >> 5) == 6 ? 2 : (ch >> 4) == 14 ? 3 : (ch >> 3) == 30 ? 4 : 1;
      return (int)(n - (i - 1)) >= need ? n : i - 1;
    }
    --i;
    ++back;
  }
  return n;
}

}  // namespace bwla
