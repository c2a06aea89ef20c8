// OpenMP's threads for this target's loops (private to CWinograd). libgomp is oneDNN's OpenMP runtime: the same
// thread team as oneDNN's primitives, so the two never compete for cores.
#pragma once

extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned int flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);

// fn(job) on `threads` OpenMP threads (0: OpenMP's default).
static inline void parallel(void (*fn)(void *), void *job, int threads) {
    GOMP_parallel(fn, job, threads > 0 ? (unsigned)threads : 0, 0);
}

// This thread's equal share [begin, end) of n items.
static inline void share(long n, long *begin, long *end) {
    const long t = omp_get_thread_num(), nt = omp_get_num_threads();
    const long per = (n + nt - 1) / nt;
    *begin = t * per < n ? t * per : n;
    *end = *begin + per < n ? *begin + per : n;
}
