#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <xmmintrin.h>

// OpenMP entry points (omp.h is not on Swift's include path; libgomp is linked through libdnnl).
extern void omp_set_num_threads(int num_threads);
extern int omp_get_max_threads(void);
// libgomp's ABI entry point for a parallel region: runs fn(data) on every thread of a new team.
extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned int flags);

// Sets flush-to-zero and denormals-are-zero in MXCSR of the calling thread.
static inline void enhance_set_ftz_daz(void *unused) {
    (void)unused;
    _mm_setcsr(_mm_getcsr() | 0x8040);
}

// Sets FTZ/DAZ on the calling thread and on every OpenMP worker thread (num_threads = team size).
static inline void enhance_flush_denormals_all_threads(unsigned num_threads) {
    enhance_set_ftz_daz(0);
    GOMP_parallel(enhance_set_ftz_daz, 0, num_threads, 0);
}

// Writes MXCSR of the calling thread (restores the caller's floating-point mode after a primitive).
static inline void enhance_set_mxcsr(unsigned value) { _mm_setcsr(value); }

// Reads MXCSR of the calling thread.
static inline unsigned enhance_get_mxcsr(void) { return _mm_getcsr(); }
