/* SPDX-License-Identifier: MIT */
/*
 * src/alloc.c - the replaceable allocator and the process reference count
 * (loops alive) that guards replacing it.
 */
#include <stdlib.h>

#include "internal.h"

static pier_allocator current = { malloc, realloc, calloc, free };
static int live_loops; /* atomic */

void *pier__malloc(size_t n) { return current.malloc_fn(n ? n : 1); }
void *pier__calloc(size_t count, size_t n) {
  return current.calloc_fn(count ? count : 1, n ? n : 1);
}
void *pier__realloc(void *p, size_t n) { return current.realloc_fn(p, n ? n : 1); }
void pier__free(void *p) {
  if (p) current.free_fn(p);
}

void *pier_spi_malloc(size_t n) { return pier__malloc(n); }
void *pier_spi_calloc(size_t count, size_t n) { return pier__calloc(count, n); }
void pier_spi_free(void *p) { pier__free(p); }

int pier_set_allocator(const pier_allocator *a) {
  if (pier__process_busy()) return PIER_EBUSY;
  if (a == NULL) {
    pier_allocator def = { malloc, realloc, calloc, free };
    current = def;
    return 0;
  }
  if (!a->malloc_fn || !a->realloc_fn || !a->calloc_fn || !a->free_fn)
    return pier__bad(__func__, "a->%s is NULL (all four functions must be "
                     "set)", !a->malloc_fn ? "malloc_fn"
                     : !a->realloc_fn ? "realloc_fn"
                     : !a->calloc_fn ? "calloc_fn" : "free_fn");
  current = *a;
  return 0;
}

void pier__process_ref(void) {
  pier__fetch_add(&live_loops, 1);
}

void pier__process_unref(void) { pier__fetch_add(&live_loops, -1); }

int pier__process_busy(void) { return pier__load(&live_loops) > 0; }
