/*
 * loader.c — fills enh_cuda_api at run time. Linked only against libdl: the driver is reached through
 * dlopen("libcuda.so.1") + cuGetProcAddress_v2, NVRTC and cuDNN by full path from the folders the caller names.
 */
#define _GNU_SOURCE
#include "ccuda.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One table entry: the name to look up and where its pointer goes. */
typedef struct {
    const char *name;
    size_t offset;
    int optional;   /* 1: a NULL result is allowed (graph capture) */
} entry;

#define FIELD(name) offsetof(enh_cuda_api, name)

/* Driver entries by base name: cuGetProcAddress maps "cuMemAlloc" at cudaVersion 13000 to cuMemAlloc_v2,
 * "cuEventElapsedTime" to cuEventElapsedTime_v2, "cuCtxSynchronize" to cuCtxSynchronize_v2 and so on. */
static const entry driver_entries[] = {
    {"cuInit", FIELD(cuInit), 0},
    {"cuDriverGetVersion", FIELD(cuDriverGetVersion), 0},
    {"cuGetErrorName", FIELD(cuGetErrorName), 0},
    {"cuGetErrorString", FIELD(cuGetErrorString), 0},
    {"cuDeviceGetCount", FIELD(cuDeviceGetCount), 0},
    {"cuDeviceGet", FIELD(cuDeviceGet), 0},
    {"cuDeviceGetName", FIELD(cuDeviceGetName), 0},
    {"cuDeviceGetPCIBusId", FIELD(cuDeviceGetPCIBusId), 1},
    {"cuDeviceGetAttribute", FIELD(cuDeviceGetAttribute), 0},
    {"cuDeviceTotalMem", FIELD(cuDeviceTotalMem), 0},
    {"cuDevicePrimaryCtxRetain", FIELD(cuDevicePrimaryCtxRetain), 0},
    {"cuDevicePrimaryCtxRelease", FIELD(cuDevicePrimaryCtxRelease), 0},
    {"cuCtxSetCurrent", FIELD(cuCtxSetCurrent), 0},
    {"cuCtxSynchronize", FIELD(cuCtxSynchronize), 0},
    {"cuMemAlloc", FIELD(cuMemAlloc), 0},
    {"cuMemFree", FIELD(cuMemFree), 0},
    {"cuMemGetInfo", FIELD(cuMemGetInfo), 0},
    {"cuMemHostAlloc", FIELD(cuMemHostAlloc), 0},
    {"cuMemFreeHost", FIELD(cuMemFreeHost), 0},
    {"cuMemcpyHtoDAsync", FIELD(cuMemcpyHtoDAsync), 0},
    {"cuMemcpyDtoHAsync", FIELD(cuMemcpyDtoHAsync), 0},
    {"cuMemcpyDtoDAsync", FIELD(cuMemcpyDtoDAsync), 0},
    {"cuMemsetD8Async", FIELD(cuMemsetD8Async), 0},
    {"cuMemsetD32Async", FIELD(cuMemsetD32Async), 0},
    {"cuModuleLoadData", FIELD(cuModuleLoadData), 0},
    {"cuModuleUnload", FIELD(cuModuleUnload), 0},
    {"cuModuleGetFunction", FIELD(cuModuleGetFunction), 0},
    {"cuLaunchKernel", FIELD(cuLaunchKernel), 0},
    {"cuStreamCreate", FIELD(cuStreamCreate), 0},
    {"cuStreamDestroy", FIELD(cuStreamDestroy), 0},
    {"cuStreamSynchronize", FIELD(cuStreamSynchronize), 0},
    {"cuEventCreate", FIELD(cuEventCreate), 0},
    {"cuEventRecord", FIELD(cuEventRecord), 0},
    {"cuEventSynchronize", FIELD(cuEventSynchronize), 0},
    {"cuEventElapsedTime", FIELD(cuEventElapsedTime), 0},
    {"cuEventDestroy", FIELD(cuEventDestroy), 0},
    {"cuStreamBeginCapture", FIELD(cuStreamBeginCapture), 1},
    {"cuStreamEndCapture", FIELD(cuStreamEndCapture), 1},
    {"cuGraphInstantiateWithFlags", FIELD(cuGraphInstantiateWithFlags), 1},
    {"cuGraphLaunch", FIELD(cuGraphLaunch), 1},
    {"cuGraphExecDestroy", FIELD(cuGraphExecDestroy), 1},
    {"cuGraphDestroy", FIELD(cuGraphDestroy), 1},
};

static const entry nvrtc_entries[] = {
    {"nvrtcVersion", FIELD(nvrtcVersion), 0},
    {"nvrtcGetErrorString", FIELD(nvrtcGetErrorString), 0},
    {"nvrtcGetNumSupportedArchs", FIELD(nvrtcGetNumSupportedArchs), 0},
    {"nvrtcGetSupportedArchs", FIELD(nvrtcGetSupportedArchs), 0},
    {"nvrtcCreateProgram", FIELD(nvrtcCreateProgram), 0},
    {"nvrtcDestroyProgram", FIELD(nvrtcDestroyProgram), 0},
    {"nvrtcCompileProgram", FIELD(nvrtcCompileProgram), 0},
    {"nvrtcGetProgramLogSize", FIELD(nvrtcGetProgramLogSize), 0},
    {"nvrtcGetProgramLog", FIELD(nvrtcGetProgramLog), 0},
    {"nvrtcGetCUBINSize", FIELD(nvrtcGetCUBINSize), 0},
    {"nvrtcGetCUBIN", FIELD(nvrtcGetCUBIN), 0},
    {"nvrtcGetPTXSize", FIELD(nvrtcGetPTXSize), 0},
    {"nvrtcGetPTX", FIELD(nvrtcGetPTX), 0},
};

static const entry cudnn_entries[] = {
    {"cudnnGetVersion", FIELD(cudnnGetVersion), 0},
    {"cudnnGetCudartVersion", FIELD(cudnnGetCudartVersion), 0},
    {"cudnnGetErrorString", FIELD(cudnnGetErrorString), 0},
    {"cudnnGetLastErrorString", FIELD(cudnnGetLastErrorString), 0},
    {"cudnnCreate", FIELD(cudnnCreate), 0},
    {"cudnnDestroy", FIELD(cudnnDestroy), 0},
    {"cudnnSetStream", FIELD(cudnnSetStream), 0},
    {"cudnnCreateTensorDescriptor", FIELD(cudnnCreateTensorDescriptor), 0},
    {"cudnnSetTensor4dDescriptorEx", FIELD(cudnnSetTensor4dDescriptorEx), 0},
    {"cudnnDestroyTensorDescriptor", FIELD(cudnnDestroyTensorDescriptor), 0},
    {"cudnnCreateFilterDescriptor", FIELD(cudnnCreateFilterDescriptor), 0},
    {"cudnnSetFilter4dDescriptor", FIELD(cudnnSetFilter4dDescriptor), 0},
    {"cudnnDestroyFilterDescriptor", FIELD(cudnnDestroyFilterDescriptor), 0},
    {"cudnnCreateConvolutionDescriptor", FIELD(cudnnCreateConvolutionDescriptor), 0},
    {"cudnnSetConvolution2dDescriptor", FIELD(cudnnSetConvolution2dDescriptor), 0},
    {"cudnnSetConvolutionGroupCount", FIELD(cudnnSetConvolutionGroupCount), 0},
    {"cudnnSetConvolutionMathType", FIELD(cudnnSetConvolutionMathType), 0},
    {"cudnnDestroyConvolutionDescriptor", FIELD(cudnnDestroyConvolutionDescriptor), 0},
    {"cudnnGetConvolution2dForwardOutputDim", FIELD(cudnnGetConvolution2dForwardOutputDim), 0},
    {"cudnnGetConvolutionForwardAlgorithm_v7", FIELD(cudnnGetConvolutionForwardAlgorithm_v7), 0},
    {"cudnnFindConvolutionForwardAlgorithmEx", FIELD(cudnnFindConvolutionForwardAlgorithmEx), 0},
    {"cudnnGetConvolutionForwardWorkspaceSize", FIELD(cudnnGetConvolutionForwardWorkspaceSize), 0},
    {"cudnnConvolutionForward", FIELD(cudnnConvolutionForward), 0},
    {"cudnnGetConvolutionBackwardDataAlgorithm_v7", FIELD(cudnnGetConvolutionBackwardDataAlgorithm_v7), 0},
    {"cudnnFindConvolutionBackwardDataAlgorithmEx", FIELD(cudnnFindConvolutionBackwardDataAlgorithmEx), 0},
    {"cudnnGetConvolutionBackwardDataWorkspaceSize", FIELD(cudnnGetConvolutionBackwardDataWorkspaceSize), 0},
    {"cudnnConvolutionBackwardData", FIELD(cudnnConvolutionBackwardData), 0},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Every field of the table is a function pointer, so a slot can be written as a generic one. */
static void set_slot(enh_cuda_api *api, size_t offset, void *p) {
    memcpy((char *)api + offset, &p, sizeof p);
}

static int fail(char *err, size_t err_len, int code, const char *fmt, ...) {
    if (err && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

static const char *dl_reason(void) {
    const char *e = dlerror();
    return e ? e : "unknown dlerror";
}

/* dlsym every entry of a library; 0, or the code with the first missing symbol named in err. */
static int resolve(enh_cuda_api *api, void *handle, const entry *entries, size_t n, const char *file, int code,
                   char *err, size_t err_len) {
    for (size_t i = 0; i < n; i++) {
        dlerror();
        void *p = dlsym(handle, entries[i].name);
        if (!p && !entries[i].optional)
            return fail(err, err_len, code, "%s: no symbol %s: %s", file, entries[i].name, dl_reason());
        set_slot(api, entries[i].offset, p);
    }
    return 0;
}

/* Find `file` in the colon-separated folders of lib_dirs (empty items skipped): 1 and its folder in dir, or 0. */
static int find_in_dirs(const char *lib_dirs, const char *file, char *dir, size_t dir_len) {
    char path[4352];
    for (const char *p = lib_dirs; p && *p;) {
        const char *colon = strchr(p, ':');
        int n = (int)(colon ? (size_t)(colon - p) : strlen(p));
        if (n > 0 && (size_t)n < dir_len) {
            snprintf(path, sizeof path, "%.*s/%s", n, p, file);
            if (access(path, R_OK) == 0) {
                snprintf(dir, dir_len, "%.*s", n, p);
                return 1;
            }
        }
        p = colon ? colon + 1 : NULL;
    }
    return 0;
}

/* NVRTC 13.0's libnvrtc.so.13 has no RPATH and dlopens "libnvrtc-builtins.so.13.0" by name when it compiles.
 * Opening that file first RTLD_GLOBAL by full path makes the later by-name dlopen find it already loaded.
 * Picks the shortest matching name (libnvrtc-builtins.so.13.0 before any longer variant); "" if there is none. */
static void find_builtins(const char *folder, char *path, size_t len) {
    static const char prefix[] = "libnvrtc-builtins.so.13.";
    path[0] = 0;
    DIR *d = opendir(folder);
    if (!d) return;
    size_t best = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, sizeof prefix - 1) == 0 && (best == 0 || n < best)) {
            best = n;
            snprintf(path, len, "%s/%s", folder, e->d_name);
        }
    }
    closedir(d);
}

static int load_nvrtc(enh_cuda_api *api, const char *lib_dirs, char *err, size_t err_len) {
    char folder[4096], path[4352], builtins[4352];
    if (!find_in_dirs(lib_dirs, "libnvrtc.so.13", folder, sizeof folder))
        return fail(err, err_len, ENH_CUDA_ERR_NVRTC, "libnvrtc.so.13: not found in %s", lib_dirs);
    find_builtins(folder, builtins, sizeof builtins);
    if (builtins[0]) {
        api->nvrtc_builtins = dlopen(builtins, RTLD_NOW | RTLD_GLOBAL);
        if (!api->nvrtc_builtins)
            return fail(err, err_len, ENH_CUDA_ERR_NVRTC, "dlopen(\"%s\"): %s", builtins, dl_reason());
    }
    snprintf(path, sizeof path, "%s/libnvrtc.so.13", folder);
    api->nvrtc = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!api->nvrtc) return fail(err, err_len, ENH_CUDA_ERR_NVRTC, "dlopen(\"%s\"): %s", path, dl_reason());
    return resolve(api, api->nvrtc, nvrtc_entries, COUNT(nvrtc_entries), path, ENH_CUDA_ERR_NVRTC, err, err_len);
}

static int load_cudnn(enh_cuda_api *api, const char *lib_dirs, char *err, size_t err_len) {
    char folder[4096], path[4352];
    if (!find_in_dirs(lib_dirs, "libcudnn.so.9", folder, sizeof folder))
        return fail(err, err_len, ENH_CUDA_ERR_CUDNN, "libcudnn.so.9: not found in %s", lib_dirs);
    snprintf(path, sizeof path, "%s/libcudnn.so.9", folder);
    api->cudnn = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!api->cudnn) return fail(err, err_len, ENH_CUDA_ERR_CUDNN, "dlopen(\"%s\"): %s", path, dl_reason());
    return resolve(api, api->cudnn, cudnn_entries, COUNT(cudnn_entries), path, ENH_CUDA_ERR_CUDNN, err, err_len);
}

static int load_driver(enh_cuda_api *api, const char *driver_path, char *err, size_t err_len) {
    const char *file = driver_path ? driver_path : "libcuda.so.1";
    api->driver = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!api->driver) return fail(err, err_len, ENH_CUDA_ERR_DRIVER_OPEN, "dlopen(\"%s\"): %s", file, dl_reason());

    dlerror();
    void *gpa = dlsym(api->driver, "cuGetProcAddress_v2");
    if (!gpa)
        return fail(err, err_len, ENH_CUDA_ERR_PROC_ADDRESS, "%s: no symbol cuGetProcAddress_v2: %s", file,
                    dl_reason());
    set_slot(api, FIELD(cuGetProcAddress), gpa);

    for (size_t i = 0; i < COUNT(driver_entries); i++) {
        const entry *e = &driver_entries[i];
        void *p = NULL;
        CUdriverProcAddressQueryResult status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        CUresult r = api->cuGetProcAddress(e->name, &p, ENH_CUDA_ABI_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &status);
        if (r != CUDA_SUCCESS || status != CU_GET_PROC_ADDRESS_SUCCESS) p = NULL;
        if (!p && !e->optional) {
            /* cuGetProcAddress answers CUDA_ERROR_INVALID_VALUE (1) when cudaVersion is newer than the driver. */
            return fail(err, err_len, ENH_CUDA_ERR_DRIVER_ENTRY,
                        "%s: cuGetProcAddress(\"%s\", %d) -> CUresult %d, symbolStatus %d%s", file, e->name,
                        ENH_CUDA_ABI_VERSION, (int)r, (int)status,
                        r == CUDA_ERROR_INVALID_VALUE ? " (driver older than CUDA 13.0?)" : "");
        }
        set_slot(api, e->offset, p);
    }
    return 0;
}

int enh_cuda_load(enh_cuda_api *api, const char *driver_path, const char *lib_dirs, char *err, size_t err_len) {
    memset(api, 0, sizeof *api);
    if (err && err_len > 0) err[0] = 0;
    int r = load_driver(api, driver_path, err, err_len);
    if (r != 0) return r;
    if (!lib_dirs || !*lib_dirs)
        return fail(err, err_len, ENH_CUDA_ERR_NO_LIB_DIRS,
                    "no library folders given: NVRTC and cuDNN not loaded (set ENHANCE_CUDA_LIBS)");
    r = load_nvrtc(api, lib_dirs, err, err_len);
    if (r != 0) return r;
    return load_cudnn(api, lib_dirs, err, err_len);
}

void enh_cuda_unload(enh_cuda_api *api) {
    /* reverse order of loading; the builtins last, after the NVRTC that uses them */
    if (api->cudnn) dlclose(api->cudnn);
    if (api->nvrtc) dlclose(api->nvrtc);
    if (api->nvrtc_builtins) dlclose(api->nvrtc_builtins);
    if (api->driver) dlclose(api->driver);
    memset(api, 0, sizeof *api);
}
