// Enhance CUDA kernels: every op of the Backend protocol that cuDNN does not run. Compiled at run time by NVRTC to a
// cubin for the device's sm_XY (header-free: NVRTC 13 has no cuda_fp16.h built in), and on the host by the test
// emulator (Tests/Fixtures/cuda-emulator), which defines __global__, blockIdx … before including this file.
//
// Conventions. Logical indexing is N, C, P (P = y·W + x); every tensor argument comes with three strides in elements:
// xN (image to image), xC (channel to channel), xP (pixel to pixel). NCHW storage of S channels has strides
// (S·H·W, H·W, 1), NHWC (channels_last) storage (S·H·W, 1, S); a channel view of a larger tensor keeps its parent's
// strides (S = the parent's channel count), so the kernels need not know the layout. `cl` only picks the walk
// order (channels innermost for NHWC) so that neighbouring threads touch neighbouring addresses.
// Storage is float (suffix _f32) or IEEE binary16 bits (suffix _f16); arithmetic is always float.
// Every kernel walks its elements with a grid-stride loop, so any grid covers any size. No shared memory, no
// __syncthreads: reductions give each output line to one thread (the reduced lines here are short).

#if defined(__CUDACC_RTC__)
#define ENH_REGISTER(name)
#endif

typedef unsigned short enh_half;

// ---- storage <-> float -------------------------------------------------------------------------------------------
__device__ __forceinline__ float enh_h2f(enh_half h) {
#if defined(__CUDACC_RTC__)
    float f;
    asm("{ cvt.f32.f16 %0, %1; }" : "=f"(f) : "h"(h));
    return f;
#else
    unsigned int sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) { bits = sign; }
        else {                                  // subnormal: normalise
            int e = -1;
            do { man <<= 1; e++; } while ((man & 0x400u) == 0);
            bits = sign | ((unsigned int)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    return __int_as_float((int)bits);
#endif
}

__device__ __forceinline__ enh_half enh_f2h(float f) {
#if defined(__CUDACC_RTC__)
    enh_half h;
    asm("{ cvt.rn.f16.f32 %0, %1; }" : "=h"(h) : "f"(f));
    return h;
#else
    unsigned int x = (unsigned int)__float_as_int(f);
    unsigned int sign = (x >> 16) & 0x8000u;
    unsigned int ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (enh_half)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));   // inf / nan
    if (ax >= 0x477ff000u) return (enh_half)(sign | 0x7c00u);                                        // overflow
    if (ax < 0x38800000u) {                                                                          // subnormal or 0
        if (ax < 0x33000000u) return (enh_half)sign;
        unsigned int e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        unsigned int shift = 126 - e;           // 14 + (113 - e) - 1
        unsigned int r = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (r & 1u))) r++;
        return (enh_half)(sign | r);
    }
    unsigned int r = ((ax >> 13) - (112u << 10));
    unsigned int rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (enh_half)(sign | r);
#endif
}

__device__ __forceinline__ float enh_ld(const float *p, long long i) { return p[i]; }
__device__ __forceinline__ float enh_ld(const enh_half *p, long long i) { return enh_h2f(p[i]); }
__device__ __forceinline__ void enh_st(float *p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void enh_st(enh_half *p, long long i, float v) { p[i] = enh_f2h(v); }

// Element indices are 32-bit (the backend refuses launches over 2^31 elements): 64-bit division costs a GPU several
// times more than 32-bit, and these kernels divide once or twice per element. Offsets into tensors stay 64-bit.
__device__ __forceinline__ unsigned enh_first() { return blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ unsigned enh_step() { return gridDim.x * blockDim.x; }

// Element i of an N×C×P walk in memory order as (n, c, p): channels innermost when cl, pixels innermost otherwise.
__device__ __forceinline__ void enh_split(unsigned i, int C, unsigned P, int cl, unsigned &n, int &c, unsigned &p) {
    unsigned per = (unsigned)C * P;
    n = i / per;
    unsigned r = i - n * per;
    if (cl) { p = r / (unsigned)C; c = (int)(r - p * (unsigned)C); }
    else { c = (int)(r / P); p = r - (unsigned)c * P; }
}

// Offset in elements of (n, c, p) under strides (sN, sC, sP).
__device__ __forceinline__ long long enh_at(unsigned n, int c, unsigned p, long long sN, long long sC, long long sP) {
    return (long long)n * sN + (long long)c * sC + (long long)p * sP;
}

// Whether strides (sN, sC, sP) are those of a dense N×C×P tensor in the walk order: element i of the walk is then
// at offset i, and the element-wise kernels skip the index arithmetic (no views: most activations).
__device__ __forceinline__ bool enh_dense(long long sN, long long sC, long long sP, int C, unsigned P, int cl) {
    return sN == (long long)C * P && (cl ? (sC == 1 && sP == (long long)C) : (sC == (long long)P && sP == 1));
}

// ---- activations, the conv epilogue ------------------------------------------------------------------------------
// act: 0 none, 1 relu, 2 leakyReLU(a0), 3 scaledLeakyReLU(a0, gain a1), 4 PReLU(slopes[c]), 5 sigmoid
__device__ __forceinline__ float enh_act(float v, int act, float a0, float a1, const float *slopes, int c) {
    switch (act) {
    case 1: return v > 0.0f ? v : 0.0f;
    case 2: return v >= 0.0f ? v : v * a0;
    case 3: return (v >= 0.0f ? v : v * a0) * a1;
    case 4: return v >= 0.0f ? v : v * slopes[c];
    case 5: return 1.0f / (1.0f + expf(-v));
    default: return v;
    }
}

// y = ((x + bias[c]) · cs[n, c] → act) · outScale + resScale · res. x may be y (in place). bias, cs, res, slopes may
// be null. cs is N×C×1×1: element (n, c) at n·csN + c in either layout.
template <typename T>
__device__ void enh_epilogue(T *y, long long yN, long long yC, long long yP, const T *x, long long xN, long long xC,
                             long long xP, const float *bias, const T *cs, long long csN, const T *res, long long rN,
                             long long rC, long long rP, const float *slopes, int N, int C, int P, int cl, int act,
                             float a0, float a1, float outScale, float resScale) {
    unsigned total = (unsigned)N * (unsigned)C * (unsigned)P, per = (unsigned)C * (unsigned)P;
    bool dense = enh_dense(yN, yC, yP, C, P, cl) && enh_dense(xN, xC, xP, C, P, cl) && (!res || enh_dense(rN, rC, rP, C, P, cl));
    bool needC = bias || cs || act == 4;
    for (unsigned i = enh_first(); i < total; i += enh_step()) {
        unsigned n = 0; int c = 0;
        long long xo = i, ro = i, yo = i;
        if (dense) {
            // the walk position is the offset; the channel (and image) only where something per channel needs it
            if (needC) c = (int)(cl ? i % (unsigned)C : (i / (unsigned)P) % (unsigned)C);
            if (cs) n = i / per;
        } else {
            unsigned p;
            enh_split(i, C, (unsigned)P, cl, n, c, p);
            xo = enh_at(n, c, p, xN, xC, xP); ro = enh_at(n, c, p, rN, rC, rP); yo = enh_at(n, c, p, yN, yC, yP);
        }
        float v = enh_ld(x, xo);
        if (bias) v += bias[c];
        if (cs) v *= enh_ld(cs, (long long)n * csN + c);
        v = enh_act(v, act, a0, a1, slopes, c) * outScale;
        if (res) v += resScale * enh_ld(res, ro);
        enh_st(y, yo, v);
    }
}

// ---- element-wise ------------------------------------------------------------------------------------------------
// op: 0 x², 1 √x, 2 1/√(x+a0), 3 eˣ, 4 |x|, 5 tanh x, 6 clamp(a0, a1), 7 a0·x + a1
template <typename T>
__device__ void enh_unary(T *y, long long yN, long long yC, long long yP, const T *x, long long xN, long long xC,
                          long long xP, int N, int C, int P, int cl, int op, float a0, float a1) {
    unsigned total = (unsigned)N * (unsigned)C * (unsigned)P;
    bool dense = enh_dense(yN, yC, yP, C, P, cl) && enh_dense(xN, xC, xP, C, P, cl);
    for (unsigned i = enh_first(); i < total; i += enh_step()) {
        long long xo = i, yo = i;
        if (!dense) {
            unsigned n, p; int c;
            enh_split(i, C, (unsigned)P, cl, n, c, p);
            xo = enh_at(n, c, p, xN, xC, xP); yo = enh_at(n, c, p, yN, yC, yP);
        }
        float v = enh_ld(x, xo), o;
        switch (op) {
        case 0: o = v * v; break;
        case 1: o = sqrtf(v); break;
        case 2: o = 1.0f / sqrtf(v + a0); break;
        case 3: o = expf(v); break;
        case 4: o = fabsf(v); break;
        case 5: o = tanhf(v); break;
        case 6: o = fminf(fmaxf(v, a0), a1); break;
        default: o = a0 * v + a1; break;
        }
        enh_st(y, yo, o);
    }
}

// op: 0 alpha·x + beta·z, 1 x·z
template <typename T>
__device__ void enh_binary(T *y, long long yN, long long yC, long long yP, const T *x, long long xN, long long xC,
                           long long xP, const T *z, long long zN, long long zC, long long zP, int N, int C, int P,
                           int cl, int op, float alpha, float beta) {
    unsigned total = (unsigned)N * (unsigned)C * (unsigned)P;
    bool dense = enh_dense(yN, yC, yP, C, P, cl) && enh_dense(xN, xC, xP, C, P, cl) && enh_dense(zN, zC, zP, C, P, cl);
    for (unsigned i = enh_first(); i < total; i += enh_step()) {
        long long xo = i, zo = i, yo = i;
        if (!dense) {
            unsigned n, p; int c;
            enh_split(i, C, (unsigned)P, cl, n, c, p);
            xo = enh_at(n, c, p, xN, xC, xP); zo = enh_at(n, c, p, zN, zC, zP); yo = enh_at(n, c, p, yN, yC, yP);
        }
        float a = enh_ld(x, xo), b = enh_ld(z, zo);
        enh_st(y, yo, op == 0 ? alpha * a + beta * b : a * b);
    }
}

// One element from x[j] to y[i]: a plain copy within a storage type, a conversion between float and half.
__device__ __forceinline__ void enh_mv(float *y, long long i, const float *x, long long j) { y[i] = x[j]; }
__device__ __forceinline__ void enh_mv(enh_half *y, long long i, const enh_half *x, long long j) { y[i] = x[j]; }
__device__ __forceinline__ void enh_mv(enh_half *y, long long i, const float *x, long long j) { y[i] = enh_f2h(x[j]); }
__device__ __forceinline__ void enh_mv(float *y, long long i, const enh_half *x, long long j) { y[i] = enh_h2f(x[j]); }

// y = x over N×C×P, each with its own strides (copies, views, layout changes, precision casts at upload/download).
template <typename TO, typename TI>
__device__ void enh_copy(TO *y, long long yN, long long yC, long long yP, const TI *x, long long xN, long long xC,
                         long long xP, int N, int C, int P, int cl) {
    unsigned total = (unsigned)N * (unsigned)C * (unsigned)P;
    bool dense = enh_dense(yN, yC, yP, C, P, cl) && enh_dense(xN, xC, xP, C, P, cl);
    for (unsigned i = enh_first(); i < total; i += enh_step()) {
        long long xo = i, yo = i;
        if (!dense) {
            unsigned n, p; int c;
            enh_split(i, C, (unsigned)P, cl, n, c, p);
            xo = enh_at(n, c, p, xN, xC, xP); yo = enh_at(n, c, p, yN, yC, yP);
        }
        enh_mv(y, yo, x, xo);
    }
}

// ---- gathers: out[n, c, oy, ox] = in[n, f(c, oy, ox)] ------------------------------------------------------------
// kind: 0 pixel shuffle (r = p0), 1 pixel unshuffle (r = p0), 2 nearest upsample (factor p0),
//       3 nearest resize (scales fy, fx; PyTorch's floor rule), 4 reflection pad (top p0, left p1)
template <typename T>
__device__ void enh_gather(T *y, long long yN, long long yC, long long yP, const T *x, long long xN, long long xC,
                           long long xP, int N, int C, int OH, int OW, int IH, int IW, int cl, int kind, int p0, int p1,
                           float fy, float fx) {
    unsigned plane = (unsigned)OH * (unsigned)OW, total = (unsigned)N * (unsigned)C * plane;
    for (unsigned i = enh_first(); i < total; i += enh_step()) {
        unsigned n, p; int c;
        enh_split(i, C, plane, cl, n, c, p);
        int oy = (int)(p / (unsigned)OW), ox = (int)p - oy * OW;
        int sc, sy, sx;
        switch (kind) {
        case 0: sc = c * p0 * p0 + (oy % p0) * p0 + ox % p0; sy = oy / p0; sx = ox / p0; break;
        case 1: sc = c / (p0 * p0); sy = oy * p0 + (c % (p0 * p0)) / p0; sx = ox * p0 + c % p0; break;
        case 2: sc = c; sy = oy / p0; sx = ox / p0; break;
        case 3: {
            sc = c;
            sy = (int)floorf((float)oy * fy); if (sy > IH - 1) sy = IH - 1;
            sx = (int)floorf((float)ox * fx); if (sx > IW - 1) sx = IW - 1;
            break;
        }
        default: {
            sc = c;
            sy = oy - p0; if (sy < 0) sy = -sy; if (sy >= IH) sy = 2 * (IH - 1) - sy;
            sx = ox - p1; if (sx < 0) sx = -sx; if (sx >= IW) sx = 2 * (IW - 1) - sx;
            break;
        }
        }
        y[enh_at(n, c, p, yN, yC, yP)] = x[enh_at(n, sc, (unsigned)(sy * IW + sx), xN, xC, xP)];
    }
}

// upfirdn2d (StyleGAN2): zero-insert by up, pad pad0 before, true convolution with outer(taps, taps) (K ≤ 8),
// keep every down-th sample.
template <typename T>
__device__ void enh_upfirdn(T *y, long long yN, long long yC, long long yP, const T *x, long long xN, long long xC,
                            long long xP, int N, int C, int OH, int OW, int IH, int IW, int cl, int up, int down,
                            int pad0, int K, float t0, float t1, float t2, float t3, float t4, float t5, float t6,
                            float t7) {
    float t[8] = {t0, t1, t2, t3, t4, t5, t6, t7};
    unsigned plane = (unsigned)OH * (unsigned)OW, total = (unsigned)N * (unsigned)C * plane;
    for (unsigned i = enh_first(); i < total; i += enh_step()) {
        unsigned n, p; int c;
        enh_split(i, C, plane, cl, n, c, p);
        int oy = (int)(p / (unsigned)OW), ox = (int)p - oy * OW;
        const T *src = x + enh_at(n, c, 0, xN, xC, xP);
        float acc = 0.0f;
        for (int ty = 0; ty < K; ty++) {
            int u = oy * down + ty - pad0;
            if (u < 0 || u >= IH * up || u % up != 0) continue;
            int iy = u / up;
            float wy = t[K - 1 - ty];
            for (int tx = 0; tx < K; tx++) {
                int v = ox * down + tx - pad0;
                if (v < 0 || v >= IW * up || v % up != 0) continue;
                acc += wy * t[K - 1 - tx] * enh_ld(src, ((long long)iy * IW + v / up) * xP);
            }
        }
        enh_st(y, enh_at(n, c, p, yN, yC, yP), acc);
    }
}

// Max pooling, floor mode, padding counts as -inf.
template <typename T>
__device__ void enh_maxpool(T *y, long long yN, long long yC, long long yP, const T *x, long long xN, long long xC,
                            long long xP, int N, int C, int OH, int OW, int IH, int IW, int cl, int k, int s, int pd) {
    unsigned plane = (unsigned)OH * (unsigned)OW, total = (unsigned)N * (unsigned)C * plane;
    for (unsigned i = enh_first(); i < total; i += enh_step()) {
        unsigned n, p; int c;
        enh_split(i, C, plane, cl, n, c, p);
        int oy = (int)(p / (unsigned)OW), ox = (int)p - oy * OW;
        const T *src = x + enh_at(n, c, 0, xN, xC, xP);
        float m = __int_as_float(0xff800000);
        for (int ky = 0; ky < k; ky++) {
            int iy = oy * s - pd + ky;
            if (iy < 0 || iy >= IH) continue;
            for (int kx = 0; kx < k; kx++) {
                int ix = ox * s - pd + kx;
                if (ix >= 0 && ix < IW) m = fmaxf(m, enh_ld(src, ((long long)iy * IW + ix) * xP));
            }
        }
        enh_st(y, enh_at(n, c, p, yN, yC, yP), m);
    }
}

// ---- reductions (one thread per reduced line) --------------------------------------------------------------------
// Softmax over axis 1 (C), 2 (H) or 3 (W) of N×C×H×W.
template <typename T>
__device__ void enh_softmax(T *y, long long yN, long long yC, long long yP, const T *x, long long xN, long long xC,
                            long long xP, int N, int C, int H, int W, int axis) {
    unsigned perN = axis == 1 ? (unsigned)H * (unsigned)W : axis == 2 ? (unsigned)C * (unsigned)W : (unsigned)C * (unsigned)H;
    unsigned lines = (unsigned)N * perN;
    int len = axis == 1 ? C : axis == 2 ? H : W;
    for (unsigned l = enh_first(); l < lines; l += enh_step()) {
        unsigned n = l / perN, q = l - n * perN;
        int c0, p0;                 // the line's first element (channel, pixel); steps along the axis below
        if (axis == 1) { c0 = 0; p0 = (int)q; }                             // q = y·W + x
        else if (axis == 2) { c0 = (int)(q / W); p0 = (int)(q % W); }       // q = c·W + x
        else { c0 = (int)(q / H); p0 = (int)(q % H) * W; }                  // q = c·H + y
        long long xs = axis == 1 ? xC : axis == 2 ? (long long)W * xP : xP;
        long long ys = axis == 1 ? yC : axis == 2 ? (long long)W * yP : yP;
        const T *src = x + enh_at(n, c0, (unsigned)p0, xN, xC, xP);
        T *dst = y + enh_at(n, c0, (unsigned)p0, yN, yC, yP);
        float m = __int_as_float(0xff800000);
        for (int k = 0; k < len; k++) m = fmaxf(m, enh_ld(src, k * xs));
        float sum = 0.0f;
        for (int k = 0; k < len; k++) sum += expf(enh_ld(src, k * xs) - m);
        for (int k = 0; k < len; k++) enh_st(dst, k * ys, expf(enh_ld(src, k * xs) - m) / sum);
    }
}

// mode 0: y[n,0,p] = mean over c of x; mode 1: y[n,c,p] = x / √(mean over c of x² + eps) (PixelNorm).
template <typename T>
__device__ void enh_channel_reduce(T *y, long long yN, long long yC, long long yP, const T *x, long long xN,
                                   long long xC, long long xP, int N, int C, int P, int mode, float eps) {
    unsigned total = (unsigned)N * (unsigned)P;
    for (unsigned i = enh_first(); i < total; i += enh_step()) {
        unsigned n = i / (unsigned)P, p = i - n * (unsigned)P;
        const T *src = x + enh_at(n, 0, p, xN, xC, xP);
        float s = 0.0f;
        if (mode == 0) {
            for (int c = 0; c < C; c++) s += enh_ld(src, c * xC);
            enh_st(y, enh_at(n, 0, p, yN, yC, yP), s / (float)C);
        } else {
            for (int c = 0; c < C; c++) { float v = enh_ld(src, c * xC); s += v * v; }
            float d = sqrtf(s / (float)C + eps);
            for (int c = 0; c < C; c++) enh_st(y, enh_at(n, c, p, yN, yC, yP), enh_ld(src, c * xC) / d);
        }
    }
}

// ---- entry points: one per op and storage type -------------------------------------------------------------------
#define ENH_STRIDED(t) t##N, t##C, t##P
#define ENH_STRIDES(t) long long t##N, long long t##C, long long t##P

// Copies between float32 and half (uploads and downloads of half tensors), with strides on both sides.
extern "C" __global__ void enh_cast_f32_f16(enh_half *y, ENH_STRIDES(y), const float *x, ENH_STRIDES(x), int N, int C,
                                            int P, int cl) {
    enh_copy(y, ENH_STRIDED(y), x, ENH_STRIDED(x), N, C, P, cl);
}
ENH_REGISTER(enh_cast_f32_f16)

extern "C" __global__ void enh_cast_f16_f32(float *y, ENH_STRIDES(y), const enh_half *x, ENH_STRIDES(x), int N, int C,
                                            int P, int cl) {
    enh_copy(y, ENH_STRIDED(y), x, ENH_STRIDED(x), N, C, P, cl);
}
ENH_REGISTER(enh_cast_f16_f32)

// Dense half copy of float32 values (prepared weights, N elements; no strides).
extern "C" __global__ void enh_pack_f16(enh_half *y, const float *x, long long count) {
    for (unsigned i = enh_first(); i < (unsigned)count; i += enh_step()) y[i] = enh_f2h(x[i]);
}
ENH_REGISTER(enh_pack_f16)

#define ENH_ENTRIES(SUF, T)                                                                                          \
extern "C" __global__ void enh_epilogue_##SUF(T *y, ENH_STRIDES(y), const T *x, ENH_STRIDES(x), const float *bias,   \
        const T *cs, long long csN, const T *res, ENH_STRIDES(r), const float *slopes, int N, int C, int P, int cl,  \
        int act, float a0, float a1, float outScale, float resScale) {                                               \
    enh_epilogue(y, ENH_STRIDED(y), x, ENH_STRIDED(x), bias, cs, csN, res, ENH_STRIDED(r), slopes, N, C, P, cl, act, \
                 a0, a1, outScale, resScale);                                                                        \
}                                                                                                                    \
ENH_REGISTER(enh_epilogue_##SUF)                                                                                     \
extern "C" __global__ void enh_unary_##SUF(T *y, ENH_STRIDES(y), const T *x, ENH_STRIDES(x), int N, int C, int P,   \
        int cl, int op, float a0, float a1) {                                                                        \
    enh_unary(y, ENH_STRIDED(y), x, ENH_STRIDED(x), N, C, P, cl, op, a0, a1);                                        \
}                                                                                                                    \
ENH_REGISTER(enh_unary_##SUF)                                                                                        \
extern "C" __global__ void enh_binary_##SUF(T *y, ENH_STRIDES(y), const T *x, ENH_STRIDES(x), const T *z,           \
        ENH_STRIDES(z), int N, int C, int P, int cl, int op, float alpha, float beta) {                              \
    enh_binary(y, ENH_STRIDED(y), x, ENH_STRIDED(x), z, ENH_STRIDED(z), N, C, P, cl, op, alpha, beta);              \
}                                                                                                                    \
ENH_REGISTER(enh_binary_##SUF)                                                                                       \
extern "C" __global__ void enh_copy_##SUF(T *y, ENH_STRIDES(y), const T *x, ENH_STRIDES(x), int N, int C, int P,    \
        int cl) {                                                                                                    \
    enh_copy(y, ENH_STRIDED(y), x, ENH_STRIDED(x), N, C, P, cl);                                                     \
}                                                                                                                    \
ENH_REGISTER(enh_copy_##SUF)                                                                                         \
extern "C" __global__ void enh_gather_##SUF(T *y, ENH_STRIDES(y), const T *x, ENH_STRIDES(x), int N, int C, int OH,  \
        int OW, int IH, int IW, int cl, int kind, int p0, int p1, float fy, float fx) {                              \
    enh_gather(y, ENH_STRIDED(y), x, ENH_STRIDED(x), N, C, OH, OW, IH, IW, cl, kind, p0, p1, fy, fx);                \
}                                                                                                                    \
ENH_REGISTER(enh_gather_##SUF)                                                                                       \
extern "C" __global__ void enh_upfirdn_##SUF(T *y, ENH_STRIDES(y), const T *x, ENH_STRIDES(x), int N, int C, int OH, \
        int OW, int IH, int IW, int cl, int up, int down, int pad0, int K, float t0, float t1, float t2, float t3,    \
        float t4, float t5, float t6, float t7) {                                                                    \
    enh_upfirdn(y, ENH_STRIDED(y), x, ENH_STRIDED(x), N, C, OH, OW, IH, IW, cl, up, down, pad0, K, t0, t1, t2, t3,   \
                t4, t5, t6, t7);                                                                                     \
}                                                                                                                    \
ENH_REGISTER(enh_upfirdn_##SUF)                                                                                      \
extern "C" __global__ void enh_maxpool_##SUF(T *y, ENH_STRIDES(y), const T *x, ENH_STRIDES(x), int N, int C, int OH, \
        int OW, int IH, int IW, int cl, int k, int s, int p) {                                                       \
    enh_maxpool(y, ENH_STRIDED(y), x, ENH_STRIDED(x), N, C, OH, OW, IH, IW, cl, k, s, p);                            \
}                                                                                                                    \
ENH_REGISTER(enh_maxpool_##SUF)                                                                                      \
extern "C" __global__ void enh_softmax_##SUF(T *y, ENH_STRIDES(y), const T *x, ENH_STRIDES(x), int N, int C, int H,  \
        int W, int axis) {                                                                                           \
    enh_softmax(y, ENH_STRIDED(y), x, ENH_STRIDED(x), N, C, H, W, axis);                                             \
}                                                                                                                    \
ENH_REGISTER(enh_softmax_##SUF)                                                                                      \
extern "C" __global__ void enh_channel_reduce_##SUF(T *y, ENH_STRIDES(y), const T *x, ENH_STRIDES(x), int N, int C,  \
        int P, int mode, float eps) {                                                                                \
    enh_channel_reduce(y, ENH_STRIDED(y), x, ENH_STRIDED(x), N, C, P, mode, eps);                                    \
}                                                                                                                    \
ENH_REGISTER(enh_channel_reduce_##SUF)

ENH_ENTRIES(f32, float)
ENH_ENTRIES(f16, enh_half)
