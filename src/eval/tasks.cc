#include "eval/tasks.h"

#include <charconv>
#include <fmt/format.h>

#include "core/error.h"
#include "io/json.h"
#include "io/mmap.h"

namespace bwla {

namespace {

struct Line {
  long number;  // 1-based
  std::string text;
};

// Splits a file into lines (a final newline does not start an extra line;
// a trailing '\r' is dropped). Throws naming the file when it is missing.
std::vector<Line> read_lines(const std::string& path) {
  BWLA_CHECK(file_exists(path), "'{}': file not found", path);
  std::string text = read_text_file(path);
  std::vector<Line> lines;
  size_t pos = 0;
  long number = 1;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string s = text.substr(pos, end - pos);
    if (!s.empty() && s.back() == '\r') s.pop_back();
    lines.push_back({number++, std::move(s)});
    pos = end + 1;
  }
  return lines;
}

bool is_blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n") == std::string::npos;
}

std::string strip(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string where(const std::string& path, long line) { return fmt::format("{}:{}", path, line); }

// Parses each non-blank line of a JSON-lines file.
std::vector<std::pair<long, json>> read_jsonl(const std::string& path) {
  std::vector<std::pair<long, json>> rows;
  for (auto& l : read_lines(path)) {
    if (is_blank(l.text)) continue;
    json j = parse_json_text(l.text, where(path, l.number));
    BWLA_CHECK(j.is_object(), "{}: expected a JSON object", where(path, l.number));
    rows.emplace_back(l.number, std::move(j));
  }
  return rows;
}

const json& get_field(const json& j, const char* key, const std::string& path, long line) {
  auto it = j.find(key);
  BWLA_CHECK(it != j.end(), "{}: missing field '{}'", where(path, line), key);
  return *it;
}

std::string get_string(const json& j, const char* key, const std::string& path, long line) {
  const json& v = get_field(j, key, path, line);
  BWLA_CHECK(v.is_string(), "{}: field '{}' is not a string", where(path, line), key);
  return v.get<std::string>();
}

long parse_int(const std::string& s, const std::string& path, long line) {
  std::string t = strip(s);
  long v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  BWLA_CHECK(!t.empty() && ec == std::errc() && p == t.data() + t.size(),
             "{}: expected an integer, got '{}'", where(path, line), t);
  return v;
}

// One integer label per non-blank line, each in [lo, hi]; must be `count` of them.
std::vector<int> read_labels(const std::string& path, long lo, long hi, size_t count,
                             const std::string& data_path) {
  std::vector<int> labels;
  for (auto& l : read_lines(path)) {
    if (is_blank(l.text)) continue;
    long v = parse_int(l.text, path, l.number);
    BWLA_CHECK(v >= lo && v <= hi, "{}: label {} out of range [{}, {}]", where(path, l.number),
               v, lo, hi);
    labels.push_back((int)v);
  }
  BWLA_CHECK(labels.size() == count, "'{}' has {} labels but '{}' has {} items", path,
             labels.size(), data_path, count);
  return labels;
}

}  // namespace

const std::vector<TaskSpec>& task_specs() {
  static const std::vector<TaskSpec> specs = {
      {"piqa", TaskKind::MultipleChoice, "acc", "piqa/valid.jsonl", "piqa/valid-labels.lst"},
      {"arc_easy", TaskKind::MultipleChoice, "acc", "arc/ARC-Easy-Test.jsonl", ""},
      {"arc_challenge", TaskKind::MultipleChoice, "acc_norm", "arc/ARC-Challenge-Test.jsonl", ""},
      {"hellaswag", TaskKind::MultipleChoice, "acc_norm", "hellaswag/hellaswag_val_full.txt", ""},
      {"winogrande", TaskKind::Partial, "acc", "winogrande/dev.jsonl",
       "winogrande/dev-labels.lst"},
      {"lambada", TaskKind::Lambada, "", "lambada/lambada_test.jsonl", ""},
  };
  return specs;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (auto& s : task_specs()) names.push_back(s.name);
  return names;
}

const TaskSpec& find_task(const std::string& name) {
  std::string n = name == "lambada_openai" ? "lambada" : name;
  for (auto& s : task_specs())
    if (s.name == n) return s;
  fail("unknown task '{}'; valid tasks: {}", name, fmt::join(task_names(), ", "));
}

// One item per row of a JSON Lines file: make(i, line, row) builds the item,
// which is then tagged with the row's place for error messages.
template <class Make>
std::vector<TaskItem> items_of_rows(const std::string& jsonl,
                                    const std::vector<std::pair<long, json>>& rows, Make make) {
  std::vector<TaskItem> items;
  items.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& [line, j] = rows[i];
    TaskItem it = make(i, line, j);
    it.where = where(jsonl, line);
    items.push_back(std::move(it));
  }
  return items;
}

std::vector<TaskItem> load_piqa(const std::string& jsonl, const std::string& labels_path) {
  auto rows = read_jsonl(jsonl);
  auto labels = read_labels(labels_path, 0, 1, rows.size(), jsonl);
  return items_of_rows(jsonl, rows, [&](size_t i, long line, const json& j) {
    TaskItem it;
    it.context = "Question: " + get_string(j, "goal", jsonl, line) + "\nAnswer:";
    it.continuations = {" " + get_string(j, "sol1", jsonl, line),
                        " " + get_string(j, "sol2", jsonl, line)};
    it.gold = labels[i];
    return it;
  });
}

std::vector<TaskItem> load_hellaswag(const std::string& txt) {
  // Six lines per item: context, gold index (0-3), four endings. Endings and
  // contexts are used verbatim (already pre-processed as the harness does).
  auto lines = read_lines(txt);
  BWLA_CHECK(lines.size() % 6 == 0,
             "'{}': {} lines is not a multiple of 6 (context, gold, 4 endings per item)", txt,
             lines.size());
  std::vector<TaskItem> items;
  items.reserve(lines.size() / 6);
  for (size_t i = 0; i < lines.size(); i += 6) {
    TaskItem it;
    it.context = lines[i].text;
    BWLA_CHECK(!is_blank(it.context), "{}: empty context", where(txt, lines[i].number));
    long g = parse_int(lines[i + 1].text, txt, lines[i + 1].number);
    BWLA_CHECK(g >= 0 && g <= 3, "{}: gold index {} out of range [0, 3]",
               where(txt, lines[i + 1].number), g);
    it.gold = (int)g;
    for (int k = 0; k < 4; ++k) it.continuations.push_back(" " + lines[i + 2 + k].text);
    it.where = where(txt, lines[i].number);
    items.push_back(std::move(it));
  }
  return items;
}

std::vector<TaskItem> load_arc(const std::string& jsonl) {
  return items_of_rows(jsonl, read_jsonl(jsonl), [&](size_t, long line, const json& j) {
    const json& q = get_field(j, "question", jsonl, line);
    BWLA_CHECK(q.is_object(), "{}: field 'question' is not an object", where(jsonl, line));
    TaskItem it;
    it.context = "Question: " + get_string(q, "stem", jsonl, line) + "\nAnswer:";
    const json& choices = get_field(q, "choices", jsonl, line);
    BWLA_CHECK(choices.is_array() && choices.size() >= 2,
               "{}: 'question.choices' must be an array of at least 2 choices",
               where(jsonl, line));
    std::string key = get_string(j, "answerKey", jsonl, line);
    it.gold = -1;
    for (size_t k = 0; k < choices.size(); ++k) {
      BWLA_CHECK(choices[k].is_object(), "{}: choice {} is not an object", where(jsonl, line),
                 k);
      it.continuations.push_back(" " + get_string(choices[k], "text", jsonl, line));
      if (get_string(choices[k], "label", jsonl, line) == key) it.gold = (int)k;
    }
    BWLA_CHECK(it.gold >= 0, "{}: answerKey '{}' is not among the choice labels",
               where(jsonl, line), key);
    return it;
  });
}

std::vector<TaskItem> load_winogrande(const std::string& jsonl, const std::string& labels_path) {
  auto rows = read_jsonl(jsonl);
  auto labels = read_labels(labels_path, 1, 2, rows.size(), jsonl);
  return items_of_rows(jsonl, rows, [&](size_t i, long line, const json& j) {
    std::string sentence = get_string(j, "sentence", jsonl, line);
    size_t blank = sentence.find('_');
    BWLA_CHECK(blank != std::string::npos, "{}: sentence has no '_' blank", where(jsonl, line));
    std::string prefix = sentence.substr(0, blank);
    TaskItem it;
    // Partial scoring: the text after the blank, scored given each filled-in prefix.
    std::string cont = " " + strip(sentence.substr(blank + 1));
    it.choice_contexts = {prefix + get_string(j, "option1", jsonl, line),
                          prefix + get_string(j, "option2", jsonl, line)};
    it.continuations = {cont, cont};
    it.gold = labels[i] - 1;
    if (j.contains("answer") && j["answer"].is_string() && !j["answer"].get<std::string>().empty())
      BWLA_CHECK(j["answer"].get<std::string>() == std::to_string(labels[i]),
                 "{}: 'answer' {} disagrees with label {} in '{}'", where(jsonl, line),
                 j["answer"].get<std::string>(), labels[i], labels_path);
    return it;
  });
}

std::vector<TaskItem> load_lambada(const std::string& jsonl) {
  return items_of_rows(jsonl, read_jsonl(jsonl), [&](size_t, long line, const json& j) {
    std::string text = get_string(j, "text", jsonl, line);
    size_t sp = text.rfind(' ');
    BWLA_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < text.size(),
               "{}: text needs a context and a last word separated by a space",
               where(jsonl, line));
    TaskItem it;
    it.context = text.substr(0, sp);
    it.continuations = {text.substr(sp)};  // " " + last word
    it.gold = 0;
    return it;
  });
}

std::vector<TaskItem> load_task(const std::string& name, const std::string& data_dir) {
  const TaskSpec& spec = find_task(name);
  const std::string base = data_dir.empty() ? "" : data_dir + "/";  // empty: current dir
  std::string data = base + spec.data_file;
  std::string labels = spec.labels_file.empty() ? "" : base + spec.labels_file;
  if (spec.name == "piqa") return load_piqa(data, labels);
  if (spec.name == "hellaswag") return load_hellaswag(data);
  if (spec.name == "arc_easy" || spec.name == "arc_challenge") return load_arc(data);
  if (spec.name == "winogrande") return load_winogrande(data, labels);
  if (spec.name == "lambada") return load_lambada(data);
  BWLA_ASSERT(false, "task '{}' has no loader", spec.name);
  return {};
}

}  // namespace bwla
