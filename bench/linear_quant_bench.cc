// Times quantize_linear on one random linear of a given shape (no checkpoint
// needed): the per-phase split (transform / weights / act_clip / errors) that
// the pipeline reports per linear, for speed work on the quantizers.
//   linear_quant_bench OUT IN [METHOD=bwla] [TOKENS=4096] [THREADS=0] [key=value ...]
// keys: psp_iters, okt_iters, groups (0/1), binarizer, abits.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"
#include "pipeline/linear_quantizer.h"
#include "quant/xtx.h"

using namespace bwla;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT IN [METHOD] [TOKENS] [THREADS] [key=value ...]\n", argv[0]);
    return 2;
  }
  const int out = std::atoi(argv[1]), in = std::atoi(argv[2]);
  const std::string method = argc > 3 ? argv[3] : "bwla";
  const long tokens = argc > 4 ? std::atol(argv[4]) : 4096;
  set_num_threads(argc > 5 ? std::atoi(argv[5]) : 0);
  QuantizeOptions o;
  o.method = method;
  o.wbits = 1;
  o.abits = 6;
  o.psp = method == "bwla";
  for (int i = 6; i < argc; ++i) {
    std::string kv = argv[i];
    auto eq = kv.find('=');
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (k == "psp_iters") o.psp_opt.iters = std::atoi(v.c_str());
    else if (k == "okt_iters") o.okt.iters = std::atoi(v.c_str());
    else if (k == "groups") o.wq.groups = v == "1";
    else if (k == "binarizer") o.binarizer = v;
    else if (k == "abits") o.abits = std::atoi(v.c_str());
    else if (k == "psp") o.psp = v == "1";
    else { std::fprintf(stderr, "unknown key %s\n", k.c_str()); return 2; }
  }
  o.finalize();
  Rng rng(1);
  MatrixRM w(out, in);
  for (long i = 0; i < w.size(); ++i) w.data()[i] = (float)(rng.normal() * 0.02);
  // Activations with a few heavy channels, as in real decoder inputs.
  MatrixRM x(tokens, in);
  std::vector<float> chan(in);
  for (int j = 0; j < in; ++j) chan[j] = j % 97 == 0 ? 20.f : 1.f;
  for (long t = 0; t < tokens; ++t)
    for (int j = 0; j < in; ++j) x(t, j) = (float)rng.normal() * chan[j];
  LinearStats st;
  XtxAccumulator acc(in);
  acc.add(x.data(), tokens);
  st.xtx = acc.xtx();
  st.n_tokens = tokens;
  st.sample = x.topRows(std::min<long>(1024, tokens));
  LinearQuantReport rep;
  rep.name = "bench";
  Timer t;
  quantize_linear(w, {}, st, o, 7, rep);
  std::printf("%dx%d %s: %.2f s total, rel_out_error %.4f, bits/w %.3f\n%s\n", out, in,
              method.c_str(), t.seconds(), rep.rel_out_error, rep.storage_bits / rep.n_weights,
              rep.extra.dump().c_str());
  return 0;
}
