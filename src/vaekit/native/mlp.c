/* The MLP VAE's fused CPU kernels: one training step (forward, closed-form backward of
 * the Bernoulli -ELBO, the gradient's squared norm), the test-set -ELBO, and the
 * importance-weighted log p(x) of one image block. Matrix products go to gemm.c, the
 * element-wise passes are fused here, threaded with PyTorch's own OpenMP runtime; the
 * epoch loop with Adam is in train.c.
 *
 * Row-major throughout; W (out, in) as torch.nn.Linear stores it. Sums of
 * log(1 + e^-|l|) are taken as logs of products of ROWS terms (each in (1, 2], so a
 * product of 64 stays below 2^64): one log per 64 pixels instead of one each.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>

#include "kernels.h"

#define ROWS 64

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

/* The decoder's and the latent block's backward: dz, then dmu, dlv. */
static void latent_backward(float **p, int B, int H, int L, float w) {
    vk_gemm(0, 0, B, L, H, p[DH3], H, p[W3], L, 0.0f, p[DZ], L); /* dz = dh3 W3 */
    for (int i = 0; i < B * L; i++) {
        const float sd = p[SD][i];
        p[DMU][i] = p[DZ][i] + w * p[MU][i];
        p[DLV][i] = 0.5f * p[DZ][i] * p[EPS][i] * sd + w * 0.5f * (expf(p[LV][i]) - 1.0f);
    }
}

/* The forward pass of B rows in p[X] with noise p[EPS], up to the logits (bias b4 not
 * yet added: the Bernoulli pass adds it); returns the summed KL. */
static double forward(int B, int D, int H, int L, float **p) {
    vk_gemm(0, 1, B, H, D, p[X], D, p[W1], D, 0.0f, p[H1], H);
    bias_relu(p[H1], p[B1], B, H);
    vk_gemm(0, 1, B, L, H, p[H1], H, p[WM], H, 0.0f, p[MU], L);
    vk_gemm(0, 1, B, L, H, p[H1], H, p[WV], H, 0.0f, p[LV], L);
    double kl = latent_forward(p[MU], p[LV], p[BM], p[BV], p[EPS], p[SD], p[Z], B, L);
    vk_gemm(0, 1, B, H, L, p[Z], L, p[W3], L, 0.0f, p[H3], H);
    bias_relu(p[H3], p[B3], B, H);
    vk_gemm(0, 1, B, D, H, p[H3], H, p[W4], H, 0.0f, p[LOGITS], D);
    return kl;
}

/* One step's forward and backward on B rows already in p[X] (and noise in p[EPS]).
 * out: summed recon, summed KL, the squared gradient norm (when norm != 0). */
void vk_step(int B, int D, int H, int L, float w, int norm, int64_t flat_size, float **p,
             double *out) {
    out[1] = forward(B, D, H, L, p);
    out[0] = bernoulli(p[LOGITS], p[B4], p[X], p[GB4], p[SCRATCH], B, D, 1);
    vk_gemm(1, 0, D, H, B, p[LOGITS], D, p[H3], H, 0.0f, p[GW4], H);   /* dW4 = dl^T h3 */
    vk_gemm(0, 0, B, H, D, p[LOGITS], D, p[W4], H, 0.0f, p[DH3], H);   /* dh3 = dl W4 */
    relu_back(p[DH3], p[H3], p[GB3], p[SCRATCH], B, H);
    vk_gemm(1, 0, H, L, B, p[DH3], H, p[Z], L, 0.0f, p[GW3], L);       /* dW3 = dh3^T z */
    latent_backward(p, B, H, L, w);
    memset(p[GBM], 0, sizeof(float) * L);
    memset(p[GBV], 0, sizeof(float) * L);
    for (int i = 0; i < B * L; i++) p[GBM][i % L] += p[DMU][i], p[GBV][i % L] += p[DLV][i];
    vk_gemm(1, 0, L, H, B, p[DMU], L, p[H1], H, 0.0f, p[GWM], H);
    vk_gemm(1, 0, L, H, B, p[DLV], L, p[H1], H, 0.0f, p[GWV], H);
    vk_gemm(0, 0, B, H, L, p[DMU], L, p[WM], H, 0.0f, p[DH1], H);      /* dh1 = dmu Wm + dlv Wv */
    vk_gemm(0, 0, B, H, L, p[DLV], L, p[WV], H, 1.0f, p[DH1], H);
    relu_back(p[DH1], p[H1], p[GB1], p[SCRATCH], B, H);
    vk_gemm(1, 0, H, D, B, p[DH1], H, p[X], D, 0.0f, p[GW1], D);       /* dW1 = dh1^T x */
    double squares = 0.0;
    if (norm) {
        const float *g = p[FLAT];
#pragma omp parallel for simd schedule(static) reduction(+ : squares)
        for (int64_t i = 0; i < flat_size; i++) squares += (double)g[i] * g[i];
    }
    out[2] = squares;
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

