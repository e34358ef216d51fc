// Where bwla may write (io/output_path.h) and the strict JSON readers
// (io/json.h): bwla replaces only what it wrote, atomically, and reads
// integers, numbers and nesting exactly or fails.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "io/json.h"
#include "io/output_path.h"
#include "tmpdir.h"

using namespace bwla;
namespace fs = std::filesystem;

namespace {

void put(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}
std::string get(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

// Writes a finished bwla output at `out` holding `name` = `text`.
void make_output(const std::string& out, const std::string& name, const std::string& text) {
  StagedDir d(out, {}, "-o", "test");
  put(d.file(name), text);
  d.commit();
}

TEST(OutputPath, RefusesForeignDirectoryAndFile) {
  test::TempDir td;
  put(td.file("user/notes.txt"), "precious");
  put(td.file("afile"), "precious too");
  std::string e = error_of([&] { check_output_dir(td.file("user"), {}, "-o"); });
  EXPECT_TRUE(has(e, "did not write")) << e;
  e = error_of([&] { StagedDir d(td.file("user"), {}, "-o", "test"); });
  EXPECT_TRUE(has(e, "did not write")) << e;
  e = error_of([&] { check_output_dir(td.file("afile"), {}, "-o"); });
  EXPECT_TRUE(has(e, "not a directory")) << e;
  EXPECT_EQ(get(td.file("user/notes.txt")), "precious");
  EXPECT_EQ(get(td.file("afile")), "precious too");
  EXPECT_TRUE(has(error_of([&] { check_output_dir("", {}, "-o"); }), "empty"));
  e = error_of([&] { check_output_dir(td.file("afile/sub"), {}, "-o"); });
  EXPECT_TRUE(has(e, "not a directory")) << e;
}

TEST(OutputPath, AcceptsAbsentEmptyAndOwnOutput) {
  test::TempDir td;
  EXPECT_EQ(error_of([&] { check_output_dir(td.file("new/deeper"), {}, "-o"); }), "");
  fs::create_directories(td.file("empty"));
  EXPECT_EQ(error_of([&] { check_output_dir(td.file("empty"), {}, "-o"); }), "");
  make_output(td.file("out"), "a.txt", "first");
  EXPECT_TRUE(is_bwla_output_dir(td.file("out")));
  EXPECT_EQ(error_of([&] { check_output_dir(td.file("out"), {}, "-o"); }), "");
  // An output of an earlier build (no marker): a config naming bwla.
  put(td.file("legacy/config.json"), R"({"quantization_config": {"quant_method": "bwla"}})");
  EXPECT_TRUE(is_bwla_output_dir(td.file("legacy")));
  put(td.file("other/config.json"), R"({"quantization_config": {"quant_method": "gptq"}})");
  EXPECT_FALSE(is_bwla_output_dir(td.file("other")));
}

TEST(OutputPath, RefusesInputsTheirParentsAndTheCurrentDirectory) {
  test::TempDir td;
  put(td.file("models/m/config.json"), "{}");
  for (const std::string& out : {td.file("models/m"), td.file("models"), td.str(),
                                td.file("models/m/"), td.file("models/./m")}) {
    std::string e = error_of([&] { check_output_dir(out, {td.file("models/m")}, "-o"); });
    EXPECT_TRUE(has(e, "is or contains the input")) << out << ": " << e;
  }
  // A sibling whose name starts with the input's is not its parent.
  EXPECT_EQ(error_of([&] { check_output_dir(td.file("models/m2"), {td.file("models/m")}, "-o"); }),
            "");
  const fs::path cwd = fs::current_path();
  fs::create_directories(td.file("work"));
  fs::current_path(td.file("work"));
  std::string e1 = error_of([&] { check_output_dir(".", {}, "-o"); });
  std::string e2 = error_of([&] { check_output_dir("..", {}, "-o"); });
  fs::current_path(cwd);
  EXPECT_TRUE(has(e1, "current directory")) << e1;
  EXPECT_TRUE(has(e2, "current directory")) << e2;
}

TEST(OutputPath, CommitSwapsAtomicallyAndRemovesOnlyTheOldOutput) {
  test::TempDir td;
  put(td.file("keep/x"), "user data beside the output");
  make_output(td.file("out"), "a.txt", "first");
  make_output(td.file("out"), "b.txt", "second");
  EXPECT_FALSE(fs::exists(td.file("out/a.txt")));  // the old output is gone
  EXPECT_EQ(get(td.file("out/b.txt")), "second");
  EXPECT_FALSE(fs::exists(td.file("out.tmp")));
  EXPECT_EQ(get(td.file("keep/x")), "user data beside the output");
  // A trailing separator names the same output (never OUT/.tmp inside it).
  make_output(td.file("out") + "/", "c.txt", "third");
  EXPECT_EQ(get(td.file("out/c.txt")), "third");
  EXPECT_FALSE(fs::exists(td.file("out/.tmp")));
}

TEST(OutputPath, UncommittedStagingLeavesThePreviousOutput) {
  test::TempDir td;
  make_output(td.file("out"), "a.txt", "first");
  {
    StagedDir d(td.file("out"), {}, "-o", "test");
    put(d.file("a.txt"), "half-written");
  }  // an error before commit()
  EXPECT_EQ(get(td.file("out/a.txt")), "first");
  EXPECT_FALSE(fs::exists(td.file("out.tmp")));
}

TEST(OutputPath, CommitRefusesAnOutputThatStoppedBeingOurs) {
  test::TempDir td;
  make_output(td.file("out"), "a.txt", "first");
  StagedDir d(td.file("out"), {}, "-o", "test");
  put(d.file("a.txt"), "new");
  // Meanwhile someone replaced the old output by their own files.
  fs::remove_all(td.file("out"));
  put(td.file("out/theirs.txt"), "theirs");
  std::string e = error_of([&] { d.commit(); });
  EXPECT_TRUE(has(e, "no longer a bwla output")) << e;
  EXPECT_EQ(get(td.file("out/theirs.txt")), "theirs");
  EXPECT_EQ(get(td.file("out.tmp/a.txt")), "new");  // the new output is kept for the user
}

TEST(OutputPath, StaleStagingOfOursIsClearedForeignOneRefused) {
  test::TempDir td;
  {
    StagedDir d(td.file("out"), {}, "-o", "test");
    put(d.file("a.txt"), "interrupted");
    // Simulate a crash: the staging directory stays (release the guard by
    // copying it aside and back).
    fs::copy(d.path(), td.file("save"), fs::copy_options::recursive);
  }
  fs::rename(td.file("save"), td.file("out.tmp"));
  EXPECT_EQ(error_of([&] { make_output(td.file("out"), "b.txt", "done"); }), "");
  EXPECT_EQ(get(td.file("out/b.txt")), "done");
  EXPECT_FALSE(fs::exists(td.file("out/a.txt")));
  put(td.file("two.tmp/mine"), "user");
  std::string e = error_of([&] { StagedDir d(td.file("two"), {}, "-o", "test"); });
  EXPECT_TRUE(has(e, "did not write")) << e;
  EXPECT_EQ(get(td.file("two.tmp/mine")), "user");
}

TEST(OutputPath, WorkDirectoriesAndRemoval) {
  test::TempDir td;
  put(td.file("p/mine"), "user");
  EXPECT_TRUE(has(error_of([&] { check_work_dir(td.file("p"), "-o"); }), "did not write"));
  EXPECT_TRUE(has(error_of([&] { remove_owned_dir(td.file("p")); }), "not written by bwla"));
  EXPECT_EQ(get(td.file("p/mine")), "user");
  claim_work_dir(td.file("w"), "test");
  put(td.file("w/state.json"), "{}");
  EXPECT_EQ(error_of([&] { check_work_dir(td.file("w"), "-o"); }), "");
  remove_owned_dir(td.file("w"));
  EXPECT_FALSE(fs::exists(td.file("w")));
}

TEST(OutputPath, OutputFilesNeedTheOwnershipTest) {
  test::TempDir td;
  put(td.file("r.json"), R"({"results": {}})");
  std::string e = error_of(
      [&] { check_output_file(td.file("r.json"), {}, "--json-out", json_written_by_bwla); });
  EXPECT_TRUE(has(e, "not written by bwla")) << e;
  write_owned_json_file(td.file("mine.json"), json{{"results", json::object()}});
  EXPECT_TRUE(json_written_by_bwla(td.file("mine.json")));
  EXPECT_EQ(error_of([&] {
              check_output_file(td.file("mine.json"), {}, "--json-out", json_written_by_bwla);
            }),
            "");
  fs::create_directories(td.file("d"));
  e = error_of([&] { check_output_file(td.file("d"), {}, "-o", json_written_by_bwla); });
  EXPECT_TRUE(has(e, "is a directory")) << e;
  EXPECT_EQ(error_of([&] { check_output_file(td.file("new/sub/x.json"), {}, "-o", json_written_by_bwla); }),
            "");
  EXPECT_TRUE(fs::is_directory(td.file("new/sub")));
}

TEST(OutputPath, AtomicFileWritesNeverTouchTheirNeighbours) {
  test::TempDir td;
  // Before: writes went through PATH.tmp, replacing a user's file of that name.
  put(td.file("config.json.tmp"), "a user's file");
  write_text_file_atomic(td.file("config.json"), "{}");
  EXPECT_EQ(get(td.file("config.json.tmp")), "a user's file");
  EXPECT_EQ(get(td.file("config.json")), "{}");
  size_t n = 0;
  for (auto& e : fs::directory_iterator(td.str())) n += !e.path().empty();
  EXPECT_EQ(n, 2u);  // no temporary left behind
  EXPECT_NE(temp_sibling(td.file("x")), temp_sibling(td.file("x")));
}

TEST(JsonRead, IntegersAreExactAndBounded) {
  const json j = json::parse(
      R"({"a": 4, "b": 4.0, "c": 4.9, "d": 4294967299, "e": -1, "f": "4", "g": 18446744073709551615, "n": null})");
  EXPECT_EQ(json_int(j, "a", 0, 0, 100, "f.json"), 4);
  EXPECT_EQ(json_int(j, "b", 0, 0, 100, "f.json"), 4);
  EXPECT_EQ(json_int(j, "missing", 7, 0, 100, "f.json"), 7);
  EXPECT_EQ(json_int(j, "n", 7, 0, 100, "f.json"), 7);
  std::string e = error_of([&] { json_int(j, "c", 0, 0, 100, "f.json"); });
  EXPECT_TRUE(has(e, "'f.json'") && has(e, "'c'") && has(e, "integer")) << e;
  e = error_of([&] { json_int(j, "d", 0, 0, 1 << 16, "f.json"); });
  EXPECT_TRUE(has(e, "4294967299")) << e;
  EXPECT_FALSE(error_of([&] { json_int(j, "e", 0, 0, 100, "f.json"); }).empty());
  EXPECT_FALSE(error_of([&] { json_int(j, "f", 0, 0, 100, "f.json"); }).empty());
  EXPECT_FALSE(error_of([&] { json_int(j, "g", 0, 0, 100, "f.json"); }).empty());
  EXPECT_TRUE(has(error_of([&] { json_int_req(j, "zz", 0, 1, "f.json"); }), "missing"));
}

TEST(JsonRead, NumbersStringsAndBools) {
  const json j = json::parse(R"({"x": 1e-5, "neg": -1, "s": "silu", "b": true, "bs": "true"})");
  EXPECT_DOUBLE_EQ(json_number(j, "x", 0, 0, 1, "f"), 1e-5);
  EXPECT_FALSE(error_of([&] { json_number(j, "neg", 0, 0, 1, "f"); }).empty());
  EXPECT_FALSE(error_of([&] { json_number(j, "s", 0, 0, 1, "f"); }).empty());
  EXPECT_EQ(json_string(j, "s", "", "f"), "silu");
  EXPECT_FALSE(error_of([&] { json_string(j, "x", "", "f"); }).empty());
  EXPECT_TRUE(json_bool(j, "b", false, "f"));
  EXPECT_FALSE(error_of([&] { json_bool(j, "bs", false, "f"); }).empty());
}

TEST(JsonRead, DepthAndDuplicateKeysAreRefused) {
  std::string deep;
  for (int i = 0; i < 200000; ++i) deep += "{\"a\":";
  deep += "1";
  for (int i = 0; i < 200000; ++i) deep += "}";
  std::string e = error_of([&] { parse_json_text(deep, "deep.json"); });
  EXPECT_TRUE(has(e, "deep.json") && has(e, "nested deeper")) << e;
  std::string ok;
  for (int i = 0; i < kMaxJsonDepth - 1; ++i) ok += "[";
  for (int i = 0; i < kMaxJsonDepth - 1; ++i) ok += "]";
  EXPECT_EQ(error_of([&] { parse_json_text(ok, "ok.json"); }), "");
  e = error_of([&] { parse_json_text(R"({"a": 1, "b": {"c": 1, "c": 2}})", "dup.json"); });
  EXPECT_TRUE(has(e, "dup.json") && has(e, "'c'") && has(e, "twice")) << e;
  // The same key in two different objects is fine.
  EXPECT_EQ(error_of([&] { parse_json_text(R"({"a": {"c": 1}, "b": {"c": 2}})", "x"); }), "");
}

TEST(JsonRead, TypeErrorsDeepInADocumentNameTheFileAndKey) {
  const json j = json::parse(R"({"model": {"vocab": {"a": "not a number"}}})");
  std::string e = error_of([&] {
    with_json_context("tok.json", [&] { return j["model"]["vocab"]["a"].get<int>(); });
  });
  EXPECT_TRUE(has(e, "tok.json") && has(e, "/model/vocab/a")) << e;
}

}  // namespace
