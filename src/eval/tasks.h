// Zero-shot benchmark tasks: each dataset is loaded into a common multiple-
// choice item form (context, continuations, gold index) following the
// prompt conventions of EleutherAI's lm-evaluation-harness.
//
// Prompts (every continuation starts with one space, the harness's target
// delimiter):
//   piqa          "Question: {goal}\nAnswer:"   -> " {sol1}" | " {sol2}"
//   hellaswag     "{ctx}" (file is pre-processed) -> " {ending}" x4
//   arc_easy/     "Question: {stem}\nAnswer:"   -> " {choice text}" (3-5 choices)
//   arc_challenge   gold = position of answerKey among the choice labels
//   winogrande    partial scoring: for option k the context is
//                 sentence[:blank] + option_k and the continuation is
//                 " " + strip(sentence[blank+1:]) (the same for every option)
//   lambada       (OpenAI variant) context = text before its last space,
//                 continuation = " " + last word; a single "choice"
#pragma once
#include <string>
#include <vector>

namespace bwla {

struct TaskItem {
  // Shared context of all continuations (used when choice_contexts is empty).
  std::string context;
  // Continuation strings, one per choice.
  std::vector<std::string> continuations;
  // Partial scoring (WinoGrande): when non-empty, continuation i is scored
  // given choice_contexts[i] instead of `context`; same size as continuations.
  std::vector<std::string> choice_contexts;
  int gold = 0;
  // "file:line" the item came from, for error messages.
  std::string where;

  const std::string& context_for(size_t choice) const {
    return choice_contexts.empty() ? context : choice_contexts[choice];
  }
};

enum class TaskKind {
  MultipleChoice,  // acc + acc_norm
  Partial,         // acc only (all continuations identical: acc_norm is meaningless)
  Lambada,         // greedy acc + perplexity
};

struct TaskSpec {
  std::string name;
  TaskKind kind;
  // Metric this task contributes to "average_5" (BWLA/ARB-LLM convention):
  // "acc" or "acc_norm"; empty when the task is not part of the average.
  std::string average_metric;
  // Paths relative to the data directory; labels empty when inline.
  std::string data_file;
  std::string labels_file;
};

// All supported tasks, in reporting order:
// piqa, arc_easy, arc_challenge, hellaswag, winogrande, lambada.
const std::vector<TaskSpec>& task_specs();
std::vector<std::string> task_names();
// Throws bwla::Error listing the valid names when `name` is unknown.
// "lambada_openai" is accepted as an alias of "lambada".
const TaskSpec& find_task(const std::string& name);

// Loads a task's items from DATA_DIR (e.g. ../shared/data). Malformed data
// (missing file, bad JSON line, label out of range, label/item count
// mismatch) throws bwla::Error naming the file and line.
std::vector<TaskItem> load_task(const std::string& name, const std::string& data_dir);

// Individual loaders (paths to the files themselves).
std::vector<TaskItem> load_piqa(const std::string& jsonl, const std::string& labels);
std::vector<TaskItem> load_hellaswag(const std::string& txt);
std::vector<TaskItem> load_arc(const std::string& jsonl);
std::vector<TaskItem> load_winogrande(const std::string& jsonl, const std::string& labels);
std::vector<TaskItem> load_lambada(const std::string& jsonl);

}  // namespace bwla
