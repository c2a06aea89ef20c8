#!/usr/bin/env bash
# Self-test of the CUDA host emulator and of the CCUDA loader, on a machine without a GPU.
#
#   Tests/Fixtures/cuda-emulator/selftest.sh [--sanitize] [--fetch]
#
# 1. builds the emulator around sample_kernels.cu (scripts/cuda-emulator-build) and runs selftest.cpp against it
#    through Sources/CCUDA/loader.c: driver, memory and guards, NVRTC and modules, launches, cuDNN convolutions;
# 2. runs loadtest.c: the loader's error paths, then the real NVRTC 13.0.88 through the table (sample kernels to
#    sm_86 and sm_90 cubins) when its wheel is unpacked in ~/.cache/enhance/cuda (--fetch downloads it, ≈ 90 MB,
#    via scripts/cuda-wheels), and the real cuDNN's version when that wheel is there too.
# --sanitize builds everything with ASan and UBSan.
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=Tests/Fixtures/cuda-emulator
FLAGS=(-g -O1)
FETCH=0
SANITIZE=0
for a in "$@"; do
    case $a in
    --sanitize) FLAGS+=(-fsanitize=address,undefined -fno-omit-frame-pointer) SANITIZE=1 ;;
    --fetch) FETCH=1 ;;
    *) echo "usage: $0 [--sanitize] [--fetch]" >&2; exit 2 ;;
    esac
done
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

T0=$SECONDS
ENH_EMU_CXXFLAGS="${FLAGS[*]:2}" scripts/cuda-emulator-build "$W/emu" "$HERE/sample_kernels.cu"
${CC:-cc} -std=c11 -Wall -Wextra "${FLAGS[@]}" -I Sources/CCUDA/include -c Sources/CCUDA/loader.c -o "$W/loader.o"
${CXX:-c++} -std=c++17 -Wall -Wextra "${FLAGS[@]}" -I Sources/CCUDA/include "$HERE/selftest.cpp" "$W/loader.o" \
    -o "$W/selftest" -ldl -lpthread
${CC:-cc} -std=c11 -Wall -Wextra "${FLAGS[@]}" -I Sources/CCUDA/include "$HERE/loadtest.c" "$W/loader.o" \
    -o "$W/loadtest" -ldl
echo "built in $((SECONDS - T0)) s"

echo "== selftest"
"$W/selftest" "$W/emu" "$HERE/sample_kernels.cu"

echo "== loadtest"
CACHE=${ENHANCE_CUDA_DIR:-$HOME/.cache/enhance/cuda}
[[ $FETCH == 1 ]] && scripts/cuda-wheels >/dev/null
NVRTC=$(ls -d "$CACHE"/nvidia_cuda_nvrtc-13.0.88-*/nvidia/cu13/lib 2>/dev/null | head -n 1 || true)
CUDNN=$(ls -d "$CACHE"/nvidia_cudnn_cu13-*/nvidia/cudnn/lib 2>/dev/null | sort -V | tail -n 1 || true)
ARGS=("$W/emu" "$HERE/sample_kernels.cu")
if [[ -n $NVRTC ]]; then
    ARGS+=("$NVRTC")
    # the real cuDNN aborts under ASan ("Cannot load symbol cudnnCreate": it opens its parts in ways ASan breaks)
    [[ -n $CUDNN && $SANITIZE == 0 ]] && ARGS+=("$CUDNN")
fi
# leaks inside the real NVRTC are not ours
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} "$W/loadtest" "${ARGS[@]}"
echo "selftest.sh: all passed ($((SECONDS - T0)) s)"
