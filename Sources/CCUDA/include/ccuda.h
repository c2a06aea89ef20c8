/*
 * ccuda.h — the part of the CUDA driver, NVRTC and cuDNN C APIs that the CUDA backend uses, reached through dlopen.
 *
 * Nothing here is linked: the prototypes only give each table field its exact type (`__typeof__(&cuMemAlloc_v2)`),
 * and enh_cuda_load (loader.c) fills the table at run time — the driver through cuGetProcAddress, NVRTC and cuDNN
 * with dlsym on libraries opened by full path. So the package builds with no CUDA installed.
 *
 * The types below carry the same names, tags and values as the real cuda.h (13.x), nvrtc.h and cudnn.h (9.x), but
 * only the members the backend needs. scripts/cuda-headers-check includes the real headers first, defines
 * ENH_REAL_HEADERS (which hides our type definitions) and includes this file: any prototype that differs from the
 * real one is then a "conflicting types" error, and a second pass compares every enumerator value and the layout
 * of the perf structs.
 */
#ifndef ENH_CCUDA_H
#define ENH_CCUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ENH_REAL_HEADERS

/* ───────────── driver API (cuda.h) ───────────── */

typedef uint64_t cuuint64_t;
typedef unsigned long long CUdeviceptr_v2;   /* 64-bit hosts only */
typedef CUdeviceptr_v2 CUdeviceptr;
typedef int CUdevice_v1;
typedef CUdevice_v1 CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUevent_st *CUevent;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;

typedef enum cudaError_enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_DEINITIALIZED = 4,
    CUDA_ERROR_STUB_LIBRARY = 34,
    CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER = 36,
    CUDA_ERROR_DEVICE_UNAVAILABLE = 46,
    CUDA_ERROR_NO_DEVICE = 100,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
    CUDA_ERROR_INVALID_PTX = 218,
    CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222,
    CUDA_ERROR_INVALID_SOURCE = 300,
    CUDA_ERROR_FILE_NOT_FOUND = 301,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_ILLEGAL_STATE = 401,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_NOT_READY = 600,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    CUDA_ERROR_LAUNCH_TIMEOUT = 702,
    CUDA_ERROR_ILLEGAL_INSTRUCTION = 715,
    CUDA_ERROR_MISALIGNED_ADDRESS = 716,
    CUDA_ERROR_LAUNCH_FAILED = 719,
    CUDA_ERROR_NOT_PERMITTED = 800,
    CUDA_ERROR_NOT_SUPPORTED = 801,
    CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900,
    CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901,
    CUDA_ERROR_STREAM_CAPTURE_IMPLICIT = 906,
    CUDA_ERROR_UNKNOWN = 999
} CUresult;

typedef enum CUdevice_attribute_enum {
    CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1,
    CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X = 2,
    CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y = 3,
    CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z = 4,
    CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X = 5,
    CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y = 6,
    CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z = 7,
    CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK = 8,
    CU_DEVICE_ATTRIBUTE_WARP_SIZE = 10,
    CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38,
    CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR = 39,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
} CUdevice_attribute;

typedef enum CUstream_flags_enum {
    CU_STREAM_DEFAULT = 0x0,
    CU_STREAM_NON_BLOCKING = 0x1
} CUstream_flags;

typedef enum CUevent_flags_enum {
    CU_EVENT_DEFAULT = 0x0,
    CU_EVENT_BLOCKING_SYNC = 0x1,
    CU_EVENT_DISABLE_TIMING = 0x2,
    CU_EVENT_INTERPROCESS = 0x4
} CUevent_flags;

#define CU_MEMHOSTALLOC_PORTABLE 0x01

typedef enum CUstreamCaptureMode_enum {
    CU_STREAM_CAPTURE_MODE_GLOBAL = 0,
    CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
    CU_STREAM_CAPTURE_MODE_RELAXED = 2
} CUstreamCaptureMode;

typedef enum CUdriverProcAddress_flags_enum {
    CU_GET_PROC_ADDRESS_DEFAULT = 0,
    CU_GET_PROC_ADDRESS_LEGACY_STREAM = 1 << 0,
    CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM = 1 << 1
} CUdriverProcAddress_flags;

typedef enum CUdriverProcAddressQueryResult_enum {
    CU_GET_PROC_ADDRESS_SUCCESS = 0,
    CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND = 1,
    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT = 2
} CUdriverProcAddressQueryResult;

/* driver_types.h: the runtime's stream is the driver's stream */
typedef struct CUstream_st *cudaStream_t;

/* ───────────── NVRTC (nvrtc.h) — the real enum has no tag ───────────── */

typedef enum {
    NVRTC_SUCCESS = 0,
    NVRTC_ERROR_OUT_OF_MEMORY = 1,
    NVRTC_ERROR_PROGRAM_CREATION_FAILURE = 2,
    NVRTC_ERROR_INVALID_INPUT = 3,
    NVRTC_ERROR_INVALID_PROGRAM = 4,
    NVRTC_ERROR_INVALID_OPTION = 5,
    NVRTC_ERROR_COMPILATION = 6,
    NVRTC_ERROR_BUILTIN_OPERATION_FAILURE = 7,
    NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION = 8,
    NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION = 9,
    NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID = 10,
    NVRTC_ERROR_INTERNAL_ERROR = 11
} nvrtcResult;

typedef struct _nvrtcProgram *nvrtcProgram;

/* ───────────── cuDNN 9 (cudnn_graph.h, cudnn_ops.h, cudnn_cnn.h) — enums have no tags ───────────── */

typedef enum {
    CUDNN_STATUS_SUCCESS = 0,
    CUDNN_STATUS_NOT_INITIALIZED = 1001,
    CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH = 1002,
    CUDNN_STATUS_DEPRECATED = 1004,
    CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED = 1008,
    CUDNN_STATUS_BAD_PARAM = 2000,
    CUDNN_STATUS_BAD_PARAM_NULL_POINTER = 2002,
    CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER = 2003,
    CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND = 2005,
    CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT = 2006,
    CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH = 2008,
    CUDNN_STATUS_NOT_SUPPORTED = 3000,
    CUDNN_STATUS_NOT_SUPPORTED_SHAPE = 3002,
    CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE = 3003,
    CUDNN_STATUS_NOT_SUPPORTED_LAYOUT = 3004,
    CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH = 3007,
    CUDNN_STATUS_INTERNAL_ERROR = 4000,
    CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED = 4003,
    CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED = 4004,
    CUDNN_STATUS_EXECUTION_FAILED = 5000,
    CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER = 5001,
    CUDNN_STATUS_EXECUTION_FAILED_CUDART = 5003
} cudnnStatus_t;

struct cudnnContext;
typedef struct cudnnContext *cudnnHandle_t;
typedef struct cudnnTensorStruct *cudnnTensorDescriptor_t;
typedef struct cudnnFilterStruct *cudnnFilterDescriptor_t;
typedef struct cudnnConvolutionStruct *cudnnConvolutionDescriptor_t;

typedef enum {
    CUDNN_DATA_FLOAT = 0,
    CUDNN_DATA_DOUBLE = 1,
    CUDNN_DATA_HALF = 2,
    CUDNN_DATA_INT8 = 3,
    CUDNN_DATA_INT32 = 4,
    CUDNN_DATA_UINT8 = 6,
    CUDNN_DATA_BFLOAT16 = 9
} cudnnDataType_t;

typedef enum {
    CUDNN_DEFAULT_MATH = 0,
    CUDNN_TENSOR_OP_MATH = 1,
    CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2,
    CUDNN_FMA_MATH = 3
} cudnnMathType_t;

typedef enum {
    CUDNN_TENSOR_NCHW = 0,
    CUDNN_TENSOR_NHWC = 1,
    CUDNN_TENSOR_NCHW_VECT_C = 2
} cudnnTensorFormat_t;

typedef enum { CUDNN_CONVOLUTION = 0, CUDNN_CROSS_CORRELATION = 1 } cudnnConvolutionMode_t;

typedef enum {
    CUDNN_NON_DETERMINISTIC = 0,
    CUDNN_DETERMINISTIC = 1
} cudnnDeterminism_t;

typedef enum {
    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM = 0,
    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM = 1,
    CUDNN_CONVOLUTION_FWD_ALGO_GEMM = 2,
    CUDNN_CONVOLUTION_FWD_ALGO_DIRECT = 3,
    CUDNN_CONVOLUTION_FWD_ALGO_FFT = 4,
    CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING = 5,
    CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD = 6,
    CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED = 7,
    CUDNN_CONVOLUTION_FWD_ALGO_COUNT = 8
} cudnnConvolutionFwdAlgo_t;

typedef enum {
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 = 0,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 = 1,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT = 2,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING = 3,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD = 4,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED = 5,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT = 6
} cudnnConvolutionBwdDataAlgo_t;

/* One result of the algorithm getters and finders; field order as in cudnn_cnn.h (48 bytes on LP64). */
typedef struct cudnnConvolutionFwdAlgoPerfStruct {
    cudnnConvolutionFwdAlgo_t algo;
    cudnnStatus_t status;
    float time;                 /* milliseconds (Find) or -1 (heuristics) */
    size_t memory;              /* workspace bytes the algorithm needs */
    cudnnDeterminism_t determinism;
    cudnnMathType_t mathType;
    int reserved[3];
} cudnnConvolutionFwdAlgoPerf_t;

typedef struct cudnnConvolutionBwdDataAlgoPerfStruct {
    cudnnConvolutionBwdDataAlgo_t algo;
    cudnnStatus_t status;
    float time;
    size_t memory;
    cudnnDeterminism_t determinism;
    cudnnMathType_t mathType;
    int reserved[3];
} cudnnConvolutionBwdDataAlgoPerf_t;

#endif /* ENH_REAL_HEADERS */

/* ───────────── exported prototypes (never linked; they type the table below) ─────────────
 * Declared in every mode, so that with ENH_REAL_HEADERS a difference from the real declaration fails to compile. */

/* driver: the names the library exports. The table fields drop the _v2 suffix; cuGetProcAddress takes the base name. */
CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *symbolStatus);
CUresult cuInit(unsigned int Flags);
CUresult cuDriverGetVersion(int *driverVersion);
CUresult cuGetErrorName(CUresult error, const char **pStr);
CUresult cuGetErrorString(CUresult error, const char **pStr);
CUresult cuDeviceGetCount(int *count);
CUresult cuDeviceGet(CUdevice *device, int ordinal);
CUresult cuDeviceGetName(char *name, int len, CUdevice dev);
CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev);
CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev);
CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev);
CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev);
CUresult cuCtxSetCurrent(CUcontext ctx);
/* cuda.h 13 has both; cuGetProcAddress("cuCtxSynchronize", …, 13000) returns the _v2 one, which takes the context
 * (NULL = the current one). So the table's cuCtxSynchronize field has the _v2 type. */
CUresult cuCtxSynchronize(void);
CUresult cuCtxSynchronize_v2(CUcontext ctx);
CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize);
CUresult cuMemFree_v2(CUdeviceptr dptr);
CUresult cuMemGetInfo_v2(size_t *free, size_t *total);
CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags);
CUresult cuMemFreeHost(void *p);
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream);
CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream);
CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream);
CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream);
CUresult cuModuleLoadData(CUmodule *module, const void *image);
CUresult cuModuleUnload(CUmodule hmod);
CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name);
CUresult cuLaunchKernel(CUfunction f,
                        unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                        unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                        unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra);
CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags);
CUresult cuStreamDestroy_v2(CUstream hStream);
CUresult cuStreamSynchronize(CUstream hStream);
CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags);
CUresult cuEventRecord(CUevent hEvent, CUstream hStream);
CUresult cuEventSynchronize(CUevent hEvent);
CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd);
CUresult cuEventDestroy_v2(CUevent hEvent);
CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode);
CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph);
CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph, unsigned long long flags);
CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream);
CUresult cuGraphExecDestroy(CUgraphExec hGraphExec);
CUresult cuGraphDestroy(CUgraph hGraph);

/* NVRTC */
const char *nvrtcGetErrorString(nvrtcResult result);
nvrtcResult nvrtcVersion(int *major, int *minor);
nvrtcResult nvrtcGetNumSupportedArchs(int *numArchs);
nvrtcResult nvrtcGetSupportedArchs(int *supportedArchs);
nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int numHeaders,
                               const char *const *headers, const char *const *includeNames);
nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog);
nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char *const *options);
nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet);
nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log);
nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet);
nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *cubin);
nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet);
nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx);

/* cuDNN (the legacy convolution API, deprecated since 9.0 but exported by libcudnn.so.9) */
size_t cudnnGetVersion(void);
size_t cudnnGetCudartVersion(void);
const char *cudnnGetErrorString(cudnnStatus_t status);
void cudnnGetLastErrorString(char *message, size_t max_size);
cudnnStatus_t cudnnCreate(cudnnHandle_t *handle);
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle);
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId);
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc);
cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t tensorDesc, cudnnDataType_t dataType,
                                           int n, int c, int h, int w,
                                           int nStride, int cStride, int hStride, int wStride);
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc);
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc);
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w);
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc);
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc);
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w,
                                              int u, int v, int dilation_h, int dilation_w,
                                              cudnnConvolutionMode_t mode, cudnnDataType_t computeType);
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount);
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType);
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc);
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc,
                                                    int *n, int *c, int *h, int *w);
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc,
                                                     const int requestedAlgoCount, int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults);
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t handle,
                                                     const cudnnTensorDescriptor_t xDesc, const void *x,
                                                     const cudnnFilterDescriptor_t wDesc, const void *w,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t yDesc, void *y,
                                                     const int requestedAlgoCount, int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults,
                                                     void *workSpace, size_t workSpaceSizeInBytes);
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *sizeInBytes);
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha,
                                      const cudnnTensorDescriptor_t xDesc, const void *x,
                                      const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y);
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t handle,
                                                          const cudnnFilterDescriptor_t filterDesc,
                                                          const cudnnTensorDescriptor_t diffDesc,
                                                          const cudnnConvolutionDescriptor_t convDesc,
                                                          const cudnnTensorDescriptor_t gradDesc,
                                                          const int requestedAlgoCount, int *returnedAlgoCount,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perfResults);
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t handle,
                                                          const cudnnFilterDescriptor_t wDesc, const void *w,
                                                          const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                                          const cudnnConvolutionDescriptor_t convDesc,
                                                          const cudnnTensorDescriptor_t dxDesc, void *dx,
                                                          const int requestedAlgoCount, int *returnedAlgoCount,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perfResults,
                                                          void *workSpace, size_t workSpaceSizeInBytes);
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                           const cudnnTensorDescriptor_t dyDesc,
                                                           const cudnnConvolutionDescriptor_t convDesc,
                                                           const cudnnTensorDescriptor_t dxDesc,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t *sizeInBytes);
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void *w,
                                           const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workSpace,
                                           size_t workSpaceSizeInBytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxDesc, void *dx);

/* ───────────── the table enh_cuda_load fills ─────────────
 * Driver fields drop the _v2 suffix of the exported name (cuGetProcAddress resolves the base name to the ABI of
 * CUDA 13.0). NVRTC and cuDNN fields keep their exact exported names. A field is NULL when its library was not
 * loaded; the graph-capture fields may also be NULL with a loaded driver that lacks them. */
typedef struct enh_cuda_api {
    /* library handles from dlopen (NULL when not loaded) */
    void *driver;
    void *nvrtc;
    void *nvrtc_builtins;
    void *cudnn;

    /* driver */
    __typeof__(&cuGetProcAddress_v2) cuGetProcAddress;
    __typeof__(&cuInit) cuInit;
    __typeof__(&cuDriverGetVersion) cuDriverGetVersion;
    __typeof__(&cuGetErrorName) cuGetErrorName;
    __typeof__(&cuGetErrorString) cuGetErrorString;
    __typeof__(&cuDeviceGetCount) cuDeviceGetCount;
    __typeof__(&cuDeviceGet) cuDeviceGet;
    __typeof__(&cuDeviceGetName) cuDeviceGetName;
    __typeof__(&cuDeviceGetPCIBusId) cuDeviceGetPCIBusId;   /* optional: NULL when the driver lacks it */
    __typeof__(&cuDeviceGetAttribute) cuDeviceGetAttribute;
    __typeof__(&cuDeviceTotalMem_v2) cuDeviceTotalMem;
    __typeof__(&cuDevicePrimaryCtxRetain) cuDevicePrimaryCtxRetain;
    __typeof__(&cuDevicePrimaryCtxRelease_v2) cuDevicePrimaryCtxRelease;
    __typeof__(&cuCtxSetCurrent) cuCtxSetCurrent;
    __typeof__(&cuCtxSynchronize_v2) cuCtxSynchronize;   /* takes the context: pass NULL for the current one */
    __typeof__(&cuMemAlloc_v2) cuMemAlloc;
    __typeof__(&cuMemFree_v2) cuMemFree;
    __typeof__(&cuMemGetInfo_v2) cuMemGetInfo;
    __typeof__(&cuMemHostAlloc) cuMemHostAlloc;
    __typeof__(&cuMemFreeHost) cuMemFreeHost;
    __typeof__(&cuMemcpyHtoDAsync_v2) cuMemcpyHtoDAsync;
    __typeof__(&cuMemcpyDtoHAsync_v2) cuMemcpyDtoHAsync;
    __typeof__(&cuMemcpyDtoDAsync_v2) cuMemcpyDtoDAsync;
    __typeof__(&cuMemsetD8Async) cuMemsetD8Async;
    __typeof__(&cuMemsetD32Async) cuMemsetD32Async;
    __typeof__(&cuModuleLoadData) cuModuleLoadData;
    __typeof__(&cuModuleUnload) cuModuleUnload;
    __typeof__(&cuModuleGetFunction) cuModuleGetFunction;
    __typeof__(&cuLaunchKernel) cuLaunchKernel;
    __typeof__(&cuStreamCreate) cuStreamCreate;
    __typeof__(&cuStreamDestroy_v2) cuStreamDestroy;
    __typeof__(&cuStreamSynchronize) cuStreamSynchronize;
    __typeof__(&cuEventCreate) cuEventCreate;
    __typeof__(&cuEventRecord) cuEventRecord;
    __typeof__(&cuEventSynchronize) cuEventSynchronize;
    __typeof__(&cuEventElapsedTime_v2) cuEventElapsedTime;
    __typeof__(&cuEventDestroy_v2) cuEventDestroy;
    /* optional: graph capture */
    __typeof__(&cuStreamBeginCapture_v2) cuStreamBeginCapture;
    __typeof__(&cuStreamEndCapture) cuStreamEndCapture;
    __typeof__(&cuGraphInstantiateWithFlags) cuGraphInstantiateWithFlags;
    __typeof__(&cuGraphLaunch) cuGraphLaunch;
    __typeof__(&cuGraphExecDestroy) cuGraphExecDestroy;
    __typeof__(&cuGraphDestroy) cuGraphDestroy;

    /* NVRTC */
    __typeof__(&nvrtcVersion) nvrtcVersion;
    __typeof__(&nvrtcGetErrorString) nvrtcGetErrorString;
    __typeof__(&nvrtcGetNumSupportedArchs) nvrtcGetNumSupportedArchs;
    __typeof__(&nvrtcGetSupportedArchs) nvrtcGetSupportedArchs;
    __typeof__(&nvrtcCreateProgram) nvrtcCreateProgram;
    __typeof__(&nvrtcDestroyProgram) nvrtcDestroyProgram;
    __typeof__(&nvrtcCompileProgram) nvrtcCompileProgram;
    __typeof__(&nvrtcGetProgramLogSize) nvrtcGetProgramLogSize;
    __typeof__(&nvrtcGetProgramLog) nvrtcGetProgramLog;
    __typeof__(&nvrtcGetCUBINSize) nvrtcGetCUBINSize;
    __typeof__(&nvrtcGetCUBIN) nvrtcGetCUBIN;
    __typeof__(&nvrtcGetPTXSize) nvrtcGetPTXSize;
    __typeof__(&nvrtcGetPTX) nvrtcGetPTX;

    /* cuDNN */
    __typeof__(&cudnnGetVersion) cudnnGetVersion;
    __typeof__(&cudnnGetCudartVersion) cudnnGetCudartVersion;
    __typeof__(&cudnnGetErrorString) cudnnGetErrorString;
    __typeof__(&cudnnGetLastErrorString) cudnnGetLastErrorString;
    __typeof__(&cudnnCreate) cudnnCreate;
    __typeof__(&cudnnDestroy) cudnnDestroy;
    __typeof__(&cudnnSetStream) cudnnSetStream;
    __typeof__(&cudnnCreateTensorDescriptor) cudnnCreateTensorDescriptor;
    __typeof__(&cudnnSetTensor4dDescriptorEx) cudnnSetTensor4dDescriptorEx;
    __typeof__(&cudnnDestroyTensorDescriptor) cudnnDestroyTensorDescriptor;
    __typeof__(&cudnnCreateFilterDescriptor) cudnnCreateFilterDescriptor;
    __typeof__(&cudnnSetFilter4dDescriptor) cudnnSetFilter4dDescriptor;
    __typeof__(&cudnnDestroyFilterDescriptor) cudnnDestroyFilterDescriptor;
    __typeof__(&cudnnCreateConvolutionDescriptor) cudnnCreateConvolutionDescriptor;
    __typeof__(&cudnnSetConvolution2dDescriptor) cudnnSetConvolution2dDescriptor;
    __typeof__(&cudnnSetConvolutionGroupCount) cudnnSetConvolutionGroupCount;
    __typeof__(&cudnnSetConvolutionMathType) cudnnSetConvolutionMathType;
    __typeof__(&cudnnDestroyConvolutionDescriptor) cudnnDestroyConvolutionDescriptor;
    __typeof__(&cudnnGetConvolution2dForwardOutputDim) cudnnGetConvolution2dForwardOutputDim;
    __typeof__(&cudnnGetConvolutionForwardAlgorithm_v7) cudnnGetConvolutionForwardAlgorithm_v7;
    __typeof__(&cudnnFindConvolutionForwardAlgorithmEx) cudnnFindConvolutionForwardAlgorithmEx;
    __typeof__(&cudnnGetConvolutionForwardWorkspaceSize) cudnnGetConvolutionForwardWorkspaceSize;
    __typeof__(&cudnnConvolutionForward) cudnnConvolutionForward;
    __typeof__(&cudnnGetConvolutionBackwardDataAlgorithm_v7) cudnnGetConvolutionBackwardDataAlgorithm_v7;
    __typeof__(&cudnnFindConvolutionBackwardDataAlgorithmEx) cudnnFindConvolutionBackwardDataAlgorithmEx;
    __typeof__(&cudnnGetConvolutionBackwardDataWorkspaceSize) cudnnGetConvolutionBackwardDataWorkspaceSize;
    __typeof__(&cudnnConvolutionBackwardData) cudnnConvolutionBackwardData;
} enh_cuda_api;

/* ───────────── loader ───────────── */

/* The CUDA version whose ABI the driver entries are requested for (cuGetProcAddress's cudaVersion). */
#define ENH_CUDA_ABI_VERSION 13000

/* enh_cuda_load results: 0 = everything loaded; otherwise the step that failed. */
#define ENH_CUDA_OK 0
#define ENH_CUDA_ERR_DRIVER_OPEN (-1)    /* dlopen of the driver library failed */
#define ENH_CUDA_ERR_PROC_ADDRESS (-2)   /* the driver has no cuGetProcAddress_v2 */
#define ENH_CUDA_ERR_DRIVER_ENTRY (-3)   /* a required driver entry could not be resolved */
#define ENH_CUDA_ERR_NVRTC (-4)          /* libnvrtc.so.13 not found in lib_dirs, or it failed to open / lacks a symbol */
#define ENH_CUDA_ERR_CUDNN (-5)          /* the same for libcudnn.so.9 */
#define ENH_CUDA_ERR_NO_LIB_DIRS (-6)    /* driver loaded; lib_dirs NULL or empty, so NVRTC and cuDNN were skipped */

/* Fill *api. driver_path NULL → "libcuda.so.1" through the default loader search; otherwise that file.
 * lib_dirs: colon-separated folders searched in order for libnvrtc.so.13 (after opening a libnvrtc-builtins.so.13.*
 * from the same folder RTLD_GLOBAL, since NVRTC 13.0 has no RPATH to find it) and then for libcudnn.so.9.
 * Steps run in that order and stop at the first failure, which is returned with a one-line reason in err (when
 * err_len > 0); the table keeps what loaded before it. Call enh_cuda_unload afterwards in every case. */
int enh_cuda_load(enh_cuda_api *api, const char *driver_path, const char *lib_dirs, char *err, size_t err_len);

/* dlclose every library the table holds (cuDNN, NVRTC, builtins, driver) and zero it. */
void enh_cuda_unload(enh_cuda_api *api);

#ifdef __cplusplus
}
#endif

#endif /* ENH_CCUDA_H */
