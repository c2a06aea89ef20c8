// selftest.cpp — checks the CUDA host emulator through the real loader (Sources/CCUDA/loader.c), the way the
// backend reaches it. Run by selftest.sh:  selftest EMULATOR_DIR   (a folder made by scripts/cuda-emulator-build
// around sample_kernels.cu). The convolution references below are written independently of emulator.cpp:
// explicitly zero-padded inputs, pre-flipped filters, plain NCHW arrays.
#include "ccuda.h"

#include <dlfcn.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

static int failures = 0, checks = 0;
#define CHECK(cond, ...)                                                            \
    do {                                                                            \
        checks++;                                                                   \
        if (!(cond)) {                                                              \
            failures++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s — ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                           \
            fputc('\n', stderr);                                                    \
        }                                                                           \
    } while (0)

static enh_cuda_api api;
static unsigned long long (*emu_launches)(void), (*emu_live)(void), (*emu_peak)(void);
static void (*emu_reset)(void);
static std::mt19937 rng(1234);

static std::vector<float> random_vector(size_t n) {
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto &x : v) x = d(rng);
    return v;
}

// ───────── device helpers ─────────

static CUdeviceptr dalloc(size_t bytes) {
    CUdeviceptr p = 0;
    CUresult r = api.cuMemAlloc(&p, bytes);
    CHECK(r == CUDA_SUCCESS, "cuMemAlloc(%zu) -> %d", bytes, r);
    return p;
}
static void upload(CUdeviceptr d, const void *h, size_t bytes) {
    CHECK(api.cuMemcpyHtoDAsync(d, h, bytes, nullptr) == CUDA_SUCCESS, "upload");
}
static void download(void *h, CUdeviceptr d, size_t bytes) {
    CHECK(api.cuMemcpyDtoHAsync(h, d, bytes, nullptr) == CUDA_SUCCESS, "download");
}
static void *ptr(CUdeviceptr d) { return reinterpret_cast<void *>(d); }
// The larger of an error so far and a new difference; a NaN difference (a value never written) wins.
static double worse(double err, double d) { return std::isnan(d) || d > err ? d : err; }

// ───────── 1. no device, init, device queries, contexts ─────────

static void test_driver_basics() {
    setenv("ENH_EMU_NO_DEVICE", "1", 1);
    CHECK(api.cuInit(0) == CUDA_ERROR_NO_DEVICE, "cuInit with ENH_EMU_NO_DEVICE");
    const char *name = nullptr, *text = nullptr;
    CHECK(api.cuGetErrorName(CUDA_ERROR_NO_DEVICE, &name) == CUDA_SUCCESS && strcmp(name, "CUDA_ERROR_NO_DEVICE") == 0,
          "error name %s", name ? name : "(null)");
    CHECK(api.cuGetErrorString(CUDA_ERROR_NO_DEVICE, &text) == CUDA_SUCCESS && strstr(text, "no CUDA-capable device"),
          "error string %s", text ? text : "(null)");
    CHECK(api.cuGetErrorName((CUresult)12345, &name) == CUDA_ERROR_INVALID_VALUE && name == nullptr, "unknown code");
    int count = -1;
    CHECK(api.cuDeviceGetCount(&count) == CUDA_ERROR_NOT_INITIALIZED, "count before init");
    cudnnHandle_t h = nullptr;
    CHECK(api.cudnnCreate(&h) == CUDNN_STATUS_NOT_INITIALIZED, "cudnnCreate without device");
    char msg[256] = {0};
    api.cudnnGetLastErrorString(msg, sizeof msg);
    CHECK(strlen(msg) > 0, "cudnnGetLastErrorString after failure is empty");
    unsetenv("ENH_EMU_NO_DEVICE");

    CHECK(api.cuInit(0) == CUDA_SUCCESS, "cuInit");
    int version = 0;
    CHECK(api.cuDriverGetVersion(&version) == CUDA_SUCCESS && version == 13000, "driver version %d", version);
    CHECK(api.cuDeviceGetCount(&count) == CUDA_SUCCESS && count == 1, "count %d", count);
    CUdevice dev = -1;
    CHECK(api.cuDeviceGet(&dev, 1) == CUDA_ERROR_INVALID_DEVICE, "ordinal 1");
    CHECK(api.cuDeviceGet(&dev, 0) == CUDA_SUCCESS && dev == 0, "device 0");
    char dname[64];
    CHECK(api.cuDeviceGetName(dname, sizeof dname, dev) == CUDA_SUCCESS &&
              strcmp(dname, "Enhance host emulator") == 0, "name %s", dname);
    int major = 0, minor = -1, sms = 0;
    api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    api.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
    CHECK(major == 9 && minor == 0 && sms == 4, "sm %d.%d, %d SMs", major, minor, sms);
    size_t total = 0;
    CHECK(api.cuDeviceTotalMem(&total, dev) == CUDA_SUCCESS && total == (8ull << 30), "total %zu", total);

    // no current context on this thread yet
    CUdeviceptr p = 0;
    CHECK(api.cuMemAlloc(&p, 16) == CUDA_ERROR_INVALID_CONTEXT, "alloc without a context");
    CUcontext ctx = nullptr;
    CHECK(api.cuDevicePrimaryCtxRetain(&ctx, dev) == CUDA_SUCCESS && ctx, "retain");
    CHECK(api.cuCtxSetCurrent(ctx) == CUDA_SUCCESS, "set current");
    // another thread must set the context itself (Swift tasks hop threads)
    CUresult other_without = CUDA_SUCCESS, other_with = CUDA_ERROR_UNKNOWN;
    std::thread t([&] {
        CUdeviceptr q = 0;
        other_without = api.cuMemAlloc(&q, 16);
        api.cuCtxSetCurrent(ctx);
        other_with = api.cuMemAlloc(&q, 16);
        api.cuMemFree(q);
    });
    t.join();
    CHECK(other_without == CUDA_ERROR_INVALID_CONTEXT && other_with == CUDA_SUCCESS, "other thread %d %d",
          other_without, other_with);
    CHECK(api.cuCtxSynchronize(nullptr) == CUDA_SUCCESS, "ctx sync");
}

// ───────── 2. memory ─────────

static void test_memory() {
    emu_reset();
    unsigned long long live0 = emu_live();
    CUdeviceptr a = dalloc(1000), b = dalloc(3000);
    CHECK(a % 256 == 0 && b % 256 == 0, "alignment %llx %llx", a, b);
    CHECK(emu_live() == live0 + 4000 && emu_peak() >= live0 + 4000, "live %llu peak %llu", emu_live(), emu_peak());
    size_t free_b = 0, total = 0;
    CHECK(api.cuMemGetInfo(&free_b, &total) == CUDA_SUCCESS && total - free_b == emu_live(), "meminfo");

    std::vector<unsigned char> fresh(1000);
    download(fresh.data(), a, 1000);
    CHECK(fresh[0] == 0xFF && fresh[999] == 0xFF, "fresh memory reads as NaN bytes");
    CHECK(api.cuMemsetD8Async(a, 7, 1000, nullptr) == CUDA_SUCCESS, "memset8");
    CHECK(api.cuMemsetD32Async(b, 0x3f800000u, 750, nullptr) == CUDA_SUCCESS, "memset32");
    CHECK(api.cuMemsetD32Async(b + 2, 0, 1, nullptr) == CUDA_ERROR_INVALID_VALUE, "memset32 misaligned");
    std::vector<float> fl(750);
    download(fl.data(), b, 3000);
    CHECK(fl[0] == 1.0f && fl[749] == 1.0f, "memset32 values");
    CHECK(api.cuMemcpyDtoDAsync(b, a, 1000, nullptr) == CUDA_SUCCESS, "dtod");
    std::vector<unsigned char> back(1000);
    download(back.data(), b, 1000);
    CHECK(back[0] == 7 && back[999] == 7, "dtod values");
    // out-of-range copies are refused, as a GPU would fault
    CHECK(api.cuMemcpyHtoDAsync(a + 500, back.data(), 501, nullptr) == CUDA_ERROR_INVALID_VALUE, "htod past the end");
    CHECK(api.cuMemcpyDtoHAsync(back.data(), a - 8, 8, nullptr) == CUDA_ERROR_INVALID_VALUE, "dtoh before start");
    CHECK(api.cuMemFree(a + 4) == CUDA_ERROR_INVALID_VALUE, "free inside a block");
    CHECK(api.cuMemAlloc(&a, 0) == CUDA_ERROR_INVALID_VALUE, "alloc 0");
    CUdeviceptr huge = 0;
    CHECK(api.cuMemAlloc(&huge, 9ull << 30) == CUDA_ERROR_OUT_OF_MEMORY, "alloc 9 GiB");
    CHECK(api.cuMemFree(a) == CUDA_SUCCESS && api.cuMemFree(b) == CUDA_SUCCESS, "free");
    CHECK(emu_live() == live0 && emu_peak() == live0 + 4000, "live %llu peak %llu", emu_live(), emu_peak());
    void *pinned = nullptr;
    CHECK(api.cuMemHostAlloc(&pinned, 4096, CU_MEMHOSTALLOC_PORTABLE) == CUDA_SUCCESS && pinned, "host alloc");
    CHECK(api.cuMemFreeHost(pinned) == CUDA_SUCCESS && api.cuMemFreeHost(pinned) == CUDA_ERROR_INVALID_VALUE,
          "host free twice");
}

// ───────── 3. NVRTC, modules, launches, guards ─────────

static std::string read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return "";
    std::string s;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    fclose(f);
    return s;
}

static std::vector<char> compile(const std::string &src, const char *arch_option, nvrtcResult *result,
                                 std::string *log) {
    nvrtcProgram prog = nullptr;
    CHECK(api.nvrtcCreateProgram(&prog, src.c_str(), "kernels.cu", 0, nullptr, nullptr) == NVRTC_SUCCESS, "create");
    const char *opts[] = {"--std=c++17", arch_option};
    *result = api.nvrtcCompileProgram(prog, arch_option ? 2 : 1, opts);
    size_t n = 0;
    api.nvrtcGetProgramLogSize(prog, &n);
    log->assign(n, '\0');
    api.nvrtcGetProgramLog(prog, &(*log)[0]);
    log->resize(strlen(log->c_str()));
    std::vector<char> cubin;
    if (*result == NVRTC_SUCCESS) {
        size_t size = 0;
        CHECK(api.nvrtcGetCUBINSize(prog, &size) == NVRTC_SUCCESS && size > 0, "cubin size");
        cubin.resize(size);
        CHECK(api.nvrtcGetCUBIN(prog, cubin.data()) == NVRTC_SUCCESS, "cubin");
    }
    CHECK(api.nvrtcDestroyProgram(&prog) == NVRTC_SUCCESS && prog == nullptr, "destroy");
    return cubin;
}

static void launch1d(CUfunction f, unsigned int n, void **params, unsigned int block = 128) {
    CUresult r = api.cuLaunchKernel(f, (n + block - 1) / block, 1, 1, block, 1, 1, 0, nullptr, params, nullptr);
    CHECK(r == CUDA_SUCCESS, "launch -> %d", r);
}

static void test_kernels(const char *kernels_path) {
    int major = 0, minor = 0, narch = 0;
    CHECK(api.nvrtcVersion(&major, &minor) == NVRTC_SUCCESS && major == 13 && minor == 0, "nvrtc %d.%d", major, minor);
    api.nvrtcGetNumSupportedArchs(&narch);
    std::vector<int> archs(narch);
    api.nvrtcGetSupportedArchs(archs.data());
    CHECK(narch == 8 && archs[0] == 75 && archs[5] == 90, "archs %d", narch);
    CHECK(strcmp(api.nvrtcGetErrorString(NVRTC_ERROR_INVALID_OPTION), "NVRTC_ERROR_INVALID_OPTION") == 0, "nvrtc str");

    std::string src = read_file(kernels_path), log;
    CHECK(!src.empty(), "kernel source %s", kernels_path);
    nvrtcResult r;
    compile(src, nullptr, &r, &log);
    CHECK(r == NVRTC_ERROR_INVALID_OPTION && log.find("-arch") != std::string::npos, "no arch: %d %s", r, log.c_str());
    compile(src, "-arch=sm_95", &r, &log);
    CHECK(r == NVRTC_ERROR_INVALID_OPTION, "sm_95: %d", r);
    std::vector<char> cubin86 = compile(src, "--gpu-architecture=sm_86", &r, &log);
    CHECK(r == NVRTC_SUCCESS, "sm_86: %d", r);
    std::vector<char> cubin = compile(src, "-arch=sm_90", &r, &log);
    CHECK(r == NVRTC_SUCCESS && log.empty(), "sm_90: %d log '%s'", r, log.c_str());

    CUmodule mod = nullptr, bad = nullptr;
    std::vector<char> elf(64, 0);
    memcpy(elf.data(), "\x7f" "ELF", 4);
    CHECK(api.cuModuleLoadData(&bad, elf.data()) == CUDA_ERROR_INVALID_IMAGE, "ELF image");
    CHECK(api.cuModuleLoadData(&bad, cubin86.data()) == CUDA_ERROR_NO_BINARY_FOR_GPU, "sm_86 cubin on sm_90");
    CHECK(api.cuModuleLoadData(&mod, cubin.data()) == CUDA_SUCCESS, "load");
    CUfunction saxpy, scale2d, mathmix, to_half, from_half, oob, none;
    CHECK(api.cuModuleGetFunction(&none, mod, "nope") == CUDA_ERROR_NOT_FOUND, "missing kernel");
    CHECK(api.cuModuleGetFunction(&saxpy, mod, "saxpy") == CUDA_SUCCESS, "saxpy");
    CHECK(api.cuModuleGetFunction(&scale2d, mod, "scale_leaky_2d") == CUDA_SUCCESS, "2d");
    CHECK(api.cuModuleGetFunction(&mathmix, mod, "math_mix") == CUDA_SUCCESS, "math");
    CHECK(api.cuModuleGetFunction(&to_half, mod, "to_half") == CUDA_SUCCESS, "to_half");
    CHECK(api.cuModuleGetFunction(&from_half, mod, "from_half") == CUDA_SUCCESS, "from_half");
    CHECK(api.cuModuleGetFunction(&oob, mod, "fill_off_by_one") == CUDA_SUCCESS, "oob");

    CUstream stream = nullptr;
    CHECK(api.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS, "stream");
    emu_reset();

    // saxpy, 1-D, n not a multiple of the block
    const long long n = 1000;
    std::vector<float> x = random_vector(n), y = random_vector(n), out(n);
    CUdeviceptr dx = dalloc(n * 4), dy = dalloc(n * 4);
    upload(dx, x.data(), n * 4);
    upload(dy, y.data(), n * 4);
    float a = 2.5f;
    void *p1[] = {&dy, &dx, &a, (void *)&n};
    launch1d(saxpy, n, p1);
    download(out.data(), dy, n * 4);
    double err = 0;
    for (long long i = 0; i < n; i++) err = worse(err, fabsf(out[i] - (a * x[i] + y[i])));
    CHECK(err == 0, "saxpy max error %g", err);

    // 2-D blocks over (W, H), channels in grid z
    int C = 3, H = 19, W = 37;
    float slope = 0.2f;
    std::vector<float> in = random_vector((size_t)C * H * W), sc = {0.5f, -1.0f, 2.0f}, o((size_t)C * H * W);
    CUdeviceptr din = dalloc(in.size() * 4), dsc = dalloc(12), dout = dalloc(in.size() * 4);
    upload(din, in.data(), in.size() * 4);
    upload(dsc, sc.data(), 12);
    void *p2[] = {&dout, &din, &dsc, &C, &H, &W, &slope};
    CHECK(api.cuLaunchKernel(scale2d, (W + 15) / 16, (H + 7) / 8, C, 16, 8, 1, 0, stream, p2, nullptr) == CUDA_SUCCESS,
          "2d launch");
    CHECK(api.cuStreamSynchronize(stream) == CUDA_SUCCESS, "2d sync");   // the NULL-stream copy does not wait for `stream`
    download(o.data(), dout, o.size() * 4);
    err = 0;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H * W; i++) {
            float v = in[(size_t)c * H * W + i] * sc[c];
            err = worse(err, fabsf(o[(size_t)c * H * W + i] - (v >= 0 ? v : v * slope)));
        }
    CHECK(err == 0, "2d max error %g", err);

    // math functions
    int nm = 257;
    std::vector<float> mi(nm), mo(nm);
    for (int i = 0; i < nm; i++) mi[i] = (i - 128) * 0.05f;
    CUdeviceptr dmi = dalloc(nm * 4), dmo = dalloc(nm * 4);
    upload(dmi, mi.data(), nm * 4);
    void *p3[] = {&dmo, &dmi, &nm};
    launch1d(mathmix, nm, p3, 64);
    download(mo.data(), dmo, nm * 4);
    err = 0;
    for (int i = 0; i < nm; i++) {
        float v = mi[i];
        float ref = expf(-fabsf(v)) + tanhf(v) + sqrtf(fabsf(v)) + 1.0f / sqrtf(1.0f + v * v) + floorf(v) + 1.0f;
        err = worse(err, fabsf(mo[i] - ref));
    }
    CHECK(err < 1e-6, "math max error %g", err);

    // the sample's portable fp16 conversion against the compiler's _Float16 (round to nearest even)
    int nh = 1 << 16;
    std::vector<float> hf(nh), hb(nh);
    std::uniform_real_distribution<float> e(-30.0f, 17.0f);
    for (int i = 0; i < nh; i++) hf[i] = ((i & 1) ? -1.0f : 1.0f) * exp2f(e(rng));
    std::vector<unsigned short> hbits(nh);
    CUdeviceptr dhf = dalloc(nh * 4), dhb = dalloc(nh * 2), dhr = dalloc(nh * 4);
    upload(dhf, hf.data(), nh * 4);
    void *p4[] = {&dhb, &dhf, &nh};
    launch1d(to_half, nh, p4, 256);
    void *p5[] = {&dhr, &dhb, &nh};
    launch1d(from_half, nh, p5, 256);
    download(hbits.data(), dhb, nh * 2);
    download(hb.data(), dhr, nh * 4);
    int mismatches = 0;
    for (int i = 0; i < nh; i++) {
        _Float16 ref = (_Float16)hf[i];
        unsigned short rb;
        memcpy(&rb, &ref, 2);
        if (rb != hbits[i] || hb[i] != (float)ref) mismatches++;
    }
    CHECK(mismatches == 0, "fp16 round trip mismatches %d of %d", mismatches, nh);

    // invalid configurations
    CHECK(api.cuLaunchKernel(saxpy, 1, 1, 1, 1025, 1, 1, 0, nullptr, p1, nullptr) == CUDA_ERROR_INVALID_VALUE,
          "1025 threads");
    CHECK(api.cuLaunchKernel(saxpy, 1, 1, 1, 32, 32, 2, 0, nullptr, p1, nullptr) == CUDA_ERROR_INVALID_VALUE,
          "2048 threads in 3-D");
    CHECK(api.cuLaunchKernel(saxpy, 0, 1, 1, 128, 1, 1, 0, nullptr, p1, nullptr) == CUDA_ERROR_INVALID_VALUE, "grid 0");
    CHECK(emu_launches() == 5, "launch count %llu", emu_launches());

    // an out-of-bounds write is found at the next synchronisation, once, naming the block
    CHECK(api.cuStreamSynchronize(stream) == CUDA_SUCCESS, "clean sync");
    int m = 100;
    float v = 3.0f;
    CUdeviceptr small = dalloc(m * 4);
    void *p6[] = {&small, &v, &m};
    launch1d(oob, m + 1, p6, 32);
    fprintf(stderr, "(an out-of-bounds report from the emulator is expected next)\n");
    CHECK(api.cuStreamSynchronize(stream) == CUDA_ERROR_ILLEGAL_ADDRESS, "oob not detected");
    // an illegal address is sticky: every later call on the context returns it (a GPU's until the process ends; the
    // emulator's until enh_emu_reset, a test hook)
    CHECK(api.cuStreamSynchronize(stream) == CUDA_ERROR_ILLEGAL_ADDRESS, "sticky: the next sync");
    CUdeviceptr refused = 0;
    CHECK(api.cuMemAlloc(&refused, 16) == CUDA_ERROR_ILLEGAL_ADDRESS && refused == 0, "sticky: cuMemAlloc");
    CHECK(api.cuLaunchKernel(saxpy, 1, 1, 1, 32, 1, 1, 0, stream, p1, nullptr) == CUDA_ERROR_ILLEGAL_ADDRESS,
          "sticky: cuLaunchKernel");
    CHECK(api.cuCtxSynchronize(nullptr) == CUDA_ERROR_ILLEGAL_ADDRESS, "sticky: cuCtxSynchronize");
    emu_reset();
    CHECK(api.cuStreamSynchronize(stream) == CUDA_SUCCESS, "reported once, and clear after enh_emu_reset");
    launch1d(oob, m + 1, p6, 32);
    fprintf(stderr, "(and once more, at cuMemFree)\n");
    CHECK(api.cuMemFree(small) == CUDA_ERROR_ILLEGAL_ADDRESS, "oob at free");
    CHECK(api.cuMemAlloc(&refused, 16) == CUDA_ERROR_ILLEGAL_ADDRESS, "sticky after the free's report");
    emu_reset();

    // events and graph capture
    CUevent e0, e1, en;
    CHECK(api.cuEventCreate(&e0, CU_EVENT_DEFAULT) == CUDA_SUCCESS && api.cuEventCreate(&e1, 0) == CUDA_SUCCESS, "ev");
    CHECK(api.cuEventCreate(&en, CU_EVENT_DISABLE_TIMING) == CUDA_SUCCESS, "ev no timing");
    float ms = -1;
    CHECK(api.cuEventElapsedTime(&ms, e0, e1) == CUDA_ERROR_INVALID_HANDLE, "elapsed before record");
    api.cuEventRecord(e0, stream);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    api.cuEventRecord(e1, stream);
    api.cuEventRecord(en, stream);
    CHECK(api.cuEventSynchronize(e1) == CUDA_SUCCESS, "event sync");
    CHECK(api.cuEventElapsedTime(&ms, e0, e1) == CUDA_SUCCESS && ms >= 1.5f && ms < 1000, "elapsed %g ms", ms);
    CHECK(api.cuEventElapsedTime(&ms, e0, en) == CUDA_ERROR_INVALID_HANDLE, "elapsed with a no-timing event");
    api.cuEventDestroy(e0), api.cuEventDestroy(e1), api.cuEventDestroy(en);
    // Graph capture: captured work does not run until the graph is launched; parameters are copied at capture;
    // every launch replays it; copies to or from the host, synchronisation and frees during a capture invalidate it;
    // freeing a block a live graph uses makes its next launch fail.
    {
        CHECK(api.cuStreamBeginCapture && api.cuStreamEndCapture && api.cuGraphInstantiateWithFlags && api.cuGraphLaunch,
              "graph entries loaded");
        std::vector<float> gy(n, 1.0f), gx(n, 2.0f), got(n);
        CUdeviceptr gdx = dalloc(n * 4), gdy = dalloc(n * 4);
        upload(gdx, gx.data(), n * 4);
        upload(gdy, gy.data(), n * 4);
        float ga = 3.0f;
        void *gp[] = {&gdy, &gdx, &ga, (void *)&n};
        CHECK(api.cuStreamBeginCapture(nullptr, CU_STREAM_CAPTURE_MODE_RELAXED) == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
              "the NULL stream cannot be captured");
        CHECK(api.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_RELAXED) == CUDA_SUCCESS, "begin capture");
        CHECK(api.cuLaunchKernel(saxpy, (unsigned)(n + 127) / 128, 1, 1, 128, 1, 1, 0, stream, gp, nullptr) == CUDA_SUCCESS,
              "captured launch");
        ga = 100.0f;   // changed after the launch call: the graph keeps 3
        CUdeviceptr scratch = dalloc(64);   // allocation during a relaxed capture is allowed
        CHECK(api.cuMemsetD8Async(scratch, 0, 64, stream) == CUDA_SUCCESS, "captured memset");
        CUgraph graph = nullptr;
        CHECK(api.cuStreamEndCapture(stream, &graph) == CUDA_SUCCESS && graph, "end capture");
        download(got.data(), gdy, n * 4);
        CHECK(got[0] == 1.0f && got[n - 1] == 1.0f, "captured work ran at capture time (%g)", got[0]);
        CUgraphExec exec = nullptr;
        CHECK(api.cuGraphInstantiateWithFlags(&exec, graph, 0) == CUDA_SUCCESS && exec, "instantiate");
        CHECK(api.cuGraphLaunch(exec, stream) == CUDA_SUCCESS, "graph launch 1");
        CHECK(api.cuStreamSynchronize(stream) == CUDA_SUCCESS, "sync after graph launch 1");
        download(got.data(), gdy, n * 4);
        CHECK(got[0] == 7.0f && got[n - 1] == 7.0f, "graph launch 1 gives 3·2 + 1, got %g", got[0]);
        CHECK(api.cuGraphLaunch(exec, stream) == CUDA_SUCCESS, "graph launch 2");
        CHECK(api.cuStreamSynchronize(stream) == CUDA_SUCCESS, "sync after graph launch 2");
        download(got.data(), gdy, n * 4);
        CHECK(got[0] == 13.0f, "graph launch 2 gives 3·2 + 7, got %g", got[0]);

        CHECK(api.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_RELAXED) == CUDA_SUCCESS, "begin capture 2");
        CHECK(api.cuMemcpyHtoDAsync(gdx, gx.data(), 4, stream) == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "upload in capture");
        CHECK(api.cuStreamSynchronize(stream) == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "sync in capture");
        CUgraph bad = nullptr;
        CHECK(api.cuStreamEndCapture(stream, &bad) == CUDA_ERROR_STREAM_CAPTURE_INVALIDATED && !bad, "invalidated capture");

        // Two streams capture at once (backends run in parallel); a free of memory neither capture used goes through,
        // a free of memory an ongoing capture used is refused and invalidates that capture only.
        CUstream other = nullptr;
        CHECK(api.cuStreamCreate(&other, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS, "second stream");
        CUdeviceptr unrelated = dalloc(128), used = dalloc(128);
        CHECK(api.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_RELAXED) == CUDA_SUCCESS, "capture A");
        CHECK(api.cuStreamBeginCapture(other, CU_STREAM_CAPTURE_MODE_RELAXED) == CUDA_SUCCESS, "capture B at the same time");
        CHECK(api.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_RELAXED) == CUDA_ERROR_ILLEGAL_STATE, "capture A twice");
        CHECK(api.cuMemsetD8Async(used, 1, 128, other) == CUDA_SUCCESS, "B uses a block");
        CHECK(api.cuMemsetD8Async(gdy, 0, 4, stream) == CUDA_SUCCESS, "A uses another");
        CHECK(api.cuMemFree(unrelated) == CUDA_SUCCESS, "free of an unrelated block during captures");
        CHECK(api.cuMemFree(used) == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "free of a block capture B used");
        CUgraph g1 = nullptr, g2 = nullptr;
        CHECK(api.cuStreamEndCapture(stream, &g1) == CUDA_SUCCESS && g1, "capture A still valid");
        CHECK(api.cuStreamEndCapture(other, &g2) == CUDA_ERROR_STREAM_CAPTURE_INVALIDATED && !g2, "capture B invalidated");
        api.cuGraphDestroy(g1);
        api.cuMemFree(used);
        api.cuStreamDestroy(other);

        api.cuMemFree(scratch);
        CHECK(api.cuGraphLaunch(exec, stream) == CUDA_ERROR_ILLEGAL_ADDRESS, "launch after a used block was freed");
        CHECK(api.cuStreamSynchronize(stream) == CUDA_ERROR_ILLEGAL_ADDRESS, "that illegal address is sticky");
        emu_reset();
        CHECK(api.cuGraphExecDestroy(exec) == CUDA_SUCCESS && api.cuGraphDestroy(graph) == CUDA_SUCCESS, "destroy");
        CHECK(api.cuGraphExecDestroy(exec) == CUDA_ERROR_INVALID_HANDLE, "destroy twice");
        api.cuMemFree(gdx), api.cuMemFree(gdy);
    }

    // Deferred work: what is queued on a created stream runs only when something waits for it, as late as a GPU
    // may run it, so a read without the synchronisation sees old bytes (unless ENH_EMU_SYNC is set).
    if (!getenv("ENH_EMU_SYNC")) {
        std::vector<float> ones(n, 1.0f), twos(n, 2.0f), back(n, -1.0f);
        CHECK(api.cuMemcpyHtoDAsync(dx, ones.data(), n * 4, stream) == CUDA_SUCCESS, "queued upload x");
        CHECK(api.cuMemcpyHtoDAsync(dy, twos.data(), n * 4, stream) == CUDA_SUCCESS, "queued upload y");
        ones[0] = 50.0f;   // pageable: the driver staged the bytes at the call, so this change is not copied
        float a3 = 3.0f;
        void *pq[] = {&dy, &dx, &a3, (void *)&n};
        CHECK(api.cuLaunchKernel(saxpy, (unsigned)(n + 127) / 128, 1, 1, 128, 1, 1, 0, stream, pq, nullptr) == CUDA_SUCCESS,
              "queued launch");
        a3 = 1000.0f;   // parameters are copied at the launch call
        download(back.data(), dy, n * 4);   // the NULL stream does not wait for a non-blocking stream
        CHECK(back[0] != 5.0f, "a copy on the NULL stream saw queued work (%g): it ran at the call", back[0]);
        CHECK(api.cuStreamSynchronize(stream) == CUDA_SUCCESS, "sync queued work");
        download(back.data(), dy, n * 4);
        CHECK(back[0] == 5.0f && back[n - 1] == 5.0f, "after the sync y = 3·1 + 2, got %g", back[0]);
        // into pageable memory on the stream: the driver returns once the copy (and the work before it) is done
        CHECK(api.cuLaunchKernel(saxpy, (unsigned)(n + 127) / 128, 1, 1, 128, 1, 1, 0, stream, pq, nullptr) == CUDA_SUCCESS,
              "queued launch 2");
        CHECK(api.cuMemcpyDtoHAsync(back.data(), dy, n * 4, stream) == CUDA_SUCCESS, "pageable download");
        CHECK(back[0] == 1005.0f, "a pageable download on the stream waits for its work: got %g", back[0]);
        // pinned memory: the copy reads and writes it when it runs
        float *pin = nullptr;
        CHECK(api.cuMemHostAlloc((void **)&pin, n * 4, 0) == CUDA_SUCCESS, "pinned");
        for (long long i = 0; i < n; i++) pin[i] = 7.0f;
        CHECK(api.cuMemcpyHtoDAsync(dy, pin, n * 4, stream) == CUDA_SUCCESS, "pinned upload");
        pin[0] = 8.0f;   // before the copy ran: a GPU may copy this value
        CHECK(api.cuMemcpyDtoHAsync(pin + 1, dy, 4, stream) == CUDA_SUCCESS, "pinned download");
        CHECK(pin[1] == 7.0f, "a pinned download completed before the sync");
        CHECK(api.cuStreamSynchronize(stream) == CUDA_SUCCESS, "sync pinned");
        CHECK(pin[1] == 8.0f, "the pinned upload read the host bytes when it ran: %g", pin[1]);
        CHECK(api.cuMemFreeHost(pin) == CUDA_SUCCESS, "free pinned");
        // an error of queued work is reported by the stream's next synchronisation, once
        int m2 = 10;
        float v2 = 1.0f;
        CUdeviceptr tiny = dalloc(m2 * 4);
        void *po[] = {&tiny, &v2, &m2};
        CHECK(api.cuLaunchKernel(oob, 1, 1, 1, 32, 1, 1, 0, stream, po, nullptr) == CUDA_SUCCESS, "queued oob launch");
        fprintf(stderr, "(an out-of-bounds report from the emulator is expected next)\n");
        CHECK(api.cuStreamSynchronize(stream) == CUDA_ERROR_ILLEGAL_ADDRESS, "queued oob found at the sync");
        CHECK(api.cuStreamSynchronize(stream) == CUDA_ERROR_ILLEGAL_ADDRESS, "queued oob: sticky");
        emu_reset();
        CHECK(api.cuStreamSynchronize(stream) == CUDA_SUCCESS, "queued oob reported once");
        api.cuMemFree(tiny);
    }

    // Thread order: a kernel whose threads read what others write (shift_left_racy) is right in launch order only;
    // ENH_EMU_THREAD_ORDER=reverse or shuffle runs the threads otherwise and shows the race.
    {
        CUfunction racy;
        CHECK(api.cuModuleGetFunction(&racy, mod, "shift_left_racy") == CUDA_SUCCESS, "racy kernel");
        const char *was = getenv("ENH_EMU_THREAD_ORDER");
        std::string saved = was ? was : "";
        int nr = 300;
        std::vector<float> ramp(nr), got(nr);
        for (int i = 0; i < nr; i++) ramp[i] = (float)i;
        CUdeviceptr dr = dalloc(nr * 4);
        void *pr[] = {&dr, &nr};
        for (const char *order : {"forward", "reverse", "shuffle"}) {
            setenv("ENH_EMU_THREAD_ORDER", order, 1);
            upload(dr, ramp.data(), nr * 4);
            launch1d(racy, nr, pr, 64);
            download(got.data(), dr, nr * 4);
            int right = 0;
            for (int i = 0; i + 1 < nr; i++) right += got[i] == (float)(i + 1);
            if (strcmp(order, "forward") == 0) CHECK(right == nr - 1, "forward order: %d of %d shifted", right, nr - 1);
            else CHECK(right < nr - 1, "%s order hid the race (%d of %d right)", order, right, nr - 1);
        }
        if (was) setenv("ENH_EMU_THREAD_ORDER", saved.c_str(), 1); else unsetenv("ENH_EMU_THREAD_ORDER");
        api.cuMemFree(dr);
    }

    for (CUdeviceptr d : {dx, dy, din, dsc, dout, dmi, dmo, dhf, dhb, dhr}) api.cuMemFree(d);
    CHECK(api.cuModuleUnload(mod) == CUDA_SUCCESS, "unload");
    CHECK(api.cuLaunchKernel(saxpy, 1, 1, 1, 1, 1, 1, 0, nullptr, p1, nullptr) == CUDA_ERROR_INVALID_HANDLE,
          "launch after unload");
    CHECK(api.cuStreamDestroy(stream) == CUDA_SUCCESS, "stream destroy");
}

// ───────── 4. cuDNN ─────────

static uint16_t to_half_bits(float f) {
    _Float16 h = (_Float16)f;
    uint16_t b;
    memcpy(&b, &h, 2);
    return b;
}
static float from_half_bits(uint16_t b) {
    _Float16 h;
    memcpy(&h, &b, 2);
    return (float)h;
}

struct conv_case {
    const char *name;
    int N, C, H, W, K, R, S;
    int pad_h, pad_w, u, v, dil_h, dil_w, groups;
    cudnnConvolutionMode_t mode;
    float alpha, beta;
    cudnnDataType_t type;
    cudnnTensorFormat_t filter_format;
    int x_total_c, x_c0;   // x is channels [x_c0, x_c0 + C) of an NCHW buffer with x_total_c channels
    int y_total_c, y_c0;
    bool nhwc;             // x and y laid out NHWC through their strides (views not combined with this)
};

// y[n][k][oh][ow] for plain NCHW x, KCRS w: zero-pad x explicitly, flip w for CONVOLUTION, then a direct gather.
static std::vector<double> reference_forward(const conv_case &t, const std::vector<float> &x,
                                             const std::vector<float> &w, int OH, int OW) {
    const int Cg = t.C / t.groups, Kg = t.K / t.groups;
    const int PH = t.H + 2 * t.pad_h, PW = t.W + 2 * t.pad_w;
    std::vector<double> xp((size_t)t.N * t.C * PH * PW, 0.0);
    for (int n = 0; n < t.N; n++)
        for (int c = 0; c < t.C; c++)
            for (int h = 0; h < t.H; h++)
                for (int q = 0; q < t.W; q++)
                    xp[(((size_t)n * t.C + c) * PH + h + t.pad_h) * PW + q + t.pad_w] =
                        x[(((size_t)n * t.C + c) * t.H + h) * t.W + q];
    std::vector<double> wf(w.size());
    for (int k = 0; k < t.K; k++)
        for (int c = 0; c < Cg; c++)
            for (int r = 0; r < t.R; r++)
                for (int s = 0; s < t.S; s++) {
                    int rr = t.mode == CUDNN_CONVOLUTION ? t.R - 1 - r : r;
                    int ss = t.mode == CUDNN_CONVOLUTION ? t.S - 1 - s : s;
                    wf[(((size_t)k * Cg + c) * t.R + r) * t.S + s] = w[(((size_t)k * Cg + c) * t.R + rr) * t.S + ss];
                }
    std::vector<double> y((size_t)t.N * t.K * OH * OW, 0.0);
    for (int n = 0; n < t.N; n++)
        for (int k = 0; k < t.K; k++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double sum = 0;
                    int g = k / Kg;
                    for (int c = 0; c < Cg; c++)
                        for (int r = 0; r < t.R; r++)
                            for (int s = 0; s < t.S; s++)
                                sum += xp[(((size_t)n * t.C + g * Cg + c) * PH + oh * t.u + r * t.dil_h) * PW + ow * t.v +
                                          s * t.dil_w] *
                                       wf[(((size_t)k * Cg + c) * t.R + r) * t.S + s];
                    y[(((size_t)n * t.K + k) * OH + oh) * OW + ow] = sum;
                }
    return y;
}

struct dnn {
    cudnnHandle_t h = nullptr;
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    dnn() {
        CHECK(api.cudnnCreate(&h) == CUDNN_STATUS_SUCCESS, "cudnnCreate");
        api.cudnnCreateTensorDescriptor(&x);
        api.cudnnCreateTensorDescriptor(&y);
        api.cudnnCreateFilterDescriptor(&w);
        api.cudnnCreateConvolutionDescriptor(&conv);
    }
    ~dnn() {
        api.cudnnDestroyTensorDescriptor(x);
        api.cudnnDestroyTensorDescriptor(y);
        api.cudnnDestroyFilterDescriptor(w);
        api.cudnnDestroyConvolutionDescriptor(conv);
        api.cudnnDestroy(h);
    }
};

static void set_tensor(cudnnTensorDescriptor_t d, cudnnDataType_t type, int N, int C, int H, int W, int total_c,
                       bool nhwc) {
    cudnnStatus_t s = nhwc ? api.cudnnSetTensor4dDescriptorEx(d, type, N, C, H, W, H * W * C, 1, W * C, C)
                           : api.cudnnSetTensor4dDescriptorEx(d, type, N, C, H, W, total_c * H * W, H * W, W, 1);
    CHECK(s == CUDNN_STATUS_SUCCESS, "set tensor %d", s);
}

static void run_forward_case(const conv_case &t) {
    dnn d;
    const size_t esz = t.type == CUDNN_DATA_HALF ? 2 : 4;
    const int Cg = t.C / t.groups;
    const int xtc = t.x_total_c ? t.x_total_c : t.C, ytc = t.y_total_c ? t.y_total_c : t.K;
    set_tensor(d.x, t.type, t.N, t.C, t.H, t.W, xtc, t.nhwc);
    CHECK(api.cudnnSetFilter4dDescriptor(d.w, t.type, t.filter_format, t.K, Cg, t.R, t.S) == 0, "filter");
    CHECK(api.cudnnSetConvolution2dDescriptor(d.conv, t.pad_h, t.pad_w, t.u, t.v, t.dil_h, t.dil_w, t.mode,
                                              CUDNN_DATA_FLOAT) == 0, "conv");
    CHECK(api.cudnnSetConvolutionGroupCount(d.conv, t.groups) == 0, "groups");
    CHECK(api.cudnnSetConvolutionMathType(d.conv, CUDNN_FMA_MATH) == 0, "math");
    int on, oc, oh, ow;
    CHECK(api.cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &on, &oc, &oh, &ow) == 0, "%s: out dim", t.name);
    CHECK(on == t.N && oc == t.K, "%s: out dims %d %d", t.name, on, oc);
    set_tensor(d.y, t.type, t.N, t.K, oh, ow, ytc, t.nhwc);

    // host data: logical NCHW x and KCRS w; rounded to half first for HALF cases so the reference sees the same inputs
    std::vector<float> x = random_vector((size_t)t.N * t.C * t.H * t.W), w = random_vector((size_t)t.K * Cg * t.R * t.S);
    std::vector<float> y0 = random_vector((size_t)t.N * t.K * oh * ow);
    if (t.type == CUDNN_DATA_HALF)
        for (auto *v : {&x, &w, &y0})
            for (auto &e : *v) e = from_half_bits(to_half_bits(e));
    // device buffers in their real layouts (views: a larger buffer; NHWC: permuted; filter NHWC: KRSC)
    const size_t xelems = (size_t)t.N * xtc * t.H * t.W, yelems = (size_t)t.N * ytc * oh * ow;
    std::vector<float> xs(xelems, 1e30f), ys(yelems, -7.0f), ws(w.size());
    auto xat = [&](int n, int c, int h, int q) {
        return t.nhwc ? (((size_t)n * t.H + h) * t.W + q) * t.C + c : (((size_t)n * xtc + c) * t.H + h) * t.W + q;
    };
    auto yat = [&](int n, int k, int h, int q) {
        return t.nhwc ? (((size_t)n * oh + h) * ow + q) * t.K + k : (((size_t)n * ytc + k) * oh + h) * ow + q;
    };
    for (int n = 0; n < t.N; n++)
        for (int c = 0; c < t.C; c++)
            for (int h = 0; h < t.H; h++)
                for (int q = 0; q < t.W; q++)
                    xs[xat(n, t.x_c0 + c, h, q)] = x[(((size_t)n * t.C + c) * t.H + h) * t.W + q];
    for (int n = 0; n < t.N; n++)
        for (int k = 0; k < t.K; k++)
            for (int h = 0; h < oh; h++)
                for (int q = 0; q < ow; q++) ys[yat(n, t.y_c0 + k, h, q)] = y0[(((size_t)n * t.K + k) * oh + h) * ow + q];
    for (int k = 0; k < t.K; k++)
        for (int c = 0; c < Cg; c++)
            for (int r = 0; r < t.R; r++)
                for (int s = 0; s < t.S; s++)
                    ws[t.filter_format == CUDNN_TENSOR_NHWC ? (((size_t)k * t.R + r) * t.S + s) * Cg + c
                                                            : (((size_t)k * Cg + c) * t.R + r) * t.S + s] =
                        w[(((size_t)k * Cg + c) * t.R + r) * t.S + s];
    auto to_device = [&](const std::vector<float> &v) {
        CUdeviceptr p = dalloc(v.size() * esz);
        if (esz == 4) {
            upload(p, v.data(), v.size() * 4);
        } else {
            std::vector<uint16_t> hb(v.size());
            for (size_t i = 0; i < v.size(); i++) hb[i] = to_half_bits(v[i]);
            upload(p, hb.data(), hb.size() * 2);
        }
        return p;
    };
    CUdeviceptr dx = to_device(xs), dw = to_device(ws), dy = to_device(ys), dws = dalloc(4096);
    // the view offsets are pointer offsets, as the backend passes them
    void *xp = (char *)ptr(dx) + (t.nhwc ? 0 : (size_t)t.x_c0 * t.H * t.W * esz);
    void *yp = (char *)ptr(dy) + (t.nhwc ? 0 : (size_t)t.y_c0 * oh * ow * esz);

    cudnnConvolutionFwdAlgoPerf_t perf[4];
    int returned = 0;
    CHECK(api.cudnnGetConvolutionForwardAlgorithm_v7(d.h, d.x, d.w, d.conv, d.y, 4, &returned, perf) == 0 &&
              returned == 3 && perf[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM &&
              perf[1].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM && perf[2].algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM &&
              perf[0].status == CUDNN_STATUS_SUCCESS && perf[0].memory == 4096 && perf[0].mathType == CUDNN_FMA_MATH,
          "%s: heuristics (%d offered)", t.name, returned);
    setenv("ENH_EMU_REFUSE_ALGO", "2,1", 1);
    CHECK(api.cudnnConvolutionForward(d.h, &t.alpha, d.x, xp, d.w, ptr(dw), d.conv, perf[0].algo, ptr(dws), 4096,
                                      &t.beta, d.y, yp) == CUDNN_STATUS_NOT_SUPPORTED, "%s: a refused algorithm", t.name);
    unsetenv("ENH_EMU_REFUSE_ALGO");
    size_t wsize = 0;
    CHECK(api.cudnnGetConvolutionForwardWorkspaceSize(d.h, d.x, d.w, d.conv, d.y, perf[0].algo, &wsize) == 0 &&
              wsize == 4096, "%s: workspace size", t.name);
    CHECK(api.cudnnConvolutionForward(d.h, &t.alpha, d.x, xp, d.w, ptr(dw), d.conv, perf[0].algo, nullptr, 0, &t.beta,
                                      d.y, yp) == CUDNN_STATUS_BAD_PARAM, "%s: no workspace accepted", t.name);
    cudnnStatus_t s = api.cudnnConvolutionForward(d.h, &t.alpha, d.x, xp, d.w, ptr(dw), d.conv, perf[0].algo,
                                                  ptr(dws), 4096, &t.beta, d.y, yp);
    CHECK(s == CUDNN_STATUS_SUCCESS, "%s: forward -> %d", t.name, s);

    std::vector<float> out(yelems);
    if (esz == 4) {
        download(out.data(), dy, yelems * 4);
    } else {
        std::vector<uint16_t> hb(yelems);
        download(hb.data(), dy, yelems * 2);
        for (size_t i = 0; i < yelems; i++) out[i] = from_half_bits(hb[i]);
    }
    std::vector<double> ref = reference_forward(t, x, w, oh, ow);
    double worst = 0;
    int untouched_bad = 0;
    for (int n = 0; n < t.N; n++)
        for (int k = 0; k < ytc; k++)
            for (int h = 0; h < oh; h++)
                for (int q = 0; q < ow; q++) {
                    if (t.nhwc && k >= t.K) continue;
                    float got = out[yat(n, k, h, q)];
                    int kk = k - t.y_c0;
                    if (kk < 0 || kk >= t.K) {   // outside the view: must be untouched
                        untouched_bad += got != -7.0f;
                        continue;
                    }
                    size_t i = (((size_t)n * t.K + kk) * oh + h) * ow + q;
                    double want = t.alpha * ref[i] + t.beta * y0[i];
                    double tol = t.type == CUDNN_DATA_HALF ? 2e-3 * (1 + fabs(want)) : 1e-5 * (1 + fabs(want));
                    worst = std::max(worst, fabs(got - want) / tol);
                }
    CHECK(worst <= 1.0 && untouched_bad == 0, "%s: worst error %.3g of tolerance, %d untouched changed", t.name, worst,
          untouched_bad);
    printf("  forward %-44s y %dx%dx%dx%d  worst/tol %.3f\n", t.name, t.N, t.K, oh, ow, worst);
    for (CUdeviceptr p : {dx, dw, dy, dws}) api.cuMemFree(p);
}

static void test_cudnn_forward() {
    CHECK(api.cudnnGetVersion() == 99999 && api.cudnnGetCudartVersion() == 13000, "versions");
    CHECK(strcmp(api.cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM") == 0, "error string");
    const conv_case cases[] = {
        {"3x3 pad 1", 2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, 1, 0, CUDNN_DATA_FLOAT,
         CUDNN_TENSOR_NCHW, 0, 0, 0, 0, false},
        {"grouped strided padded dilated, flipped, a/b", 2, 6, 9, 8, 4, 3, 2, 2, 1, 2, 3, 2, 1, 2, CUDNN_CONVOLUTION,
         0.5f, 0.25f, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 0, 0, 0, 0, false},
        {"depthwise 3x3", 1, 4, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4, CUDNN_CROSS_CORRELATION, 1, 0, CUDNN_DATA_FLOAT,
         CUDNN_TENSOR_NCHW, 0, 0, 0, 0, false},
        {"channel views in and out, stride 2", 2, 3, 8, 7, 4, 3, 3, 1, 1, 2, 2, 1, 1, 1, CUDNN_CROSS_CORRELATION, 1, 1,
         CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 7, 2, 10, 3, false},
        {"NHWC tensors and filter", 2, 5, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, 1, 0,
         CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, 0, 0, 0, 0, true},
        {"1x1 as linear", 3, 16, 1, 1, 5, 1, 1, 0, 0, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, 1, 0, CUDNN_DATA_FLOAT,
         CUDNN_TENSOR_NCHW, 0, 0, 0, 0, false},
        {"half, grouped, view out, beta", 2, 4, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, CUDNN_CROSS_CORRELATION, 1, 0.5f,
         CUDNN_DATA_HALF, CUDNN_TENSOR_NCHW, 0, 0, 9, 2, false},
    };
    for (const auto &t : cases) run_forward_case(t);

    // validation, as cuDNN would refuse
    dnn d;
    set_tensor(d.x, CUDNN_DATA_FLOAT, 1, 4, 8, 8, 4, false);
    api.cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 8, 3, 3, 3);   // C 3 ≠ 4
    api.cudnnSetConvolution2dDescriptor(d.conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
    int n, c, h, w;
    CHECK(api.cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &n, &c, &h, &w) == CUDNN_STATUS_BAD_PARAM,
          "channel mismatch");
    api.cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 8, 4, 3, 3);
    set_tensor(d.y, CUDNN_DATA_FLOAT, 1, 8, 8, 7, 8, false);   // should be 8×8
    cudnnConvolutionFwdAlgoPerf_t perf;
    int returned = 0;
    CHECK(api.cudnnGetConvolutionForwardAlgorithm_v7(d.h, d.x, d.w, d.conv, d.y, 1, &returned, &perf) ==
              CUDNN_STATUS_BAD_PARAM, "wrong y shape");
    char msg[256];
    api.cudnnGetLastErrorString(msg, sizeof msg);
    CHECK(strstr(msg, "1x8x8x7") != nullptr, "last error '%s'", msg);
    set_tensor(d.y, CUDNN_DATA_FLOAT, 1, 8, 8, 8, 8, false);
    CUdeviceptr dx = dalloc(4 * 64 * 4), dw = dalloc(8 * 4 * 9 * 4), dy = dalloc(8 * 64 * 4), dws = dalloc(4096);
    float one = 1, zero = 0;
    CHECK(api.cudnnFindConvolutionForwardAlgorithmEx(d.h, d.x, ptr(dx), d.w, ptr(dw), d.conv, d.y, ptr(dy), 1,
                                                     &returned, &perf, nullptr, 0) == CUDNN_STATUS_BAD_PARAM,
          "find without workspace");
    CHECK(api.cudnnFindConvolutionForwardAlgorithmEx(d.h, d.x, ptr(dx), d.w, ptr(dw), d.conv, d.y, ptr(dy), 1,
                                                     &returned, &perf, ptr(dws), 4096) == 0 &&
              returned == 1 && perf.algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM && perf.time >= 0,
          "find");
    CHECK(api.cudnnConvolutionForward(d.h, &one, d.x, ptr(dx), d.w, ptr(dw), d.conv, perf.algo, ptr(dws), 1024, &zero,
                                      d.y, ptr(dy)) == CUDNN_STATUS_BAD_PARAM, "small workspace");
    std::vector<float> host(4 * 64);
    CHECK(api.cudnnConvolutionForward(d.h, &one, d.x, host.data(), d.w, ptr(dw), d.conv, perf.algo, ptr(dws), 4096,
                                      &zero, d.y, ptr(dy)) == CUDNN_STATUS_EXECUTION_FAILED, "host pointer as x");
    // a channel view whose batch stride runs past its buffer
    CHECK(api.cudnnSetTensor4dDescriptorEx(d.y, CUDNN_DATA_FLOAT, 2, 8, 8, 8, 16 * 64, 64, 8, 1) == 0, "view");
    set_tensor(d.x, CUDNN_DATA_FLOAT, 2, 4, 8, 8, 4, false);
    CUdeviceptr dx2 = dalloc(2 * 4 * 64 * 4);
    CHECK(api.cudnnConvolutionForward(d.h, &one, d.x, ptr(dx2), d.w, ptr(dw), d.conv, perf.algo, ptr(dws), 4096,
                                      &zero, d.y, ptr(dy)) == CUDNN_STATUS_EXECUTION_FAILED, "y extent");
    for (CUdeviceptr p : {dx, dw, dy, dws, dx2}) api.cuMemFree(p);
}

// Every half through y = half(alpha · x · 1): the emulator's float → half rounding against the compiler's _Float16.
static void test_half_rounding() {
    dnn d;
    api.cudnnSetTensor4dDescriptorEx(d.x, CUDNN_DATA_HALF, 1, 1, 256, 256, 65536, 65536, 256, 1);
    api.cudnnSetTensor4dDescriptorEx(d.y, CUDNN_DATA_HALF, 1, 1, 256, 256, 65536, 65536, 256, 1);
    api.cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_HALF, CUDNN_TENSOR_NCHW, 1, 1, 1, 1);
    api.cudnnSetConvolution2dDescriptor(d.conv, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
    std::vector<uint16_t> all(65536), got(65536);
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    uint16_t onebits = to_half_bits(1.0f);
    CUdeviceptr dx = dalloc(65536 * 2), dy = dalloc(65536 * 2), dw = dalloc(2), dws = dalloc(4096);
    upload(dx, all.data(), 65536 * 2);
    upload(dw, &onebits, 2);
    int bad = 0;
    for (float alpha : {1.0f, 1.0009765625f, 0.3333333f, 3.0f, 1e-4f, 1000.0f, 1.00048828125f}) {
        float beta = 0;
        api.cudnnConvolutionForward(d.h, &alpha, d.x, ptr(dx), d.w, ptr(dw), d.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ptr(dws), 4096, &beta, d.y,
                                    ptr(dy));
        download(got.data(), dy, 65536 * 2);
        for (int i = 0; i < 65536; i++) {
            float v = alpha * (0.0f + from_half_bits(all[i]));   // a sum starting at +0, as a convolution does
            uint16_t want = to_half_bits(v);
            bool both_nan = std::isnan(v) && (got[i] & 0x7c00) == 0x7c00 && (got[i] & 0x3ff);
            if (got[i] != want && !both_nan && bad++ < 5)
                fprintf(stderr, "  half 0x%04x × %g = %g: got 0x%04x, want 0x%04x\n", i, alpha, v, got[i], want);
        }
    }
    CHECK(bad == 0, "float→half rounding mismatches: %d of %d", bad, 7 * 65536);
    printf("  half rounding: all 65536 halves × 7 scales bit-identical to _Float16\n");
    for (CUdeviceptr p : {dx, dy, dw, dws}) api.cuMemFree(p);
}

struct bwd_case {
    const char *name;
    int N, C, H, W;   // dx (the transposed convolution's output; the forward convolution's input)
    int K, R, S;      // dy channels; filter K × C/groups × R × S
    int pad_h, pad_w, u, v, dil_h, dil_w, groups;
    cudnnConvolutionMode_t mode;
};

// <conv(x), dy> must equal <x, convT(dy)> for random x and dy (exact adjoint), and alpha/beta must blend.
static void run_backward_case(const bwd_case &t) {
    dnn d;
    cudnnTensorDescriptor_t dyd;
    api.cudnnCreateTensorDescriptor(&dyd);
    const int Cg = t.C / t.groups;
    set_tensor(d.x, CUDNN_DATA_FLOAT, t.N, t.C, t.H, t.W, t.C, false);   // dx / x
    api.cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, t.K, Cg, t.R, t.S);
    api.cudnnSetConvolution2dDescriptor(d.conv, t.pad_h, t.pad_w, t.u, t.v, t.dil_h, t.dil_w, t.mode, CUDNN_DATA_FLOAT);
    api.cudnnSetConvolutionGroupCount(d.conv, t.groups);
    api.cudnnSetConvolutionMathType(d.conv, CUDNN_FMA_MATH);   // exact float products: the adjoint identity below
    int n, k, oh, ow;
    CHECK(api.cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &n, &k, &oh, &ow) == 0, "%s: dims", t.name);
    set_tensor(dyd, CUDNN_DATA_FLOAT, n, k, oh, ow, k, false);
    const size_t xn = (size_t)t.N * t.C * t.H * t.W, yn = (size_t)n * k * oh * ow, wn = (size_t)t.K * Cg * t.R * t.S;
    std::vector<float> x = random_vector(xn), dy = random_vector(yn), w = random_vector(wn), dx0 = random_vector(xn);
    CUdeviceptr px = dalloc(xn * 4), py = dalloc(yn * 4), pdy = dalloc(yn * 4), pdx = dalloc(xn * 4), pw = dalloc(wn * 4),
                ws = dalloc(4096);
    upload(px, x.data(), xn * 4);
    upload(pdy, dy.data(), yn * 4);
    upload(pw, w.data(), wn * 4);
    float one = 1, zero = 0;
    CHECK(api.cudnnConvolutionForward(d.h, &one, d.x, ptr(px), d.w, ptr(pw), d.conv,
                                      CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ptr(ws), 4096, &zero, dyd,
                                      ptr(py)) == 0, "%s: forward", t.name);
    cudnnConvolutionBwdDataAlgoPerf_t perf;
    int returned = 0;
    CHECK(api.cudnnGetConvolutionBackwardDataAlgorithm_v7(d.h, d.w, dyd, d.conv, d.x, 1, &returned, &perf) == 0 &&
              returned == 1 && perf.algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 && perf.memory == 4096,
          "%s: bwd heuristics", t.name);
    size_t wsize = 0;
    CHECK(api.cudnnGetConvolutionBackwardDataWorkspaceSize(d.h, d.w, dyd, d.conv, d.x, perf.algo, &wsize) == 0 &&
              wsize == 4096, "%s: bwd workspace", t.name);
    CHECK(api.cudnnConvolutionBackwardData(d.h, &one, d.w, ptr(pw), dyd, ptr(pdy), d.conv, perf.algo, nullptr, 0,
                                           &zero, d.x, ptr(pdx)) == CUDNN_STATUS_BAD_PARAM, "%s: no workspace", t.name);
    CHECK(api.cudnnConvolutionBackwardData(d.h, &one, d.w, ptr(pw), dyd, ptr(pdy), d.conv, perf.algo, ptr(ws), 4096,
                                           &zero, d.x, ptr(pdx)) == 0, "%s: backward", t.name);
    std::vector<float> y(yn), dx(xn);
    download(y.data(), py, yn * 4);
    download(dx.data(), pdx, xn * 4);
    double lhs = 0, rhs = 0, mag = 0;
    for (size_t i = 0; i < yn; i++) lhs += (double)y[i] * dy[i], mag += fabs((double)y[i] * dy[i]);
    for (size_t i = 0; i < xn; i++) rhs += (double)x[i] * dx[i];
    double rel = fabs(lhs - rhs) / std::max(mag, 1e-30);
    CHECK(rel < 1e-5, "%s: <conv x, dy> %.9g vs <x, convT dy> %.9g (rel %.3g)", t.name, lhs, rhs, rel);

    // FindEx runs it too (overwriting dx), then dx = 2 · convT(dy) + 0.5 · dx0
    float two = 2, half = 0.5f;
    CHECK(api.cudnnFindConvolutionBackwardDataAlgorithmEx(d.h, d.w, ptr(pw), dyd, ptr(pdy), d.conv, d.x, ptr(pdx), 1,
                                                          &returned, &perf, ptr(ws), 4096) == 0 &&
              returned == 1 && perf.algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, "%s: find", t.name);
    upload(pdx, dx0.data(), xn * 4);
    CHECK(api.cudnnConvolutionBackwardData(d.h, &two, d.w, ptr(pw), dyd, ptr(pdy), d.conv, perf.algo, ptr(ws), 4096,
                                           &half, d.x, ptr(pdx)) == 0, "%s: backward a/b", t.name);
    std::vector<float> blended(xn);
    download(blended.data(), pdx, xn * 4);
    double worst = 0;
    for (size_t i = 0; i < xn; i++) worst = std::max(worst, (double)fabsf(blended[i] - (2 * dx[i] + 0.5f * dx0[i])));
    CHECK(worst < 1e-5, "%s: alpha/beta blend error %g", t.name, worst);
    printf("  backward %-40s dx %dx%dx%dx%d  dy %dx%dx%dx%d  adjoint rel %.2e\n", t.name, t.N, t.C, t.H, t.W, n, k, oh,
           ow, rel);

    // shape checks: dy one column short
    set_tensor(dyd, CUDNN_DATA_FLOAT, n, k, oh, ow - 1 > 0 ? ow - 1 : ow + 1, k, false);
    CHECK(api.cudnnConvolutionBackwardData(d.h, &one, d.w, ptr(pw), dyd, ptr(pdy), d.conv, perf.algo, ptr(ws), 4096,
                                           &zero, d.x, ptr(pdx)) == CUDNN_STATUS_BAD_PARAM, "%s: dy shape", t.name);
    api.cudnnDestroyTensorDescriptor(dyd);
    for (CUdeviceptr p : {px, py, pdy, pdx, pw, ws}) api.cuMemFree(p);
}

static void test_cudnn_backward() {
    const bwd_case cases[] = {
        {"GPEN-like 3x3 stride 2 pad 1", 1, 8, 8, 8, 16, 3, 3, 1, 1, 2, 2, 1, 1, 1, CUDNN_CROSS_CORRELATION},
        {"output padding (odd dx)", 2, 3, 9, 7, 4, 3, 3, 1, 1, 2, 2, 1, 1, 1, CUDNN_CROSS_CORRELATION},
        {"grouped dilated flipped, rectangular", 2, 6, 10, 9, 4, 3, 2, 2, 1, 2, 3, 2, 1, 2, CUDNN_CONVOLUTION},
        {"4x4 stride 2 pad 1 (upsampler)", 1, 5, 8, 6, 3, 4, 4, 1, 1, 2, 2, 1, 1, 1, CUDNN_CROSS_CORRELATION},
    };
    for (const auto &t : cases) run_backward_case(t);
}

// Float data with TF32 allowed (CUDNN_DEFAULT_MATH, PyTorch's default for convolutions) multiplies operands rounded to
// TF32 (10-bit mantissa, to nearest, ties away); CUDNN_FMA_MATH keeps them exact. A 1×1 convolution of x = 1 + 2⁻¹²
// (+ 2⁻¹¹ + 2⁻¹³ for the second pixel) by w = 1: exact 1.000244 and 1.000610; TF32 1.0 and 1.000977.
static void test_cudnn_tf32() {
    const float xs[2] = {1.0f + 0x1p-12f, 1.0f + 0x1p-11f + 0x1p-13f}, one = 1.0f, zero = 0.0f;
    for (cudnnMathType_t math : {CUDNN_FMA_MATH, CUDNN_DEFAULT_MATH, CUDNN_TENSOR_OP_MATH}) {
        dnn d;
        set_tensor(d.x, CUDNN_DATA_FLOAT, 1, 1, 1, 2, 1, false);
        set_tensor(d.y, CUDNN_DATA_FLOAT, 1, 1, 1, 2, 1, false);
        api.cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 1, 1, 1, 1);
        api.cudnnSetConvolution2dDescriptor(d.conv, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
        api.cudnnSetConvolutionMathType(d.conv, math);
        CUdeviceptr px = dalloc(8), pw = dalloc(4), py = dalloc(8), ws = dalloc(4096);
        upload(px, xs, 8);
        upload(pw, &one, 4);
        CHECK(api.cudnnConvolutionForward(d.h, &one, d.x, ptr(px), d.w, ptr(pw), d.conv, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                          ptr(ws), 4096, &zero, d.y, ptr(py)) == 0, "tf32 forward");
        float y[2];
        download(y, py, 8);
        if (math == CUDNN_FMA_MATH) CHECK(y[0] == xs[0] && y[1] == xs[1], "FMA math: exact products, got %.7g %.7g", y[0], y[1]);
        else CHECK(y[0] == 1.0f && y[1] == 1.0f + 0x1p-10f, "math %d: TF32 operands, got %.7g %.7g", (int)math, y[0], y[1]);
        for (CUdeviceptr p : {px, pw, py, ws}) api.cuMemFree(p);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s EMULATOR_DIR KERNELS_FILE\n", argv[0]);
        return 2;
    }
    std::string dir = argv[1], driver = dir + "/libcuda.so.1";
    char err[512];
    int rc = enh_cuda_load(&api, driver.c_str(), dir.c_str(), err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "load failed: %d %s\n", rc, err);
        return 1;
    }
    emu_launches = (unsigned long long (*)(void))dlsym(api.driver, "enh_emu_launch_count");
    emu_live = (unsigned long long (*)(void))dlsym(api.driver, "enh_emu_live_bytes");
    emu_peak = (unsigned long long (*)(void))dlsym(api.driver, "enh_emu_peak_bytes");
    emu_reset = (void (*)(void))dlsym(api.driver, "enh_emu_reset");
    CHECK(emu_launches && emu_live && emu_peak && emu_reset, "counters");
    CHECK(api.cuStreamBeginCapture && api.cuGraphLaunch, "optional entries resolve on the emulator");

    auto t0 = std::chrono::steady_clock::now();
    test_driver_basics();
    test_memory();
    test_kernels(argv[2]);
    test_cudnn_forward();
    test_half_rounding();
    test_cudnn_backward();
    test_cudnn_tf32();
    CHECK(emu_live() == 0, "leaked %llu device bytes", emu_live());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    CUdevice dev = 0;
    api.cuDevicePrimaryCtxRelease(dev);
    enh_cuda_unload(&api);
    printf("emulator selftest: %d checks, %d failures (%.2f s)\n", checks, failures, s);
    return failures ? 1 : 0;
}
