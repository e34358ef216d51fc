#include "io/output_path.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json.h"

namespace bwla {
namespace fs = std::filesystem;

namespace {

// The parsed JSON object in `path`, or a discarded value if it is not one.
nlohmann::json read_json_quietly(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || fs::file_size(path, ec) > (1u << 24)) return {};
  std::ifstream f(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : nlohmann::json();
}

bool has_marker(const fs::path& dir) {
  auto j = read_json_quietly(dir / kOutputMarker);
  return j.is_object() && j.value("written_by", "") == "bwla";
}

// Outputs of builds before the marker: fake-quant and packed models.
bool is_legacy_quantized(const fs::path& dir) {
  auto j = read_json_quietly(dir / "config.json");
  if (!j.is_object() || !j.contains("quantization_config")) return false;
  const auto& q = j["quantization_config"];
  return q.is_object() && q.contains("quant_method") && q["quant_method"] == "bwla";
}

// quantize's OUT.partial of builds before the marker: state.json with the settings.
bool is_legacy_partial(const fs::path& dir) {
  auto j = read_json_quietly(dir / "state.json");
  return j.is_object() && j.contains("method") && j.contains("model");
}

bool is_empty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::is_empty(p, ec) && !ec;
}

// Absolute, with symbolic links and "." / ".." resolved as far as the path exists.
fs::path resolved(const std::string& p, const std::string& option) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::absolute(p, ec), ec);
  BWLA_CHECK(!ec, "{} '{}': cannot resolve the path: {}", option, p, ec.message());
  return r;
}

// True if `a` is `b` or a directory above it.
bool is_same_or_ancestor(const fs::path& a, const fs::path& b) {
  auto ai = a.begin(), bi = b.begin();
  for (; ai != a.end(); ++ai, ++bi) {
    if (ai->empty()) continue;  // trailing separator
    if (bi == b.end() || *ai != *bi) return false;
  }
  return true;
}

void check_not_input(const std::string& out, const fs::path& rout,
                     const std::vector<std::string>& inputs, const std::string& option) {
  for (const auto& in : inputs) {
    if (in.empty()) continue;
    if (is_same_or_ancestor(rout, resolved(in, "input")))
      fail("{} '{}' is or contains the input '{}'; choose another output path", option, out, in);
  }
  std::error_code ec;
  fs::path cwd = fs::current_path(ec);
  if (!ec && is_same_or_ancestor(rout, fs::weakly_canonical(cwd, ec)))
    fail("{} '{}' is the current directory or one above it; choose another output path", option,
         out);
}

void check_path_syntax(const std::string& out, const std::string& option) {
  BWLA_CHECK(!out.empty(), "{}: the output path is empty", option);
  std::error_code ec;
  BWLA_CHECK(!fs::is_symlink(out, ec), "{} '{}' is a symbolic link; give the path it points to",
             option, out);
}

// Makes sure the directory that will hold `p` exists (creating it if needed).
void ensure_parent(const fs::path& p, const std::string& out, const std::string& option) {
  fs::path parent = p.parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  if (fs::is_directory(parent, ec)) return;
  if (fs::exists(parent, ec))
    fail("{} '{}': '{}' exists and is not a directory", option, out, parent.string());
  fs::create_directories(parent, ec);
  if (ec) fail("{} '{}': cannot create the directory '{}': {}", option, out, parent.string(),
               ec.message());
}

// Probes that the directory to hold `rout` is writable now, not after hours of work.
void check_parent_writable(const fs::path& rout, const std::string& out, const std::string& option) {
  const fs::path parent = rout.parent_path();
  if (::access(parent.c_str(), W_OK) != 0)
    fail("{} '{}': the directory '{}' is not writable: {}", option, out, parent.string(),
         std::strerror(errno));
}

void write_marker(const fs::path& dir, const std::string& command) {
  nlohmann::json m = {{"written_by", "bwla"}, {"command", command}};
  write_text_file_atomic((dir / kOutputMarker).string(), m.dump() + "\n");
}

void remove_tree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) fail("cannot remove '{}': {}", p.string(), ec.message());
}

}  // namespace

std::string normalized_output_path(const std::string& out) {
  fs::path p = fs::path(out).lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p.string();
}

bool is_bwla_output_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec) || fs::is_symlink(dir, ec)) return false;
  return has_marker(dir) || is_legacy_quantized(dir) || is_legacy_partial(dir);
}

namespace {
// The checks every output path gets; `existing` judges what is already there.
void check_output_path(const std::string& out, const std::vector<std::string>& inputs,
                       const std::string& option,
                       const std::function<void(const fs::file_status&)>& existing) {
  check_path_syntax(out, option);
  const fs::path rout = resolved(out, option);
  check_not_input(out, rout, inputs, option);
  std::error_code ec;
  const auto st = fs::status(out, ec);
  if (fs::exists(st))
    existing(st);
  else
    ensure_parent(rout, out, option);
  check_parent_writable(rout, out, option);
}
}  // namespace

void check_output_dir(const std::string& out, const std::vector<std::string>& inputs,
                      const std::string& option) {
  check_output_path(out, inputs, option, [&](const fs::file_status& st) {
    if (!fs::is_directory(st))
      fail("{} '{}' exists and is not a directory; bwla will not replace it", option, out);
    if (!is_empty_dir(out) && !is_bwla_output_dir(out))
      fail("{} '{}' is a non-empty directory that bwla did not write; bwla replaces only its own "
           "outputs (remove it yourself or choose another path)",
           option, out);
  });
}

void check_output_file(const std::string& out, const std::vector<std::string>& inputs,
                       const std::string& option, const OwnedFileTest& ours) {
  check_output_path(out, inputs, option, [&](const fs::file_status& st) {
    if (fs::is_directory(st)) fail("{} '{}' is a directory; give a file path", option, out);
    if (!fs::is_regular_file(st) || !ours(out))
      fail("{} '{}' exists and was not written by bwla; bwla will not replace it (remove it "
           "yourself or choose another path)",
           option, out);
  });
}

void check_work_dir(const std::string& dir, const std::string& option) {
  std::error_code ec;
  if (fs::is_symlink(dir, ec))
    fail("{}: '{}' is a symbolic link; bwla will not use it as its work directory", option, dir);
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir, ec))
    fail("{}: '{}' exists and is not a directory; bwla needs that path for its work files "
         "(remove it or choose another output path)",
         option, dir);
  if (!is_empty_dir(dir) && !is_bwla_output_dir(dir))
    fail("{}: '{}' is a directory that bwla did not write; bwla needs that path for its work "
         "files (remove it or choose another output path)",
         option, dir);
}

void claim_work_dir(const std::string& dir, const std::string& command) {
  check_work_dir(dir, "work directory");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create '{}': {}", dir, ec.message());
  if (!has_marker(dir)) write_marker(dir, command);
}

void remove_owned_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  BWLA_CHECK(is_empty_dir(dir) || is_bwla_output_dir(dir),
             "'{}' was not written by bwla; it is left as it is", dir);
  remove_tree(dir);
}

std::string temp_sibling(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  for (;;) {
    std::string t = path + ".bwla-tmp." + std::to_string(::getpid()) + "." +
                    std::to_string(counter.fetch_add(1));
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(t, ec))) return t;
  }
}

StagedDir::StagedDir(std::string out, const std::vector<std::string>& inputs,
                     const std::string& option, const std::string& command)
    : out_(std::move(out)) {
  check_output_dir(out_, inputs, option);
  out_ = normalized_output_path(out_);
  tmp_ = out_ + ".tmp";
  check_work_dir(tmp_, option);
  if (fs::exists(tmp_)) remove_tree(tmp_);
  std::error_code ec;
  fs::create_directories(tmp_, ec);
  if (ec) fail("{} '{}': cannot create '{}': {}", option, out_, tmp_, ec.message());
  write_marker(tmp_, command);
}

StagedDir::~StagedDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);  // ours: created by the constructor
}

void StagedDir::commit() {
  BWLA_ASSERT(!committed_, "'{}' committed twice", out_);
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(out_, ec))) {
    if (std::rename(tmp_.c_str(), out_.c_str()) != 0)
      fail("cannot rename '{}' to '{}': {}", tmp_, out_, std::strerror(errno));
    committed_ = true;
    return;
  }
  // Checked again: the old output may have changed during a long run.
  BWLA_CHECK(!fs::is_symlink(out_, ec) && (is_empty_dir(out_) || is_bwla_output_dir(out_)),
             "'{}' changed while bwla was working and is no longer a bwla output; the new output "
             "is left in '{}'",
             out_, tmp_);
  if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, out_.c_str(), RENAME_EXCHANGE) == 0) {
    committed_ = true;
    remove_tree(tmp_);  // now the old output
    return;
  }
  if (errno != EINVAL && errno != ENOSYS)
    fail("cannot move '{}' into place at '{}': {}", tmp_, out_, std::strerror(errno));
  // No atomic exchange on this file system: rename the old output aside, put
  // it back if the new one cannot be moved in.
  const std::string aside = temp_sibling(out_);
  if (std::rename(out_.c_str(), aside.c_str()) != 0)
    fail("cannot rename '{}' aside: {}", out_, std::strerror(errno));
  if (std::rename(tmp_.c_str(), out_.c_str()) != 0) {
    const int err = errno;
    std::rename(aside.c_str(), out_.c_str());
    fail("cannot rename '{}' to '{}': {} (the previous output is unchanged)", tmp_, out_,
         std::strerror(err));
  }
  committed_ = true;
  remove_tree(aside);
}

}  // namespace bwla
