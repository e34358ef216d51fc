// The OpenAI-compatible request schema of `bwla serve`: JSON bodies parsed and
// validated into engine requests, with OpenAI-style errors for bad input.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "io/json.h"
#include "serve/chat_template.h"
#include "serve/engine.h"

namespace bwla::serve {

// An error a client caused: HTTP status + OpenAI error body.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = "",
           std::string type = "invalid_request_error")
      : std::runtime_error(message), status(status), param(std::move(param)), type(std::move(type)) {}
  int status;
  std::string param, type;
  // {"error": {"message", "type", "param", "code"}}
  json body() const;
};

struct PromptInput {
  std::vector<int> ids;  // what the engine runs (BOS as the tokenizer adds it)
  std::string text;      // the prompt as text (echo)
};

struct CompletionRequest {
  std::vector<PromptInput> prompts;  // one choice per prompt
  GenParams gen;
  bool stream = false;
  bool echo = false;
  bool chat = false;
  bool chat_logprobs = false;  // chat: "logprobs": true
};

// The body of POST /v1/completions. ctx: the slots' context (prompt +
// max_tokens must fit). Throws ApiError (400) naming the field.
CompletionRequest parse_completion(const json& body, const Tokenizer& tok, int ctx);
// The body of POST /v1/chat/completions, rendered with `tmpl`.
CompletionRequest parse_chat(const json& body, const Tokenizer& tok, int ctx,
                             const ChatTemplate& tmpl);

// The body text as JSON: 400 for malformed JSON or a non-object.
json parse_body(const std::string& body);

}  // namespace bwla::serve
