// emulator.cpp — a host (CPU) emulator of the CUDA driver, NVRTC and cuDNN subset in Sources/CCUDA/include/ccuda.h,
// so that a backend written against CUDA can run its whole code path in tests on a machine without a GPU.
//
// One shared library, used under three names (libcuda.so.1, libnvrtc.so.13 and libcudnn.so.9 → the same file):
//   scripts/cuda-emulator-build OUT_DIR KERNELS_FILE
// Everything runs synchronously on host memory; "device pointers" are host addresses. See README.md.
//
// Layout of this file:
//   1. the CUDA C++ prelude the kernel source is compiled against, then the kernel source itself (ENH_KERNELS_FILE)
//   2. emulator state: device memory with guard zones, contexts, streams, events, modules
//   3. driver API        4. NVRTC        5. cuDNN        6. counters for tests (enh_emu_*)

#include "ccuda.h"
#include "cnvml.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <unistd.h>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <math.h>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// ═════════════════════════════ 1. CUDA C++ prelude + kernels ═════════════════════════════

namespace enh_emu {

// A registered kernel: its name, parameter count and a launcher that reads the parameters the way the driver does.
struct kernel_entry {
    std::string name;
    size_t arity;
    std::function<void(void **)> run;
    std::vector<size_t> sizes;   // bytes of each parameter (graph capture copies the values, as the driver does)
};

// Internal linkage on purpose: an inline function's static would be a GNU "unique" symbol, which the dynamic linker
// shares between two copies of this library loaded side by side (a test loads a private copy), so one copy's kernels
// would run from the other's registry — into unmapped code once that copy is unloaded.
static std::map<std::string, kernel_entry> &kernel_registry() {
    static std::map<std::string, kernel_entry> registry;
    return registry;
}

// kernelParams[i] points at the value of parameter i: unpack it as *(A_i *)kernelParams[i].
template <typename... A, size_t... I>
void call_unpacked(void (*fn)(A...), void **params, std::index_sequence<I...>) {
    fn(*static_cast<std::decay_t<A> *>(params[I])...);
}

struct registrar {
    template <typename... A>
    registrar(const char *name, void (*fn)(A...)) {
        static_assert((std::is_trivially_copyable_v<std::decay_t<A>> && ...),
                      "kernel parameters must be trivially copyable");
        kernel_registry()[name] = kernel_entry{name, sizeof...(A), [fn](void **params) {
                                                   call_unpacked(fn, params, std::index_sequence_for<A...>{});
                                               }, {sizeof(std::decay_t<A>)...}};
    }
};

}  // namespace enh_emu

// The kernel source is ordinary C++ once the names below exist. It is compiled inside namespace enh_kernels (its
// helpers cannot clash with the emulator's) and with hidden visibility (a kernel name cannot interpose on, or be
// interposed by, another library). Its kernels run one thread at a time, so it must not use __syncthreads,
// __shared__, atomics or warp operations: they are left undefined on purpose, so that using them fails the build.
#pragma GCC visibility push(hidden)
namespace enh_kernels {

struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };

// The built-in variables; cuLaunchKernel sets them before running each thread.
thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;
static constexpr int warpSize = 32;

#define ENH_EMULATOR 1
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline float __uint_as_float(unsigned int i) { float f; memcpy(&f, &i, 4); return f; }
static inline unsigned int __float_as_uint(float f) { unsigned int i; memcpy(&i, &f, 4); return i; }
static inline float __expf(float x) { return expf(x); }
static inline float __logf(float x) { return logf(x); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return fminf(fmaxf(x, 0.0f), 1.0f); }
template <typename T> static inline T __ldg(const T *p) { return *p; }
// CUDA's integer and float min/max overloads
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
static inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }

// The kernel source writes ENH_REGISTER(name) after each kernel (and defines it empty itself under NVRTC).
#define ENH_REGISTER(name) static ::enh_emu::registrar enh_emu_registrar_##name(#name, &name);

#ifdef ENH_KERNELS_FILE
#include ENH_KERNELS_FILE
#endif

}  // namespace enh_kernels
#pragma GCC visibility pop

// ═════════════════════════════ 2. emulator state ═════════════════════════════

// Opaque handle types of ccuda.h, given bodies here.
struct CUctx_st { int device; };
struct CUstream_st { unsigned int flags; int device; };   // device: its context's, for sticky errors
struct CUevent_st {
    unsigned int flags;
    bool recorded;
    std::chrono::steady_clock::time_point when;
    CUstream stream;   // where it was last recorded (its work runs first at cuEventSynchronize)
};
struct CUmod_st;
struct CUfunc_st {
    const enh_emu::kernel_entry *kernel;
    CUmod_st *module;
};
namespace enh_emu { struct graph_body; }
struct CUgraph_st { enh_emu::graph_body *body; };
struct CUgraphExec_st { enh_emu::graph_body *body; std::string poisoned; };
struct CUmod_st {
    int arch;
    std::vector<CUfunc_st *> functions;
};

namespace enh_emu {

constexpr int kDriverVersion = 13000;           // what driver 580 reports (CUDA 13.0)
constexpr int kSMMajor = 9, kSMMinor = 0, kSMCount = 4;
constexpr size_t kTotalMemory = 8ull << 30;     // 8 GiB, or ENH_EMU_MEMORY bytes (a GPU other processes fill)
constexpr size_t kAlign = 256;                  // cuMemAlloc's alignment
constexpr size_t kFrontGuard = 256;             // guard bytes before each block (keeps the 256 B alignment)
constexpr size_t kBackGuard = 4096;             // guard bytes right after the last byte of each block
constexpr unsigned char kGuardByte = 0xA5;
constexpr unsigned char kFreshByte = 0xFF;      // new allocations read as NaN (float and half)
constexpr uint32_t kCubinMagic = 0x4d454e45;    // "ENEM" little-endian: the emulator's fake cubin
constexpr char kPTXHeader[] = "// enhance emulator PTX .target compute_";   // its PTX: + arch, a newline, the source hash
constexpr size_t kWorkspaceBytes = 4096;        // what every cuDNN algorithm "needs"

// Device memory: 8 GiB, or ENH_EMU_MEMORY bytes (suffix K, M or G: powers of 1024), for out-of-memory paths.
size_t total_memory() {
    static const size_t total = [] {
        const char *e = getenv("ENH_EMU_MEMORY");
        if (!e || !*e) return kTotalMemory;
        char *end = nullptr;
        double v = strtod(e, &end);
        const int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
        return v > 0 ? (size_t)(v * (double)(1ull << shift)) : kTotalMemory;
    }();
    return total;
}

// A device allocation: [front guard | size bytes | back guard] inside one host allocation.
struct block {
    void *base;
    uintptr_t user;
    size_t size;
    unsigned long long serial;   // 1 for the first cuMemAlloc of the process, 2 for the next, …
};

std::recursive_mutex mu;   // one lock for all state; kernels run while it is held (one "stream" at a time)
std::map<uintptr_t, block> blocks;   // by user address
std::map<const void *, size_t> host_blocks;   // cuMemHostAlloc: page-locked memory, by start
std::set<CUstream> streams;
std::set<CUevent> events;
std::set<CUmodule> modules;
std::set<CUfunction> functions;
size_t live_bytes = 0, peak_bytes = 0;
unsigned long long launches = 0, alloc_serial = 0;
std::string last_kernel = "(none)";
bool initialized = false;
// One primary context per device (ENH_EMU_DEVICES); device memory is one pool whichever context allocates.
int primary_refs[8] = {0};
CUctx_st primary_contexts[8] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};

// A context retained and not yet released.
bool live_context(CUcontext c) { return c >= primary_contexts && c < primary_contexts + 8 && primary_refs[c->device] > 0; }

// Contexts retained now.
int live_contexts() { int n = 0; for (int r : primary_refs) n += r > 0; return n; }
thread_local CUcontext current_context = nullptr;

using lock = std::lock_guard<std::recursive_mutex>;

void note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("enh-emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

// Sticky errors (section 3d): an illegal address, a launch failure and their kin leave a context broken until the
// process ends ("any further CUDA work will return the same error"). The first one a device's work returns is kept
// here, and from then on every call that needs that context returns it (cuDNN: EXECUTION_FAILED_CUDA_DRIVER).
CUresult sticky[8] = {};

bool is_sticky(CUresult r) {
    switch ((int)r) {
    case 700: case 702: case 710: case 714: case 715: case 716: case 717: case 718: case 719: return true;
    default: return false;
    }
}

// The calling thread's device (0 without a current context).
int current_device() { return current_context ? current_context->device : 0; }

// Makes `r` device `dev`'s sticky error when it is one and the device has none yet; returns `r`.
CUresult poison(int dev, CUresult r) {
    if (is_sticky(r) && dev >= 0 && dev < 8 && sticky[dev] == CUDA_SUCCESS) {
        sticky[dev] = r;
        note("device %d: error %d is sticky: every later call on its context returns it", dev, (int)r);
    }
    return r;
}

// ENH_EMU_FAULT=D:N — the N-th kernel launched on device D (counted from 1 at the cuLaunchKernel call; launches
// recorded into a graph are not counted) faults: the call succeeds, as a launch on a GPU does, the kernel writes
// nothing, and the context holds CUDA_ERROR_ILLEGAL_ADDRESS from then on, so the next call of any kind (often a cuDNN
// convolution) sees it, as on a GPU where the fault happens microseconds after the launch.
bool injected_fault(int dev) {
    static int device = -2;
    static unsigned long long at = 0, runs[8] = {0};
    if (device == -2) {
        device = -1;
        if (const char *e = getenv("ENH_EMU_FAULT"); e && sscanf(e, "%d:%llu", &device, &at) != 2) device = -1;
    }
    if (dev != device || dev < 0 || dev >= 8) return false;
    if (++runs[dev] != at) return false;
    note("device %d: kernel launch #%llu faults (ENH_EMU_FAULT): CUDA_ERROR_ILLEGAL_ADDRESS", dev, at);
    return true;
}

// Driver calls that need a context fail the way the real driver does without one on the calling thread, and with the
// context's sticky error once it has one.
CUresult need_context() {
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!live_context(current_context)) return CUDA_ERROR_INVALID_CONTEXT;
    return sticky[current_context->device];
}

bool valid_stream(CUstream s) {
    // NULL, CU_STREAM_LEGACY (0x1) and CU_STREAM_PER_THREAD (0x2) are the implicit streams.
    return s == nullptr || s == reinterpret_cast<CUstream>(1) || s == reinterpret_cast<CUstream>(2) ||
           streams.count(s) > 0;
}

// The block holding [p, p + n), or nullptr.
const block *find_block(uintptr_t p, size_t n) {
    auto it = blocks.upper_bound(p);
    if (it == blocks.begin()) return nullptr;
    --it;
    const block &b = it->second;
    if (p >= b.user && n <= b.size && p - b.user <= b.size - n) return &b;
    return nullptr;
}

// First guard byte that differs from the pattern, or -1.
long first_bad(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != kGuardByte) return (long)i;
    return -1;
}

// Checks one block's guards; reports and repairs a damaged one (so each overrun is reported once).
bool guards_intact(const block &b, const char *where) {
    auto *front = static_cast<unsigned char *>(b.base);
    auto *back = reinterpret_cast<unsigned char *>(b.user + b.size);
    long f = first_bad(front, kFrontGuard), k = first_bad(back, kBackGuard);
    if (f < 0 && k < 0) return true;
    if (k >= 0)
        note("%s: CUDA_ERROR_ILLEGAL_ADDRESS: write past the end of device block #%llu (%zu bytes at 0x%llx): "
             "byte +%zu after its end overwritten; last kernel launched: %s",
             where, b.serial, b.size, (unsigned long long)b.user, (size_t)k, last_kernel.c_str());
    if (f >= 0)
        note("%s: CUDA_ERROR_ILLEGAL_ADDRESS: write before the start of device block #%llu (%zu bytes at 0x%llx): "
             "byte -%zu overwritten; last kernel launched: %s",
             where, b.serial, b.size, (unsigned long long)b.user, kFrontGuard - (size_t)f, last_kernel.c_str());
    memset(front, kGuardByte, kFrontGuard);
    memset(back, kGuardByte, kBackGuard);
    return false;
}

CUresult check_all_guards(const char *where) {
    bool ok = true;
    for (auto &kv : blocks) ok = guards_intact(kv.second, where) && ok;
    return ok ? CUDA_SUCCESS : CUDA_ERROR_ILLEGAL_ADDRESS;
}

// Kernel source the library was built with, hashed once, to warn when NVRTC is handed a different one.
uint64_t fnv1a(const std::string &s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

uint64_t built_source_hash() {
#ifdef ENH_KERNELS_FILE
    static uint64_t h = [] {
        std::ifstream f(ENH_KERNELS_FILE, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        return f ? fnv1a(ss.str()) : 0;
    }();
    return h;
#else
    return 0;
#endif
}

// The emulator's "cubin": what nvrtcGetCUBIN returns and cuModuleLoadData accepts.
struct fake_cubin {
    uint32_t magic;
    uint32_t arch;          // e.g. 90 for sm_90
    uint64_t source_hash;   // FNV-1a of the program's source
    char note[48];
};


// Devices: ENH_EMU_DEVICES (1…8, default 1) identical emulated GPUs. ENH_EMU_CUDA_ORDER ("1,0") maps CUDA ordinals
// to physical devices as CUDA_VISIBLE_DEVICES does on a real machine (NVML keeps the physical order, by PCI bus):
// physical device p sits on bus 0x10 + p and is named "Enhance host emulator" (p = 0) or "Enhance host emulator #p".
// The device NVML shows the process's memory on: the lowest ordinal with a retained context.
int context_device() { for (int d = 0; d < 8; d++) if (primary_refs[d] > 0) return d; return 0; }

// Physical devices (NVML's view, by PCI bus): ENH_EMU_DEVICES.
int physical_count() {
    const char *e = getenv("ENH_EMU_DEVICES");
    int n = e ? atoi(e) : 1;
    return n < 1 ? 1 : n > 8 ? 8 : n;
}

// Comma-separated integers of an environment variable, up to the first entry that is not one.
std::vector<int> int_list(const char *name) {
    std::vector<int> out;
    const char *e = getenv(name);
    for (const char *p = e; p && *p;) {
        char *end = nullptr;
        long v = strtol(p, &end, 10);
        if (end == p || (*end != ',' && *end != 0)) break;
        out.push_back((int)v);
        p = *end == ',' ? end + 1 : end;
    }
    return out;
}

// The physical devices CUDA shows, by ordinal: the driver's enumeration (ENH_EMU_CUDA_ORDER, default the physical
// order), then CUDA_VISIBLE_DEVICES (indices into that enumeration; as CUDA does, the list ends at the first entry
// that is not a device there or repeats one; set but empty: no device).
std::vector<int> visible_devices() {
    std::vector<int> enumeration;
    for (int v : int_list("ENH_EMU_CUDA_ORDER"))
        if (v >= 0 && v < physical_count() && std::find(enumeration.begin(), enumeration.end(), v) == enumeration.end())
            enumeration.push_back(v);
    for (int p = 0; p < physical_count(); p++)
        if (std::find(enumeration.begin(), enumeration.end(), p) == enumeration.end()) enumeration.push_back(p);
    if (!getenv("CUDA_VISIBLE_DEVICES")) return enumeration;
    std::vector<int> shown;
    for (int i : int_list("CUDA_VISIBLE_DEVICES")) {
        if (i < 0 || i >= (int)enumeration.size()) break;
        if (std::find(shown.begin(), shown.end(), enumeration[i]) != shown.end()) break;
        shown.push_back(enumeration[i]);
    }
    return shown;
}

int device_count() { return (int)visible_devices().size(); }

bool valid_device(int ordinal) { return ordinal >= 0 && ordinal < device_count(); }

int physical_device(int ordinal) {
    std::vector<int> v = visible_devices();
    return ordinal >= 0 && ordinal < (int)v.size() ? v[ordinal] : ordinal;
}

void device_name(int physical, char *out, size_t len) {
    if (physical == 0) snprintf(out, len, "%s", "Enhance host emulator");
    else snprintf(out, len, "Enhance host emulator #%d", physical);
}

// CUDA writes "0000:10:00.0" (13 bytes); NVML's own form is "00000000:10:00.0" and its lookup takes either.
void pci_bus_id(int physical, char *out, size_t len) { snprintf(out, len, "0000:%02X:00.0", 0x10 + physical); }

// The NVML view (section 7): with ENH_EMU_NVML_FILE set, every change of device memory writes "used" bytes (a
// context's kContextBytes while the primary context is retained, plus live allocations) to that file, atomically,
// and the process writes 0 when it exits; the emulator's nvmlDeviceGetMemoryInfo, loaded by another process (the
// bench), reads it. That is how a sampler outside the process sees a child's device memory, as NVML does on a GPU.
constexpr size_t kContextBytes = 48ull << 20;
bool published_used = false;

void write_used(unsigned long long used) {
    const char *path = getenv("ENH_EMU_NVML_FILE");
    if (!path || !*path) return;
    std::string tmp = std::string(path) + ".tmp." + std::to_string((long long)getpid());
    FILE *f = fopen(tmp.c_str(), "w");
    if (!f) return;
    // launches: NVML's utilisation reads "did a kernel run since"; the physical device whose context holds the memory
    fprintf(f, "%llu %llu %d\n", used, launches, physical_device(context_device()));
    fclose(f);
    rename(tmp.c_str(), path);
    published_used = true;
}

void publish_used() {
    if (!getenv("ENH_EMU_NVML_FILE")) return;
    write_used(kContextBytes * live_contexts() + live_bytes);
}

// After launches, at most every 2 ms (the file is rewritten, so not per launch).
void publish_launches() {
    static auto last = std::chrono::steady_clock::time_point{};
    if (!getenv("ENH_EMU_NVML_FILE")) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(2)) return;
    last = now;
    publish_used();
}

__attribute__((destructor)) void unpublish_used() {
    if (published_used) write_used(0);
}

// Graph capture (section 3b). Any number of created streams may capture at once (each backend has its own stream;
// tests run in parallel). Captured work is recorded as closures (kernel parameters, descriptors and scalars copied by
// value, as the driver and cuDNN do) and runs at cuGraphLaunch. Stricter than the driver on purpose: host<->device
// copies and synchronisation on a capturing stream, a context synchronisation while any stream captures, and freeing
// a block that an ongoing capture has used are refused and invalidate that capture (the backend must do none of them
// inside a captured forward); freeing a block that a live executable graph uses poisons that graph (its next launch
// fails and says which block). Frees of other memory (another backend's, say) go through, as in relaxed mode.
struct captured_op {
    std::string what;
    std::vector<uintptr_t> pointers;   // device addresses the op uses (launches: every 8-byte parameter value)
    std::function<CUresult()> run;
};
struct graph_body { std::vector<captured_op> ops; };
struct capture_state { graph_body *graph; bool invalid; };
std::map<CUstream, capture_state> captures;
std::set<CUgraph> graphs;
std::set<CUgraphExec> graph_execs;

bool capturing(CUstream s) { return s != nullptr && captures.count(s) > 0; }

CUresult refuse_in_capture(const char *call, CUstream s) {
    note("%s during stream capture: not allowed (capture invalidated)", call);
    captures[s].invalid = true;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}

void record(CUstream s, std::string what, std::vector<uintptr_t> pointers, std::function<CUresult()> run) {
    captures[s].graph->ops.push_back(captured_op{std::move(what), std::move(pointers), std::move(run)});
}

// Deferred execution (section 3c). A GPU runs a stream's work after the call that queued it returns; the host sees
// the results only after a synchronisation. The emulator makes that as late as it can: work queued on a created
// stream runs only when something forces it (cuStreamSynchronize of that stream, cuCtxSynchronize, cuEventSynchronize
// of an event recorded on it, a copy into pageable host memory on it, which the driver completes before returning,
// a cuDNN Find on it, cuMemFree and cuMemFreeHost, which synchronise the device, cuStreamDestroy). So a host read of
// device results without the synchronisation, a kernel parameter pointing at host memory that is gone, or a pinned
// staging buffer reused before its copy ran give wrong bytes here as they would on a GPU. Errors of queued work are
// reported by the next synchronisation of its stream. ENH_EMU_SYNC=1 runs everything at the call (the old model).
// The implicit streams (NULL, legacy, per-thread) run at the call, after the work queued on blocking created streams.
std::map<CUstream, std::deque<captured_op>> pending;
std::map<CUstream, CUresult> stream_errors;

bool sync_mode() {
    static const bool on = getenv("ENH_EMU_SYNC") != nullptr;
    return on;
}

bool implicit_stream(CUstream s) {
    return s == nullptr || s == reinterpret_cast<CUstream>(1) || s == reinterpret_cast<CUstream>(2);
}

void publish_launches();

// Runs the work queued on `s`, in order; the first failure is kept for that stream's next synchronisation.
void run_pending(CUstream s) {
    auto it = pending.find(s);
    if (it == pending.end()) return;
    std::deque<captured_op> ops;
    ops.swap(it->second);
    pending.erase(it);
    for (captured_op &op : ops)
        if (CUresult r = op.run()) {
            note("%s, queued on a stream, failed (%d) when it ran", op.what.c_str(), (int)r);
            stream_errors.emplace(s, poison(implicit_stream(s) ? current_device() : s->device, r));   // keeps the first
        }
    publish_launches();
}

void run_all_pending() {
    while (!pending.empty()) run_pending(pending.begin()->first);
}

// The work queued on blocking created streams: what the legacy (implicit) stream waits for.
void run_blocking_pending() {
    for (auto it = pending.begin(); it != pending.end();) {
        CUstream q = (it++)->first;   // run_pending erases q's entry
        if ((q->flags & CU_STREAM_NON_BLOCKING) == 0) run_pending(q);
    }
}

// The first error of `s`'s queued work since its last synchronisation (cleared).
CUresult take_error(CUstream s) {
    auto it = stream_errors.find(s);
    if (it == stream_errors.end()) return CUDA_SUCCESS;
    CUresult r = it->second;
    stream_errors.erase(it);
    return r;
}

CUresult take_all_errors() {
    CUresult first = CUDA_SUCCESS;
    for (auto &kv : stream_errors)
        if (first == CUDA_SUCCESS) first = kv.second;
    stream_errors.clear();
    return first;
}

// Stream-ordered work: recorded into an ongoing capture, queued on a created stream, or run now on an implicit
// stream (after the blocking streams' queued work, as the legacy stream waits for them).
CUresult submit(CUstream s, std::string what, std::vector<uintptr_t> pointers, std::function<CUresult()> run) {
    if (capturing(s)) {
        record(s, std::move(what), std::move(pointers), std::move(run));
        return CUDA_SUCCESS;
    }
    if (!sync_mode() && !implicit_stream(s)) {
        pending[s].push_back(captured_op{std::move(what), std::move(pointers), std::move(run)});
        return CUDA_SUCCESS;
    }
    if (implicit_stream(s)) run_blocking_pending();
    return poison(current_device(), run());   // an implicit stream (or ENH_EMU_SYNC): errors now
}

// Whether [p, p + n) lies in page-locked host memory (cuMemHostAlloc).
bool pinned(const void *p, size_t n) {
    auto it = host_blocks.upper_bound(p);
    if (it == host_blocks.begin()) return false;
    --it;
    auto lo = reinterpret_cast<uintptr_t>(it->first), q = reinterpret_cast<uintptr_t>(p);
    return q >= lo && n <= it->second && q - lo <= it->second - n;
}

// Whether any recorded op of `body` uses an address in [lo, hi).
const captured_op *uses(const graph_body *body, uintptr_t lo, uintptr_t hi) {
    for (const captured_op &op : body->ops)
        for (uintptr_t p : op.pointers)
            if (p >= lo && p < hi) return &op;
    return nullptr;
}
}  // namespace enh_emu

using namespace enh_emu;

// ═════════════════════════════ 3. driver API ═════════════════════════════

namespace {

struct error_text { CUresult code; const char *name, *text; };
const error_text cu_errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_DEINITIALIZED, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {CUDA_ERROR_STUB_LIBRARY, "CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"},
    {CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER, "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER",
     "API call is not supported in the installed CUDA driver"},
    {CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA_ERROR_DEVICE_UNAVAILABLE", "CUDA-capable device(s) is/are busy or unavailable"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_NO_BINARY_FOR_GPU, "CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {CUDA_ERROR_UNSUPPORTED_PTX_VERSION, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
     "the provided PTX was compiled with an unsupported toolchain."},
    {CUDA_ERROR_INVALID_SOURCE, "CUDA_ERROR_INVALID_SOURCE", "device kernel image is invalid"},
    {CUDA_ERROR_FILE_NOT_FOUND, "CUDA_ERROR_FILE_NOT_FOUND", "file not found"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_ILLEGAL_STATE, "CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {CUDA_ERROR_LAUNCH_TIMEOUT, "CUDA_ERROR_LAUNCH_TIMEOUT", "the launch timed out and was terminated"},
    {CUDA_ERROR_ILLEGAL_INSTRUCTION, "CUDA_ERROR_ILLEGAL_INSTRUCTION", "an illegal instruction was encountered"},
    {CUDA_ERROR_MISALIGNED_ADDRESS, "CUDA_ERROR_MISALIGNED_ADDRESS", "misaligned address"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CUDA_ERROR_NOT_PERMITTED, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
     "operation not permitted when stream is capturing"},
    {CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
     "operation failed due to a previous error during capture"},
    {CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
     "operation would make the legacy stream depend on a capturing blocking stream"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

const error_text *find_error(CUresult e) {
    for (const auto &t : cu_errors)
        if (t.code == e) return &t;
    return nullptr;
}

}  // namespace

CUresult cuGetErrorName(CUresult error, const char **pStr) {
    if (!pStr) return CUDA_ERROR_INVALID_VALUE;
    const error_text *t = find_error(error);
    *pStr = t ? t->name : nullptr;
    return t ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult error, const char **pStr) {
    if (!pStr) return CUDA_ERROR_INVALID_VALUE;
    const error_text *t = find_error(error);
    *pStr = t ? t->text : nullptr;
    return t ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuInit(unsigned int Flags) {
    lock l(mu);
    if (Flags != 0) return CUDA_ERROR_INVALID_VALUE;
    if (getenv("ENH_EMU_NO_DEVICE")) return CUDA_ERROR_NO_DEVICE;   // tests of the "no GPU" path
    if (device_count() == 0) return CUDA_ERROR_NO_DEVICE;           // CUDA_VISIBLE_DEVICES hides every device
    initialized = true;
    return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *driverVersion) {
    if (!driverVersion) return CUDA_ERROR_INVALID_VALUE;
    *driverVersion = kDriverVersion;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count) {
    lock l(mu);
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!count) return CUDA_ERROR_INVALID_VALUE;
    *count = device_count();
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *device, int ordinal) {
    lock l(mu);
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!device) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(ordinal)) return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

namespace {
// A string about device `dev` (its name, its PCI bus) written by `write` for its physical device, after the checks
// the driver makes for both queries.
CUresult device_string(char *out, int len, CUdevice dev, void (*write)(int physical, char *out, size_t len)) {
    lock l(mu);
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    if (!out || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    write(physical_device(dev), out, (size_t)len);
    return CUDA_SUCCESS;
}
}  // namespace

CUresult cuDeviceGetName(char *name, int len, CUdevice dev) { return device_string(name, len, dev, device_name); }

CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev) { return device_string(pciBusId, len, dev, pci_bus_id); }

CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev) {
    lock l(mu);
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    if (!pi || (int)attrib <= 0 || (int)attrib > 200) return CUDA_ERROR_INVALID_VALUE;
    switch (attrib) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *pi = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *pi = 2147483647; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: *pi = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *pi = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *pi = 49152; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *pi = 32; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *pi = kSMCount; break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: *pi = 50 << 20; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *pi = 2048; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *pi = kSMMajor; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *pi = kSMMinor; break;
    default: *pi = 0; break;   // attributes the emulator does not model read as 0
    }
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    lock l(mu);
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    *bytes = total_memory();
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
    lock l(mu);
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    // ENH_EMU_CTX_FAILS=46: the context will not start (46: CUDA_ERROR_DEVICE_UNAVAILABLE, another process holds the
    // GPU in exclusive-process mode; 2: out of memory), though the driver lists the device; D:46: device D only
    if (const char *e = getenv("ENH_EMU_CTX_FAILS")) {
        int d = -1, code = 0;
        if (sscanf(e, "%d:%d", &d, &code) == 2) { if (d == dev) return (CUresult)code; }
        else return (CUresult)atoi(e);
    }
    primary_refs[dev]++;
    *pctx = &primary_contexts[dev];
    publish_used();
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
    lock l(mu);
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    if (primary_refs[dev] == 0) return CUDA_ERROR_INVALID_CONTEXT;
    primary_refs[dev]--;   // at 0 the context is inactive until retained again (device memory is kept, unlike a GPU)
    publish_used();
    return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext ctx) {
    lock l(mu);
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (ctx && !live_context(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    current_context = ctx;
    return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize_v2(CUcontext ctx) {
    lock l(mu);
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!ctx) {
        if (CUresult r = need_context()) return r;   // NULL: the calling thread's current context
    } else if (!live_context(ctx)) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    if (!captures.empty()) {
        note("cuCtxSynchronize while %zu stream(s) capture: not allowed (captures invalidated)", captures.size());
        for (auto &c : captures) c.second.invalid = true;
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    run_all_pending();
    CUresult queued = take_all_errors();
    CUresult guards = poison(current_device(), check_all_guards("cuCtxSynchronize"));
    return queued ? queued : guards;
}

CUresult cuCtxSynchronize(void) { return cuCtxSynchronize_v2(nullptr); }

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!dptr || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
    if (bytesize > total_memory() - live_bytes) return CUDA_ERROR_OUT_OF_MEMORY;
    size_t total = (kFrontGuard + bytesize + kBackGuard + kAlign - 1) / kAlign * kAlign;
    void *base = aligned_alloc(kAlign, total);
    if (!base) return CUDA_ERROR_OUT_OF_MEMORY;
    auto *bytes = static_cast<unsigned char *>(base);
    memset(bytes, kGuardByte, kFrontGuard);
    memset(bytes + kFrontGuard, kFreshByte, bytesize);
    memset(bytes + kFrontGuard + bytesize, kGuardByte, kBackGuard);
    block b{base, reinterpret_cast<uintptr_t>(bytes + kFrontGuard), bytesize, ++alloc_serial};
    blocks[b.user] = b;
    live_bytes += bytesize;
    peak_bytes = std::max(peak_bytes, live_bytes);
    *dptr = b.user;
    publish_used();
    return CUDA_SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr dptr) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    run_all_pending();   // cuMemFree synchronises the device (a capturing stream's work is recorded, not queued)
    auto it = blocks.find((uintptr_t)dptr);
    if (it == blocks.end()) {
        note("cuMemFree: 0x%llx is not the start of a live device allocation", (unsigned long long)dptr);
        return CUDA_ERROR_INVALID_VALUE;
    }
    const uintptr_t lo = it->second.user, hi = it->second.user + it->second.size;
    for (auto &c : captures)
        if (const captured_op *op = uses(c.second.graph, lo, hi)) {
            note("cuMemFree of a block the ongoing capture's %s uses: not allowed (capture invalidated)", op->what.c_str());
            c.second.invalid = true;
            return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
        }
    for (CUgraphExec e : graph_execs) {
        if (!e->poisoned.empty()) continue;
        if (const captured_op *op = uses(e->body, lo, hi)) {
            char buf[160];
            snprintf(buf, sizeof buf, "block 0x%llx (%zu bytes, used by its %s) was freed", (unsigned long long)lo,
                     it->second.size, op->what.c_str());
            e->poisoned = buf;
        }
    }
    CUresult r = poison(current_device(), check_all_guards("cuMemFree"));
    live_bytes -= it->second.size;
    free(it->second.base);
    blocks.erase(it);
    publish_used();
    return r;
}

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!free_bytes || !total) return CUDA_ERROR_INVALID_VALUE;
    *free_bytes = total_memory() - live_bytes;
    *total = total_memory();
    return CUDA_SUCCESS;
}

CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!pp || bytesize == 0 || Flags > 7) return CUDA_ERROR_INVALID_VALUE;
    void *p = nullptr;
    if (posix_memalign(&p, 4096, bytesize) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    host_blocks[p] = bytesize;
    *pp = p;
    return CUDA_SUCCESS;
}

CUresult cuMemFreeHost(void *p) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    run_all_pending();   // pinned memory a queued copy still reads or writes
    if (!host_blocks.erase(p)) return CUDA_ERROR_INVALID_VALUE;
    free(p);
    return CUDA_SUCCESS;
}

namespace {

// Device ranges of copies and memsets must lie inside one allocation, as on a GPU.
CUresult device_range(const char *call, CUdeviceptr p, size_t n) {
    if (n == 0 || find_block((uintptr_t)p, n)) return CUDA_SUCCESS;
    note("%s: [0x%llx, +%zu) is not inside one device allocation", call, (unsigned long long)p, n);
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult copy_prologue(const char *call, CUstream s) {
    if (CUresult r = need_context()) return r;
    if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
    (void)call;
    return CUDA_SUCCESS;
}

}  // namespace

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s) {
    lock l(mu);
    if (CUresult r = copy_prologue("cuMemcpyHtoDAsync", s)) return r;
    if (capturing(s)) return refuse_in_capture("cuMemcpyHtoDAsync", s);
    if (n && !src) return CUDA_ERROR_INVALID_VALUE;
    if (CUresult r = device_range("cuMemcpyHtoDAsync", dst, n)) return r;
    if (n == 0) return CUDA_SUCCESS;
    // From pageable memory the driver stages the bytes before it returns; from pinned memory the copy engine reads
    // them when the copy runs, so the host must not touch them before a synchronisation.
    if (pinned(src, n))
        return submit(s, "cuMemcpyHtoDAsync (pinned)", {(uintptr_t)dst}, [dst, src, n]() -> CUresult {
            if (CUresult r = device_range("cuMemcpyHtoDAsync", dst, n)) return r;
            memcpy(reinterpret_cast<void *>(dst), src, n);
            return CUDA_SUCCESS;
        });
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char *>(src),
                                                                static_cast<const unsigned char *>(src) + n);
    return submit(s, "cuMemcpyHtoDAsync", {(uintptr_t)dst}, [dst, staged, n]() -> CUresult {
        if (CUresult r = device_range("cuMemcpyHtoDAsync", dst, n)) return r;
        memcpy(reinterpret_cast<void *>(dst), staged->data(), n);
        return CUDA_SUCCESS;
    });
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s) {
    lock l(mu);
    if (CUresult r = copy_prologue("cuMemcpyDtoHAsync", s)) return r;
    if (capturing(s)) return refuse_in_capture("cuMemcpyDtoHAsync", s);
    if (n && !dst) return CUDA_ERROR_INVALID_VALUE;
    if (CUresult r = device_range("cuMemcpyDtoHAsync", src, n)) return r;
    if (n == 0) return CUDA_SUCCESS;
    auto run = [dst, src, n]() -> CUresult {
        if (CUresult r = device_range("cuMemcpyDtoHAsync", src, n)) return r;
        memcpy(dst, reinterpret_cast<const void *>(src), n);
        return CUDA_SUCCESS;
    };
    // Into pinned memory the copy runs in stream order and the host must synchronise before reading; into pageable
    // memory the driver returns only once the copy (so the stream's earlier work) is done.
    if (pinned(dst, n)) return submit(s, "cuMemcpyDtoHAsync (pinned)", {(uintptr_t)src}, run);
    if (implicit_stream(s)) return submit(s, "cuMemcpyDtoHAsync", {(uintptr_t)src}, run);
    run_pending(s);
    if (CUresult r = take_error(s)) return r;
    return run();
}

CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
    lock l(mu);
    if (CUresult r = copy_prologue("cuMemcpyDtoDAsync", s)) return r;
    if (CUresult r = device_range("cuMemcpyDtoDAsync (destination)", dst, n)) return r;
    if (CUresult r = device_range("cuMemcpyDtoDAsync (source)", src, n)) return r;
    auto run = [dst, src, n]() -> CUresult {
        if (CUresult r = device_range("cuMemcpyDtoDAsync (destination)", dst, n)) return r;
        if (CUresult r = device_range("cuMemcpyDtoDAsync (source)", src, n)) return r;
        if (n) memmove(reinterpret_cast<void *>(dst), reinterpret_cast<const void *>(src), n);
        return CUDA_SUCCESS;
    };
    return submit(s, "cuMemcpyDtoDAsync", {(uintptr_t)dst, (uintptr_t)src}, run);
}

CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char uc, size_t n, CUstream s) {
    lock l(mu);
    if (CUresult r = copy_prologue("cuMemsetD8Async", s)) return r;
    if (CUresult r = device_range("cuMemsetD8Async", dst, n)) return r;
    auto run = [dst, uc, n]() -> CUresult {
        if (CUresult r = device_range("cuMemsetD8Async", dst, n)) return r;
        if (n) memset(reinterpret_cast<void *>(dst), uc, n);
        return CUDA_SUCCESS;
    };
    return submit(s, "cuMemsetD8Async", {(uintptr_t)dst}, run);
}

CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int ui, size_t n, CUstream s) {
    lock l(mu);
    if (CUresult r = copy_prologue("cuMemsetD32Async", s)) return r;
    if (dst % 4 != 0) return CUDA_ERROR_INVALID_VALUE;   // 32-bit memsets need 4-byte aligned destinations
    if (n > SIZE_MAX / 4) return CUDA_ERROR_INVALID_VALUE;
    if (CUresult r = device_range("cuMemsetD32Async", dst, n * 4)) return r;
    auto run = [dst, ui, n]() -> CUresult {
        if (CUresult r = device_range("cuMemsetD32Async", dst, n * 4)) return r;
        auto *p = reinterpret_cast<unsigned int *>(dst);
        for (size_t i = 0; i < n; i++) p[i] = ui;
        return CUDA_SUCCESS;
    };
    return submit(s, "cuMemsetD32Async", {(uintptr_t)dst}, run);
}

CUresult cuModuleLoadData(CUmodule *module, const void *image) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!module || !image) return CUDA_ERROR_INVALID_VALUE;
    // PTX from the emulator's NVRTC (compute_XX): the driver JIT-compiles PTX for any device of that architecture
    // or a newer one
    const char *text = static_cast<const char *>(image);
    if (strncmp(text, kPTXHeader, sizeof kPTXHeader - 1) == 0) {
        int arch = atoi(text + sizeof kPTXHeader - 1);
        if (arch > kSMMajor * 10 + kSMMinor) {
            note("cuModuleLoadData: PTX for compute_%d cannot be JIT-compiled for this older sm_%d%d device", arch, kSMMajor, kSMMinor);
            return CUDA_ERROR_NO_BINARY_FOR_GPU;
        }
        auto *m = new CUmod_st{kSMMajor * 10 + kSMMinor, {}};
        modules.insert(m);
        *module = m;
        return CUDA_SUCCESS;
    }
    uint32_t magic;
    memcpy(&magic, image, sizeof magic);
    if (magic != kCubinMagic) {
        note("cuModuleLoadData: not a cubin from the emulator's NVRTC (a real cubin or PTX cannot run here)");
        return CUDA_ERROR_INVALID_IMAGE;
    }
    fake_cubin c;
    memcpy(&c, image, sizeof c);
    // A cubin runs on the same major architecture with an equal or newer minor one (sm_90 cubin on sm_90 only here).
    if ((int)c.arch / 10 != kSMMajor || (int)c.arch % 10 > kSMMinor) {
        note("cuModuleLoadData: cubin for sm_%u cannot run on this sm_%d%d device", c.arch, kSMMajor, kSMMinor);
        return CUDA_ERROR_NO_BINARY_FOR_GPU;
    }
    if (c.source_hash != built_source_hash())
        note("cuModuleLoadData: warning: this module was compiled from a different source than the kernels the "
             "emulator was built with; kernels run from the latter");
    auto *m = new CUmod_st{(int)c.arch, {}};
    modules.insert(m);
    *module = m;
    return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule hmod) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!modules.erase(hmod)) return CUDA_ERROR_INVALID_HANDLE;
    for (CUfunction f : hmod->functions) {
        functions.erase(f);
        delete f;
    }
    delete hmod;
    return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!hfunc || !name) return CUDA_ERROR_INVALID_VALUE;
    if (!modules.count(hmod)) return CUDA_ERROR_INVALID_HANDLE;
    auto it = kernel_registry().find(name);
    if (it == kernel_registry().end()) return CUDA_ERROR_NOT_FOUND;
    auto *f = new CUfunc_st{&it->second, hmod};
    hmod->functions.push_back(f);
    functions.insert(f);
    *hfunc = f;
    return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                        unsigned int by, unsigned int bz, unsigned int sharedMemBytes, CUstream s,
                        void **kernelParams, void **extra) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!functions.count(f)) return CUDA_ERROR_INVALID_HANDLE;
    if (!valid_stream(s)) return CUDA_ERROR_INVALID_HANDLE;
    if (extra) {
        note("cuLaunchKernel: the `extra` parameter form is not emulated");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    const enh_emu::kernel_entry &k = *f->kernel;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || gy > 65535 || gz > 65535 ||
        gx > 2147483647u || bx > 1024 || by > 1024 || bz > 64 || (unsigned long long)bx * by * bz > 1024 ||
        sharedMemBytes > 49152 || (k.arity > 0 && !kernelParams)) {
        note("cuLaunchKernel(%s): invalid configuration grid (%u,%u,%u) block (%u,%u,%u) shared %u", k.name.c_str(),
             gx, gy, gz, bx, by, bz, sharedMemBytes);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!capturing(s) && injected_fault(current_device())) {
        poison(current_device(), CUDA_ERROR_ILLEGAL_ADDRESS);
        return CUDA_SUCCESS;
    }
    const enh_emu::kernel_entry *kp = &k;
    auto grid = [kp, gx, gy, gz, bx, by, bz](void **params) {
        last_kernel = kp->name;
        launches++;
        enh_kernels::gridDim = {gx, gy, gz};
        enh_kernels::blockDim = {bx, by, bz};
        // Threads run one after another, in the order ENH_EMU_THREAD_ORDER names (a GPU promises none): "forward"
        // (default), "reverse", or "shuffle" (seeded by the launch count). A kernel whose threads read what other
        // threads write gives different results under different orders.
        const unsigned long long per_block = (unsigned long long)bx * by * bz, total = per_block * gx * gy * gz;
        const char *e = getenv("ENH_EMU_THREAD_ORDER");
        const int order = !e ? 0 : strcmp(e, "reverse") == 0 ? 1 : strcmp(e, "shuffle") == 0 ? 2 : 0;
        std::vector<unsigned long long> shuffled;
        if (order == 2) {
            shuffled.resize(total);
            for (unsigned long long i = 0; i < total; i++) shuffled[i] = i;
            std::mt19937_64 rng(launches);
            std::shuffle(shuffled.begin(), shuffled.end(), rng);
        }
        for (unsigned long long i = 0; i < total; i++) {
            unsigned long long t = order == 1 ? total - 1 - i : order == 2 ? shuffled[i] : i;
            unsigned long long b = t / per_block, r = t % per_block;
            enh_kernels::blockIdx = {(unsigned)(b % gx), (unsigned)(b / gx % gy), (unsigned)(b / gx / gy)};
            enh_kernels::threadIdx = {(unsigned)(r % bx), (unsigned)(r / bx % by), (unsigned)(r / bx / by)};
            kp->run(params);
        }
    };
    if (capturing(s) || (!sync_mode() && !implicit_stream(s))) {
        // The driver copies the parameter values at the launch call; so do the capture and the queue.
        std::vector<std::vector<unsigned char>> values;
        std::vector<uintptr_t> pointers;
        for (size_t i = 0; i < k.arity; i++) {
            const auto *b = static_cast<const unsigned char *>(kernelParams[i]);
            values.emplace_back(b, b + k.sizes[i]);
            if (k.sizes[i] == sizeof(uintptr_t)) {
                uintptr_t v;
                memcpy(&v, b, sizeof v);
                pointers.push_back(v);
            }
        }
        return submit(s, "kernel " + k.name, pointers, [grid, values]() mutable -> CUresult {
            std::vector<void *> params;
            for (auto &v : values) params.push_back(v.data());
            grid(params.data());
            return CUDA_SUCCESS;
        });
    }
    run_blocking_pending();   // an implicit stream: the blocking streams' queued work first
    grid(kernelParams);
    publish_launches();
    return CUDA_SUCCESS;
}

CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!phStream || Flags > CU_STREAM_NON_BLOCKING) return CUDA_ERROR_INVALID_VALUE;
    auto *st = new CUstream_st{Flags, current_device()};
    streams.insert(st);
    *phStream = st;
    return CUDA_SUCCESS;
}

CUresult cuStreamDestroy_v2(CUstream hStream) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!streams.count(hStream)) return CUDA_ERROR_INVALID_HANDLE;
    run_pending(hStream);   // the driver lets queued work finish before it releases the stream
    stream_errors.erase(hStream);
    streams.erase(hStream);
    delete hStream;
    return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream hStream) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!valid_stream(hStream)) return CUDA_ERROR_INVALID_HANDLE;
    if (capturing(hStream)) return refuse_in_capture("cuStreamSynchronize", hStream);
    if (implicit_stream(hStream)) run_blocking_pending();
    else run_pending(hStream);
    CUresult queued = take_error(hStream);
    CUresult guards = poison(current_device(), check_all_guards("cuStreamSynchronize"));
    return queued ? queued : guards;
}

CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!phEvent || Flags > 7) return CUDA_ERROR_INVALID_VALUE;
    auto *e = new CUevent_st{Flags, false, {}, nullptr};
    events.insert(e);
    *phEvent = e;
    return CUDA_SUCCESS;
}

CUresult cuEventRecord(CUevent hEvent, CUstream hStream) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!events.count(hEvent) || !valid_stream(hStream)) return CUDA_ERROR_INVALID_HANDLE;
    auto run = [hEvent]() -> CUresult {
        hEvent->recorded = true;
        hEvent->when = std::chrono::steady_clock::now();
        return CUDA_SUCCESS;
    };
    if (!capturing(hStream)) {
        hEvent->recorded = false;   // until the stream reaches it
        hEvent->stream = hStream;
        // a stream with nothing queued reaches it now (so host-side gaps between records are timed, as on a GPU)
        if (!pending.count(hStream)) return run();
    }
    return submit(hStream, "cuEventRecord", {}, run);
}

CUresult cuEventSynchronize(CUevent hEvent) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!events.count(hEvent)) return CUDA_ERROR_INVALID_HANDLE;
    if (hEvent->stream && streams.count(hEvent->stream)) run_pending(hEvent->stream);
    return CUDA_SUCCESS;
}

CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!pMilliseconds) return CUDA_ERROR_INVALID_VALUE;
    if (!events.count(hStart) || !events.count(hEnd)) return CUDA_ERROR_INVALID_HANDLE;
    if ((hStart->flags | hEnd->flags) & CU_EVENT_DISABLE_TIMING) return CUDA_ERROR_INVALID_HANDLE;
    if (!hStart->recorded || !hEnd->recorded)   // recorded on a stream that has not reached it: not ready
        return hStart->stream || hEnd->stream ? CUDA_ERROR_NOT_READY : CUDA_ERROR_INVALID_HANDLE;
    *pMilliseconds = std::chrono::duration<float, std::milli>(hEnd->when - hStart->when).count();
    return CUDA_SUCCESS;
}

// CUDA 12.8 changed cuEventElapsedTime's semantics, not its signature; both exports behave the same here.
extern "C" CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd) {
    return cuEventElapsedTime_v2(pMilliseconds, hStart, hEnd);
}

CUresult cuEventDestroy_v2(CUevent hEvent) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!events.erase(hEvent)) return CUDA_ERROR_INVALID_HANDLE;
    delete hEvent;
    return CUDA_SUCCESS;
}

// ───── 3b. graph capture (state and rules next to publish_used above) ─────

CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (getenv("ENH_EMU_NO_GRAPHS")) return CUDA_ERROR_NOT_SUPPORTED;   // tests of the fallback message
    // The legacy NULL stream cannot be captured; a created stream can, one capture at a time here.
    if (!hStream || !streams.count(hStream)) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    if ((int)mode < 0 || (int)mode > 2) return CUDA_ERROR_INVALID_VALUE;
    if (captures.count(hStream)) return CUDA_ERROR_ILLEGAL_STATE;
    captures[hStream] = capture_state{new graph_body(), false};
    return CUDA_SUCCESS;
}

CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!phGraph) return CUDA_ERROR_INVALID_VALUE;
    auto c = captures.find(hStream);
    if (c == captures.end()) return CUDA_ERROR_ILLEGAL_STATE;
    graph_body *body = c->second.graph;
    const bool invalid = c->second.invalid;
    captures.erase(c);
    if (invalid) {
        delete body;
        *phGraph = nullptr;
        return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    }
    auto *g = new CUgraph_st{body};
    graphs.insert(g);
    *phGraph = g;
    return CUDA_SUCCESS;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!phGraphExec || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    if (!graphs.count(hGraph)) return CUDA_ERROR_INVALID_HANDLE;
    auto *e = new CUgraphExec_st{new graph_body(*hGraph->body), {}};
    graph_execs.insert(e);
    *phGraphExec = e;
    return CUDA_SUCCESS;
}

CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
    lock l(mu);
    if (CUresult r = need_context()) return r;
    if (!graph_execs.count(hGraphExec) || !valid_stream(hStream)) return CUDA_ERROR_INVALID_HANDLE;
    if (capturing(hStream)) return refuse_in_capture("cuGraphLaunch", hStream);
    if (!hGraphExec->poisoned.empty()) {
        note("cuGraphLaunch: %s after the capture: the graph would touch freed memory", hGraphExec->poisoned.c_str());
        return poison(current_device(), CUDA_ERROR_ILLEGAL_ADDRESS);
    }
    // ENH_EMU_GRAPH_LAUNCH_FAILS=1: a driver that records graphs but will not launch them (the backend must go eager)
    if (getenv("ENH_EMU_GRAPH_LAUNCH_FAILS")) return CUDA_ERROR_NOT_SUPPORTED;
    return submit(hStream, "cuGraphLaunch", {}, [hGraphExec]() -> CUresult {
        if (!graph_execs.count(hGraphExec)) return CUDA_ERROR_INVALID_HANDLE;   // destroyed before it ran
        if (!hGraphExec->poisoned.empty()) {
            note("cuGraphLaunch: %s after the launch was queued", hGraphExec->poisoned.c_str());
            return CUDA_ERROR_ILLEGAL_ADDRESS;
        }
        for (captured_op &op : hGraphExec->body->ops)
            if (CUresult r = op.run()) {
                note("cuGraphLaunch: %s failed (%d)", op.what.c_str(), (int)r);
                return r;
            }
        return CUDA_SUCCESS;
    });
}

CUresult cuGraphExecDestroy(CUgraphExec hGraphExec) {
    lock l(mu);
    if (!graph_execs.count(hGraphExec)) return CUDA_ERROR_INVALID_HANDLE;
    run_all_pending();   // a queued launch of it finishes first, as the driver defers the destruction
    graph_execs.erase(hGraphExec);
    delete hGraphExec->body;
    delete hGraphExec;
    return CUDA_SUCCESS;
}

CUresult cuGraphDestroy(CUgraph hGraph) {
    lock l(mu);
    if (!graphs.erase(hGraph)) return CUDA_ERROR_INVALID_HANDLE;
    delete hGraph->body;
    delete hGraph;
    return CUDA_SUCCESS;
}

namespace {

// cuGetProcAddress's table: base name → exported function, with the CUDA version that introduced that ABI.
// The newest variant not newer than the requested version wins, as in the real driver.
struct proc { const char *name; void *fn; int since; };
#define PROC(base, fn, since) {base, reinterpret_cast<void *>(&fn), since}
const proc procs[] = {
    PROC("cuInit", cuInit, 2000),
    PROC("cuDriverGetVersion", cuDriverGetVersion, 2020),
    PROC("cuGetErrorName", cuGetErrorName, 6000),
    PROC("cuGetErrorString", cuGetErrorString, 6000),
    PROC("cuDeviceGetCount", cuDeviceGetCount, 2000),
    PROC("cuDeviceGet", cuDeviceGet, 2000),
    PROC("cuDeviceGetName", cuDeviceGetName, 2000),
    PROC("cuDeviceGetPCIBusId", cuDeviceGetPCIBusId, 4010),
    PROC("cuDeviceGetAttribute", cuDeviceGetAttribute, 2000),
    PROC("cuDeviceTotalMem", cuDeviceTotalMem_v2, 3020),
    PROC("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain, 7000),
    PROC("cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease_v2, 11000),
    PROC("cuCtxSetCurrent", cuCtxSetCurrent, 4000),
    PROC("cuCtxSynchronize", cuCtxSynchronize, 2000),
    PROC("cuCtxSynchronize", cuCtxSynchronize_v2, 13000),
    PROC("cuMemAlloc", cuMemAlloc_v2, 3020),
    PROC("cuMemFree", cuMemFree_v2, 3020),
    PROC("cuMemGetInfo", cuMemGetInfo_v2, 3020),
    PROC("cuMemHostAlloc", cuMemHostAlloc, 2020),
    PROC("cuMemFreeHost", cuMemFreeHost, 2000),
    PROC("cuMemcpyHtoDAsync", cuMemcpyHtoDAsync_v2, 3020),
    PROC("cuMemcpyDtoHAsync", cuMemcpyDtoHAsync_v2, 3020),
    PROC("cuMemcpyDtoDAsync", cuMemcpyDtoDAsync_v2, 3020),
    PROC("cuMemsetD8Async", cuMemsetD8Async, 3020),
    PROC("cuMemsetD32Async", cuMemsetD32Async, 3020),
    PROC("cuModuleLoadData", cuModuleLoadData, 2000),
    PROC("cuModuleUnload", cuModuleUnload, 2000),
    PROC("cuModuleGetFunction", cuModuleGetFunction, 2000),
    PROC("cuLaunchKernel", cuLaunchKernel, 4000),
    PROC("cuStreamCreate", cuStreamCreate, 2000),
    PROC("cuStreamDestroy", cuStreamDestroy_v2, 4000),
    PROC("cuStreamSynchronize", cuStreamSynchronize, 2000),
    PROC("cuEventCreate", cuEventCreate, 2000),
    PROC("cuEventRecord", cuEventRecord, 2000),
    PROC("cuEventSynchronize", cuEventSynchronize, 2000),
    PROC("cuEventElapsedTime", cuEventElapsedTime, 2000),
    PROC("cuEventElapsedTime", cuEventElapsedTime_v2, 12080),
    PROC("cuEventDestroy", cuEventDestroy_v2, 4000),
    PROC("cuStreamBeginCapture", cuStreamBeginCapture_v2, 10010),
    PROC("cuStreamEndCapture", cuStreamEndCapture, 10000),
    PROC("cuGraphInstantiateWithFlags", cuGraphInstantiateWithFlags, 11040),
    PROC("cuGraphLaunch", cuGraphLaunch, 10000),
    PROC("cuGraphExecDestroy", cuGraphExecDestroy, 10000),
    PROC("cuGraphDestroy", cuGraphDestroy, 10000),
    PROC("cuGetProcAddress", cuGetProcAddress_v2, 12000),
};
#undef PROC

}  // namespace

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *symbolStatus) {
    if (!symbol || !pfn || flags > 3) return CUDA_ERROR_INVALID_VALUE;
    *pfn = nullptr;
    // Test knobs for the loader's error paths: ENH_EMU_DRIVER_VERSION pretends to be an older driver,
    // ENH_EMU_HIDE_PROC names one entry to report as missing.
    const char *v = getenv("ENH_EMU_DRIVER_VERSION");
    int driver_version = v ? atoi(v) : kDriverVersion;
    if (cudaVersion > driver_version) return CUDA_ERROR_INVALID_VALUE;   // the driver is older than requested
    const char *hide = getenv("ENH_EMU_HIDE_PROC");
    if (hide && strcmp(hide, symbol) == 0) {
        if (symbolStatus) *symbolStatus = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        return CUDA_SUCCESS;
    }
    const proc *best = nullptr;
    bool known = false;
    for (const auto &p : procs) {
        if (strcmp(p.name, symbol) != 0) continue;
        known = true;
        if (p.since <= cudaVersion && (!best || p.since > best->since)) best = &p;
    }
    if (best) *pfn = best->fn;
    if (symbolStatus)
        *symbolStatus = best ? CU_GET_PROC_ADDRESS_SUCCESS
                        : known ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                                : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_SUCCESS;
}

// ═════════════════════════════ 4. NVRTC ═════════════════════════════

struct _nvrtcProgram {
    std::string source, name, log;
    std::vector<char> cubin;
    std::string ptx;   // set instead of cubin by a compute_XX target
};

namespace {

std::set<nvrtcProgram> programs;
// What NVRTC 13.0 calls supported, trimmed; ENH_EMU_NVRTC_ARCHS=75,80,86 is an NVRTC that predates the device.
std::vector<int> nvrtc_archs() {
    static const std::vector<int> archs = [] {
        std::vector<int> a;
        if (const char *e = getenv("ENH_EMU_NVRTC_ARCHS"))
            for (const char *p = e; *p;) {
                char *end = nullptr;
                long v = strtol(p, &end, 10);
                if (end == p) break;
                a.push_back((int)v);
                p = *end == ',' ? end + 1 : end;
            }
        if (a.empty()) a = {75, 80, 86, 87, 89, 90, 100, 120};
        return a;
    }();
    return archs;
}

// Accepted option spellings (a prefix match); anything else is NVRTC_ERROR_INVALID_OPTION, as with the real one.
const char *const known_options[] = {
    "-arch=", "--gpu-architecture=", "-default-device", "--device-as-default-execution-space", "-std=", "--std=",
    "-use_fast_math", "--use_fast_math", "-lineinfo", "--generate-line-info", "-G", "--device-debug", "-dopt",
    "--dopt", "-ftz=", "--ftz=", "-prec-div=", "--prec-div=", "-prec-sqrt=", "--prec-sqrt=", "-fmad=", "--fmad=",
    "-I", "--include-path=", "-D", "--define-macro=", "-U", "--undefine-macro=", "-w", "--disable-warnings",
    "-restrict", "--restrict", "-maxrregcount=", "--maxrregcount=", "-Xptxas", "--ptxas-options=", "-O",
    "-extra-device-vectorization", "--extra-device-vectorization", "-Werror", "--Werror", "-diag-suppress",
    "--diag-suppress=", "--diag-error=", "--diag-warn=", "-time", "--time=", "-minimal", "--minimal",
};

bool known_option(const char *o) {
    for (const char *k : known_options)
        if (strncmp(o, k, strlen(k)) == 0) return true;
    return false;
}

}  // namespace

const char *nvrtcGetErrorString(nvrtcResult result) {
    switch (result) {
    case NVRTC_SUCCESS: return "NVRTC_SUCCESS";
    case NVRTC_ERROR_OUT_OF_MEMORY: return "NVRTC_ERROR_OUT_OF_MEMORY";
    case NVRTC_ERROR_PROGRAM_CREATION_FAILURE: return "NVRTC_ERROR_PROGRAM_CREATION_FAILURE";
    case NVRTC_ERROR_INVALID_INPUT: return "NVRTC_ERROR_INVALID_INPUT";
    case NVRTC_ERROR_INVALID_PROGRAM: return "NVRTC_ERROR_INVALID_PROGRAM";
    case NVRTC_ERROR_INVALID_OPTION: return "NVRTC_ERROR_INVALID_OPTION";
    case NVRTC_ERROR_COMPILATION: return "NVRTC_ERROR_COMPILATION";
    case NVRTC_ERROR_BUILTIN_OPERATION_FAILURE: return "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE";
    case NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION: return "NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION";
    case NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION: return "NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION";
    case NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID: return "NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID";
    case NVRTC_ERROR_INTERNAL_ERROR: return "NVRTC_ERROR_INTERNAL_ERROR";
    }
    return "NVRTC_ERROR unknown";
}

nvrtcResult nvrtcVersion(int *major, int *minor) {
    if (!major || !minor) return NVRTC_ERROR_INVALID_INPUT;
    *major = 13;
    *minor = 0;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetNumSupportedArchs(int *numArchs) {
    if (!numArchs) return NVRTC_ERROR_INVALID_INPUT;
    *numArchs = (int)nvrtc_archs().size();
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetSupportedArchs(int *supportedArchs) {
    if (!supportedArchs) return NVRTC_ERROR_INVALID_INPUT;
    for (size_t i = 0; i < nvrtc_archs().size(); i++) supportedArchs[i] = nvrtc_archs()[i];
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int numHeaders,
                               const char *const *headers, const char *const *includeNames) {
    lock l(mu);
    if (!prog || !src || numHeaders < 0 || (numHeaders > 0 && (!headers || !includeNames)))
        return NVRTC_ERROR_INVALID_INPUT;
    auto *p = new _nvrtcProgram{src, name ? name : "default_program", "", {}};
    programs.insert(p);
    *prog = p;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog) {
    lock l(mu);
    if (!prog || !programs.erase(*prog)) return NVRTC_ERROR_INVALID_PROGRAM;
    delete *prog;
    *prog = nullptr;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char *const *options) {
    lock l(mu);
    if (!programs.count(prog)) return NVRTC_ERROR_INVALID_PROGRAM;
    if (numOptions < 0 || (numOptions > 0 && !options)) return NVRTC_ERROR_INVALID_INPUT;
    prog->log.clear();
    prog->cubin.clear();
    prog->ptx.clear();
    int arch = 0;
    bool virtual_arch = false;
    for (int i = 0; i < numOptions; i++) {
        const char *o = options[i];
        if (!o || !known_option(o)) {
            prog->log = std::string("nvrtc: error: unrecognized option ") + (o ? o : "(null)") + "\n";
            return NVRTC_ERROR_INVALID_OPTION;
        }
        const char *value = nullptr;
        if (strncmp(o, "-arch=", 6) == 0) value = o + 6;
        if (strncmp(o, "--gpu-architecture=", 19) == 0) value = o + 19;
        if (!value) continue;
        int a = 0;
        bool listed = false;
        const bool is_virtual = sscanf(value, "compute_%d", &a) == 1;
        if (is_virtual || sscanf(value, "sm_%d", &a) == 1)
            for (int s : nvrtc_archs()) listed = listed || s == a;
        if (!listed) {
            prog->log = std::string("nvrtc: error: invalid value for --gpu-architecture (-arch): ") + value + "\n";
            return NVRTC_ERROR_INVALID_OPTION;
        }
        arch = a;
        virtual_arch = is_virtual;
    }
    if (arch == 0) {
        // The real NVRTC would default to a virtual architecture and produce PTX only; the backend must ask for a cubin.
        prog->log = "nvrtc: error: no -arch=sm_XX option: the emulator (like the backend) needs a cubin target\n";
        return NVRTC_ERROR_INVALID_OPTION;
    }
    uint64_t h = fnv1a(prog->source);
    if (h != built_source_hash())
        prog->log = "warning: emulator: this source differs from the kernel file the emulator was built with; "
                    "its kernels are the ones that run\n";
    if (virtual_arch) {
        // compute_XX: PTX only (text), which the driver JIT-compiles for the device at cuModuleLoadData
        char text[160];
        snprintf(text, sizeof text, "%s%d\n// source %llx\n", kPTXHeader, arch, (unsigned long long)h);
        prog->ptx = text;
        return NVRTC_SUCCESS;
    }
    fake_cubin c{};
    c.magic = kCubinMagic;
    c.arch = (uint32_t)arch;
    c.source_hash = h;
    snprintf(c.note, sizeof c.note, "enhance emulator cubin sm_%d", arch);
    prog->cubin.assign(reinterpret_cast<const char *>(&c), reinterpret_cast<const char *>(&c) + sizeof c);
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet) {
    lock l(mu);
    if (!programs.count(prog)) return NVRTC_ERROR_INVALID_PROGRAM;
    if (!logSizeRet) return NVRTC_ERROR_INVALID_INPUT;
    *logSizeRet = prog->log.size() + 1;   // with the terminating NUL, as NVRTC counts it
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log) {
    lock l(mu);
    if (!programs.count(prog)) return NVRTC_ERROR_INVALID_PROGRAM;
    if (!log) return NVRTC_ERROR_INVALID_INPUT;
    memcpy(log, prog->log.c_str(), prog->log.size() + 1);
    return NVRTC_SUCCESS;
}

namespace {
// A compiled program's output for the Get…Size / Get… pairs: the cubin's bytes, or the PTX with its NUL. Either
// pointer may be null (the size call passes no buffer, the copy call no size).
nvrtcResult program_output(nvrtcProgram prog, bool ptx, size_t *size, char *into, bool want_size) {
    lock l(mu);
    if (!programs.count(prog)) return NVRTC_ERROR_INVALID_PROGRAM;
    if (want_size ? !size : !into) return NVRTC_ERROR_INVALID_INPUT;
    const char *bytes = ptx ? prog->ptx.c_str() : prog->cubin.data();
    const size_t n = ptx ? (prog->ptx.empty() ? 0 : prog->ptx.size() + 1) : prog->cubin.size();
    if (n == 0) return NVRTC_ERROR_INVALID_PROGRAM;   // not compiled (successfully) for that kind of target
    if (want_size) *size = n;
    else memcpy(into, bytes, n);
    return NVRTC_SUCCESS;
}
}  // namespace

nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet) { return program_output(prog, false, cubinSizeRet, nullptr, true); }
nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *cubin) { return program_output(prog, false, nullptr, cubin, false); }
nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet) { return program_output(prog, true, ptxSizeRet, nullptr, true); }
nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx) { return program_output(prog, true, nullptr, ptx, false); }

// ═════════════════════════════ 5. cuDNN ═════════════════════════════

struct cudnnContext { cudaStream_t stream; };
struct cudnnTensorStruct {
    bool set;
    cudnnDataType_t type;
    int n, c, h, w;
    int ns, cs, hs, ws;   // strides in elements
};
struct cudnnFilterStruct {
    bool set;
    cudnnDataType_t type;
    cudnnTensorFormat_t format;
    int k, c, h, w;
};
struct cudnnConvolutionStruct {
    bool set;
    int pad_h, pad_w, u, v, dil_h, dil_w;
    cudnnConvolutionMode_t mode;
    cudnnDataType_t compute;
    int groups;
    cudnnMathType_t math;
};

namespace {

std::set<cudnnHandle_t> dnn_handles;
std::set<cudnnTensorDescriptor_t> tensor_descs;
std::set<cudnnFilterDescriptor_t> filter_descs;
std::set<cudnnConvolutionDescriptor_t> conv_descs;
thread_local std::string dnn_last_error;

cudnnStatus_t dnn_fail(cudnnStatus_t s, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dnn_last_error = buf;
    if (getenv("ENH_EMU_VERBOSE")) note("cudnn: %s", buf);
    return s;
}

size_t element_size(cudnnDataType_t t) {
    switch (t) {
    case CUDNN_DATA_FLOAT: case CUDNN_DATA_INT32: return 4;
    case CUDNN_DATA_DOUBLE: return 8;
    case CUDNN_DATA_HALF: case CUDNN_DATA_BFLOAT16: return 2;
    case CUDNN_DATA_INT8: case CUDNN_DATA_UINT8: return 1;
    }
    return 0;
}

// IEEE binary16 ⇄ binary32 in software, rounding to nearest even.
uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a >= 0x7f800000u)   // inf, or NaN kept quiet with its top payload bits
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0));
    if (a < 0x38800000u) {   // below 2^-14: a subnormal half, or zero
        if (a < 0x33000000u) return (uint16_t)sign;   // below 2^-25 (half of the smallest subnormal) → ±0
        uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23);   // value / 2^-24 = mant · 2^(e − 126)
        uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = (a - 0x38000000u) >> 13;   // rebias 127 → 15; overflow carries into the exponent (up to inf)
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    if (h > 0x7c00u) h = 0x7c00u;
    return (uint16_t)(sign | h);
}

float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else {   // subnormal: normalise
            int shift = 0;
            while (!(m & 0x400u)) { m <<= 1; shift++; }
            x = sign | ((uint32_t)(113 - shift) << 23) | ((m & 0x3ffu) << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7f800000u | (m << 13);
    } else {
        x = sign | ((e + 112) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

bool valid_tensor(cudnnTensorDescriptor_t t) { return tensor_descs.count(t) && t->set; }
bool valid_filter(cudnnFilterDescriptor_t f) { return filter_descs.count(f) && f->set; }
bool valid_conv(cudnnConvolutionDescriptor_t c) { return conv_descs.count(c) && c->set; }

// Forward output dims of (x, w, conv), with cuDNN's checks: channels, groups, non-empty output.
cudnnStatus_t forward_dims(cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                           int out[4]) {
    if (!valid_conv(cd) || !valid_tensor(x) || !valid_filter(w))
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "descriptor not created or not set");
    if (w->c * cd->groups != x->c)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "input channels %d != filter channels %d x groups %d", x->c, w->c,
                        cd->groups);
    if (w->k % cd->groups != 0)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "filter count %d not divisible by groups %d", w->k, cd->groups);
    int eh = (w->h - 1) * cd->dil_h + 1, ew = (w->w - 1) * cd->dil_w + 1;
    int ph = x->h + 2 * cd->pad_h, pw = x->w + 2 * cd->pad_w;
    if (eh > ph || ew > pw)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "dilated filter %dx%d larger than padded input %dx%d", eh, ew, ph, pw);
    out[0] = x->n;
    out[1] = w->k;
    out[2] = (ph - eh) / cd->u + 1;
    out[3] = (pw - ew) / cd->v + 1;
    return CUDNN_STATUS_SUCCESS;
}

bool same_dims(cudnnTensorDescriptor_t t, const int d[4]) {
    return t->n == d[0] && t->c == d[1] && t->h == d[2] && t->w == d[3];
}

// Every check a convolution call makes before it runs, for forward (x → y) and backward data (dy → dx):
// `in`/`out` are the small-side and large-side tensors of the forward direction, i.e. x and y (forward) or
// dx and dy (backward data).
cudnnStatus_t check_geometry(cudnnHandle_t h, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                             cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t y, const char *xname,
                             const char *yname) {
    if (!dnn_handles.count(h)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid handle");
    const int dev = implicit_stream(h->stream) ? current_device() : h->stream->device;
    if (sticky[dev]) return dnn_fail(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER, "the context has CUDA error %d", (int)sticky[dev]);
    int d[4];
    if (cudnnStatus_t s = forward_dims(cd, x, w, d)) return s;
    if (!valid_tensor(y)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "%s descriptor not set", yname);
    if (!same_dims(y, d))
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "%s is %dx%dx%dx%d but the convolution of %s gives %dx%dx%dx%d", yname,
                        y->n, y->c, y->h, y->w, xname, d[0], d[1], d[2], d[3]);
    if (x->type != y->type || x->type != w->type)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "data types differ: %s %d, filter %d, %s %d", xname, x->type, w->type,
                        yname, y->type);
    if (x->type != CUDNN_DATA_FLOAT && x->type != CUDNN_DATA_HALF)
        return dnn_fail(CUDNN_STATUS_NOT_SUPPORTED, "the emulator runs FLOAT and HALF convolutions only");
    if (x->type == CUDNN_DATA_FLOAT && cd->compute != CUDNN_DATA_FLOAT)
        return dnn_fail(CUDNN_STATUS_NOT_SUPPORTED, "FLOAT data needs computeType FLOAT");
    if (x->type == CUDNN_DATA_HALF && cd->compute != CUDNN_DATA_FLOAT && cd->compute != CUDNN_DATA_HALF)
        return dnn_fail(CUDNN_STATUS_NOT_SUPPORTED, "HALF data needs computeType FLOAT or HALF");
    if (w->format != CUDNN_TENSOR_NCHW && w->format != CUDNN_TENSOR_NHWC)
        return dnn_fail(CUDNN_STATUS_NOT_SUPPORTED, "filter format %d", w->format);
    return CUDNN_STATUS_SUCCESS;
}

// The device memory a strided tensor touches must lie inside one allocation (a GPU would fault, or corrupt memory).
cudnnStatus_t check_extent(const void *p, cudnnTensorDescriptor_t t, const char *name) {
    size_t last = (size_t)(t->n - 1) * t->ns + (size_t)(t->c - 1) * t->cs + (size_t)(t->h - 1) * t->hs +
                  (size_t)(t->w - 1) * t->ws;
    size_t bytes = (last + 1) * element_size(t->type);
    if (!p) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "%s is NULL", name);
    if (!find_block((uintptr_t)p, bytes)) {
        note("cudnn: %s [0x%llx, +%zu bytes) (%dx%dx%dx%d, strides %d,%d,%d,%d) is not inside one device allocation",
             name, (unsigned long long)(uintptr_t)p, bytes, t->n, t->c, t->h, t->w, t->ns, t->cs, t->hs, t->ws);
        return dnn_fail(CUDNN_STATUS_EXECUTION_FAILED, "%s outside device memory", name);
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t check_filter_extent(const void *p, cudnnFilterDescriptor_t w) {
    size_t bytes = (size_t)w->k * w->c * w->h * w->w * element_size(w->type);
    if (!p) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "w is NULL");
    if (!find_block((uintptr_t)p, bytes)) {
        note("cudnn: filter [0x%llx, +%zu bytes) is not inside one device allocation",
             (unsigned long long)(uintptr_t)p, bytes);
        return dnn_fail(CUDNN_STATUS_EXECUTION_FAILED, "w outside device memory");
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t check_workspace(void *ws, size_t bytes) {
    if (!ws || bytes < kWorkspaceBytes)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "workspace %p of %zu bytes given, %zu needed", ws, bytes,
                        kWorkspaceBytes);
    if (!find_block((uintptr_t)ws, kWorkspaceBytes)) {
        note("cudnn: workspace %p is not %zu bytes of device memory", ws, kWorkspaceBytes);
        return dnn_fail(CUDNN_STATUS_EXECUTION_FAILED, "workspace outside device memory");
    }
    return CUDNN_STATUS_SUCCESS;
}

// Element access through descriptors: offsets in elements, values as float.
float load(const void *p, cudnnDataType_t t, size_t i) {
    return t == CUDNN_DATA_HALF ? half_to_float(static_cast<const uint16_t *>(p)[i]) : static_cast<const float *>(p)[i];
}
void store(void *p, cudnnDataType_t t, size_t i, float v) {
    if (t == CUDNN_DATA_HALF)
        static_cast<uint16_t *>(p)[i] = float_to_half(v);
    else
        static_cast<float *>(p)[i] = v;
}
size_t at(cudnnTensorDescriptor_t t, int n, int c, int h, int w) {
    return (size_t)n * t->ns + (size_t)c * t->cs + (size_t)h * t->hs + (size_t)w * t->ws;
}
// Filter element (k, c, r, s) of a K×C×R×S filter in NCHW (KCRS) or NHWC (KRSC) order.
size_t filter_at(cudnnFilterDescriptor_t f, int k, int c, int r, int s) {
    if (f->format == CUDNN_TENSOR_NHWC) return (((size_t)k * f->h + r) * f->w + s) * f->c + c;
    return (((size_t)k * f->c + c) * f->h + r) * f->w + s;
}

// y = alpha · conv(x, w) + beta · y. CONVOLUTION flips the filter; CROSS_CORRELATION does not. Accumulates in float.
// A float rounded to TF32 (8-bit exponent, 10-bit mantissa) as tensor cores take their float inputs: round to nearest,
// ties away from zero (PTX cvt.rna.tf32.f32). NaN and infinity pass unchanged.
float to_tf32(float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    if ((b & 0x7f800000u) == 0x7f800000u) return v;
    b = (b + 0x1000u) & ~0x1fffu;
    memcpy(&v, &b, 4);
    return v;
}

// Whether a convolution multiplies TF32-rounded operands: float data with TF32 allowed (any math type but FMA), as
// cuDNN does on sm_80 and later.
bool tf32_operands(cudnnDataType_t t, cudnnConvolutionDescriptor_t cd) {
    return t == CUDNN_DATA_FLOAT && cd->math != CUDNN_FMA_MATH;
}

void run_forward(float alpha, cudnnTensorDescriptor_t xd, const void *x, cudnnFilterDescriptor_t wd, const void *w,
                 cudnnConvolutionDescriptor_t cd, float beta, cudnnTensorDescriptor_t yd, void *y) {
    const int G = cd->groups, Cg = wd->c, Kg = wd->k / G, R = wd->h, S = wd->w;
    const bool flip = cd->mode == CUDNN_CONVOLUTION;
    const cudnnDataType_t t = xd->type;
    const bool tf32 = tf32_operands(t, cd);
    for (int n = 0; n < yd->n; n++)
        for (int k = 0; k < yd->c; k++) {
            const int g = k / Kg;
            for (int oh = 0; oh < yd->h; oh++)
                for (int ow = 0; ow < yd->w; ow++) {
                    float acc = 0;
                    for (int c = 0; c < Cg; c++)
                        for (int r = 0; r < R; r++) {
                            int ih = oh * cd->u - cd->pad_h + r * cd->dil_h;
                            if (ih < 0 || ih >= xd->h) continue;
                            for (int s = 0; s < S; s++) {
                                int iw = ow * cd->v - cd->pad_w + s * cd->dil_w;
                                if (iw < 0 || iw >= xd->w) continue;
                                float xv = load(x, t, at(xd, n, g * Cg + c, ih, iw));
                                float wv = load(w, t, filter_at(wd, k, c, flip ? R - 1 - r : r, flip ? S - 1 - s : s));
                                acc += tf32 ? to_tf32(xv) * to_tf32(wv) : xv * wv;
                            }
                        }
                    size_t yi = at(yd, n, k, oh, ow);
                    // beta == 0: y is not read (it may hold anything, NaN included), as cuDNN documents
                    float out = alpha * acc + (beta != 0 ? beta * load(y, t, yi) : 0.0f);
                    store(y, t, yi, out);
                }
        }
}

// dx = alpha · convᵀ(dy, w) + beta · dx: the exact adjoint of run_forward with respect to x.
void run_backward_data(float alpha, cudnnFilterDescriptor_t wd, const void *w, cudnnTensorDescriptor_t dyd,
                       const void *dy, cudnnConvolutionDescriptor_t cd, float beta, cudnnTensorDescriptor_t dxd,
                       void *dx) {
    const int G = cd->groups, Cg = wd->c, Kg = wd->k / G, R = wd->h, S = wd->w;
    const bool flip = cd->mode == CUDNN_CONVOLUTION;
    const cudnnDataType_t t = dxd->type;
    const bool tf32 = tf32_operands(t, cd);
    const int N = dxd->n, C = dxd->c, H = dxd->h, W = dxd->w;
    std::vector<float> acc((size_t)N * C * H * W, 0.0f);
    for (int n = 0; n < dyd->n; n++)
        for (int k = 0; k < dyd->c; k++) {
            const int g = k / Kg;
            for (int oh = 0; oh < dyd->h; oh++)
                for (int ow = 0; ow < dyd->w; ow++) {
                    float d = load(dy, t, at(dyd, n, k, oh, ow));
                    if (tf32) d = to_tf32(d);
                    for (int c = 0; c < Cg; c++)
                        for (int r = 0; r < R; r++) {
                            int ih = oh * cd->u - cd->pad_h + r * cd->dil_h;
                            if (ih < 0 || ih >= H) continue;
                            for (int s = 0; s < S; s++) {
                                int iw = ow * cd->v - cd->pad_w + s * cd->dil_w;
                                if (iw < 0 || iw >= W) continue;
                                float wv = load(w, t, filter_at(wd, k, c, flip ? R - 1 - r : r, flip ? S - 1 - s : s));
                                if (tf32) wv = to_tf32(wv);
                                acc[(((size_t)n * C + g * Cg + c) * H + ih) * W + iw] += d * wv;
                            }
                        }
                }
        }
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int x = 0; x < W; x++) {
                    size_t i = at(dxd, n, c, h, x);
                    float v = alpha * acc[(((size_t)n * C + c) * H + h) * W + x];
                    store(dx, t, i, v + (beta != 0 ? beta * load(dx, t, i) : 0.0f));
                }
}

template <typename Perf, typename Algo>
void fill_perf(Perf *p, Algo algo, cudnnMathType_t math, float ms) {
    memset(p, 0, sizeof *p);
    p->algo = algo;
    p->status = CUDNN_STATUS_SUCCESS;
    p->time = ms;
    p->memory = kWorkspaceBytes;
    p->determinism = CUDNN_DETERMINISTIC;
    p->mathType = math;
}

bool device_ready() { return getenv("ENH_EMU_NO_DEVICE") == nullptr; }

// ENH_EMU_REFUSE_ALGO=1,0: cudnnConvolutionForward / BackwardData refuse those algorithm numbers when called
// (CUDNN_STATUS_NOT_SUPPORTED), as a real engine the heuristics offered may refuse a shape at run time.
bool refused_algo(int algo) {
    const char *e = getenv("ENH_EMU_REFUSE_ALGO");
    for (const char *p = e; p && *p;) {
        char *end = nullptr;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (v == algo) return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}

// What the heuristics (Get…_v7) offer, best first: the forward's implicit GEMMs then GEMM; backward data's ALGO_1
// then ALGO_0. All "need" kWorkspaceBytes.
template <typename Perf, typename Algo>
int fill_offer(Perf *p, int requested, std::initializer_list<Algo> algos, cudnnMathType_t math) {
    int n = 0;
    for (Algo a : algos)
        if (n < requested) fill_perf(&p[n++], a, math, -1.0f);
    return n;
}

}  // namespace

size_t cudnnGetVersion(void) { return 99999; }   // 9.99.99: tells tests they run on the emulator
size_t cudnnGetCudartVersion(void) { return 13000; }

const char *cudnnGetErrorString(cudnnStatus_t status) {
    switch (status) {
#define NAME(s) case s: return #s;
    NAME(CUDNN_STATUS_SUCCESS) NAME(CUDNN_STATUS_NOT_INITIALIZED) NAME(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
    NAME(CUDNN_STATUS_DEPRECATED) NAME(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED) NAME(CUDNN_STATUS_BAD_PARAM)
    NAME(CUDNN_STATUS_BAD_PARAM_NULL_POINTER) NAME(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
    NAME(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND) NAME(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
    NAME(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH) NAME(CUDNN_STATUS_NOT_SUPPORTED) NAME(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
    NAME(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE) NAME(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
    NAME(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH) NAME(CUDNN_STATUS_INTERNAL_ERROR)
    NAME(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED) NAME(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
    NAME(CUDNN_STATUS_EXECUTION_FAILED) NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
    NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
#undef NAME
    }
    return "CUDNN_UNKNOWN_STATUS_FOUND";
}

void cudnnGetLastErrorString(char *message, size_t max_size) {
    if (!message || max_size == 0) return;
    snprintf(message, max_size, "%s", dnn_last_error.c_str());
    dnn_last_error.clear();
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
    lock l(mu);
    if (!handle) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "handle is NULL");
    if (!device_ready())
        return dnn_fail(CUDNN_STATUS_NOT_INITIALIZED, "cudaGetDeviceCount(&count) != cudaSuccess (emulated)");
    auto *h = new cudnnContext{nullptr};
    dnn_handles.insert(h);
    *handle = h;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
    lock l(mu);
    if (!dnn_handles.erase(handle)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid handle");
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
    lock l(mu);
    if (!dnn_handles.count(handle)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid handle");
    if (!valid_stream(streamId)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid stream");
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc) {
    lock l(mu);
    if (!tensorDesc) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "NULL");
    auto *t = new cudnnTensorStruct{};
    tensor_descs.insert(t);
    *tensorDesc = t;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t t, cudnnDataType_t dataType, int n, int c, int h,
                                           int w, int nStride, int cStride, int hStride, int wStride) {
    lock l(mu);
    if (!tensor_descs.count(t)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid tensor descriptor");
    if (element_size(dataType) == 0) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "data type %d", dataType);
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || nStride <= 0 || cStride <= 0 || hStride <= 0 || wStride <= 0)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "dims %d,%d,%d,%d strides %d,%d,%d,%d must be positive", n, c, h, w,
                        nStride, cStride, hStride, wStride);
    *t = cudnnTensorStruct{true, dataType, n, c, h, w, nStride, cStride, hStride, wStride};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t t) {
    lock l(mu);
    if (!t) return CUDNN_STATUS_SUCCESS;   // like cuDNN, destroying NULL is a no-op
    if (!tensor_descs.erase(t)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid tensor descriptor");
    delete t;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc) {
    lock l(mu);
    if (!filterDesc) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "NULL");
    auto *f = new cudnnFilterStruct{};
    filter_descs.insert(f);
    *filterDesc = f;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t f, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
    lock l(mu);
    if (!filter_descs.count(f)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid filter descriptor");
    if (element_size(dataType) == 0) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "data type %d", dataType);
    if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC && format != CUDNN_TENSOR_NCHW_VECT_C)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "format %d", format);
    if (k <= 0 || c <= 0 || h <= 0 || w <= 0)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "filter dims %d,%d,%d,%d must be positive", k, c, h, w);
    *f = cudnnFilterStruct{true, dataType, format, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t f) {
    lock l(mu);
    if (!f) return CUDNN_STATUS_SUCCESS;
    if (!filter_descs.erase(f)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid filter descriptor");
    delete f;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc) {
    lock l(mu);
    if (!convDesc) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "NULL");
    auto *c = new cudnnConvolutionStruct{};
    c->groups = 1;
    c->math = CUDNN_DEFAULT_MATH;
    conv_descs.insert(c);
    *convDesc = c;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t cd, int pad_h, int pad_w, int u, int v,
                                              int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
    lock l(mu);
    if (!conv_descs.count(cd)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid convolution descriptor");
    if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "pads %d,%d strides %d,%d dilations %d,%d", pad_h, pad_w, u, v,
                        dilation_h, dilation_w);
    if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "mode %d", mode);
    if (element_size(computeType) == 0) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "compute type %d", computeType);
    cd->set = true;
    cd->pad_h = pad_h, cd->pad_w = pad_w, cd->u = u, cd->v = v, cd->dil_h = dilation_h, cd->dil_w = dilation_w;
    cd->mode = mode;
    cd->compute = computeType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t cd, int groupCount) {
    lock l(mu);
    if (!conv_descs.count(cd)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid convolution descriptor");
    if (groupCount < 1) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "group count %d", groupCount);
    cd->groups = groupCount;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t cd, cudnnMathType_t mathType) {
    lock l(mu);
    if (!conv_descs.count(cd)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid convolution descriptor");
    if ((int)mathType < 0 || (int)mathType > 3) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "math type %d", mathType);
    cd->math = mathType;   // float data: anything but FMA multiplies TF32-rounded operands (tf32_operands)
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t cd) {
    lock l(mu);
    if (!cd) return CUDNN_STATUS_SUCCESS;
    if (!conv_descs.erase(cd)) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "invalid convolution descriptor");
    delete cd;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc, int *n, int *c, int *h,
                                                    int *w) {
    lock l(mu);
    if (!n || !c || !h || !w) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "NULL output");
    int d[4];
    if (cudnnStatus_t s = forward_dims(convDesc, inputTensorDesc, filterDesc, d)) return s;
    *n = d[0], *c = d[1], *h = d[2], *w = d[3];
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc,
                                                     const int requestedAlgoCount, int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults) {
    lock l(mu);
    if (cudnnStatus_t s = check_geometry(handle, srcDesc, filterDesc, convDesc, destDesc, "x", "y")) return s;
    if (requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "requestedAlgoCount %d, outputs %p %p", requestedAlgoCount,
                        (void *)returnedAlgoCount, (void *)perfResults);
    *returnedAlgoCount = fill_offer(perfResults, requestedAlgoCount,
                                    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                     CUDNN_CONVOLUTION_FWD_ALGO_GEMM}, convDesc->math);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *sizeInBytes) {
    lock l(mu);
    if (cudnnStatus_t s = check_geometry(handle, xDesc, wDesc, convDesc, yDesc, "x", "y")) return s;
    if ((int)algo < 0 || algo >= CUDNN_CONVOLUTION_FWD_ALGO_COUNT || !sizeInBytes)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "algo %d", algo);
    *sizeInBytes = kWorkspaceBytes;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc,
                                      const void *x, const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y) {
    lock l(mu);
    if (cudnnStatus_t s = check_geometry(handle, xDesc, wDesc, convDesc, yDesc, "x", "y")) return s;
    if ((int)algo < 0 || algo >= CUDNN_CONVOLUTION_FWD_ALGO_COUNT)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "algo %d", algo);
    if (!alpha || !beta) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "alpha or beta is NULL");
    if (refused_algo((int)algo)) return dnn_fail(CUDNN_STATUS_NOT_SUPPORTED, "forward algo %d refused (ENH_EMU_REFUSE_ALGO)", algo);
    if (cudnnStatus_t s = check_workspace(workSpace, workSpaceSizeInBytes)) return s;
    if (cudnnStatus_t s = check_extent(x, xDesc, "x")) return s;
    if (cudnnStatus_t s = check_filter_extent(w, wDesc)) return s;
    if (cudnnStatus_t s = check_extent(y, yDesc, "y")) return s;
    // ENH_EMU_DENSE_NHWC_ONLY=1: refuse a channels-last input whose pixel stride is not its channel count (a channel
    // view of a wider NHWC tensor), as a cuDNN engine that only takes packed NHWC might; the backend must fall back.
    if (getenv("ENH_EMU_DENSE_NHWC_ONLY") && xDesc->cs == 1 && xDesc->ws != xDesc->c && xDesc->h * xDesc->w > 1)
        return dnn_fail(CUDNN_STATUS_NOT_SUPPORTED, "channels-last x with pixel stride %d for %d channels", xDesc->ws, xDesc->c);
    // ENH_EMU_DENSE_ONLY=1: refuse any x that is not packed in NCHW or NHWC order (a channel view of a wider tensor in
    // either layout: its image stride, and under NHWC its pixel stride, are the parent's).
    if (getenv("ENH_EMU_DENSE_ONLY")) {
        const cudnnTensorStruct &d = *xDesc;
        const bool nchw = d.ws == 1 && d.hs == d.w && d.cs == d.h * d.w && d.ns == d.c * d.h * d.w;
        const bool nhwc = d.cs == 1 && d.ws == d.c && d.hs == d.w * d.c && d.ns == d.h * d.w * d.c;
        if (!nchw && !nhwc)
            return dnn_fail(CUDNN_STATUS_NOT_SUPPORTED, "x [%d,%d,%d,%d] strides %d,%d,%d,%d is not packed", d.n, d.c, d.h, d.w,
                            d.ns, d.cs, d.hs, d.ws);
    }
    // alpha and beta point at floats for FLOAT and HALF data
    const float a = *static_cast<const float *>(alpha), b = *static_cast<const float *>(beta);
    if (capturing(handle->stream) || (!sync_mode() && !implicit_stream(handle->stream))) {
        cudnnTensorStruct xd = *xDesc, yd = *yDesc;
        cudnnFilterStruct wd = *wDesc;
        cudnnConvolutionStruct cd = *convDesc;
        submit(handle->stream, "cudnnConvolutionForward", {(uintptr_t)x, (uintptr_t)w, (uintptr_t)y, (uintptr_t)workSpace},
               [=]() mutable -> CUresult {
                   if (check_extent(x, &xd, "x") || check_filter_extent(w, &wd) || check_extent(y, &yd, "y"))
                       return CUDA_ERROR_ILLEGAL_ADDRESS;
                   run_forward(a, &xd, x, &wd, w, &cd, b, &yd, y);
                   launches++;
                   last_kernel = "cudnnConvolutionForward";
                   return CUDA_SUCCESS;
               });
        return CUDNN_STATUS_SUCCESS;
    }
    run_forward(a, xDesc, x, wDesc, w, convDesc, b, yDesc, y);
    launches++;
    last_kernel = "cudnnConvolutionForward";
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                     const void *x, const cudnnFilterDescriptor_t wDesc, const void *w,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t yDesc, void *y,
                                                     const int requestedAlgoCount, int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults, void *workSpace,
                                                     size_t workSpaceSizeInBytes) {
    lock l(mu);
    if (cudnnStatus_t s = check_geometry(handle, xDesc, wDesc, convDesc, yDesc, "x", "y")) return s;
    if (requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "requestedAlgoCount %d, outputs %p %p", requestedAlgoCount,
                        (void *)returnedAlgoCount, (void *)perfResults);
    if (cudnnStatus_t s = check_workspace(workSpace, workSpaceSizeInBytes)) return s;
    if (cudnnStatus_t s = check_extent(x, xDesc, "x")) return s;
    if (cudnnStatus_t s = check_filter_extent(w, wDesc)) return s;
    if (cudnnStatus_t s = check_extent(y, yDesc, "y")) return s;
    // Like the real one, "finding" runs the convolution, so y is overwritten; it waits for the stream's work first.
    if (!capturing(handle->stream)) run_pending(handle->stream);
    auto t0 = std::chrono::steady_clock::now();
    run_forward(1.0f, xDesc, x, wDesc, w, convDesc, 0.0f, yDesc, y);
    float ms = std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - t0).count();
    fill_perf(perfResults, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, convDesc->math, ms);
    *returnedAlgoCount = 1;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t handle,
                                                          const cudnnFilterDescriptor_t filterDesc,
                                                          const cudnnTensorDescriptor_t diffDesc,
                                                          const cudnnConvolutionDescriptor_t convDesc,
                                                          const cudnnTensorDescriptor_t gradDesc,
                                                          const int requestedAlgoCount, int *returnedAlgoCount,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perfResults) {
    lock l(mu);
    if (cudnnStatus_t s = check_geometry(handle, gradDesc, filterDesc, convDesc, diffDesc, "dx", "dy")) return s;
    if (requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "requestedAlgoCount %d, outputs %p %p", requestedAlgoCount,
                        (void *)returnedAlgoCount, (void *)perfResults);
    *returnedAlgoCount = fill_offer(perfResults, requestedAlgoCount,
                                    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0}, convDesc->math);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                           const cudnnTensorDescriptor_t dyDesc,
                                                           const cudnnConvolutionDescriptor_t convDesc,
                                                           const cudnnTensorDescriptor_t dxDesc,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t *sizeInBytes) {
    lock l(mu);
    if (cudnnStatus_t s = check_geometry(handle, dxDesc, wDesc, convDesc, dyDesc, "dx", "dy")) return s;
    if ((int)algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT || !sizeInBytes)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "algo %d", algo);
    *sizeInBytes = kWorkspaceBytes;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha, const cudnnFilterDescriptor_t wDesc,
                                           const void *w, const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workSpace,
                                           size_t workSpaceSizeInBytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxDesc, void *dx) {
    lock l(mu);
    if (cudnnStatus_t s = check_geometry(handle, dxDesc, wDesc, convDesc, dyDesc, "dx", "dy")) return s;
    if ((int)algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "algo %d", algo);
    if (!alpha || !beta) return dnn_fail(CUDNN_STATUS_BAD_PARAM, "alpha or beta is NULL");
    if (refused_algo((int)algo)) return dnn_fail(CUDNN_STATUS_NOT_SUPPORTED, "backward-data algo %d refused (ENH_EMU_REFUSE_ALGO)", algo);
    if (cudnnStatus_t s = check_workspace(workSpace, workSpaceSizeInBytes)) return s;
    if (cudnnStatus_t s = check_extent(dy, dyDesc, "dy")) return s;
    if (cudnnStatus_t s = check_filter_extent(w, wDesc)) return s;
    if (cudnnStatus_t s = check_extent(dx, dxDesc, "dx")) return s;
    const float a = *static_cast<const float *>(alpha), b = *static_cast<const float *>(beta);
    if (capturing(handle->stream) || (!sync_mode() && !implicit_stream(handle->stream))) {
        cudnnTensorStruct dyd = *dyDesc, dxd = *dxDesc;
        cudnnFilterStruct wd = *wDesc;
        cudnnConvolutionStruct cd = *convDesc;
        submit(handle->stream, "cudnnConvolutionBackwardData", {(uintptr_t)dy, (uintptr_t)w, (uintptr_t)dx, (uintptr_t)workSpace},
               [=]() mutable -> CUresult {
                   if (check_extent(dy, &dyd, "dy") || check_filter_extent(w, &wd) || check_extent(dx, &dxd, "dx"))
                       return CUDA_ERROR_ILLEGAL_ADDRESS;
                   run_backward_data(a, &wd, w, &dyd, dy, &cd, b, &dxd, dx);
                   launches++;
                   last_kernel = "cudnnConvolutionBackwardData";
                   return CUDA_SUCCESS;
               });
        return CUDNN_STATUS_SUCCESS;
    }
    run_backward_data(a, wDesc, w, dyDesc, dy, convDesc, b, dxDesc, dx);
    launches++;
    last_kernel = "cudnnConvolutionBackwardData";
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                          const void *w, const cudnnTensorDescriptor_t dyDesc,
                                                          const void *dy, const cudnnConvolutionDescriptor_t convDesc,
                                                          const cudnnTensorDescriptor_t dxDesc, void *dx,
                                                          const int requestedAlgoCount, int *returnedAlgoCount,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perfResults,
                                                          void *workSpace, size_t workSpaceSizeInBytes) {
    lock l(mu);
    if (cudnnStatus_t s = check_geometry(handle, dxDesc, wDesc, convDesc, dyDesc, "dx", "dy")) return s;
    if (requestedAlgoCount < 1 || !returnedAlgoCount || !perfResults)
        return dnn_fail(CUDNN_STATUS_BAD_PARAM, "requestedAlgoCount %d, outputs %p %p", requestedAlgoCount,
                        (void *)returnedAlgoCount, (void *)perfResults);
    if (cudnnStatus_t s = check_workspace(workSpace, workSpaceSizeInBytes)) return s;
    if (cudnnStatus_t s = check_extent(dy, dyDesc, "dy")) return s;
    if (cudnnStatus_t s = check_filter_extent(w, wDesc)) return s;
    if (cudnnStatus_t s = check_extent(dx, dxDesc, "dx")) return s;
    if (!capturing(handle->stream)) run_pending(handle->stream);
    auto t0 = std::chrono::steady_clock::now();
    run_backward_data(1.0f, wDesc, w, dyDesc, dy, convDesc, 0.0f, dxDesc, dx);
    float ms = std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - t0).count();
    fill_perf(perfResults, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, convDesc->math, ms);
    *returnedAlgoCount = 1;
    return CUDNN_STATUS_SUCCESS;
}

// ═════════════════════════════ 6. counters for tests ═════════════════════════════

extern "C" {
// Kernel launches plus cuDNN convolution runs since load (or the last enh_emu_reset).
__attribute__((visibility("default"))) unsigned long long enh_emu_launch_count(void) {
    lock l(mu);
    return launches;
}
// Bytes of device memory allocated and not freed (requested sizes, guards not counted).
__attribute__((visibility("default"))) unsigned long long enh_emu_live_bytes(void) {
    lock l(mu);
    return live_bytes;
}
// The highest live_bytes since load (or the last enh_emu_reset).
__attribute__((visibility("default"))) unsigned long long enh_emu_peak_bytes(void) {
    lock l(mu);
    return peak_bytes;
}
// What is alive now, for tests that check a backend gives everything back: out[0] primary-context references
// (retained, not yet released, over every device), [1] streams, [2] modules, [3] cuDNN handles, [4] device
// allocations, [5] instantiated graphs.
__attribute__((visibility("default"))) void enh_emu_live_objects(unsigned long long out[6]) {
    lock l(mu);
    unsigned long long refs = 0;
    for (int r : primary_refs) refs += (unsigned long long)r;
    out[0] = refs;
    out[1] = streams.size();
    out[2] = modules.size();
    out[3] = dnn_handles.size();
    out[4] = blocks.size();
    out[5] = graph_execs.size();
}
// Zero the launch count, bring the peak down to the current live bytes and clear the devices' sticky errors (a test
// hook: a GPU's context stays broken until the process ends). Allocations are left alone.
__attribute__((visibility("default"))) void enh_emu_reset(void) {
    lock l(mu);
    launches = 0;
    peak_bytes = live_bytes;
    for (CUresult &r : sticky) r = CUDA_SUCCESS;
}
}

// ═════════════════════════════ 7. NVML (device memory as another process sees it) ═════════════════════════════
// nvmlDeviceGetMemoryInfo reports what the process using the emulator last wrote to ENH_EMU_NVML_FILE (0 when the
// file is absent). ENH_EMU_NO_NVML makes nvmlInit_v2 fail as on a machine without the NVIDIA driver.

struct nvmlDevice_st { int index; };
namespace {
nvmlDevice_st emu_nvml_devices[8] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};
bool nvml_initialized = false;

// NVML indexes devices physically; a handle is valid while it points into emu_nvml_devices below the device count.
bool valid_nvml(nvmlDevice_t d) {
    return d >= emu_nvml_devices && d < emu_nvml_devices + enh_emu::physical_count();
}

// "used launches physical" from ENH_EMU_NVML_FILE (older two-field files: physical device 0).
void read_published(unsigned long long *used, unsigned long long *count, int *physical) {
    *used = 0; *physical = 0;
    if (const char *path = getenv("ENH_EMU_NVML_FILE")) {
        if (FILE *f = fopen(path, "r")) {
            int n = fscanf(f, "%llu %llu %d", used, count, physical);
            if (n < 1) *used = 0;
            if (n < 3) *physical = 0;
            fclose(f);
        }
    }
}
}

extern "C" {
__attribute__((visibility("default"))) nvmlReturn_t nvmlInit_v2(void) {
    if (getenv("ENH_EMU_NO_NVML")) return 9;   // NVML_ERROR_DRIVER_NOT_LOADED
    nvml_initialized = true;
    return 0;
}
__attribute__((visibility("default"))) nvmlReturn_t nvmlShutdown(void) {
    if (!nvml_initialized) return 1;   // NVML_ERROR_UNINITIALIZED
    nvml_initialized = false;
    return 0;
}
__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!nvml_initialized) return 1;
    if (!device || (int)index >= enh_emu::physical_count()) return 2;   // NVML_ERROR_INVALID_ARGUMENT
    *device = &emu_nvml_devices[index];
    return 0;
}
__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device) {
    if (!nvml_initialized) return 1;
    if (!device || !pciBusId) return 2;
    if (getenv("ENH_EMU_NVML_NO_BUS")) return 6;   // a driver whose NVML does not know CUDA's bus string
    unsigned domain = 0, bus = 0, dev = 0, fn = 0;
    if (sscanf(pciBusId, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) != 4) return 2;
    for (int p = 0; p < enh_emu::physical_count(); p++) {
        if (domain == 0 && bus == (unsigned)(0x10 + p) && dev == 0 && fn == 0) { *device = &emu_nvml_devices[p]; return 0; }
    }
    return 6;   // NVML_ERROR_NOT_FOUND
}
__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    if (!nvml_initialized) return 1;
    if (!valid_nvml(device) || !memory) return 2;
    unsigned long long used = 0, count = 0;
    int physical = 0;
    read_published(&used, &count, &physical);
    if (physical != device->index) used = 0;   // the process's memory is on another device
    memory->total = total_memory();
    memory->used = std::min<unsigned long long>(used, total_memory());
    memory->free = total_memory() - memory->used;
    return 0;
}
// 100 % when the process using the emulator launched kernels since the previous call (its published launch count
// moved) on this device, else 0 %: NVML's "a kernel ran during the last sample period", coarsely.
__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *u) {
    static unsigned long long seen = 0;
    if (!nvml_initialized) return 1;
    if (!valid_nvml(device) || !u) return 2;
    unsigned long long used = 0, count = seen;
    int physical = 0;
    read_published(&used, &count, &physical);
    u->gpu = count != seen && physical == device->index ? 100 : 0;
    u->memory = u->gpu;
    seen = count;
    return 0;
}
__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    if (!nvml_initialized) return 1;
    if (!valid_nvml(device) || !name || length == 0) return 2;
    enh_emu::device_name(device->index, name, length);
    return 0;
}
__attribute__((visibility("default"))) const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 6: return "Not Found";
    case 9: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}
}
