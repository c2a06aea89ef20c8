/*
 * nvml.c — opens NVML at run time for the bench's device-memory sampling (cnvml.h).
 */
#define _GNU_SOURCE
#include "cnvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static int nvml_fail(enh_nvml *out, char *err, size_t err_len, const char *what, const char *detail) {
    if (err && err_len > 0) snprintf(err, err_len, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    if (out->library) dlclose(out->library);
    memset(out, 0, sizeof *out);
    return -1;
}

int enh_nvml_open(enh_nvml *out, const char *path, const char *pci_bus_id, unsigned int index, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    if (err && err_len > 0) err[0] = 0;
    const char *file = path && *path ? path : "libnvidia-ml.so.1";
    out->library = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!out->library) return nvml_fail(out, err, err_len, "cannot open NVML", dlerror());
    __typeof__(&nvmlInit_v2) init = (__typeof__(&nvmlInit_v2))dlsym(out->library, "nvmlInit_v2");
    __typeof__(&nvmlDeviceGetHandleByIndex_v2) by_index =
        (__typeof__(&nvmlDeviceGetHandleByIndex_v2))dlsym(out->library, "nvmlDeviceGetHandleByIndex_v2");
    out->shutdown = (__typeof__(&nvmlShutdown))dlsym(out->library, "nvmlShutdown");
    out->memory_info = (__typeof__(&nvmlDeviceGetMemoryInfo))dlsym(out->library, "nvmlDeviceGetMemoryInfo");
    out->name = (__typeof__(&nvmlDeviceGetName))dlsym(out->library, "nvmlDeviceGetName");
    out->error_string = (__typeof__(&nvmlErrorString))dlsym(out->library, "nvmlErrorString");
    out->utilization = (__typeof__(&nvmlDeviceGetUtilizationRates))dlsym(out->library, "nvmlDeviceGetUtilizationRates");
    if (!init || !by_index || !out->shutdown || !out->memory_info || !out->name || !out->error_string)
        return nvml_fail(out, err, err_len, file, "lacks nvmlInit_v2, nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetMemoryInfo, nvmlDeviceGetName, nvmlShutdown or nvmlErrorString");
    nvmlReturn_t r = init();
    if (r != 0) {
        char why[160];
        snprintf(why, sizeof why, "%s (%d)", out->error_string(r), r);
        return nvml_fail(out, err, err_len, "nvmlInit_v2 failed", why);
    }
    if (pci_bus_id) {
        __typeof__(&nvmlDeviceGetHandleByPciBusId_v2) by_bus =
            (__typeof__(&nvmlDeviceGetHandleByPciBusId_v2))dlsym(out->library, "nvmlDeviceGetHandleByPciBusId_v2");
        r = by_bus ? by_bus(pci_bus_id, &out->device) : -1;
        if (r != 0) {
            char why[200];
            snprintf(why, sizeof why, "PCI bus %s: %s (%d)", pci_bus_id, by_bus ? out->error_string(r) : "symbol missing", r);
            out->shutdown();
            return nvml_fail(out, err, err_len, "nvmlDeviceGetHandleByPciBusId_v2 failed", why);
        }
        return 0;
    }
    r = by_index(index, &out->device);
    if (r != 0) {
        char why[160];
        snprintf(why, sizeof why, "device %u: %s (%d)", index, out->error_string(r), r);
        out->shutdown();
        return nvml_fail(out, err, err_len, "nvmlDeviceGetHandleByIndex_v2 failed", why);
    }
    return 0;
}

int enh_nvml_memory(const enh_nvml *nvml, unsigned long long *used, unsigned long long *total) {
    if (!nvml->library) return -1;
    nvmlMemory_t m;
    nvmlReturn_t r = nvml->memory_info(nvml->device, &m);
    if (r != 0) return r;
    if (used) *used = m.used;
    if (total) *total = m.total;
    return 0;
}

int enh_nvml_utilization(const enh_nvml *nvml, unsigned int *gpu_percent) {
    if (!nvml->library || !nvml->utilization) return -1;
    nvmlUtilization_t u;
    nvmlReturn_t r = nvml->utilization(nvml->device, &u);
    if (r != 0) return r;
    if (gpu_percent) *gpu_percent = u.gpu;
    return 0;
}

int enh_nvml_name(const enh_nvml *nvml, char *buf, unsigned int len) {
    if (!nvml->library) return -1;
    return nvml->name(nvml->device, buf, len);
}

void enh_nvml_close(enh_nvml *nvml) {
    if (nvml->library) {
        if (nvml->shutdown) nvml->shutdown();
        dlclose(nvml->library);
    }
    memset(nvml, 0, sizeof *nvml);
}
