/* What the kernels' three files share: the gemm they all multiply with, the slots of the
 * pointer array that Python hands in (vaekit.training.fast_mlp), and the step. */
#ifndef VAEKIT_KERNELS_H
#define VAEKIT_KERNELS_H
#include <stdint.h>

/* C(M, N) = op(A) op(B) + beta C, row-major, through the sgemm vk_set_sgemm chose. */
/* hidden: not exported, so no library loaded earlier can stand in for it */
__attribute__((visibility("hidden"))) void vk_gemm(int ta, int tb, int M, int N, int K,
                                                   const float *A, int lda, const float *B,
                                                   int ldb, float beta, float *C, int ldc);

enum {
    W1, B1, WM, BM, WV, BV, W3, B3, W4, B4, /* parameters, then their gradients */
    GW1, GB1, GWM, GBM, GWV, GBV, GW3, GB3, GW4, GB4,
    X, H1, MU, LV, EPS, SD, Z, H3, LOGITS, DH3, DZ, DMU, DLV, DH1, SCRATCH, FLAT, SLOTS
};

void vk_gather(const uint8_t *images, const int64_t *index, int B, int D, float *x);
void vk_step(int B, int D, int H, int L, float w, int norm, int64_t flat_size, float **p,
             double *out);
#endif
