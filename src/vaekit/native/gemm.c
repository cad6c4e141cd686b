/* The products of vaekit's kernels: the sgemm vaekit.native.blas chose (PyTorch's own MKL,
 * or a single-threaded OpenBLAS whose large products are split here over OpenMP's
 * threads), the bench's floor through it, and the estimate's big product. */
#include <omp.h>
#include <stdint.h>

#include "kernels.h"

typedef void (*sgemm_fn)(const char *, const char *, const int *, const int *, const int *,
                         const float *, const float *, const int *, const float *, const int *,
                         const float *, float *, const int *);
typedef void (*sgemm64_fn)(const char *, const char *, const int64_t *, const int64_t *,
                           const int64_t *, const float *, const float *, const int64_t *,
                           const float *, const int64_t *, const float *, float *,
                           const int64_t *);
static sgemm_fn sgemm_p;
static sgemm64_fn sgemm64_p;
static int split_gemm;

/* The BLAS to call: an LP64 sgemm_ (PyTorch's MKL) or, when wide is set, an ILP64 one
 * (numpy's OpenBLAS, scipy_sgemm_64_). */
void vk_set_sgemm(void *fn, int wide, int split) {
    sgemm_p = wide ? 0 : (sgemm_fn)fn;
    sgemm64_p = wide ? (sgemm64_fn)fn : 0;
    split_gemm = split;
}

/* C(M, N) = op(A) op(B) + beta C, row-major, as a column-major sgemm of the transposes. */
static void gemm_one(int ta, int tb, int M, int N, int K, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    const char a = ta ? 'T' : 'N', b = tb ? 'T' : 'N';
    const float one = 1.0f;
    if (sgemm64_p) {
        const int64_t n = N, m = M, k = K, lb = ldb, la = lda, lc = ldc;
        sgemm64_p(&b, &a, &n, &m, &k, &one, B, &lb, A, &la, &beta, C, &lc);
        return;
    }
    sgemm_p(&b, &a, &N, &M, &K, &one, B, &ldb, A, &lda, &beta, C, &ldc);
}

/* Products big enough to split are cut into one block of C per OpenMP thread (along its
 * longer side, in multiples of 16) when the BLAS runs single-threaded: OpenBLAS's own
 * thread pool and OpenMP's spin against each other on a small machine (20 times slower). */
#define SPLIT_FLOPS (1 << 20)

void vk_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                 int ldb, float beta, float *C, int ldc) {
    if (!split_gemm || (int64_t)M * N * K < SPLIT_FLOPS || omp_get_max_threads() < 2) {
        gemm_one(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int rows = M >= N;
    const int size = rows ? M : N;
#pragma omp parallel
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int lo = (int)((int64_t)size * t / T) & ~15;
        const int hi = t == T - 1 ? size : (int)((int64_t)size * (t + 1) / T) & ~15;
        if (hi > lo && rows)
            gemm_one(ta, tb, hi - lo, N, K, A + (ta ? lo : (int64_t)lo * lda), lda, B, ldb,
                     beta, C + (int64_t)lo * ldc, ldc);
        else if (hi > lo)
            gemm_one(ta, tb, M, hi - lo, K, A, lda, B + (tb ? (int64_t)lo * ldb : lo), ldb,
                     beta, C + lo, ldc);
    }
}

/* The matrix-product floor through the same gemm: `count` products, each given as
 * (transpose a, transpose b, M, N, K) in dims and (A, B, C) in ops, `repeat` times. */
void vk_products(int count, const int *dims, float **ops, int repeat) {
    for (int r = 0; r < repeat; r++)
        for (int i = 0; i < count; i++) {
            const int *d = dims + 5 * i;
            const int ta = d[0], tb = d[1], M = d[2], N = d[3], K = d[4];
            vk_gemm(ta, tb, M, N, K, ops[3 * i], ta ? M : K, ops[3 * i + 1], tb ? K : N, 0.0f,
                 ops[3 * i + 2], N);
        }
}

/* C (M, N) = A (M, K) W (N, K)^T: the decoder's last layer in the likelihood estimate. */
void vk_matmul_t(int M, int N, int K, const float *A, const float *W, float *C) {
    vk_gemm(0, 1, M, N, K, A, K, W, K, 0.0f, C, N);
}

