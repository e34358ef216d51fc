// Task loaders: prompt construction, malformed-input errors (file:line), and
// the real datasets in ../shared when present.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "eval/tasks.h"
#include "eval/zeroshot.h"
#include "eval_fakes.h"
#include "shared_data.h"

using namespace bwla;
namespace fs = std::filesystem;

namespace {

class TaskFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::Quiet);
    dir_ = fs::temp_directory_path() /
           ("bwla_eval_tasks_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& rel, const std::string& text) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  // Expects fn to throw bwla::Error whose message contains every needle.
  template <typename F>
  void expect_error(F fn, std::vector<std::string> needles) {
    try {
      fn();
      ADD_FAILURE() << "expected bwla::Error";
    } catch (const Error& e) {
      for (auto& n : needles)
        EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
            << "message '" << e.what() << "' lacks '" << n << "'";
    }
  }
  fs::path dir_;
};

const char* kPiqa =
    R"({"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat the lid."})"
    "\n"
    R"({"goal": "Dry hands", "sol1": "Use water.", "sol2": "Use a towel."})"
    "\n";
const char* kHella =
    "Cooking: A man cracks eggs. he\n1\nsings.\nwhisks them.\nleaves.\nflies away.\n"
    "Sports: A girl runs. she\n0\njumps the hurdle.\nsits.\nsleeps.\nswims.\n";
const char* kArc =
    R"({"question":{"stem":"What is 2+2?","choices":[{"text":"3","label":"A"},{"text":"4","label":"B"},{"text":"5","label":"C"}]},"answerKey":"B"})"
    "\n"
    R"({"question":{"stem":"Pick one","choices":[{"text":"x","label":"1"},{"text":"y","label":"2"},{"text":"z","label":"3"},{"text":"w","label":"4"}]},"answerKey":"4"})"
    "\n";
const char* kWino =
    R"({"sentence": "The cup fell off the table because _ was slippery.", "option1": "the cup", "option2": "the table", "answer": "1"})"
    "\n"
    R"({"sentence": "Ann thanked Bea because _ helped her.", "option1": "Ann", "option2": "Bea", "answer": "2"})"
    "\n";
const char* kLambada =
    R"({"text": "He opened the door and saw his old friend"})"
    "\n"
    R"({"text": "She said \"hello\" to the\nneighbour"})"
    "\n";

}  // namespace

TEST_F(TaskFiles, PiqaPrompt) {
  auto items = load_piqa(write("p.jsonl", kPiqa), write("p.lst", "0\n1\n"));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].context, "Question: Open a jar\nAnswer:");
  EXPECT_EQ(items[0].continuations, (std::vector<std::string>{" Twist the lid.", " Eat the lid."}));
  EXPECT_EQ(items[0].gold, 0);
  EXPECT_EQ(items[1].gold, 1);
  EXPECT_NE(items[1].where.find("p.jsonl:2"), std::string::npos);
}

TEST_F(TaskFiles, HellaswagFormat) {
  auto items = load_hellaswag(write("h.txt", kHella));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].context, "Cooking: A man cracks eggs. he");
  EXPECT_EQ(items[0].continuations[1], " whisks them.");
  EXPECT_EQ(items[0].continuations.size(), 4u);
  EXPECT_EQ(items[0].gold, 1);
  EXPECT_EQ(items[1].gold, 0);
}

TEST_F(TaskFiles, ArcPromptAndAnswerKey) {
  auto items = load_arc(write("a.jsonl", kArc));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].context, "Question: What is 2+2?\nAnswer:");
  EXPECT_EQ(items[0].continuations, (std::vector<std::string>{" 3", " 4", " 5"}));
  EXPECT_EQ(items[0].gold, 1);
  EXPECT_EQ(items[1].gold, 3);  // numeric labels
  EXPECT_EQ(items[1].continuations.size(), 4u);
}

TEST_F(TaskFiles, WinograndePartialSplit) {
  auto items = load_winogrande(write("w.jsonl", kWino), write("w.lst", "1\n2\n"));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].choice_contexts,
            (std::vector<std::string>{"The cup fell off the table because the cup",
                                      "The cup fell off the table because the table"}));
  EXPECT_EQ(items[0].continuations,
            (std::vector<std::string>{" was slippery.", " was slippery."}));
  EXPECT_EQ(items[0].context_for(1), "The cup fell off the table because the table");
  EXPECT_EQ(items[0].gold, 0);
  EXPECT_EQ(items[1].gold, 1);
}

TEST_F(TaskFiles, LambadaSplitsLastWord) {
  auto items = load_lambada(write("l.jsonl", kLambada));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].context, "He opened the door and saw his old");
  EXPECT_EQ(items[0].continuations, (std::vector<std::string>{" friend"}));
  // Only a space splits; the newline stays in the context.
  EXPECT_EQ(items[1].context, "She said \"hello\" to");
  EXPECT_EQ(items[1].continuations[0], " the\nneighbour");
}

TEST_F(TaskFiles, MalformedInputsNameFileAndLine) {
  std::string piqa = write("p.jsonl", kPiqa);
  expect_error([&] { load_piqa(dir_.string() + "/missing.jsonl", piqa); }, {"missing.jsonl"});
  expect_error([&] { load_piqa(write("bad.jsonl", std::string(kPiqa) + "{oops\n"), piqa); },
               {"bad.jsonl:3", "invalid JSON"});
  expect_error([&] { load_piqa(piqa, write("l1.lst", "0\n2\n")); }, {"l1.lst:2", "out of range"});
  expect_error([&] { load_piqa(piqa, write("l2.lst", "0\n1\n1\n")); },
               {"l2.lst", "p.jsonl", "3 labels", "2 items"});
  expect_error([&] { load_piqa(piqa, write("l3.lst", "0\nx\n")); }, {"l3.lst:2"});
  expect_error([&] { load_piqa(write("nf.jsonl", R"({"goal": "g", "sol1": "a"})" "\n"),
                               write("l4.lst", "0\n")); },
               {"nf.jsonl:1", "sol2"});
  expect_error([&] { load_hellaswag(write("h1.txt", "ctx\n1\na\nb\nc\n")); }, {"h1.txt", "6"});
  expect_error([&] { load_hellaswag(write("h2.txt", std::string(kHella) + "c\n4\na\nb\nc\nd\n")); },
               {"h2.txt:14", "out of range"});
  expect_error([&] {
    load_arc(write("a.jsonl", std::string(kArc) +
                                  R"({"question":{"stem":"s","choices":[{"text":"x","label":"A"},{"text":"y","label":"B"}]},"answerKey":"E"})"
                                  "\n"));
  }, {"a.jsonl:3", "answerKey"});
  std::string wino = write("w.jsonl", kWino);
  expect_error([&] { load_winogrande(wino, write("w1.lst", "1\n3\n")); }, {"w1.lst:2"});
  expect_error([&] { load_winogrande(wino, write("w2.lst", "2\n2\n")); }, {"w.jsonl:1", "disagrees"});
  expect_error([&] {
    load_winogrande(write("w3.jsonl", R"({"sentence": "no blank", "option1": "a", "option2": "b"})" "\n"),
                    write("w4.lst", "1\n"));
  }, {"w3.jsonl:1", "_"});
  expect_error([&] { load_lambada(write("l.jsonl", R"({"text": "oneword"})" "\n")); }, {"l.jsonl:1"});
  expect_error([&] { load_lambada(write("l2.jsonl", R"({"txt": "a b"})" "\n")); },
               {"l2.jsonl:1", "text"});
}

TEST_F(TaskFiles, UnknownTaskListsValidOnes) {
  expect_error([] { find_task("mmlu"); }, {"mmlu", "piqa", "hellaswag", "winogrande", "lambada"});
  EXPECT_EQ(find_task("lambada_openai").name, "lambada");
  bwla::test::ByteTokenizer tok;
  bwla::test::FakeLM lm(bwla::test::ByteTokenizer::kVocab, 64, bwla::test::hash_row(258));
  EvalOptions opt;
  opt.tasks = {"piqa", "boolq"};
  opt.data_dir = dir_.string();  // nothing there: the name check comes first
  expect_error([&] { run_zeroshot(lm, tok, opt); }, {"boolq", "arc_challenge"});
}

TEST_F(TaskFiles, RunZeroshotAllTasksJsonAndTable) {
  write("piqa/valid.jsonl", kPiqa);
  write("piqa/valid-labels.lst", "0\n1\n");
  write("hellaswag/hellaswag_val_full.txt", kHella);
  write("arc/ARC-Easy-Test.jsonl", kArc);
  write("arc/ARC-Challenge-Test.jsonl", kArc);
  write("winogrande/dev.jsonl", kWino);
  write("winogrande/dev-labels.lst", "1\n2\n");
  write("lambada/lambada_test.jsonl", kLambada);
  bwla::test::ByteTokenizer tok;
  bwla::test::FakeLM lm(bwla::test::ByteTokenizer::kVocab, 256, bwla::test::hash_row(258));
  EvalOptions opt;
  opt.data_dir = dir_.string();
  json r = run_zeroshot(lm, tok, opt);
  for (auto& n : task_names()) {
    ASSERT_TRUE(r["results"].contains(n)) << n;
    EXPECT_EQ(r["results"][n]["n"], 2);
    EXPECT_EQ(r["results"][n]["n_total"], 2);
    double acc = r["results"][n]["acc"];
    EXPECT_TRUE(acc == 0.0 || acc == 0.5 || acc == 1.0);
  }
  EXPECT_EQ(r["results"]["hellaswag"]["headline_metric"], "acc_norm");
  EXPECT_TRUE(r["results"]["lambada"].contains("perplexity"));
  const json& avg = r["average_5"];
  EXPECT_TRUE(avg["complete"].get<bool>());
  double expect = (r["results"]["piqa"]["acc"].get<double>() +
                   r["results"]["arc_easy"]["acc"].get<double>() +
                   r["results"]["arc_challenge"]["acc_norm"].get<double>() +
                   r["results"]["hellaswag"]["acc_norm"].get<double>() +
                   r["results"]["winogrande"]["acc"].get<double>()) / 5;
  EXPECT_DOUBLE_EQ(avg["value"].get<double>(), expect);
  EXPECT_EQ(avg["metrics"]["arc_challenge"], "acc_norm");
  EXPECT_EQ(avg["metrics"]["arc_easy"], "acc");
  std::string table = format_zeroshot_table(r);
  EXPECT_NE(table.find("| piqa | 2 | acc |"), std::string::npos) << table;
  EXPECT_NE(table.find("average_5"), std::string::npos);
  EXPECT_LT(table.find("piqa"), table.find("lambada"));

  opt.tasks = {"piqa", "lambada_openai"};
  opt.limit = 1;
  r = run_zeroshot(lm, tok, opt);
  EXPECT_EQ(r["results"]["piqa"]["n"], 1);
  EXPECT_EQ(r["results"]["piqa"]["n_total"], 2);
  EXPECT_TRUE(r["average_5"]["value"].is_null());
  EXPECT_EQ(r["average_5"]["missing"].size(), 4u);
  EXPECT_NE(format_zeroshot_table(r).find("n/a"), std::string::npos);
}

TEST(EvalTasksShared, RealDatasetsCountsAndGolds) {
  BWLA_REQUIRE_SHARED("data/piqa/valid.jsonl");
  const std::string data = bwla::test::shared_path("data");
  const std::vector<std::pair<std::string, size_t>> expected = {
      {"piqa", 1838},      {"hellaswag", 10042}, {"winogrande", 1267},
      {"arc_easy", 2376},  {"arc_challenge", 1172}, {"lambada", 5153}};
  for (auto& [name, count] : expected) {
    auto items = load_task(name, data);
    EXPECT_EQ(items.size(), count) << name;
    for (auto& it : items) {
      ASSERT_GE(it.gold, 0) << it.where;
      ASSERT_LT((size_t)it.gold, it.continuations.size()) << it.where;
      for (auto& c : it.continuations) ASSERT_TRUE(c.size() > 1 && c[0] == ' ') << it.where;
      if (name == "winogrande") ASSERT_EQ(it.choice_contexts.size(), 2u);
      if (name == "hellaswag") ASSERT_EQ(it.continuations.size(), 4u);
      if (name == "piqa") ASSERT_EQ(it.context.rfind("Question: ", 0), 0u);
    }
  }
}
