#include "format/bit_planes.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bwla {

namespace {

// How one row is encoded: per distinct value v_k its code (bit b -> plane b
// set), plus the plane steps d_b.
struct RowCode {
  std::vector<float> values;     // distinct, ascending
  std::vector<uint32_t> code;    // per value: bit mask over planes
  std::vector<double> step;      // per plane
  int planes = 0;
};

int bit_width(uint64_t n) { return n == 0 ? 0 : 64 - __builtin_clzll(n); }

bool uniform_grid(const std::vector<float>& v, RowCode& rc, int max_planes) {
  double delta = INFINITY;
  for (size_t k = 1; k < v.size(); ++k) delta = std::min(delta, (double)v[k] - (double)v[k - 1]);
  if (!(delta > 0)) return false;
  const double tol = 1e-5 * std::max(std::fabs((double)v.front()), std::fabs((double)v.back()));
  std::vector<uint32_t> n(v.size());
  for (size_t k = 0; k < v.size(); ++k) {
    const double r = ((double)v[k] - (double)v[0]) / delta;
    const double ri = std::nearbyint(r);
    if (std::fabs(r - ri) * delta > tol || ri > 65535) return false;
    n[k] = (uint32_t)ri;
  }
  const int p = std::max(1, bit_width(n.back()));
  if (p > max_planes) return false;
  rc.code = n;
  rc.planes = p;
  rc.step.assign(p, 0.0);
  for (int b = 0; b < p; ++b) rc.step[b] = delta * (double)(1u << b);
  return true;
}

void thermometer(const std::vector<float>& v, RowCode& rc) {
  const int p = std::max(1, (int)v.size() - 1);
  rc.planes = p;
  // More planes than the format allows (max 8): the caller reports it; the
  // codes below would not fit a 32-bit word, so none are built.
  if (p > 8) return;
  rc.code.assign(v.size(), 0);
  for (size_t k = 0; k < v.size(); ++k) rc.code[k] = k == 0 ? 0u : (1u << k) - 1u;  // planes < k set
  rc.step.assign(p, 0.0);
  for (size_t k = 1; k < v.size(); ++k) rc.step[k - 1] = (double)v[k] - (double)v[k - 1];
}

}  // namespace

BitPlanes decompose_rows(const float* w, int rows, int cols, int max_planes,
                         const std::string& what, const std::string& method, int block_cols) {
  BWLA_CHECK(rows > 0 && cols > 0, "pack: {} has bad shape [{}, {}]", what, rows, cols);
  BWLA_CHECK(max_planes >= 1 && max_planes <= 8, "pack: max planes {} must be in [1, 8]", max_planes);
  if (block_cols <= 0 || block_cols > cols) block_cols = cols;
  BWLA_CHECK(block_cols == cols || block_cols % 64 == 0,
             "pack: {}: scale block of {} columns is not a multiple of 64", what, block_cols);
  BitPlanes out;
  out.rows = rows;
  out.cols = cols;
  out.words = (cols + 63) / 64;
  out.block_cols = block_cols;
  out.blocks = (cols + block_cols - 1) / block_cols;
  const int nb = out.blocks;
  std::vector<RowCode> codes((size_t)rows * nb);
  int planes = 1;
  std::vector<float> v;
  for (int i = 0; i < rows; ++i)
    for (int b = 0; b < nb; ++b) {
      const int j0 = b * block_cols, j1 = std::min(cols, j0 + block_cols);
      const float* r = w + (size_t)i * cols;
      v.assign(r + j0, r + j1);
      for (float x : v)
        BWLA_CHECK(std::isfinite(x), "pack: {} row {} holds a non-finite weight", what, i);
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
      out.max_distinct = std::max(out.max_distinct, (int)v.size());
      RowCode& rc = codes[(size_t)i * nb + b];
      rc.values = v;
      if (v.size() <= 2) {
        rc.planes = 1;
        rc.code = v.size() == 2 ? std::vector<uint32_t>{0, 1} : std::vector<uint32_t>{0};
        rc.step = {v.size() == 2 ? (double)v[1] - (double)v[0] : 0.0};
      } else if (!uniform_grid(v, rc, max_planes) || rc.planes > (int)v.size() - 1) {
        thermometer(v, rc);
      }
      if (rc.planes > max_planes)
        fail("pack: {} row {} has {} distinct weight values in columns [{}, {}); the packed "
             "format supports 2 values (1 plane), a uniform grid of at most {} bits, or at most "
             "{} values (thermometer planes) per row segment; method '{}' cannot be packed",
             what, i, v.size(), j0, j1, max_planes, max_planes + 1, method);
      planes = std::max(planes, rc.planes);
    }
  out.planes = planes;
  out.bits.assign((size_t)planes * rows * out.words, 0);
  out.alpha.assign((size_t)planes * rows * nb, 0.0f);
  out.mu.assign((size_t)planes * rows * nb, 0.0f);
  for (int i = 0; i < rows; ++i)
    for (int b = 0; b < nb; ++b) {
      const RowCode& rc = codes[(size_t)i * nb + b];
      const size_t si = (size_t)i * nb + b, pstride = (size_t)rows * nb;
      for (int k = 0; k < rc.planes; ++k) {
        out.alpha[k * pstride + si] = (float)(rc.step[k] / 2);
        out.mu[k * pstride + si] = (float)(rc.step[k] / 2);
      }
      if (rc.values.size() == 2)  // the plain binary case, exactly as the format documents
        out.mu[si] = (float)(((double)rc.values[0] + (double)rc.values[1]) / 2);
      else
        out.mu[si] = (float)((double)rc.values[0] + rc.step[0] / 2);
      const float* r = w + (size_t)i * cols;
      const int j0 = b * block_cols, j1 = std::min(cols, j0 + block_cols);
      for (int j = j0; j < j1; ++j) {
        const size_t idx =
            std::lower_bound(rc.values.begin(), rc.values.end(), r[j]) - rc.values.begin();
        const uint32_t c = rc.code[idx];
        for (int k = 0; k < rc.planes; ++k)
          if ((c >> k) & 1) out.row(k, i)[j >> 6] |= 1ull << (j & 63);
      }
    }
  return out;
}

std::vector<float> compose_rows(const BitPlanes& p) {
  std::vector<float> w((size_t)p.rows * p.cols, 0.0f);
  for (int i = 0; i < p.rows; ++i)
    for (int j = 0; j < p.cols; ++j) {
      double s = 0;
      const size_t si = (size_t)i * p.blocks + j / p.block_cols;
      for (int k = 0; k < p.planes; ++k) {
        const bool m = (p.bits[((size_t)k * p.rows + i) * p.words + (j >> 6)] >> (j & 63)) & 1;
        const size_t at = (size_t)k * p.rows * p.blocks + si;
        s += (double)p.alpha[at] * (m ? 1.0 : -1.0) + p.mu[at];
      }
      w[(size_t)i * p.cols + j] = (float)s;
    }
  return w;
}

}  // namespace bwla
