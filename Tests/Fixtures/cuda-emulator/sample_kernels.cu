// Sample kernels for the emulator's self-test, written to the backend's kernel contract (see README.md):
// header-free, extern "C" __global__, ENH_REGISTER(name) after each kernel. loadtest.c also compiles this file
// with the real NVRTC for sm_86 and sm_90, so it must stay valid CUDA.
#ifdef __CUDACC_RTC__
#define ENH_REGISTER(name)
#endif

__device__ __forceinline__ float leaky(float x, float slope) { return x >= 0.0f ? x : x * slope; }

// float → IEEE half bits, round to nearest even
__device__ __forceinline__ unsigned short f32_to_f16(float f) {
#if defined(__CUDACC_RTC__)
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    unsigned int x = (unsigned int)__float_as_int(f);
    unsigned int sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a >= 0x47800000u) return (unsigned short)(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (a < 0x38800000u) {   // subnormal or zero
        if (a < 0x33000000u) return (unsigned short)sign;
        unsigned int m = (a & 0x7fffffu) | 0x800000u, shift = 126u - (a >> 23);
        unsigned int q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (unsigned short)(sign | q);
    }
    unsigned int h = (a - 0x38000000u) >> 13, rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (unsigned short)(sign | h);
#endif
}

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
#if defined(__CUDACC_RTC__)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    unsigned int sign = (unsigned int)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        if (m == 0) return __int_as_float((int)sign);
        float v = (float)m * 5.9604644775390625e-8f;   // m · 2^-24
        return sign ? -v : v;
    }
    if (e == 31) return __int_as_float((int)(sign | 0x7f800000u | (m << 13)));
    return __int_as_float((int)(sign | ((e + 112u) << 23) | (m << 13)));
#endif
}

// y = a·x + y over a 1-D grid
extern "C" __global__ void saxpy(float *__restrict__ y, const float *__restrict__ x, float a, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
ENH_REGISTER(saxpy)

// out[c][h][w] = leaky(in[c][h][w] · scale[c]) over a 2-D grid of 2-D blocks, one grid z-slice per channel
extern "C" __global__ void scale_leaky_2d(float *__restrict__ out, const float *__restrict__ in,
                                          const float *__restrict__ scale, int C, int H, int W, float slope) {
    int w = blockIdx.x * blockDim.x + threadIdx.x;
    int h = blockIdx.y * blockDim.y + threadIdx.y;
    int c = blockIdx.z;
    if (w >= W || h >= H || c >= C) return;
    long long i = ((long long)c * H + h) * W + w;
    out[i] = leaky(in[i] * scale[c], slope);
}
ENH_REGISTER(scale_leaky_2d)

// the math functions the backend's kernels use, in one expression per element
extern "C" __global__ void math_mix(float *__restrict__ out, const float *__restrict__ in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = in[i];
    float inf = __int_as_float(0x7f800000);
    float v = expf(-fabsf(x)) + tanhf(x) + sqrtf(fabsf(x)) + rsqrtf(1.0f + x * x) + floorf(x);
    v = fminf(fmaxf(v, -inf), inf) + (float)(__float_as_int(1.0f) == 0x3f800000);
    out[i] = v;
}
ENH_REGISTER(math_mix)

extern "C" __global__ void to_half(unsigned short *__restrict__ out, const float *__restrict__ in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = f32_to_f16(in[i]);
}
ENH_REGISTER(to_half)

extern "C" __global__ void from_half(float *__restrict__ out, const unsigned short *__restrict__ in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = f16_to_f32(in[i]);
}
ENH_REGISTER(from_half)

// A deliberately wrong kernel: `i <= n` lets one thread write one element past the end.
extern "C" __global__ void fill_off_by_one(float *out, float value, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = value;
}
ENH_REGISTER(fill_off_by_one)

// A racy kernel on purpose: each thread reads the element the next thread writes. Right only if thread i runs before
// thread i + 1, which a GPU does not promise (the emulator's ENH_EMU_THREAD_ORDER shows it).
extern "C" __global__ void shift_left_racy(float *a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i + 1 < n) a[i] = a[i + 1];
}
ENH_REGISTER(shift_left_racy)
