#include "serve/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "core/timer.h"
#include "model/logprob.h"

namespace bwla::serve {

namespace {
double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::vector<std::pair<int, double>> top_logprobs(const float* logits, int vocab, int k) {
  k = std::min(k, vocab);
  std::vector<std::pair<int, double>> r;
  if (k <= 0) return r;
  const double lse = log_sum_exp(logits, vocab);
  std::vector<int> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  // Ties broken by the smaller id, so the list does not depend on the sort.
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int i = 0; i < k; ++i) r.push_back({idx[i], (double)logits[idx[i]] - lse});
  return r;
}

bool Job::wait_for_update(int timeout_ms) {
  std::unique_lock<std::mutex> lk(mu);
  auto ready = [&] { return done || !pending.empty(); };
  if (timeout_ms < 0) {
    cv.wait(lk, ready);
    return true;
  }
  return cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), ready);
}

struct Engine::Slot {
  Slot(const ModelConfig& c, int ctx) : cache(c, ctx) {}
  KVCache cache;
  std::shared_ptr<Job> job;
  GenParams p;
  std::unique_ptr<Sampler> sampler;
  std::vector<int> all;  // prompt + generated
  int n_prompt = 0;
  std::string prefix;     // the prompt decoded
  std::string cont;       // the continuation decoded so far
  std::string sent;       // the part of cont already handed to the job
  size_t tokens_sent = 0;
  size_t max_stop = 0;
  std::vector<TokenInfo> prompt_info, tokens;
  int next = -1;  // token to feed at the next decode step (-1: idle)
  double t_start = 0, t_prefill = 0, t_queued = 0;
};

Engine::Engine(const Model& m, const Tokenizer& tok, const EngineOptions& opt)
    : m_(m), tok_(tok), opt_(opt) {
  BWLA_CHECK(opt.parallel >= 1, "--parallel must be at least 1, got {}", opt.parallel);
  BWLA_CHECK(opt.queue >= 0, "--queue must be non-negative, got {}", opt.queue);
  BWLA_CHECK(opt.ctx >= 0 && opt.ctx <= m.cfg.max_pos, "--ctx {} outside [1, {}] (the model's maximum)",
             opt.ctx, m.cfg.max_pos);
  ctx_ = opt.ctx > 0 ? opt.ctx : m.cfg.max_pos;
  threads_ = opt.threads > 0 ? opt.threads : num_threads();
  for (int i = 0; i < opt.parallel; ++i) slots_.push_back(std::make_unique<Slot>(m.cfg, ctx_));
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { stop(false); }

std::shared_ptr<Job> Engine::submit(std::vector<int> prompt, GenParams p) {
  BWLA_ASSERT(!prompt.empty() && (long)prompt.size() + std::max(p.max_tokens, 0) <= ctx_,
              "request of {} prompt + {} new tokens in a context of {}", prompt.size(),
              p.max_tokens, ctx_);
  auto job = std::make_shared<Job>();
  {
    std::lock_guard<std::mutex> lk(mu_);
    int busy = 0;
    for (auto& s : slots_) busy += s->job != nullptr;
    // Free slots take requests at once; beyond them up to `queue` may wait.
    const int free_slots = (int)slots_.size() - busy;
    if (stopping_ || (long)queue_.size() >= (long)opt_.queue + std::max(0, free_slots)) {
      ++stats_.rejected;
      return nullptr;
    }
    ++stats_.requests;
    queue_.push_back({job, std::move(prompt), std::move(p), now_s()});
  }
  cv_.notify_all();
  return job;
}

void Engine::stop(bool drain) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
    drain_ = drain_ && drain;
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> lk(stop_mu_);
  if (thread_.joinable()) thread_.join();
}

void Engine::cancel_active() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    drain_ = false;
    for (auto& s : slots_)
      if (s->job) s->job->cancelled = true;
  }
  cv_.notify_all();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  EngineStats s = stats_;
  s.queued = (int)queue_.size();
  s.active = 0;
  for (auto& sl : slots_) s.active += sl->job != nullptr;
  return s;
}

void Engine::flush_text(Slot& s, bool final) {
  size_t safe = s.cont.size();
  if (!final) {
    safe = complete_utf8_prefix(s.cont);
    // Hold back what could still turn out to be the start of a stop string.
    if (s.max_stop > 1) safe = std::min(safe, s.cont.size() - std::min(s.cont.size(), s.max_stop - 1));
    while (safe > 0 && safe < s.cont.size() && ((unsigned char)s.cont[safe] & 0xC0) == 0x80) --safe;
  }
  // Decoding can, rarely, rewrite earlier text (a byte-fallback sequence
  // completing); what was already streamed cannot be taken back.
  if (safe <= s.sent.size() || s.cont.compare(0, s.sent.size(), s.sent) != 0) return;
  std::string add = s.cont.substr(s.sent.size(), safe - s.sent.size());
  s.sent += add;
  {
    std::lock_guard<std::mutex> lk(s.job->mu);
    s.job->pending += add;
    for (; s.tokens_sent < s.tokens.size(); ++s.tokens_sent)
      s.job->pending_tokens.push_back(s.tokens[s.tokens_sent]);
  }
  s.job->cv.notify_all();
}

void Engine::finish(Slot& s, const std::string& reason, const std::string& error) {
  auto job = s.job;
  if (error.empty()) flush_text(s, true);
  {
    std::lock_guard<std::mutex> lk(job->mu);
    job->text = s.cont;
    job->finish_reason = reason;
    job->error = error;
    job->prompt_tokens = s.n_prompt;
    job->completion_tokens = (int)s.all.size() - s.n_prompt;
    job->prompt_tokens_info = std::move(s.prompt_info);
    job->tokens = std::move(s.tokens);
    for (; s.tokens_sent < job->tokens.size(); ++s.tokens_sent)
      job->pending_tokens.push_back(job->tokens[s.tokens_sent]);
    job->queued_s = s.t_queued;
    job->prefill_s = s.t_prefill;
    job->decode_s = now_s() - s.t_start - s.t_prefill;
    job->done = true;
  }
  job->cv.notify_all();
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (reason == "cancelled") ++stats_.cancelled;
    s.job.reset();
  }
  s.next = -1;
  s.prompt_info.clear();
  s.tokens.clear();
}

bool Engine::accept_token(Slot& s, const float* logits) {
  const int V = m_.cfg.vocab;
  TokenInfo ti;
  double lse = 0;
  if (s.p.logprobs >= 0) {
    lse = log_sum_exp(logits, V);
    for (auto& [id, lp] : top_logprobs(logits, V, s.p.logprobs))
      ti.top.push_back({tok_.token_bytes(id), lp});
  }
  // The sampler may modify what it reads; the logprobs are of the raw logits.
  thread_local std::vector<float> work;
  work.assign(logits, logits + V);
  const int id = s.sampler->sample(work.data(), V);
  if (id == tok_.eos_id() || id == tok_.bos_id()) {
    finish(s, "stop");
    return false;
  }
  ti.id = id;
  ti.text = tok_.token_bytes(id);
  if (s.p.logprobs >= 0) {
    ti.has_logprob = true;
    ti.logprob = (double)logits[id] - lse;
  }
  s.all.push_back(id);
  s.tokens.push_back(std::move(ti));
  std::string full = tok_.decode(s.all, true);
  if (full.compare(0, s.prefix.size(), s.prefix) == 0) {
    s.cont = full.substr(s.prefix.size());
  } else {  // a prompt that does not decode to itself
    std::vector<int> gen(s.all.begin() + s.n_prompt, s.all.end());
    s.cont = tok_.decode(gen, true);
  }
  size_t cut = std::string::npos;
  for (const auto& st : s.p.stop)
    if (!st.empty()) cut = std::min(cut, s.cont.find(st));
  if (cut != std::string::npos) {
    s.cont.resize(cut);
    finish(s, "stop");
    return false;
  }
  const int generated = (int)s.all.size() - s.n_prompt;
  if (generated >= s.p.max_tokens || s.cache.pos >= ctx_) {
    finish(s, "length");
    return false;
  }
  flush_text(s, false);
  s.next = id;
  return true;
}

void Engine::start_slot(Slot& s, std::shared_ptr<Job> job, std::vector<int> prompt, GenParams p) {
  const int V = m_.cfg.vocab, n = (int)prompt.size();
  s.job = std::move(job);
  s.p = std::move(p);
  s.sampler = std::make_unique<Sampler>(s.p.sampling);
  s.all = std::move(prompt);
  s.n_prompt = n;
  s.prefix = tok_.decode(s.all, true);
  s.cont.clear();
  s.sent.clear();
  s.tokens_sent = 0;
  s.max_stop = 0;
  for (const auto& st : s.p.stop) s.max_stop = std::max(s.max_stop, st.size());
  s.prompt_info.clear();
  s.tokens.clear();
  s.cache.pos = 0;
  s.t_start = now_s();
  const bool all_logits = s.p.prompt_logprobs;
  if (all_logits) {
    TokenInfo first;
    first.id = s.all[0];
    first.text = tok_.token_bytes(first.id);
    s.prompt_info.push_back(std::move(first));
  }
  const int chunk = std::max(1, opt_.prefill_chunk);
  thread_local std::vector<float> logits;
  std::vector<float> last(V);
  for (int c0 = 0; c0 < n; c0 += chunk) {
    const int len = std::min(chunk, n - c0);
    logits.resize((size_t)(all_logits ? len : 1) * V);
    forward_tokens(m_, s.all.data() + c0, len, s.cache, logits.data(), all_logits);
    if (all_logits) {
      for (int r = 0; r < len && c0 + r + 1 < n; ++r) {
        const float* row = logits.data() + (size_t)r * V;
        TokenInfo ti;
        ti.id = s.all[c0 + r + 1];
        ti.text = tok_.token_bytes(ti.id);
        ti.has_logprob = true;
        ti.logprob = token_logprob(row, V, ti.id);
        for (auto& [id, lp] : top_logprobs(row, V, std::max(0, s.p.logprobs)))
          ti.top.push_back({tok_.token_bytes(id), lp});
        s.prompt_info.push_back(std::move(ti));
      }
    }
    const float* lastrow = logits.data() + (size_t)(all_logits ? len - 1 : 0) * V;
    std::copy(lastrow, lastrow + V, last.begin());
  }
  s.t_prefill = now_s() - s.t_start;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.prefill_tokens += n;
  }
  if (s.p.max_tokens <= 0) {
    finish(s, "length");
    return;
  }
  accept_token(s, last.data());
}

void Engine::loop() {
  set_num_threads(threads_);
  std::vector<float> logits;
  std::vector<int> toks;
  std::vector<KVCache*> caches;
  std::vector<Slot*> rows;
  for (;;) {
    std::vector<std::pair<Slot*, Waiting>> admit;
    int active = 0;
    for (auto& s : slots_) active += s->next >= 0;
    {
      std::unique_lock<std::mutex> lk(mu_);
      auto has_free = [&] {
        for (auto& s : slots_)
          if (!s->job) return true;
        return false;
      };
      cv_.wait(lk, [&] { return stopping_ || active > 0 || (!queue_.empty() && has_free()); });
      if (stopping_) {
        for (auto& w : queue_) {
          std::lock_guard<std::mutex> jl(w.job->mu);
          w.job->error = "the server is shutting down";
          w.job->done = true;
          w.job->cv.notify_all();
        }
        queue_.clear();
        if (!drain_)
          for (auto& s : slots_)
            if (s->job) s->job->cancelled = true;
        if (active == 0) break;
      }
      for (auto& s : slots_) {
        if (s->job || queue_.empty()) continue;
        s->job = queue_.front().job;  // reserved under the lock (submit counts busy slots)
        admit.push_back({s.get(), std::move(queue_.front())});
        queue_.pop_front();
      }
    }
    for (auto& [s, w] : admit) {
      s->t_queued = now_s() - w.t_submit;
      try {
        start_slot(*s, w.job, std::move(w.prompt), std::move(w.params));
      } catch (const std::exception& e) {
        log_warn("serve: request failed in prefill: {}", e.what());
        if (s->job) finish(*s, "error", e.what());
      }
    }
    // One decode step for every active slot.
    rows.clear();
    toks.clear();
    caches.clear();
    for (auto& s : slots_) {
      if (s->next < 0) continue;
      if (s->job->cancelled) {
        finish(*s, "cancelled");
        continue;
      }
      rows.push_back(s.get());
      toks.push_back(s->next);
      caches.push_back(&s->cache);
    }
    if (rows.empty()) continue;
    const int V = m_.cfg.vocab, n = (int)rows.size();
    logits.resize((size_t)n * V);
    try {
      forward_decode_batch(m_, toks.data(), n, caches.data(), logits.data());
    } catch (const std::exception& e) {
      log_warn("serve: decode step failed: {}", e.what());
      for (Slot* s : rows) finish(*s, "error", e.what());
      continue;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      ++stats_.decode_steps;
      stats_.decoded_tokens += n;
    }
    for (int i = 0; i < n; ++i) accept_token(*rows[i], logits.data() + (size_t)i * V);
  }
}

}  // namespace bwla::serve
