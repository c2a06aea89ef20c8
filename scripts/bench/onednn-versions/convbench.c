// convbench: times oneDNN fp32 3×3 convolutions and the Winograd-style batched matmul on the project's shapes.
//
// One source for both oneDNN APIs: Debian's 2.6.3 (op descriptors + dnnl_primitive_desc_create, memory descriptors
// as structs) and 3.x (dnnl_*_primitive_desc_create, memory descriptors as opaque handles). Build:
//   gcc -O2 -fopenmp convbench.c -o convbench -ldnnl                                   (2.6.3 from /usr/include)
//   gcc -O2 -fopenmp -I WHEEL/include convbench.c -o convbench3 -L WHEEL/lib -l:libdnnl.so.3 -Wl,-rpath,WHEEL/lib
//
// Usage:
//   convbench info                  version (header and library) and the ISA oneDNN uses
//   convbench conv IC OC H W        batch 1, 3×3, stride 1, pad 1, bias; algorithms direct and winograd
//   convbench matmul IC OC T        [36,T,IC]·[36,IC,OC] → [36,T,OC], plain row-major, one matmul per OpenMP thread
// Environment: CONVBENCH_SAMPLES (timed samples, default 5), CONVBENCH_MIN_MS (shortest sample, default 50),
// CONVBENCH_ALGS (comma list of direct,winograd; default both), OMP_NUM_THREADS, ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA.
//
// Output, tab-separated, one line per measured primitive:
//   RESULT ver isa kind alg IC OC d1 d2 gflop wall_ms gflops_wall gflops_cpu_per_core threads max_err impl
// (conv: d1×d2 = H×W; matmul: d1 = T, d2 = 36), or SKIP ver isa kind alg IC OC d1 d2 reason when oneDNN has no
// implementation. Each result is checked against a float64 reference on sampled outputs; max_err is
// |got − ref| / Σ|terms|, and a value over 1e-3 also prints CHECKFAIL and makes the exit status 2.

#define _GNU_SOURCE
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK_TOL 1e-3

// MARK: the two APIs

#if DNNL_VERSION_MAJOR >= 3
typedef dnnl_memory_desc_t md_t;        // an opaque handle that must be destroyed
typedef const_dnnl_memory_desc_t cmd_t; // what the API takes and the queries return
#define MD(m) (m)
static md_t md_make(int nd, const dnnl_dims_t dims, dnnl_format_tag_t tag) {
    md_t m = NULL;
    if (dnnl_memory_desc_create_with_tag(&m, nd, dims, dnnl_f32, tag) != dnnl_success) {
        fprintf(stderr, "memory_desc_create_with_tag failed\n");
        exit(1);
    }
    return m;
}
static void md_free(md_t m) { dnnl_memory_desc_destroy(m); }
#else
typedef dnnl_memory_desc_t md_t;        // a plain struct
typedef const dnnl_memory_desc_t *cmd_t;
#define MD(m) (&(m))
static md_t md_make(int nd, const dnnl_dims_t dims, dnnl_format_tag_t tag) {
    md_t m;
    if (dnnl_memory_desc_init_by_tag(&m, nd, dims, dnnl_f32, tag) != dnnl_success) {
        fprintf(stderr, "memory_desc_init_by_tag failed\n");
        exit(1);
    }
    return m;
}
static void md_free(md_t m) { (void)m; }
#endif

static dnnl_status_t conv_pd_create(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, dnnl_alg_kind_t alg, cmd_t src,
                                    cmd_t wei, cmd_t bia, cmd_t dst, const_dnnl_primitive_attr_t attr) {
    const dnnl_dims_t strides = {1, 1}, pad = {1, 1};
#if DNNL_VERSION_MAJOR >= 3
    const dnnl_dims_t dilates = {0, 0};
    return dnnl_convolution_forward_primitive_desc_create(pd, eng, dnnl_forward_inference, alg, src, wei, bia, dst,
                                                          strides, dilates, pad, pad, attr);
#else
    dnnl_convolution_desc_t cd;
    dnnl_status_t st = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, src, wei, bia, dst,
                                                          strides, pad, pad);
    return st != dnnl_success ? st : dnnl_primitive_desc_create(pd, &cd, attr, eng, NULL);
#endif
}

static dnnl_status_t matmul_pd_create(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, cmd_t src, cmd_t wei, cmd_t dst,
                                      const_dnnl_primitive_attr_t attr) {
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_matmul_primitive_desc_create(pd, eng, src, wei, NULL, dst, attr);
#else
    dnnl_matmul_desc_t d;
    dnnl_status_t st = dnnl_matmul_desc_init(&d, src, wei, NULL, dst);
    return st != dnnl_success ? st : dnnl_primitive_desc_create(pd, &d, attr, eng, NULL);
#endif
}

// MARK: helpers

static void ok(dnnl_status_t st, const char *what) {
    if (st != dnnl_success) {
        fprintf(stderr, "convbench: %s failed (status %d)\n", what, (int)st);
        exit(1);
    }
}

static const char *status_name(dnnl_status_t st) {
    switch ((int)st) {
    case 1: return "out_of_memory";
    case 2: return "invalid_arguments";
    case 3: return "unimplemented";
    case 5: return "runtime_error";
    default: return "error";
    }
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
#if DNNL_VERSION_MAJOR >= 3
    case dnnl_cpu_isa_avx2_vnni_2: return "avx2_vnni_2";
    case dnnl_cpu_isa_avx512_core_fp16: return "avx512_core_fp16";
    case dnnl_cpu_isa_avx512_core_amx_fp16: return "avx512_core_amx_fp16";
#endif
    default: return "other";
    }
}

// AVX-512 (avx512_core and everything above it) → 16-channel blocks, else 8. The enum values are bit sets.
static int has_avx512(void) {
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core) == (unsigned)dnnl_cpu_isa_avx512_core;
}

static double now_wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double now_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int env_int(const char *name, int def) {
    const char *s = getenv(name);
    return s && *s ? atoi(s) : def;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Deterministic values in [-1, 1) from an index and a stream id (integer mixing, no global state).
static float det_value(uint64_t i, uint64_t stream) {
    uint64_t x = i * 0x9e3779b97f4a7c15ull + stream * 0xd1b54a32d192ed03ull + 0x2545f4914f6cdd1dull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (float)((double)(x >> 40) / (double)(1ull << 23) - 1.0);
}

static void *alloc64(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63)) {
        fprintf(stderr, "convbench: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static const char *ver_string(void) {
    static char buf[32];
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
    return buf;
}

static const char *impl_of(const_dnnl_primitive_desc_t pd) {
    const char *s = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success || !s) return "?";
    return s;
}

typedef struct {
    int samples;
    double min_s;
} timing_cfg;

typedef struct {
    double wall, cpu; // median seconds per execution: wall clock, process CPU time (all threads)
} timing;

// Sample medians of `reps` executions each, reps chosen so that one sample lasts at least cfg.min_s.
static timing time_primitive(dnnl_primitive_t prim, dnnl_stream_t s, int nargs, const dnnl_exec_arg_t *args,
                             timing_cfg cfg) {
    ok(dnnl_primitive_execute(prim, s, nargs, args), "execute");    // warm-up (JIT caches, page faults)
    ok(dnnl_stream_wait(s), "stream_wait");
    double t = now_wall();
    ok(dnnl_primitive_execute(prim, s, nargs, args), "execute");    // calibration
    ok(dnnl_stream_wait(s), "stream_wait");
    t = now_wall() - t;
    int reps = t >= cfg.min_s ? 1 : (int)ceil(cfg.min_s / (t > 1e-7 ? t : 1e-7));
    double *w = calloc(cfg.samples, sizeof *w), *c = calloc(cfg.samples, sizeof *c);
    for (int i = 0; i < cfg.samples; i++) {
        const double w0 = now_wall(), c0 = now_cpu();
        for (int r = 0; r < reps; r++) ok(dnnl_primitive_execute(prim, s, nargs, args), "execute");
        ok(dnnl_stream_wait(s), "stream_wait");
        w[i] = (now_wall() - w0) / reps;
        c[i] = (now_cpu() - c0) / reps;
    }
    timing r = {median(w, cfg.samples), median(c, cfg.samples)};
    free(w);
    free(c);
    return r;
}

// Memory object over caller-owned storage.
static dnnl_memory_t mem(cmd_t md, dnnl_engine_t eng, void *p) {
    dnnl_memory_t m;
    ok(dnnl_memory_create(&m, md, eng, p), "memory_create");
    return m;
}

// One reorder src → dst (both caller-owned), run once.
static void reorder(cmd_t src_md, void *src, cmd_t dst_md, void *dst, dnnl_engine_t eng, dnnl_stream_t s) {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    ok(dnnl_reorder_primitive_desc_create(&pd, src_md, eng, dst_md, eng, NULL), "reorder_primitive_desc_create");
    ok(dnnl_primitive_create(&p, pd), "reorder primitive_create");
    dnnl_memory_t a = mem(src_md, eng, src), b = mem(dst_md, eng, dst);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, a}, {DNNL_ARG_DST, b}};
    ok(dnnl_primitive_execute(p, s, 2, args), "reorder execute");
    ok(dnnl_stream_wait(s), "stream_wait");
    dnnl_memory_destroy(a);
    dnnl_memory_destroy(b);
    dnnl_primitive_destroy(p);
    dnnl_primitive_desc_destroy(pd);
}

static size_t scratchpad_bytes(const_dnnl_primitive_desc_t pd) {
    cmd_t md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static dnnl_primitive_attr_t user_scratchpad_attr(void) {
    dnnl_primitive_attr_t attr;
    ok(dnnl_primitive_attr_create(&attr), "primitive_attr_create");
    ok(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "set_scratchpad_mode");
    return attr;
}

static void print_result(const char *kind, const char *alg, int ic, int oc, int d1, int d2, double flop, timing t,
                         double err, const char *impl) {
    const int threads = omp_get_max_threads();
    printf("RESULT\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.4f\t%.3f\t%.1f\t%.1f\t%d\t%.2e\t%s\n", ver_string(),
           isa_name(dnnl_get_effective_cpu_isa()), kind, alg, ic, oc, d1, d2, flop * 1e-9, t.wall * 1e3,
           flop / t.wall * 1e-9, flop / t.cpu * 1e-9, threads, err, impl);
    fflush(stdout);
}

// MARK: convolution

// Offset of (c, h, w) in a batch-1 nChw{B}c tensor.
static inline size_t blk(int c, int h, int w, int H, int W, int B) {
    return (((size_t)(c / B) * H + h) * W + w) * B + c % B;
}

static int bench_conv(int ic, int oc, int H, int W, timing_cfg cfg, const char *algs) {
    dnnl_engine_t eng;
    dnnl_stream_t s;
    ok(dnnl_engine_create(&eng, dnnl_cpu, 0), "engine_create");
    ok(dnnl_stream_create(&s, eng, dnnl_stream_default_flags), "stream_create");
    const int B = has_avx512() ? 16 : 8;
    const dnnl_format_tag_t act = B == 16 ? dnnl_nChw16c : dnnl_nChw8c;
    const dnnl_dims_t sd = {1, ic, H, W}, dd = {1, oc, H, W}, wd = {oc, ic, 3, 3}, bd = {oc};
    md_t src_md = md_make(4, sd, act), dst_md = md_make(4, dd, act), bia_md = md_make(1, bd, dnnl_a);
    md_t wany_md = md_make(4, wd, dnnl_format_tag_any), wplain_md = md_make(4, wd, dnnl_oihw);

    // Inputs: deterministic, written straight into the blocked layout; weights scaled like Kaiming init.
    float *src = alloc64((size_t)ic * H * W * 4), *dst = alloc64((size_t)oc * H * W * 4);
    float *wplain = alloc64((size_t)oc * ic * 9 * 4), *bias = alloc64((size_t)oc * 4);
    for (int c = 0; c < ic; c++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) src[blk(c, h, w, H, W, B)] = det_value(((size_t)c * H + h) * W + w, 1);
    const float wscale = 1.0f / sqrtf(9.0f * ic);
    for (size_t i = 0; i < (size_t)oc * ic * 9; i++) wplain[i] = wscale * det_value(i, 2);
    for (int o = 0; o < oc; o++) bias[o] = 0.1f * det_value(o, 3);

    const double flop = 2.0 * oc * ic * 9.0 * H * W;
    dnnl_primitive_attr_t attr = user_scratchpad_attr();
    int failed = 0;
    const struct { const char *name; dnnl_alg_kind_t alg; } list[] = {
        {"direct", dnnl_convolution_direct}, {"winograd", dnnl_convolution_winograd}};
    for (int a = 0; a < 2; a++) {
        if (!strstr(algs, list[a].name)) continue;
        dnnl_primitive_desc_t pd;
        dnnl_status_t st = conv_pd_create(&pd, eng, list[a].alg, MD(src_md), MD(wany_md), MD(bia_md), MD(dst_md),
                                          attr);
        if (st != dnnl_success) {
            printf("SKIP\t%s\t%s\tconv\t%s\t%d\t%d\t%d\t%d\t%s\n", ver_string(), isa_name(dnnl_get_effective_cpu_isa()),
                   list[a].name, ic, oc, H, W, status_name(st));
            continue;
        }
        // Weights into the layout the primitive chose, once, outside the timing.
        cmd_t wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        void *wei = alloc64(dnnl_memory_desc_get_size(wmd));
        reorder(MD(wplain_md), wplain, wmd, wei, eng, s);
        const size_t pad_bytes = scratchpad_bytes(pd);
        void *pad = alloc64(pad_bytes);
        dnnl_primitive_t prim;
        ok(dnnl_primitive_create(&prim, pd), "conv primitive_create");
        dnnl_memory_t ms = mem(MD(src_md), eng, src), mw = mem(wmd, eng, wei), mb = mem(MD(bia_md), eng, bias),
                      md = mem(MD(dst_md), eng, dst),
                      mp = pad_bytes ? mem(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), eng, pad)
                                     : NULL;
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb},
                                   {DNNL_ARG_DST, md}, {DNNL_ARG_SCRATCHPAD, mp}};
        memset(dst, 0, (size_t)oc * H * W * 4);
        const timing t = time_primitive(prim, s, mp ? 5 : 4, args, cfg);

        // Check sampled outputs (the four corners first: they exercise the padding) against float64.
        double err = 0;
        for (int k = 0; k < 256; k++) {
            int o = (int)((det_value(k, 4) + 1) * 0.5f * oc) % oc;
            int h = (int)((det_value(k, 5) + 1) * 0.5f * H) % H, w = (int)((det_value(k, 6) + 1) * 0.5f * W) % W;
            if (k < 4) { h = k & 1 ? H - 1 : 0; w = k & 2 ? W - 1 : 0; }
            double ref = bias[o], mag = fabs(bias[o]);
            for (int i = 0; i < ic; i++)
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++) {
                        const int y = h + kh - 1, x = w + kw - 1;
                        if (y < 0 || y >= H || x < 0 || x >= W) continue;
                        const double p = (double)wplain[((size_t)o * ic + i) * 9 + kh * 3 + kw] *
                                         src[blk(i, y, x, H, W, B)];
                        ref += p;
                        mag += fabs(p);
                    }
            const double e = fabs(dst[blk(o, h, w, H, W, B)] - ref) / (mag + 1e-30);
            if (!(e <= err)) err = isnan(e) ? INFINITY : e;
        }
        print_result("conv", list[a].name, ic, oc, H, W, flop, t, err, impl_of(pd));
        if (!(err <= CHECK_TOL)) {
            printf("CHECKFAIL\tconv %s %d->%d %dx%d max_err %.3g\n", list[a].name, ic, oc, H, W, err);
            failed = 1;
        }
        dnnl_memory_destroy(ms);
        dnnl_memory_destroy(mw);
        dnnl_memory_destroy(mb);
        dnnl_memory_destroy(md);
        if (mp) dnnl_memory_destroy(mp);
        dnnl_primitive_destroy(prim);
        dnnl_primitive_desc_destroy(pd);
        free(wei);
        free(pad);
    }
    dnnl_primitive_attr_destroy(attr);
    md_free(src_md);
    md_free(dst_md);
    md_free(bia_md);
    md_free(wany_md);
    md_free(wplain_md);
    free(src);
    free(dst);
    free(wplain);
    free(bias);
    dnnl_stream_destroy(s);
    dnnl_engine_destroy(eng);
    return failed;
}

// MARK: batched matmul (the project's Winograd GEMM)

// As in the project's Winograd convolution: the primitive is made outside any parallel region, then every OpenMP
// thread runs it on its own stream, scratchpad, src and dst (the weights are shared); inside the parallel region
// oneDNN runs each call on the calling thread alone.
static int bench_matmul(int ic, int oc, int T, timing_cfg cfg) {
    enum { P = 36 };
    dnnl_engine_t eng;
    ok(dnnl_engine_create(&eng, dnnl_cpu, 0), "engine_create");
    const dnnl_dims_t sd = {P, T, ic}, wd = {P, ic, oc}, dd = {P, T, oc};
    md_t src_md = md_make(3, sd, dnnl_abc), wei_md = md_make(3, wd, dnnl_abc), dst_md = md_make(3, dd, dnnl_abc);
    dnnl_primitive_attr_t attr = user_scratchpad_attr();
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = matmul_pd_create(&pd, eng, MD(src_md), MD(wei_md), MD(dst_md), attr);
    if (st != dnnl_success) {
        printf("SKIP\t%s\t%s\tmatmul\tplain\t%d\t%d\t%d\t%d\t%s\n", ver_string(), isa_name(dnnl_get_effective_cpu_isa()),
               ic, oc, T, P, status_name(st));
        return 0;
    }
    dnnl_primitive_t prim;
    ok(dnnl_primitive_create(&prim, pd), "matmul primitive_create");
    const size_t pad_bytes = scratchpad_bytes(pd);
    float *wei = alloc64((size_t)P * ic * oc * 4);
    const float wscale = 1.0f / sqrtf((float)ic);
    for (size_t i = 0; i < (size_t)P * ic * oc; i++) wei[i] = wscale * det_value(i, 7);

    const int nthr = omp_get_max_threads();
    float *src0 = NULL, *dst0 = NULL;  // thread 0's operands, kept for the check
    double *w = calloc(cfg.samples, sizeof *w), *c = calloc(cfg.samples, sizeof *c);
    int reps = 1, failed = 0;
    double w0 = 0, c0 = 0;
#pragma omp parallel num_threads(nthr)
    {
        const int tid = omp_get_thread_num();
        dnnl_stream_t s;
        ok(dnnl_stream_create(&s, eng, dnnl_stream_default_flags), "stream_create");
        float *src = alloc64((size_t)P * T * ic * 4), *dst = alloc64((size_t)P * T * oc * 4);
        void *pad = alloc64(pad_bytes);
        for (size_t i = 0; i < (size_t)P * T * ic; i++) src[i] = det_value(i + (size_t)tid * 1000003, 8);
        dnnl_memory_t ms = mem(MD(src_md), eng, src), mw = mem(MD(wei_md), eng, wei), md = mem(MD(dst_md), eng, dst),
                      mp = pad_bytes ? mem(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), eng, pad)
                                     : NULL;
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md},
                                   {DNNL_ARG_SCRATCHPAD, mp}};
        const int nargs = mp ? 4 : 3;
        if (tid == 0) { src0 = src; dst0 = dst; }
        for (int r = 0; r < 3; r++) { ok(dnnl_primitive_execute(prim, s, nargs, args), "execute"); }
        ok(dnnl_stream_wait(s), "stream_wait");
#pragma omp barrier
        // Calibration on thread 0 while the others run the same loop.
        {
            const double t = now_wall();
            for (int r = 0; r < 8; r++) ok(dnnl_primitive_execute(prim, s, nargs, args), "execute");
            ok(dnnl_stream_wait(s), "stream_wait");
            if (tid == 0) {
                const double per = (now_wall() - t) / 8;
                reps = per >= cfg.min_s ? 1 : (int)ceil(cfg.min_s / (per > 1e-7 ? per : 1e-7));
            }
        }
        for (int i = 0; i < cfg.samples; i++) {
#pragma omp barrier
            if (tid == 0) { w0 = now_wall(); c0 = now_cpu(); }
#pragma omp barrier
            for (int r = 0; r < reps; r++) ok(dnnl_primitive_execute(prim, s, nargs, args), "execute");
            ok(dnnl_stream_wait(s), "stream_wait");
#pragma omp barrier
            if (tid == 0) { w[i] = (now_wall() - w0) / reps; c[i] = (now_cpu() - c0) / reps; }
        }
#pragma omp barrier
        dnnl_memory_destroy(ms);
        dnnl_memory_destroy(mw);
        dnnl_memory_destroy(md);
        if (mp) dnnl_memory_destroy(mp);
        dnnl_stream_destroy(s);
        free(pad);
        if (tid != 0) { free(src); free(dst); }
    }
    // Every thread did one matmul per repetition: the rate counts all of them.
    const double flop = 2.0 * P * T * ic * oc;
    timing t = {median(w, cfg.samples) / nthr, median(c, cfg.samples) / nthr};

    double err = 0;
    for (int k = 0; k < 256; k++) {
        const int p = (int)((det_value(k, 9) + 1) * 0.5f * P) % P, row = (int)((det_value(k, 10) + 1) * 0.5f * T) % T;
        const int col = (int)((det_value(k, 11) + 1) * 0.5f * oc) % oc;
        double ref = 0, mag = 0;
        for (int i = 0; i < ic; i++) {
            const double v = (double)src0[((size_t)p * T + row) * ic + i] * wei[((size_t)p * ic + i) * oc + col];
            ref += v;
            mag += fabs(v);
        }
        const double e = fabs(dst0[((size_t)p * T + row) * oc + col] - ref) / (mag + 1e-30);
        if (!(e <= err)) err = isnan(e) ? INFINITY : e;
    }
    print_result("matmul", "plain", ic, oc, T, P, flop, t, err, impl_of(pd));
    if (!(err <= CHECK_TOL)) {
        printf("CHECKFAIL\tmatmul %d->%d T=%d max_err %.3g\n", ic, oc, T, err);
        failed = 1;
    }
    free(src0);
    free(dst0);
    free(wei);
    free(w);
    free(c);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    md_free(src_md);
    md_free(wei_md);
    md_free(dst_md);
    dnnl_engine_destroy(eng);
    return failed;
}

// MARK: main

static void usage(void) {
    fprintf(stderr, "usage: convbench info | conv IC OC H W | matmul IC OC T\n");
    exit(64);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    // The header this was compiled against must match the library that was loaded (a wrong rpath would mix them).
    if (dnnl_version()->major != DNNL_VERSION_MAJOR || dnnl_version()->minor != DNNL_VERSION_MINOR) {
        fprintf(stderr, "convbench: built for oneDNN %d.%d but loaded %s\n", DNNL_VERSION_MAJOR, DNNL_VERSION_MINOR,
                ver_string());
        return 1;
    }
    timing_cfg cfg = {env_int("CONVBENCH_SAMPLES", 5), env_int("CONVBENCH_MIN_MS", 50) * 1e-3};
    if (cfg.samples < 1) cfg.samples = 1;
    const char *algs = getenv("CONVBENCH_ALGS") ? getenv("CONVBENCH_ALGS") : "direct,winograd";
    if (!strcmp(argv[1], "info")) {
        const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
        printf("INFO\t%s\t%s\t0x%x\tnChw%dc\t%d\n", ver_string(), isa_name(isa), (unsigned)isa, has_avx512() ? 16 : 8,
               omp_get_max_threads());
        return 0;
    }
    if (!strcmp(argv[1], "conv") && argc == 6) {
        const int ic = atoi(argv[2]), oc = atoi(argv[3]), h = atoi(argv[4]), w = atoi(argv[5]);
        if (ic <= 0 || oc <= 0 || h <= 0 || w <= 0) usage();
        return bench_conv(ic, oc, h, w, cfg, algs) ? 2 : 0;
    }
    if (!strcmp(argv[1], "matmul") && argc == 5) {
        const int ic = atoi(argv[2]), oc = atoi(argv[3]), t = atoi(argv[4]);
        if (ic <= 0 || oc <= 0 || t <= 0) usage();
        return bench_matmul(ic, oc, t, cfg) ? 2 : 0;
    }
    usage();
}
