#include "format/quant_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "format/fake_quant_linear.h"
#include "io/output_path.h"
#include "quant/transform.h"
#include "runtime/quant_config.h"
#include "runtime/transform_kind.h"

namespace bwla {

namespace fs = std::filesystem;

namespace {

void add_matrix(SafeTensorsWriter& w, const std::string& name, const MatrixRM& m) {
  w.add_f32(name, {(int64_t)m.rows(), (int64_t)m.cols()}, m.data());
}

MatrixRM read_matrix(const TensorStore& st, const std::string& name) {
  const TensorView& t = st.get(name);
  BWLA_CHECK(t.shape.size() == 2, "'{}': tensor '{}' must be 2-D, has shape {}", t.file, name,
             t.shape_str());
  MatrixRM m(t.shape[0], t.shape[1]);
  t.to_f32(m.data());
  return m;
}

}  // namespace

void add_layer_tensors(SafeTensorsWriter& w, const Model& m, int l) {
  const LayerWeights& L = m.layers[l];
  const ModelConfig& c = m.cfg;
  w.add_f32(layer_tensor_name(l, "input_layernorm.weight"), {c.hidden}, L.attn_norm.data());
  w.add_f32(layer_tensor_name(l, "post_attention_layernorm.weight"), {c.hidden},
            L.mlp_norm.data());
  if (c.qk_norm) {
    w.add_f32(layer_tensor_name(l, "self_attn.q_norm.weight"), {c.head_dim}, L.q_norm.data());
    w.add_f32(layer_tensor_name(l, "self_attn.k_norm.weight"), {c.head_dim}, L.k_norm.data());
  }
  for (int id = 0; id < kNumLinears; ++id) {
    const std::string p = linear_tensor_prefix(l, id);
    const auto* fq = dynamic_cast<const FakeQuantLinear*>(L.lin[id].get());
    if (!fq) {
      const auto* d = dynamic_cast<const DenseLinear*>(L.lin[id].get());
      BWLA_ASSERT(d, "layer {} linear {} is neither dense nor fake-quant", l, id);
      w.add_f32(p + ".weight", {d->out_features(), d->in_features()}, d->weight());
      if (!d->bias().empty()) w.add_f32(p + ".bias", {d->out_features()}, d->bias().data());
      continue;
    }
    const FakeQuantParts& q = fq->parts();
    add_matrix(w, p + ".weight", q.w_hat);
    if (!q.bias.empty()) w.add_f32(p + ".bias", {(int64_t)q.bias.size()}, q.bias.data());
    w.add_f32(p + ".act_clip", {1}, &q.act_clip);
    w.add(p + ".storage_bits", DType::F64, {1}, &q.storage_bits, 8);
    if (q.transform) {
      if (auto* k = dynamic_cast<const KroneckerTransform*>(q.transform.get())) {
        add_matrix(w, p + ".okt_r1", kron_r1(*k));
        add_matrix(w, p + ".okt_r2", kron_r2(*k));
      } else if (auto* h = dynamic_cast<const HadamardTransform*>(q.transform.get())) {
        int64_t s = (int64_t)h->seed();
        w.add(p + ".hadamard_seed", DType::I64, {1}, &s, 8);
      } else {
        BWLA_ASSERT(false, "cannot serialise transform kind {}", q.transform->kind());
      }
    }
    if (q.lr_a.size()) {
      add_matrix(w, p + ".psp_a", q.lr_a);
      add_matrix(w, p + ".psp_b", q.lr_b);
    }
    if (q.rc) add_rc_tensors(w, p, *q.rc);
  }
}

void add_rc_tensors(SafeTensorsWriter& w, const std::string& p, const RcFactors& f) {
  const int64_t R = f.rows, C = f.cols, B = f.blocks;
  w.add(p + ".rc_code", DType::U8, {R, C}, f.code.data(), f.code.size());
  w.add_f32(p + ".rc_a", {RcFactors::kPlanes, R, B}, f.a.data());
  w.add_f32(p + ".rc_mu", {RcFactors::kGroups, R, B}, f.mu.data());
  w.add_f32(p + ".rc_c", {RcFactors::kPlanes, C}, f.c.data());
  const int64_t bc = f.block_cols;
  w.add(p + ".rc_block_cols", DType::I64, {1}, &bc, 8);
}

namespace {
const char* const kRcTensors[] = {".rc_code", ".rc_a", ".rc_mu", ".rc_c", ".rc_block_cols"};
}

std::shared_ptr<const RcFactors> read_rc_tensors(const TensorStore& st, const std::string& p,
                                                 int out, int in) {
  int present = 0;
  for (const char* s : kRcTensors) present += st.has(p + s);
  if (present == 0) return nullptr;
  for (const char* s : kRcTensors)
    BWLA_CHECK(st.has(p + s), "'{}': {} has ARB-RC factors but '{}' is missing", st.dir(), p,
               p + s);
  const TensorView& tb = st.get(p + ".rc_block_cols");
  BWLA_CHECK(tb.dtype == DType::I64 && tb.numel() == 1, "'{}': {}.rc_block_cols must be I64 [1]",
             tb.file, p);
  int64_t bc;
  std::memcpy(&bc, tb.data, 8);
  BWLA_CHECK(bc >= 1 && bc <= (1 << 24), "'{}': {}.rc_block_cols = {} is out of range", tb.file, p,
             bc);
  auto f = std::make_shared<RcFactors>(out, in, (int)bc);
  const TensorView& tc = st.get(p + ".rc_code");
  BWLA_CHECK(tc.dtype == DType::U8 && tc.shape == std::vector<int64_t>({out, in}),
             "'{}': tensor '{}' is {} {}; expected U8 [{}, {}]", tc.file, tc.name,
             dtype_name(tc.dtype), tc.shape_str(), out, in);
  std::memcpy(f->code.data(), tc.data, f->code.size());
  for (size_t k = 0; k < f->code.size(); ++k) {
    const uint8_t q = f->code[k];
    BWLA_CHECK((q & RcFactors::kGroupMask) < RcFactors::kGroups && (q & ~15) == 0 &&
                   ((q & RcFactors::kGroupMask) == 0 || !(q & RcFactors::kSign2)),
               "'{}': tensor '{}' holds the invalid code {} at row {} column {}", tc.file, tc.name,
               (int)q, k / in, k % in);
  }
  auto take = [&](const char* s, std::vector<int64_t> shape, std::vector<float>& dst) {
    const std::vector<float> v = read_f32(st, p + s, shape);
    for (size_t k = 0; k < v.size(); ++k)
      BWLA_CHECK(std::isfinite(v[k]), "'{}': tensor '{}' holds a non-finite value at index {}",
                 st.dir(), p + s, k);
    dst = v;
  };
  take(".rc_a", {RcFactors::kPlanes, out, f->blocks}, f->a);
  take(".rc_mu", {RcFactors::kGroups, out, f->blocks}, f->mu);
  take(".rc_c", {RcFactors::kPlanes, in}, f->c);
  return f;
}

LayerWeights load_quantized_layer(const TensorStore& st, const ModelConfig& c, int l, int abits) {
  LayerWeights L;
  load_layer_norms(st, c, l, L);
  for (int id = 0; id < kNumLinears; ++id) {
    const std::string p = linear_tensor_prefix(l, id);
    std::vector<float> bias;
    if (st.has(p + ".bias")) bias = read_f32(st, p + ".bias", {c.linear_out(id)});
    if (!st.has(p + ".act_clip")) {  // left in full precision
      auto w = read_f32(st, p + ".weight", {c.linear_out(id), c.linear_in(id)});
      L.lin[id] = std::make_unique<DenseLinear>(c.linear_out(id), c.linear_in(id), std::move(w), std::move(bias));
      continue;
    }
    FakeQuantParts q;
    q.abits = abits;
    q.bias = std::move(bias);
    auto w = read_f32(st, p + ".weight", {c.linear_out(id), c.linear_in(id)});
    q.w_hat = Eigen::Map<MatrixRM>(w.data(), c.linear_out(id), c.linear_in(id));
    q.act_clip = read_f32(st, p + ".act_clip", {1})[0];
    BWLA_CHECK(q.act_clip > 0 && q.act_clip <= 1, "'{}': {}.act_clip = {} is outside (0, 1]",
               st.dir(), p, q.act_clip);
    if (st.has(p + ".storage_bits")) {
      const TensorView& t = st.get(p + ".storage_bits");
      BWLA_CHECK(t.dtype == DType::F64 && t.numel() == 1, "'{}': {}.storage_bits must be F64 [1]",
                 t.file, p);
      std::memcpy(&q.storage_bits, t.data, 8);
    }
    if (st.has(p + ".okt_r1")) {
      MatrixRM r1 = read_matrix(st, p + ".okt_r1"), r2 = read_matrix(st, p + ".okt_r2");
      BWLA_CHECK(r1.rows() * r2.rows() == c.linear_in(id),
                 "'{}': {} OKT factors {}x{} and {}x{} do not match input width {}", st.dir(), p,
                 r1.rows(), r1.cols(), r2.rows(), r2.cols(), c.linear_in(id));
      q.transform = make_kronecker(r1, r2);
    } else if (st.has(p + ".hadamard_seed")) {
      const TensorView& t = st.get(p + ".hadamard_seed");
      BWLA_CHECK(t.dtype == DType::I64 && t.numel() == 1, "'{}': {}.hadamard_seed must be I64 [1]",
                 t.file, p);
      int64_t s;
      std::memcpy(&s, t.data, 8);
      q.transform = std::shared_ptr<const InputTransform>(make_random_hadamard(c.linear_in(id), (uint64_t)s));
    }
    q.rc = read_rc_tensors(st, p, (int)c.linear_out(id), (int)c.linear_in(id));
    if (st.has(p + ".psp_a")) {
      q.lr_a = read_matrix(st, p + ".psp_a");
      q.lr_b = read_matrix(st, p + ".psp_b");
      BWLA_CHECK(q.lr_a.rows() == c.linear_out(id) && q.lr_b.cols() == c.linear_in(id) &&
                     q.lr_a.cols() == q.lr_b.rows(),
                 "'{}': {} low-rank shapes [{}, {}] x [{}, {}] do not fit [{}, {}]", st.dir(), p,
                 q.lr_a.rows(), q.lr_a.cols(), q.lr_b.rows(), q.lr_b.cols(), c.linear_out(id), c.linear_in(id));
    }
    L.lin[id] = std::make_unique<FakeQuantLinear>(std::move(q));
  }
  return L;
}

void load_quantized_layers(Model& m) {
  const json& q = m.cfg.raw["quantization_config"];
  const std::string file = m.dir + "/config.json";
  const std::string where = file + ", quantization_config";
  const std::string method = json_string(q, "quant_method", "", where);
  BWLA_CHECK(method == kFakeQuantMethod,
             "'{}': quantization_config.quant_method is '{}', expected '{}'", file, method,
             kFakeQuantMethod);
  const int ver = (int)json_int(q, "format_version", -1, -1, 1 << 20, where);
  BWLA_CHECK(ver == kFakeQuantFormatVersion,
             "'{}': quantization_config.format_version {} is not supported (this build reads {})",
             file, ver, kFakeQuantFormatVersion);
  const int abits = (int)json_int(q, "abits", 16, 0, 64, where);
  BWLA_CHECK(abits == 4 || abits == 6 || abits == 8 || abits == 16,
             "'{}': quantization_config.abits {} must be 4, 6, 8 or 16", file, abits);
  // What the config says was stored must be there for every quantized linear
  // (a lost or renamed tensor would otherwise load a different model).
  const TensorStore& st = *m.store;
  for (int l = 0; l < m.cfg.n_layers; ++l) {
    for (int id = 0; id < kNumLinears; ++id) {
      const std::string p = linear_tensor_prefix(l, id);
      if (!st.has(p + ".act_clip")) continue;  // left in full precision
      check_promised_tensors(st, q, p, file);
    }
    m.layers[l] = load_quantized_layer(st, m.cfg, l, abits);
  }
}

void write_quantized_dir(const SafeTensorsWriter& w, json cfg, const std::string& src_dir,
                         const std::string& out_dir,
                         const std::vector<std::pair<std::string, std::string>>& extra_files) {
  cfg["quantization_config"]["quant_method"] = kFakeQuantMethod;
  cfg["quantization_config"]["format_version"] = kFakeQuantFormatVersion;
  cfg["torch_dtype"] = "float32";
  StagedDir out(out_dir, {src_dir}, "-o", "quantize");
  const std::string tmp = out.path();
  w.write(tmp + "/model.safetensors");
  write_text_file_atomic(tmp + "/config.json", cfg.dump(2));
  for (auto& [name, text] : extra_files) write_text_file_atomic(tmp + "/" + name, text);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "generation_config.json"}) {
    fs::path s = fs::path(src_dir) / f;
    if (fs::exists(s)) fs::copy_file(s, fs::path(tmp) / f, fs::copy_options::overwrite_existing);
  }
  out.commit();
}

}  // namespace bwla
