// bwla generate DIR -p TEXT -n N: streamed text generation with timing.
#include <fmt/format.h>

#include <cstdio>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "core/timer.h"
#include "format/model_loader.h"
#include "model/forward.h"
#include "model/sampling.h"
#include "tokenizer/tokenizer.h"

namespace bwla::cli {


Runner register_generate(CLI::App& app) {
  auto* sub = app.add_subcommand("generate", "generate text from a prompt");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    std::string dir, prompt;
    int n_predict = 128, ctx = 0;
    SamplingParams sp;
    Common common;
    CLI::Option* prompt_opt;
  };
  auto args = std::make_shared<Args>();
  auto& [dir, prompt, n_predict, ctx, sp, common, prompt_opt] = *args;
  sub->add_option("model", dir, "model directory")->required();
  prompt_opt = sub->add_option("-p,--prompt", prompt, "prompt text (omit to start from BOS only)");
  sub->add_option("-n,--n-predict", n_predict, "tokens to generate")->check(CLI::PositiveNumber);
  sub->add_option("--temp", sp.temperature, "temperature (0 = greedy)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-k", sp.top_k, "top-k (0 = off)");
  sub->add_option("--top-p", sp.top_p, "top-p (1 = off)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--seed", sp.seed, "sampling seed");
  sub->add_option("--ctx", ctx, "context size (0 = model maximum)")->check(CLI::NonNegativeNumber);
  add_common(sub, common);
  return [args] {
    auto& [dir, prompt, n_predict, ctx, sp, common, prompt_opt] = *args;
    apply_common(common);
    auto model = load_model(dir, /*prepack_dense=*/true);
    auto tok = Tokenizer::load_dir(dir);
    check_tokenizer_vocab(*tok, model->cfg.vocab, dir);
    BWLA_CHECK(!(prompt_opt->count() > 0 && prompt.empty()),
               "empty prompt: omit -p to generate from the BOS token alone");
    std::vector<int> ids = tok->encode(prompt, true);
    if (ids.empty() && tok->bos_id() >= 0) ids.push_back(tok->bos_id());
    BWLA_CHECK(!ids.empty(), "prompt encodes to no tokens and the tokenizer has no BOS");
    const int max_ctx = ctx > 0 ? ctx : model->cfg.max_pos;
    BWLA_CHECK(ctx <= model->cfg.max_pos, "--ctx {} exceeds the model's maximum {}", ctx,
               model->cfg.max_pos);
    BWLA_CHECK((int)ids.size() < max_ctx, "prompt has {} tokens, context is {}", ids.size(),
               max_ctx);
    KVCache cache(model->cfg, max_ctx);
    Sampler sampler(sp);
    std::vector<float> logits(model->cfg.vocab);
    Timer t;
    forward_tokens(*model, ids.data(), (int)ids.size(), cache, logits.data(), false);
    const double t_prefill = t.seconds();
    std::vector<int> out;
    // Decoding is incremental over the whole sequence, prompt included, as the
    // HF / SentencePiece decoders do it: a piece's leading space is dropped only
    // at the start of the text, so decoding the continuation alone would lose
    // the space between the prompt and it.
    std::vector<int> all = ids;
    const std::string prefix = tok->decode(ids, true);
    auto continuation = [&] {
      std::string full = tok->decode(all, true);
      if (full.compare(0, prefix.size(), prefix) == 0) return full.substr(prefix.size());
      return tok->decode(out, true);  // a prompt that does not decode to itself
    };
    std::string printed;
    if (!common.json) {
      std::fputs(prompt.c_str(), stdout);
      std::fflush(stdout);
    }
    Timer td;
    int decoded = 0;
    for (int i = 0; i < n_predict && cache.pos < max_ctx; ++i) {
      int next = sampler.sample(logits.data(), model->cfg.vocab);
      if (next == tok->eos_id() || (next == tok->bos_id() && i > 0) || next == tok->bos_id()) break;
      out.push_back(next);
      all.push_back(next);
      std::string full = continuation();
      size_t ok = complete_utf8_prefix(full);
      if (ok > printed.size() && full.compare(0, printed.size(), printed) == 0) {
        if (!common.json) {
          std::fwrite(full.data() + printed.size(), 1, ok - printed.size(), stdout);
          std::fflush(stdout);
        }
        printed = full.substr(0, ok);
      }
      if (i + 1 == n_predict || cache.pos >= max_ctx) break;
      forward_tokens(*model, &next, 1, cache, logits.data(), false);
      ++decoded;
    }
    const double t_decode = td.seconds();
    std::string text = continuation();
    const double pp_tps = ids.size() / t_prefill;
    const double tg_tps = decoded > 0 ? decoded / t_decode : 0.0;
    if (common.json) {
      print_json({{"prompt", prompt},
                  {"text", text},
                  {"prompt_tokens", ids.size()},
                  {"generated_tokens", out.size()},
                  {"prompt_ids", ids},
                  {"token_ids", out},
                  {"prefill_tps", pp_tps},
                  {"decode_tps", tg_tps}});
    } else {
      if (printed.size() < text.size()) std::fputs(text.c_str() + printed.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
      fmt::print(stderr, "prefill: {} tokens, {:.1f} tokens/s | decode: {} tokens, {:.1f} tokens/s\n",
                 ids.size(), pp_tps, decoded, tg_tps);
    }
    return 0;
  };
}

}  // namespace bwla::cli
