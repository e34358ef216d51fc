// bwla serve MODEL: the OpenAI-compatible HTTP API over any model bwla loads.
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <thread>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "format/model_loader.h"
#include "serve/http_server.h"

namespace bwla::cli {

Runner register_serve(CLI::App& app) {
  auto* sub = app.add_subcommand("serve", "serve a model over the OpenAI-compatible HTTP API");
  struct Opts {
    std::string dir, alias;
    serve::ServerOptions server;
    serve::EngineOptions engine;
    long max_body_kib = 1024;
    Common common;
  };
  // Option values: owned by the returned runner (no function-level statics).
  auto args = std::make_shared<Opts>();
  Opts& o = *args;
  sub->add_option("model", o.dir, "model directory (fp32/bf16 checkpoint, fake-quant or packed)")->required();
  sub->add_option("--host", o.server.host, "address to listen on (127.0.0.1: this machine only)");
  sub->add_option("--port", o.server.port, "port (0 = any free port, printed at start)")
      ->check(CLI::Range(0, 65535));
  sub->add_option("--parallel", o.engine.parallel, "slots: requests generated at once, each with its own KV cache")
      ->check(CLI::Range(1, 256));
  sub->add_option("--ctx", o.engine.ctx, "context per slot (0 = the model's maximum)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--queue", o.engine.queue, "requests that may wait for a slot; more get 503")
      ->check(CLI::Range(0, 4096));
  sub->add_option("--max-body-kib", o.max_body_kib, "largest request body accepted (KiB); larger get 413")
      ->check(CLI::Range(1L, 1L << 20));
  sub->add_option("--alias", o.alias, "model id in responses (default: the directory's name)");
  add_common(sub, o.common);
  return [args] {
    Opts& o = *args;
    apply_common(o.common);
    // SIGINT/SIGTERM: the handler (on whichever thread the kernel picks, as
    // OpenMP and BLAS threads may exist already) only writes the signal
    // number into a pipe; a watcher thread reads it and does the work.
    static int sig_pipe[2] = {-1, -1};
    BWLA_CHECK(pipe(sig_pipe) == 0, "serve: cannot create a pipe: {}", std::strerror(errno));
    struct sigaction sa {};
    sa.sa_handler = [](int sig) {
      const unsigned char b = (unsigned char)sig;
      [[maybe_unused]] ssize_t r = write(sig_pipe[1], &b, 1);
    };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, nullptr);  // also when the shell started us with SIGINT ignored
    sigaction(SIGTERM, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not death

    auto model = load_model(o.dir, /*prepack_dense=*/true);
    auto tok = Tokenizer::load_dir(o.dir);
    check_tokenizer_vocab(*tok, model->cfg.vocab, o.dir);
    auto tmpl = serve::ChatTemplate::load_dir(o.dir);
    if (tmpl.unrecognised)
      log_warn("{}/tokenizer_config.json: chat_template of no known family; chat uses plain concatenation",
               o.dir);
    o.engine.threads = num_threads();
    serve::Engine engine(*model, *tok, o.engine);
    o.server.model_name = !o.alias.empty() ? o.alias
                                           : std::filesystem::path(o.dir).lexically_normal().filename().string();
    if (o.server.model_name.empty()) o.server.model_name = "bwla";
    o.server.max_body_bytes = (size_t)o.max_body_kib << 10;
    o.server.model_info = {{"architecture", model->cfg.arch_name},
                           {"vocab_size", model->cfg.vocab},
                           {"hidden_size", model->cfg.hidden},
                           {"layers", model->cfg.n_layers}};
    serve::HttpServer server(engine, tmpl, o.server);
    const int port = server.bind();
    // First SIGINT/SIGTERM: refuse new work (503), let active requests finish,
    // then stop listening. A second one cancels the active requests.
    std::atomic<bool> ending{false};
    std::thread stopper;
    std::thread watcher([&] {
      for (int n = 0;; ++n) {
        unsigned char b = 0;
        if (read(sig_pipe[0], &b, 1) != 1 && errno == EINTR) continue;
        if (ending) return;
        const int sig = b;
        if (n == 0) {
          log_info("serve: signal {}: finishing {} active request(s); a second signal cancels them",
                   sig, engine.stats().active);
          stopper = std::thread([&] {
            engine.stop(/*drain=*/true);
            server.stop();
          });
        } else {
          log_info("serve: signal {}: cancelling the active requests", sig);
          engine.cancel_active();
        }
      }
    });
    log_info("serve: {} on http://{}:{} ({} slots x {} tokens, queue {}, {} threads, chat: {})",
             o.server.model_name, o.server.host, port, engine.parallel(), engine.context(),
             o.engine.queue, num_threads(), serve::chat_format_name(tmpl.format));
    fmt::print("listening on http://{}:{}\n", o.server.host, port);
    std::fflush(stdout);
    const bool ok = server.run();
    ending = true;
    {
      const unsigned char b = 0;  // wakes the watcher
      [[maybe_unused]] ssize_t r = write(sig_pipe[1], &b, 1);
    }
    watcher.join();
    if (stopper.joinable()) stopper.join();
    engine.stop(true);
    log_info("serve: stopped ({} requests, {} rejected)", engine.stats().requests, engine.stats().rejected);
    return ok ? 0 : 1;
  };
}

}  // namespace bwla::cli
