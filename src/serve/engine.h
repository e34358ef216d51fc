// The generation engine behind `bwla serve`: P slots share one loaded model,
// each with its own KV cache; a single scheduler thread admits queued requests
// into free slots (prefill) and advances every active slot by one token per
// step with ONE batched forward (continuous batching: the linears run once on
// all active rows, as one packed GEMM instead of P GEMVs).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/forward.h"
#include "model/model.h"
#include "model/sampling.h"
#include "tokenizer/tokenizer.h"

namespace bwla::serve {

struct GenParams {
  int max_tokens = 16;
  SamplingParams sampling;         // temperature <= 0: greedy
  std::vector<std::string> stop;   // generation ends before the first occurrence
  int logprobs = -1;               // -1: none; k >= 0: token logprob + top k alternatives
  bool prompt_logprobs = false;    // echo: score the prompt's tokens too
};

struct TokenInfo {
  int id = 0;
  std::string text;        // the token's bytes (token_bytes)
  bool has_logprob = false;  // the first prompt token has none
  double logprob = 0;
  std::vector<std::pair<std::string, double>> top;  // best first
};

// One request's state, shared by the HTTP handler (reader) and the engine
// (writer) under `mu`.
struct Job {
  std::mutex mu;
  std::condition_variable cv;
  // Streamed text not yet taken by the handler (complete UTF-8, held back
  // while it could be the start of a stop string).
  std::string pending;
  std::vector<TokenInfo> pending_tokens;  // generated tokens matching `pending` (logprobs)
  bool done = false;
  std::string error;  // set with done when the request failed
  // Final results (valid once done).
  std::string text;                   // the whole continuation, stop string excluded
  std::vector<TokenInfo> prompt_tokens_info;  // prompt_logprobs
  std::vector<TokenInfo> tokens;      // generated tokens (logprobs)
  std::string finish_reason;          // "stop" or "length"
  int prompt_tokens = 0, completion_tokens = 0;
  double queued_s = 0, prefill_s = 0, decode_s = 0;
  std::atomic<bool> cancelled{false};  // set by the handler (client gone)

  // Handler side: waits until new text or completion; returns a copy.
  // timeout_ms < 0 waits forever.
  bool wait_for_update(int timeout_ms);
};

struct EngineOptions {
  int parallel = 4;   // slots
  int ctx = 0;        // per-slot context (0 = the model's maximum)
  int queue = 16;     // waiting requests beyond the slots; more → rejected
  int threads = 0;    // OpenMP threads of the engine thread (0 = current setting)
  int prefill_chunk = 256;  // prompt tokens per forward (bounds the logits buffer)
};

struct EngineStats {
  long requests = 0, rejected = 0, cancelled = 0;
  long decode_steps = 0, decoded_tokens = 0;  // tokens / steps = mean batch
  long prefill_tokens = 0;
  int active = 0, queued = 0;
};

class Engine {
 public:
  Engine(const Model& m, const Tokenizer& tok, const EngineOptions& opt);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  int context() const { return ctx_; }
  int parallel() const { return (int)slots_.size(); }
  int queue_capacity() const { return opt_.queue; }
  const Tokenizer& tokenizer() const { return tok_; }
  const Model& model() const { return m_; }

  // Queues a request; nullptr when the queue is full or the engine is
  // stopping. The prompt must be non-empty and prompt + max_tokens must fit the
  // context (the caller validates; violations are bugs).
  std::shared_ptr<Job> submit(std::vector<int> prompt, GenParams p);
  // Stops accepting work; queued requests fail; active ones run to their end
  // (drain) or are cancelled (!drain). Blocks until the scheduler exits.
  void stop(bool drain);
  // Cancels every active request (a second SIGINT during a drain).
  void cancel_active();
  bool stopping() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stopping_;
  }
  EngineStats stats() const;

 private:
  struct Slot;
  void loop();
  void start_slot(Slot& s, std::shared_ptr<Job> job, std::vector<int> prompt, GenParams p);
  // Handles a sampled token; returns false when the slot finished.
  bool accept_token(Slot& s, const float* logits);
  void finish(Slot& s, const std::string& reason, const std::string& error = "");
  void flush_text(Slot& s, bool final);

  const Model& m_;
  const Tokenizer& tok_;
  EngineOptions opt_;
  int ctx_;
  int threads_;
  std::vector<std::unique_ptr<Slot>> slots_;
  struct Waiting {
    std::shared_ptr<Job> job;
    std::vector<int> prompt;
    GenParams params;
    double t_submit;
  };
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Waiting> queue_;
  bool stopping_ = false, drain_ = true;
  EngineStats stats_;
  std::thread thread_;
  std::mutex stop_mu_;  // stop() may be called from two threads
};

// Greedy/seeded sampling helpers shared with tests.
// The k best (id, logprob), best first (logprobs as model/logprob.h's).
std::vector<std::pair<int, double>> top_logprobs(const float* logits, int vocab, int k);


}  // namespace bwla::serve
