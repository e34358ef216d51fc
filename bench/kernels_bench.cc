// Binary GEMV / GEMM throughput on TinyLlama-1.1B shapes vs an fp32 baseline,
// and the column-group form (kernels/rc_gemm.h) of the `--groups` layouts.
// Plain main(): kernels_bench [--quick] [--1t] [--reps N]
//   hot:  one matrix, called repeatedly (packed weights stay in L2).
//   cold: rotates over enough copies that > 96 MiB is streamed per sweep (DRAM).
// Variants are interleaved inside every repetition; the medians are printed.
// GCC 12 reports its own _mm512_undefined_* placeholders inside the reduce intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "core/aligned.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "core/timer.h"
#include "kernels/binary_gemm.h"
#include "kernels/rc_gemm.h"

using namespace bwla;

namespace {

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// fp32 baseline: y[t][i] = Σ_j W[i][j]·x[t][j], 4 rows × 4 tokens of 16-wide FMA
// accumulators, reduced at the end; rows split over OpenMP threads.
T512 void sgemm_tile(const float* W, int cols, const float* x, int r, int nr, int t, int nt,
                     int rows, float* y) {
  __m512 acc[4][4];
  for (auto& a : acc)
    for (auto& v : a) v = _mm512_setzero_ps();
  int j = 0;
  for (; j + 16 <= cols; j += 16) {
    __m512 w[4], xv[4];
    for (int a = 0; a < 4; ++a) w[a] = _mm512_loadu_ps(W + (size_t)(r + std::min(a, nr - 1)) * cols + j);
    for (int b = 0; b < 4; ++b) xv[b] = _mm512_loadu_ps(x + (size_t)(t + std::min(b, nt - 1)) * cols + j);
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) acc[a][b] = _mm512_fmadd_ps(w[a], xv[b], acc[a][b]);
  }
  for (int a = 0; a < nr; ++a)
    for (int b = 0; b < nt; ++b) {
      float s = _mm512_reduce_add_ps(acc[a][b]);
      for (int jj = j; jj < cols; ++jj) s += W[(size_t)(r + a) * cols + jj] * x[(size_t)(t + b) * cols + jj];
      y[(size_t)(t + b) * rows + r + a] = s;
    }
}

// GEMV: 4 rows at a time, 2 accumulators per row.
T512 void sgemv_rows(const float* W, int rows, int cols, const float* x, float* y, int r0, int r1) {
  int i = r0;
  for (; i + 4 <= r1; i += 4) {
    __m512 a[8];
    for (auto& v : a) v = _mm512_setzero_ps();
    for (int j = 0; j + 32 <= cols; j += 32) {
      const __m512 x0 = _mm512_loadu_ps(x + j), x1 = _mm512_loadu_ps(x + j + 16);
      for (int k = 0; k < 4; ++k) {
        a[2 * k] = _mm512_fmadd_ps(_mm512_loadu_ps(W + (size_t)(i + k) * cols + j), x0, a[2 * k]);
        a[2 * k + 1] = _mm512_fmadd_ps(_mm512_loadu_ps(W + (size_t)(i + k) * cols + j + 16), x1, a[2 * k + 1]);
      }
    }
    for (int k = 0; k < 4; ++k) y[i + k] = _mm512_reduce_add_ps(_mm512_add_ps(a[2 * k], a[2 * k + 1]));
  }
  for (; i < r1; ++i) {
    float s = 0;
    for (int j = 0; j < cols; ++j) s += W[(size_t)i * cols + j] * x[j];
    y[i] = s;
  }
}

void sgemm(const float* W, int rows, int cols, const float* x, int tokens, float* y) {
#pragma omp parallel
  {
    const int tid = omp_get_thread_num(), n = omp_get_num_threads();
    const int units = (rows + 3) / 4;
    const int r0 = std::min(rows, units * tid / n * 4), r1 = std::min(rows, units * (tid + 1) / n * 4);
    if (tokens == 1) {
      sgemv_rows(W, rows, cols, x, y, r0, r1);
    } else {
      for (int rb = r0; rb < r1; rb += 64)  // 64 rows of W stay in L2 across all tokens
        for (int t = 0; t < tokens; t += 4)
          for (int r = rb; r < std::min(r1, rb + 64); r += 4)
            sgemm_tile(W, cols, x, r, std::min(4, r1 - r), t, std::min(4, tokens - t), rows, y);
    }
  }
}

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Variant {
  std::string name;
  bool fp32;
  std::function<void(int copy)> run;
  double bits = 1;  // weight bits per weight streamed (fp32: 32)
};

// A column-group matrix (kernels/rc_gemm.h) of the BWLA `--groups` shape: 8
// salient columns and ~30 % sparse entries per 128-column block.
RcMatrix random_group_matrix(Rng& rng, int rows, int cols) {
  RcMatrix m;
  m.rows = rows, m.cols = cols, m.words = (cols + 63) / 64, m.block_cols = 128;
  m.blocks = (cols + 127) / 128;
  m.sign.resize((size_t)rows * m.words);
  m.sparse.resize((size_t)rows * m.words);
  m.salient.resize(m.words);
  for (int b = 0; b < m.blocks; ++b)
    for (int t = 0; t < 8; ++t) {
      const int j = std::min(cols - 1, b * 128 + (int)(rng.uniform() * 128));
      m.salient[j >> 6] |= 1ull << (j & 63);
    }
  for (size_t k = 0; k < m.sign.size(); ++k) {
    m.sign[k] = rng.next_u64();
    m.sparse[k] = rng.next_u64() & rng.next_u64() & ~m.salient[k % m.words];  // ~25 %
  }
  m.c.assign((size_t)kRcPlanes * cols, 1.0f);
  m.index_salient();
  m.sign2.resize((size_t)rows * std::max(1, m.words2));
  m.a.assign((size_t)kRcPlanes * rows * m.blocks, 0.05f);
  m.mu.assign((size_t)kRcGroups * rows * m.blocks, 0.001f);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, only1 = false;
  int reps = 7;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--1t")) only1 = true;
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
  }
  std::printf("isa=%s  (figures: median of %d interleaved reps)\n", isa_name(active_isa()), reps);
  struct Shape { int rows, cols; };
  std::vector<Shape> shapes = {{2048, 2048}, {5632, 2048}, {2048, 5632}, {256, 2048}};
  if (quick) shapes = {{2048, 2048}};
  Rng rng(1);
  for (int tokens : {1, 128}) {
    for (Shape s : shapes) {
      const double wts = (double)s.rows * s.cols;
      const bool cold = tokens == 1;  // decode streams weights from DRAM; prefill reuses them
      const int ncopies = cold ? std::max(1, (int)(96.0 * (1 << 20) / (wts / 8))) : 1;
      const int ncopies_f = cold ? std::max(2, (int)(96.0 * (1 << 20) / (wts * 4))) : 1;
      std::vector<PackedBinary> W(ncopies);
      {
        std::vector<float> wf((size_t)wts);
        for (auto& v : wf) v = rng.uniformf(-1, 1);
        W[0] = pack_binary(wf.data(), s.rows, s.cols, nullptr, nullptr);
        for (int c = 1; c < ncopies; ++c) W[c] = W[0];
      }
      std::vector<AlignedBuffer<float>> Wf(ncopies_f);
      for (auto& w : Wf) {
        w.resize((size_t)wts);
        for (auto& v : w) v = rng.uniformf(-1, 1);
      }
      std::vector<float> x((size_t)tokens * s.cols);
      for (auto& v : x) v = (float)rng.normal();
      std::vector<float> y((size_t)tokens * s.rows);
      QuantActs a8, a6, a4;
      quantize_acts(x.data(), tokens, s.cols, 8, 1.0f, a8);
      quantize_acts(x.data(), tokens, s.cols, 6, 1.0f, a6);
      quantize_acts(x.data(), tokens, s.cols, 4, 1.0f, a4);
      std::vector<Variant> vars;
      vars.push_back({"fp32-own", true, [&](int c) { sgemm(Wf[c % ncopies_f].data(), s.rows, s.cols, x.data(), tokens, y.data()); }});
      struct KV { BinaryKernel k; const QuantActs* a; int bits; };
      std::vector<KV> kv = {{BinaryKernel::Auto, &a8, 8}, {BinaryKernel::Auto, &a6, 6},
                            {BinaryKernel::Auto, &a4, 4}, {BinaryKernel::Avx512Vnni, &a8, 8},
                            {BinaryKernel::Avx512Vnni, &a4, 4}, {BinaryKernel::Avx512MaskAdd, &a4, 4},
                            {BinaryKernel::Avx2, &a8, 8}};
      if (tokens == 1) {
        kv.push_back({BinaryKernel::Avx512BitSerial, &a8, 8});
        kv.push_back({BinaryKernel::Avx512BitSerial, &a4, 4});
      }
      // The column-group form at 6-bit activations, as its packed linear runs
      // it: dequantize, prepare c_k ⊙ x̂, masked fp32 sums.
      const int ncopies_g = cold ? std::max(1, (int)(96.0 * (1 << 20) / (wts / 4))) : 1;
      std::vector<RcMatrix> G;
      G.push_back(random_group_matrix(rng, s.rows, s.cols));
      for (int c = 1; c < ncopies_g; ++c) G.push_back(G[0]);
      std::vector<float> xdq((size_t)tokens * s.cols);
      RcActs ga;
      vars.push_back({"colgroup/a6", false, [&](int c) {
                        dequantize_acts(a6, xdq.data());
                        rc_prepare(G[c % ncopies_g], xdq.data(), tokens, ga);
                        rc_gemm(G[c % ncopies_g], ga, y.data());
                      }, 2.0});
      for (const KV& e : kv) {
        if (!binary_kernel_available(e.k)) continue;
        if (quick && e.k == BinaryKernel::Avx2) continue;
        const BinaryKernel k = e.k;
        const QuantActs* ap = e.a;
        std::string name = std::string(binary_kernel_name(k == BinaryKernel::Auto ? default_binary_kernel(e.bits, tokens) : k));
        if (k == BinaryKernel::Auto) name = "auto=" + name;
        vars.push_back({name + "/a" + std::to_string(e.bits), false,
                        [&, ap, k](int c) { binary_gemm_omp(W[c % ncopies], *ap, y.data(), k); }});
      }
      {  // activation quantization cost (per call, all tokens, 1 thread)
        QuantActs tmp;
        quantize_acts(x.data(), tokens, s.cols, 8, 1.0f, tmp);
        std::vector<double> qt;
        for (int rep = 0; rep < 5; ++rep) {
          const double c0 = thread_cpu_seconds();
          for (int i = 0; i < 20; ++i) quantize_acts(x.data(), tokens, s.cols, 8, 1.0f, tmp);
          qt.push_back((thread_cpu_seconds() - c0) / 20);
        }
        std::printf("\nquantize_acts %dx%d a8: %.1f us\n", tokens, s.cols, median(qt) * 1e6);
      }
      for (int threads : {1, 2}) {
        if (only1 && threads == 2) continue;
        omp_set_num_threads(threads);
        // 1 thread: on-CPU time of this thread (robust to the shared machine's load);
        // 2 threads: wall clock.
        std::vector<std::vector<double>> times(vars.size());
        // Calls per timing sample: ~ enough weight traffic to take a few ms.
        const int calls = std::max(1, (int)(cold ? 2 * std::max(ncopies, 8) : 4e8 / (wts * tokens) + 1));
        for (int rep = 0; rep < reps; ++rep) {
          for (size_t v = 0; v < vars.size(); ++v) {
            const int nc = vars[v].fp32 ? std::max(1, calls / 16) : calls;
            vars[v].run(0);
            Timer tm;
            const double c0 = thread_cpu_seconds();
            for (int c = 0; c < nc; ++c) vars[v].run(c + 1);
            const double el = threads == 1 ? thread_cpu_seconds() - c0 : tm.seconds();
            times[v].push_back(el / nc);
          }
        }
        const double tf = median(times[0]);
        double load[3] = {0, 0, 0};
        getloadavg(load, 3);
        std::printf("\n%dx%d tokens=%d threads=%d [%s, loadavg %.1f] %s\n", s.rows, s.cols, tokens, threads,
                    threads == 1 ? "thread CPU time" : "wall time", load[0],
                    cold ? "(cold: weights streamed from DRAM)" : "(weights reused across tokens)");
        std::printf("  %-22s %10s %12s %12s %10s %9s\n", "variant", "us/call", "Gweights/s", "GMAC/s",
                    "wGB/s", "vs fp32");
        for (size_t v = 0; v < vars.size(); ++v) {
          const double t = median(times[v]);
          const double wbytes = vars[v].fp32 ? wts * 4 : wts * vars[v].bits / 8;
          std::printf("  %-22s %10.1f %12.2f %12.1f %10.2f %8.2fx\n", vars[v].name.c_str(), t * 1e6,
                      wts / t * 1e-9, wts * tokens / t * 1e-9, wbytes / t * 1e-9, tf / t);
        }
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
