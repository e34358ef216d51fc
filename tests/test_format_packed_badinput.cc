// Truncated or tampered packed models: clear bwla::Error naming the file, the
// tensor key and the shapes; never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "format/model_loader.h"
#include "format/packed_writer.h"
#include "io/mmap.h"
#include "packed_testing.h"
#include "tmpdir.h"

using namespace bwla;
namespace fs = std::filesystem;

namespace {

struct PackedBadInput : ::testing::Test {
  test::TempDir td;
  std::string packed;
  void SetUp() override {
    test::write_tiny_fake_quant(td.file("fq"));
    packed = td.file("packed");
    pack_quantized_dir(td.file("fq"), packed);
  }
  // A copy of the packed dir whose tensors pass through `edit` (which may change
  // dtype, shape and bytes, or return false to drop the tensor).
  using Edit = std::function<bool(const std::string&, DType&, std::vector<int64_t>&,
                                  std::vector<uint8_t>&)>;
  std::string rewrite(const std::string& name, const Edit& edit) {
    const std::string out = td.file(name);
    fs::create_directories(out);
    fs::copy_file(packed + "/config.json", out + "/config.json");
    SafeTensorsFile f(packed + "/model.safetensors");
    SafeTensorsWriter w;
    for (auto& n : f.names()) {
      if (n.rfind("__pad", 0) == 0) continue;
      const TensorView& t = f.get(n);
      DType d = t.dtype;
      auto shape = t.shape;
      std::vector<uint8_t> b(t.data, t.data + t.nbytes);
      if (!edit(n, d, shape, b)) continue;
      w.add(n, d, shape, b.data(), b.size());
    }
    w.write(out + "/model.safetensors");
    return out;
  }
  std::string with_config(const std::string& name, const std::function<void(json&)>& f) {
    const std::string out = td.file(name);
    fs::create_directories(out);
    fs::copy_file(packed + "/model.safetensors", out + "/model.safetensors");
    json c = load_json_file(packed + "/config.json");
    f(c);
    write_text_file_atomic(out + "/config.json", c.dump(2));
    return out;
  }
};

std::string load_error(const std::string& dir) {
  try {
    load_model(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_HAS(msg, s) EXPECT_NE((msg).find(s), std::string::npos) << (msg)

TEST_F(PackedBadInput, LoadsWhenUntouched) { EXPECT_EQ(load_error(rewrite("same", [](auto&, auto&, auto&, auto&) { return true; })), "(no error)"); }

TEST_F(PackedBadInput, TruncatedFile) {
  const std::string p = packed + "/model.safetensors";
  fs::resize_file(p, fs::file_size(p) - 100);
  const std::string m = load_error(packed);
  EXPECT_HAS(m, "model.safetensors");
}

TEST_F(PackedBadInput, TamperedHeaderOffsets) {
  const std::string p = packed + "/model.safetensors";
  std::string bytes = read_text_file(p);
  uint64_t hlen;
  std::memcpy(&hlen, bytes.data(), 8);
  json h = json::parse(bytes.substr(8, hlen));
  auto& off = h["model.layers.0.mlp.up_proj.qweight"]["data_offsets"];
  off[1] = off[1].get<uint64_t>() + 8;  // size no longer matches dtype × shape
  std::string s = h.dump();
  ASSERT_LE(s.size(), hlen);
  s.resize(hlen, ' ');
  bytes.replace(8, hlen, s);
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  const std::string m = load_error(packed);
  EXPECT_HAS(m, "model.safetensors");
  EXPECT_HAS(m, "model.layers.0.mlp.up_proj.qweight");
}

TEST_F(PackedBadInput, UnknownVersion) {
  const std::string m = load_error(with_config("v4", [](json& c) { c["quantization_config"]["format_version"] = kPackedFormatVersion + 1; }));
  EXPECT_HAS(m, "config.json");
  EXPECT_HAS(m, fmt::format("format_version {}", kPackedFormatVersion + 1));
}

TEST_F(PackedBadInput, BitsConfigMismatch) {
  const std::string m = load_error(with_config("a16", [](json& c) { c["quantization_config"]["abits"] = 16; }));
  EXPECT_HAS(m, "abits 16");
}

TEST_F(PackedBadInput, QweightShapeMismatch) {
  const std::string m = load_error(rewrite("shape", [](const std::string& n, DType&, auto& shape, auto&) {
    if (n == "model.layers.0.mlp.up_proj.qweight") shape = {1, 192, 8};  // same bytes
    return true;
  }));
  EXPECT_HAS(m, "model.layers.0.mlp.up_proj.qweight");
  EXPECT_HAS(m, "[1, 192, 8]");
  EXPECT_HAS(m, "[1, 96, 16]");
  EXPECT_HAS(m, "model.safetensors");
}

TEST_F(PackedBadInput, PlaneCountMismatch) {
  const std::string m = load_error(rewrite("planes", [](const std::string& n, DType&, auto& shape, auto& b) {
    if (n == "model.layers.1.self_attn.q_proj.alpha") {
      shape = {2, 80, 1};
      b.resize(b.size() * 2);
    }
    return true;
  }));
  EXPECT_HAS(m, "model.layers.1.self_attn.q_proj.alpha");
  EXPECT_HAS(m, "[2, 80, 1]");
  EXPECT_HAS(m, "[1, 80, 1]");
}

TEST_F(PackedBadInput, ScaleBlocksDisagreeWithConfig) {
  const std::string m = load_error(with_config("blk", [](json& c) { c["quantization_config"]["scale_block_cols"] = 128; }));
  EXPECT_HAS(m, "model.layers.1.mlp.gate_proj.alpha");
  EXPECT_HAS(m, "scale_block_cols 128");
}

TEST_F(PackedBadInput, WrongScaleDtype) {
  const std::string m = load_error(rewrite("dtype", [](const std::string& n, DType& d, auto&, auto&) {
    if (n == "model.layers.1.mlp.gate_proj.mu") d = DType::I16;
    return true;
  }));
  EXPECT_HAS(m, "model.layers.1.mlp.gate_proj.mu");
  EXPECT_HAS(m, "I16");
}

TEST_F(PackedBadInput, NonFiniteScale) {
  const std::string m = load_error(rewrite("nan", [](const std::string& n, DType&, auto&, auto& b) {
    if (n == "model.layers.1.self_attn.k_proj.mu") b[2 * 5 + 1] = 0x7e;  // F16 NaN at row 5
    return true;
  }));
  EXPECT_HAS(m, "model.layers.1.self_attn.k_proj.mu");
  EXPECT_HAS(m, "non-finite");
}

TEST_F(PackedBadInput, PaddingBitsSet) {
  const std::string m = load_error(rewrite("pad", [](const std::string& n, DType&, auto&, auto& b) {
    if (n == "model.layers.1.self_attn.o_proj.qweight") b[8 + 3] |= 0x40;  // row 0, column 64+30 ≥ 80
    return true;
  }));
  EXPECT_HAS(m, "model.layers.1.self_attn.o_proj.qweight");
  EXPECT_HAS(m, "padding");
}

TEST_F(PackedBadInput, MissingSideTensor) {
  const std::string m = load_error(rewrite("missing", [](const std::string& n, DType&, auto&, auto&) {
    return n != "model.layers.0.self_attn.v_proj.act_clip";
  }));
  EXPECT_HAS(m, "model.layers.0.self_attn.v_proj.act_clip");
}

TEST_F(PackedBadInput, LowRankShapeMismatch) {
  const std::string m = load_error(rewrite("psp", [](const std::string& n, DType&, auto& shape, auto&) {
    if (n == "model.layers.0.self_attn.v_proj.psp_b") shape = {4, 60};  // 3×80 → 4×60
    return true;
  }));
  EXPECT_HAS(m, "model.layers.0.self_attn.v_proj.psp_b");
  EXPECT_HAS(m, "[4, 60]");
}

TEST_F(PackedBadInput, PackRefusesWhatItCannotRepresent) {
  // Already packed, and a fake-quant model without activation quantization.
  EXPECT_THROW(pack_quantized_dir(packed, td.file("again")), Error);
  test::write_tiny_fake_quant(td.file("a16"), 16);
  try {
    pack_quantized_dir(td.file("a16"), td.file("x"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "abits is 16");
  }
  EXPECT_FALSE(fs::exists(td.file("x")));
}

}  // namespace

// int8 PSP factors (format 3): the scale tensors are required and must be finite.
TEST_F(PackedBadInput, Int8PspWithoutOrWithBadScales) {
  PackOptions po;
  po.psp_dtype = PspStorage::I8;
  packed = td.file("packed-psp8");
  pack_quantized_dir(td.file("fq"), packed, po);
  EXPECT_EQ(load_json_file(packed + "/config.json")["quantization_config"]["format_version"], 3);
  EXPECT_EQ(load_error(rewrite("psp8-same", [](auto&, auto&, auto&, auto&) { return true; })), "(no error)");
  const std::string name = "model.layers.1.mlp.down_proj.psp_b_scale";
  std::string m = load_error(rewrite("psp8-noscale", [&](const std::string& n, auto&, auto&, auto&) {
    return n != name;
  }));
  EXPECT_HAS(m, name);
  m = load_error(rewrite("psp8-inf", [&](const std::string& n, DType& d, auto&, std::vector<uint8_t>& b) {
    if (n == name) {
      EXPECT_EQ(d, DType::F16);
      b[0] = 0x00, b[1] = 0x7C;  // +inf
    }
    return true;
  }));
  EXPECT_HAS(m, "non-finite");
  EXPECT_HAS(m, "model.layers.1.mlp.down_proj");
  m = load_error(rewrite("psp8-shape", [&](const std::string& n, auto&, std::vector<int64_t>& shape, auto&) {
    if (n == "model.layers.1.mlp.down_proj.psp_b") std::swap(shape[0], shape[1]);
    return true;
  }));
  EXPECT_HAS(m, "model.layers.1.mlp.down_proj.psp_b");
}

// ARB-RC linears (format 4): the packed form reproduces the fake-quant linear,
// and every tensor of the form is checked at load.
struct RcBadInput : PackedBadInput {
  void SetUp() override {
    test::write_tiny_fake_quant(td.file("fq"), 6, true, /*rc=*/true);
    packed = td.file("packed");
    pack_quantized_dir(td.file("fq"), packed);
  }
  const std::string o = "model.layers.1.self_attn.o_proj";
};

TEST_F(RcBadInput, PacksAsArbRcAndMatchesTheFakeQuantLinear) {
  EXPECT_EQ(load_json_file(packed + "/config.json")["quantization_config"]["format_version"], 4);
  auto fm = load_model(td.file("fq"));
  auto pm = load_model(packed);
  const Linear& f = *fm->layers[1].lin[kO];
  const Linear& p = *pm->layers[1].lin[kO];
  EXPECT_NE(p.describe().find("column groups"), std::string::npos) << p.describe();
  Rng r(3);
  const int n = 3, in = f.in_features(), out = f.out_features();
  std::vector<float> x((size_t)n * in), a((size_t)n * out), b((size_t)n * out);
  for (auto& v : x) v = (float)r.normal();
  f.forward(x.data(), n, a.data());
  p.forward(x.data(), n, b.data());
  // fp16-exact factors: only the summation order differs.
  EXPECT_LE(test::max_diff(a, b), 1e-5 * test::max_abs(a));
}

TEST_F(RcBadInput, PartialTensorSet) {
  for (const char* s : {".rc_sparse", ".rc_c", ".rc_block_cols", ".rc_salient"}) {
    const std::string m = load_error(rewrite(std::string("drop") + s, [&](const std::string& n, auto&, auto&, auto&) {
      return n != o + s;
    }));
    EXPECT_HAS(m, o + s);
  }
  // The sign rows gone: the rest is a partial ARB-RC linear, not bit planes.
  const std::string m = load_error(rewrite("nosign", [&](const std::string& n, auto&, auto&, auto&) {
    return n != o + ".rc_sign";
  }));
  EXPECT_HAS(m, o + ".rc_sign");
}

TEST_F(RcBadInput, PaddingSparseSalientAndNonFinite) {
  std::string m = load_error(rewrite("pad", [&](const std::string& n, DType&, auto&, auto& b) {
    if (n == o + ".rc_sign") b[8 + 3] |= 0x40;  // row 0, column 64 + 30 ≥ 80
    return true;
  }));
  EXPECT_HAS(m, o + ".rc_sign");
  EXPECT_HAS(m, "padding");
  m = load_error(rewrite("sparse-in-salient", [&](const std::string& n, DType&, auto&, auto& b) {
    if (n == o + ".rc_sparse") b[0] |= 0x08;  // row 0, column 3 (salient)
    return true;
  }));
  EXPECT_HAS(m, o + ".rc_sparse");
  EXPECT_HAS(m, "salient");
  m = load_error(rewrite("nan", [&](const std::string& n, DType& d, auto&, auto& b) {
    if (n == o + ".rc_c") {
      EXPECT_EQ(d, DType::F16);
      b[2 * 7] = 0x00, b[2 * 7 + 1] = 0x7C;  // +inf
    }
    return true;
  }));
  EXPECT_HAS(m, o + ".rc_c");
  EXPECT_HAS(m, "non-finite");
  m = load_error(rewrite("shape", [&](const std::string& n, auto&, std::vector<int64_t>& shape, auto&) {
    if (n == o + ".rc_a") shape = {4, 40, 4};
    return true;
  }));
  EXPECT_HAS(m, o + ".rc_a");
  EXPECT_HAS(m, "[4, 40, 4]");
  // The one-value form of the column scales must say 1 (all scales 1).
  m = load_error(rewrite("c-one", [&](const std::string& n, DType& d, std::vector<int64_t>& shape, auto& b) {
    if (n == o + ".rc_c") {
      shape = {1};
      b = {0x00, 0x40};  // F16 2.0
    }
    return true;
  }));
  EXPECT_HAS(m, o + ".rc_c");
  EXPECT_HAS(m, "must hold 1");
  m = load_error(with_config("v3", [](json& c) { c["quantization_config"]["format_version"] = 3; }));
  EXPECT_HAS(m, "format 4");
}

TEST_F(RcBadInput, FakeQuantFactorsMustBeWholeAndMatchTheWeights) {
  // A fake-quant directory whose factors were changed, or lost one tensor.
  const std::string fq = td.file("fq");
  auto copy_fq = [&](const std::string& name, const std::function<bool(const std::string&, std::vector<uint8_t>&)>& edit) {
    const std::string out = td.file(name);
    fs::create_directories(out);
    fs::copy_file(fq + "/config.json", out + "/config.json");
    SafeTensorsFile f(fq + "/model.safetensors");
    SafeTensorsWriter w;
    for (auto& n : f.names()) {
      if (n.rfind("__pad", 0) == 0) continue;
      const TensorView& t = f.get(n);
      std::vector<uint8_t> b(t.data, t.data + t.nbytes);
      if (!edit(n, b)) continue;
      w.add(n, t.dtype, t.shape, b.data(), b.size());
    }
    w.write(out + "/model.safetensors");
    return out;
  };
  const std::string changed = copy_fq("fq-changed", [&](const std::string& n, std::vector<uint8_t>& b) {
    if (n == o + ".rc_c") b[4 * (2 * 80 + 10) + 3] ^= 0x10;  // concentrated plane, column 10 (F32)
    return true;
  });
  try {
    pack_quantized_dir(changed, td.file("p1"));
    ADD_FAILURE() << "packed factors that do not match the weights";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "do not reproduce");
    EXPECT_HAS(std::string(e.what()), o);
  }
  EXPECT_FALSE(fs::exists(td.file("p1")));
  const std::string partial = copy_fq("fq-partial", [&](const std::string& n, auto&) { return n != o + ".rc_mu"; });
  EXPECT_HAS(load_error(partial), o + ".rc_mu");
  EXPECT_THROW(pack_quantized_dir(partial, td.file("p2")), Error);
  // Codes the format does not have: a group 3, a second sign outside the salient group.
  const std::string badcode = copy_fq("fq-code", [&](const std::string& n, std::vector<uint8_t>& b) {
    if (n == o + ".rc_code") b[5] = 3;
    return true;
  });
  EXPECT_HAS(load_error(badcode), "invalid code");
}
