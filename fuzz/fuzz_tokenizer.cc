// libFuzzer target for tokenizer.json -> Tokenizer (Tokenizer::load_dir), then
// encode/decode of text taken from the input.
// Input: tokenizer.json [NUL text [NUL tokenizer_config.json [NUL config.json]]].
// Without a text part the sample texts below and the JSON's own first bytes are
// encoded. Loading may throw bwla::Error (a rejection), and so may encode (a
// regex that fails on the text); decoding ids that encode returned must not.
// Run: build-fuzz/fuzz_tokenizer fuzz/corpus/tokenizer -max_total_time=60
#include <cstdint>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

namespace {

void check_ids(const bwla::Tokenizer& tok, const std::vector<int>& ids) {
  for (int id : ids)
    if (id < 0 || id >= tok.vocab_size()) bwla_fuzz::die("encode returned an id outside the vocabulary");
}

void exercise(const bwla::Tokenizer& tok, const std::string& text) {
  std::vector<int> with, without;
  try {
    with = tok.encode(text, true);
    without = tok.encode(text, false);
  } catch (const bwla::Error&) {
    return;
  }
  check_ids(tok, with);
  check_ids(tok, without);
  // No bwla::Error is legitimate from here on: every id is in range.
  (void)tok.decode(with, false);
  (void)tok.decode(with, true);
  (void)tok.decode(without, false);
  for (int id : without) (void)tok.token_bytes(id);
  // Ids chosen by the input's bytes, not by encode: any in-range id decodes.
  std::vector<int> arbitrary;
  const int n = tok.vocab_size();
  for (size_t i = 0; i < text.size() && i < 64; ++i)
    arbitrary.push_back((int)(((unsigned)(unsigned char)text[i] * 2654435761u) % (unsigned)n));
  (void)tok.decode(arbitrary, false);
  (void)tok.decode(arbitrary, true);
}

}  // namespace

// JSON-aware mutations of the tokenizer.json part (up to the first NUL).
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned seed) {
  const void* z = std::memchr(data, 0, size);
  size_t end = z ? (size_t)(static_cast<const uint8_t*>(z) - data) : size;
  return bwla_fuzz::mutate(data, size, max_size, seed, 0, end);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = bwla_fuzz::scratch_dir();
  auto parts = bwla_fuzz::split_nul(data, size, 4);
  bwla_fuzz::write_file(dir, "tokenizer.json", parts[0]);
  const char* side[] = {"tokenizer_config.json", "config.json"};
  for (size_t k = 0; k < 2; ++k) {
    if (parts.size() > k + 2) bwla_fuzz::write_file(dir, side[k], parts[k + 2]);
    else bwla_fuzz::remove_file(dir, side[k]);
  }
  std::unique_ptr<bwla::Tokenizer> tok;
  try {
    tok = bwla::Tokenizer::load_dir(dir);
  } catch (const bwla::Error&) {
    return 0;
  }
  if (tok->vocab_size() <= 0) bwla_fuzz::die("loaded a tokenizer with an empty vocabulary");
  for (int id : {tok->bos_id(), tok->eos_id()})
    if (id < -1 || id >= tok->vocab_size()) bwla_fuzz::die("BOS/EOS id outside the vocabulary");
  (void)tok->kind();
  if (parts.size() > 1) {
    exercise(*tok, std::string(parts[1]));
  } else {
    for (const char* s : {"Hello world! It's 2024.", "  two  spaces\tand\na newline ",
                          "<s>Once upon a time</s>", "caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x99\x82 \xff\xfe bad utf-8", ""})
      exercise(*tok, s);
    exercise(*tok, std::string(parts[0].substr(0, 256)));
  }
  return 0;
}
