// Runs the built bwla binary (BWLA_CLI_PATH) with stdout and stderr captured
// in separate files, for the test_cli_* end-to-end tests.
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tmpdir.h"

namespace bwla::test {

struct RunResult {
  bool exited = false;  // false: killed by a signal
  int code = -1;        // exit status when exited
  int signal = 0;
  std::string out, err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Exit status, signal and both streams, for test failure messages.
inline std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.code) + (r.exited ? "" : " signal " + std::to_string(r.signal)) +
         "\n--- stdout ---\n" + r.out + "\n--- stderr ---\n" + r.err;
}

// Runs the command line argv (argv[0] looked up on the PATH) with stdout and
// stderr redirected to separate files.
inline RunResult run_command(const std::vector<std::string>& argv) {
  static TempDir capture;
  static int n = 0;
  const std::string out_file = capture.file("out" + std::to_string(n));
  const std::string err_file = capture.file("err" + std::to_string(n));
  ++n;
  std::string cmd;
  for (auto& a : argv) {
    if (!cmd.empty()) cmd += ' ';
    cmd += shell_quote(a);
  }
  cmd += " </dev/null >" + shell_quote(out_file) + " 2>" + shell_quote(err_file);
  int st = std::system(cmd.c_str());
  RunResult r;
  if (st != -1 && WIFEXITED(st)) {
    r.exited = true;
    r.code = WEXITSTATUS(st);
    // The shell reports a child killed by signal N as exit status 128+N.
    if (r.code > 128) {
      r.exited = false;
      r.signal = r.code - 128;
    }
  } else if (st != -1 && WIFSIGNALED(st)) {
    r.signal = WTERMSIG(st);
  }
  r.out = slurp(out_file);
  r.err = slurp(err_file);
  return r;
}

// Runs `bwla ARGS...` with stdout and stderr redirected to separate files.
inline RunResult run_bwla(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BWLA_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

}  // namespace bwla::test
