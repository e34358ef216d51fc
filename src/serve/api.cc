#include "serve/api.h"

#include <cmath>
#include <random>

#include <fmt/format.h>

namespace bwla::serve {

json ApiError::body() const {
  json e = {{"message", what()}, {"type", type}, {"code", nullptr}};
  e["param"] = param.empty() ? json(nullptr) : json(param);
  return json{{"error", e}};
}

json parse_body(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, fmt::format("the request body is a JSON {}, expected an object", j.type_name()));
  return j;
}

namespace {

const json* field(const json& b, const char* key) {
  auto it = b.find(key);
  if (it == b.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void bad(const char* key, const std::string& what) {
  throw ApiError(400, fmt::format("'{}' {}", key, what), key);
}

bool get_bool(const json& b, const char* key, bool def) {
  const json* v = field(b, key);
  if (!v) return def;
  if (!v->is_boolean()) bad(key, fmt::format("must be a boolean, got a {}", v->type_name()));
  return v->get<bool>();
}

double get_number(const json& b, const char* key, double def, double lo, double hi) {
  const json* v = field(b, key);
  if (!v) return def;
  if (!v->is_number()) bad(key, fmt::format("must be a number, got a {}", v->type_name()));
  double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) bad(key, fmt::format("must be in [{}, {}], got {}", lo, hi, x));
  return x;
}

long long get_int(const json& b, const char* key, long long def, long long lo, long long hi) {
  const json* v = field(b, key);
  if (!v) return def;
  if (!v->is_number_integer()) bad(key, fmt::format("must be an integer, got {}", v->dump()));
  long long x = v->is_number_unsigned() && v->get<unsigned long long>() > (unsigned long long)LLONG_MAX
                    ? LLONG_MAX
                    : v->get<long long>();
  if (x < lo || x > hi) bad(key, fmt::format("must be in [{}, {}], got {}", lo, hi, x));
  return x;
}

// Sampling, stop strings and n: the fields both endpoints share.
void parse_common(const json& b, CompletionRequest& r) {
  auto& sp = r.gen.sampling;
  sp.temperature = (float)get_number(b, "temperature", 1.0, 0.0, 2.0);
  sp.top_p = (float)get_number(b, "top_p", 1.0, 0.0, 1.0);
  if (sp.top_p <= 0.f) bad("top_p", "must be greater than 0");
  sp.top_k = (int)get_int(b, "top_k", 0, 0, 1 << 20);
  if (field(b, "seed")) {
    sp.seed = (uint64_t)get_int(b, "seed", 0, LLONG_MIN, LLONG_MAX);
  } else {
    static std::random_device rd;
    sp.seed = ((uint64_t)rd() << 32) ^ rd();
  }
  if (get_int(b, "n", 1, 1, 1 << 20) != 1) bad("n", "must be 1 (one choice per prompt)");
  r.stream = get_bool(b, "stream", false);
  if (const json* s = field(b, "stop")) {
    if (s->is_string()) {
      r.gen.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      if (s->size() > 16) bad("stop", fmt::format("has {} strings, at most 16", s->size()));
      for (const auto& e : *s) {
        if (!e.is_string()) bad("stop", "must be a string or an array of strings");
        r.gen.stop.push_back(e.get<std::string>());
      }
    } else {
      bad("stop", fmt::format("must be a string or an array of strings, got a {}", s->type_name()));
    }
    for (const auto& st : r.gen.stop)
      if (st.empty()) bad("stop", "must not contain an empty string");
  }
}

PromptInput prompt_from_ids(const json& arr, const Tokenizer& tok) {
  PromptInput p;
  for (const auto& e : arr) {
    if (!e.is_number_integer()) bad("prompt", "an array of tokens must hold integers only");
    long long id = e.get<long long>();
    if (id < 0 || id >= tok.vocab_size())
      bad("prompt", fmt::format("token id {} is outside the vocabulary [0, {})", id, tok.vocab_size()));
    p.ids.push_back((int)id);
  }
  p.text = tok.decode(p.ids, true);
  return p;
}

PromptInput prompt_from_text(const std::string& text, const Tokenizer& tok) {
  PromptInput p;
  p.text = text;
  p.ids = tok.encode(text, true);
  return p;
}

// Prompt length and max_tokens against the context; fills in the default
// (completions: 16, chat: the rest of the context).
void check_lengths(CompletionRequest& r, int ctx, bool max_given) {
  const char* what = r.chat ? "messages" : "prompt";
  const int asked = r.gen.max_tokens;
  for (const auto& p : r.prompts) {
    const long n = (long)p.ids.size();
    if (n == 0) throw ApiError(400, "the prompt encodes to no tokens and the tokenizer adds no BOS", what);
    if (n > ctx || (n == ctx && (!max_given || asked > 0)))
      throw ApiError(400,
                     fmt::format("the prompt has {} tokens; this server's context is {} tokens{}", n,
                                 ctx, n == ctx ? " (no room left to generate)" : ""),
                     what);
    if (max_given && n + asked > ctx)
      throw ApiError(400,
                     fmt::format("the context is {} tokens, but {} prompt tokens + max_tokens {} "
                                 "were requested",
                                 ctx, n, asked),
                     "max_tokens");
  }
  if (!max_given) {
    long room = ctx;
    for (const auto& p : r.prompts) room = std::min(room, (long)ctx - (long)p.ids.size());
    r.gen.max_tokens = (int)(r.chat ? room : std::min(16L, room));
  }
}

}  // namespace

CompletionRequest parse_completion(const json& b, const Tokenizer& tok, int ctx) {
  CompletionRequest r;
  parse_common(b, r);
  const json* pr = field(b, "prompt");
  if (!pr) throw ApiError(400, "'prompt' is required", "prompt");
  if (pr->is_string()) {
    r.prompts.push_back(prompt_from_text(pr->get<std::string>(), tok));
  } else if (pr->is_array()) {
    if (pr->empty()) bad("prompt", "must not be an empty array");
    if ((*pr)[0].is_number()) {
      r.prompts.push_back(prompt_from_ids(*pr, tok));
    } else {
      if (pr->size() > 64) bad("prompt", fmt::format("holds {} prompts, at most 64", pr->size()));
      for (const auto& e : *pr) {
        if (e.is_string()) r.prompts.push_back(prompt_from_text(e.get<std::string>(), tok));
        else if (e.is_array() && !e.empty()) r.prompts.push_back(prompt_from_ids(e, tok));
        else bad("prompt", "must be a string, an array of strings, an array of token ids or an array of such arrays");
      }
    }
  } else {
    bad("prompt", fmt::format("must be a string or an array, got a {}", pr->type_name()));
  }
  if (r.stream && r.prompts.size() > 1) bad("stream", "streaming takes one prompt per request");
  r.echo = get_bool(b, "echo", false);
  r.gen.logprobs = (int)get_int(b, "logprobs", -1, 0, 20);
  r.gen.prompt_logprobs = r.echo && r.gen.logprobs >= 0;
  const bool max_given = field(b, "max_tokens") != nullptr;
  r.gen.max_tokens = (int)get_int(b, "max_tokens", 16, 0, ctx);
  check_lengths(r, ctx, max_given);
  return r;
}

CompletionRequest parse_chat(const json& b, const Tokenizer& tok, int ctx, const ChatTemplate& tmpl) {
  CompletionRequest r;
  r.chat = true;
  parse_common(b, r);
  if (r.stream && field(b, "logprobs") && get_bool(b, "logprobs", false))
    bad("logprobs", "is not supported together with stream on chat completions");
  const json* ms = field(b, "messages");
  if (!ms) throw ApiError(400, "'messages' is required", "messages");
  if (!ms->is_array() || ms->empty()) bad("messages", "must be a non-empty array");
  std::vector<ChatMessage> msgs;
  for (size_t i = 0; i < ms->size(); ++i) {
    const json& m = (*ms)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) throw ApiError(400, where + " must be an object", "messages");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      throw ApiError(400, where + ".role must be a string", "messages");
    const std::string rs = role->get<std::string>();
    if (rs != "system" && rs != "user" && rs != "assistant" && rs != "developer")
      throw ApiError(400, fmt::format("{}.role '{}' is not one of system, developer, user, assistant", where, rs),
                     "messages");
    auto content = m.find("content");
    std::string text;
    if (content != m.end() && content->is_string()) {
      text = content->get<std::string>();
    } else if (content != m.end() && content->is_array()) {
      // [{"type": "text", "text": "..."}]: text parts only.
      for (const auto& part : *content) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string())
          throw ApiError(400, where + ".content parts must be {\"type\": \"text\", \"text\": string}",
                         "messages");
        text += part["text"].get<std::string>();
      }
    } else {
      throw ApiError(400, where + ".content must be a string or an array of text parts", "messages");
    }
    msgs.push_back({rs == "developer" ? "system" : rs, text});
  }
  r.prompts.push_back(prompt_from_text(tmpl.render(msgs), tok));
  for (const auto& s : tmpl.stop_strings()) r.gen.stop.push_back(s);
  r.chat_logprobs = get_bool(b, "logprobs", false);
  const int top = (int)get_int(b, "top_logprobs", 0, 0, 20);
  if (field(b, "top_logprobs") && !r.chat_logprobs) bad("top_logprobs", "needs logprobs: true");
  r.gen.logprobs = r.chat_logprobs ? top : -1;
  const json* mt = field(b, "max_completion_tokens") ? field(b, "max_completion_tokens") : field(b, "max_tokens");
  const char* mkey = field(b, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (mt) r.gen.max_tokens = (int)get_int(b, mkey, 0, 1, ctx);
  check_lengths(r, ctx, mt != nullptr);
  return r;
}

}  // namespace bwla::serve
