#include "pipeline/distributed.h"

#include <cstring>
#include <type_traits>

#include "core/cluster.h"
#include "core/error.h"
#include "quant/transform.h"
#include "quant/xtx.h"

namespace bwla {

CalibSplit::CalibSplit(int S, int L, int n, int r) : segments(S), seq_len(L), ranks(n), rank(r) {
  BWLA_ASSERT(S >= 1 && L >= 1 && n >= 1 && r >= 0 && r < n, "split S={} L={} N={} r={}", S, L, n, r);
  static_assert((kCalibGroups & (kCalibGroups - 1)) == 0, "groups: a power of two");
  g0 = groups, g1 = groups;  // stays so for a rank beyond the groups: no rows
  for (int g = 0; g < groups; ++g)
    if (owner(g) == rank) {
      if (g0 == groups) g0 = g;
      g1 = g + 1;
    }
  seg_begin = group_begin(g0);
  seg_end = group_begin(g1);
}

// ---- XᵀX over the fixed tree ----

namespace {
std::vector<double> pack_lower(const MatrixD& a) {
  const int n = (int)a.rows();
  std::vector<double> v((size_t)n * (n + 1) / 2);
  size_t k = 0;
  for (int j = 0; j < n; ++j)
    for (int i = j; i < n; ++i) v[k++] = a(i, j);
  return v;
}
void add_into(std::vector<double>& a, const std::vector<double>& b) {
  BWLA_ASSERT(a.size() == b.size(), "tree nodes of {} and {} values", a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
}
}  // namespace

TreeXtx::TreeXtx(int dim, const CalibSplit& split) : dim_(dim), split_(split) {
  leaf_ = MatrixD::Zero(dim, dim);
}

void TreeXtx::add(const float* x, long n, long first_row) {
  xtx_fold(x, n, dim_, part_, leaf_, first_row);
}

void TreeXtx::put(int level, int index, std::vector<double> v) {
  // Merge with the left sibling as soon as both are here (the tree's order).
  while (index % 2 == 1) {
    auto it = nodes_.find({level, index - 1});
    if (it == nodes_.end()) break;
    std::vector<double> left = std::move(it->second);
    nodes_.erase(it);
    add_into(left, v);
    v = std::move(left);
    ++level;
    index /= 2;
  }
  nodes_[{level, index}] = std::move(v);
}

void TreeXtx::end_group(int g) {
  put(0, g, pack_lower(leaf_));
  leaf_.setZero();
}

MatrixD TreeXtx::finish() {
  std::vector<float>().swap(part_);
  leaf_ = MatrixD();
  const int G = split_.groups;
  int levels = 0;
  while ((1 << levels) < G) ++levels;
  const size_t packed = (size_t)dim_ * (dim_ + 1) / 2;
  // Across ranks, level by level: the right child of each pair goes to the
  // holder of the left one (the owner of its first group). Every rank walks
  // the same pairs in the same order, so the transfers pair up.
  for (int l = 0; l < levels; ++l)
    for (int k = 0; k < (G >> (l + 1)); ++k) {
      const int lo = split_.owner((2 * k) << l), ro = split_.owner((2 * k + 1) << l);
      if (lo == ro) continue;  // merged where both live (put)
      if (split_.rank == ro) {
        auto it = nodes_.find({l, 2 * k + 1});
        BWLA_ASSERT(it != nodes_.end(), "rank {} lacks tree node ({}, {})", split_.rank, l, 2 * k + 1);
        cluster_send(it->second.data(), packed * sizeof(double), lo);
        nodes_.erase(it);
      } else if (split_.rank == lo) {
        std::vector<double> right(packed);
        cluster_recv(right.data(), packed * sizeof(double), ro);
        put(l, 2 * k + 1, std::move(right));
      }
    }
  std::vector<double> root;
  if (split_.rank == 0) {
    auto it = nodes_.find({levels, 0});
    BWLA_ASSERT(it != nodes_.end() && nodes_.size() == 1, "rank 0 holds {} tree nodes, not the root",
                nodes_.size());
    root = std::move(it->second);
  } else {
    root.resize(packed);
  }
  nodes_.clear();
  cluster_bcast(root.data(), packed * sizeof(double), 0);
  MatrixD a(dim_, dim_);
  size_t k = 0;
  for (int j = 0; j < dim_; ++j)
    for (int i = j; i < dim_; ++i) a(i, j) = root[k++];
  xtx_mirror_lower(a);
  return a;
}

// ---- gathers ----

MatrixRM gather_rows(const MatrixRM& local, int cols) {
  const int N = cluster_size();
  if (N == 1) return local;
  std::vector<MatrixRM> parts(N);
  long total = 0;
  for (int r = 0; r < N; ++r) {
    uint64_t n = r == cluster_rank() ? (uint64_t)local.rows() : 0;
    cluster_bcast(&n, sizeof n, r);
    parts[r].resize((long)n, cols);
    if (r == cluster_rank()) parts[r] = local;
    if (n) cluster_bcast(parts[r].data(), n * cols * sizeof(float), r);
    total += (long)n;
  }
  MatrixRM all(total, cols);
  long at = 0;
  for (auto& p : parts) {
    if (p.rows()) all.middleRows(at, p.rows()) = p;
    at += p.rows();
  }
  return all;
}

std::vector<double> gather_doubles(const std::vector<double>& local) {
  const int N = cluster_size();
  if (N == 1) return local;
  std::vector<double> all;
  for (int r = 0; r < N; ++r) {
    uint64_t n = r == cluster_rank() ? local.size() : 0;
    cluster_bcast(&n, sizeof n, r);
    std::vector<double> v = r == cluster_rank() ? local : std::vector<double>(n);
    if (n) cluster_bcast(v.data(), n * sizeof(double), r);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

// ---- serialisation ----

namespace {
class Writer {
 public:
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    buf_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put(const std::vector<float>& v) {
    put<uint64_t>(v.size());
    buf_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
  void put(const std::vector<uint8_t>& v) {
    put<uint64_t>(v.size());
    buf_.append(reinterpret_cast<const char*>(v.data()), v.size());
  }
  void put(const MatrixRM& m) {
    put<int64_t>(m.rows());
    put<int64_t>(m.cols());
    buf_.append(reinterpret_cast<const char*>(m.data()), (size_t)m.size() * sizeof(float));
  }
  std::string take() { return std::move(buf_); }

 private:
  std::string buf_;
};

class Reader {
 public:
  explicit Reader(const std::string& b) : b_(b) {}
  template <class T>
  T get() {
    T v;
    bytes(&v, sizeof v);
    return v;
  }
  std::vector<float> floats() {
    std::vector<float> v(get<uint64_t>());
    bytes(v.data(), v.size() * sizeof(float));
    return v;
  }
  std::vector<uint8_t> bytes_vec() {
    std::vector<uint8_t> v(get<uint64_t>());
    bytes(v.data(), v.size());
    return v;
  }
  MatrixRM matrix() {
    const int64_t r = get<int64_t>(), c = get<int64_t>();
    MatrixRM m(r, c);
    bytes(m.data(), (size_t)m.size() * sizeof(float));
    return m;
  }
  bool done() const { return at_ == b_.size(); }

 private:
  void bytes(void* p, size_t n) {
    BWLA_ASSERT(at_ + n <= b_.size(), "message of {} bytes read past its end at {} + {}", b_.size(), at_, n);
    std::memcpy(p, b_.data() + at_, n);
    at_ += n;
  }
  const std::string& b_;
  size_t at_ = 0;
};

enum : int32_t { kNoTransform = 0, kKronecker = 1, kHadamard = 2 };

void put_linear(Writer& w, const FakeQuantLinear& l) {
  const FakeQuantParts& q = l.parts();
  w.put<int32_t>(q.abits);
  w.put<float>(q.act_clip);
  w.put<double>(q.storage_bits);
  w.put(q.w_hat);
  w.put(q.lr_a);
  w.put(q.lr_b);
  w.put(q.bias);
  if (!q.transform) {
    w.put<int32_t>(kNoTransform);
  } else if (auto* k = dynamic_cast<const KroneckerTransform*>(q.transform.get())) {
    w.put<int32_t>(kKronecker);
    w.put(MatrixRM(kron_r1(*k)));
    w.put(MatrixRM(kron_r2(*k)));
  } else if (auto* h = dynamic_cast<const HadamardTransform*>(q.transform.get())) {
    w.put<int32_t>(kHadamard);
    w.put<int32_t>(h->dim());
    w.put<uint64_t>(h->seed());
  } else {
    BWLA_ASSERT(false, "cannot send transform kind {}", q.transform->kind());
  }
  w.put<int32_t>(q.rc ? 1 : 0);
  if (q.rc) {
    w.put<int32_t>(q.rc->rows);
    w.put<int32_t>(q.rc->cols);
    w.put<int32_t>(q.rc->block_cols);
    w.put(q.rc->code);
    w.put(q.rc->a);
    w.put(q.rc->mu);
    w.put(q.rc->c);
  }
}

std::unique_ptr<FakeQuantLinear> get_linear(Reader& r) {
  FakeQuantParts q;
  q.abits = r.get<int32_t>();
  q.act_clip = r.get<float>();
  q.storage_bits = r.get<double>();
  q.w_hat = r.matrix();
  q.lr_a = r.matrix();
  q.lr_b = r.matrix();
  q.bias = r.floats();
  const int32_t kind = r.get<int32_t>();
  if (kind == kKronecker) {
    MatrixRM r1 = r.matrix();
    MatrixRM r2 = r.matrix();
    q.transform = make_kronecker(r1, r2);
  } else if (kind == kHadamard) {
    const int dim = r.get<int32_t>();
    const uint64_t seed = r.get<uint64_t>();
    q.transform = std::shared_ptr<const InputTransform>(make_random_hadamard(dim, seed));
  } else {
    BWLA_ASSERT(kind == kNoTransform, "transform tag {}", kind);
  }
  if (r.get<int32_t>()) {
    const int rows = r.get<int32_t>(), cols = r.get<int32_t>(), bc = r.get<int32_t>();
    auto f = std::make_shared<RcFactors>(rows, cols, bc);
    f->code = r.bytes_vec();
    f->a = r.floats();
    f->mu = r.floats();
    f->c = r.floats();
    BWLA_ASSERT(f->code.size() == (size_t)rows * cols && f->a.size() == (size_t)RcFactors::kPlanes * rows * f->blocks &&
                    f->mu.size() == (size_t)RcFactors::kGroups * rows * f->blocks &&
                    f->c.size() == (size_t)RcFactors::kPlanes * cols,
                "ARB-RC factors of {}x{} received with {} codes", rows, cols, f->code.size());
    q.rc = std::move(f);
  }
  return std::make_unique<FakeQuantLinear>(std::move(q));
}
}  // namespace

std::string serialize_linear(const FakeQuantLinear& l) {
  Writer w;
  put_linear(w, l);
  return w.take();
}

std::unique_ptr<FakeQuantLinear> deserialize_linear(const std::string& bytes) {
  Reader r(bytes);
  auto l = get_linear(r);
  BWLA_ASSERT(r.done(), "linear message of {} bytes has trailing bytes", bytes.size());
  return l;
}

std::string serialize_layer(const LayerWeights& L) {
  Writer w;
  w.put(L.attn_norm);
  w.put(L.mlp_norm);
  w.put(L.q_norm);
  w.put(L.k_norm);
  for (const auto& lin : L.lin) {
    const auto* fq = dynamic_cast<const FakeQuantLinear*>(lin.get());
    BWLA_ASSERT(fq, "a quantized layer's linear is not fake-quant{}", "");
    put_linear(w, *fq);
  }
  return w.take();
}

LayerWeights deserialize_layer(const std::string& bytes) {
  Reader r(bytes);
  LayerWeights L;
  L.attn_norm = r.floats();
  L.mlp_norm = r.floats();
  L.q_norm = r.floats();
  L.k_norm = r.floats();
  for (auto& lin : L.lin) lin = get_linear(r);
  BWLA_ASSERT(r.done(), "layer message of {} bytes has trailing bytes", bytes.size());
  return L;
}

}  // namespace bwla
