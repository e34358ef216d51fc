#include "serve/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/json.h"

namespace bwla::serve {

namespace {

struct FormatInfo {
  ChatFormat format;
  const char* name;
  // All of these substrings must occur in the Jinja text.
  std::vector<const char*> markers;
};

// Checked in order; the first whose markers all occur wins.
const std::vector<FormatInfo>& formats() {
  static const std::vector<FormatInfo> t = {
      {ChatFormat::Llama3, "llama3", {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
      {ChatFormat::ChatML, "chatml", {"<|im_start|>", "<|im_end|>"}},
      {ChatFormat::Zephyr, "zephyr", {"<|user|>", "<|assistant|>"}},
      {ChatFormat::Llama2, "llama2", {"[INST]", "[/INST]"}},
  };
  return t;
}

std::string token_text(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

}  // namespace

const char* chat_format_name(ChatFormat f) {
  if (f == ChatFormat::Plain) return "plain";
  for (const auto& i : formats())
    if (i.format == f) return i.name;
  return "?";
}

ChatFormat detect_chat_format(const std::string& t) {
  if (t.empty()) return ChatFormat::Plain;
  for (const auto& i : formats()) {
    bool all = true;
    for (const char* m : i.markers) all = all && t.find(m) != std::string::npos;
    if (all) return i.format;
  }
  return ChatFormat::Plain;
}

ChatTemplate ChatTemplate::load_dir(const std::string& dir) {
  ChatTemplate ct;
  const std::string path = dir + "/tokenizer_config.json";
  if (!std::filesystem::exists(path)) return ct;
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  json cfg = json::parse(ss.str(), nullptr, false);
  BWLA_CHECK(!cfg.is_discarded() && cfg.is_object(), "'{}': not a JSON object", path);
  ct.bos_text = token_text(cfg, "bos_token");
  ct.eos_text = token_text(cfg, "eos_token");
  if (!cfg.contains("chat_template") || cfg["chat_template"].is_null()) return ct;
  const json& t = cfg["chat_template"];
  std::string text;
  if (t.is_string()) {
    text = t.get<std::string>();
  } else if (t.is_array()) {
    // The list form: [{"name": "default", "template": "..."}, ...].
    for (const auto& e : t)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
          e["template"].is_string())
        text = e["template"].get<std::string>();
    BWLA_CHECK(!text.empty(), "'{}': chat_template list has no string entry named 'default'",
               path);
  } else {
    throw Error(fmt::format("'{}': chat_template is a {}, expected a string", path, t.type_name()));
  }
  ct.format = detect_chat_format(text);
  ct.unrecognised = ct.format == ChatFormat::Plain;
  return ct;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& msgs) const {
  std::string s;
  switch (format) {
    case ChatFormat::Plain:
      for (const auto& m : msgs) s += m.content + "\n";
      break;
    case ChatFormat::ChatML:
      for (const auto& m : msgs) s += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      s += "<|im_start|>assistant\n";
      break;
    case ChatFormat::Zephyr:
      for (const auto& m : msgs) s += "<|" + m.role + "|>\n" + m.content + eos_text + "\n";
      s += "<|assistant|>\n";
      break;
    case ChatFormat::Llama3:
      for (const auto& m : msgs)
        s += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
      s += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case ChatFormat::Llama2: {
      // [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s><s>[INST] ...
      // The BOS of the first turn is the tokenizer's own; later turns write it.
      std::string sys;
      bool first = true;
      for (const auto& m : msgs) {
        if (m.role == "system") {
          sys = "<<SYS>>\n" + m.content + "\n<</SYS>>\n\n";
        } else if (m.role == "user") {
          s += (first ? "" : bos_text) + "[INST] " + sys + m.content + " [/INST]";
          sys.clear();
          first = false;
        } else {
          s += " " + m.content + " " + eos_text;
        }
      }
      break;
    }
  }
  return s;
}

std::vector<std::string> ChatTemplate::stop_strings() const {
  switch (format) {
    case ChatFormat::ChatML: return {"<|im_end|>"};
    case ChatFormat::Llama3: return {"<|eot_id|>"};
    case ChatFormat::Zephyr: return {"<|user|>"};
    default: return {};
  }
}

}  // namespace bwla::serve
