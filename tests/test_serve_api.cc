// bwla serve below HTTP: request validation (OpenAI error bodies), chat
// templates, and the engine's continuous batching against the model alone.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "eval/perplexity.h"
#include "format/model_loader.h"
#include "model/model.h"
#include "model/model_lm.h"
#include "serve/api.h"
#include "serve/chat_template.h"
#include "serve/engine.h"
#include "shared_data.h"
#include "tokenizer/tokenizer.h"

namespace bwla::serve {
namespace {

const char* kModel = "models/stories260K-hf";

struct Loaded {
  std::unique_ptr<Model> m;
  std::unique_ptr<Tokenizer> tok;
};

const Loaded& stories() {
  static Loaded l = [] {
    Loaded x;
    x.m = load_model(test::shared_path(kModel), true);
    x.tok = Tokenizer::load_dir(test::shared_path(kModel));
    return x;
  }();
  return l;
}

// The status and the "param" of the ApiError a body raises (0 when none).
std::pair<int, std::string> completion_error(const std::string& body, int ctx = 64) {
  try {
    parse_completion(parse_body(body), *stories().tok, ctx);
  } catch (const ApiError& e) {
    json b = e.body();
    EXPECT_TRUE(b["error"]["message"].is_string());
    EXPECT_EQ(b["error"]["type"], e.type);
    return {e.status, b["error"]["param"].is_null() ? "" : b["error"]["param"].get<std::string>()};
  }
  return {0, ""};
}

TEST(ServeApi, BadRequestsAre400NamingTheField) {
  BWLA_REQUIRE_SHARED(kModel);
  EXPECT_EQ(completion_error("{not json").first, 400);
  EXPECT_EQ(completion_error("[1, 2]").first, 400);
  EXPECT_EQ(completion_error("{}"), std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": 3})"), std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": [1, "a"]})").second, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": [1, 999999]})").second, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "temperature": "hot"})").second, "temperature");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "temperature": 2.5})").second, "temperature");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "top_p": 0})").second, "top_p");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "top_k": -1})").second, "top_k");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "max_tokens": -1})").second, "max_tokens");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "max_tokens": 1.5})").second, "max_tokens");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "n": 2})").second, "n");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "stop": [1]})").second, "stop");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "stop": ""})").second, "stop");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "logprobs": 21})").second, "logprobs");
  EXPECT_EQ(completion_error(R"({"prompt": "a", "stream": "yes"})").second, "stream");
  // A prompt longer than the context, and prompt + max_tokens beyond it.
  std::string long_prompt(400, 'a');
  for (size_t i = 1; i < long_prompt.size(); i += 2) long_prompt[i] = ' ';
  EXPECT_EQ(completion_error(R"({"prompt": ")" + long_prompt + R"("})").second, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": "Once", "max_tokens": 64})").second, "max_tokens");
  // Valid ones raise nothing.
  EXPECT_EQ(completion_error(R"({"prompt": "Once", "max_tokens": 8, "stop": ["."], "seed": 3})").first, 0);
  EXPECT_EQ(completion_error(R"({"prompt": [[1, 2], "Once"], "max_tokens": 0, "echo": true, "logprobs": 5})").first, 0);
}

TEST(ServeApi, CompletionFieldsAreParsed) {
  BWLA_REQUIRE_SHARED(kModel);
  const Tokenizer& tok = *stories().tok;
  auto r = parse_completion(parse_body(R"({"prompt": ["Once upon", [1, 2, 3]], "temperature": 0,
      "top_k": 5, "top_p": 0.5, "seed": 7, "stop": ["x", "yz"], "echo": true, "logprobs": 2})"),
                            tok, 256);
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[0].ids, tok.encode("Once upon", true));
  EXPECT_EQ(r.prompts[1].ids, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(r.gen.sampling.temperature, 0.f);
  EXPECT_EQ(r.gen.sampling.top_k, 5);
  EXPECT_FLOAT_EQ(r.gen.sampling.top_p, 0.5f);
  EXPECT_EQ(r.gen.sampling.seed, 7u);
  EXPECT_EQ(r.gen.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_EQ(r.gen.max_tokens, 16);  // OpenAI's default
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.gen.logprobs, 2);
  EXPECT_TRUE(r.gen.prompt_logprobs);
}

TEST(ServeApi, ChatMessagesAreValidatedAndRendered) {
  BWLA_REQUIRE_SHARED(kModel);
  const Tokenizer& tok = *stories().tok;
  ChatTemplate plain;
  auto err = [&](const std::string& body) -> std::string {
    try {
      parse_chat(parse_body(body), tok, 256, plain);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      return e.param;
    }
    return "";
  };
  EXPECT_EQ(err(R"({})"), "messages");
  EXPECT_EQ(err(R"({"messages": []})"), "messages");
  EXPECT_EQ(err(R"({"messages": [{"role": "robot", "content": "hi"}]})"), "messages");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": 5}]})"), "messages");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "hi"}]})"), "");
  auto r = parse_chat(parse_body(R"({"messages": [{"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Once"}, {"type": "text", "text": " upon"}]}],
      "max_tokens": 5})"),
                      tok, 256, plain);
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "Be brief.\nOnce upon\n");
  EXPECT_EQ(r.gen.max_tokens, 5);
  EXPECT_TRUE(r.chat);
}

TEST(ServeChatTemplate, FamiliesAreDetectedAndRendered) {
  EXPECT_EQ(detect_chat_format(""), ChatFormat::Plain);
  EXPECT_EQ(detect_chat_format("{% for m in messages %}{{ m.content }}{% endfor %}"), ChatFormat::Plain);
  // Abridged forms of the templates the families ship: every marker of the family occurs.
  EXPECT_EQ(detect_chat_format("{% for message in messages %}{{'<|im_start|>' + message['role'] + "
                               "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"),
            ChatFormat::ChatML);
  EXPECT_EQ(detect_chat_format("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
                               " + message['content'] | trim + '<|eot_id|>' }}"),
            ChatFormat::Llama3);
  EXPECT_EQ(detect_chat_format("{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}"),
            ChatFormat::Llama2);
  EXPECT_EQ(detect_chat_format("{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + "
                               "eos_token }}{% endif %}{% if add_generation_prompt %}{{ '<|assistant|>' }}"
                               "{% endif %}"),
            ChatFormat::Zephyr);
  // Only part of a family's markers: not that family.
  EXPECT_EQ(detect_chat_format("{{'<|im_start|>' + message['role']}}"), ChatFormat::Plain);

  std::vector<ChatMessage> msgs = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}, {"user", "V"}};
  ChatTemplate t;
  t.format = ChatFormat::ChatML;
  EXPECT_EQ(t.render(msgs),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
            "A<|im_end|>\n<|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n");
  t.format = ChatFormat::Llama3;
  EXPECT_EQ(t.render({{"user", "U"}}),
            "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|><|start_header_id|>assistant"
            "<|end_header_id|>\n\n");
  t.format = ChatFormat::Llama2;
  t.bos_text = "<s>";
  t.eos_text = "</s>";
  EXPECT_EQ(t.render(msgs), "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] V [/INST]");
  t.format = ChatFormat::Plain;
  EXPECT_EQ(t.render(msgs), "S\nU\nA\nV\n");
}

TEST(ServeEngine, Utf8PrefixStopsBeforeAnIncompleteSequence) {
  EXPECT_EQ(complete_utf8_prefix("abc"), 3u);
  EXPECT_EQ(complete_utf8_prefix("a\xC3"), 1u);            // é cut after its lead byte
  EXPECT_EQ(complete_utf8_prefix("a\xC3\xA9"), 3u);
  EXPECT_EQ(complete_utf8_prefix("\xE2\x82"), 0u);         // € missing its last byte
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x98\x80z"), 5u);
}

// Runs a job to its end, consuming the streamed text; returns the job.
std::shared_ptr<Job> finish_job(std::shared_ptr<Job> j) {
  std::string streamed;
  for (;;) {
    j->wait_for_update(-1);
    std::lock_guard<std::mutex> lk(j->mu);
    streamed += j->pending;
    j->pending.clear();
    j->pending_tokens.clear();
    if (j->done) break;
  }
  EXPECT_EQ(streamed, j->text) << "the streamed pieces must add up to the final text";
  return j;
}

GenParams greedy(int max_tokens) {
  GenParams p;
  p.max_tokens = max_tokens;
  p.sampling.temperature = 0.f;
  return p;
}

const std::vector<std::string> kPrompts = {"Once upon a time", "The cat", "Lily and Ben went to",
                                           "One day, a little", "He", "The sun was shining and",
                                           "Tom had a red ball."};

TEST(ServeEngine, ConcurrentGreedyRequestsEqualEachAlone) {
  BWLA_REQUIRE_SHARED(kModel);
  const Loaded& L = stories();
  EngineOptions solo_opt;
  solo_opt.parallel = 1;
  solo_opt.ctx = 256;
  std::vector<std::string> alone;
  {
    Engine solo(*L.m, *L.tok, solo_opt);
    for (const auto& p : kPrompts) alone.push_back(finish_job(solo.submit(L.tok->encode(p, true), greedy(40)))->text);
  }
  EngineOptions opt;
  opt.parallel = 4;
  opt.ctx = 256;
  opt.queue = 16;
  Engine eng(*L.m, *L.tok, opt);
  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& p : kPrompts) {
    jobs.push_back(eng.submit(L.tok->encode(p, true), greedy(40)));
    ASSERT_TRUE(jobs.back());
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    finish_job(jobs[i]);
    EXPECT_EQ(jobs[i]->error, "");
    EXPECT_EQ(jobs[i]->text, alone[i]) << "prompt " << i << " '" << kPrompts[i] << "'";
    EXPECT_GT(jobs[i]->completion_tokens, 0);
  }
  EngineStats st = eng.stats();
  EXPECT_EQ(st.requests, (long)kPrompts.size());
  // More tokens than steps: some steps carried several slots (the batching).
  EXPECT_GT(st.decoded_tokens, st.decode_steps);
}

TEST(ServeEngine, StopStringEndsTheTextBeforeIt) {
  BWLA_REQUIRE_SHARED(kModel);
  const Loaded& L = stories();
  EngineOptions opt;
  opt.parallel = 2;
  opt.ctx = 256;
  Engine eng(*L.m, *L.tok, opt);
  const auto prompt = L.tok->encode("Once upon a time", true);
  auto full = finish_job(eng.submit(prompt, greedy(60)));
  EXPECT_EQ(full->finish_reason, "length");
  ASSERT_GT(full->text.size(), 12u);
  // A stop string taken from the middle of the greedy text (crossing tokens).
  const std::string stop = full->text.substr(full->text.size() / 2, 4);
  GenParams p = greedy(60);
  p.stop = {stop};
  auto cut = finish_job(eng.submit(prompt, p));
  EXPECT_EQ(cut->finish_reason, "stop");
  EXPECT_EQ(cut->text, full->text.substr(0, full->text.find(stop)));
}

TEST(ServeEngine, EchoLogprobsEqualTheForwardOracle) {
  BWLA_REQUIRE_SHARED(kModel);
  const Loaded& L = stories();
  EngineOptions opt;
  opt.parallel = 2;
  opt.ctx = 256;
  opt.prefill_chunk = 7;  // several chunks: the rows must line up across them
  Engine eng(*L.m, *L.tok, opt);
  const auto ids = L.tok->encode("Once upon a time, there was a little girl named Lily. She", true);
  GenParams p = greedy(0);
  p.prompt_logprobs = true;
  p.logprobs = 3;
  auto j = finish_job(eng.submit(ids, p));
  ASSERT_EQ(j->prompt_tokens_info.size(), ids.size());
  EXPECT_FALSE(j->prompt_tokens_info[0].has_logprob);
  // Oracle: bwla ppl's per-token values over one window of the same tokens.
  PplOptions po;
  po.ctx = (int)ids.size();
  po.progress = false;
  po.keep_token_logprobs = true;
  PplResult r = perplexity(*L.m, ids, po);
  ASSERT_EQ(r.token_logprobs.size(), ids.size() - 1);
  for (size_t i = 1; i < ids.size(); ++i) {
    const TokenInfo& t = j->prompt_tokens_info[i];
    EXPECT_EQ(t.id, ids[i]);
    ASSERT_TRUE(t.has_logprob);
    EXPECT_EQ(r.token_index[i - 1], (long)i);
    EXPECT_NEAR(t.logprob, r.token_logprobs[i - 1], 1e-4) << "token " << i;
    ASSERT_EQ(t.top.size(), 3u);
    EXPECT_GE(t.top[0].second, t.logprob - 1e-9);  // the best is at least the actual token
    EXPECT_GE(t.top[0].second, t.top[1].second);
  }
}

TEST(ServeEngine, FullQueueRejectsAndStopDrains) {
  BWLA_REQUIRE_SHARED(kModel);
  const Loaded& L = stories();
  EngineOptions opt;
  opt.parallel = 1;
  opt.ctx = 256;
  opt.queue = 2;
  Engine eng(*L.m, *L.tok, opt);
  const auto prompt = L.tok->encode("Once upon a time", true);
  std::vector<std::shared_ptr<Job>> accepted;
  int rejected = 0;
  for (int i = 0; i < 12; ++i) {
    auto j = eng.submit(prompt, greedy(200));
    if (j)
      accepted.push_back(j);
    else
      ++rejected;
  }
  // 1 slot + 2 queued; a job finishing while we submit may free one more.
  EXPECT_LE((int)accepted.size(), 4);
  EXPECT_GE(rejected, 8);
  EXPECT_EQ(eng.stats().rejected, rejected);
  eng.stop(/*drain=*/true);
  EXPECT_EQ(eng.submit(prompt, greedy(1)), nullptr) << "a stopped engine takes no work";
  for (auto& j : accepted) {
    std::lock_guard<std::mutex> lk(j->mu);
    EXPECT_TRUE(j->done);
  }
}

}  // namespace
}  // namespace bwla::serve
