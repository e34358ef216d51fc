// bwla bench MODEL [-t N] [--threads-list 1,2] [--pp 128,512] [--tg 128] [--reps 3] [--json] [--bandwidth]
// Prefill / decode tokens per second with random token ids, model sizes,
// bits per weight, peak RSS; optionally a DRAM read-bandwidth probe and the
// memory-bandwidth bound for decode that follows from it.
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "core/threads.h"
#include "core/timer.h"
#include "format/model_loader.h"
#include "model/forward.h"

namespace bwla::cli {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<int> random_tokens(int n, int vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> d(0, vocab - 1);
  std::vector<int> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

// Seconds for one prefill of n tokens into a fresh cache (logits of the last token only).
double time_prefill(const Model& m, const std::vector<int>& toks, std::vector<float>& logits) {
  KVCache cache(m.cfg, (int)toks.size());
  Timer t;
  forward_tokens(m, toks.data(), (int)toks.size(), cache, logits.data(), false);
  return t.seconds();
}

// Seconds for decoding toks one at a time after a prompt (the prompt is not timed).
double time_decode(const Model& m, const std::vector<int>& prompt, const std::vector<int>& toks,
                   std::vector<float>& logits) {
  KVCache cache(m.cfg, (int)(prompt.size() + toks.size()));
  if (!prompt.empty())
    forward_tokens(m, prompt.data(), (int)prompt.size(), cache, logits.data(), false);
  Timer t;
  for (int tok : toks) forward_tokens(m, &tok, 1, cache, logits.data(), false);
  return t.seconds();
}

// Sum of `streams` equal parts of p[0, n) read in lock-step, 8 words per part
// per step (8 independent accumulators, so the compiler vectorizes the loads).
__attribute__((noinline)) uint64_t sum_streams(const uint64_t* p, size_t n, int streams) {
  const size_t q = (n / streams) & ~size_t(7);
  uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < q; i += 8)
    for (int s = 0; s < streams; ++s) {
      const uint64_t* r = p + s * q + i;
      for (int k = 0; k < 8; ++k) a[k] += r[k];
    }
  for (size_t i = streams * q; i < n; ++i) a[0] += p[i];
  uint64_t t = 0;
  for (uint64_t v : a) t += v;
  return t;
}

// Stream-reads buf with `threads` threads; returns GB/s (1e9 bytes/s): the best,
// over 1, 2 and 4 interleaved streams per thread, of the median of reps passes.
// CPUs differ in which access pattern reaches their DRAM bandwidth: on the
// Intel Xeon this was first measured on, one sequential stream per core left
// bandwidth unused and four streams reached it; on AMD EPYC (Zen 4) one stream is
// fastest and four lose a third. The bound must not depend on that choice.
double read_bandwidth_gbps(const std::vector<uint64_t>& buf, int threads, int reps) {
  const size_t n = buf.size();
  const uint64_t* p = buf.data();
  static volatile uint64_t sink = 0;
  double best = 0;
  for (int streams : {1, 2, 4}) {
    std::vector<double> gbps;
    for (int r = 0; r < reps; ++r) {
      uint64_t total = 0;
      Timer t;
#pragma omp parallel num_threads(threads) reduction(+ : total)
      {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
        const size_t chunk = (n / nt) & ~size_t(31);
        const size_t b = chunk * id, e = id == nt - 1 ? n : b + chunk;
        total += sum_streams(p + b, e - b, streams);
      }
      const double s = t.seconds();
      sink = sink + total;
      gbps.push_back(n * 8.0 / s / 1e9);
    }
    best = std::max(best, median(gbps));
  }
  return best;
}

std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) b /= 1024, ++i;
  return fmt::format("{:.2f} {}", b, u[i]);
}

}  // namespace

Runner register_bench(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "bench", "prefill/decode tokens per second, model size, bits per weight, peak RSS");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    std::string dir;
    std::vector<int> pp = {128, 512}, tg = {128}, threads_list;
    int reps = 3, tg_prompt = 8, bw_mib = 1024;
    uint64_t seed = 1;
    bool bandwidth = false;
    Common common;
  };
  auto args = std::make_shared<Args>();
  auto& [dir, pp, tg, threads_list, reps, tg_prompt, bw_mib, seed, bandwidth, common] = *args;
  sub->add_option("model", dir, "model directory (fp32/bf16 checkpoint or bwla quantized)");
  sub->add_option("--pp", pp, "prefill lengths, comma-separated (0: none)")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--tg", tg, "decode lengths, comma-separated (0: none)")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--reps", reps, "repetitions (median reported; tests interleaved)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--tg-prompt", tg_prompt, "untimed prompt tokens before decode")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", seed, "seed of the random token ids");
  sub->add_option("--threads-list", threads_list,
                  "also measure at each of these thread counts, e.g. 1,2 (table rows and "
                  "JSON by_threads)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  sub->add_flag("--bandwidth", bandwidth,
                "also probe DRAM read bandwidth at 1 and 2 threads (and -t) and report the "
                "bandwidth bound for decode");
  sub->add_option("--bandwidth-mib", bw_mib, "bandwidth probe buffer size in MiB")
      ->check(CLI::PositiveNumber);
  add_common(sub, common);
  return [args] {
    auto& [dir, pp, tg, threads_list, reps, tg_prompt, bw_mib, seed, bandwidth, common] = *args;
    apply_common(common);
    std::erase(pp, 0);  // "--pp 0" / "--tg 0": skip that test
    std::erase(tg, 0);
    BWLA_CHECK(!dir.empty() || bandwidth, "bench: give a model directory and/or --bandwidth");
    const int threads = num_threads();
    json j = {{"threads", threads}, {"reps", reps}};
    std::vector<std::tuple<std::string, int, double>> rows;  // test name, threads, tokens/s
    size_t decode_bytes = 0;
    if (!dir.empty()) {
      auto model = load_model(dir, /*prepack_dense=*/true);
      const ModelConfig& c = model->cfg;
      for (int n : pp)
        BWLA_CHECK(n <= c.max_pos, "--pp {} exceeds the model's maximum context {}", n, c.max_pos);
      for (int n : tg)
        BWLA_CHECK(tg_prompt + n <= c.max_pos,
                   "--tg-prompt {} + --tg {} exceeds the model's maximum context {}", tg_prompt, n,
                   c.max_pos);
      std::mt19937_64 rng(seed);
      std::vector<std::vector<int>> pp_toks, tg_toks;
      for (int n : pp) pp_toks.push_back(random_tokens(n, c.vocab, rng));
      for (int n : tg) tg_toks.push_back(random_tokens(n, c.vocab, rng));
      const std::vector<int> prompt = random_tokens(tg_prompt, c.vocab, rng);
      std::vector<float> logits(c.vocab);

      // Warm-up: thread pools, BLAS buffers, first-touch of scratch memory.
      time_prefill(*model, random_tokens(std::min(16, c.max_pos), c.vocab, rng), logits);
      time_decode(*model, {}, random_tokens(std::min(2, c.max_pos), c.vocab, rng), logits);

      std::vector<std::vector<double>> pp_s(pp.size()), tg_s(tg.size());
      for (int r = 0; r < reps; ++r) {
        for (size_t i = 0; i < pp.size(); ++i)
          pp_s[i].push_back(time_prefill(*model, pp_toks[i], logits));
        for (size_t i = 0; i < tg.size(); ++i)
          tg_s[i].push_back(time_decode(*model, prompt, tg_toks[i], logits));
      }
      json samples = json::object();
      auto add = [&](const std::string& name, int n, const std::vector<double>& secs) {
        std::vector<double> tps;
        for (double s : secs) tps.push_back(n / s);
        const double m = median(tps);
        j[name + "_tps"] = m;
        samples[name] = tps;
        rows.push_back({name, threads, m});
      };
      for (size_t i = 0; i < pp.size(); ++i) add(fmt::format("pp{}", pp[i]), pp[i], pp_s[i]);
      for (size_t i = 0; i < tg.size(); ++i) add(fmt::format("tg{}", tg[i]), tg[i], tg_s[i]);
      // Further thread counts: same token ids, same protocol (warm-up, median of reps).
      json by_threads = json::object();
      for (int t : threads_list) {
        set_num_threads(t);
        time_prefill(*model, random_tokens(std::min(16, c.max_pos), c.vocab, rng), logits);
        time_decode(*model, {}, random_tokens(std::min(2, c.max_pos), c.vocab, rng), logits);
        std::vector<std::vector<double>> ps(pp.size()), ts(tg.size());
        for (int r = 0; r < reps; ++r) {
          for (size_t i = 0; i < pp.size(); ++i) ps[i].push_back(time_prefill(*model, pp_toks[i], logits));
          for (size_t i = 0; i < tg.size(); ++i)
            ts[i].push_back(time_decode(*model, prompt, tg_toks[i], logits));
        }
        json e = json::object();
        auto put = [&](const std::string& name, int n, const std::vector<double>& secs) {
          std::vector<double> tps;
          for (double sec : secs) tps.push_back(n / sec);
          e[name + "_tps"] = median(tps);
          rows.push_back({name, t, median(tps)});
        };
        for (size_t i = 0; i < pp.size(); ++i) put(fmt::format("pp{}", pp[i]), pp[i], ps[i]);
        for (size_t i = 0; i < tg.size(); ++i) put(fmt::format("tg{}", tg[i]), tg[i], ts[i]);
        by_threads[std::to_string(t)] = e;
      }
      if (!threads_list.empty()) {
        j["by_threads"] = by_threads;
        set_num_threads(threads);
      }

      // Bits per weight of the decoder linears.
      json bpw = nullptr;
      std::string bpw_source;
      const json& raw = c.raw;
      if (raw.contains("quantization_config") && raw["quantization_config"].is_object() &&
          raw["quantization_config"].contains("bits_per_weight")) {
        bpw = raw["quantization_config"]["bits_per_weight"];
        bpw_source = "quantization_config.bits_per_weight";
      } else {
        const std::string w = linear_tensor_prefix(0, 0) + ".weight";
        if (model->store && model->store->has(w)) {
          DType dt = model->store->get(w).dtype;
          if (dt == DType::F32 || dt == DType::F16 || dt == DType::BF16) {
            bpw = dt == DType::F32 ? 32 : 16;
            bpw_source = fmt::format("checkpoint dtype {} of decoder linear weights (computed in fp32)",
                                     dtype_name(dt));
          }
        }
        if (bpw.is_null()) bpw_source = "unknown";
      }
      const size_t model_bytes = model->store ? model->store->total_bytes() : 0;
      const size_t param_bytes = model->param_bytes();
      decode_bytes = model->decode_bytes_per_token();
      j["model"] = dir;
      j["architecture"] = c.arch_name;
      j["parameters"] = c.n_params();
      j["model_bytes"] = model_bytes;
      j["param_bytes"] = param_bytes;
      j["decode_bytes_per_token"] = decode_bytes;
      j["bits_per_weight"] = bpw;
      j["bits_per_weight_source"] = bpw_source;
      if (raw.contains("quantization_config") && raw["quantization_config"].is_object()) {
        const json& qc = raw["quantization_config"];
        j["quant_method"] = qc.value("quant_method", "");
        // Packed models: decoder linears vs embeddings/norms/head, from `bwla pack`.
        if (qc.contains("packed_bytes")) j["packed_bytes"] = qc["packed_bytes"];
        if (qc.contains("embedding_dtype")) j["embedding_dtype"] = qc["embedding_dtype"];
      }
      j["tg_prompt"] = tg_prompt;
      j["seed"] = seed;
      j["samples_tps"] = samples;
      j["peak_rss_bytes"] = peak_rss_bytes();  // before the bandwidth buffer exists
    }

    if (bandwidth) {
      std::vector<uint64_t> buf((size_t)bw_mib * 1024 * 1024 / 8);
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < buf.size(); ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;
      std::set<int> ts = {1, 2, threads};
      json bw = json::object();
      for (int t : ts) {
        read_bandwidth_gbps(buf, t, 1);  // warm-up
        const double g = read_bandwidth_gbps(buf, t, std::max(reps, 3));
        bw[std::to_string(t)] = g;
        j[fmt::format("bandwidth_{}t_gbps", t)] = g;
      }
      j["bandwidth_gbps"] = bw;
      j["bandwidth_buffer_bytes"] = buf.size() * 8;
      if (decode_bytes > 0) {
        const double bound = bw[std::to_string(threads)].get<double>() * 1e9 / decode_bytes;
        j["tg_bound_tps"] = bound;
      }
    }

    if (common.json) {
      print_json(j);
      return 0;
    }
    if (!dir.empty()) {
      fmt::print("model          {} ({}, {:.1f} M parameters)\n", dir, j["architecture"].get<std::string>(),
                 j["parameters"].get<long long>() / 1e6);
      fmt::print("model bytes    {} on disk, {} parameters in memory\n",
                 human_bytes(j["model_bytes"].get<double>()), human_bytes(j["param_bytes"].get<double>()));
      fmt::print("bits/weight    {} ({})\n",
                 j["bits_per_weight"].is_null() ? std::string("?") : j["bits_per_weight"].dump(),
                 j["bits_per_weight_source"].get<std::string>());
      if (j.contains("packed_bytes"))
        fmt::print("packed         decoder linears {}, embeddings/norms/head {} ({})\n",
                   human_bytes(j["packed_bytes"].value("decoder_linears", 0.0)),
                   human_bytes(j["packed_bytes"].value("embeddings_norms_head", 0.0)),
                   j.value("embedding_dtype", std::string("?")));
      fmt::print("peak RSS       {}\n", human_bytes(j["peak_rss_bytes"].get<double>()));
      fmt::print("threads {}, median of {} reps, random token ids (seed {})\n\n", threads, reps, seed);
      fmt::print("| test | threads | tokens/s |\n|---|---|---|\n");
      for (auto& [name, t, tps] : rows) fmt::print("| {} | {} | {:.2f} |\n", name, t, tps);
    }
    if (bandwidth) {
      fmt::print("\nread bandwidth ({}): ", human_bytes(j["bandwidth_buffer_bytes"].get<double>()));
      for (auto& [t, g] : j["bandwidth_gbps"].items()) fmt::print("{}T {:.1f} GB/s  ", t, g.get<double>());
      fmt::print("\n");
      if (j.contains("tg_bound_tps"))
        fmt::print("decode bound   {:.2f} tokens/s ({} per token at {}T bandwidth)\n",
                   j["tg_bound_tps"].get<double>(), human_bytes((double)decode_bytes), threads);
    }
    return 0;
  };
}

}  // namespace bwla::cli
