#include "pipeline/quantize.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>

#include "core/cluster.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/rss.h"
#include "core/threads.h"
#include "core/timer.h"
#include "format/model_loader.h"
#include "format/quant_model.h"
#include "io/fingerprint.h"
#include "io/output_path.h"
#include "model/forward.h"
#include "model/ops.h"
#include "pipeline/distributed.h"
#include "pipeline/linear_quantizer.h"
#include "pipeline/resume.h"
#include "tokenizer/tokenizer.h"

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
  if (jobs <= 0) {  // auto (options.h): side by side only for small linears
    long largest = 0;
    for (int id : ids) largest = std::max(largest, (long)c.linear_out(id) * c.linear_in(id));
    jobs = largest <= kSideBySideMaxWeights ? num_threads() : 1;
  }
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

// The true-sequential layer loop of one quantization run, as its stages: the
// state every stage shares (this rank's calibration rows, the output paths,
// the totals) lives here, each stage is one method, and quantize_model below
// reads as their list.
class LayerLoop {
 public:
  LayerLoop(const std::string& model_dir, QuantizeOptions opt, const std::string& out_arg);
  // Stage 0: output paths checked, calibration sampled, resume state claimed,
  // layer 0's inputs (the embeddings of this rank's segments).
  void prepare();
  // Stage 1 per layer: a finished layer from OUT.partial, or a new one;
  // returns its block error (0 when resumed without one).
  double run_layer(int l);
  int n_layers() const { return c_->n_layers; }
  const std::string& partial_dir() const { return partial_; }
  // Stage 2: the output directory from the per-layer files (rank 0).
  QuantizeResult assemble();
  QuantizeResult stopped() const;

 private:
  using ChunkFn = std::function<void(long row0, int ns)>;
  using InputFn = std::function<const float*(long row0, int ns)>;

  // Chunks of segments in group g / in all this rank's groups; none crosses
  // a group boundary (pipeline/distributed.h).
  void for_group_chunks(int g, const ChunkFn& fn) const;
  void for_chunks(const ChunkFn& fn) const;
  float* x_at(long row0) { return x_.data() + (row0 - split_.row_begin()) * H_; }
  float* mid_at(long row0, int dim) {
    return mid_.data() + (keep_mid_ ? (row0 - split_.row_begin()) * dim : 0);
  }

  void resume_layer(int l, json& lrep);
  void quantize_layer(int l, json& lrep);
  // Every value of the stream after layer l is finite.
  void check_stream(int l) const;

  // The stages of quantize_layer.
  struct LayerWork {
    int l;
    LayerWeights fp, q;
    std::vector<char> take;  // the layer's sample rows (global indices)
    json rep_json[kNumLinears];
    std::vector<float> hbuf;
    double t_forward = 0, t_stats = 0, t_quant = 0;
  };
  // fp32 outputs of the layer for this rank's share of the block-error segments.
  std::vector<float> reference_outputs(const LayerWeights& fp, int l, int nb);
  // Statistics of one slot's input over every calibration row (collective).
  LinearStats slot_statistics(LayerWork& w, int slot, const InputFn& make_input);
  // The slot's linears, dealt across ranks, quantized, then shared.
  void quantize_slot(LayerWork& w, int slot, LinearStats st);
  // Pushes the stream past o_proj / down_proj through the quantized linears.
  void propagate(LayerWork& w, const ChunkFn& fn);
  void write_layer(int l);
  // ‖quantized − fp32‖ / ‖fp32‖ of the layer's outputs on the first segments,
  // per segment and summed in segment order (the same at any N).
  double block_error(const std::vector<float>& y_fp, int nb);

  std::string model_dir_, out_dir_, partial_;
  QuantizeOptions opt_;
  Timer timer_;
  std::unique_ptr<Model> model_;
  const ModelConfig* c_ = nullptr;
  int S_ = 0, L_ = 0, H_ = 0;
  long rows_ = 0;
  CalibSplit split_{1, 1, 1, 0};
  json settings_;
  // This rank's residual stream: the inputs of the next layer.
  std::vector<float> x_;
  // Attention outputs, then MLP activations, of this rank's rows: the inputs
  // of o_proj and down_proj, kept from the statistics pass to the propagation
  // through the quantized linear (true-sequential order). With
  // --keep-activations no (auto: when they would exceed
  // kKeepActivationsAutoBytes) only one chunk is held and the propagation
  // recomputes it from the same stream through the same quantized linears, so
  // the output is the same bits either way; at 128 x 2048 rows of a 7B-shape
  // MLP (11008 wide) the kept copy alone would be 11.5 GB.
  std::vector<float> mid_;
  int mid_dim_ = 0;
  bool keep_mid_ = true;
  json layer_reports_ = json::array();
  double total_bits_ = 0;
  long total_weights_ = 0;
};

LayerLoop::LayerLoop(const std::string& model_dir, QuantizeOptions opt, const std::string& out_arg)
    : model_dir_(model_dir), opt_(std::move(opt)) {
  opt_.finalize();
  // Where the output, its staging copy and the resumable state will go, all
  // checked before any work (docs/GUARANTEES.md).
  check_output_dir(out_arg, {model_dir}, "-o");
  out_dir_ = normalized_output_path(out_arg);
  partial_ = out_dir_ + ".partial";
  check_work_dir(partial_, "-o");
  check_work_dir(out_dir_ + ".tmp", "-o");
}

void LayerLoop::prepare() {
  model_ = load_model_skeleton(model_dir_);
  c_ = &model_->cfg;
  const ModelConfig& c = *c_;
  BWLA_CHECK(!is_quantized_config(c), "'{}' is already quantized", model_dir_);
  BWLA_CHECK(opt_.calib.seq_len <= c.max_pos,
             "calibration length {} exceeds the model's max_position_embeddings {}",
             opt_.calib.seq_len, c.max_pos);
  if (opt_.psp && opt_.rank_ratio <= 0)  // a fixed --rank must fit every linear (checked before any work)
    for (int id = 0; id < 7; ++id)
      BWLA_CHECK(opt_.psp_opt.rank < std::min(c.linear_out(id), c.linear_in(id)),
                 "--rank {} is too large for '{}': linear {} is {}x{}, so the rank must be below {}",
                 opt_.psp_opt.rank, model_dir_, id, c.linear_out(id), c.linear_in(id),
                 std::min(c.linear_out(id), c.linear_in(id)));
  std::vector<std::vector<int>> segs;
  if (is_random_token_calibration(opt_.calib)) {
    log_info("calibration: {} x {} uniform random token ids (timing runs; no tokenizer used)",
             opt_.calib.n_segments, opt_.calib.seq_len);
    segs = random_token_calibration(c.vocab, opt_.calib);
  } else {
    auto tok = Tokenizer::load_dir(model_dir_);
    check_tokenizer_vocab(*tok, c.vocab, model_dir_);
    segs = sample_calibration(*tok, opt_.calib);
  }
  S_ = opt_.calib.n_segments, L_ = opt_.calib.seq_len, H_ = c.hidden;
  rows_ = (long)S_ * L_;
  // This process's share of the calibration segments (all of them without
  // mpirun); row indices are global, x_ and mid_ hold this rank's rows.
  split_ = CalibSplit(S_, L_, cluster_size(), cluster_rank());
  if (split_.ranks > 1)
    log_info("quantize: rank {} of {}: calibration segments [{}, {})", split_.rank, split_.ranks,
             split_.seg_begin, split_.seg_end);

  // Resumable state: OUT.partial/state.json must match these settings and
  // the content of what they read (fingerprints of the checkpoint and the
  // calibration file), not only their paths.
  settings_ = resume_settings(opt_, model_dir_);
  json state = settings_;
  state["inputs"] = {{"checkpoint", checkpoint_fingerprint(model_dir_)}};
  if (!is_random_token_calibration(opt_.calib))
    state["inputs"]["calibration"] = file_fingerprint(calib_source_path(opt_.calib));
  // Rank 0 alone reads and writes the output's directories.
  if (split_.rank == 0) {
    if (fs::exists(partial_)) {
      const ResumeCheck rc = check_resume_state(partial_, state);
      if (!rc.resumable || !opt_.resume) {
        log_info("quantize: discarding '{}' ({})", partial_, opt_.resume ? rc.why : "--no-resume");
        remove_owned_dir(partial_);
      }
    }
    claim_work_dir(partial_, "quantize (partial results)");
    write_text_file_atomic(partial_ + "/state.json", state.dump(2));
  }

  // Layer-0 inputs: embeddings of the calibration tokens.
  x_.assign((size_t)split_.rows() * H_, 0.0f);
  for (int s = split_.seg_begin; s < split_.seg_end; ++s)
    embed_tokens(*model_, segs[s].data(), L_, x_.data() + (size_t)(s - split_.seg_begin) * L_ * H_);
  // Not needed again (the output copies them from the checkpoint): free the fp32 copies.
  model_->lm_head.reset();
  model_->embed = std::vector<float>();

  mid_dim_ = std::max(c.q_dim(), c.intermediate);
  const double mid_bytes = (double)split_.rows() * mid_dim_ * sizeof(float);
  keep_mid_ = opt_.keep_activations == KeepActivations::Yes ||
              (opt_.keep_activations == KeepActivations::Auto && mid_bytes <= kKeepActivationsAutoBytes);
  if (!keep_mid_)
    log_info("quantize: attention outputs / MLP activations recomputed per chunk instead of kept "
             "({:.2f} GiB for {} rows x {})",
             mid_bytes / (1 << 30), split_.rows(), mid_dim_);
}

void LayerLoop::for_group_chunks(int g, const ChunkFn& fn) const {
  for (int s0 = split_.group_begin(g); s0 < split_.group_end(g); s0 += opt_.chunk_segments)
    fn((long)s0 * L_, std::min(opt_.chunk_segments, split_.group_end(g) - s0));
}

void LayerLoop::for_chunks(const ChunkFn& fn) const {
  for (int g = split_.g0; g < split_.g1; ++g) for_group_chunks(g, fn);
}

double LayerLoop::run_layer(int l) {
  Timer lt;
  const double moved0 = cluster_bytes_moved();
  json lrep = json::object();
  int have = 0;
  if (split_.rank == 0) {
    const std::string ldir = layer_dir(partial_, l);
    have = fs::exists(ldir + "/model.safetensors") && fs::exists(ldir + "/report.json");
  }
  cluster_bcast(&have, sizeof have, 0);
  if (have) {
    resume_layer(l, lrep);
  } else {
    quantize_layer(l, lrep);
    lrep["seconds"] = lt.seconds();
    if (split_.ranks > 1) lrep["rank0_bytes_moved"] = cluster_bytes_moved() - moved0;
    if (split_.rank == 0) write_text_file_atomic(layer_dir(partial_, l) + "/report.json", lrep.dump(2));
  }
  for (int id = 0; id < kNumLinears; ++id) {
    const auto* fq = dynamic_cast<const FakeQuantLinear*>(model_->layers[l].lin[id].get());
    total_bits_ += fq->parts().storage_bits;
    total_weights_ += (long)fq->parts().w_hat.size();
  }
  layer_reports_.push_back(lrep);
  model_->layers[l] = LayerWeights();  // free: it is on disk now
  return lrep.value("block_rel_error", 0.0);
}

void LayerLoop::check_stream(int l) const {
  for (float v : x_) BWLA_CHECK(std::isfinite(v), "layer {}: quantized outputs contain NaN/Inf", l);
}

void LayerLoop::resume_layer(int l, json& lrep) {
  const ModelConfig& c = *c_;
  if (split_.rank == 0) {
    const std::string ldir = layer_dir(partial_, l);
    TensorStore st(ldir);
    model_->layers[l] = load_quantized_layer(st, c, l, opt_.abits);
    lrep = load_layer_report(ldir);
    lrep["resumed"] = true;
  }
  if (split_.ranks > 1) {
    std::string bytes = split_.rank == 0 ? serialize_layer(model_->layers[l]) : std::string();
    cluster_bcast(bytes, 0);
    if (split_.rank != 0) model_->layers[l] = deserialize_layer(bytes);
  }
  for_chunks([&](long row0, int ns) {
    layer_forward(c, *model_->rope, model_->layers[l], l, x_at(row0), ns, L_, nullptr, nullptr);
  });
  check_stream(l);
}

std::vector<float> LayerLoop::reference_outputs(const LayerWeights& fp, int l, int nb) {
  std::vector<float> y(x_.begin(), x_.begin() + (size_t)nb * L_ * H_);
  if (nb > 0) layer_forward(*c_, *model_->rope, fp, l, y.data(), nb, L_, nullptr, nullptr);
  return y;
}

LinearStats LayerLoop::slot_statistics(LayerWork& w, int slot, const InputFn& make_input) {
  const ModelConfig& c = *c_;
  const int dim = slot == 1 ? c.q_dim() : slot == 3 ? c.intermediate : H_;
  SlotStats ss(dim, w.take, split_, rows_);
  for (int g = split_.g0; g < split_.g1; ++g) {
    for_group_chunks(g, [&](long row0, int ns) {
      Timer ft;
      const float* in = make_input(row0, ns);
      w.t_forward += ft.seconds();
      ft.reset();
      ss.add(in, (long)ns * L_, row0);
      w.t_stats += ft.seconds();
    });
    ss.end_group(g);
  }
  Timer ct;
  LinearStats st = ss.finish();
  w.t_stats += ct.seconds();
  return st;
}

void LayerLoop::quantize_slot(LayerWork& w, int slot, LinearStats st) {
  const ModelConfig& c = *c_;
  Timer qt;
  std::vector<int> ids;
  for (int id = 0; id < kNumLinears; ++id)
    if (linear_input_slot(id) == slot) ids.push_back(id);
  // With several ranks the slot's linears are dealt out, largest first, and
  // each is then broadcast by the rank that quantized it.
  const std::vector<int> owner = deal_linears(c, ids, split_.ranks);
  std::vector<int> mine;
  for (int id : ids)
    if (owner[id] == split_.rank) mine.push_back(id);
  LinearQuantReport reps[kNumLinears];
  run_linears_side_by_side(c, mine, opt_.linear_jobs, [&](int id) {
    LinearQuantReport& rep = reps[id];
    rep.name = fmt::format("layers.{}.{}", w.l, linear_name(id));
    const auto* d = dynamic_cast<const DenseLinear*>(w.fp.lin[id].get());
    // A slot of one linear (o_proj, down_proj): its XᵀX is freed once rotated.
    w.q.lin[id] = quantize_linear(dense_matrix(*w.fp.lin[id]), d->bias(), st, opt_,
                                  opt_.seed * 1000003ull + (uint64_t)w.l * 16 + id, rep,
                                  ids.size() == 1 ? &st.xtx : nullptr);
    log_debug("{}: rel out err {:.4f} bits/w {:.3f}", rep.name, rep.rel_out_error,
              rep.storage_bits / rep.n_weights);
    w.rep_json[id] = rep.to_json();
    w.fp.lin[id].reset();
  });
  for (int id : ids) {
    if (split_.ranks > 1) {
      std::string rj = owner[id] == split_.rank ? w.rep_json[id].dump() : std::string();
      std::string lb = owner[id] == split_.rank
                           ? serialize_linear(dynamic_cast<const FakeQuantLinear&>(*w.q.lin[id]))
                           : std::string();
      cluster_bcast(rj, owner[id]);
      cluster_bcast(lb, owner[id]);
      if (owner[id] != split_.rank) {
        w.rep_json[id] = json::parse(rj);
        w.q.lin[id] = deserialize_linear(lb);
      }
    }
    w.fp.lin[id].reset();
  }
  w.t_quant += qt.seconds();
}

void LayerLoop::propagate(LayerWork& w, const ChunkFn& fn) {
  Timer ft;
  for_chunks(fn);
  w.t_forward += ft.seconds();
}

void LayerLoop::write_layer(int l) {
  if (split_.rank != 0) return;
  const std::string ldir = layer_dir(partial_, l);
  SafeTensorsWriter w;
  add_layer_tensors(w, *model_, l);
  fs::create_directories(ldir);
  w.write(ldir + "/model.safetensors");
}

double LayerLoop::block_error(const std::vector<float>& y_fp, int nb) {
  std::vector<double> parts;
  for (int s = 0; s < nb; ++s) {
    double num = 0, den = 0;
    for (size_t i = (size_t)s * L_ * H_; i < (size_t)(s + 1) * L_ * H_; ++i) {
      const double d = (double)x_[i] - y_fp[i];
      num += d * d;
      den += (double)y_fp[i] * y_fp[i];
    }
    parts.push_back(num);
    parts.push_back(den);
  }
  parts = gather_doubles(parts);
  double num = 0, den = 0;
  for (size_t i = 0; i < parts.size(); i += 2) num += parts[i], den += parts[i + 1];
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

void LayerLoop::quantize_layer(int l, json& lrep) {
  const ModelConfig& c = *c_;
  json phases;
  // The block error is measured on the first segments only: fp32 outputs of
  // this layer (on the quantized-so-far stream) for this rank's share of them.
  const int ns0 = std::min(kBlockErrorSegments, S_);
  const int nb = std::max(0, std::min(split_.seg_end, ns0) - split_.seg_begin);
  LayerWork w;
  w.l = l;
  Timer pt;
  w.fp = load_dense_layer(*model_->store, c, l);
  // The layer is converted to fp32 now: drop its mapped checkpoint pages so
  // the resident set does not grow by the whole checkpoint over the run.
  const std::string prefix = fmt::format("model.layers.{}.", l);
  for (const auto& n : model_->store->names())
    if (n.rfind(prefix, 0) == 0) model_->store->release(n);
  const std::vector<float> y_fp = reference_outputs(w.fp, l, nb);
  phases["reference"] = pt.seconds();
  w.q.attn_norm = w.fp.attn_norm;
  w.q.mlp_norm = w.fp.mlp_norm;
  w.q.q_norm = w.fp.q_norm;
  w.q.k_norm = w.fp.k_norm;
  w.take = sample_mask(rows_, opt_.act_sample_rows, opt_.seed * 7919 + l);
  if (mid_.empty())
    mid_.resize((size_t)(keep_mid_ ? split_.rows() : (long)std::min(opt_.chunk_segments, S_) * L_) *
                mid_dim_);

  // The slots' inputs, one chunk of segments at a time.
  auto normed = [&](const std::vector<float>& norm_w) {
    return [&, nw = norm_w.data()](long row0, int ns) {
      const long n = (long)ns * L_;
      if (w.hbuf.size() < (size_t)n * H_) w.hbuf.resize((size_t)n * H_);
      rmsnorm(x_at(row0), nw, w.hbuf.data(), (int)n, H_, c.rms_eps);
      return (const float*)w.hbuf.data();
    };
  };
  auto attn_out = [&](long row0, int ns) {
    float* att = mid_at(row0, c.q_dim());
    layer_attention(c, *model_->rope, w.q, l, x_at(row0), ns, L_, att);
    return (const float*)att;
  };
  auto mlp_act = [&](long row0, int ns) {
    float* act = mid_at(row0, c.intermediate);
    layer_mlp_act(c, w.q, l, x_at(row0), ns * L_, act);
    return (const float*)act;
  };
  // True-sequential: each slot's linears are quantized on statistics of the
  // stream through the already-quantized linears before them (with their
  // activation quantization).
  quantize_slot(w, 0, slot_statistics(w, 0, normed(w.q.attn_norm)));  // q, k, v
  quantize_slot(w, 1, slot_statistics(w, 1, attn_out));                // o
  propagate(w, [&](long row0, int ns) {
    const float* att = keep_mid_ ? mid_at(row0, c.q_dim()) : attn_out(row0, ns);
    layer_attn_residual(c, w.q, l, att, ns * L_, x_at(row0));
  });
  quantize_slot(w, 2, slot_statistics(w, 2, normed(w.q.mlp_norm)));  // gate, up
  quantize_slot(w, 3, slot_statistics(w, 3, mlp_act));                 // down
  propagate(w, [&](long row0, int ns) {
    const float* act = keep_mid_ ? mid_at(row0, c.intermediate) : mlp_act(row0, ns);
    layer_mlp_residual(c, w.q, l, act, ns * L_, x_at(row0));
  });
  phases["forward"] = w.t_forward;
  phases["stats"] = w.t_stats;
  phases["quantize"] = w.t_quant;
  json lins = json::array();
  for (int id = 0; id < kNumLinears; ++id) lins.push_back(w.rep_json[id]);
  lrep["linears"] = lins;
  model_->layers[l] = std::move(w.q);
  Timer wt;
  write_layer(l);
  phases["write"] = wt.seconds();
  check_stream(l);
  lrep["layer"] = l;
  lrep["block_rel_error"] = block_error(y_fp, nb);
  lrep["block_error_tokens"] = (long)ns0 * L_;
  lrep["phase_seconds"] = phases;
}

QuantizeResult LayerLoop::stopped() const {
  QuantizeResult r;
  r.complete = false;
  r.seconds = timer_.seconds();
  return r;
}

QuantizeResult LayerLoop::assemble() {
  const ModelConfig& c = *c_;
  QuantizeResult res;
  res.bits_per_weight = total_weights_ ? total_bits_ / total_weights_ : 0.0;
  if (split_.rank != 0) {  // rank 0 assembles the output
    res.seconds = timer_.seconds();
    return res;
  }
  // The final directory from the per-layer files (no full copy in RAM).
  SafeTensorsWriter w;
  // Embeddings, final norm and lm_head are not quantized: their checkpoint
  // bytes are copied as stored (same dtype), straight from the mapping.
  const TensorStore& src = *model_->store;
  std::vector<std::string> keep = {"model.embed_tokens.weight", "model.norm.weight"};
  if (!c.tie_embeddings) keep.push_back("lm_head.weight");
  for (const auto& n : keep) {
    const TensorView& t = src.get(n);
    w.add_view(n, t.dtype, t.shape, t.data, t.nbytes, [&src, n] { src.release(n); });
  }
  std::vector<std::unique_ptr<SafeTensorsFile>> files;
  for (int l = 0; l < c.n_layers; ++l) {
    files.push_back(std::make_unique<SafeTensorsFile>(layer_dir(partial_, l) + "/model.safetensors"));
    const SafeTensorsFile* f = files.back().get();
    for (auto& n : f->names()) {
      const TensorView& t = f->get(n);
      // Released once written: only one tensor of the output is resident at a time.
      w.add_view(n, t.dtype, t.shape, t.data, t.nbytes, [f, n] { f->release(n); });
    }
  }
  json cfg = c.raw;
  json qc = settings_;
  qc.erase("model");
  qc["format"] = "fake-quant";
  qc["bits_per_weight"] = res.bits_per_weight;
  cfg["quantization_config"] = qc;
  w.set_metadata("format", "pt");
  res.seconds = timer_.seconds();
  res.report = {{"settings", settings_},
                {"layers", layer_reports_},
                {"bits_per_weight", res.bits_per_weight},
                {"linear_weights", total_weights_},
                {"seconds", res.seconds},
                {"peak_rss_bytes", peak_rss_bytes()}};
  write_quantized_dir(w, cfg, model_dir_, out_dir_, {{"quantize_report.json", res.report.dump(2)}});
  remove_owned_dir(partial_);
  return res;
}

}  // namespace

QuantizeResult quantize_model(const std::string& model_dir, const QuantizeOptions& opt,
                              const std::string& out_arg) {
  LayerLoop loop(model_dir, opt, out_arg);
  loop.prepare();
  const int n_layers = loop.n_layers();
  Progress prog("quantize", n_layers);
  for (int l = 0; l < n_layers; ++l) {
    const double err = loop.run_layer(l);
    prog.update(l + 1, fmt::format("block err {:.4f}", err));
    if (opt.stop_after > 0 && l + 1 >= opt.stop_after && l + 1 < n_layers) {
      log_info("quantize: stopped after {} layers as asked; rerun to resume from '{}'", l + 1,
               loop.partial_dir());
      return loop.stopped();
    }
  }
  prog.finish();
  return loop.assemble();
}

}  // namespace bwla
