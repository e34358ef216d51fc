#include "pipeline/quantize.h"

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
#include "core/cluster.h"
#include "core/rss.h"
#include "core/threads.h"
#include "core/timer.h"
#include "io/fingerprint.h"
#include "io/output_path.h"
#include "model/forward.h"
#include "model/ops.h"
#include "model/quant_model.h"
#include "tokenizer/tokenizer.h"
#include "pipeline/distributed.h"
#include "pipeline/linear_quantizer.h"
#include "pipeline/resume.h"

namespace bwla {

namespace fs = std::filesystem;

namespace {

// Calibration segments whose fp32 layer outputs are computed for the block error.
constexpr int kBlockErrorSegments = 4;

// Uniform sample of k of n row indices (sorted, unique), as a 0/1 mask.
std::vector<char> sample_mask(long n, long k, uint64_t seed) {
  Rng rng(seed);
  std::vector<char> take(n, 0);
  k = std::min(k, n);
  for (long i = 0, chosen = 0; i < n && chosen < k; ++i)
    if ((long)rng.below(n - i) < k - chosen) take[i] = 1, ++chosen;
  return take;
}

// Statistics of one linear input slot over this rank's calibration rows,
// fed chunk by chunk, group by group: XᵀX over the fixed tree of groups
// (pipeline/distributed.h) and the rows picked by the layer's sample mask
// (the same rows for every slot of a layer), gathered in row order.
class SlotStats {
 public:
  SlotStats(int dim, const std::vector<char>& take, const CalibSplit& split, long total_rows)
      : dim_(dim), tree_(dim, split), take_(take), rows_(total_rows) {
    long k = 0;
    for (long r = split.row_begin(); r < split.row_begin() + split.rows(); ++r) k += take[r];
    sample_.resize(k, dim);
  }
  void add(const float* x, long n, long row0) {
    tree_.add(x, n, row0);
    for (long t = 0; t < n; ++t)
      if (take_[row0 + t])
        std::copy(x + (size_t)t * dim_, x + (size_t)(t + 1) * dim_, sample_.row(filled_++).data());
  }
  void end_group(int g) { tree_.end_group(g); }
  // Collective: every rank calls it, and every rank gets the whole statistics.
  LinearStats finish() {
    LinearStats s;
    s.xtx = tree_.finish();
    s.n_tokens = rows_;
    BWLA_ASSERT(filled_ == sample_.rows(), "sampled {} of {} rows", filled_, sample_.rows());
    s.sample = gather_rows(sample_, dim_);
    return s;
  }

 private:
  int dim_;
  TreeXtx tree_;
  const std::vector<char>& take_;
  long rows_;
  MatrixRM sample_;
  long filled_ = 0;
};

MatrixRM dense_matrix(const Linear& l) {
  const auto* d = dynamic_cast<const DenseLinear*>(&l);
  BWLA_ASSERT(d, "expected a dense linear{}", "");
  return Eigen::Map<const MatrixRM>(d->weight(), d->out_features(), d->in_features());
}

std::string layer_dir(const std::string& partial, int l) {
  return fmt::format("{}/layer_{:04d}", partial, l);
}

// The linears of one input slot share their statistics, so they are
// quantized independently. Much of each one is serial (GPTQ column loop,
// per-block binarizer refits), so with `jobs` > 1 they run side by side, one
// thread each, largest first. A slot with a single linear runs it alone with
// every thread. Either way a linear's result is the same bits: every split
// product and reduction inside it is cut by shape, not by thread count.
void run_linears_side_by_side(const ModelConfig& c, std::vector<int> ids, int jobs,
                              const std::function<void(int)>& fn) {
  if (jobs <= 0) jobs = num_threads();
  jobs = std::min<int>(jobs, (int)ids.size());
  if (jobs <= 1 || omp_in_parallel()) {
    for (int id : ids) fn(id);
    return;
  }
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) {
    return (long)c.linear_out(a) * c.linear_in(a) > (long)c.linear_out(b) * c.linear_in(b);
  });
  std::exception_ptr err;
  std::mutex mu;
#pragma omp parallel for schedule(dynamic, 1) num_threads(jobs)
  for (size_t i = 0; i < ids.size(); ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (err) continue;  // another linear failed: start nothing new
    }
    try {
      fn(ids[i]);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}

// Rank of each of a slot's linears (indexed by linear id): dealt round-robin
// in the order run_linears_side_by_side runs them, largest first.
std::vector<int> deal_linears(const ModelConfig& c, std::vector<int> ids, int nranks) {
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) {
    return (long)c.linear_out(a) * c.linear_in(a) > (long)c.linear_out(b) * c.linear_in(b);
  });
  std::vector<int> owner(kNumLinears, -1);
  for (size_t i = 0; i < ids.size(); ++i) owner[ids[i]] = (int)(i % nranks);
  return owner;
}

}  // namespace

QuantizeResult quantize_model(const std::string& model_dir, const QuantizeOptions& opt_in,
                              const std::string& out_arg) {
  Timer timer;
  QuantizeOptions opt = opt_in;
  opt.finalize();
  // Where the output, its staging copy and the resumable state will go, all
  // checked before any work (docs/GUARANTEES.md).
  check_output_dir(out_arg, {model_dir}, "-o");
  const std::string out_dir = normalized_output_path(out_arg);
  const std::string partial = out_dir + ".partial";
  check_work_dir(partial, "-o");
  check_work_dir(out_dir + ".tmp", "-o");
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
    check_tokenizer_vocab(*tok, c.vocab, model_dir);
    segs = sample_calibration(*tok, opt.calib);
  }
  const int S = opt.calib.n_segments, L = opt.calib.seq_len, H = c.hidden;
  const long rows = (long)S * L;
  // This process's share of the calibration segments (all of them without
  // mpirun); row indices below are global, x and mid hold this rank's rows.
  const int rank = cluster_rank(), nranks = cluster_size();
  const CalibSplit split(S, L, nranks, rank);
  const long row_base = split.row_begin(), my_rows = split.rows();
  if (nranks > 1)
    log_info("quantize: rank {} of {}: calibration segments [{}, {})", rank, nranks,
             split.seg_begin, split.seg_end);

  // Resumable state: OUT.partial/state.json must match these settings and
  // the content of what they read (fingerprints of the checkpoint and the
  // calibration file), not only their paths.
  const json settings = resume_settings(opt, model_dir);
  json state = settings;
  state["inputs"] = {{"checkpoint", checkpoint_fingerprint(model_dir)}};
  if (!is_random_token_calibration(opt.calib))
    state["inputs"]["calibration"] = file_fingerprint(calib_source_path(opt.calib));
  // Rank 0 alone reads and writes the output's directories.
  if (rank == 0) {
    if (fs::exists(partial)) {
      const ResumeCheck rc = check_resume_state(partial, state);
      if (!rc.resumable || !opt.resume) {
        log_info("quantize: discarding '{}' ({})", partial, opt.resume ? rc.why : "--no-resume");
        remove_owned_dir(partial);
      }
    }
    claim_work_dir(partial, "quantize (partial results)");
    write_text_file_atomic(partial + "/state.json", state.dump(2));
  }

  // Layer-0 inputs: embeddings of the calibration tokens.
  std::vector<float> x((size_t)my_rows * H);
  for (int s = split.seg_begin; s < split.seg_end; ++s)
    embed_tokens(*model, segs[s].data(), L, x.data() + (size_t)(s - split.seg_begin) * L * H);
  auto x_at = [&](long row0) { return x.data() + (row0 - row_base) * H; };
  // Not needed again (the output copies them from the checkpoint): free the fp32 copies.
  model->lm_head.reset();
  model->embed = std::vector<float>();

  json layer_reports = json::array();
  double total_bits = 0;
  long total_weights = 0;
  // Attention outputs, then MLP activations, of every calibration row: the
  // inputs of o_proj and down_proj, kept from the statistics pass to the
  // propagation through the quantized linear (true-sequential order).
  // With --keep-activations no (auto: when they would exceed
  // kKeepActivationsAutoBytes) only one chunk is held and the propagation
  // recomputes it from the same stream through the same quantized linears, so
  // the output is the same bits either way; at 128 x 2048 rows of a 7B-shape
  // MLP (11008 wide) the kept copy alone would be 11.5 GB.
  std::vector<float> mid;
  const int mid_dim = std::max(c.q_dim(), c.intermediate);
  const bool keep_mid =
      opt.keep_activations == KeepActivations::Yes ||
      (opt.keep_activations == KeepActivations::Auto &&
       (double)my_rows * mid_dim * sizeof(float) <= kKeepActivationsAutoBytes);
  if (!keep_mid)
    log_info("quantize: attention outputs / MLP activations recomputed per chunk instead of kept "
             "({:.2f} GiB for {} rows x {})",
             (double)my_rows * mid_dim * sizeof(float) / (1 << 30), my_rows, mid_dim);
  auto mid_at = [&](long row0, int dim) {
    return mid.data() + (keep_mid ? (row0 - row_base) * dim : 0);
  };
  Progress prog("quantize", c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    Timer lt;
    const double moved0 = cluster_bytes_moved();
    const std::string ldir = layer_dir(partial, l);
    json lrep = json::object();
    // The block error is measured on the first segments only: fp32 outputs of
    // this layer (on the quantized-so-far stream) are computed for this
    // rank's share of them.
    const int ns0 = std::min(kBlockErrorSegments, S);
    const int nb = std::max(0, std::min(split.seg_end, ns0) - split.seg_begin);
    std::vector<float> y_fp;
    int have = 0;
    if (rank == 0)
      have = fs::exists(ldir + "/model.safetensors") && fs::exists(ldir + "/report.json");
    cluster_bcast(&have, sizeof have, 0);
    json phases;
    // Chunks of segments in this rank's groups; none crosses a group boundary.
    auto for_group_chunks = [&](int g, const std::function<void(long row0, int ns)>& fn) {
      for (int s0 = split.group_begin(g); s0 < split.group_end(g); s0 += opt.chunk_segments)
        fn((long)s0 * L, std::min(opt.chunk_segments, split.group_end(g) - s0));
    };
    auto for_chunks = [&](const std::function<void(long row0, int ns)>& fn) {
      for (int g = split.g0; g < split.g1; ++g) for_group_chunks(g, fn);
    };
    if (have) {
      if (rank == 0) {
        TensorStore st(ldir);
        model->layers[l] = load_quantized_layer(st, c, l, opt.abits);
        lrep = load_layer_report(ldir);
        lrep["resumed"] = true;
      }
      if (nranks > 1) {
        std::string bytes = rank == 0 ? serialize_layer(model->layers[l]) : std::string();
        cluster_bcast(bytes, 0);
        if (rank != 0) model->layers[l] = deserialize_layer(bytes);
      }
      for_chunks([&](long row0, int ns) {
        layer_forward(c, *model->rope, model->layers[l], l, x_at(row0), ns, L, nullptr, nullptr);
      });
    } else {
      Timer pt;
      LayerWeights fp = load_dense_layer(*model->store, c, l);
      // The layer is converted to fp32 now: drop its mapped checkpoint pages so
      // the resident set does not grow by the whole checkpoint over the run.
      const std::string prefix = fmt::format("model.layers.{}.", l);
      for (const auto& n : model->store->names())
        if (n.rfind(prefix, 0) == 0) model->store->release(n);
      y_fp.assign(x.begin(), x.begin() + (size_t)nb * L * H);
      if (nb > 0) layer_forward(c, *model->rope, fp, l, y_fp.data(), nb, L, nullptr, nullptr);
      phases["reference"] = pt.seconds();
      double t_forward = 0, t_stats = 0, t_quant = 0;
      LayerWeights q;
      q.attn_norm = fp.attn_norm;
      q.mlp_norm = fp.mlp_norm;
      q.q_norm = fp.q_norm;
      q.k_norm = fp.k_norm;
      const std::vector<char> take = sample_mask(rows, opt.act_sample_rows, opt.seed * 7919 + l);
      LinearQuantReport reps[kNumLinears];
      json rep_json[kNumLinears];
      std::vector<float> hbuf;
      if (mid.empty())
        mid.resize((size_t)(keep_mid ? my_rows : (long)std::min(opt.chunk_segments, S) * L) * mid_dim);
      // True-sequential: the linears of each input slot are quantized on
      // statistics of the stream through the already-quantized linears before
      // them (with their activation quantization). make_input(row0, ns)
      // computes the slot's input rows for one chunk of segments and returns
      // them; the residual stages then push the stream past o_proj / down_proj.
      auto run_slot = [&](int slot, const std::function<const float*(long, int)>& make_input) {
        const int dim = slot == 1 ? c.q_dim() : slot == 3 ? c.intermediate : H;
        SlotStats ss(dim, take, split, rows);
        for (int g = split.g0; g < split.g1; ++g) {
          for_group_chunks(g, [&](long row0, int ns) {
            Timer ft;
            const float* in = make_input(row0, ns);
            t_forward += ft.seconds();
            ft.reset();
            ss.add(in, (long)ns * L, row0);
            t_stats += ft.seconds();
          });
          ss.end_group(g);
        }
        Timer ct;
        const LinearStats st = ss.finish();
        t_stats += ct.seconds();
        Timer qt;
        std::vector<int> ids;
        for (int id = 0; id < kNumLinears; ++id)
          if (linear_input_slot(id) == slot) ids.push_back(id);
        // With several ranks the slot's linears are dealt out, largest first,
        // and each is then broadcast by the rank that quantized it.
        const std::vector<int> owner = deal_linears(c, ids, nranks);
        std::vector<int> mine;
        for (int id : ids)
          if (owner[id] == rank) mine.push_back(id);
        run_linears_side_by_side(c, mine, opt.linear_jobs, [&](int id) {
          LinearQuantReport& rep = reps[id];
          rep.name = fmt::format("layers.{}.{}", l, linear_name(id));
          const auto* d = dynamic_cast<const DenseLinear*>(fp.lin[id].get());
          q.lin[id] = quantize_linear(dense_matrix(*fp.lin[id]), d->bias(), st, opt,
                                      opt.seed * 1000003ull + (uint64_t)l * 16 + id, rep);
          log_debug("{}: rel out err {:.4f} bits/w {:.3f}", rep.name, rep.rel_out_error,
                    rep.storage_bits / rep.n_weights);
          rep_json[id] = rep.to_json();
          fp.lin[id].reset();
        });
        for (int id : ids) {
          if (nranks > 1) {
            std::string rj = owner[id] == rank ? rep_json[id].dump() : std::string();
            std::string lb = owner[id] == rank
                                 ? serialize_linear(dynamic_cast<const FakeQuantLinear&>(*q.lin[id]))
                                 : std::string();
            cluster_bcast(rj, owner[id]);
            cluster_bcast(lb, owner[id]);
            if (owner[id] != rank) {
              rep_json[id] = json::parse(rj);
              q.lin[id] = deserialize_linear(lb);
            }
          }
          fp.lin[id].reset();
        }
        t_quant += qt.seconds();
      };
      auto normed = [&](const std::vector<float>& norm_w) {
        return [&, w = norm_w.data()](long row0, int ns) {
          const long n = (long)ns * L;
          if (hbuf.size() < (size_t)n * H) hbuf.resize((size_t)n * H);
          rmsnorm(x_at(row0), w, hbuf.data(), (int)n, H, c.rms_eps);
          return (const float*)hbuf.data();
        };
      };
      auto timed = [&](const std::function<void(long, int)>& fn) {
        Timer ft;
        for_chunks(fn);
        t_forward += ft.seconds();
      };
      run_slot(0, normed(q.attn_norm));
      auto attn_out = [&](long row0, int ns) {
        float* att = mid_at(row0, c.q_dim());
        layer_attention(c, *model->rope, q, l, x_at(row0), ns, L, att);
        return (const float*)att;
      };
      auto mlp_act = [&](long row0, int ns) {
        float* act = mid_at(row0, c.intermediate);
        layer_mlp_act(c, q, l, x_at(row0), ns * L, act);
        return (const float*)act;
      };
      run_slot(1, attn_out);
      timed([&](long row0, int ns) {
        const float* att = keep_mid ? mid_at(row0, c.q_dim()) : attn_out(row0, ns);
        layer_attn_residual(c, q, l, att, ns * L, x_at(row0));
      });
      run_slot(2, normed(q.mlp_norm));
      run_slot(3, mlp_act);
      timed([&](long row0, int ns) {
        const float* act = keep_mid ? mid_at(row0, c.intermediate) : mlp_act(row0, ns);
        layer_mlp_residual(c, q, l, act, ns * L, x_at(row0));
      });
      phases["forward"] = t_forward;
      phases["stats"] = t_stats;
      phases["quantize"] = t_quant;
      json lins = json::array();
      for (int id = 0; id < kNumLinears; ++id) lins.push_back(rep_json[id]);
      lrep["linears"] = lins;
      model->layers[l] = std::move(q);
      Timer wt;
      if (rank == 0) {
        SafeTensorsWriter w;
        add_layer_tensors(w, *model, l);
        fs::create_directories(ldir);
        w.write(ldir + "/model.safetensors");
      }
      phases["write"] = wt.seconds();
    }
    for (float v : x)
      BWLA_CHECK(std::isfinite(v), "layer {}: quantized outputs contain NaN/Inf", l);
    if (!have) {
      // Per segment, then summed in segment order (the same at any N).
      std::vector<double> parts;
      for (int s = 0; s < nb; ++s) {
        double num = 0, den = 0;
        for (size_t i = (size_t)s * L * H; i < (size_t)(s + 1) * L * H; ++i) {
          const double d = (double)x[i] - y_fp[i];
          num += d * d;
          den += (double)y_fp[i] * y_fp[i];
        }
        parts.push_back(num);
        parts.push_back(den);
      }
      parts = gather_doubles(parts);
      double num = 0, den = 0;
      for (size_t i = 0; i < parts.size(); i += 2) num += parts[i], den += parts[i + 1];
      lrep["layer"] = l;
      lrep["block_rel_error"] = den > 0 ? std::sqrt(num / den) : 0.0;
      lrep["block_error_tokens"] = (long)ns0 * L;
      lrep["seconds"] = lt.seconds();
      if (nranks > 1) lrep["rank0_bytes_moved"] = cluster_bytes_moved() - moved0;
      lrep["phase_seconds"] = phases;
      if (rank == 0) write_text_file_atomic(ldir + "/report.json", lrep.dump(2));
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
  if (rank != 0) {  // rank 0 assembles the output
    QuantizeResult r;
    r.bits_per_weight = total_weights ? total_bits / total_weights : 0.0;
    r.seconds = timer.seconds();
    return r;
  }

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
                  {"peak_rss_bytes", peak_rss_bytes()}};
    write_quantized_dir(w, cfg, model_dir, out_dir, {{"quantize_report.json", res.report.dump(2)}});
    remove_owned_dir(partial);
    return res;
  }
}

}  // namespace bwla
