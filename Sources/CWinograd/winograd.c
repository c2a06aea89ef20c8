#include "winograd.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>

#include "threads.h"

#define SQRT2 1.41421356237309504880f

#define VB 8
#define TGT __attribute__((target("avx2,fma")))
#define SFX(name) name##_b8
#include "kernels.inc"
#undef VB
#undef TGT
#undef SFX

#define VB 16
#define TGT __attribute__((target("avx512f")))
#define SFX(name) name##_b16
#include "kernels.inc"
#undef VB
#undef TGT
#undef SFX

int enh_wino_supported(int block) {
    __builtin_cpu_init();
    if (block == 8) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (block == 16) return __builtin_cpu_supports("avx512f");
    return 0;
}

size_t enh_wino_weights_bytes(int in_channels, int out_channels) {
    return (size_t)36 * in_channels * out_channels * sizeof(float);
}

// MARK: weights: U = G g Gᵀ

typedef struct { const float *oihw; const float *in_scale; int ic, oc; float *out; unsigned short *out_bf16; } weights_job;

// float → bfloat16, round to nearest even (what oneDNN's reorders and the avx512_bf16 conversions do; no NaNs here).
static inline unsigned short to_bf16(float f) {
    unsigned int b;
    __builtin_memcpy(&b, &f, 4);
    return (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

// G for the points 0, 1/√2, −1/√2, √2, −√2, ∞ (Toom-Cook: row j = (1, a, a²) / Π_{l≠j}(a − a_l)).
static inline void g_apply(float g0, float g1, float g2, float u[6]) {
    const float r2 = SQRT2;
    const float a = -2.0f / 3 * g0 - 1.0f / 3 * g2, b = 1.0f / 6 * g0 + 1.0f / 3 * g2;
    u[0] = g0;
    u[1] = a - r2 / 3 * g1;
    u[2] = a + r2 / 3 * g1;
    u[3] = b + r2 / 6 * g1;
    u[4] = b - r2 / 6 * g1;
    u[5] = g2;
}

// Each thread takes a range of input channels; for one input channel the 36 rows U[p][i][·] are written eight
// output channels at a time, so every store is a full run of consecutive floats (512→512: 62 ms with o outermost and
// scattered stores, 15 ms with scalar sequential ones).
static void weights_worker(void *p) {
    const weights_job *job = p;
    long i0, i1;
    share(job->ic, &i0, &i1);
    const long pstride = (long)job->ic * job->oc;
    enum { L = 8 };
    for (long i = i0; i < i1; i++) {
        float *out = job->out ? job->out + i * job->oc : 0;
        unsigned short *out16 = job->out_bf16 ? job->out_bf16 + i * job->oc : 0;
        for (long o0 = 0; o0 < job->oc; o0 += L) {
            const int lanes = job->oc - o0 < L ? (int)(job->oc - o0) : L;
            float g[9][L] = {{0}}, cols[3][6][L], u[6][6][L];
            const float f = job->in_scale ? job->in_scale[i] : 1.0f;
            for (int l = 0; l < lanes; l++)
                for (int k = 0; k < 9; k++) g[k][l] = f * job->oihw[((o0 + l) * job->ic + i) * 9 + k];
            for (int l = 0; l < L; l++) {
                for (int c = 0; c < 3; c++) {          // G on each column: 6×3
                    float t[6];
                    g_apply(g[c][l], g[3 + c][l], g[6 + c][l], t);
                    for (int r = 0; r < 6; r++) cols[c][r][l] = t[r];
                }
                for (int r = 0; r < 6; r++) {          // then on each row: 6×6
                    float t[6];
                    g_apply(cols[0][r][l], cols[1][r][l], cols[2][r][l], t);
                    for (int c = 0; c < 6; c++) u[r][c][l] = t[c];
                }
            }
            if (out16) {
                for (int q = 0; q < 36; q++)
                    for (int l = 0; l < lanes; l++) out16[q * pstride + o0 + l] = to_bf16(u[q / 6][q % 6][l]);
            } else {
                for (int q = 0; q < 36; q++)
                    for (int l = 0; l < lanes; l++) out[q * pstride + o0 + l] = u[q / 6][q % 6][l];
            }
        }
    }
}

void enh_wino_transform_weights(const float *oihw, const float *in_scale, int in_channels, int out_channels, float *out,
                                int threads) {
    weights_job job = {oihw, in_scale, in_channels, out_channels, out, 0};
    parallel(weights_worker, &job, threads);
}

void enh_wino_transform_weights_bf16(const float *oihw, const float *in_scale, int in_channels, int out_channels,
                                     unsigned short *out, int threads) {
    weights_job job = {oihw, in_scale, in_channels, out_channels, 0, out};
    parallel(weights_worker, &job, threads);
}

// MARK: the convolution

int enh_wino_default_tiles(int in_channels, int out_channels) {
    // Layers of ≥ 1024 channels in all (GPEN's, on maps of 64² and below) take 64 tiles per task: with fewer the
    // 36·in·out weights are streamed once per few tiles (1024→512 at 64², alone: 16 tiles 87 ms, 64 tiles 50 ms).
    // Others take 24: in the whole network a task's transformed tiles and products then stay in L2 beside the
    // weights (RealESRGAN_x2plus 512², AVX-512 path: 24 tiles 4.8-5.0 s, 56 tiles 5.5 s; AVX2 path 6.9 vs 7.0 s),
    // although a single layer timed alone prefers more (192→64: 56 tiles 20.6 ms, 28 tiles 21.7 ms).
    return in_channels + out_channels >= 1024 ? 64 : 24;
}

static int tiles_per_task(const enh_wino_args *a) {
    return a->tiles_per_task > 0 ? a->tiles_per_task : enh_wino_default_tiles(a->in_channels, a->out_channels);
}

static long thread_floats(const enh_wino_args *a) {
    const long f = 36L * tiles_per_task(a) * (a->in_channels + a->out_channels) + (long)((a->matmul_scratchpad_bytes + 3) / 4);
    return (f + 15) & ~15L;
}

size_t enh_wino_scratch_bytes(const enh_wino_args *a) {
    return (size_t)thread_floats(a) * (a->threads > 0 ? a->threads : 1) * sizeof(float);
}

typedef struct {
    const enh_wino_args *a;
    int tn, tiles, chunks, total;
    int next;                // next task (atomic)
    int status;              // first sgemm failure (atomic)
} conv_job;

static void fail(conv_job *job, int status) {
    int expected = 0;
    __atomic_compare_exchange_n(&job->status, &expected, status, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

// This thread's stream and memory objects for the matmul (operands at fixed places in its scratch).
typedef struct { dnnl_stream_t stream; dnnl_memory_t src, wei, dst, pad; int ready; } matmul_exec;

static int matmul_setup(const enh_wino_args *a, float *v, float *m, float *pad, matmul_exec *x) {
    const_dnnl_primitive_desc_t pd;
    dnnl_status_t st;
    if ((st = dnnl_primitive_get_primitive_desc((dnnl_primitive_t)a->matmul, &pd))) return st;
    dnnl_engine_t engine = (dnnl_engine_t)a->engine;
    if ((st = dnnl_stream_create(&x->stream, engine, dnnl_stream_default_flags))) return st;
    x->ready = 1;
    if ((st = dnnl_memory_create(&x->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), engine, v)) ||
        (st = dnnl_memory_create(&x->wei, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), engine, (void *)a->weights)) ||
        (st = dnnl_memory_create(&x->dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), engine, m)))
        return st;
    if (a->matmul_scratchpad_bytes &&
        (st = dnnl_memory_create(&x->pad, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), engine, pad)))
        return st;
    return 0;
}

static void matmul_teardown(matmul_exec *x) {
    if (x->src) dnnl_memory_destroy(x->src);
    if (x->wei) dnnl_memory_destroy(x->wei);
    if (x->dst) dnnl_memory_destroy(x->dst);
    if (x->pad) dnnl_memory_destroy(x->pad);
    if (x->ready) dnnl_stream_destroy(x->stream);
}

static void conv_worker(void *p) {
    conv_job *job = p;
    const enh_wino_args *a = job->a;
    const int ic = a->in_channels, oc = a->out_channels, tn = job->tn;
    float *v = a->scratch + thread_floats(a) * omp_get_thread_num();
    float *m = v + 36L * tn * ic;
    float *pad = m + 36L * tn * oc;
    const long vstride = (long)tn * ic, mstride = (long)tn * oc;
    matmul_exec x = {0};
    if (a->matmul) {
        const int st = matmul_setup(a, v, m, pad, &x);
        if (st) { fail(job, st); matmul_teardown(&x); return; }
    }
    for (;;) {
        const int task = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (task >= job->total || __atomic_load_n(&job->status, __ATOMIC_RELAXED) != 0) break;
        const int n = task / job->chunks, t0 = (task % job->chunks) * tn;
        const int count = job->tiles - t0 < tn ? job->tiles - t0 : tn;
        const float *src = a->src + n * a->src_batch_stride;
        if (a->block == 16) input_transform_b16(src, a->height, a->width, ic, t0, count, v, vstride, a->reflect, a->bf16);
        else input_transform_b8(src, a->height, a->width, ic, t0, count, v, vstride, a->reflect, 0);
        // Inside this parallel region oneDNN runs the matmul (or sgemm) on the calling thread only. The matmul always
        // multiplies tiles_per_task rows: those past `count` hold an earlier task's values and are never read.
        if (a->matmul) {
            dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, x.src}, {DNNL_ARG_WEIGHTS, x.wei}, {DNNL_ARG_DST, x.dst},
                                       {DNNL_ARG_SCRATCHPAD, x.pad}};
            dnnl_status_t st = dnnl_primitive_execute((dnnl_primitive_t)a->matmul, x.stream, x.pad ? 4 : 3, args);
            if (!st) st = dnnl_stream_wait(x.stream);
            if (st) { fail(job, st); break; }
        } else {
            for (int q = 0; q < 36; q++) {
                const dnnl_status_t st = dnnl_sgemm('N', 'N', count, oc, ic, 1.0f, v + q * vstride, ic,
                                                    a->weights + (long)q * ic * oc, oc, 0.0f, m + q * mstride, oc);
                if (st != dnnl_success) { fail(job, st); goto done; }
            }
        }
        if (a->block == 16) output_transform_b16(a, n, t0, count, m, mstride);
        else output_transform_b8(a, n, t0, count, m, mstride);
    }
done:
    matmul_teardown(&x);
}

int enh_wino_conv3x3(const enh_wino_args *a) {
    const int b = a->block;
    if ((b != 8 && b != 16) || !enh_wino_supported(b)) return -1;
    if (a->in_channels <= 0 || a->out_channels <= 0 || a->in_channels % b || a->out_channels % b) return -1;
    if (a->batch <= 0 || a->height <= 0 || a->width <= 0 || !a->src || !a->dst || !a->weights || !a->scratch) return -1;
    if (a->activation == ENH_WINO_ACT_PRELU && !a->slopes) return -1;
    if (a->reflect && (a->height < 2 || a->width < 2)) return -1;
    if ((uintptr_t)a->scratch % 64) return -1;
    if (a->bf16 && (b != 16 || !a->matmul)) return -1;
    conv_job job = {0};
    job.a = a;
    job.tn = tiles_per_task(a);
    job.tiles = ((a->height + 3) / 4) * ((a->width + 3) / 4);
    job.chunks = (job.tiles + job.tn - 1) / job.tn;
    job.total = job.chunks * a->batch;
    parallel(conv_worker, &job, a->threads);
    return job.status ? job.status : 0;
}
