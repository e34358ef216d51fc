#include "pipeline/calibration.h"

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "io/json.h"
#include "io/mmap.h"

namespace bwla {

std::string calib_source_path(const CalibOptions& o) {
  if (o.source == "c4") return o.shared_dir + "/data/c4/c4_sample.jsonl";
  if (o.source == "wikitext") return o.shared_dir + "/data/wikitext-2-raw/wiki.valid.raw";
  return o.source;
}

namespace {
std::string load_c4_text(const std::string& path, const std::string& raw) {
  std::string out;
  size_t line_no = 0, b = 0;
  while (b < raw.size()) {
    size_t e = raw.find('\n', b);
    if (e == std::string::npos) e = raw.size();
    ++line_no;
    std::string line = raw.substr(b, e - b);
    b = e + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = parse_json_text(line, fmt::format("{} line {}", path, line_no));
    BWLA_CHECK(j.is_object(), "'{}' line {}: expected a JSON object", path, line_no);
    std::string doc;
    if (j.contains("text") && j["text"].is_string()) {
      doc = j["text"].get<std::string>();
    } else {
      BWLA_CHECK(j.contains("prefix") && j["prefix"].is_string(),
                 "'{}' line {}: expected a \"prefix\" (and \"gold_completion\") or \"text\" string",
                 path, line_no);
      doc = j["prefix"].get<std::string>() + j.value("gold_completion", std::string());
    }
    if (!out.empty()) out += "\n\n";
    out += doc;
  }
  return out;
}
}  // namespace

std::vector<std::vector<int>> sample_calibration(const Tokenizer& tok, const CalibOptions& o) {
  BWLA_CHECK(o.n_segments > 0 && o.seq_len > 1, "calibration needs N > 0 segments of L > 1 tokens (got {}x{})",
             o.n_segments, o.seq_len);
  const std::string path = calib_source_path(o);
  BWLA_CHECK(file_exists(path), "calibration source '{}' not found", path);
  std::string raw = read_text_file(path);
  bool jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  std::string text = jsonl ? load_c4_text(path, raw) : raw;
  BWLA_CHECK(!text.empty(), "calibration source '{}' is empty", path);
  std::vector<int> ids = tok.encode(text, false);
  const long need = (long)o.n_segments * o.seq_len;
  BWLA_CHECK((long)ids.size() >= need,
             "calibration source '{}' has {} tokens, fewer than {} segments x {} tokens = {}", path,
             ids.size(), o.n_segments, o.seq_len, need);
  Rng rng(o.seed * 0x9E3779B97F4A7C15ull + 12345);
  std::vector<std::vector<int>> segs(o.n_segments);
  const int bos = tok.bos_id();
  for (auto& s : segs) {
    long start = (long)rng.below(ids.size() - o.seq_len + 1);
    s.assign(ids.begin() + start, ids.begin() + start + o.seq_len);
    if (bos >= 0 && tok.adds_bos()) s[0] = bos;  // segments start like model inputs do
  }
  log_info("calibration: {} x {} tokens from '{}' ({} tokens available, seed {})", o.n_segments,
           o.seq_len, path, ids.size(), o.seed);
  return segs;
}

std::vector<std::vector<int>> random_token_calibration(int vocab, const CalibOptions& o) {
  BWLA_CHECK(vocab > 0, "random-token calibration: vocabulary size must be positive, got {}", vocab);
  BWLA_CHECK(o.n_segments > 0 && o.seq_len > 0, "calibration needs N > 0 segments of L > 0 tokens, got {} x {}",
             o.n_segments, o.seq_len);
  Rng rng(o.seed ^ 0x7261'6e64'746f'6bull);
  std::vector<std::vector<int>> segs((size_t)o.n_segments, std::vector<int>((size_t)o.seq_len));
  for (auto& s : segs)
    for (int& t : s) t = (int)rng.below((uint64_t)vocab);
  return segs;
}

}  // namespace bwla
