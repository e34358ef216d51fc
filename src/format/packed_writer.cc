// bwla pack: fake-quant directory -> packed directory (docs/FORMAT.md).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "format/bit_planes.h"
#include "format/packed_writer.h"
#include "format/quant_model.h"
#include "io/output_path.h"
#include "kernels/q4_gemm.h"
#include "kernels/q8_gemm.h"
#include "quant/weight_quant.h"

namespace bwla {

namespace fs = std::filesystem;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the packed writer stores uint64 words in host order (little-endian)");

json PackReport::summary() const {
  return {{"bits_per_weight", bits_per_weight},
          {"fake_quant_bits_per_weight", fake_quant_bits_per_weight},
          {"decoder_linear_bytes", decoder_linear_bytes},
          {"decoder_linear_weights", decoder_linear_weights},
          {"other_bytes", other_bytes},
          {"embedding_bytes", embed_bytes},
          {"head_bytes", head_bytes},
          {"embedding_dtype", embed_dtype},
          {"head_dtype", head_dtype},
          {"file_bytes", file_bytes},
          {"max_planes_used", max_planes_used},
          {"arb_rc_linears", rc_linears}};
}

namespace {

void copy_view(SafeTensorsWriter& w, const TensorView& t, size_t& bytes) {
  w.add_view(t.name, t.dtype, t.shape, t.data, t.nbytes);
  bytes += t.nbytes;
}

// Writes a [rows, cols] embedding/head tensor in the requested form; returns
// the dtype written, as quantization_config names it ("Q8" for I8 +
// `<name>_scale`, "Q4" for U8 nibbles + F16 group scales `<name>_scale`).
std::string write_table(SafeTensorsWriter& w, const TensorView& t, TableDtype how, size_t& bytes) {
  if (how == TableDtype::Keep) {
    copy_view(w, t, bytes);
    return dtype_name(t.dtype);
  }
  BWLA_CHECK(t.shape.size() == 2, "'{}': tensor '{}' must be 2-D, has shape {}", t.file, t.name,
             t.shape_str());
  const int rows = (int)t.shape[0], cols = (int)t.shape[1];
  const std::vector<float> v = t.to_f32();
  switch (how) {
    case TableDtype::F16:
      w.add_from_f32(t.name, DType::F16, t.shape, v.data());
      bytes += v.size() * 2;
      break;
    case TableDtype::Q4: {
      const size_t rb = q4_row_bytes(cols);
      const int G = q4_groups(cols);
      std::vector<uint8_t> q((size_t)rows * rb);
      std::vector<uint16_t> sc((size_t)rows * G);
      q4_quantize_rows(v.data(), rows, cols, q.data(), sc.data());
      w.add(t.name, DType::U8, {rows, (int64_t)rb}, q.data(), q.size());
      w.add(t.name + "_scale", DType::F16, {rows, G}, sc.data(), sc.size() * 2);
      bytes += q.size() + sc.size() * 2;
      break;
    }
    case TableDtype::Q8: {
      std::vector<int8_t> q(v.size());
      std::vector<float> sc(rows);
      q8_quantize_rows(v.data(), rows, cols, q.data(), sc.data());
      w.add(t.name, DType::I8, t.shape, q.data(), q.size());
      w.add(t.name + "_scale", DType::F32, {rows}, sc.data(), sc.size() * 4);
      bytes += q.size() + sc.size() * 4;
      break;
    }
    case TableDtype::Keep: break;
  }
  return table_dtype_traits(how).config_name;
}

size_t plane_bytes(const BitPlanes& b, size_t scale_size) {
  return b.bits.size() * 8 + 2 * b.alpha.size() * scale_size;
}

// Whole-row scales, or (when rows have more values than one plane holds)
// scale blocks of `block` columns, whichever packs smaller.
BitPlanes choose_planes(const std::vector<float>& wt, int out, int in, int block,
                        const std::string& p, const std::string& method, const PackOptions& opt) {
  std::optional<BitPlanes> whole, blocked;
  std::string err;
  try {
    whole = decompose_rows(wt.data(), out, in, opt.max_planes, p, method, 0);
  } catch (const Error& e) {
    err = e.what();
  }
  if ((!whole || whole->planes > 1) && block > 0 && block % 64 == 0 && block < in) {
    try {
      blocked = decompose_rows(wt.data(), out, in, opt.max_planes, p, method, block);
    } catch (const Error& e) {
      if (!whole) err += fmt::format(" (with {}-column scale blocks: {})", block, e.what());
    }
  }
  if (!whole && !blocked) throw Error(err);
  const size_t sd = dtype_size(opt.scale_dtype);
  if (whole && (!blocked || plane_bytes(*whole, sd) <= plane_bytes(*blocked, sd))) return *whole;
  return *blocked;
}

// A PSP factor as int8 with one scale per rank component (A [out, rank] per
// column, B [rank, in] per row); the scale is rounded to the scale dtype first
// and the values quantized against the rounded scale. Returns the bytes written.
size_t write_psp_i8(SafeTensorsWriter& w, const TensorView& t, const std::string& name, bool is_a,
                    DType scale_dtype) {
  const std::vector<float> v = t.to_f32();
  const int64_t rows = t.shape[0], cols = t.shape[1], rank = is_a ? cols : rows;
  const int64_t n = is_a ? rows : cols;
  auto index = [&](int64_t k, int64_t i) { return is_a ? i * cols + k : k * cols + i; };
  std::vector<float> sc(rank);
  std::vector<int8_t> q(v.size());
  for (int64_t k = 0; k < rank; ++k) {
    float mx = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      BWLA_CHECK(std::isfinite(v[index(k, i)]), "'{}': tensor '{}' holds a non-finite value",
                 t.file, t.name);
      mx = std::max(mx, std::fabs(v[index(k, i)]));
    }
    float d = mx > 0.0f ? mx / 127.0f : 1.0f;
    if (scale_dtype == DType::F16) d = f16_to_f32(f32_to_f16(d));
    sc[k] = d;
    for (int64_t i = 0; i < n; ++i)
      q[index(k, i)] = (int8_t)std::clamp(std::nearbyint(v[index(k, i)] / d), -127.0f, 127.0f);
  }
  w.add(name, DType::I8, t.shape, q.data(), q.size());
  w.add_from_f32(name + "_scale", scale_dtype, {rank}, sc.data());
  return q.size() + (size_t)rank * dtype_size(scale_dtype);
}

// The ARB-RC form of a fake-quant linear whose factors were stored
// (docs/FORMAT.md, format 4): sign and sparse-group bit rows, the salient
// column mask, the salient columns' second-plane signs, and the scales. The
// factors must reproduce the stored weights. Returns the bytes written.
size_t pack_rc_weights(SafeTensorsWriter& w, const TensorStore& st, const std::string& p, int out,
                       int in, const std::string& method, const PackOptions& opt) {
  const std::shared_ptr<const RcFactors> rcp = read_rc_tensors(st, p, out, in);
  const RcFactors& f = *rcp;
  BWLA_CHECK(f.block_cols % 64 == 0,
             "pack: {}: method {}: column-group blocks of {} columns; the column-group form "
             "needs a multiple of 64 (re-quantize with --block-size 128, the default)",
             p, method, f.block_cols);
  {
    auto wt = read_f32(st, p + ".weight", {out, in});
    const double mis = rc_mismatch(f, Eigen::Map<const MatrixRM>(wt.data(), out, in));
    BWLA_CHECK(mis <= 1e-5,
               "pack: {}: the stored ARB-RC factors do not reproduce its weights (largest "
               "difference {:.3g} of max |w|); the file was changed after quantization",
               p, mis);
  }
  const int words = (in + 63) / 64;
  std::vector<uint64_t> sign((size_t)out * words, 0), sparse((size_t)out * words, 0), sal(words, 0);
  std::vector<int> sal_cols;
  for (int j = 0; j < in; ++j) {
    const bool s0 = (f.code[j] & RcFactors::kGroupMask) == 0;
    for (int i = 1; i < out; ++i)
      BWLA_CHECK(((f.code[(size_t)i * in + j] & RcFactors::kGroupMask) == 0) == s0,
                 "pack: {}: column {} is salient in some rows only (rows 0 and {}); the packed "
                 "ARB-RC form has whole salient columns",
                 p, j, i);
    if (s0) sal[j >> 6] |= 1ull << (j & 63), sal_cols.push_back(j);
  }
  const int nsal = (int)sal_cols.size(), words2 = (nsal + 63) / 64;
  std::vector<uint64_t> sign2((size_t)out * std::max(words2, 1), 0);
  for (int i = 0; i < out; ++i)
    for (int j = 0, t = 0; j < in; ++j) {
      const uint8_t q = f.code[(size_t)i * in + j];
      const uint64_t bit = 1ull << (j & 63);
      if (q & RcFactors::kSign) sign[(size_t)i * words + (j >> 6)] |= bit;
      if ((q & RcFactors::kGroupMask) == 2) sparse[(size_t)i * words + (j >> 6)] |= bit;
      if ((q & RcFactors::kGroupMask) == 0) {
        if (q & RcFactors::kSign2) sign2[(size_t)i * words2 + (t >> 6)] |= 1ull << (t & 63);
        ++t;
      }
    }
  size_t bytes = 0;
  const int64_t rb = (int64_t)words * 8;
  w.add(p + ".rc_sign", DType::U8, {out, rb}, sign.data(), sign.size() * 8);
  w.add(p + ".rc_sparse", DType::U8, {out, rb}, sparse.data(), sparse.size() * 8);
  w.add(p + ".rc_salient", DType::U8, {rb}, sal.data(), sal.size() * 8);
  bytes += (sign.size() + sparse.size() + sal.size()) * 8;
  if (nsal > 0) {
    w.add(p + ".rc_sign2", DType::U8, {out, (int64_t)words2 * 8}, sign2.data(), sign2.size() * 8);
    bytes += sign2.size() * 8;
  }
  const size_t sd = dtype_size(opt.scale_dtype);
  w.add_from_f32(p + ".rc_a", opt.scale_dtype, {RcFactors::kPlanes, out, f.blocks}, f.a.data());
  w.add_from_f32(p + ".rc_mu", opt.scale_dtype, {RcFactors::kGroups, out, f.blocks}, f.mu.data());
  // Column scales in full only where they are not all 1 (ARB-RC); otherwise
  // one 1 (shape [1]): at 64 rows the full table would cost the other
  // binarizers a bit per weight.
  const bool unit_c = std::all_of(f.c.begin(), f.c.end(), [](float v) { return v == 1.0f; });
  const float one = 1.0f;
  if (unit_c)
    w.add_from_f32(p + ".rc_c", opt.scale_dtype, {1}, &one);
  else
    w.add_from_f32(p + ".rc_c", opt.scale_dtype, {RcFactors::kPlanes, in}, f.c.data());
  bytes += (f.a.size() + f.mu.size() + (unit_c ? 1 : f.c.size())) * sd;
  const int64_t bc = f.block_cols;
  w.add(p + ".rc_block_cols", DType::I64, {1}, &bc, 8);
  return bytes + 8;
}

// Packs one fake-quant linear (prefix p) into w; returns its bytes.
size_t pack_linear(SafeTensorsWriter& w, const TensorStore& st, const std::string& p, int out,
                   int in, const std::string& method, int block, const PackOptions& opt,
                   int& planes_used, bool& used_blocks, int& used_rc, double& fq_bits) {
  size_t bytes = 0;
  const size_t sd = dtype_size(opt.scale_dtype);
  const bool column_scales = weight_method_column_scales(method);
  if (st.has(p + ".rc_code") && (!opt.groups_as_planes || column_scales)) {
    bytes += pack_rc_weights(w, st, p, out, in, method, opt);
    ++used_rc;
  } else {
    BWLA_CHECK(!column_scales,
               "pack: {}: an arb-rc linear without its stored factors (quantized by a bwla "
               "older than format 4 of the packed form); re-quantize it with this bwla",
               p);
    auto wt = read_f32(st, p + ".weight", {out, in});
    BitPlanes bp = choose_planes(wt, out, in, block, p, method, opt);
    planes_used = std::max(planes_used, bp.planes);
    used_blocks |= bp.blocks > 1;
    const int64_t row_bytes = (int64_t)bp.words * 8;
    w.add(p + ".qweight", DType::U8, {bp.planes, out, row_bytes}, bp.bits.data(),
          bp.bits.size() * 8);
    w.add_from_f32(p + ".alpha", opt.scale_dtype, {bp.planes, out, bp.blocks}, bp.alpha.data());
    w.add_from_f32(p + ".mu", opt.scale_dtype, {bp.planes, out, bp.blocks}, bp.mu.data());
    bytes += plane_bytes(bp, sd);
  }
  copy_view(w, st.get(p + ".act_clip"), bytes);
  for (const char* s : {".okt_r1", ".okt_r2", ".hadamard_seed", ".bias"})
    if (st.has(p + s)) copy_view(w, st.get(p + s), bytes);
  if (st.has(p + ".psp_a")) {
    for (const char* s : {".psp_a", ".psp_b"}) {
      const TensorView& t = st.get(p + s);
      BWLA_CHECK(t.shape.size() == 2, "'{}': tensor '{}' must be 2-D, has shape {}", t.file,
                 t.name, t.shape_str());
      if (opt.psp_dtype == PspStorage::I8) {
        bytes += write_psp_i8(w, t, p + s, std::string(s) == ".psp_a", opt.scale_dtype);
        continue;
      }
      auto v = t.to_f32();
      w.add_from_f32(p + s, opt.scale_dtype, t.shape, v.data());
      bytes += v.size() * sd;
    }
  }
  if (st.has(p + ".storage_bits")) {
    const TensorView& t = st.get(p + ".storage_bits");
    if (t.dtype == DType::F64 && t.numel() == 1) {
      double b;
      std::memcpy(&b, t.data, 8);
      fq_bits += b;
    }
  }
  return bytes;
}

}  // namespace

PackReport pack_quantized_dir(const std::string& qdir, const std::string& out_dir,
                              const PackOptions& opt) {
  BWLA_CHECK(opt.scale_dtype == DType::F16 || opt.scale_dtype == DType::F32,
             "pack: scale dtype must be F16 or F32, got {}", dtype_name(opt.scale_dtype));
  check_output_dir(out_dir, {qdir}, "-o");
  BWLA_CHECK(opt.max_planes >= 1 && opt.max_planes <= kPackedMaxPlanesLimit,
             "pack: --max-planes {} must be in [1, {}]", opt.max_planes, kPackedMaxPlanesLimit);
  BWLA_CHECK(fs::weakly_canonical(qdir) != fs::weakly_canonical(out_dir),
             "pack: output directory '{}' is the input directory", out_dir);
  const ModelConfig c = ModelConfig::load(qdir);
  const std::string cfile = qdir + "/config.json";
  BWLA_CHECK(is_quantized_config(c),
             "pack: '{}' has no quantization_config; quantize the model first (bwla quantize)", cfile);
  json qc = c.raw["quantization_config"];
  BWLA_CHECK(qc.value("quant_method", "") != kPackedQuantMethod, "pack: '{}' is already packed",
             qdir);
  BWLA_CHECK(qc.value("quant_method", "") == kFakeQuantMethod &&
                 qc.value("format_version", -1) == kFakeQuantFormatVersion,
             "pack: '{}': quantization_config is '{}' version {}; pack reads bwla fake-quant "
             "version {}",
             cfile, qc.value("quant_method", ""), qc.value("format_version", -1),
             kFakeQuantFormatVersion);
  const int abits = qc.value("abits", 16);
  BWLA_CHECK(abits == 4 || abits == 6 || abits == 8,
             "pack: '{}': abits is {}; the packed forward quantizes activations to 4, 6 or 8 "
             "bits (re-quantize with --abits 4/6/8)",
             cfile, abits);
  const std::string method = qc.value("method", "?");
  int block = 0;
  if (qc.contains("weight_quantizer") && qc["weight_quantizer"].is_object())
    block = qc["weight_quantizer"].value("block_size", 0);
  bool used_blocks = false;
  const std::string wq_method = qc.contains("weight_quantizer") && qc["weight_quantizer"].is_object()
                                    ? qc["weight_quantizer"].value("method", "")
                                    : "";
  const std::string& weight_method = method == kBwlaMethod && !wq_method.empty() ? wq_method : method;

  TensorStore st(qdir);
  SafeTensorsWriter w(64);
  w.set_metadata("format", "bwla-packed");
  PackReport rep;
  double fq_bits = 0;
  std::vector<std::string> linear_prefixes;
  for (int l = 0; l < c.n_layers; ++l)
    for (int id = 0; id < kNumLinears; ++id) linear_prefixes.push_back(linear_tensor_prefix(l, id));
  auto is_linear_tensor = [&](const std::string& n) {
    const size_t pos = n.rfind('.');
    if (pos == std::string::npos) return false;
    return std::binary_search(linear_prefixes.begin(), linear_prefixes.end(), n.substr(0, pos));
  };
  std::sort(linear_prefixes.begin(), linear_prefixes.end());
  const std::string ename = "model.embed_tokens.weight";
  TableDtype written_embed = TableDtype::Keep, written_head = TableDtype::Keep;
  for (auto& n : st.names()) {
    if (n.rfind("__pad", 0) == 0 || is_linear_tensor(n)) continue;
    if (n == ename) {
      written_embed = c.tie_embeddings ? opt.head_dtype : opt.embed_dtype;
      rep.embed_dtype = write_table(w, st.get(n), written_embed, rep.embed_bytes);
      if (c.tie_embeddings) rep.head_dtype = rep.embed_dtype, written_head = written_embed;
    } else if (n == "lm_head.weight" && !c.tie_embeddings) {
      written_head = opt.head_dtype;
      rep.head_dtype = write_table(w, st.get(n), opt.head_dtype, rep.head_bytes);
    } else {
      copy_view(w, st.get(n), rep.other_bytes);
    }
  }
  rep.other_bytes += rep.embed_bytes + rep.head_bytes;
  for (int l = 0; l < c.n_layers; ++l)
    for (int id = 0; id < kNumLinears; ++id) {
      const std::string p = linear_tensor_prefix(l, id);
      const int out = (int)c.linear_out(id), in = (int)c.linear_in(id);
      rep.decoder_linear_weights += (long)out * in;
      if (!st.has(p + ".act_clip")) {  // left in full precision by the quantizer
        for (const char* s : {".weight", ".bias"})
          if (st.has(p + s)) copy_view(w, st.get(p + s), rep.decoder_linear_bytes);
        fq_bits += 32.0 * out * in;
        continue;
      }
      rep.decoder_linear_bytes += pack_linear(w, st, p, out, in, weight_method, block, opt,
                                              rep.max_planes_used, used_blocks, rep.rc_linears, fq_bits);
    }
  rep.bits_per_weight = 8.0 * (double)rep.decoder_linear_bytes / (double)rep.decoder_linear_weights;
  rep.fake_quant_bits_per_weight = fq_bits / (double)rep.decoder_linear_weights;

  json cfg = c.raw;
  qc["source_quant_method"] = qc.value("quant_method", "");
  qc["source_format_version"] = qc.value("format_version", -1);
  qc["quant_method"] = kPackedQuantMethod;
  // The lowest version that describes the file: 3 only with a 4-bit table or
  // int8 PSP factors, so version-2 readers keep reading everything else.
  int version = opt.psp_dtype == PspStorage::I8 ? 3 : 2;
  if (rep.rc_linears > 0) version = 4;  // ARB-RC linears
  for (const TableDtype t : {written_embed, written_head})
    version = std::max(version, table_dtype_traits(t).format_version);
  BWLA_ASSERT(version <= kPackedFormatVersion, "format version {}", version);
  qc["format_version"] = version;
  if (opt.psp_dtype == PspStorage::I8) qc["psp_dtype"] = "I8";  // absent: the scale dtype
  qc["format"] = "packed";
  qc["weight_layout"] = "bitplanes-u64le-lsb-first";
  qc["scale_dtype"] = dtype_name(opt.scale_dtype);
  if (rep.max_planes_used > 0) qc["max_planes"] = rep.max_planes_used;
  if (used_blocks) qc["scale_block_cols"] = block;
  qc["bits_per_weight"] = rep.bits_per_weight;
  qc["fake_quant_bits_per_weight"] = rep.fake_quant_bits_per_weight;
  qc["embedding_dtype"] = rep.embed_dtype;
  qc["head_dtype"] = rep.head_dtype;
  qc["packed_bytes"] = {{"decoder_linears", rep.decoder_linear_bytes},
                        {"decoder_linear_weights", rep.decoder_linear_weights},
                        {"embeddings_norms_head", rep.other_bytes},
                        {"embeddings", rep.embed_bytes},
                        {"lm_head", rep.head_bytes}};
  cfg["quantization_config"] = qc;

  StagedDir out(out_dir, {qdir}, "-o", "pack");
  const std::string tmp = out.path();
  w.write(tmp + "/model.safetensors");
  write_text_file_atomic(tmp + "/config.json", cfg.dump(2));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "generation_config.json", "tokenizer.model", "quantize_report.json"}) {
    fs::path s = fs::path(qdir) / f;
    if (fs::exists(s)) fs::copy_file(s, fs::path(tmp) / f, fs::copy_options::overwrite_existing);
  }
  rep.file_bytes = fs::file_size(tmp + "/model.safetensors");
  out.commit();
  return rep;
}

}  // namespace bwla
