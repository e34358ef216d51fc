// Loading a packed bwla model (docs/FORMAT.md) into PackedLinear layers.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/hadamard.h"
#include "runtime/packed_format.h"
#include "runtime/packed_linear.h"
#include "runtime/quant_config.h"

namespace bwla {

namespace {

std::string shape_of(std::initializer_list<int64_t> s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

const TensorView& need(const TensorStore& st, const std::string& name, DType a, DType b,
                       std::vector<int64_t> shape, const std::string& why) {
  const TensorView& t = st.get(name);
  BWLA_CHECK(t.dtype == a || t.dtype == b, "'{}': tensor '{}' has dtype {}, expected {}{}",
             t.file, name, dtype_name(t.dtype), dtype_name(a),
             a == b ? std::string() : std::string(" or ") + dtype_name(b));
  BWLA_CHECK(t.shape == shape, "'{}': tensor '{}' has shape {} but {} implies [{}]", t.file, name,
             t.shape_str(), why, fmt::join(shape, ", "));
  return t;
}

std::vector<float> floats(const TensorView& t) { return t.to_f32(); }

// Plane k of the qweight tensor as a PackedBinary: a view into the mapping when
// its rows already have the kernels' layout (64-byte aligned, padded to 512
// bits), otherwise re-laid-out into an owned buffer. Validates padding bits.
PackedBinary make_plane(const TensorView& q, int k, int out, int in, const float* alpha,
                        const float* mu) {
  PackedBinary p;
  p.rows = out;
  p.cols = in;
  p.words_per_row = packed_words_per_row(in);
  const int disk_words = (in + 63) / 64;
  const uint8_t* base = q.data + (size_t)k * out * disk_words * 8;
  const uint64_t tail_mask = in % 64 ? ~((1ull << (in % 64)) - 1) : 0;
  const bool direct = disk_words == p.words_per_row && ((uintptr_t)base % 64) == 0;
  if (!direct) p.bits.resize((size_t)out * p.words_per_row, /*zero=*/true);
  p.row_popcount.resize(out);
  p.alpha.assign(alpha, alpha + out);
  p.mu.assign(mu, mu + out);
  for (int i = 0; i < out; ++i) {
    const uint8_t* src = base + (size_t)i * disk_words * 8;
    uint64_t last;
    std::memcpy(&last, src + (size_t)(disk_words - 1) * 8, 8);
    BWLA_CHECK((last & tail_mask) == 0,
               "'{}': tensor '{}' plane {} row {} has bits set beyond column {} (padding must be "
               "zero)",
               q.file, q.name, k, i, in);
    if (!direct) std::memcpy(p.bits.data() + (size_t)i * p.words_per_row, src, (size_t)disk_words * 8);
    int pc = 0;
    for (int wd = 0; wd < disk_words; ++wd) {
      uint64_t v;
      std::memcpy(&v, src + (size_t)wd * 8, 8);
      pc += __builtin_popcountll(v);
    }
    p.row_popcount[i] = pc;
  }
  if (direct) p.view = reinterpret_cast<const uint64_t*>(base);
  return p;
}

void load_planes(const TensorStore& st, const std::string& p, int64_t out, int64_t in,
                 int block_cols, const std::string& why, PackedParts& pp);
void load_side_tensors(const TensorStore& st, const std::string& p, int64_t out, int64_t in,
                       const std::string& why, PackedParts& pp);

const char* const kRcPackedTensors[] = {".rc_sign", ".rc_sparse", ".rc_salient", ".rc_a",
                                        ".rc_mu", ".rc_c", ".rc_block_cols"};

// Bit rows [rows][bytes / 8] of a U8 tensor into owned words; bits at or beyond
// `valid` in each row must be zero.
void read_bit_rows(const TensorView& t, int rows, int words, int valid, AlignedBuffer<uint64_t>& dst) {
  dst.resize((size_t)rows * words);
  std::memcpy(dst.data(), t.data, (size_t)rows * words * 8);
  for (int i = 0; i < rows; ++i)
    for (int wd = valid / 64; wd < words; ++wd) {
      const int lo = wd * 64;
      const uint64_t pad = valid <= lo ? ~0ull : ~((1ull << (valid - lo)) - 1);
      BWLA_CHECK((dst[(size_t)i * words + wd] & pad) == 0,
                 "'{}': tensor '{}' row {} has bits set beyond column {} (padding must be zero)",
                 t.file, t.name, i, valid);
    }
}

// The ARB-RC weights of linear p (format 4; kernels/rc_gemm.h).
std::shared_ptr<const RcMatrix> load_rc_matrix(const TensorStore& st, const std::string& p,
                                               int64_t out, int64_t in, const std::string& why) {
  for (const char* s : kRcPackedTensors)
    BWLA_CHECK(st.has(p + s), "'{}': {} is an ARB-RC linear but '{}' is missing", st.dir(), p,
               p + s);
  auto m = std::make_shared<RcMatrix>();
  m->rows = (int)out;
  m->cols = (int)in;
  m->words = (int)((in + 63) / 64);
  const int64_t rb = (int64_t)m->words * 8;
  const TensorView& tbc = need(st, p + ".rc_block_cols", DType::I64, DType::I64, {1}, "the format");
  int64_t bc;
  std::memcpy(&bc, tbc.data, 8);
  BWLA_CHECK(bc >= 64 && bc % 64 == 0 && bc <= (1 << 24),
             "'{}': {}.rc_block_cols = {} must be a positive multiple of 64", tbc.file, p, bc);
  m->block_cols = (int)bc;
  m->blocks = (int)((in + bc - 1) / bc);
  read_bit_rows(need(st, p + ".rc_sign", DType::U8, DType::U8, {out, rb}, why), m->rows, m->words,
                m->cols, m->sign);
  read_bit_rows(need(st, p + ".rc_sparse", DType::U8, DType::U8, {out, rb}, why), m->rows, m->words,
                m->cols, m->sparse);
  read_bit_rows(need(st, p + ".rc_salient", DType::U8, DType::U8, {rb}, why), 1, m->words, m->cols,
                m->salient);
  for (int i = 0; i < m->rows; ++i)
    for (int wd = 0; wd < m->words; ++wd)
      BWLA_CHECK((m->sparse[(size_t)i * m->words + wd] & m->salient[wd]) == 0,
                 "'{}': {}.rc_sparse row {} marks an entry of a salient column (word {}) as sparse",
                 st.dir(), p, i, wd);
  m->index_salient();  // nsal for sign2's shape; again below, once c is read
  if (m->nsal > 0) {
    read_bit_rows(need(st, p + ".rc_sign2", DType::U8, DType::U8, {out, (int64_t)m->words2 * 8},
                       fmt::format("{} salient columns", m->nsal)),
                  m->rows, m->words2, m->nsal, m->sign2);
  } else {
    BWLA_CHECK(!st.has(p + ".rc_sign2"), "'{}': {} has no salient column but stores '{}'", st.dir(),
               p, p + ".rc_sign2");
  }
  auto scales = [&](const char* s, std::vector<int64_t> shape, std::vector<float>& dst) {
    dst = floats(need(st, p + s, DType::F16, DType::F32, shape, why));
    for (size_t k = 0; k < dst.size(); ++k)
      BWLA_CHECK(std::isfinite(dst[k]), "'{}': tensor '{}' holds a non-finite value at index {}",
                 st.dir(), p + s, k);
  };
  scales(".rc_a", {kRcPlanes, out, m->blocks}, m->a);
  scales(".rc_mu", {kRcGroups, out, m->blocks}, m->mu);
  // [1] holding 1: every column scale is 1; else one per plane and column.
  if (st.get(p + ".rc_c").shape == std::vector<int64_t>{1}) {
    std::vector<float> one;
    scales(".rc_c", {1}, one);
    BWLA_CHECK(one[0] == 1.0f, "'{}': {}.rc_c of shape [1] must hold 1 (all column scales 1), holds {}",
               st.dir(), p, one[0]);
    m->c.assign((size_t)kRcPlanes * in, 1.0f);
  } else {
    scales(".rc_c", {kRcPlanes, in}, m->c);
  }
  m->index_salient();
  return m;
}

std::unique_ptr<Linear> load_packed_linear(const TensorStore& st, const ModelConfig& c,
                                           std::shared_ptr<const TensorStore> keep,
                                           const std::string& p, int id, int abits,
                                           int block_cols) {
  const int64_t out = c.linear_out(id), in = c.linear_in(id);
  const std::string why = fmt::format("config.json ([{}, {}] linear)", out, in);
  PackedParts pp;
  pp.abits = abits;
  pp.keep_alive = keep;
  if (st.has(p + ".rc_sign") || !st.has(p + ".qweight")) {
    BWLA_CHECK(!st.has(p + ".qweight"), "'{}': {} stores both bit planes and ARB-RC weights",
               st.dir(), p);
    pp.rc = load_rc_matrix(st, p, out, in, why);
  } else {
    load_planes(st, p, out, in, block_cols, why, pp);
  }
  load_side_tensors(st, p, out, in, why, pp);
  return std::make_unique<PackedLinear>(std::move(pp));
}

void load_planes(const TensorStore& st, const std::string& p, int64_t out, int64_t in,
                 int block_cols, const std::string& why, PackedParts& pp) {
  for (const char* s : kRcPackedTensors)
    BWLA_CHECK(!st.has(p + s), "'{}': {} has '{}' but no '{}' (a partial ARB-RC linear)",
               st.dir(), p, p + s, p + ".rc_sign");
  const TensorView& q = st.get(p + ".qweight");
  BWLA_CHECK(q.dtype == DType::U8, "'{}': tensor '{}' has dtype {}, expected U8", q.file, q.name,
             dtype_name(q.dtype));
  BWLA_CHECK(q.shape.size() == 3 && q.shape[0] >= 1 && q.shape[0] <= kPackedMaxPlanesLimit,
             "'{}': tensor '{}' has shape {}; expected [planes (1..{}), {}, {}]", q.file, q.name,
             q.shape_str(), kPackedMaxPlanesLimit, out, (in + 63) / 64 * 8);
  const int64_t planes = q.shape[0];
  BWLA_CHECK(q.shape[1] == out && q.shape[2] == (in + 63) / 64 * 8,
             "'{}': tensor '{}' has shape {} but {} implies {}", q.file, q.name, q.shape_str(),
             why, shape_of({planes, out, (in + 63) / 64 * 8}));
  const TensorView& ta = st.get(p + ".alpha");
  const int64_t blocks = ta.shape.size() == 3 ? ta.shape[2] : 0;
  if (blocks > 1) {
    BWLA_CHECK(block_cols > 0 && block_cols % 64 == 0 && blocks == (in + block_cols - 1) / block_cols,
               "'{}': tensor '{}' has shape {}: {} scale blocks, but quantization_config."
               "scale_block_cols {} implies {} blocks for input width {}",
               ta.file, ta.name, ta.shape_str(), blocks, block_cols,
               block_cols > 0 ? (in + block_cols - 1) / block_cols : 1, in);
  }
  const int64_t nb = blocks > 1 ? blocks : 1;
  auto alpha = floats(need(st, p + ".alpha", DType::F16, DType::F32, {planes, out, nb}, why));
  auto mu = floats(need(st, p + ".mu", DType::F16, DType::F32, {planes, out, nb}, why));
  for (size_t i = 0; i < alpha.size(); ++i)
    BWLA_CHECK(std::isfinite(alpha[i]) && std::isfinite(mu[i]),
               "'{}': tensor '{}' or '{}' holds a non-finite value at index {}", ta.file,
               p + ".alpha", p + ".mu", i);
  const size_t ps = (size_t)out * nb;
  for (int k = 0; k < planes; ++k) {
    if (nb == 1) {
      pp.planes.push_back(make_plane(q, k, (int)out, (int)in, alpha.data() + k * ps, mu.data() + k * ps));
    } else {
      std::vector<float> zeros(out, 0.0f);
      pp.planes.push_back(make_plane(q, k, (int)out, (int)in, zeros.data(), zeros.data()));
      pp.block_scales.push_back(
          make_block_scales(pp.planes.back(), block_cols, alpha.data() + k * ps, mu.data() + k * ps));
    }
  }
  // Planes copied out of the mapping (none reads it in place): its pages
  // would only double the resident set.
  if (std::none_of(pp.planes.begin(), pp.planes.end(), [](const PackedBinary& b) { return b.view; }))
    st.release(p + ".qweight");
}

// act_clip, the input transform, the PSP branch and the bias.
void load_side_tensors(const TensorStore& st, const std::string& p, int64_t out, int64_t in,
                       const std::string& why, PackedParts& pp) {
  pp.act_clip = floats(need(st, p + ".act_clip", DType::F32, DType::F32, {1}, "the format"))[0];
  BWLA_CHECK(pp.act_clip > 0 && pp.act_clip <= 1, "'{}': {}.act_clip = {} is outside (0, 1]",
             st.dir(), p, pp.act_clip);
  if (st.has(p + ".okt_r1")) {
    const TensorView& r1 = st.get(p + ".okt_r1");
    const TensorView& r2 = st.get(p + ".okt_r2");
    BWLA_CHECK(r1.shape.size() == 2 && r2.shape.size() == 2 && r1.shape[0] == r1.shape[1] &&
                   r2.shape[0] == r2.shape[1] && r1.shape[0] * r2.shape[0] == in,
               "'{}': {} OKT factors {} and {} are not square factors of input width {}", r1.file,
               p, r1.shape_str(), r2.shape_str(), in);
    pp.transform = std::make_shared<KroneckerTransform>(r1.to_f32(), (int)r1.shape[0], r2.to_f32(),
                                                        (int)r2.shape[0]);
  } else if (st.has(p + ".hadamard_seed")) {
    const TensorView& t = need(st, p + ".hadamard_seed", DType::I64, DType::I64, {1}, "the format");
    int64_t s;
    std::memcpy(&s, t.data, 8);
    pp.transform = std::shared_ptr<const InputTransform>(make_random_hadamard((int)in, (uint64_t)s));
  }
  if (st.has(p + ".psp_a")) {
    const TensorView& a = st.get(p + ".psp_a");
    BWLA_CHECK(a.shape.size() == 2 && a.shape[0] == out && a.shape[1] >= 1,
               "'{}': tensor '{}' has shape {} but {} implies [{}, rank]", a.file, a.name,
               a.shape_str(), why, out);
    pp.rank = (int)a.shape[1];
    if (a.dtype == DType::I8) {  // int8, one scale per rank component (format 3)
      const TensorView& ta8 = need(st, p + ".psp_a", DType::I8, DType::I8, {out, pp.rank}, why);
      const TensorView& tb8 = need(st, p + ".psp_b", DType::I8, DType::I8, {pp.rank, in}, why);
      const TensorView& sa = need(st, p + ".psp_a_scale", DType::F16, DType::F32, {pp.rank}, why);
      const TensorView& sb = need(st, p + ".psp_b_scale", DType::F16, DType::F32, {pp.rank}, why);
      pp.set_lowrank(LowRankDtype::I8, ta8.data, ta8.nbytes, tb8.data, tb8.nbytes);
      const std::vector<float> fa = floats(sa), fb = floats(sb);
      pp.lr_s8.resize(pp.rank);
      for (int k = 0; k < pp.rank; ++k) {
        BWLA_CHECK(std::isfinite(fa[k]) && std::isfinite(fb[k]),
                   "'{}': tensor '{}' or '{}' holds a non-finite scale at index {}", sa.file,
                   sa.name, sb.name, k);
        pp.lr_s8[k] = fa[k] * fb[k];
      }
    } else {
      const TensorView& ta2 = need(st, p + ".psp_a", DType::F16, DType::F32, {out, pp.rank}, why);
      const TensorView& tb2 = need(st, p + ".psp_b", DType::F16, DType::F32, {pp.rank, in}, why);
      if (ta2.dtype == DType::F16 && tb2.dtype == DType::F16) {  // kept as fp16 (half the bytes)
        for (const TensorView* t : {&ta2, &tb2}) {
          // Byte-wise: a tensor's data need not be 2-byte aligned in the file.
          const auto* bytes = static_cast<const uint8_t*>(t->data);
          for (int64_t i = 0; i < t->numel(); ++i) {
            uint16_t h;
            std::memcpy(&h, bytes + 2 * i, 2);
            BWLA_CHECK(std::isfinite(f16_to_f32(h)), "'{}': tensor '{}' holds a non-finite value",
                       t->file, t->name);
          }
        }
        pp.set_lowrank(LowRankDtype::F16, ta2.data, ta2.nbytes, tb2.data, tb2.nbytes);
      } else {
        pp.set_lowrank(LowRankDtype::F32, floats(ta2), floats(tb2));
      }
    }
  }
  if (st.has(p + ".bias")) pp.bias = read_f32(st, p + ".bias", {out});
}

// The name quantization_config uses for a table's storage (packed_writer.cc).
std::string table_dtype_name(const TensorView& t) {
  return t.dtype == DType::U8 ? "Q4" : t.dtype == DType::I8 ? "Q8" : dtype_name(t.dtype);
}

}  // namespace

void load_packed_layers(Model& m) {
  const json& q = m.cfg.raw["quantization_config"];
  const std::string file = m.dir + "/config.json";
  const std::string where = file + ", quantization_config";
  const int ver = (int)json_int(q, "format_version", -1, -1, 1 << 20, where);
  BWLA_CHECK(ver >= 1 && ver <= kPackedFormatVersion,
             "'{}': quantization_config.format_version {} of a {} model is not supported (this "
             "build reads 1 to {})",
             file, ver, kPackedQuantMethod, kPackedFormatVersion);
  const int abits = (int)json_int(q, "abits", -1, -1, 64, where);
  BWLA_CHECK(abits == 4 || abits == 6 || abits == 8,
             "'{}': quantization_config.abits {} must be 4, 6 or 8 for a packed model", file, abits);
  const int block_cols = (int)json_int(q, "scale_block_cols", 0, 0, 1 << 24, where);
  // Fields that describe the tensors must agree with them: a field this build
  // would not apply is an error, never silently ignored.
  const std::string layout = json_string(q, "weight_layout", "bitplanes-u64le-lsb-first", where);
  BWLA_CHECK(layout == "bitplanes-u64le-lsb-first",
             "'{}': quantization_config.weight_layout '{}' is not supported (this build reads "
             "bitplanes-u64le-lsb-first)",
             file, layout);
  const std::string scale_dtype = json_string(q, "scale_dtype", "", where);
  const std::string psp_dtype = json_string(q, "psp_dtype", "", where);
  BWLA_CHECK(psp_dtype.empty() || psp_dtype == "I8",
             "'{}': quantization_config.psp_dtype '{}' is not supported (I8, or absent for the "
             "scale dtype)",
             file, psp_dtype);
  const int max_planes = (int)json_int(q, "max_planes", 0, 0, kPackedMaxPlanesLimit, where);
  const TensorStore& st = *m.store;
  const ModelConfig& c = m.cfg;
  {
    const TensorView& head = st.get(c.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    const std::string hd = json_string(q, "head_dtype", table_dtype_name(head), where);
    BWLA_CHECK(hd == table_dtype_name(head),
               "'{}': quantization_config.head_dtype is '{}' but tensor '{}' is stored as {}", file,
               hd, head.name, table_dtype_name(head));
  }
  int planes_seen = 0;
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    load_layer_norms(st, c, l, L);
    for (int id = 0; id < kNumLinears; ++id) {
      const std::string p = linear_tensor_prefix(l, id);
      if (st.has(p + ".psp_a") && (st.has(p + ".rc_sign") || st.has(p + ".qweight"))) {
        const bool i8 = st.get(p + ".psp_a").dtype == DType::I8;
        BWLA_CHECK(i8 == (psp_dtype == "I8"),
                   "'{}': quantization_config.psp_dtype is '{}' but '{}' is {}", file,
                   psp_dtype.empty() ? "absent (the scale dtype)" : psp_dtype, p + ".psp_a",
                   dtype_name(st.get(p + ".psp_a").dtype));
      }
      bool any_rc = false;
      for (const char* s : kRcPackedTensors) any_rc |= st.has(p + s);
      if (any_rc) {
        BWLA_CHECK(ver >= 4, "'{}': {} is an ARB-RC linear (format 4) in a file of format {}",
                   file, p, ver);
        check_promised_tensors(st, q, p, file);
        L.lin[id] = load_packed_linear(st, c, m.store, p, id, abits, block_cols);
        const TensorView& a = st.get(p + ".rc_a");
        BWLA_CHECK(scale_dtype.empty() || scale_dtype == dtype_name(a.dtype),
                   "'{}': quantization_config.scale_dtype is '{}' but '{}' is {}", file,
                   scale_dtype, a.name, dtype_name(a.dtype));
        continue;
      }
      if (st.has(p + ".qweight")) {
        check_promised_tensors(st, q, p, file);
        const TensorView& a = st.get(p + ".alpha");
        BWLA_CHECK(scale_dtype.empty() || scale_dtype == dtype_name(a.dtype),
                   "'{}': quantization_config.scale_dtype is '{}' but '{}' is {}", file,
                   scale_dtype, a.name, dtype_name(a.dtype));
        planes_seen = std::max(planes_seen, (int)st.get(p + ".qweight").shape.at(0));
        L.lin[id] = load_packed_linear(st, c, m.store, p, id, abits, block_cols);
        continue;
      }
      std::vector<float> bias;
      if (st.has(p + ".bias")) bias = read_f32(st, p + ".bias", {c.linear_out(id)});
      auto w = read_f32(st, p + ".weight", {c.linear_out(id), c.linear_in(id)});
      L.lin[id] = std::make_unique<DenseLinear>(c.linear_out(id), c.linear_in(id), std::move(w),
                                                std::move(bias));
    }
    m.layers[l] = std::move(L);
  }
  BWLA_CHECK(max_planes == 0 || max_planes == planes_seen,
             "'{}': quantization_config.max_planes is {} but the linears use {}", file, max_planes,
             planes_seen);
}

}  // namespace bwla
