// The packed model format: bit-plane encoding, frozen on-disk bytes (golden),
// and the packed forward against the fake-quant forward on a tiny model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"
#include "format/bit_planes.h"
#include "format/model_loader.h"
#include "runtime/packed_linear.h"
#include "format/packed_writer.h"
#include "runtime/q4_linear.h"
#include "runtime/q8_linear.h"
#include "io/mmap.h"
#include "model/forward.h"
#include "packed_testing.h"
#include "tmpdir.h"

using namespace bwla;

namespace {
// The layouts these tests freeze store the PSP factors in the scale dtype
// (format version 2) and the head in f16; `pack`'s defaults (int8 factors, a
// 4-bit head) are tested on their own.
PackOptions f16_psp() {
  PackOptions o;
  o.psp_dtype = PspStorage::ScaleDtype;
  o.head_dtype = TableDtype::F16;
  return o;
}
}  // namespace

namespace {
using test::logits_of;
using test::max_abs;
using test::max_diff;

TEST(BitPlanes, BinaryRowsAreOnePlaneWithMidpointAndHalfRange) {
  const float w[] = {0.5f, -0.25f, 0.5f, 0.5f, -0.25f,  // v_lo = −0.25, v_hi = 0.5
                     2.0f, 2.0f, 2.0f, 2.0f, 2.0f};     // constant row
  BitPlanes p = decompose_rows(w, 2, 5, 4, "x", "m");
  EXPECT_EQ(p.planes, 1);
  EXPECT_EQ(p.words, 1);
  EXPECT_FLOAT_EQ(p.mu[0], 0.125f);
  EXPECT_FLOAT_EQ(p.alpha[0], 0.375f);
  EXPECT_EQ(p.bits[0], 0b01101u);
  EXPECT_FLOAT_EQ(p.alpha[1], 0.0f);
  EXPECT_FLOAT_EQ(p.mu[1], 2.0f);
  EXPECT_EQ(p.bits[1], 0u);
  auto back = compose_rows(p);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(back[i], w[i]) << i;
}

TEST(BitPlanes, UniformGridUsesBinaryCodesAndOthersAThermometer) {
  // 8 levels of a 3-bit grid -> 3 planes (a thermometer would need 7).
  std::vector<float> g(130), t(130);
  for (int j = 0; j < 130; ++j) {
    g[j] = -1.0f + 0.25f * (float)((j * 5) % 8);
    t[j] = (float[]){-1.0f, 0.1f, 0.3f, 2.0f}[j % 4];
  }
  BitPlanes pg = decompose_rows(g.data(), 1, 130, 4, "g", "m");
  EXPECT_EQ(pg.planes, 3);
  EXPECT_EQ(pg.words, 3);
  BitPlanes pt = decompose_rows(t.data(), 1, 130, 4, "t", "m");
  EXPECT_EQ(pt.planes, 3);
  for (auto* p : {&pg, &pt}) {
    auto back = compose_rows(*p);
    const auto& src = p == &pg ? g : t;
    for (int j = 0; j < 130; ++j) EXPECT_NEAR(back[j], src[j], 1e-6) << j;
  }
  // Padding bits beyond column 130 stay clear.
  EXPECT_EQ(pg.bits[2] >> 2, 0u);
}

TEST(BitPlanes, TooManyValuesNameTheLinearAndTheCount) {
  std::vector<float> w(64);
  for (int j = 0; j < 64; ++j) w[j] = std::sin((float)j);
  try {
    decompose_rows(w.data(), 1, 64, 4, "model.layers.3.mlp.up_proj", "billm");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model.layers.3.mlp.up_proj"), std::string::npos) << m;
    EXPECT_NE(m.find("64 distinct"), std::string::npos) << m;
    EXPECT_NE(m.find("billm"), std::string::npos) << m;
  }
}

// Frozen layout: any change to tensor names, dtypes, shapes, bit order,
// padding, alignment or config keys changes these hashes. Update them only
// together with docs/FORMAT.md and kPackedFormatVersion.
TEST(PackedFormat, GoldenBytes) {
  test::TempDir td;
  test::write_tiny_fake_quant(td.file("fq"));
  PackReport r = pack_quantized_dir(td.file("fq"), td.file("packed"), f16_psp());
  EXPECT_EQ(r.max_planes_used, 2);
  const std::string bytes = read_text_file(td.file("packed/model.safetensors"));
  ASSERT_GT(bytes.size(), 8u);
  uint64_t hlen;
  std::memcpy(&hlen, bytes.data(), 8);
  const std::string header = bytes.substr(8, hlen);
  EXPECT_EQ((8 + hlen) % 64, 0u);
  const json h = json::parse(header);
  // Spot checks a reader can rely on (docs/FORMAT.md).
  const json& q = h["model.layers.0.self_attn.o_proj.qweight"];
  EXPECT_EQ(q["dtype"], "U8");
  EXPECT_EQ(q["shape"], json({2, 80, 16}));
  EXPECT_EQ(q["data_offsets"][0].get<uint64_t>() % 64, (64 - (8 + hlen) % 64) % 64);
  EXPECT_EQ(h["model.layers.0.self_attn.o_proj.alpha"]["dtype"], "F16");
  EXPECT_EQ(h["model.layers.0.mlp.up_proj.qweight"]["shape"], json({1, 96, 16}));
  EXPECT_EQ(h["model.layers.0.mlp.down_proj.weight"]["dtype"], "F32");
  EXPECT_EQ(h["model.layers.1.mlp.down_proj.psp_a"]["shape"], json({80, 2}));
  EXPECT_EQ(h["model.layers.1.mlp.gate_proj.alpha"]["shape"], json({1, 96, 2}));
  EXPECT_EQ(h["model.layers.0.mlp.gate_proj.alpha"]["shape"], json({2, 96, 1}));
  const json cfg = load_json_file(td.file("packed/config.json"));
  const json& qc = cfg["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "bwla-packed");
  EXPECT_EQ(qc["format_version"], 2);
  EXPECT_EQ(qc["scale_block_cols"], 64);
  EXPECT_EQ(qc["head_dtype"], "F16");
  EXPECT_EQ(h["model.embed_tokens.weight"]["dtype"], "F16");
  const std::string qcs = qc.dump();
  const uint64_t hh = test::fnv1a(header.data(), header.size());
  const uint64_t fh = test::fnv1a(bytes.data(), bytes.size());
  const uint64_t ch = test::fnv1a(qcs.data(), qcs.size());
  EXPECT_EQ(bytes.size(), 77568u);
  EXPECT_EQ(hh, 6041267463344281618ull) << header;
  EXPECT_EQ(fh, 10127162955323839853ull);
  EXPECT_EQ(ch, 2906391321475858703ull) << qcs;
}


TEST(PackedFormat, EveryLinearMatchesItsFakeQuantLinear) {
  test::TempDir td;
  test::write_tiny_fake_quant(td.file("fq"));
  pack_quantized_dir(td.file("fq"), td.file("packed"), f16_psp());
  auto fq = load_model(td.file("fq"));
  auto pk = load_model(td.file("packed"));
  Rng r(3);
  for (int l = 0; l < 2; ++l)
    for (int id = 0; id < kNumLinears; ++id) {
      const Linear& a = *fq->layers[l].lin[id];
      const Linear& b = *pk->layers[l].lin[id];
      const int n = 5, in = a.in_features(), out = a.out_features();
      std::vector<float> x((size_t)n * in), ya((size_t)n * out), yb((size_t)n * out);
      for (auto& v : x) v = (float)r.normal();
      a.forward(x.data(), n, ya.data());
      b.forward(x.data(), n, yb.data());
      EXPECT_LE(max_diff(ya, yb), 1e-5 * max_abs(ya)) << "layer " << l << " " << linear_name(id) << " "
                                                      << b.describe();
    }
}

TEST(PackedFormat, TinyModelForwardMatchesFakeQuantUnderEveryIsa) {
  test::TempDir td;
  test::write_tiny_fake_quant(td.file("fq"));
  pack_quantized_dir(td.file("fq"), td.file("packed"), f16_psp());
  auto fq = load_model(td.file("fq"));
  auto pk = load_model(td.file("packed"));
  int packed = 0, dense = 0;
  for (auto& L : pk->layers)
    for (auto& lin : L.lin) (dynamic_cast<const PackedLinear*>(lin.get()) ? packed : dense)++;
  EXPECT_EQ(packed, 13);
  EXPECT_EQ(dense, 1);
  std::vector<int> toks;
  for (int i = 0; i < 24; ++i) toks.push_back((i * 7 + 3) % 48);
  const Isa best = best_isa();
  const auto ref = logits_of(*fq, toks);
  std::vector<float> first;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (isa > best) continue;
    set_active_isa(isa);
    const auto got = logits_of(*pk, toks);
    const double d = max_diff(ref, got), scale = max_abs(ref);
    // Same quantized weights (exact in fp16), same activation quantizer; only
    // float summation order differs (BLAS vs integer sums). A level flip at a
    // rounding boundary (possible with another BLAS kernel) would move a few
    // logits by ~1%, hence 2e-2 rather than the 1e-6 measured here.
    std::printf("%s: max |dlogit| %.3g of %.3g\n", isa_name(isa), d, scale);
    EXPECT_LE(d, 2e-2 * scale) << isa_name(isa) << " max |Δlogit| " << d << " of " << scale;
    if (first.empty()) first = got;
    EXPECT_LE(max_diff(first, got), 2e-2 * scale) << isa_name(isa);
  }
  set_active_isa(best);
}

}  // namespace

// The 4-bit table's bytes are frozen too (docs/FORMAT.md, `q4`): nibble order,
// padding of the last group and the scale search.
TEST(PackedFormat, GoldenBytesQ4Table) {
  test::TempDir td;
  test::write_tiny_fake_quant(td.file("fq"));
  PackOptions po = f16_psp();
  po.head_dtype = TableDtype::Q4;
  pack_quantized_dir(td.file("fq"), td.file("packed"), po);
  TensorStore st(td.file("packed"));
  const auto& w = st.get("model.embed_tokens.weight");
  const auto& sc = st.get("model.embed_tokens.weight_scale");
  EXPECT_EQ(dtype_name(w.dtype), std::string("U8"));
  EXPECT_EQ(w.shape, (std::vector<int64_t>{48, 48}));
  EXPECT_EQ(dtype_name(sc.dtype), std::string("F16"));
  EXPECT_EQ(sc.shape, (std::vector<int64_t>{48, 3}));
  EXPECT_EQ(load_json_file(td.file("packed/config.json"))["quantization_config"]["head_dtype"], "Q4");
  EXPECT_EQ(test::fnv1a(w.data, w.nbytes), 8208342764512685735ull);
  EXPECT_EQ(test::fnv1a(sc.data, sc.nbytes), 12604252750004698305ull);
}

// Head / embedding storage (format version 2): keep, f16, q8, q4 on a tied and
// an untied model; the loaded head kind, the tensors written, the byte split,
// and the logits against the fake-quant model.
TEST(PackedFormat, HeadAndEmbeddingDtypes) {
  for (bool tied : {true, false}) {
    test::TempDir td;
    test::write_tiny_fake_quant(td.file("fq"), 6, tied);
    auto fq = load_model(td.file("fq"));
    std::vector<int> toks;
    for (int i = 0; i < 24; ++i) toks.push_back((i * 7 + 3) % 48);
    const auto ref = logits_of(*fq, toks);
    const double scale = max_abs(ref);
    for (const std::string head : {"keep", "f16", "q8", "q4"}) {
      SCOPED_TRACE(std::string(tied ? "tied " : "untied ") + head);
      PackOptions po = f16_psp();
      po.head_dtype = parse_table_dtype(head);
      po.embed_dtype = TableDtype::Q8;
      const std::string dir = td.file("p-" + head);
      PackReport r = pack_quantized_dir(td.file("fq"), dir, po);
      const std::string want = head == "keep" ? "F32" : head == "f16" ? "F16" : head == "q8" ? "Q8" : "Q4";
      const bool quant = want == "Q8" || want == "Q4";
      EXPECT_EQ(r.head_dtype, want);
      EXPECT_EQ(r.embed_dtype, tied ? want : "Q8");
      // 48 × 80 table: Q8 = bytes + F32 row scales; Q4 = 48 rows of 3 groups
      // (the last one half padding) × 16 bytes + F16 group scales.
      const long vh = 48L * 80;
      auto table_bytes = [&](const std::string& d) -> long {
        return d == "F32" ? 4 * vh : d == "F16" ? 2 * vh : d == "Q8" ? vh + 48 * 4 : 48 * 48 + 48 * 3 * 2;
      };
      EXPECT_EQ((long)r.embed_bytes, tied ? table_bytes(want) : table_bytes("Q8"));
      EXPECT_EQ((long)r.head_bytes, tied ? 0 : table_bytes(want));
      const json qc = load_json_file(dir + "/config.json")["quantization_config"];
      EXPECT_EQ(qc["head_dtype"], want);
      EXPECT_EQ(qc["format_version"], head == "q4" ? 3 : 2);  // the lowest that describes the file
      TensorStore st(dir);
      const std::string hname = tied ? "model.embed_tokens.weight" : "lm_head.weight";
      EXPECT_EQ(st.get(hname).dtype == DType::I8, want == "Q8");
      EXPECT_EQ(st.get(hname).dtype == DType::U8, want == "Q4");
      EXPECT_EQ(st.has(hname + "_scale"), quant);
      auto pk = load_model(dir);
      EXPECT_EQ(dynamic_cast<const Q8Linear*>(pk->lm_head.get()) != nullptr, want == "Q8");
      EXPECT_EQ(dynamic_cast<const Q4Linear*>(pk->lm_head.get()) != nullptr, want == "Q4");
      EXPECT_EQ(pk->head_shares_embedding(), tied && !quant);
      const auto got = logits_of(*pk, toks);
      const double d = max_diff(ref, got);
      std::printf("%s head %s: max |dlogit| %.3g of %.3g\n", tied ? "tied" : "untied", head.c_str(), d, scale);
      // fp32/f16 heads: as in TinyModelForwardMatchesFakeQuantUnderEveryIsa; int8
      // (step max|w|/127 per row, embeddings too when tied): a few percent; 4-bit
      // (step max|w|/8 per 32 columns, int8 activations): about 2.5× that.
      EXPECT_LE(d, (want == "Q4" ? 0.15 : want == "Q8" || !tied ? 6e-2 : 2e-2) * scale);
      EXPECT_GT(d, 0.0);
      // Decode streams the head whole and one embedding row.
      const size_t head_b = want == "F32" || want == "F16" ? 4 * vh : table_bytes(want);
      // Tied F32/F16 tables are held as fp32 (they are the head); I8, U8 and
      // untied F16 tables stay mapped.
      auto want_embed_bytes = [&](const std::string& d) -> size_t {
        if (d == "F16" && !tied) return 2 * vh;
        return d == "F32" || d == "F16" ? 4 * vh : table_bytes(d);
      };
      const size_t tbytes = pk->embed_table_bytes();
      EXPECT_EQ(tbytes, want_embed_bytes(tied ? want : "Q8"));
      EXPECT_EQ(pk->decode_bytes_per_token() - pk->param_bytes() + tbytes -
                    (pk->head_shares_embedding() ? head_b : 0),
                tbytes / 48) << "decode bytes " << pk->decode_bytes_per_token();
      // Lookups (mapped I8 / U8 / F16 rows or the fp32 copy) give the stored values.
      std::vector<float> row(80);
      pk->embed_row(47, row.data());
      const auto& tv = st.get("model.embed_tokens.weight");
      for (int j = 0; j < 80; ++j) {
        float v;
        if (tv.dtype == DType::I8) {
          v = reinterpret_cast<const int8_t*>(tv.data)[47 * 80 + j] *
              st.get("model.embed_tokens.weight_scale").to_f32()[47];
        } else if (tv.dtype == DType::U8) {
          const uint8_t b = reinterpret_cast<const uint8_t*>(tv.data)[47 * 48 + (j / 32) * 16 + j % 16];
          const int q = j % 32 < 16 ? (b & 15) : (b >> 4);
          v = (q - 8) * st.get("model.embed_tokens.weight_scale").to_f32()[47 * 3 + j / 32];
        } else {
          v = tv.to_f32()[47 * 80 + j];
        }
        ASSERT_EQ(row[j], v) << j;
      }
    }
  }
}

TEST(PackedFormat, QuantizedHeadWithoutScaleOrOutsideAPackedModelIsAnError) {
  for (const std::string head : {"q8", "q4"}) {
    SCOPED_TRACE(head);
    test::TempDir td;
    test::write_tiny_fake_quant(td.file("fq"), 6, /*tied=*/false);
    PackOptions po = f16_psp();
    po.head_dtype = parse_table_dtype(head);
    pack_quantized_dir(td.file("fq"), td.file("p"), po);
    // Drop the scale tensor by renaming it in the header (same length).
    std::string bytes = read_text_file(td.file("p/model.safetensors"));
    const size_t at = bytes.find("\"lm_head.weight_scale\"");
    ASSERT_NE(at, std::string::npos);
    bytes.replace(at, 22, "\"lm_head.weight_scalX\"");
    {
      std::ofstream f(td.file("p/model.safetensors"), std::ios::binary | std::ios::trunc);
      f << bytes;
    }
    try {
      load_model(td.file("p"));
      FAIL() << "expected an error";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("lm_head.weight_scale"), std::string::npos) << m;
      EXPECT_NE(m.find("model.safetensors"), std::string::npos) << m;
    }
    // The same head under a non-packed config.
    pack_quantized_dir(td.file("fq"), td.file("p2"), po);
    json cfg = load_json_file(td.file("p2/config.json"));
    cfg["quantization_config"]["quant_method"] = "bwla";
    write_text_file_atomic(td.file("p2/config.json"), cfg.dump());
    try {
      load_model(td.file("p2"));
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("only read from bwla-packed"), std::string::npos) << e.what();
    }
    if (head != "q4") continue;
    // A 4-bit head whose config says another width: the shapes no longer match.
    pack_quantized_dir(td.file("fq"), td.file("p3"), po);
    cfg = load_json_file(td.file("p3/config.json"));
    cfg["hidden_size"] = cfg["hidden_size"].get<int>() + 32;
    write_text_file_atomic(td.file("p3/config.json"), cfg.dump());
    EXPECT_THROW(load_model(td.file("p3")), Error);
    // A non-finite group scale (F16 0x7C00 = +inf) in the first scale.
    pack_quantized_dir(td.file("fq"), td.file("p4"), po);
    std::string b4 = read_text_file(td.file("p4/model.safetensors"));
    const uint64_t hlen = *reinterpret_cast<const uint64_t*>(b4.data());
    const json hdr = json::parse(b4.substr(8, hlen));
    const size_t pos = 8 + hlen + hdr["lm_head.weight_scale"]["data_offsets"][0].get<size_t>();
    b4[pos] = 0x00;
    b4[pos + 1] = 0x7C;
    {
      std::ofstream f(td.file("p4/model.safetensors"), std::ios::binary | std::ios::trunc);
      f << b4;
    }
    try {
      load_model(td.file("p4"));
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("must be finite"), std::string::npos) << e.what();
    }
  }
}

// Format 4, the column-group form (docs/FORMAT.md "Column-group linears"):
// the bytes decoded by hand from the documented layout against the fake-quant
// codes they were packed from, then frozen by hash.
TEST(PackedFormat, GoldenColumnGroupForm) {
  test::TempDir td;
  test::write_tiny_fake_quant(td.file("fq"), 6, true, /*rc=*/true);
  const PackReport r = pack_quantized_dir(td.file("fq"), td.file("packed"), f16_psp());
  EXPECT_EQ(r.rc_linears, 1);
  const std::string p = "model.layers.1.self_attn.o_proj";
  TensorStore fq(td.file("fq")), st(td.file("packed"));
  EXPECT_EQ(load_json_file(td.file("packed/config.json"))["quantization_config"]["format_version"], 4);
  EXPECT_FALSE(st.has(p + ".qweight"));
  const int out = 80, in = 80;
  const auto& code = fq.get(p + ".rc_code");
  const auto& sign = st.get(p + ".rc_sign");
  const auto& sparse = st.get(p + ".rc_sparse");
  const auto& sal = st.get(p + ".rc_salient");
  const auto& sign2 = st.get(p + ".rc_sign2");
  EXPECT_EQ(sign.shape, (std::vector<int64_t>{out, 16}));
  EXPECT_EQ(sparse.shape, (std::vector<int64_t>{out, 16}));
  EXPECT_EQ(sal.shape, (std::vector<int64_t>{16}));
  EXPECT_EQ(sign2.shape, (std::vector<int64_t>{out, 8}));  // 2 salient columns: one word
  EXPECT_EQ(st.get(p + ".rc_a").shape, (std::vector<int64_t>{4, out, 2}));
  EXPECT_EQ(st.get(p + ".rc_mu").shape, (std::vector<int64_t>{3, out, 2}));
  EXPECT_EQ(st.get(p + ".rc_c").shape, (std::vector<int64_t>{4, in}));
  EXPECT_EQ(dtype_name(st.get(p + ".rc_a").dtype), std::string("F16"));
  // Bit j of a row: byte j / 8, bit j % 8 (64-bit little-endian words, LSB first).
  auto bit = [](const TensorView& t, size_t row_bytes, int i, int j) {
    return (t.data[(size_t)i * row_bytes + j / 8] >> (j % 8)) & 1;
  };
  for (int j = 0; j < in; ++j) EXPECT_EQ(bit(sal, 16, 0, j), j == 3 || j == 70) << j;
  for (int i = 0; i < out; ++i) {
    int t = 0;
    for (int j = 0; j < in; ++j) {
      const uint8_t q = code.data[(size_t)i * in + j];
      ASSERT_EQ(bit(sign, 16, i, j), (q & 4) != 0) << i << "," << j;
      ASSERT_EQ(bit(sparse, 16, i, j), (q & 3) == 2) << i << "," << j;
      if ((q & 3) == 0) {
        ASSERT_EQ(bit(sign2, 8, i, t++), (q & 8) != 0) << i << "," << j;
      }
    }
    for (int j = in; j < 128; ++j) ASSERT_EQ(bit(sign, 16, i, j), 0);
  }
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char* s : {".rc_sign", ".rc_sparse", ".rc_salient", ".rc_sign2", ".rc_a", ".rc_mu", ".rc_c"}) {
    const auto& t = st.get(p + s);
    h = test::fnv1a(t.data, t.nbytes, h);
  }
  EXPECT_EQ(h, 119671173457527303ull);
}

// docs/FORMAT.md's worked example, bytes written out by hand there: the plane
// encoding of a 2×70 linear must produce exactly those bytes.
TEST(PackedFormat, WorkedExampleOfFormatMdMatches) {
  const std::string doc = read_text_file(std::string(BWLA_SOURCE_DIR) + "/docs/FORMAT.md");
  const size_t b = doc.find("<!-- BEGIN golden-planes -->"), e = doc.find("<!-- END golden-planes -->");
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  auto hex_after = [&](const std::string& key) {
    const size_t k = doc.find(key, b);
    EXPECT_LT(k, e) << key;
    const size_t colon = doc.find(':', doc.find(']', k));
    std::vector<uint8_t> v;
    std::istringstream in(doc.substr(colon + 1, doc.find('\n', colon) - colon - 1));
    std::string h;
    while (in >> h) v.push_back((uint8_t)std::stoul(h, nullptr, 16));
    return v;
  };
  const int out = 2, in = 70;
  std::vector<float> w((size_t)out * in);
  for (int j = 0; j < in; ++j) {
    w[j] = j % 3 == 0 ? 0.25f : -0.25f;
    w[in + j] = j < 8 ? 0.5f : -0.5f;
  }
  const BitPlanes p = decompose_rows(w.data(), out, in, 8, "example", "test");
  ASSERT_EQ(p.planes, 1);
  ASSERT_EQ(p.words, 2);
  std::vector<uint8_t> bits(p.bits.size() * 8);
  std::memcpy(bits.data(), p.bits.data(), bits.size());  // little-endian host (static_assert in the writer)
  EXPECT_EQ(bits, hex_after("qweight"));
  auto f16_bytes = [](const std::vector<float>& v) {
    std::vector<uint8_t> o;
    for (float x : v) {
      const uint16_t h = f32_to_f16(x);
      o.push_back(h & 0xff), o.push_back(h >> 8);
    }
    return o;
  };
  EXPECT_EQ(f16_bytes(p.alpha), hex_after("alpha"));
  EXPECT_EQ(f16_bytes(p.mu), hex_after("mu "));
}
