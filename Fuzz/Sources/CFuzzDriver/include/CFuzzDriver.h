#include <stddef.h>
#include <stdint.h>
/// libFuzzer's driver (provided by -sanitize=fuzzer): runs the fuzzing loop with `callback`.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
