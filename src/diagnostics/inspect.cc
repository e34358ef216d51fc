#include "diagnostics/inspect.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "format/fake_quant_linear.h"
#include "format/model_loader.h"
#include "format/quant_model.h"
#include "model/forward.h"
#include "model/model.h"
#include "quant/psp.h"
#include "quant/transform.h"

namespace bwla {

namespace {

// Collects the input rows of one (layer, slot).
class SlotCapture : public Capture {
 public:
  SlotCapture(int layer, int slot) : layer_(layer), slot_(slot) {}
  void linear_input(int layer, int slot, const float* x, int n, int dim) override {
    if (layer != layer_ || slot != slot_) return;
    dim_ = dim;
    rows.insert(rows.end(), x, x + (size_t)n * dim);
  }
  MatrixRM matrix() const {
    BWLA_CHECK(dim_ > 0, "inspect: no activations captured for layer {} slot {}", layer_, slot_);
    return Eigen::Map<const MatrixRM>(rows.data(), (long)(rows.size() / dim_), dim_);
  }
  std::vector<float> rows;

 private:
  int layer_, slot_, dim_ = 0;
};

int linear_id_of(const std::string& name) {
  for (int id = 0; id < kNumLinears; ++id)
    if (name == linear_name(id)) return id;
  throw Error(fmt::format("unknown linear '{}'; valid names: {}", name,
                          fmt::join(inspect_linear_names(), ", ")));
}

// Runs layers 0..L on the segments and returns linear `id`'s input at layer L.
MatrixRM capture_input(const Model& m, const std::vector<std::vector<int>>& segs, int L, int id,
                       const std::function<const LayerWeights&(int)>& layer_weights) {
  BWLA_CHECK(!segs.empty() && !segs[0].empty(), "inspect: no calibration tokens");
  const int S = (int)segs.size(), T = (int)segs[0].size(), H = m.cfg.hidden;
  for (auto& s : segs)
    BWLA_CHECK((int)s.size() == T, "inspect: calibration segments differ in length ({} vs {})",
               s.size(), T);
  std::vector<float> x((size_t)S * T * H);
  for (int s = 0; s < S; ++s) embed_tokens(m, segs[s].data(), T, x.data() + (size_t)s * T * H);
  SlotCapture cap(L, linear_input_slot(id));
  for (int l = 0; l <= L; ++l)
    layer_forward(m.cfg, *m.rope, layer_weights(l), l, x.data(), S, T, nullptr,
                  l == L ? &cap : nullptr);
  return cap.matrix();
}

json dist_json(const DistStats& s) {
  return {{"skewness", s.skewness},
          {"kurtosis", s.kurtosis},
          {"bimodality", s.bimodality},
          {"near_centre_mass", s.near_centre_mass}};
}

json act_json(const ActStats& s) {
  return {{"max_over_rms", s.max_over_rms},
          {"worst_max_over_rms", s.worst_max_over_rms},
          {"kurtosis", s.kurtosis}};
}

// (w − μ_i)/mean|w − μ_i| for every row (rows with zero spread skipped).
std::vector<float> normalized_rows(const MatrixRM& w) {
  std::vector<float> v;
  v.reserve(w.size());
  for (long i = 0; i < w.rows(); ++i) {
    const double mu = w.row(i).cast<double>().mean();
    double a = 0;
    for (long j = 0; j < w.cols(); ++j) a += std::fabs(w(i, j) - mu);
    a /= (double)w.cols();
    if (!(a > 0)) continue;
    for (long j = 0; j < w.cols(); ++j) v.push_back((float)((w(i, j) - mu) / a));
  }
  return v;
}

// Per-token max|x|/rms(x) and the pooled values x/rms(x).
void token_profile(const MatrixRM& x, std::vector<float>& ratio, std::vector<float>& norm) {
  ratio.clear();
  norm.clear();
  for (long t = 0; t < x.rows(); ++t) {
    const double rms = std::sqrt(x.row(t).cast<double>().squaredNorm() / (double)x.cols());
    if (!(rms > 0)) continue;
    ratio.push_back((float)(x.row(t).cwiseAbs().maxCoeff() / rms));
    for (long j = 0; j < x.cols(); ++j) norm.push_back((float)(x(t, j) / rms));
  }
}

std::vector<double> singular_values(const MatrixRM& w) {
  MatrixD d = w.cast<double>();
  Eigen::BDCSVD<MatrixD> svd(d);
  const VectorD& s = svd.singularValues();
  return std::vector<double>(s.data(), s.data() + s.size());
}

json top(const std::vector<double>& v, int k) {
  return std::vector<double>(v.begin(), v.begin() + std::min<size_t>(v.size(), (size_t)std::max(k, 0)));
}

double rel_sq(const MatrixRM& ref, const MatrixRM& got) {
  const double den = ref.squaredNorm();
  return den > 0 ? (ref - got).squaredNorm() / den : 0.0;
}

// Distinct values per row of a dequantized matrix: min / mean / max.
json row_value_counts(const MatrixRM& w) {
  long mn = 0, mx = 0;
  double sum = 0;
  std::map<long, long> hist;
  for (long i = 0; i < w.rows(); ++i) {
    std::set<float> vals(w.row(i).data(), w.row(i).data() + w.cols());
    const long n = (long)vals.size();
    mn = i == 0 ? n : std::min(mn, n);
    mx = std::max(mx, n);
    sum += (double)n;
    ++hist[n];
  }
  json h = json::object();
  for (auto& [n, c] : hist) h[std::to_string(n)] = c;
  return {{"min", mn}, {"mean", w.rows() ? sum / (double)w.rows() : 0.0}, {"max", mx},
          {"rows_with_n_values", h}};
}

void add_act_stats(InspectData& d, const MatrixRM& x, const InputTransform* rot) {
  MatrixRM xr = x;
  if (rot) rot->apply_rows(xr.data(), xr.rows());
  d.report["activations"] = {{"tokens", x.rows()},
                             {"before", act_json(activation_stats(x))},
                             {"after", act_json(activation_stats(xr))}};
  token_profile(x, d.tok_ratio_before, d.act_norm_before);
  token_profile(xr, d.tok_ratio_after, d.act_norm_after);
}

InspectData inspect_quantized(const std::string& dir, const InspectOptions& opt, int id,
                              const std::vector<std::vector<int>>& segs) {
  auto m = load_model(dir);
  const ModelConfig& c = m->cfg;
  InspectData d;
  d.quantized = true;
  json& r = d.report;
  r["quantized"] = true;
  r["quantization_config"] = c.raw["quantization_config"];
  const Linear& lin = *m->layers[opt.layer].lin[id];
  r["shape"] = {lin.out_features(), lin.in_features()};
  const auto* fq = dynamic_cast<const FakeQuantLinear*>(&lin);
  if (!fq) {
    r["stored"] = {{"kind", lin.describe()}, {"note", "left in full precision"}};
    return d;
  }
  const FakeQuantParts& p = fq->parts();
  json st = {{"kind", lin.describe()},
             {"transform", p.transform ? p.transform->kind() : "none"},
             {"okt_r1", false},
             {"okt_r2", false},
             {"psp_rank", p.lr_a.cols()},
             {"act_clip", p.act_clip},
             {"abits", p.abits},
             {"bits_per_weight", p.storage_bits / (double)p.w_hat.size()}};
  if (auto* k = dynamic_cast<const KroneckerTransform*>(p.transform.get())) {
    st["okt_r1"] = true;
    st["okt_r2"] = true;
    st["n1"] = k->n1();
    st["n2"] = k->n2();
  }
  r["stored"] = st;
  r["w_hat_row_value_counts"] = row_value_counts(p.w_hat);
  r["weights"] = {{"stored_w_hat", dist_json(row_dist_stats(p.w_hat))}};
  d.weight_labels = {"stored W-hat"};
  d.weight_values = {normalized_rows(p.w_hat)};
  MatrixRM x = capture_input(*m, segs, opt.layer, id,
                             [&](int l) -> const LayerWeights& { return m->layers[l]; });
  add_act_stats(d, x, p.transform.get());
  return d;
}

}  // namespace

std::vector<std::string> inspect_linear_names() {
  std::vector<std::string> v;
  for (int id = 0; id < kNumLinears; ++id) v.push_back(linear_name(id));
  return v;
}

InspectData inspect_linear(const std::string& dir, const InspectOptions& opt,
                           const std::vector<std::vector<int>>& segs) {
  Timer timer;
  const int id = linear_id_of(opt.linear);
  const ModelConfig cfg = ModelConfig::load(dir);
  BWLA_CHECK(opt.layer >= 0 && opt.layer < cfg.n_layers,
             "--layer {} is out of range: '{}' has layers 0..{}", opt.layer, dir, cfg.n_layers - 1);
  BWLA_CHECK(opt.psp_rank >= 0, "--rank must be >= 0");
  InspectData d;
  if (is_quantized_config(cfg)) {
    d = inspect_quantized(dir, opt, id, segs);
  } else {
    auto m = load_model_skeleton(dir);
    std::vector<LayerWeights> layers;
    for (int l = 0; l <= opt.layer; ++l) layers.push_back(load_dense_layer(*m->store, cfg, l));
    const auto* dense = dynamic_cast<const DenseLinear*>(layers[opt.layer].lin[id].get());
    BWLA_ASSERT(dense, "layer {} {} is not dense", opt.layer, opt.linear);
    const int out = dense->out_features(), in = dense->in_features();
    MatrixRM w = Eigen::Map<const MatrixRM>(dense->weight(), out, in);
    MatrixRM x = capture_input(*m, segs, opt.layer, id,
                               [&](int l) -> const LayerWeights& { return layers[l]; });
    layers.clear();
    json& r = d.report;
    r["quantized"] = false;
    r["shape"] = {out, in};
    // OKT.
    OktResult okt = learn_okt(w, nullptr, opt.okt);
    if (okt.fell_back) log_warn("inspect: OKT fell back: {}", okt.note);
    r["okt"] = {{"n1", okt.n1},
                {"n2", okt.n2},
                {"iters", (int)okt.objective.size() - 1},
                {"objective_first", okt.objective.empty() ? 0.0 : okt.objective.front()},
                {"objective_last", okt.objective.empty() ? 0.0 : okt.objective.back()},
                {"rejected_steps", okt.rejected_steps},
                {"fell_back", okt.fell_back},
                {"seconds", okt.seconds}};
    const InputTransform* rot = okt.transform.get();
    MatrixRM w_rot = w;
    if (rot) apply_to_weight(*rot, w_rot);
    // PSP.
    PspOptions po;
    po.iters = opt.psp_iters;
    po.seed = opt.okt.seed;
    po.rank = opt.psp_rank > 0 ? opt.psp_rank
                               : std::max(1, (int)std::lround(opt.rank_ratio * std::min(out, in)));
    BWLA_CHECK(po.rank < std::min(out, in), "PSP rank {} must be below min(out, in) = {}", po.rank,
               std::min(out, in));
    PspResult psp = run_psp(w, rot, xnor_row_binarizer(), po);
    MatrixRM low = psp.a * psp.b;
    MatrixRM w_psp_rot = w - low;  // rot(W − A·B): what PSP binarizes
    if (rot) apply_to_weight(*rot, w_psp_rot);
    MatrixRM bin_unrot = psp.w_hat_rot;  // rot⁻¹(Ŵ_rot)
    if (rot) rot->apply_rows_inverse(bin_unrot.data(), bin_unrot.rows());
    MatrixRM resid = w - bin_unrot;
    MatrixRM final_resid = resid - low;
    r["psp"] = {{"rank", po.rank}, {"iters", po.iters}, {"best_iter", psp.best_iter},
                {"rel_error", psp.error}};
    r["weights"] = {{"before_okt", dist_json(row_dist_stats(w))},
                    {"after_okt", dist_json(row_dist_stats(w_rot))},
                    {"after_psp", dist_json(row_dist_stats(w_psp_rot))}};
    r["binarization_error"] = {{"before_okt", binarization_error(w)},
                               {"after_okt", binarization_error(w_rot)},
                               {"after_psp", rel_sq(w, low + bin_unrot)}};
    d.weight_labels = {"W", "W R^T (OKT)", "rot(W - AB) (PSP)"};
    d.weight_values = {normalized_rows(w), normalized_rows(w_rot), normalized_rows(w_psp_rot)};
    add_act_stats(d, x, rot);
    d.sv_labels = {"W", "W - rot^-1(W-hat)", "W - AB - rot^-1(W-hat)"};
    d.sv = {singular_values(w), singular_values(resid), singular_values(final_resid)};
    r["singular_values"] = {{"w", top(d.sv[0], opt.top_sv)},
                            {"residual", top(d.sv[1], opt.top_sv)},
                            {"final_residual", top(d.sv[2], opt.top_sv)}};
  }
  json& r = d.report;
  r["model"] = dir;
  r["layer"] = opt.layer;
  r["linear"] = opt.linear;
  r["calibration"] = {{"segments", segs.size()}, {"seq_len", segs.empty() ? 0 : segs[0].size()}};
  r["seconds"] = timer.seconds();
  return d;
}

std::string inspect_text(const json& r) {
  std::string s;
  auto dist_line = [](const std::string& name, const json& j) {
    return fmt::format("  {:<22} kurtosis {:6.3f}  bimodality {:5.3f}  skew {:+6.3f}  near ±c {:5.3f}\n",
                       name, j["kurtosis"].get<double>(), j["bimodality"].get<double>(),
                       j["skewness"].get<double>(), j["near_centre_mass"].get<double>());
  };
  auto act_line = [](const std::string& name, const json& j) {
    return fmt::format("  {:<22} max/RMS mean {:6.2f}  worst {:6.2f}  kurtosis {:7.2f}\n", name,
                       j["max_over_rms"].get<double>(), j["worst_max_over_rms"].get<double>(),
                       j["kurtosis"].get<double>());
  };
  s += fmt::format("{} layer {} {} [{} x {}]{}\n", r["model"].get<std::string>(),
                   r["layer"].get<int>(), r["linear"].get<std::string>(), r["shape"][0].get<int>(),
                   r["shape"][1].get<int>(), r["quantized"].get<bool>() ? " (bwla quantized)" : "");
  if (r["quantized"].get<bool>()) {
    const json& st = r["stored"];
    s += fmt::format("stored: {}\n", st.dump());
    if (r.contains("w_hat_row_value_counts")) {
      const json& v = r["w_hat_row_value_counts"];
      s += fmt::format("W-hat distinct values per row: min {} mean {:.2f} max {}\n", v["min"].get<long>(),
                       v["mean"].get<double>(), v["max"].get<long>());
      s += "weight rows (standardised, pooled):\n";
      s += dist_line("stored W-hat", r["weights"]["stored_w_hat"]);
    }
  } else {
    const json& o = r["okt"];
    s += fmt::format("OKT: {} x {} factors, {} iterations, objective {:.4f} -> {:.4f}{}\n",
                     o["n1"].get<int>(), o["n2"].get<int>(), o["iters"].get<int>(),
                     o["objective_first"].get<double>(), o["objective_last"].get<double>(),
                     o["fell_back"].get<bool>() ? " (fell back to identity)" : "");
    s += fmt::format("PSP: rank {}, best iteration {}, relative error {:.4f}\n",
                     r["psp"]["rank"].get<int>(), r["psp"]["best_iter"].get<int>(),
                     r["psp"]["rel_error"].get<double>());
    s += "weight rows (standardised, pooled):\n";
    s += dist_line("W (before OKT)", r["weights"]["before_okt"]);
    s += dist_line("W R^T (after OKT)", r["weights"]["after_okt"]);
    s += dist_line("rot(W - AB) (PSP)", r["weights"]["after_psp"]);
    const json& b = r["binarization_error"];
    s += fmt::format("binarization error |W - W-hat|^2/|W|^2: before OKT {:.4f}, after OKT {:.4f}, after PSP {:.4f}\n",
                     b["before_okt"].get<double>(), b["after_okt"].get<double>(),
                     b["after_psp"].get<double>());
    auto sv_line = [](const std::string& name, const json& v) {
      std::string t = fmt::format("  {:<24}", name);
      for (auto& x : v) t += fmt::format(" {:.3g}", x.get<double>());
      return t + "\n";
    };
    s += "top singular values:\n";
    s += sv_line("W", r["singular_values"]["w"]);
    s += sv_line("W - rot^-1(W-hat)", r["singular_values"]["residual"]);
    s += sv_line("W - AB - rot^-1(W-hat)", r["singular_values"]["final_residual"]);
  }
  if (r.contains("activations")) {
    const json& a = r["activations"];
    s += fmt::format("activations ({} tokens):\n", a["tokens"].get<long>());
    s += act_line("before rotation", a["before"]);
    s += act_line("after rotation", a["after"]);
  }
  if (r.contains("plots"))
    for (auto& p : r["plots"]) s += fmt::format("plot: {}\n", p.get<std::string>());
  return s;
}

}  // namespace bwla
