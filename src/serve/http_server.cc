#include "serve/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>

#include <fmt/format.h>

#include "core/error.h"
#include "core/log.h"
#include "serve/api.h"

namespace bwla::serve {

namespace {

using Clock = std::chrono::steady_clock;

// Per-request facts the logger prints (handler, stream provider and logger
// run on the same worker thread).
thread_local Clock::time_point t_request;
thread_local std::string log_note;

// Generated text can hold invalid UTF-8 (a model may emit any byte); JSON
// replaces such bytes instead of failing the response.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, e.body()); }

// Byte offsets of each token of ids in decode(ids) (prompt echo).
std::vector<size_t> prompt_offsets(const Tokenizer& tok, const std::vector<int>& ids) {
  std::vector<size_t> off(ids.size(), 0);
  std::vector<int> pre;
  for (size_t i = 0; i < ids.size(); ++i) {
    off[i] = pre.empty() ? 0 : tok.decode(pre, true).size();
    pre.push_back(ids[i]);
  }
  return off;
}

// OpenAI completions logprobs: {tokens, token_logprobs, top_logprobs, text_offset}.
json completion_logprobs(const std::vector<TokenInfo>& prompt, const std::vector<size_t>& poff,
                         const std::vector<TokenInfo>& gen, size_t gen_base) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  auto add = [&](const TokenInfo& t, size_t off) {
    tokens.push_back(t.text);
    if (t.has_logprob) {
      lps.push_back(t.logprob);
      json top = json::object();
      for (const auto& [s, lp] : t.top)
        if (!top.contains(s)) top[s] = lp;
      tops.push_back(top);
    } else {
      lps.push_back(nullptr);
      tops.push_back(nullptr);
    }
    offs.push_back(off);
  };
  for (size_t i = 0; i < prompt.size(); ++i) add(prompt[i], i < poff.size() ? poff[i] : 0);
  size_t off = gen_base;
  for (const auto& t : gen) {
    add(t, off);
    off += t.text.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back((int)c);
  return b;
}

// OpenAI chat logprobs: {content: [{token, logprob, bytes, top_logprobs}]}.
json chat_logprobs(const std::vector<TokenInfo>& gen) {
  json content = json::array();
  for (const auto& t : gen) {
    json top = json::array();
    for (const auto& [s, lp] : t.top) top.push_back({{"token", s}, {"logprob", lp}, {"bytes", bytes_of(s)}});
    content.push_back({{"token", t.text}, {"logprob", t.logprob}, {"bytes", bytes_of(t.text)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

}  // namespace

struct HttpServer::Impl {
  Impl(Engine& e, const ChatTemplate& t, const ServerOptions& o) : eng(e), tmpl(t), opt(o) {}
  Engine& eng;
  const ChatTemplate& tmpl;
  ServerOptions opt;
  httplib::Server svr;
  std::atomic<long> next_id{1};
  int port = -1;

  std::string new_id(const char* prefix) { return fmt::format("{}-{}", prefix, next_id++); }
  long now() const { return (long)std::time(nullptr); }

  void routes();
  void completions(const httplib::Request& req, httplib::Response& res, bool chat);
  std::vector<std::shared_ptr<Job>> submit_all(const CompletionRequest& r);
  void stream(httplib::Response& res, const CompletionRequest& r, std::shared_ptr<Job> job,
              bool chat, bool include_usage);
};

HttpServer::HttpServer(Engine& engine, const ChatTemplate& tmpl, const ServerOptions& opt)
    : impl_(std::make_unique<Impl>(engine, tmpl, opt)) {
  impl_->routes();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  auto& s = impl_->svr;
  const int want = impl_->opt.port;
  int port = want;
  if (want == 0) {
    port = s.bind_to_any_port(impl_->opt.host);
    BWLA_CHECK(port > 0, "serve: cannot bind any port on '{}'", impl_->opt.host);
  } else {
    BWLA_CHECK(s.bind_to_port(impl_->opt.host, want),
               "serve: cannot bind {}:{} (in use, or not an address of this machine)",
               impl_->opt.host, want);
  }
  impl_->port = port;
  return port;
}

bool HttpServer::run() { return impl_->svr.listen_after_bind(); }

void HttpServer::stop() {
  if (impl_->svr.is_running()) impl_->svr.stop();
}

std::vector<std::shared_ptr<Job>> HttpServer::Impl::submit_all(const CompletionRequest& r) {
  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& p : r.prompts) {
    auto j = eng.submit(p.ids, r.gen);
    if (!j) {
      for (auto& o : jobs) o->cancelled = true;
      throw ApiError(503,
                     eng.stopping() ? "the server is shutting down"
                                    : "the server is busy: every slot is in use and the queue is full; retry later",
                     "", "server_error");
    }
    jobs.push_back(std::move(j));
  }
  return jobs;
}

void HttpServer::Impl::stream(httplib::Response& res, const CompletionRequest& r,
                              std::shared_ptr<Job> job, bool chat, bool include_usage) {
  const std::string id = new_id(chat ? "chatcmpl" : "cmpl");
  const long created = now();
  const std::string model = opt.model_name;
  const bool echo = r.echo;
  const std::string echo_text = r.echo ? r.prompts[0].text : "";
  const int logprobs = r.gen.logprobs;
  res.set_header("Cache-Control", "no-cache");
  auto chunk = [=](const std::string& text, const json& lp, const json& finish) {
    json c;
    if (chat) {
      json delta = json::object();
      if (!text.empty()) delta["content"] = text;
      c = {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model},
           {"choices", json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}}})}};
    } else {
      c = {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
           {"choices", json::array({{{"text", text}, {"index", 0}, {"logprobs", lp}, {"finish_reason", finish}}})}};
    }
    return "data: " + dump(c) + "\n\n";
  };
  struct State {
    bool started = false;
    size_t gen_off = 0;
  };
  auto st = std::make_shared<State>();
  res.set_chunked_content_provider(
      "text/event-stream",
      [=](size_t, httplib::DataSink& sink) {
        if (!st->started) {
          st->started = true;
          std::string first;
          if (chat) {
            json c = {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model},
                      {"choices", json::array({{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                                {"logprobs", nullptr}, {"finish_reason", nullptr}}})}};
            first = "data: " + dump(c) + "\n\n";
          } else if (echo) {
            first = chunk(echo_text, nullptr, nullptr);
          }
          st->gen_off = echo_text.size();
          if (!first.empty() && !sink.write(first.data(), first.size())) {
            job->cancelled = true;
            return false;
          }
        }
        job->wait_for_update(200);
        std::string text;
        std::vector<TokenInfo> toks;
        bool done;
        {
          std::lock_guard<std::mutex> lk(job->mu);
          text.swap(job->pending);
          toks.swap(job->pending_tokens);
          done = job->done;
        }
        std::string out;
        if (!text.empty()) {
          json lp = nullptr;
          if (!chat && logprobs >= 0) {
            lp = completion_logprobs({}, {}, toks, st->gen_off);
          }
          for (const auto& t : toks) st->gen_off += t.text.size();
          out += chunk(text, lp, nullptr);
        }
        if (done) {
          if (!job->error.empty()) {
            out += "data: " + dump(ApiError(500, job->error, "", "server_error").body()) + "\n\n";
          } else {
            out += chunk("", nullptr, job->finish_reason);
            if (include_usage) {
              json u = {{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
                        {"created", created}, {"model", model}, {"choices", json::array()},
                        {"usage", {{"prompt_tokens", job->prompt_tokens},
                                   {"completion_tokens", job->completion_tokens},
                                   {"total_tokens", job->prompt_tokens + job->completion_tokens}}}};
              out += "data: " + dump(u) + "\n\n";
            }
          }
          out += "data: [DONE]\n\n";
        }
        if (!out.empty() && !sink.write(out.data(), out.size())) {
          job->cancelled = true;  // the client went away: free the slot
          return false;
        }
        if (done) {
          log_note = fmt::format("stream prompt {} + {} tokens, {}{}", job->prompt_tokens,
                                 job->completion_tokens, job->finish_reason,
                                 job->decode_s > 0 && job->completion_tokens > 1
                                     ? fmt::format(", {:.1f} tok/s", (job->completion_tokens - 1) / job->decode_s)
                                     : "");
          sink.done();
        }
        return true;
      },
      [job](bool success) {
        if (!success) job->cancelled = true;
      });
}

void HttpServer::Impl::completions(const httplib::Request& req, httplib::Response& res, bool chat) {
  json body = parse_body(req.body);
  const Tokenizer& tok = eng.tokenizer();
  CompletionRequest r = chat ? parse_chat(body, tok, eng.context(), tmpl)
                             : parse_completion(body, tok, eng.context());
  bool include_usage = false;
  if (auto it = body.find("stream_options"); it != body.end() && it->is_object())
    include_usage = it->value("include_usage", false);
  auto jobs = submit_all(r);
  if (r.stream) {
    stream(res, r, jobs[0], chat, include_usage);
    return;
  }
  for (auto& j : jobs) {
    std::unique_lock<std::mutex> lk(j->mu);
    j->cv.wait(lk, [&] { return j->done; });
  }
  long ptok = 0, ctok = 0;
  double decode_s = 0;
  json choices = json::array();
  for (size_t i = 0; i < jobs.size(); ++i) {
    Job& j = *jobs[i];
    if (!j.error.empty())
      throw ApiError(eng.stopping() ? 503 : 500, j.error, "", "server_error");
    ptok += j.prompt_tokens;
    ctok += j.completion_tokens;
    decode_s += j.decode_s;
    if (chat) {
      choices.push_back({{"index", i},
                         {"message", {{"role", "assistant"}, {"content", j.text}}},
                         {"logprobs", r.chat_logprobs ? chat_logprobs(j.tokens) : json(nullptr)},
                         {"finish_reason", j.finish_reason}});
    } else {
      const std::string& ptext = r.prompts[i].text;
      json lp = nullptr;
      if (r.gen.logprobs >= 0) {
        std::vector<size_t> poff;
        if (r.echo) poff = prompt_offsets(tok, r.prompts[i].ids);
        lp = completion_logprobs(r.echo ? j.prompt_tokens_info : std::vector<TokenInfo>{}, poff,
                                 j.tokens, r.echo ? ptext.size() : 0);
      }
      choices.push_back({{"text", r.echo ? ptext + j.text : j.text},
                         {"index", i},
                         {"logprobs", lp},
                         {"finish_reason", j.finish_reason}});
    }
  }
  json out = {{"id", new_id(chat ? "chatcmpl" : "cmpl")},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", now()},
              {"model", opt.model_name},
              {"choices", choices},
              {"usage", {{"prompt_tokens", ptok}, {"completion_tokens", ctok}, {"total_tokens", ptok + ctok}}}};
  if (chat) out["chat_template"] = chat_format_name(tmpl.format);
  log_note = fmt::format("prompt {} + {} tokens{}", ptok, ctok,
                         jobs.size() > 1 ? fmt::format(" in {} choices", jobs.size()) : "");
  send_json(res, 200, out);
}

void HttpServer::Impl::routes() {
  svr.set_payload_max_length(opt.max_body_bytes);
  const int workers = eng.parallel() + eng.queue_capacity() + 24;
  svr.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  svr.set_keep_alive_timeout(2);
  svr.set_tcp_nodelay(true);
  svr.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    t_request = Clock::now();
    log_note.clear();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  if (opt.log_requests)
    svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t_request).count();
      log_info("{} {} {} {} {:.1f} ms{}{}", req.remote_addr, req.method, req.path, res.status, ms,
               log_note.empty() ? "" : " ", log_note);
    });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg = res.status == 404   ? fmt::format("no route {} {}", req.method, req.path)
                      : res.status == 413 ? "the request body is larger than this server accepts"
                                          : fmt::format("HTTP {}", res.status);
    send_json(res, res.status, ApiError(res.status, msg).body());
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      log_warn("serve: internal error: {}", e.what());
      send_json(res, 500, ApiError(500, e.what(), "", "server_error").body());
    } catch (...) {
      send_json(res, 500, ApiError(500, "unknown internal error", "", "server_error").body());
    }
  });
  auto guarded = [](auto fn) {
    return [fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const Error& e) {  // bwla's own validation (e.g. a token id out of range)
        send_json(res, 400, ApiError(400, e.what()).body());
      }
    };
  };
  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    EngineStats s = eng.stats();
    send_json(res, eng.stopping() ? 503 : 200,
              {{"status", eng.stopping() ? "stopping" : "ok"},
               {"slots_idle", eng.parallel() - s.active},
               {"slots_processing", s.active},
               {"queued", s.queued},
               {"requests", s.requests},
               {"rejected", s.rejected},
               {"cancelled", s.cancelled},
               {"decode_steps", s.decode_steps},
               {"decoded_tokens", s.decoded_tokens},
               {"mean_decode_batch", s.decode_steps ? (double)s.decoded_tokens / s.decode_steps : 0.0}});
  });
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json m = opt.model_info;
    m["id"] = opt.model_name;
    m["object"] = "model";
    m["created"] = now();
    m["owned_by"] = "bwla";
    m["context_length"] = eng.context();
    m["parallel"] = eng.parallel();
    m["chat_template"] = chat_format_name(tmpl.format);
    m["chat_template_note"] = tmpl.unrecognised
                                  ? "tokenizer_config.json has a chat_template of no known family: plain concatenation"
                              : tmpl.format == ChatFormat::Plain
                                  ? "no chat_template in tokenizer_config.json: plain concatenation"
                                  : "from tokenizer_config.json's chat_template";
    send_json(res, 200, {{"object", "list"}, {"data", json::array({m})}});
  });
  svr.Post("/v1/completions", guarded([this](const httplib::Request& q, httplib::Response& r) {
             completions(q, r, false);
           }));
  svr.Post("/v1/chat/completions", guarded([this](const httplib::Request& q, httplib::Response& r) {
             completions(q, r, true);
           }));
  // llama-server's helpers: the server's own tokenization, so a client can
  // build exactly the token sequences bwla scores.
  svr.Post("/tokenize", guarded([this](const httplib::Request& q, httplib::Response& r) {
             json b = parse_body(q.body);
             auto it = b.find("content");
             if (it == b.end() || !it->is_string()) throw ApiError(400, "'content' must be a string", "content");
             bool special = true;
             if (auto a = b.find("add_special"); a != b.end()) {
               if (!a->is_boolean()) throw ApiError(400, "'add_special' must be a boolean", "add_special");
               special = a->get<bool>();
             }
             send_json(r, 200, {{"tokens", eng.tokenizer().encode(it->get<std::string>(), special)}});
           }));
  svr.Post("/detokenize", guarded([this](const httplib::Request& q, httplib::Response& r) {
             json b = parse_body(q.body);
             auto it = b.find("tokens");
             if (it == b.end() || !it->is_array()) throw ApiError(400, "'tokens' must be an array of integers", "tokens");
             std::vector<int> ids;
             for (const auto& e : *it) {
               if (!e.is_number_integer() || e.get<long long>() < 0 ||
                   e.get<long long>() >= eng.tokenizer().vocab_size())
                 throw ApiError(400, "'tokens' must hold token ids of this vocabulary", "tokens");
               ids.push_back(e.get<int>());
             }
             send_json(r, 200, {{"content", eng.tokenizer().decode(ids, true)}});
           }));
}

}  // namespace bwla::serve
