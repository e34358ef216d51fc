// The HTTP front of `bwla serve` (cpp-httplib): OpenAI-compatible routes over
// an Engine. Handlers validate, submit to the engine and wait (or stream
// server-sent events); one log line per request.
#pragma once
#include <memory>
#include <string>

#include "io/json.h"
#include "serve/chat_template.h"
#include "serve/engine.h"

namespace bwla::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (see bound_port)
  size_t max_body_bytes = 1 << 20;  // larger bodies get 413
  std::string model_name;           // "id" in /v1/models and in responses
  json model_info;                  // extra fields of the /v1/models entry
  bool log_requests = true;
};

class HttpServer {
 public:
  HttpServer(Engine& engine, const ChatTemplate& tmpl, const ServerOptions& opt);
  ~HttpServer();
  // Binds the socket; returns the port. Throws bwla::Error when it cannot.
  int bind();
  // Serves until stop(); returns false when listening failed.
  bool run();
  // Thread-safe; also from a signal-watching thread.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bwla::serve
