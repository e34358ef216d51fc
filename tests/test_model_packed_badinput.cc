// Truncated or tampered packed models: clear bwla::Error naming the file, the
// tensor key and the shapes; never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "io/mmap.h"
#include "model/packed_model.h"
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
    Model::load(dir);
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
