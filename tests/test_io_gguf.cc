// GGUF writer: a small file parsed back by an independent minimal reader
// (magic, version, KV types and values, tensor infos, alignment, data bytes),
// and bad input (unsupported dtype, duplicate keys/tensors, bad shapes, an
// unwritable path) raising bwla::Error with the key / file in the message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/half.h"
#include "error_of.h"
#include "gguf_test_reader.h"
#include "io/gguf_writer.h"
#include "tmpdir.h"

using namespace bwla;

namespace {
using test::error_of;

std::vector<float> iota_f(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * ((float)i - (float)n / 3.f);
  return v;
}

}  // namespace

TEST(GgufWriter, RoundTripMetadataTensorsAlignment) {
  test::TempDir td;
  const std::string path = td.file("small.gguf");
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 5);
  w.set_i32("test.neg", -7);
  w.set_u64("test.big", 1ull << 40);
  w.set_f32("llama.rope.freq_base", 10000.f);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "\xe2\x96\x81the", ""});
  w.set_f32_array("tokenizer.ggml.scores", {0.f, -1.5f, 2.25f});
  w.set_i32_array("tokenizer.ggml.token_type", {3, 1, 6});
  auto a = iota_f(3 * 5, 0.25f);  // [3, 5]: ne = {5, 3}
  auto b = iota_f(7, 1.0f);       // 7 floats = 28 bytes: next tensor must be padded to 32
  auto c = iota_f(2 * 3, 0.5f);   // F16
  w.add_tensor("a.weight", GgmlType::F32, {3, 5}, a.data());
  w.add_tensor("b.weight", GgmlType::F32, {7}, b.data());
  w.add_tensor("c.weight", GgmlType::F16, {2, 3}, [&](float* o) {
    std::memcpy(o, c.data(), c.size() * sizeof(float));
  });
  ASSERT_EQ(w.num_kv(), 9u);
  w.write(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  auto f = gguf_test::read(path);
  EXPECT_EQ(f.magic, 0x46554747u);
  EXPECT_EQ(std::string((const char*)f.bytes.data(), 4), "GGUF");
  EXPECT_EQ(f.version, 3u);
  ASSERT_EQ(f.kv.size(), 9u);
  EXPECT_EQ(f.kv_order.front(), "general.architecture");  // insertion order kept
  EXPECT_EQ(f.kv["general.architecture"].type, 8u);
  EXPECT_EQ(f.kv["general.architecture"].s, "llama");
  EXPECT_EQ(f.kv["llama.block_count"].type, 4u);
  EXPECT_EQ(f.kv["llama.block_count"].u, 5u);
  EXPECT_EQ(f.kv["test.neg"].type, 5u);
  EXPECT_EQ(f.kv["test.neg"].i, -7);
  EXPECT_EQ(f.kv["test.big"].type, 10u);
  EXPECT_EQ(f.kv["test.big"].u, 1ull << 40);
  EXPECT_EQ(f.kv["llama.rope.freq_base"].type, 6u);
  EXPECT_EQ(f.kv["llama.rope.freq_base"].f, 10000.0);
  EXPECT_EQ(f.kv["tokenizer.ggml.add_bos_token"].type, 7u);
  EXPECT_EQ(f.kv["tokenizer.ggml.add_bos_token"].u, 1u);
  auto& toks = f.kv["tokenizer.ggml.tokens"];
  EXPECT_EQ(toks.type, 9u);
  EXPECT_EQ(toks.elem_type, 8u);
  EXPECT_EQ(toks.strs, (std::vector<std::string>{"<s>", "\xe2\x96\x81the", ""}));
  EXPECT_EQ(f.kv["tokenizer.ggml.scores"].elem_type, 6u);
  EXPECT_EQ(f.kv["tokenizer.ggml.scores"].nums, (std::vector<double>{0.0, -1.5, 2.25}));
  EXPECT_EQ(f.kv["tokenizer.ggml.token_type"].elem_type, 5u);
  EXPECT_EQ(f.kv["tokenizer.ggml.token_type"].nums, (std::vector<double>{3, 1, 6}));
  EXPECT_FALSE(f.kv.count("general.alignment"));  // default 32 is implicit

  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.tensors[0].name, "a.weight");
  EXPECT_EQ(f.tensors[0].ne, (std::vector<uint64_t>{5, 3}));  // innermost first
  EXPECT_EQ(f.tensors[0].type, 0u);
  EXPECT_EQ(f.tensors[1].ne, (std::vector<uint64_t>{7}));
  EXPECT_EQ(f.tensors[2].type, 1u);
  EXPECT_EQ(f.tensors[2].ne, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(f.data_start % 32, 0u);
  EXPECT_EQ(f.tensors[0].offset, 0u);
  EXPECT_EQ(f.tensors[1].offset, 64u);   // 60 bytes rounded up to 32
  EXPECT_EQ(f.tensors[2].offset, 96u);   // 64 + 28 -> 96
  for (auto& t : f.tensors) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  // Padding between the header and data, and between tensors, is zero.
  for (size_t k = 64 + 28; k < 96; ++k) EXPECT_EQ(f.bytes[f.data_start + k], 0) << k;
  EXPECT_GE(f.bytes.size(), f.data_start + 96 + 12);
  EXPECT_EQ(f.bytes.size() % 32, 0u);

  EXPECT_EQ(std::memcmp(f.tensor_data(f.tensors[0]), a.data(), a.size() * 4), 0);
  EXPECT_EQ(std::memcmp(f.tensor_data(f.tensors[1]), b.data(), b.size() * 4), 0);
  const uint8_t* ch = f.tensor_data(f.tensors[2]);
  for (size_t i = 0; i < c.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, ch + 2 * i, 2);
    EXPECT_EQ(h, f32_to_f16(c[i])) << i;
    EXPECT_EQ(f16_to_f32(h), c[i]) << i;  // these values are exact in fp16
  }
}

TEST(GgufWriter, CustomAlignmentIsRecordedAndHonoured) {
  test::TempDir td;
  const std::string path = td.file("a64.gguf");
  GgufWriter w(64);
  std::vector<float> x(3, 1.f), y(5, 2.f);
  w.add_tensor("x", GgmlType::F32, {3}, x.data());
  w.add_tensor("y", GgmlType::F16, {5}, y.data());
  w.write(path);
  auto f = gguf_test::read(path);
  ASSERT_TRUE(f.kv.count("general.alignment"));
  EXPECT_EQ(f.kv["general.alignment"].type, 4u);
  EXPECT_EQ(f.alignment, 64u);
  EXPECT_EQ(f.data_start % 64, 0u);
  EXPECT_EQ(f.tensors[1].offset, 64u);
  uint16_t h;
  std::memcpy(&h, f.tensor_data(f.tensors[1]), 2);
  EXPECT_EQ(f16_to_f32(h), 2.f);
}

TEST(GgufWriter, BadInputNamesKeyOrFile) {
  EXPECT_NE(error_of([] { parse_ggml_type("q4_0", "--dtype"); }).find("q4_0"), std::string::npos);
  EXPECT_NE(error_of([] { parse_ggml_type("bf16", "--dtype"); }).find("--dtype"),
            std::string::npos);
  EXPECT_EQ(parse_ggml_type("F16", "x"), GgmlType::F16);
  EXPECT_EQ(parse_ggml_type("f32", "x"), GgmlType::F32);

  GgufWriter w;
  w.set_u32("llama.block_count", 1);
  EXPECT_NE(error_of([&] { w.set_u32("llama.block_count", 2); }).find("llama.block_count"),
            std::string::npos);
  std::vector<float> v(4, 0.f);
  w.add_tensor("t", GgmlType::F32, {4}, v.data());
  EXPECT_NE(error_of([&] { w.add_tensor("t", GgmlType::F32, {4}, v.data()); }).find("'t'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("z", GgmlType::F32, {0, 4}, v.data()); }).find("'z'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("five", GgmlType::F32, {1, 1, 1, 1, 1}, v.data()); })
                .find("five"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor(std::string(80, 'n'), GgmlType::F32, {4}, v.data()); })
                .find("63"),
            std::string::npos);
  EXPECT_NE(error_of([] { GgufWriter bad(12); }).find("12"), std::string::npos);

  const std::string nowhere = "/nonexistent-dir-bwla/x.gguf";
  EXPECT_NE(error_of([&] { w.write(nowhere); }).find("/nonexistent-dir-bwla/x.gguf"),
            std::string::npos);
}
