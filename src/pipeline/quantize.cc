#include "pipeline/quantize.h"

#include <sys/resource.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"
#include "model/forward.h"
#include "model/quant_model.h"
#include "model/tokenizer.h"
#include "pipeline/linear_quantizer.h"
#include "quant/xtx.h"

namespace bwla {

namespace fs = std::filesystem;

namespace {

long peak_rss() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss * 1024L;
}

// Accumulates XᵀX and a uniform row sample for each of a layer's 4 inputs.
class StatsCapture : public Capture {
 public:
  StatsCapture(const ModelConfig& c, long total_rows, int sample_rows, uint64_t seed) {
    const int dims[kNumInputSlots] = {c.hidden, c.q_dim(), c.hidden, c.intermediate};
    Rng rng(seed);
    // Same sampled row indices for every slot (sorted, unique).
    std::vector<char> take(total_rows, 0);
    long k = std::min<long>(sample_rows, total_rows);
    for (long i = 0, chosen = 0; i < total_rows && chosen < k; ++i)
      if ((long)rng.below(total_rows - i) < k - chosen) take[i] = 1, ++chosen;
    take_ = std::move(take);
    for (int s = 0; s < kNumInputSlots; ++s) {
      acc_.emplace_back(dims[s]);
      sample_[s].resize(k, dims[s]);
    }
  }
  void set_row_offset(long off) { offset_ = off; }
  void set_inputs_only(bool v) { inputs_only_ = v; }
  bool inputs_only() const override { return inputs_only_; }
  void linear_input(int, int slot, const float* x, int n, int dim) override {
    acc_[slot].add(x, n);
    long& filled = filled_[slot];
    for (int t = 0; t < n; ++t)
      if (take_[offset_ + t])
        std::copy(x + (size_t)t * dim, x + (size_t)(t + 1) * dim, sample_[slot].row(filled++).data());
  }
  LinearStats stats(int slot) {
    LinearStats s;
    s.xtx = acc_[slot].xtx();
    s.n_tokens = acc_[slot].count();
    s.sample = sample_[slot].topRows(filled_[slot]);
    return s;
  }

 private:
  std::vector<XtxAccumulator> acc_;
  MatrixRM sample_[kNumInputSlots];
  long filled_[kNumInputSlots] = {0, 0, 0, 0};
  std::vector<char> take_;
  long offset_ = 0;
  bool inputs_only_ = false;
};

MatrixRM dense_matrix(const Linear& l) {
  const auto* d = dynamic_cast<const DenseLinear*>(&l);
  BWLA_ASSERT(d, "expected a dense linear{}", "");
  return Eigen::Map<const MatrixRM>(d->weight(), d->out_features(), d->in_features());
}

std::string layer_dir(const std::string& partial, int l) {
  return fmt::format("{}/layer_{:04d}", partial, l);
}

// All statistics of a layer are gathered before its linears are quantized, so
// the 7 quantizations are independent. Much of each one is serial (GPTQ column
// loop, per-block binarizer refits), so with `jobs` > 1 they run side by side,
// one thread each, largest first. Each result is that of the same method at one
// thread (multi-threaded float reductions round differently, so it can differ
// from a 2-thread run in the last digits; OKT's EM can amplify that slightly).
void run_linears_side_by_side(const ModelConfig& c, int jobs, const std::function<void(int)>& fn) {
  if (jobs <= 0) jobs = num_threads();
  if (jobs <= 1 || omp_in_parallel()) {
    for (int id = 0; id < kNumLinears; ++id) fn(id);
    return;
  }
  std::vector<int> order(kNumLinears);
  for (int id = 0; id < kNumLinears; ++id) order[id] = id;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return (long)c.linear_out(a) * c.linear_in(a) > (long)c.linear_out(b) * c.linear_in(b);
  });
  BlasSingleThreaded blas_single;
  std::exception_ptr err;
  std::mutex mu;
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
  for (int i = 0; i < kNumLinears; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (err) continue;  // another linear failed: start nothing new
    }
    try {
      fn(order[i]);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace

QuantizeResult quantize_model(const std::string& model_dir, const QuantizeOptions& opt_in,
                              const std::string& out_dir) {
  Timer timer;
  QuantizeOptions opt = opt_in;
  opt.finalize();
  auto model = Model::load_skeleton(model_dir);
  const ModelConfig& c = model->cfg;
  BWLA_CHECK(!is_quantized_config(c), "'{}' is already quantized", model_dir);
  BWLA_CHECK(opt.calib.seq_len <= c.max_pos,
             "calibration length {} exceeds the model's max_position_embeddings {}",
             opt.calib.seq_len, c.max_pos);
  if (opt.psp && opt.rank_ratio <= 0)  // a fixed --rank must fit every linear (checked before any work)
    for (int id = 0; id < 7; ++id)
      BWLA_CHECK(opt.psp_opt.rank < std::min(c.linear_out(id), c.linear_in(id)),
                 "--rank {} is too large for '{}': linear {} is {}x{}, so the rank must be below {}",
                 opt.psp_opt.rank, model_dir, id, c.linear_out(id), c.linear_in(id),
                 std::min(c.linear_out(id), c.linear_in(id)));
  std::vector<std::vector<int>> segs;
  if (is_random_token_calibration(opt.calib)) {
    log_info("calibration: {} x {} uniform random token ids (timing runs; no tokenizer used)",
             opt.calib.n_segments, opt.calib.seq_len);
    segs = random_token_calibration(c.vocab, opt.calib);
  } else {
    auto tok = Tokenizer::load_dir(model_dir);
    segs = sample_calibration(*tok, opt.calib);
  }
  const int S = opt.calib.n_segments, L = opt.calib.seq_len, H = c.hidden;
  const long rows = (long)S * L;

  // Resumable state: OUT.partial/state.json must match these settings.
  const std::string partial = out_dir + ".partial";
  json settings = opt.to_json();
  settings["model"] = fs::absolute(model_dir).string();
  if (fs::exists(partial)) {
    bool same = false;
    try {
      same = load_json_file(partial + "/state.json") == settings;
    } catch (const Error&) {
    }
    if (!same || !opt.resume) {
      log_info("quantize: discarding '{}' (settings differ or --no-resume)", partial);
      fs::remove_all(partial);
    }
  }
  fs::create_directories(partial);
  write_text_file_atomic(partial + "/state.json", settings.dump(2));

  // Layer-0 inputs: embeddings of the calibration tokens.
  std::vector<float> x((size_t)rows * H);
  for (int s = 0; s < S; ++s) embed_tokens(*model, segs[s].data(), L, x.data() + (size_t)s * L * H);
  // Not needed again (the output copies them from the checkpoint): free the fp32 copies.
  model->lm_head.reset();
  model->embed = std::vector<float>();

  json layer_reports = json::array();
  double total_bits = 0;
  long total_weights = 0;
  Progress prog("quantize", c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    Timer lt;
    const std::string ldir = layer_dir(partial, l);
    json lrep;
    // fp32 outputs of this layer for the first chunk only (the block error is
    // measured there; the other chunks skip down_proj in the statistics pass).
    const int ns0 = std::min(opt.chunk_segments, S);
    std::vector<float> y_fp;
    const bool have = fs::exists(ldir + "/model.safetensors") && fs::exists(ldir + "/report.json");
    json phases;
    if (have) {
      TensorStore st(ldir);
      model->layers[l] = load_quantized_layer(st, c, l, opt.abits);
      lrep = load_json_file(ldir + "/report.json");
      lrep["resumed"] = true;
    } else {
      Timer pt;
      LayerWeights fp = load_dense_layer(*model->store, c, l);
      // The layer is converted to fp32 now: drop its mapped checkpoint pages so
      // the resident set does not grow by the whole checkpoint over the run.
      const std::string prefix = fmt::format("model.layers.{}.", l);
      for (const auto& n : model->store->names())
        if (n.rfind(prefix, 0) == 0) model->store->release(n);
      // Statistics of this layer's linear inputs on the (quantized-so-far) stream.
      StatsCapture cap(c, rows, opt.act_sample_rows, opt.seed * 7919 + l);
      std::vector<float> buf((size_t)opt.chunk_segments * L * H);
      for (int s0 = 0; s0 < S; s0 += opt.chunk_segments) {
        int ns = std::min(opt.chunk_segments, S - s0);
        std::copy(x.begin() + (size_t)s0 * L * H, x.begin() + (size_t)(s0 + ns) * L * H, buf.begin());
        cap.set_row_offset((long)s0 * L);
        cap.set_inputs_only(s0 > 0);
        layer_forward(c, *model->rope, fp, l, buf.data(), ns, L, nullptr, &cap);
        if (s0 == 0) y_fp.assign(buf.begin(), buf.begin() + (size_t)ns * L * H);
      }
      buf = std::vector<float>();
      phases["stats"] = pt.seconds();
      pt.reset();
      LayerWeights q;
      q.attn_norm = fp.attn_norm;
      q.mlp_norm = fp.mlp_norm;
      q.q_norm = fp.q_norm;
      q.k_norm = fp.k_norm;
      json lins = json::array();
      LinearStats slot_stats[kNumInputSlots];
      for (int s = 0; s < kNumInputSlots; ++s) slot_stats[s] = cap.stats(s);
      LinearQuantReport reps[kNumLinears];
      auto quantize_one = [&](int id) {
        LinearQuantReport& rep = reps[id];
        rep.name = fmt::format("layers.{}.{}", l, linear_name(id));
        const auto* d = dynamic_cast<const DenseLinear*>(fp.lin[id].get());
        q.lin[id] = quantize_linear(dense_matrix(*fp.lin[id]), d->bias(),
                                    slot_stats[linear_input_slot(id)], opt,
                                    opt.seed * 1000003ull + (uint64_t)l * 16 + id, rep);
        log_debug("{}: rel out err {:.4f} bits/w {:.3f}", rep.name, rep.rel_out_error,
                  rep.storage_bits / rep.n_weights);
        fp.lin[id].reset();
      };
      run_linears_side_by_side(c, opt.linear_jobs, quantize_one);
      for (int id = 0; id < kNumLinears; ++id) lins.push_back(reps[id].to_json());
      model->layers[l] = std::move(q);
      lrep["linears"] = lins;
      SafeTensorsWriter w;
      add_layer_tensors(w, *model, l);
      fs::create_directories(ldir);
      w.write(ldir + "/model.safetensors");
      phases["quantize"] = pt.seconds();
    }
    // Propagate through the quantized layer, in place: x becomes the next layer's input.
    Timer pt;
    for (int s0 = 0; s0 < S; s0 += opt.chunk_segments) {
      int ns = std::min(opt.chunk_segments, S - s0);
      layer_forward(c, *model->rope, model->layers[l], l, x.data() + (size_t)s0 * L * H, ns, L,
                    nullptr, nullptr);
    }
    for (float v : x)
      BWLA_CHECK(std::isfinite(v), "layer {}: quantized outputs contain NaN/Inf", l);
    if (!have) {
      phases["propagate"] = pt.seconds();
      double num = 0, den = 0;
      for (size_t i = 0; i < y_fp.size(); ++i) {
        double d = (double)x[i] - y_fp[i];
        num += d * d;
        den += (double)y_fp[i] * y_fp[i];
      }
      lrep["layer"] = l;
      lrep["block_rel_error"] = den > 0 ? std::sqrt(num / den) : 0.0;
      lrep["block_error_tokens"] = (long)ns0 * L;
      lrep["seconds"] = lt.seconds();
      lrep["phase_seconds"] = phases;
      write_text_file_atomic(ldir + "/report.json", lrep.dump(2));
    }
    for (int id = 0; id < kNumLinears; ++id) {
      const auto* fq = dynamic_cast<const FakeQuantLinear*>(model->layers[l].lin[id].get());
      total_bits += fq->parts().storage_bits;
      total_weights += (long)fq->parts().w_hat.size();
    }
    layer_reports.push_back(lrep);
    model->layers[l] = LayerWeights();  // free: it is on disk now
    prog.update(l + 1, fmt::format("block err {:.4f}", lrep.value("block_rel_error", 0.0)));
    if (opt.stop_after > 0 && l + 1 >= opt.stop_after && l + 1 < c.n_layers) {
      log_info("quantize: stopped after {} layers as asked; rerun to resume from '{}'", l + 1, partial);
      QuantizeResult r;
      r.complete = false;
      r.seconds = timer.seconds();
      return r;
    }
  }
  prog.finish();

  // Assemble the final directory from the per-layer files (no full copy in RAM).
  {
    SafeTensorsWriter w;
    // Embeddings, final norm and lm_head are not quantized: their checkpoint
    // bytes are copied as stored (same dtype), straight from the mapping.
    const TensorStore& src = *model->store;
    std::vector<std::string> keep = {"model.embed_tokens.weight", "model.norm.weight"};
    if (!c.tie_embeddings) keep.push_back("lm_head.weight");
    for (const auto& n : keep) {
      const TensorView& t = src.get(n);
      w.add_view(n, t.dtype, t.shape, t.data, t.nbytes, [&src, n] { src.release(n); });
    }
    std::vector<std::unique_ptr<SafeTensorsFile>> files;
    for (int l = 0; l < c.n_layers; ++l) {
      files.push_back(std::make_unique<SafeTensorsFile>(layer_dir(partial, l) + "/model.safetensors"));
      const SafeTensorsFile* f = files.back().get();
      for (auto& n : f->names()) {
        const TensorView& t = f->get(n);
        // Released once written: only one tensor of the output is resident at a time.
        w.add_view(n, t.dtype, t.shape, t.data, t.nbytes, [f, n] { f->release(n); });
      }
    }
    json cfg = c.raw;
    json qc = settings;
    qc.erase("model");
    qc["format"] = "fake-quant";
    qc["bits_per_weight"] = total_weights ? total_bits / total_weights : 0.0;
    cfg["quantization_config"] = qc;
    w.set_metadata("format", "pt");
    QuantizeResult res;
    res.bits_per_weight = total_weights ? total_bits / total_weights : 0.0;
    res.seconds = timer.seconds();
    res.report = {{"settings", settings},
                  {"layers", layer_reports},
                  {"bits_per_weight", res.bits_per_weight},
                  {"linear_weights", total_weights},
                  {"seconds", res.seconds},
                  {"peak_rss_bytes", peak_rss()}};
    write_quantized_dir(w, cfg, model_dir, out_dir, {{"quantize_report.json", res.report.dump(2)}});
    fs::remove_all(partial);
    return res;
  }
}

}  // namespace bwla
