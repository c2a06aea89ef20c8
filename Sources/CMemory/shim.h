// Linux memory calls that Swift's Glibc module leaves out (declared only under _GNU_SOURCE).
#pragma once
#include <stddef.h>

void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...);

/// mremap(old_address, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, new_address): the mapping's pages move to
/// new_address (whatever was mapped there is unmapped first); MAP_FAILED on failure.
static inline void *enh_mremap_fixed(void *old_address, size_t old_size, size_t new_size, void *new_address) {
    return mremap(old_address, old_size, new_size, 1 /* MREMAP_MAYMOVE */ | 2 /* MREMAP_FIXED */, new_address);
}
