/*
 * cnvml.h — the few NVML entries the bench samples (device memory in use), opened at run time with dlopen so that
 * nothing links libnvidia-ml. Names, signatures and the nvmlMemory_t layout are NVML's (nvml.h, stable since
 * NVML 3.x); only what is declared here is used.
 */
#ifndef ENH_CNVML_H
#define ENH_CNVML_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int nvmlReturn_t;                 /* NVML_SUCCESS = 0 */
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
    unsigned long long total;             /* bytes of device memory */
    unsigned long long free;              /* bytes not allocated by any process */
    unsigned long long used;              /* bytes allocated (contexts included) */
} nvmlMemory_t;
typedef struct {
    unsigned int gpu;                     /* % of the last sample period in which a kernel ran */
    unsigned int memory;                  /* % of it in which device memory was read or written */
} nvmlUtilization_t;

nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlShutdown(void);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device);
nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory);
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length);
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization);
const char *nvmlErrorString(nvmlReturn_t result);

/* ───────────── loader (nvml.c) ───────────── */

/* An open NVML: the library handle, its entries and the device asked for. */
typedef struct {
    void *library;
    nvmlDevice_t device;
    __typeof__(&nvmlShutdown) shutdown;
    __typeof__(&nvmlDeviceGetMemoryInfo) memory_info;
    __typeof__(&nvmlDeviceGetName) name;
    __typeof__(&nvmlErrorString) error_string;
    __typeof__(&nvmlDeviceGetUtilizationRates) utilization;   /* NULL when the library lacks it */
} enh_nvml;

/* Opens `path` (NULL: "libnvidia-ml.so.1" through the default search), initialises NVML and takes the device on PCI
 * bus `pci_bus_id` (as cuDeviceGetPCIBusId writes it: the one CUDA calls that ordinal, whatever CUDA_VISIBLE_DEVICES
 * says), or with NULL device `index` in NVML's own (PCI) order. 0 on success; otherwise -1 with a one-line reason in
 * err (library, symbol or NVML error named) and *out zeroed. */
int enh_nvml_open(enh_nvml *out, const char *path, const char *pci_bus_id, unsigned int index, char *err, size_t err_len);

/* Device memory of the open device: 0 and *used / *total in bytes, or NVML's error code. */
int enh_nvml_memory(const enh_nvml *nvml, unsigned long long *used, unsigned long long *total);

/* The device's kernel-busy percentage over NVML's last sample period; 0, or NVML's error code (-1: not available). */
int enh_nvml_utilization(const enh_nvml *nvml, unsigned int *gpu_percent);

/* The device's name into buf (NUL-terminated); 0 or NVML's error code. */
int enh_nvml_name(const enh_nvml *nvml, char *buf, unsigned int len);

/* nvmlShutdown, dlclose, zero. */
void enh_nvml_close(enh_nvml *nvml);

#ifdef __cplusplus
}
#endif

#endif
