// libFuzzer target for the zero-shot task loaders (eval/tasks.h) through
// load_task, which reads DATA_DIR/<task files>.
// Input: one byte choosing the task (piqa, arc_easy, arc_challenge, hellaswag,
// winogrande, lambada, by value modulo 6), then the data file, then for piqa
// and winogrande a NUL and the labels file. Loading must give well-formed
// items or throw bwla::Error.
// Run: build-fuzz/fuzz_tasks fuzz/corpus/tasks -max_total_time=60
#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "eval/tasks.h"
#include "fuzz_common.h"

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned seed) {
  return bwla_fuzz::mutate(data, size, max_size, seed, size ? 1 : 0, size);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& specs = bwla::task_specs();
  const bwla::TaskSpec& spec = specs[data[0] % specs.size()];
  const std::string& dir = bwla_fuzz::scratch_dir();
  auto parts = bwla_fuzz::split_nul(data + 1, size - 1, spec.labels_file.empty() ? 1 : 2);
  for (const auto& f : {spec.data_file, spec.labels_file}) {
    if (f.empty()) continue;
    std::filesystem::create_directories(std::filesystem::path(dir + "/" + f).parent_path());
  }
  bwla_fuzz::write_file(dir, spec.data_file, parts[0]);
  if (!spec.labels_file.empty()) {
    // No NUL in the input: no labels file (a missing file is a rejection too).
    if (parts.size() > 1) bwla_fuzz::write_file(dir, spec.labels_file, parts[1]);
    else bwla_fuzz::remove_file(dir, spec.labels_file);
  }
  std::vector<bwla::TaskItem> items;
  try {
    items = bwla::load_task(spec.name, dir);
  } catch (const bwla::Error&) {
    return 0;
  }
  // What the evaluator (eval/zeroshot.cc) relies on for every item.
  for (const auto& it : items) {
    if (it.continuations.empty()) bwla_fuzz::die("item without continuations");
    if (it.gold < 0 || (size_t)it.gold >= it.continuations.size())
      bwla_fuzz::die("gold index outside the continuations");
    if (!it.choice_contexts.empty() && it.choice_contexts.size() != it.continuations.size())
      bwla_fuzz::die("choice_contexts and continuations differ in size");
    if (it.where.empty()) bwla_fuzz::die("item without a source location");
    for (size_t k = 0; k < it.continuations.size(); ++k) {
      if (it.continuations[k].empty()) bwla_fuzz::die("empty continuation");
      (void)it.context_for(k).size();
    }
  }
  return 0;
}
