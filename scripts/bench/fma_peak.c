// FP32 FMA peak of this CPU: each OpenMP thread runs independent vector FMA chains (AVX-512 when the compiler
// targets it: 16 chains in 32 zmm registers; else AVX2: 12 chains, so that the chains, the multiplier and the
// addend fit in the 16 ymm registers without spilling — 16 chains on AVX2 spilled to the stack and measured half
// the peak). Build: cc -O3 -march=native -fopenmp fma_peak.c -o fma_peak; run: ./fma_peak THREADS
// Prints "GFLOPS <total> VECTOR_BITS <bits> THREADS <n>".
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef __AVX512F__
typedef float vec __attribute__((vector_size(64)));
#define LANES 16
#define PIN(v) __asm__ volatile("" : "+v"(v))
#else
typedef float vec __attribute__((vector_size(32)));
#define LANES 8
#define PIN(v) __asm__ volatile("" : "+x"(v))
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long iters = argc > 2 ? atol(argv[2]) : 50000000L;
    omp_set_num_threads(threads);
    double t0 = now();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
#ifdef __AVX512F__
#define CHAINS 16
#else
#define CHAINS 12
#endif
        vec a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        vec a8 = {0}, a9 = {0}, a10 = {0}, a11 = {0};
#if CHAINS == 16
        vec a12 = {0}, a13 = {0}, a14 = {0}, a15 = {0};
#endif
        vec m = {0}, c = {0};
        for (int i = 0; i < LANES; i++) { m[i] = 0.999999f; c[i] = 1e-7f; }
        for (long i = 0; i < iters; i++) {
            a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c;
            a4 = a4 * m + c; a5 = a5 * m + c; a6 = a6 * m + c; a7 = a7 * m + c;
            a8 = a8 * m + c; a9 = a9 * m + c; a10 = a10 * m + c; a11 = a11 * m + c;
            PIN(a0); PIN(a1); PIN(a2); PIN(a3); PIN(a4); PIN(a5); PIN(a6); PIN(a7);
            PIN(a8); PIN(a9); PIN(a10); PIN(a11);
#if CHAINS == 16
            a12 = a12 * m + c; a13 = a13 * m + c; a14 = a14 * m + c; a15 = a15 * m + c;
            PIN(a12); PIN(a13); PIN(a14); PIN(a15);
#endif
        }
        vec s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
#if CHAINS == 16
        s += a12 + a13 + a14 + a15;
#endif
        for (int i = 0; i < LANES; i++) sink += s[i];
    }
    double dt = now() - t0;
    double flop = 2.0 * CHAINS * LANES * (double)iters * threads;
    printf("GFLOPS %.1f VECTOR_BITS %d THREADS %d SINK %g\n", flop / dt / 1e9, LANES * 32, threads, sink);
    return 0;
}
