// Export of a Llama-architecture Hugging Face checkpoint to GGUF (the format
// llama.cpp loads), for side-by-side speed/quality comparisons.
//
// Naming (GGUF "llama" architecture): token_embd, blk.N.{attn_norm, attn_q,
// attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down},
// output_norm, output (absent when embeddings are tied). Norm vectors are
// always F32; matrices F16 or F32.
//
// RoPE convention: HF Llama rotates the pairs (j, j + d/2) of each head
// ("rotate half"); GGUF llama rotates adjacent pairs (2i, 2i+1). The rows of
// q_proj and k_proj are therefore permuted within each head so that HF row
// h·d/2 + i (h ∈ {0,1}) becomes row 2i + h. q·k is unchanged because q and k
// get the same permutation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/gguf_writer.h"

namespace bwla {

// Token list and tokenizer settings in GGUF's terms.
struct GgufVocab {
  std::string model;  // "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  std::string pre;    // tokenizer.ggml.pre for gpt2 ("smollm", "gpt-2", "default")
  std::vector<std::string> tokens;
  std::vector<float> scores;       // llama only
  std::vector<int32_t> types;      // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<std::string> merges; // gpt2 only, "left right"
  int bos = -1, eos = -1, unk = -1, pad = -1;
  bool add_bos = false;
  int dropped = 0;     // added tokens past the model's vocab_size removed by fit_vocab
  std::string source;  // file it came from
};

// SentencePiece model protobuf (tokenizer.model): pieces, scores and types.
GgufVocab vocab_from_sentencepiece_model(const std::string& path);
// tokenizer.json (+ tokenizer_config.json/config.json via bwla's tokenizer
// loader for BOS/EOS/add_bos). SentencePiece-style BPE (byte_fallback, "▁")
// becomes "llama" with scores -rank of each token's merge; byte-level BPE
// becomes "gpt2" with its merges.
GgufVocab vocab_from_tokenizer_json(const std::string& dir);

// Pads vocab to n_vocab with unused "[PAD<id>]" tokens. Trailing added/special
// tokens past n_vocab (no embedding row) are dropped; any other excess throws
// naming the source.
void fit_vocab(GgufVocab& v, int n_vocab);

// In-place HF -> GGUF row permutation of a q/k projection [n_heads*head_dim, cols].
void permute_rope_rows_hf_to_gguf(float* w, int n_heads, int head_dim, int64_t cols);

struct GgufExportOptions {
  GgmlType type = GgmlType::F16;
  std::string tokenizer_model;  // SentencePiece .model to use instead of DIR's tokenizer files
};

struct GgufExportReport {
  size_t n_tensors = 0;
  uint64_t file_bytes = 0;
  int n_vocab = 0, vocab_dropped = 0;
  std::string vocab_model, vocab_source;
};

// Writes DIR's checkpoint to out. Throws bwla::Error naming config.json for an
// architecture or feature GGUF llama cannot express (biases, q/k norms, rope
// scaling), and the tokenizer file when its vocab does not fit.
GgufExportReport export_gguf(const std::string& dir, const std::string& out,
                             const GgufExportOptions& opt);

}  // namespace bwla
