/* The epoch loop of vaekit's kernels: up to 16 optimiser steps per call (gather, step,
 * bad-step rule, clipping, Adam), so that Python runs between calls, not between steps. */
#include <math.h>
#include <stdint.h>

#include "kernels.h"

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

