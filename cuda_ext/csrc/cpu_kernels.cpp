// Fused CPU kernels for the sparse autoencoder hot path (cuda_ext.cpu_backend).
//
// topk_merge: one pass over a (B, L) block of pre-activations that keeps, per row, the running
//   top-k (and, over dead latents only, the running top-k_aux) in a min-heap: an entry costs one
//   compare against the heap's minimum unless it enters. Replaces the chunked backend's
//   compare / nonzero / scatter / cat / topk sequence per block.
// topk_finish: sorts each row's heap descending.
// pair_dots: out[e] = a[a_idx[e]] . b[b_idx[e]] with fp32 accumulation, no (E, d) temporary.
//
// Rows are independent, so both parallelise over rows / entries with at::parallel_for.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

constexpr int64_t kChunk = 64;  // entries per vectorised pre-check

// Min-heap over (value, id) of fixed size m, stored in v[0..m), id[0..m); v[0] is the minimum.
inline void sift_down(float* v, int64_t* id, int64_t m, int64_t pos) {
  const float val = v[pos];
  const int64_t key = id[pos];
  while (true) {
    int64_t child = 2 * pos + 1;
    if (child >= m) break;
    if (child + 1 < m && v[child + 1] < v[child]) ++child;
    if (!(v[child] < val)) break;
    v[pos] = v[child];
    id[pos] = id[child];
    pos = child;
  }
  v[pos] = val;
  id[pos] = key;
}

template <typename scalar_t>
bool merge_rows(const scalar_t* pre, int64_t L, int64_t start, int64_t row_begin, int64_t row_end,
                float* heap_v, int64_t* heap_i, int64_t k,
                const bool* dead, float* aux_v, int64_t* aux_i, int64_t k_aux) {
  bool saw_nan = false;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const scalar_t* row = pre + r * L;
    float* hv = heap_v + r * k;
    int64_t* hi = heap_i + r * k;
    float* av = aux_v + r * k_aux;
    int64_t* ai = aux_i + r * k_aux;
    float floor = hv[0];
    float aux_floor = k_aux > 0 ? av[0] : std::numeric_limits<float>::infinity();
    for (int64_t c0 = 0; c0 < L; c0 += kChunk) {
      const int64_t c1 = std::min(c0 + kChunk, L);
      // Most chunks hold nothing that enters either heap: one vectorised max rules them out.
      float chunk_max = -std::numeric_limits<float>::infinity();
      int nan_count = 0;
#pragma omp simd reduction(max : chunk_max) reduction(+ : nan_count)
      for (int64_t j = c0; j < c1; ++j) {
        const float x = static_cast<float>(row[j]);
        chunk_max = std::max(chunk_max, x);
        nan_count += x != x;
      }
      saw_nan |= nan_count > 0;
      if (!(chunk_max > floor) && !(chunk_max > aux_floor)) continue;
      for (int64_t j = c0; j < c1; ++j) {
        const float x = static_cast<float>(row[j]);
        if (x > floor) {
          hv[0] = x;
          hi[0] = start + j;
          sift_down(hv, hi, k, 0);
          floor = hv[0];
        }
        if (x > aux_floor && dead[start + j]) {
          av[0] = x;
          ai[0] = start + j;
          sift_down(av, ai, k_aux, 0);
          aux_floor = av[0];
        }
      }
    }
  }
  return saw_nan;
}

void check_heap(const at::Tensor& v, const at::Tensor& i, int64_t B, const char* name) {
  TORCH_CHECK(v.scalar_type() == at::kFloat && v.is_contiguous() && v.dim() == 2 && v.size(0) == B,
              name, " values must be a contiguous float32 (B, m) tensor");
  TORCH_CHECK(i.scalar_type() == at::kLong && i.is_contiguous() && i.sizes() == v.sizes(),
              name, " ids must be a contiguous int64 tensor shaped like its values");
}

}  // namespace

// pre (B, L) contiguous block whose column j is latent start + j; heaps (B, k) / (B, k_aux) are
// updated in place. dead (n,) bool is read only when k_aux > 0. NaN entries never enter a heap;
// the return value says whether the block held any, so that the caller can fall back to a
// selection with torch.topk's semantics (NaN ranks above every number).
bool topk_merge(const at::Tensor& pre, int64_t start, at::Tensor heap_v, at::Tensor heap_i,
                const at::Tensor& dead, at::Tensor aux_v, at::Tensor aux_i) {
  TORCH_CHECK(pre.dim() == 2 && pre.is_contiguous() && pre.device().is_cpu(), "pre must be a contiguous CPU (B, L) tensor");
  const int64_t B = pre.size(0), L = pre.size(1);
  check_heap(heap_v, heap_i, B, "top-k heap");
  check_heap(aux_v, aux_i, B, "aux heap");
  const int64_t k = heap_v.size(1), k_aux = aux_v.size(1);
  TORCH_CHECK(k >= 1, "k must be >= 1");
  TORCH_CHECK(k_aux == 0 || (dead.scalar_type() == at::kBool && dead.is_contiguous() && dead.numel() >= start + L),
              "dead must be a contiguous bool (n,) tensor covering the block");
  const bool* dead_p = k_aux > 0 ? dead.data_ptr<bool>() : nullptr;
  float* hv = heap_v.data_ptr<float>();
  int64_t* hi = heap_i.data_ptr<int64_t>();
  float* av = aux_v.data_ptr<float>();
  int64_t* ai = aux_i.data_ptr<int64_t>();
  std::atomic<bool> saw_nan{false};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, pre.scalar_type(), "topk_merge", [&] {
    const scalar_t* p = pre.data_ptr<scalar_t>();
    at::parallel_for(0, B, 16, [&](int64_t begin, int64_t end) {
      if (merge_rows<scalar_t>(p, L, start, begin, end, hv, hi, k, dead_p, av, ai, k_aux)) saw_nan = true;
    });
  });
  return saw_nan.load();
}

// Sorts every row of a heap descending by value (ties by ascending id), in place.
void topk_finish(at::Tensor heap_v, at::Tensor heap_i) {
  check_heap(heap_v, heap_i, heap_v.size(0), "heap");
  const int64_t B = heap_v.size(0), m = heap_v.size(1);
  float* hv = heap_v.data_ptr<float>();
  int64_t* hi = heap_i.data_ptr<int64_t>();
  at::parallel_for(0, B, 64, [&](int64_t begin, int64_t end) {
    std::vector<std::pair<float, int64_t>> row(m);
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t j = 0; j < m; ++j) row[j] = {hv[r * m + j], hi[r * m + j]};
      std::sort(row.begin(), row.end(), [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
      });
      for (int64_t j = 0; j < m; ++j) {
        hv[r * m + j] = row[j].first;
        hi[r * m + j] = row[j].second;
      }
    }
  });
}

template <typename a_t, typename b_t>
void pair_dots_impl(const at::Tensor& a, const at::Tensor& a_idx, const at::Tensor& b,
                    const at::Tensor& b_idx, at::Tensor& out) {
  const int64_t E = a_idx.numel(), d = a.size(1);
  const a_t* ap = a.data_ptr<a_t>();
  const b_t* bp = b.data_ptr<b_t>();
  const int64_t* ai = a_idx.data_ptr<int64_t>();
  const int64_t* bi = b_idx.data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, E, 256, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) {
      const a_t* x = ap + ai[e] * d;
      const b_t* y = bp + bi[e] * d;
      float acc = 0.f;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < d; ++j) acc += static_cast<float>(x[j]) * static_cast<float>(y[j]);
      op[e] = acc;
    }
  });
}

// (E,) float32 out[e] = a[a_idx[e]] . b[b_idx[e]]; a (Ra, d), b (Rb, d) contiguous float32 or bfloat16.
at::Tensor pair_dots(const at::Tensor& a, const at::Tensor& a_idx, const at::Tensor& b, const at::Tensor& b_idx) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1) && a.is_contiguous() && b.is_contiguous(),
              "a and b must be contiguous (R, d) tensors with the same d");
  TORCH_CHECK(a_idx.scalar_type() == at::kLong && b_idx.scalar_type() == at::kLong && a_idx.is_contiguous() &&
              b_idx.is_contiguous() && a_idx.numel() == b_idx.numel(), "a_idx and b_idx must be contiguous int64 (E,)");
  at::Tensor out = at::empty({a_idx.numel()}, a.options().dtype(at::kFloat));
  const auto ta = a.scalar_type(), tb = b.scalar_type();
  if (ta == at::kFloat && tb == at::kFloat) pair_dots_impl<float, float>(a, a_idx, b, b_idx, out);
  else if (ta == at::kBFloat16 && tb == at::kBFloat16) pair_dots_impl<at::BFloat16, at::BFloat16>(a, a_idx, b, b_idx, out);
  else if (ta == at::kFloat && tb == at::kBFloat16) pair_dots_impl<float, at::BFloat16>(a, a_idx, b, b_idx, out);
  else if (ta == at::kBFloat16 && tb == at::kFloat) pair_dots_impl<at::BFloat16, float>(a, a_idx, b, b_idx, out);
  else TORCH_CHECK(false, "pair_dots supports float32 and bfloat16; got ", ta, " and ", tb);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("topk_merge", &topk_merge, "merge a block of pre-activations into per-row top-k heaps");
  m.def("topk_finish", &topk_finish, "sort each heap row descending");
  m.def("pair_dots", &pair_dots, "gathered row dot products with fp32 accumulation");
}
