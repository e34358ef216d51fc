// safetensors: round trip, alignment, and headers that lie.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/half.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "tmpdir.h"

using namespace bwla;

namespace {

void write_raw(const std::string& path, const std::string& header, size_t data_bytes) {
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header.size();
  f.write((const char*)&n, 8);
  f.write(header.data(), (std::streamsize)n);
  std::string zeros(data_bytes, '\0');
  f.write(zeros.data(), (std::streamsize)zeros.size());
}

std::string error_of(const std::string& path) {
  try {
    SafeTensorsFile f(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SafeTensors, RoundTripAlignedAndTyped) {
  test::TempDir td;
  SafeTensorsWriter w(64);
  std::vector<float> a(15);
  for (int i = 0; i < 15; ++i) a[i] = 0.25f * i - 1.f;
  w.add_f32("a", {3, 5}, a.data());
  w.add_from_f32("b16", DType::BF16, {15}, a.data());
  w.add_from_f32("h16", DType::F16, {5, 3}, a.data());
  uint8_t u[3] = {1, 2, 250};
  w.add("u", DType::U8, {3}, u, 3);
  w.set_metadata("format", "pt");
  w.write(td.file("m.safetensors"));
  SafeTensorsFile f(td.file("m.safetensors"));
  EXPECT_EQ(f.names().size(), 4u);  // padding tensors are hidden
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.get("a").shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(f.get("a").to_f32(), a);
  EXPECT_EQ(f.get("b16").to_f32(), a);  // multiples of 0.25 are exact in bf16
  EXPECT_EQ(f.get("h16").to_f32(), a);
  EXPECT_EQ(std::memcmp(f.get("u").data, u, 3), 0);
  for (auto n : f.names())
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f.get(n).data) % 64, 0u) << n;  // mmap is page aligned
  EXPECT_THROW(f.get("u").to_f32(), Error);  // integer tensor is not float
  EXPECT_THROW(f.get("missing"), Error);
}

TEST(SafeTensors, HalfConversionsRoundTrip) {
  for (float v : {0.f, 1.f, -2.5f, 65504.f, 6.1035156e-05f, 5.9604645e-08f, -0.0f}) {
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v) << v;
  }
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);  // overflow to inf
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(3.140625f)), 3.140625f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // ties to even
}

TEST(SafeTensors, LyingHeadersAreErrors) {
  test::TempDir td;
  const std::string p = td.file("bad.safetensors");
  // Offsets past the end of the data.
  write_raw(p, R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  EXPECT_NE(error_of(p).find("past the end"), std::string::npos) << error_of(p);
  // Length inconsistent with dtype x shape.
  write_raw(p, R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16);
  EXPECT_NE(error_of(p).find("needs 12 bytes"), std::string::npos) << error_of(p);
  // Overlapping ranges.
  write_raw(p,
            R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            16);
  EXPECT_NE(error_of(p).find("overlap"), std::string::npos) << error_of(p);
  // Unsupported dtype.
  write_raw(p, R"({"x":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2);
  EXPECT_NE(error_of(p).find("unsupported dtype"), std::string::npos) << error_of(p);
  // Reversed offsets.
  write_raw(p, R"({"x":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4);
  EXPECT_NE(error_of(p).find("reversed"), std::string::npos) << error_of(p);
  // Header longer than the file.
  {
    std::ofstream f(p, std::ios::binary);
    uint64_t n = 1000;
    f.write((const char*)&n, 8);
    f.write("{}", 2);
  }
  EXPECT_NE(error_of(p).find("exceeds file size"), std::string::npos) << error_of(p);
  // Not JSON.
  write_raw(p, "{not json", 0);
  EXPECT_NE(error_of(p).find("invalid JSON"), std::string::npos) << error_of(p);
  // Too small / missing file.
  { std::ofstream f(p, std::ios::binary); f.write("abc", 3); }
  EXPECT_NE(error_of(p).find("too small"), std::string::npos) << error_of(p);
  EXPECT_NE(error_of(td.file("nope.safetensors")).find("cannot open"), std::string::npos);
  // Every message names the file.
  write_raw(p, R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  EXPECT_NE(error_of(p).find(p), std::string::npos);
}

TEST(SafeTensors, ShardedIndex) {
  test::TempDir td;
  std::vector<float> a = {1, 2, 3}, b = {4, 5};
  {
    SafeTensorsWriter w;
    w.add_f32("a", {3}, a.data());
    w.write(td.file("model-00001-of-00002.safetensors"));
  }
  {
    SafeTensorsWriter w;
    w.add_f32("b", {2}, b.data());
    w.write(td.file("model-00002-of-00002.safetensors"));
  }
  json idx = {{"metadata", json::object()},
              {"weight_map",
               {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  write_text_file_atomic(td.file("model.safetensors.index.json"), idx.dump());
  TensorStore st(td.str());
  EXPECT_EQ(st.get("a").to_f32(), a);
  EXPECT_EQ(st.get("b").to_f32(), b);
  // An index pointing at a tensor that is not in the shard.
  idx["weight_map"]["c"] = "model-00001-of-00002.safetensors";
  write_text_file_atomic(td.file("model.safetensors.index.json"), idx.dump());
  EXPECT_THROW(TensorStore{td.str()}, Error);
  test::TempDir empty;
  EXPECT_THROW(TensorStore{empty.str()}, Error);
}

TEST(SafeTensors, DuplicateTensorNamesAreRefused) {
  test::TempDir td;
  const std::string p = td.file("dup.safetensors");
  // Before: the second entry silently won, so one file could load two ways.
  write_raw(p,
            R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
            R"("x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            8);
  const std::string e = error_of(p);
  EXPECT_NE(e.find("'x' appears twice"), std::string::npos) << e;
  EXPECT_NE(e.find("dup.safetensors"), std::string::npos) << e;
}

TEST(SafeTensors, NonFiniteValuesAreRefusedOnConversion) {
  test::TempDir td;
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    SafeTensorsWriter w;
    std::vector<float> v = {1.f, 2.f, std::numeric_limits<float>::infinity(), 4.f};
    w.add_from_f32("t", dt, {4}, v.data());
    w.add_f32("ok", {1}, v.data());
    w.write(td.file("nf.safetensors"));
    SafeTensorsFile f(td.file("nf.safetensors"));
    std::string e;
    try {
      f.get("t").to_f32();
    } catch (const Error& ex) {
      e = ex.what();
    }
    EXPECT_NE(e.find("non-finite"), std::string::npos) << dtype_name(dt) << ": " << e;
    EXPECT_NE(e.find("index 2"), std::string::npos) << e;
    EXPECT_EQ(f.get("ok").to_f32()[0], 1.f);
  }
}

TEST(SafeTensors, StoreReportsTensorsNobodyRead) {
  test::TempDir td;
  SafeTensorsWriter w;
  float x = 1;
  for (const char* n : {"a", "b", "c"}) w.add_f32(n, {1}, &x);
  w.write(td.file("model.safetensors"));
  TensorStore st(td.str());
  EXPECT_EQ(st.unused(), (std::vector<std::string>{"a", "b", "c"}));
  st.get("b");
  st.mark_used("c");
  EXPECT_TRUE(st.has("a"));  // has() is not a use
  EXPECT_EQ(st.unused(), (std::vector<std::string>{"a"}));
}

}  // namespace

// The buffer-level parser (also the fuzz target's entry point): huge shapes
// whose byte counts overflow 64 and 128 bits, and headers that end mid-file.
TEST(SafeTensors, ParserRejectsOverflowingShapesAndShortBuffers) {
  auto image = [](const std::string& header, size_t data_bytes) {
    std::string s(8, '\0');
    uint64_t n = header.size();
    std::memcpy(s.data(), &n, 8);
    return s + header + std::string(data_bytes, '\x01');
  };
  const std::string big = "4611686018427387904";  // 2^62
  std::string h = "{\"t\":{\"dtype\":\"F32\",\"shape\":[" + big + "," + big + "," + big +
                  "],\"data_offsets\":[0,16]}}";
  std::string f = image(h, 16);
  EXPECT_THROW(bwla::parse_safetensors((const uint8_t*)f.data(), f.size(), "x"), bwla::Error);
  // Zero anywhere in the shape means zero bytes, even next to huge dimensions.
  h = "{\"t\":{\"dtype\":\"F32\",\"shape\":[" + big + ",0," + big + "],\"data_offsets\":[0,0]}}";
  f = image(h, 0);
  auto idx = bwla::parse_safetensors((const uint8_t*)f.data(), f.size(), "x");
  EXPECT_EQ(idx.tensors.at("t").nbytes, 0u);
  // A valid header over a buffer cut short.
  h = "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
  f = image(h, 16);
  EXPECT_NO_THROW(bwla::parse_safetensors((const uint8_t*)f.data(), f.size(), "x"));
  for (size_t cut : {size_t(0), size_t(7), size_t(8), size_t(20), f.size() - 1}) {
    try {
      bwla::parse_safetensors((const uint8_t*)f.data(), cut, "cut.safetensors");
      ADD_FAILURE() << "no error at cut " << cut;
    } catch (const bwla::Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.safetensors"), std::string::npos) << e.what();
    }
  }
}
