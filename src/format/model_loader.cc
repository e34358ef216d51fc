#include "format/model_loader.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "format/packed_model.h"
#include "format/q4_linear.h"
#include "format/q8_linear.h"
#include "format/quant_model.h"
#include "model/ops.h"

namespace bwla {

namespace {

// What the quantized tables share: they are read from packed models only,
// `name` has `shape`, and its scales `<name>_scale` are `scale_dtype` of
// `scale_shape`. Returns the scale tensor.
const TensorView& checked_table_scales(const TensorStore& st, const ModelConfig& c,
                                       const std::string& name, const std::vector<int64_t>& shape,
                                       DType scale_dtype, const std::vector<int64_t>& scale_shape) {
  const TensorView& t = st.get(name);
  BWLA_CHECK(is_packed_config(c),
             "'{}': tensor '{}' is {}; quantized embeddings and heads are only read from {} models",
             t.file, name, dtype_name(t.dtype), kPackedQuantMethod);
  BWLA_CHECK(t.shape == shape, "'{}': tensor '{}' has shape {} but config.json implies [{}]",
             t.file, name, t.shape_str(), fmt::join(shape, ", "));
  BWLA_CHECK(st.has(name + "_scale"), "'{}': {} tensor '{}' has no scale tensor '{}'", t.file,
             dtype_name(t.dtype), name, name + "_scale");
  const TensorView& s = st.get(name + "_scale");
  BWLA_CHECK(s.dtype == scale_dtype && s.shape == scale_shape,
             "'{}': tensor '{}' has dtype {} shape {}, expected {} [{}]", s.file, s.name,
             dtype_name(s.dtype), s.shape_str(), dtype_name(scale_dtype),
             fmt::join(scale_shape, ", "));
  return s;
}

// An I8 tensor of a packed model (docs/FORMAT.md, version 2) with its per-row
// scale `<name>_scale` (F32 [rows]): a view into the mapping plus the scales.
struct Q8Tensor {
  const int8_t* w;
  std::vector<float> scale;
};

Q8Tensor read_q8(const TensorStore& st, const ModelConfig& c, const std::string& name,
                 int64_t rows, int64_t cols) {
  const TensorView& s = checked_table_scales(st, c, name, {rows, cols}, DType::F32, {rows});
  Q8Tensor q{reinterpret_cast<const int8_t*>(st.get(name).data), s.to_f32()};
  for (size_t i = 0; i < q.scale.size(); ++i)
    BWLA_CHECK(std::isfinite(q.scale[i]) && q.scale[i] > 0,
               "'{}': tensor '{}' row {} has scale {} (must be finite and > 0)", s.file, s.name, i,
               q.scale[i]);
  return q;
}

// A U8 tensor of a packed model: 4-bit nibbles [rows, q4_row_bytes(cols)] with
// fp16 group scales `<name>_scale` [rows, q4_groups(cols)] (kernels/q4_gemm.h).
Q4Matrix read_q4(const TensorStore& st, const ModelConfig& c, const std::string& name,
                 int64_t rows, int64_t cols) {
  const int64_t rb = (int64_t)q4_row_bytes((int)cols), G = q4_groups((int)cols);
  const TensorView& s = checked_table_scales(st, c, name, {rows, rb}, DType::F16, {rows, G});
  BWLA_CHECK(elements_aligned(s), "'{}': tensor '{}' data does not start at an even offset (F16 "
             "scales are read in place)", s.file, s.name);
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(s.data);
  for (int64_t i = 0; i < rows * G; ++i)
    BWLA_CHECK((sc[i] & 0x7c00) != 0x7c00, "'{}': tensor '{}' row {} group {} has scale {} (must be finite)",
               s.file, s.name, i / G, i % G, f16_to_f32(sc[i]));
  return Q4Matrix{(int)rows, (int)cols, reinterpret_cast<const uint8_t*>(st.get(name).data), sc};
}

std::unique_ptr<Linear> q4_embed(Model& m, const std::string& name) {
  const auto& c = m.cfg;
  const Q4Matrix q = read_q4(*m.store, c, name, c.vocab, c.hidden);
  m.embed_view = &m.store->get(name);
  m.embed_q4_scale = &m.store->get(name + "_scale");
  return std::make_unique<Q4Linear>(c.vocab, c.hidden, q.w, q.scale, m.store);
}
std::unique_ptr<Linear> q4_head(const Model& m, const std::string& name) {
  const auto& c = m.cfg;
  const Q4Matrix q = read_q4(*m.store, c, name, c.vocab, c.hidden);
  return std::make_unique<Q4Linear>(c.vocab, c.hidden, q.w, q.scale, m.store);
}
std::unique_ptr<Linear> q8_embed(Model& m, const std::string& name) {
  const auto& c = m.cfg;
  Q8Tensor q = read_q8(*m.store, c, name, c.vocab, c.hidden);
  m.embed_view = &m.store->get(name);
  m.embed_scale = q.scale;
  return std::make_unique<Q8Linear>(c.vocab, c.hidden, q.w, std::move(q.scale), m.store);
}
std::unique_ptr<Linear> q8_head(const Model& m, const std::string& name) {
  const auto& c = m.cfg;
  Q8Tensor q = read_q8(*m.store, c, name, c.vocab, c.hidden);
  return std::make_unique<Q8Linear>(c.vocab, c.hidden, q.w, std::move(q.scale), m.store);
}

const TableReader kTableReaders[] = {
    {DType::U8, q4_embed, q4_head},
    {DType::I8, q8_embed, q8_head},
};

const TableHooks kHooks{kTableReaders, is_packed_config};

}  // namespace

std::unique_ptr<Model> load_model_skeleton(const std::string& dir) {
  return Model::load_skeleton(dir, kHooks);
}

std::unique_ptr<Model> load_model(const std::string& dir, bool prepack_dense) {
  auto m = load_model_skeleton(dir);
  if (is_packed_config(m->cfg))
    load_packed_layers(*m);
  else if (is_quantized_config(m->cfg))
    load_quantized_layers(*m);
  else
    load_dense_layers(*m, prepack_dense);
  finish_load(*m, prepack_dense);
  return m;
}

}  // namespace bwla
