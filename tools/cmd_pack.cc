// bwla pack QDIR -o OUT [--scale-dtype f16|f32] [--max-planes N] [--head-dtype q4|q8|f16|keep]: real 1-bit
// storage (docs/FORMAT.md) from a fake-quant directory written by `bwla quantize`.
#include <fmt/format.h>

#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "format/packed_writer.h"

namespace bwla::cli {

Runner register_pack(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "pack", "write a quantized model's packed 1-bit form (memory-mapped by ppl/eval/generate/bench)");
  // Option values: owned by the returned runner (no function-level statics).
  struct Args {
    std::string dir, out, scale = "f16", psp = "i8", head = "q4", embed = "f16";
    PackOptions opt;
    Common common;
  };
  auto args = std::make_shared<Args>();
  auto& [dir, out, scale, psp, head, embed, opt, common] = *args;
  sub->add_option("model", dir, "bwla quantized (fake-quant) directory")->required();
  sub->add_option("-o,--out", out, "output directory")->required();
  sub->add_option("--scale-dtype", scale, "dtype of α, μ and the PSP factors: f16 or f32")
      ->check(CLI::IsMember({"f16", "f32"}));
  sub->add_option("--psp-dtype", psp,
                  "PSP low-rank factors: i8 (default: int8 with one scale per rank component, "
                  "about half the bytes of f16) or scale (the --scale-dtype)")
      ->check(CLI::IsMember({"scale", "i8"}));
  sub->add_option("--max-planes", opt.max_planes,
                  "most bit planes per linear (rows with more distinct values are an error)")
      ->check(CLI::Range(1, kPackedMaxPlanesLimit));
  sub->add_flag("--groups-as-planes", opt.groups_as_planes,
                "store column-group layouts (billm, arb, arb-x, bwla --groups) as thermometer bit "
                "planes instead of the column-group form: faster integer kernels, about 2x the "
                "bits (arb-rc has no planes form)");
  sub->add_option("--head-dtype", head,
                  "output head (and the embedding table when tied): q4 (default: 4-bit, fp16 scale "
                  "per 32 columns, int8 activations: 28 % of the f16 bytes, the fastest decode), "
                  "q8 (int8, fp32 scale per row: half the bytes), f16, or keep (the source's dtype)")
      ->check(CLI::IsMember(table_dtype_options()));
  sub->add_option("--embed-dtype", embed,
                  "embedding table of an untied model: f16 (default), q8, q4 or keep")
      ->check(CLI::IsMember(table_dtype_options()));
  add_common(sub, common);
  return [args] {
    auto& [dir, out, scale, psp, head, embed, opt, common] = *args;
    apply_common(common);
    opt.scale_dtype = scale == "f32" ? DType::F32 : DType::F16;
    opt.psp_dtype = psp == "i8" ? PspStorage::I8 : PspStorage::ScaleDtype;
    opt.head_dtype = parse_table_dtype(head);
    opt.embed_dtype = parse_table_dtype(embed);
    Timer t;
    PackReport r = pack_quantized_dir(dir, out, opt);
    if (r.max_planes_used > 1)
      log_warn("pack: {} stores {} bit planes per weight (column-group bitmaps or multi-bit "
               "codes): {:.2f} bits per decoder weight as packed, against {:.2f} estimated by "
               "quantize. bwla's one-plane default (--method bwla without --groups) packs in one "
               "plane.",
               dir, r.max_planes_used, r.bits_per_weight, r.fake_quant_bits_per_weight);
    if (r.rc_linears > 0)
      log_warn("pack: {}: {} linears stored in the column-group form ({:.2f} bits per decoder "
               "weight); its kernel sums in fp32 and decodes far slower than the one-plane "
               "default (docs/RESULTS.md: about 30x at the TinyLlama shape)",
               dir, r.rc_linears, r.bits_per_weight);
    json j = r.summary();
    j["model"] = dir;
    j["out"] = out;
    j["scale_dtype"] = dtype_name(opt.scale_dtype);
    j["seconds"] = t.seconds();
    if (common.json) {
      print_json(j);
    } else {
      fmt::print("packed {} -> {} in {:.1f} s\n", dir, out, j["seconds"].get<double>());
      std::string layout;
      if (r.max_planes_used > 0)
        layout = fmt::format("{} plane{} max", r.max_planes_used, r.max_planes_used == 1 ? "" : "s");
      if (r.rc_linears > 0)
        layout += fmt::format("{}{} in the column-group form", layout.empty() ? "" : ", ", r.rc_linears);
      fmt::print("decoder linears  {:.4f} bits/weight ({} bytes for {} weights, {}, scales {}); "
                 "fake-quant estimate {:.4f}\n",
                 r.bits_per_weight, r.decoder_linear_bytes, r.decoder_linear_weights, layout,
                 dtype_name(opt.scale_dtype), r.fake_quant_bits_per_weight);
      fmt::print("embeddings, norms, head  {} bytes (embeddings {} bytes {}, head {})\n",
                 r.other_bytes, r.embed_bytes, r.embed_dtype,
                 r.head_bytes ? fmt::format("{} bytes {}", r.head_bytes, r.head_dtype)
                              : std::string("tied to the embeddings"));
      fmt::print("model.safetensors        {} bytes\n", r.file_bytes);
    }
    return 0;
  };
}

}  // namespace bwla::cli
