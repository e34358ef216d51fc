// Chat prompts for /v1/chat/completions. A checkpoint's tokenizer_config.json
// may carry a Jinja chat_template; bwla does not embed a Jinja interpreter, so
// it recognises the template families the field ships (by the markers the
// template text contains, from a table) and renders them natively. A template
// of no known family, or none at all, falls back to plain concatenation, and
// the server says which one it uses.
#pragma once
#include <string>
#include <vector>

namespace bwla::serve {

enum class ChatFormat { Plain, ChatML, Llama2, Zephyr, Llama3 };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// Name shown to clients: "plain", "chatml", "llama2", "zephyr", "llama3".
const char* chat_format_name(ChatFormat f);

// The family of a Jinja chat_template ("" → Plain). Unknown → Plain.
ChatFormat detect_chat_format(const std::string& jinja_template);

struct ChatTemplate {
  ChatFormat format = ChatFormat::Plain;
  // Whether tokenizer_config.json had a template that was not recognised.
  bool unrecognised = false;
  std::string bos_text, eos_text;  // the BOS / EOS token strings (for Llama-2)
  // Reads DIR/tokenizer_config.json (absent: Plain). Throws bwla::Error naming
  // the file when it is not valid JSON or chat_template is not a string.
  static ChatTemplate load_dir(const std::string& dir);
  // The prompt text, ending where the assistant's reply begins
  // (add_generation_prompt). Plain: each message's content on its own line,
  // then nothing (the model continues the text).
  std::string render(const std::vector<ChatMessage>& messages) const;
  // Extra stop strings of the format (its end-of-turn marker), if any.
  std::vector<std::string> stop_strings() const;
};

}  // namespace bwla::serve
