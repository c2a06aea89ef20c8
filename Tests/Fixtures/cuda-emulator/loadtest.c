/*
 * loadtest.c — the loader's paths (Sources/CCUDA/loader.c), and the real NVRTC through the table when its wheel
 * folder is given. Run by selftest.sh:
 *   loadtest EMULATOR_DIR KERNELS_FILE [NVRTC_LIB_DIR [CUDNN_LIB_DIR]]
 */
#define _GNU_SOURCE
#include "ccuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            failures++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s — ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

static enh_cuda_api api;
static char err[1024];

static int load(const char *driver, const char *dirs) {
    enh_cuda_unload(&api);
    int rc = enh_cuda_load(&api, driver, dirs, err, sizeof err);
    printf("  load(%s, %s) -> %d %s\n", driver ? driver : "NULL", dirs ? dirs : "NULL", rc, err);
    return rc;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    s[n] = 0;
    fclose(f);
    return s;
}

/* Compile src for one architecture through the table; returns the NVRTC result and prints the cubin size. */
static nvrtcResult compile(const char *src, const char *arch, size_t *cubin_size, char *first_log_line, size_t len) {
    nvrtcProgram prog;
    CHECK(api.nvrtcCreateProgram(&prog, src, "kernels.cu", 0, NULL, NULL) == NVRTC_SUCCESS, "create");
    char opt[32];
    snprintf(opt, sizeof opt, "-arch=%s", arch);
    const char *opts[] = {opt, "--std=c++17"};
    nvrtcResult r = api.nvrtcCompileProgram(prog, 2, opts);
    size_t log_size = 0;
    api.nvrtcGetProgramLogSize(prog, &log_size);
    char *log = malloc(log_size);
    api.nvrtcGetProgramLog(prog, log);
    snprintf(first_log_line, len, "%s", log);
    char *nl = strchr(first_log_line, '\n');
    if (nl) *nl = 0;
    free(log);
    *cubin_size = 0;
    if (r == NVRTC_SUCCESS) {
        api.nvrtcGetCUBINSize(prog, cubin_size);
        char *cubin = malloc(*cubin_size);
        CHECK(api.nvrtcGetCUBIN(prog, cubin) == NVRTC_SUCCESS, "cubin");
        CHECK(*cubin_size > 4 && memcmp(cubin, "\177ELF", 4) == 0, "a real cubin is an ELF file");
        free(cubin);
    }
    api.nvrtcDestroyProgram(&prog);
    return r;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s EMULATOR_DIR KERNELS_FILE [NVRTC_LIB_DIR [CUDNN_LIB_DIR]]\n", argv[0]);
        return 2;
    }
    const char *emu = argv[1], *kernels = argv[2];
    const char *nvrtc_dir = argc > 3 ? argv[3] : NULL, *cudnn_dir = argc > 4 ? argv[4] : NULL;
    char driver[4096], dirs[8192];
    snprintf(driver, sizeof driver, "%s/libcuda.so.1", emu);

    printf("loader paths:\n");
    int rc = load(NULL, NULL);   /* this machine has no driver; a GPU machine has one and no lib dirs here */
    CHECK(rc == ENH_CUDA_ERR_DRIVER_OPEN || rc == ENH_CUDA_ERR_NO_LIB_DIRS, "default driver: %d", rc);
    rc = load("/nonexistent/libcuda.so.1", NULL);
    CHECK(rc == ENH_CUDA_ERR_DRIVER_OPEN && strstr(err, "/nonexistent/libcuda.so.1"), "missing driver: %d", rc);
    rc = load("libm.so.6", NULL);
    CHECK(rc == ENH_CUDA_ERR_PROC_ADDRESS && strstr(err, "cuGetProcAddress_v2"), "not a driver: %d", rc);
    setenv("ENH_EMU_DRIVER_VERSION", "12080", 1);
    rc = load(driver, NULL);
    CHECK(rc == ENH_CUDA_ERR_DRIVER_ENTRY && strstr(err, "older than CUDA 13.0"), "old driver: %d", rc);
    unsetenv("ENH_EMU_DRIVER_VERSION");
    setenv("ENH_EMU_HIDE_PROC", "cuMemAlloc", 1);
    rc = load(driver, NULL);
    CHECK(rc == ENH_CUDA_ERR_DRIVER_ENTRY && strstr(err, "\"cuMemAlloc\""), "missing entry: %d", rc);
    setenv("ENH_EMU_HIDE_PROC", "cuGraphLaunch", 1);   /* optional: still loads */
    rc = load(driver, "");
    CHECK(rc == ENH_CUDA_ERR_NO_LIB_DIRS && api.cuGraphLaunch == NULL && api.cuMemAlloc != NULL, "optional: %d", rc);
    unsetenv("ENH_EMU_HIDE_PROC");
    CHECK(api.cuInit(0) == CUDA_SUCCESS, "cuInit through a driver-only table");
    rc = load(driver, "/nonexistent:");
    CHECK(rc == ENH_CUDA_ERR_NVRTC && strstr(err, "libnvrtc.so.13: not found"), "no nvrtc: %d", rc);
    char only_nvrtc[] = "/tmp/enh-loadtest-XXXXXX", link[4200], target[4200];
    CHECK(mkdtemp(only_nvrtc) != NULL, "mkdtemp");
    snprintf(link, sizeof link, "%s/libnvrtc.so.13", only_nvrtc);
    snprintf(target, sizeof target, "%s/libnvrtc.so.13", emu);
    CHECK(symlink(target, link) == 0, "symlink");
    rc = load(driver, only_nvrtc);
    CHECK(rc == ENH_CUDA_ERR_CUDNN && strstr(err, "libcudnn.so.9: not found") && api.nvrtcVersion, "no cudnn: %d", rc);
    unlink(link);
    rmdir(only_nvrtc);
    snprintf(dirs, sizeof dirs, "/nonexistent::%s", emu);
    rc = load(driver, dirs);
    CHECK(rc == ENH_CUDA_OK && api.cudnnGetVersion && api.cudnnGetVersion() == 99999, "emulator: %d", rc);

    if (nvrtc_dir) {
        printf("real NVRTC from %s:\n", nvrtc_dir);
        snprintf(dirs, sizeof dirs, "%s:%s", nvrtc_dir, cudnn_dir ? cudnn_dir : emu);
        rc = load(driver, dirs);
        CHECK(rc == ENH_CUDA_OK, "real libraries: %d %s", rc, err);
        if (rc == ENH_CUDA_OK) {
            int major = 0, minor = 0, n = 0;
            api.nvrtcVersion(&major, &minor);
            api.nvrtcGetNumSupportedArchs(&n);
            int archs[64];
            api.nvrtcGetSupportedArchs(archs);
            printf("  nvrtcVersion %d.%d, builtins preloaded: %s, archs:", major, minor, api.nvrtc_builtins ? "yes" : "no");
            for (int i = 0; i < n && i < 64; i++) printf(" %d", archs[i]);
            printf("\n");
            CHECK(major == 13, "nvrtc major %d", major);
            char *src = read_file(kernels), line[512];
            CHECK(src != NULL, "read %s", kernels);
            const char *targets[] = {"sm_86", "sm_90"};
            for (int i = 0; i < 2 && src; i++) {
                size_t size = 0;
                double t0 = now();
                nvrtcResult r = compile(src, targets[i], &size, line, sizeof line);
                printf("  %s: %s, cubin %zu bytes, %.2f s%s%s\n", targets[i], api.nvrtcGetErrorString(r), size,
                       now() - t0, line[0] ? ", log: " : "", line);
                CHECK(r == NVRTC_SUCCESS && size > 0, "compile %s", targets[i]);
            }
            size_t size;
            nvrtcResult r = compile("extern \"C\" __global__ void k(float *p) { p[0] = INFINITY }", "sm_90", &size,
                                    line, sizeof line);
            printf("  syntax error: %s, log: %s\n", api.nvrtcGetErrorString(r), line);
            CHECK(r == NVRTC_ERROR_COMPILATION && strlen(line) > 0, "syntax error %d", r);
            free(src);
            if (cudnn_dir) {
                cudnnHandle_t h = NULL;
                cudnnStatus_t s = api.cudnnCreate(&h);
                char msg[256] = "";
                api.cudnnGetLastErrorString(msg, sizeof msg);
                printf("  cuDNN %zu (cudart %zu): cudnnCreate -> %d %s (%s)\n", api.cudnnGetVersion(),
                       api.cudnnGetCudartVersion(), (int)s, api.cudnnGetErrorString(s), msg);
                CHECK(api.cudnnGetVersion() >= 90000 && api.cudnnGetVersion() < 99999, "real cuDNN version");
                if (s == CUDNN_STATUS_SUCCESS) api.cudnnDestroy(h);
            }
        }
    } else {
        printf("real NVRTC: skipped (no wheel folder given)\n");
    }
    enh_cuda_unload(&api);
    printf("loadtest: %d failures\n", failures);
    return failures ? 1 : 0;
}
