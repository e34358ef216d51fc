#include "pipeline/resume.h"

#include <filesystem>

#include "core/error.h"

namespace bwla {

namespace fs = std::filesystem;

json resume_settings(const QuantizeOptions& opt, const std::string& model_dir) {
  json s = opt.to_json();
  s["model"] = fs::absolute(model_dir).string();
  return s;
}

ResumeCheck check_resume_state(const std::string& partial, const json& settings) {
  const std::string path = partial + "/state.json";
  ResumeCheck r;
  json state;
  try {
    state = load_json_file(path);
  } catch (const Error& e) {
    r.why = e.what();
    return r;
  }
  if (!state.is_object()) {
    r.why = fmt::format("'{}': not a JSON object", path);
    return r;
  }
  if (state != settings) {
    r.why = fmt::format("'{}': the settings or the inputs' fingerprints differ", path);
    return r;
  }
  r.resumable = true;
  return r;
}

json load_layer_report(const std::string& layer_dir) {
  const std::string path = layer_dir + "/report.json";
  json rep = load_json_file(path);
  BWLA_CHECK(rep.is_object(), "'{}': a layer report must be a JSON object", path);
  auto it = rep.find("block_rel_error");
  BWLA_CHECK(it == rep.end() || it->is_number(), "'{}': 'block_rel_error' must be a number, got {}",
             path, it == rep.end() ? std::string() : it->dump());
  return rep;
}

}  // namespace bwla
