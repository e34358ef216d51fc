// libFuzzer target for quantize's resume state (pipeline/resume.h): OUT.partial/
// state.json checked against the run's settings, and a finished layer's
// report.json. The state check must never throw; the report must load as what
// quantize_model uses or throw bwla::Error.
// Input: state.json [NUL report.json] (without a NUL there is no report.json).
// The settings are those of a default run on /tmp/bwla-fuzz-model; with
// BWLA_FUZZ_PRINT_SETTINGS=1 the target prints them (to make a matching seed).
// Run: build-fuzz/fuzz_resume_state fuzz/corpus/resume_state -max_total_time=60
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "fuzz_common.h"
#include "pipeline/resume.h"

namespace {

const bwla::json& settings() {
  static const bwla::json s = [] {
    bwla::QuantizeOptions opt;
    opt.finalize();
    return bwla::resume_settings(opt, "/tmp/bwla-fuzz-model");
  }();
  return s;
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned seed) {
  return bwla_fuzz::mutate(data, size, max_size, seed, 0, size);
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* p = std::getenv("BWLA_FUZZ_PRINT_SETTINGS"); p && *p == '1')
    std::printf("%s\n", settings().dump(2).c_str());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string partial = bwla_fuzz::scratch_dir() + "/out.partial";
  static const std::string ldir = partial + "/layer_0000";
  static const bool made = std::filesystem::create_directories(ldir);
  (void)made;
  auto parts = bwla_fuzz::split_nul(data, size, 2);
  bwla_fuzz::write_file(partial, "state.json", parts[0]);
  const bwla::ResumeCheck rc = bwla::check_resume_state(partial, settings());
  if (!rc.resumable && rc.why.empty()) bwla_fuzz::die("not resumable without a reason");
  if (parts.size() < 2) return 0;
  bwla_fuzz::write_file(ldir, "report.json", parts[1]);
  bwla::json rep;
  try {
    rep = bwla::load_layer_report(ldir);
  } catch (const bwla::Error&) {
    return 0;
  }
  // What quantize_model does with a resumed layer's report.
  rep["resumed"] = true;
  volatile double e = rep.value("block_rel_error", 0.0);
  (void)e;
  bwla::json layers = bwla::json::array();
  layers.push_back(rep);
  (void)layers.dump(2);
  return 0;
}
