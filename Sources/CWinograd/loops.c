#include "winograd.h"

#include <string.h>

#include "threads.h"

// Element loops of the oneDNN backend's own (where oneDNN 2.6 has no fast primitive), in C so that the compiler
// vectorises them (Swift loops over the same pointers cannot be: they may alias, and ran element by element), on
// OpenMP's threads like every oneDNN primitive (Dispatch threads share the cores with OpenMP workers still spinning
// after the previous primitive).

// Planes (image i, channel block k) of `plane` floats at base + i·image + k·plane; each thread takes the same share of
// every plane (planes are few and large: a block of 16 channels of a whole map).
typedef struct {
    const float *src;
    float *dst;
    const float *slope;   // block·blocks slopes
    long images, blocks, plane, src_image, dst_image;
    int block;
} planes_job;

#define PRELU_PIXELS(B)                                                                            \
    for (long q = p0; q < p1; q++)                                                                 \
        for (int c = 0; c < (B); c++) { float v = s[q * (B) + c]; d[q * (B) + c] = v >= 0.0f ? v : v * a[c]; }

// s and d do not overlap
static void prelu_range(const float *restrict s, float *restrict d, const float *restrict a, long p0, long p1, int block) {
    if (block == 16) { PRELU_PIXELS(16) return; }
    if (block == 8) { PRELU_PIXELS(8) return; }
    PRELU_PIXELS(block)
}

// in place (s = d): one pointer, so that nothing may alias
static void prelu_range_in_place(float *restrict d, const float *restrict a, long p0, long p1, int block) {
    const float *s = d;
    if (block == 16) { PRELU_PIXELS(16) return; }
    if (block == 8) { PRELU_PIXELS(8) return; }
    PRELU_PIXELS(block)
}

static void prelu_worker(void *p) {
    const planes_job *j = p;
    const long pixels = j->plane / j->block;
    long b, e;
    share(pixels, &b, &e);
    for (long i = 0; i < j->images; i++)
        for (long k = 0; k < j->blocks; k++) {
            const float *s = j->src + i * j->src_image + k * j->plane;
            float *d = j->dst + i * j->dst_image + k * j->plane;
            if (s == d) prelu_range_in_place(d, j->slope + k * j->block, b, e, j->block);
            else prelu_range(s, d, j->slope + k * j->block, b, e, j->block);
        }
}

void enh_prelu_planes(const float *src, float *dst, const float *slopes, long images, long blocks, long pixels, int block,
                      long image, int threads) {
    planes_job j = {src, dst, slopes, images, blocks, pixels * block, image, image, block};
    parallel(prelu_worker, &j, threads);
}

static void copy_worker(void *p) {
    const planes_job *j = p;
    long b, e;
    share(j->plane, &b, &e);
    for (long i = 0; i < j->images; i++)
        for (long k = 0; k < j->blocks; k++)
            memcpy(j->dst + i * j->dst_image + k * j->plane + b, j->src + i * j->src_image + k * j->plane + b,
                   (size_t)(e - b) * sizeof(float));
}

void enh_copy_planes(const float *src, float *dst, long images, long blocks, long plane_floats, long src_image,
                     long dst_image, int threads) {
    planes_job j = {src, dst, 0, images, blocks, plane_floats, src_image, dst_image, 0};
    parallel(copy_worker, &j, threads);
}

typedef struct {
    const float *src;
    float *dst;
    long planes, h, w, top, bottom, left, right;
    int block;
} pad_job;

static void reflect_pad_worker(void *p) {
    const pad_job *j = p;
    const long b = j->block, oh = j->h + j->top + j->bottom, ow = j->w + j->left + j->right;
    long r0, r1;
    share(j->planes * oh, &r0, &r1);
    for (long r = r0; r < r1; r++) {
        const long plane = r / oh, oy = r % oh;
        long iy = oy - j->top;
        if (iy < 0) iy = -iy; else if (iy >= j->h) iy = 2 * (j->h - 1) - iy;
        const float *restrict s = j->src + (plane * j->h + iy) * j->w * b;
        float *restrict d = j->dst + (plane * oh + oy) * ow * b;
        memcpy(d + j->left * b, s, (size_t)(j->w * b) * sizeof(float));
        for (long ox = 0; ox < j->left; ox++) memcpy(d + ox * b, s + (j->left - ox) * b, (size_t)b * sizeof(float));
        for (long ox = 0; ox < j->right; ox++)
            memcpy(d + (j->left + j->w + ox) * b, s + (j->w - 2 - ox) * b, (size_t)b * sizeof(float));
    }
}

void enh_reflect_pad_planes(const float *src, float *dst, long planes, long h, long w, int block, long top, long bottom,
                            long left, long right, int threads) {
    pad_job j = {src, dst, planes, h, w, top, bottom, left, right, block};
    parallel(reflect_pad_worker, &j, threads);
}
