// The resumable state of an interrupted quantize run (quantize.h): OUT.partial/
// holds state.json (the settings the run was started with) and one directory
// layer_NNNN/ per finished layer (model.safetensors + report.json). These read
// and validate what is on disk; fuzz/fuzz_resume_state.cc drives them.
#pragma once
#include <string>

#include "io/json.h"
#include "pipeline/options.h"

namespace bwla {

// The settings a run records in state.json: opt.to_json() plus the absolute
// model directory (a run resumes only with exactly these).
json resume_settings(const QuantizeOptions& opt, const std::string& model_dir);

struct ResumeCheck {
  bool resumable = false;
  std::string why;  // when not resumable: what is missing, unreadable or different
};
// Reads PARTIAL/state.json and compares it with `settings`. Anything wrong with
// the file (missing, unreadable, not JSON, not an object, other settings) makes
// it not resumable with the reason; never throws for the file's content.
ResumeCheck check_resume_state(const std::string& partial, const json& settings);

// Reads a finished layer's LAYER_DIR/report.json: a JSON object whose
// "block_rel_error", when present, is a number. Throws bwla::Error naming the
// file otherwise.
json load_layer_report(const std::string& layer_dir);

}  // namespace bwla
