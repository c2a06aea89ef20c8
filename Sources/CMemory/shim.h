// Linux memory calls that Swift's Glibc module leaves out (declared only under _GNU_SOURCE).
#pragma once
#include <stddef.h>

void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...);

/// mremap(old_address, old_size, new_size, MREMAP_MAYMOVE): the mapping's pages move along; MAP_FAILED on failure.
static inline void *enh_mremap_maymove(void *old_address, size_t old_size, size_t new_size) {
    return mremap(old_address, old_size, new_size, 1 /* MREMAP_MAYMOVE */);
}
