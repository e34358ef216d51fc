#include "runtime/packed_format.h"

#include <cmath>

#include "core/error.h"
#include "core/half.h"
#include "runtime/q4_linear.h"
#include "runtime/q8_linear.h"
#include "runtime/quant_config.h"

namespace bwla {

namespace {
const TableDtypeTraits kTableDtypes[] = {
    {TableDtype::Keep, "keep", nullptr, 2},
    {TableDtype::F16, "f16", "F16", 2},
    {TableDtype::Q8, "q8", "Q8", 2},
    {TableDtype::Q4, "q4", "Q4", 3},
};
}  // namespace

const TableDtypeTraits& table_dtype_traits(TableDtype t) {
  for (const auto& e : kTableDtypes)
    if (e.type == t) return e;
  BWLA_ASSERT(false, "table dtype {}", (int)t);
  return kTableDtypes[0];
}

TableDtype parse_table_dtype(const std::string& option) {
  for (const auto& e : kTableDtypes)
    if (option == e.option) return e.type;
  fail("head/embedding dtype must be one of {}, got '{}'", fmt::join(table_dtype_options(), ", "),
       option);
}

std::vector<std::string> table_dtype_options() {
  std::vector<std::string> v;
  for (const auto& e : kTableDtypes) v.push_back(e.option);
  return v;
}

bool is_packed_config(const ModelConfig& cfg) {
  if (!is_quantized_config(cfg)) return false;
  const json& q = cfg.raw["quantization_config"];
  auto it = q.find("quant_method");  // not a string: not packed (the loader then says why)
  return it != q.end() && it->is_string() && it->get<std::string>() == kPackedQuantMethod;
}

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

Q8Tensor read_q8(const TensorStore& st, const ModelConfig& c, const std::string& name, int64_t rows,
                 int64_t cols) {
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
Q4Matrix read_q4(const TensorStore& st, const ModelConfig& c, const std::string& name, int64_t rows,
                 int64_t cols) {
  const int64_t rb = (int64_t)q4_row_bytes((int)cols), G = q4_groups((int)cols);
  const TensorView& s = checked_table_scales(st, c, name, {rows, rb}, DType::F16, {rows, G});
  BWLA_CHECK(elements_aligned(s),
             "'{}': tensor '{}' data does not start at an even offset (F16 "
             "scales are read in place)",
             s.file, s.name);
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(s.data);
  for (int64_t i = 0; i < rows * G; ++i)
    BWLA_CHECK((sc[i] & 0x7c00) != 0x7c00,
               "'{}': tensor '{}' row {} group {} has scale {} (must be finite)", s.file, s.name,
               i / G, i % G, f16_to_f32(sc[i]));
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

}  // namespace

const TableHooks& packed_table_hooks() {
  static const TableHooks hooks{kTableReaders, is_packed_config};
  return hooks;
}

std::unique_ptr<Model> load_packed_model(const std::string& dir) {
  auto m = Model::load_skeleton(dir, packed_table_hooks());
  BWLA_CHECK(is_packed_config(m->cfg),
             "'{}/config.json' is not a {} model; models of other storage are read by load_model "
             "(format/model_loader.h)",
             dir, kPackedQuantMethod);
  load_packed_layers(*m);
  finish_load(*m, /*prepack_dense=*/false);
  return m;
}

}  // namespace bwla
