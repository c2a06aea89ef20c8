// Winograd F(4×4, 3×3) convolution (stride 1, zero or reflection padding 1, no groups) on channel-blocked activations (nChw8c with
// AVX2 + FMA, nChw16c with AVX-512), for the oneDNN backend: oneDNN 2.6 has no Winograd with AVX2 and, with AVX-512,
// none for channel views. The 36 per-point matrix products go through a oneDNN matmul (sgemm when none is given);
// the transforms and the epilogue (bias → channel scale → activation → output scale → residual) are ours. With `bf16`
// (AVX-512, `--precision bf16`) the transformed tiles and weights are rounded to bfloat16 and the products accumulate
// in f32 in a bf16 matmul: ≈ ×1.2 faster than f32 on a Zen 4, about five times direct bf16's error per layer.
//
// Interpolation points {0, ±1/√2, ±√2, ∞}: about half the rounding error of {0, ±1, ±2, ∞} (measured in
// ../shared/docs/cpu-speed.md §3).
#ifndef ENHANCE_WINOGRAD_H
#define ENHANCE_WINOGRAD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    ENH_WINO_ACT_NONE = 0,
    ENH_WINO_ACT_RELU = 1,
    ENH_WINO_ACT_LEAKY = 2,     // x > 0 ? x : alpha·x, times gain
    ENH_WINO_ACT_PRELU = 3,     // x > 0 ? x : slopes[c]·x
};

typedef struct {
    int batch, in_channels, out_channels, height, width;   // output size = input size
    int reflect;                                        // 0: zero padding 1; 1: reflection padding 1 (ReflectionPad2d(1)), height and width ≥ 2
    int block;                                          // 8 (AVX2) or 16 (AVX-512); channel counts are multiples of it
    const float *src; long src_batch_stride;            // floats between images (channel blocks are height·width·block apart)
    float *dst; long dst_batch_stride;
    const float *weights;                               // transformed: enh_wino_transform_weights' output
    const float *bias;                                  // [out_channels] or NULL
    const float *channel_scale; long channel_scale_batch_stride;  // [batch][out_channels] or NULL
    int activation; float alpha, gain; const float *slopes;       // gain multiplies the activation's result
    float output_scale;
    const float *residual; long residual_batch_stride; float residual_scale;   // residual: same layout as dst, or NULL
    int threads;                                        // OpenMP team size
    int tiles_per_task;                                 // 0: chosen from the channel counts
    float *scratch;                                     // enh_wino_scratch_bytes(args) bytes, 64-byte aligned
    void *engine;                                       // the dnnl_engine_t of `matmul`
    void *matmul;                                       // a dnnl_primitive_t, or NULL for sgemm: see below
    size_t matmul_scratchpad_bytes;                     // its user scratchpad (each thread gets its own)
    int bf16;                                           // 1: block 16 only; `weights` are bf16 (enh_wino_transform_weights_bf16),
                                                        // the transformed tiles are rounded to bf16 and `matmul` (required)
                                                        // multiplies bf16 × bf16 → f32
} enh_wino_args;

// `matmul`: a oneDNN matmul of [36, tiles_per_task, in] × [36, in, out] → [36, tiles_per_task, out], f32, plain row-major
// (abc) operands, scratchpad mode user. With AVX-512 oneDNN builds its brgemm matmul, ≈ 1.7× its sgemm on these small
// products (192→64: 100 vs 175 GFLOP/s per core); with AVX2 its gemm:jit, as fast as sgemm. Every task multiplies
// tiles_per_task rows; rows past a short last task's tiles hold earlier values and are never read.

/// Non-zero when this CPU can run the kernels for `block` (8: AVX2 + FMA, 16: AVX-512F).
int enh_wino_supported(int block);
/// Bytes of the transformed weights of an in→out 3×3 layer: 36 × in × out floats.
size_t enh_wino_weights_bytes(int in_channels, int out_channels);
/// U[p][i][o] = (G g Gᵀ)[p] of each OIHW 3×3 kernel g = weights[o][i] · in_scale[i] (in_scale NULL: 1), which folds a
/// per-input-channel scaling of the activations (GPEN's modulation) into the weights; runs on `threads` OpenMP threads.
void enh_wino_transform_weights(const float *oihw, const float *in_scale, int in_channels, int out_channels, float *out,
                                int threads);
/// The same rounded to bfloat16 (round to nearest even), the weights of a `bf16` convolution: 36 × in × out values.
void enh_wino_transform_weights_bf16(const float *oihw, const float *in_scale, int in_channels, int out_channels,
                                     unsigned short *out, int threads);
/// Scratch bytes `enh_wino_conv3x3` needs for these arguments (per-thread transformed tiles and products).
size_t enh_wino_scratch_bytes(const enh_wino_args *args);
/// The tiles per task used when `tiles_per_task` is 0.
int enh_wino_default_tiles(int in_channels, int out_channels);
/// Runs the convolution. Returns 0, or -1 for arguments it does not handle (block, channel counts, CPU), or the
/// oneDNN status of a failed matmul, sgemm or stream/memory creation.
int enh_wino_conv3x3(const enh_wino_args *args);

// The oneDNN backend's own element loops (loops.c), on `threads` OpenMP threads (0: OpenMP's default), over the
// planes (image i, channel block k) of a blocked (nChw16c / nChw8c) or plain (block 1) map, plane (i, k) at
// base + i·image_stride + k·plane_floats.
// dst = src, plane by plane (memcpy; src and dst do not overlap; their image strides may differ: channel views).
void enh_copy_planes(const float *src, float *dst, long images, long blocks, long plane_floats, long src_image,
                     long dst_image, int threads);
// PReLU: dst = src ≥ 0 ? src : src · slopes[k·block + c] for channel c of block k; `pixels` pixels of `block` floats
// per plane; dst equals src (in place) or does not overlap it.
void enh_prelu_planes(const float *src, float *dst, const float *slopes, long images, long blocks, long pixels, int block,
                      long image_stride, int threads);
// Reflect padding (PyTorch's ReflectionPad2d: the edge pixel is not repeated) of `planes` dense planes of h×w pixels of
// `block` floats into planes of (h + top + bottom)×(w + left + right); every pad < h and < w; src and dst do not overlap.
void enh_reflect_pad_planes(const float *src, float *dst, long planes, long h, long w, int block, long top, long bottom,
                            long left, long right, int threads);

#ifdef __cplusplus
}
#endif
#endif
