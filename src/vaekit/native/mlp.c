/* The MLP VAE's fused CPU kernels: one training step (forward, closed-form backward of
 * the Bernoulli -ELBO, the gradient's squared norm), the test-set -ELBO, and the
 * importance-weighted log p(x) of one image block. Matrix products go to the sgemm that
 * vaekit.native.blas chose (PyTorch's own MKL, or a single-threaded OpenBLAS whose large
 * products are split here over the threads), the element-wise passes are fused here,
 * threaded with PyTorch's own OpenMP runtime.
 *
 * Row-major throughout; W (out, in) as torch.nn.Linear stores it. Sums of
 * log(1 + e^-|l|) are taken as logs of products of ROWS terms (each in (1, 2], so a
 * product of 64 stays below 2^64): one log per 64 pixels instead of one each.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>

#define ROWS 64

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

/* e^x for x <= 0, inline so that the loops vectorise (libm's expf is a call per element):
 * x = n ln 2 + r with |r| <= ln 2 / 2, e^r by its Taylor series to r^6 (error below
 * 1e-9 relative, under float's rounding), 2^n put into the exponent bits. */
static inline float exp_neg(float x) {
    x = fmaxf(x, -87.0f);
    const float n = floorf(x * 1.44269504f + 0.5f);
    float r = fmaf(n, -0.693145751953125f, x);
    r = fmaf(n, -1.428606765330187e-06f, r);
    float p = 1.0f / 720;
    p = fmaf(p, r, 1.0f / 120);
    p = fmaf(p, r, 1.0f / 24);
    p = fmaf(p, r, 1.0f / 6);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
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

static void gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
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
            gemm(ta, tb, M, N, K, ops[3 * i], ta ? M : K, ops[3 * i + 1], tb ? K : N, 0.0f,
                 ops[3 * i + 2], N);
        }
}

/* C (M, N) = A (M, K) W (N, K)^T: the decoder's last layer in the likelihood estimate. */
void vk_matmul_t(int M, int N, int K, const float *A, const float *W, float *C) {
    gemm(0, 1, M, N, K, A, K, W, K, 0.0f, C, N);
}

void vk_gather(const uint8_t *images, const int64_t *index, int B, int D, float *x) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        const uint8_t *src = images + index[i] * (int64_t)D;
        float *dst = x + (int64_t)i * D;
#pragma omp simd
        for (int j = 0; j < D; j++) dst[j] = (float)src[j] / 255.0f;
    }
}

/* 16 lanes where the compiler may use AVX-512 (-march=native on such a CPU), else 8. */
#if defined(__AVX512F__)
#define LANES 16
#else
#define LANES 8
#endif
typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));

/* exp_neg on LANES lanes with GCC's vector types (the auto-vectoriser leaves it scalar). */
static inline vf exp_neg_v(vf x) {
    const vf lo = (vf){0} - 87.0f;
    const vi small = x < lo;
    x = (vf)(((vi)x & ~small) | ((vi)lo & small));
    const vf n = __builtin_convertvector(__builtin_convertvector(x * 1.44269504f - 0.5f, vi), vf);
    vf r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187e-06f;
    vf p = r * (1.0f / 720) + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)bits;
}

/* For v = l + b: returns sum max(v, 0) and leaves 1 + e^-|v| in ones. */
static float softplus_split(const float *restrict l, const float *restrict b,
                            float *restrict ones, int n) {
    vf acc = {0};
    const vi magnitude = (vi){0} + (int32_t)(~0u >> 1);
    int j = 0;
    for (; j + LANES <= n; j += LANES) {
        vf v, w;
        memcpy(&v, l + j, sizeof v);
        memcpy(&w, b + j, sizeof w);
        v += w;
        acc += (vf)((vi)v & (v > 0.0f));
        const vf one = 1.0f + exp_neg_v(-(vf)((vi)v & magnitude));
        memcpy(ones + j, &one, sizeof one);
    }
    float total = 0.0f;
    for (int t = 0; t < LANES; t++) total += acc[t];
    for (; j < n; j++) {
        const float v = l[j] + b[j];
        total += fmaxf(v, 0.0f);
        ones[j] = 1.0f + exp_neg(-fabsf(v));
    }
    return total;
}

/* sum_j log(ones[j]) for ones in (1, 2], as logs of products of up to ROWS terms per lane. */
static double log_of_products(const float *restrict ones, int n) {
    double logs = 0.0;
    int j = 0;
    while (j + LANES <= n) {
        vf p = (vf){0} + 1.0f;
        for (int g = 0; g < ROWS && j + LANES <= n; g++, j += LANES) {
            vf o;
            memcpy(&o, ones + j, sizeof o);
            p *= o;
        }
        for (int t = 0; t < LANES; t++) logs += logf(p[t]);
    }
    for (; j < n; j++) logs += logf(ones[j]);
    return logs;
}

static inline vf load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline vf select(vi mask, vf yes, vf no) { return (vf)(((vi)yes & mask) | ((vi)no & ~mask)); }

/* One row of the Bernoulli epilogue: v = l + b; returns sum max(v, 0) - x v; prod *= 1 +
 * e^-|v|; with grad, l = sigmoid(v) - x and part += it. */
static float bernoulli_row(float *restrict l, const float *restrict b, const float *restrict x,
                           float *restrict prod, float *restrict part, int D, int grad) {
    const vi magnitude = (vi){0} + (int32_t)(~0u >> 1);
    const vf zero = {0};
    vf acc = zero;
    int j = 0;
    for (; j + LANES <= D; j += LANES) {
        const vf v = load(l + j) + load(b + j), xv = load(x + j);
        const vf e = exp_neg_v(-(vf)((vi)v & magnitude)), r = 1.0f / (1.0f + e);
        acc += select(v > 0.0f, v, zero) - xv * v;
        const vf q = load(prod + j) * (1.0f + e);
        memcpy(prod + j, &q, sizeof q);
        if (grad) {
            const vf g = select(v >= 0.0f, r, e * r) - xv, s = load(part + j) + g;
            memcpy(l + j, &g, sizeof g);
            memcpy(part + j, &s, sizeof s);
        }
    }
    float total = 0.0f;
    for (int t = 0; t < LANES; t++) total += acc[t];
    for (; j < D; j++) {
        const float v = l[j] + b[j], e = exp_neg(-fabsf(v)), r = 1.0f / (1.0f + e);
        total += fmaxf(v, 0.0f) - x[j] * v;
        prod[j] *= 1.0f + e;
        if (grad) {
            l[j] = (v >= 0.0f ? r : e * r) - x[j];
            part[j] += l[j];
        }
    }
    return total;
}

/* h = max(h + b, 0) over B rows of N. */
static void bias_relu(float *h, const float *b, int B, int N) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        float *row = h + (int64_t)i * N;
#pragma omp simd
        for (int j = 0; j < N; j++) row[j] = fmaxf(row[j] + b[j], 0.0f);
    }
}

/* g *= (h > 0), then db = column sums of g (partials per block of ROWS rows in scratch). */
static void relu_back(float *g, const float *h, float *db, float *scratch, int B, int N) {
    const int blocks = (B + ROWS - 1) / ROWS;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < blocks; c++) {
        float *part = scratch + (int64_t)c * N;
        memset(part, 0, sizeof(float) * N);
        for (int i = c * ROWS; i < B && i < (c + 1) * ROWS; i++) {
            float *row = g + (int64_t)i * N;
            const float *hr = h + (int64_t)i * N;
#pragma omp simd
            for (int j = 0; j < N; j++) {
                row[j] = hr[j] > 0.0f ? row[j] : 0.0f;
                part[j] += row[j];
            }
        }
    }
    for (int j = 0; j < N; j++) {
        float s = 0.0f;
        for (int c = 0; c < blocks; c++) s += scratch[(int64_t)c * N + j];
        db[j] = s;
    }
}

/* l += b; the summed BCE(l, x); with grad, l becomes sigmoid(l) - x and db its column sums. */
static double bernoulli(float *l, const float *b, const float *x, float *db, float *scratch,
                        int B, int D, int grad) {
    const int blocks = (B + ROWS - 1) / ROWS;
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int c = 0; c < blocks; c++) {
        float *part = scratch + (int64_t)c * 2 * D, *prod = part + D;
        double linear = 0.0, logs = 0.0;
        for (int j = 0; j < D; j++) part[j] = 0.0f, prod[j] = 1.0f;
        for (int i = c * ROWS; i < B && i < (c + 1) * ROWS; i++)
            linear += bernoulli_row(l + (int64_t)i * D, b, x + (int64_t)i * D, prod, part, D, grad);
        for (int j = 0; j < D; j++) logs += logf(prod[j]); /* each a product of <= ROWS */
        total += linear + logs;
    }
    if (grad)
        for (int j = 0; j < D; j++) {
            float s = 0.0f;
            for (int c = 0; c < blocks; c++) s += scratch[(int64_t)c * 2 * D + j];
            db[j] = s;
        }
    return total;
}

/* mu, lv (B, L) get their biases; z = mu + eps exp(lv / 2); returns the summed KL. */
static double latent_forward(float *mu, float *lv, const float *bm, const float *bv,
                             const float *eps, float *sd, float *z, int B, int L) {
    double kl = 0.0;
    for (int i = 0; i < B * L; i++) {
        const int j = i % L;
        mu[i] += bm[j];
        lv[i] += bv[j];
        sd[i] = expf(0.5f * lv[i]);
        z[i] = mu[i] + eps[i] * sd[i];
        kl += -0.5 * (1.0 + lv[i] - mu[i] * mu[i] - expf(lv[i]));
    }
    return kl;
}

enum {
    W1, B1, WM, BM, WV, BV, W3, B3, W4, B4, /* parameters, then their gradients */
    GW1, GB1, GWM, GBM, GWV, GBV, GW3, GB3, GW4, GB4,
    X, H1, MU, LV, EPS, SD, Z, H3, LOGITS, DH3, DZ, DMU, DLV, DH1, SCRATCH, FLAT, SLOTS
};

/* The decoder's and the latent block's backward: dz, then dmu, dlv. */
static void latent_backward(float **p, int B, int H, int L, float w) {
    gemm(0, 0, B, L, H, p[DH3], H, p[W3], L, 0.0f, p[DZ], L); /* dz = dh3 W3 */
    for (int i = 0; i < B * L; i++) {
        const float sd = p[SD][i];
        p[DMU][i] = p[DZ][i] + w * p[MU][i];
        p[DLV][i] = 0.5f * p[DZ][i] * p[EPS][i] * sd + w * 0.5f * (expf(p[LV][i]) - 1.0f);
    }
}

/* The forward pass of B rows in p[X] with noise p[EPS], up to the logits (bias b4 not
 * yet added: the Bernoulli pass adds it); returns the summed KL. */
static double forward(int B, int D, int H, int L, float **p) {
    gemm(0, 1, B, H, D, p[X], D, p[W1], D, 0.0f, p[H1], H);
    bias_relu(p[H1], p[B1], B, H);
    gemm(0, 1, B, L, H, p[H1], H, p[WM], H, 0.0f, p[MU], L);
    gemm(0, 1, B, L, H, p[H1], H, p[WV], H, 0.0f, p[LV], L);
    double kl = latent_forward(p[MU], p[LV], p[BM], p[BV], p[EPS], p[SD], p[Z], B, L);
    gemm(0, 1, B, H, L, p[Z], L, p[W3], L, 0.0f, p[H3], H);
    bias_relu(p[H3], p[B3], B, H);
    gemm(0, 1, B, D, H, p[H3], H, p[W4], H, 0.0f, p[LOGITS], D);
    return kl;
}

/* One step's forward and backward on B rows already in p[X] (and noise in p[EPS]).
 * out: summed recon, summed KL, the squared gradient norm (when norm != 0). */
void vk_step(int B, int D, int H, int L, float w, int norm, int64_t flat_size, float **p,
             double *out) {
    out[1] = forward(B, D, H, L, p);
    out[0] = bernoulli(p[LOGITS], p[B4], p[X], p[GB4], p[SCRATCH], B, D, 1);
    gemm(1, 0, D, H, B, p[LOGITS], D, p[H3], H, 0.0f, p[GW4], H);   /* dW4 = dl^T h3 */
    gemm(0, 0, B, H, D, p[LOGITS], D, p[W4], H, 0.0f, p[DH3], H);   /* dh3 = dl W4 */
    relu_back(p[DH3], p[H3], p[GB3], p[SCRATCH], B, H);
    gemm(1, 0, H, L, B, p[DH3], H, p[Z], L, 0.0f, p[GW3], L);       /* dW3 = dh3^T z */
    latent_backward(p, B, H, L, w);
    memset(p[GBM], 0, sizeof(float) * L);
    memset(p[GBV], 0, sizeof(float) * L);
    for (int i = 0; i < B * L; i++) p[GBM][i % L] += p[DMU][i], p[GBV][i % L] += p[DLV][i];
    gemm(1, 0, L, H, B, p[DMU], L, p[H1], H, 0.0f, p[GWM], H);
    gemm(1, 0, L, H, B, p[DLV], L, p[H1], H, 0.0f, p[GWV], H);
    gemm(0, 0, B, H, L, p[DMU], L, p[WM], H, 0.0f, p[DH1], H);      /* dh1 = dmu Wm + dlv Wv */
    gemm(0, 0, B, H, L, p[DLV], L, p[WV], H, 1.0f, p[DH1], H);
    relu_back(p[DH1], p[H1], p[GB1], p[SCRATCH], B, H);
    gemm(1, 0, H, D, B, p[DH1], H, p[X], D, 0.0f, p[GW1], D);       /* dW1 = dh1^T x */
    double squares = 0.0;
    if (norm) {
        const float *g = p[FLAT];
#pragma omp parallel for simd schedule(static) reduction(+ : squares)
        for (int64_t i = 0; i < flat_size; i++) squares += (double)g[i] * g[i];
    }
    out[2] = squares;
}

/* Adam (Kingma & Ba 2015) as torch's fused kernel computes it, on the 10 parameters in
 * p with their gradients (times clip) in p[FLAT]; state: 10 first moments, 10 second
 * moments, then the 10 step counters (float scalars, as torch keeps them), in that order.
 * hyper: lr, beta1, beta2, eps. */
static void adam(float **p, float **state, const int64_t *sizes, const double *hyper,
                 float clip) {
    const double lr = hyper[0], b1 = hyper[1], b2 = hyper[2];
    const float eps = (float)hyper[3], one_b1 = (float)(1 - b1), fb2 = (float)b2;
    const float one_b2 = (float)(1 - b2);
    float size[10], root[10];
    const float *g[10];
    for (int t = 0, offset = 0; t < 10; offset += (int)sizes[t], t++) {
        const double step = (double)(*state[20 + t] += 1.0f);
        size[t] = (float)(lr / (1 - pow(b1, step)));
        root[t] = (float)sqrt(1 - pow(b2, step));
        g[t] = p[FLAT] + offset;
    }
#pragma omp parallel /* one team for all ten tensors: a fork per tensor costs as much */
    for (int t = 0; t < 10; t++) {
        float *w = p[W1 + t], *m = state[t], *v = state[10 + t];
        const float *gt = g[t], st = size[t], rt = root[t];
#pragma omp for simd schedule(static) nowait
        for (int64_t i = 0; i < sizes[t]; i++) {
            const float gi = gt[i] * clip;
            m[i] += one_b1 * (gi - m[i]);
            v[i] = v[i] * fb2 + one_b2 * gi * gi;
            w[i] -= st * m[i] / (sqrtf(v[i]) / rt + eps);
        }
    }
}

/* The sizes of the ten parameters, in the order of p: W1, b1, Wm, bm, Wv, bv, W3, b3, W4, b4. */
static int64_t param_sizes(int D, int H, int L, int64_t *sizes) {
    const int64_t s[10] = {(int64_t)H * D, H, (int64_t)L * H, L, (int64_t)L * H, L,
                           (int64_t)H * L, H, (int64_t)D * H, D};
    int64_t flat = 0;
    for (int t = 0; t < 10; t++) flat += sizes[t] = s[t];
    return flat;
}

/* One Adam update on its own (what the bench's profile times). */
void vk_adam(int D, int H, int L, float **p, float **state, const double *hyper) {
    int64_t sizes[10];
    param_sizes(D, H, L, sizes);
    adam(p, state, sizes, hyper, 1.0f);
}

/* `count` optimiser steps of the seed's epoch loop, as training.fast_mlp's Python step
 * takes them: rows order[B i ...] of images / 255 (the last step may have fewer: `rows`
 * in all), the KL weight weights[i], the noise eps[i] (B x L, drawn by the caller from
 * PyTorch's generator); a step whose loss or gradient norm is not finite, or whose norm
 * exceeds hyper[4] (when > 0), is skipped; hyper[5] (when > 0) clips the norm. Per
 * step, out gets recon, KL and 1 when skipped. */
void vk_train(int count, int B, int64_t rows, int D, int H, int L, const uint8_t *images,
              const int64_t *order, const float *weights, const float *eps, float **p,
              float **state, const double *hyper, double *out) {
    int64_t sizes[10];
    const int64_t flat = param_sizes(D, H, L, sizes);
    float *noise = p[EPS];
    for (int i = 0; i < count; i++) {
        const int b = rows - (int64_t)i * B < B ? (int)(rows - (int64_t)i * B) : B;
        vk_gather(images, order + (int64_t)i * B, b, D, p[X]);
        p[EPS] = (float *)eps + (int64_t)i * B * L;
        double res[3];
        vk_step(b, D, H, L, weights[i], 1, flat, p, res);
        const double norm = sqrt(res[2]);
        const int bad = !isfinite(res[0] + res[1]) || !isfinite(norm) ||
                        (hyper[4] > 0 && norm > hyper[4]);
        float clip = 1.0f;
        if (hyper[5] > 0 && hyper[5] / (norm + 1e-6) < 1) clip = (float)(hyper[5] / (norm + 1e-6));
        if (!bad) adam(p, state, sizes, hyper, clip);
        out[3 * i] = res[0], out[3 * i + 1] = res[1], out[3 * i + 2] = bad;
    }
    p[EPS] = noise;
}

/* The summed recon and KL of B rows in p[X] with noise p[EPS], no gradients. */
void vk_elbo(int B, int D, int H, int L, float **p, double *out) {
    out[1] = forward(B, D, H, L, p);
    out[0] = bernoulli(p[LOGITS], p[B4], p[X], 0, p[SCRATCH], B, D, 0);
}

/* sum_j softplus(l_ij + b_j) for each of R rows of l: the data-independent half of
 * -log p(x|z); the other half, x . l, comes from a matrix product. */
void vk_softplus_rows(const float *l, const float *b, int R, int D, double *out) {
#pragma omp parallel
    {
        float ones[4096];
#pragma omp for schedule(static)
        for (int i = 0; i < R; i++) {
            const float *restrict row = l + (int64_t)i * D;
            double logs = 0.0;
            float acc = 0.0f;
            for (int start = 0; start < D; start += 4096) {
                const int n = D - start < 4096 ? D - start : 4096;
                acc += softplus_split(row + start, b + start, ones, n);
                logs += log_of_products(ones, n);
            }
            out[i] = (double)acc + logs;
        }
    }
}

int vk_threads(void) { return omp_get_max_threads(); }
