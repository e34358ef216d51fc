// Where bwla may write, and how it replaces an earlier output.
//
// The rule (docs/GUARANTEES.md): bwla replaces only what bwla wrote, and
// replaces it atomically.
//  * An output directory may be absent, an empty directory, or a directory a
//    bwla command wrote (it holds the marker file kOutputMarker, or, for
//    outputs of earlier builds, a config.json whose quantization_config says
//    quant_method "bwla", or quantize's state.json). Any other directory, and
//    any file, is refused.
//  * An output file may be absent or a file bwla wrote (the caller says how
//    to recognise one); a directory or any other file is refused.
//  * An output is never one of the command's inputs, nor a directory holding
//    one, nor the current directory or one above it.
//  * A directory is built as OUT.tmp and swapped into place in one rename
//    (renameat2 RENAME_EXCHANGE where the file system has it, else the old
//    output is renamed aside first and put back if the second rename fails);
//    only then is the old output removed. An interrupted write leaves the
//    previous output as it was.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace bwla {

// Name of the file every bwla-written directory holds (a small JSON object).
inline constexpr const char* kOutputMarker = ".bwla-output";

// `out` without a trailing separator or "." components, so that OUT + ".tmp"
// is a sibling of OUT, never a child.
std::string normalized_output_path(const std::string& out);

// True if `dir` is a directory a bwla command wrote (see above).
bool is_bwla_output_dir(const std::string& dir);

// Throws bwla::Error, naming `option` (e.g. "-o"), unless `out` may be
// written as an output directory by a command reading `inputs`.
void check_output_dir(const std::string& out, const std::vector<std::string>& inputs,
                      const std::string& option);

// Recognises a file bwla wrote, from its path (the file exists).
using OwnedFileTest = std::function<bool(const std::string& path)>;
// The same for an output file; creates missing parent directories.
void check_output_file(const std::string& out, const std::vector<std::string>& inputs,
                       const std::string& option, const OwnedFileTest& ours);

// A work directory bwla keeps beside an output (quantize's OUT.partial):
// throws unless it is absent or bwla's (marker), so it may be reused or removed.
void check_work_dir(const std::string& dir, const std::string& option);
// Creates `dir` (if absent) with the marker; `dir` must pass check_work_dir.
void claim_work_dir(const std::string& dir, const std::string& command);
// Removes a directory bwla wrote; refuses (throws) any other.
void remove_owned_dir(const std::string& dir);

// A fresh path beside `path` for writing a file that is then renamed onto
// `path`: unique per process and call, so no unrelated file is ever touched.
std::string temp_sibling(const std::string& path);

// An output directory under construction: OUT.tmp, swapped into place by commit().
class StagedDir {
 public:
  // Checks `out` as check_output_dir does, removes a stale OUT.tmp that bwla
  // wrote (refuses one it did not) and creates OUT.tmp holding the marker.
  StagedDir(std::string out, const std::vector<std::string>& inputs, const std::string& option,
            const std::string& command);
  ~StagedDir();  // removes OUT.tmp unless committed
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::string& path() const { return tmp_; }
  std::string file(const std::string& name) const { return tmp_ + "/" + name; }
  // Puts OUT.tmp in place of OUT atomically, then removes the old OUT.
  void commit();

 private:
  std::string out_, tmp_;
  bool committed_ = false;
};

}  // namespace bwla
