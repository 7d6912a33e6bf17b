/* SPDX-License-Identifier: MIT */
/*
 * bench/heapcount.c - heapcount.so, preloaded (LD_PRELOAD) into a server
 * for the idle-memory workload only: it counts the heap bytes the process
 * has live, split by who called malloc - libpier, libevent, libuv, or the
 * rest ("app": the program itself and libc on its behalf) - so that the
 * same measurement applies to every server, pier's example included,
 * without changing a line of them.
 *
 * Counted: the sizes requested from malloc, calloc, realloc, memalign,
 * posix_memalign, aligned_alloc, valloc (not malloc's own headers and
 * rounding).  The caller is the return address of the malloc call; a
 * library that allocates through a wrapper of its own (pier's allocator
 * hook, libevent's mm_malloc, libuv's uv__malloc) is still itself.
 *
 * The counters live in a shared file named by $BENCH_HEAPCOUNT (created
 * here, 4 KiB: int64 bytes live per origin, in the order app, pier,
 * libevent, libuv); bench/loadgen maps it read-only (-H) to read them
 * before and after opening the idle connections.
 *
 * Each block carries a 16-byte header (its size, origin and offset), so
 * this shim changes the heap it measures - which is why it is only used
 * for the idle workload, and why the report also gives the resident set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

#define ORIGINS 4 /* app, pier, libevent, libuv */
#define MAGIC 0x4843

typedef struct hdr {
  uint64_t size;
  uint32_t offset;   /* from the block malloc returned to the user pointer */
  uint16_t origin;
  uint16_t magic;
} hdr;

static int64_t local[ORIGINS];
static int64_t *ctr = local;
static int state; /* 0: not set up, 1: setting up, 2: ready */

static struct { uintptr_t lo, hi; int origin; } ranges[32];
static int nranges;

static int origin_of_path(const char *p) {
  const char *base = strrchr(p, '/');
  base = base ? base + 1 : p;
  if (strncmp(base, "libpier", 7) == 0) return 1;
  if (strncmp(base, "libevent", 8) == 0) return 2;
  if (strncmp(base, "libuv", 5) == 0) return 3;
  return 0;
}

/* Executable mappings of the three libraries, from /proc/self/maps,
   read with plain system calls (no malloc in here). */
static void read_maps(void) {
  static char buf[1 << 16];
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  size_t len = 0;
  ssize_t r;
  while (len < sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
    len += (size_t)r;
  close(fd);
  buf[len] = 0;
  for (char *line = buf; line && *line;) {
    char *next = strchr(line, '\n');
    if (next) *next++ = 0;
    uintptr_t lo = 0, hi = 0;
    char *p = line;
    while (*p && *p != '-') lo = lo * 16 + (uintptr_t)(*p <= '9' ? *p - '0' : (*p | 32) - 'a' + 10), p++;
    if (*p == '-') p++;
    while (*p && *p != ' ') hi = hi * 16 + (uintptr_t)(*p <= '9' ? *p - '0' : (*p | 32) - 'a' + 10), p++;
    char *perm = *p ? p + 1 : p;
    char *path = strchr(line, '/');
    if (path && perm[2] == 'x' && nranges < 32) {
      int o = origin_of_path(path);
      if (o) {
        ranges[nranges].lo = lo;
        ranges[nranges].hi = hi;
        ranges[nranges].origin = o;
        nranges++;
      }
    }
    line = next;
  }
}

static void setup(void) {
  state = 1;
  read_maps();
  const char *file = getenv("BENCH_HEAPCOUNT");
  if (file && *file) {
    /* Never truncate: the processes exec'ed on the way to the server
       (env, taskset, a libtool wrapper and its subshells) map the same
       file, and a shrinking file would be SIGBUS for them. */
    int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 &&
        (st.st_size >= 4096 || ftruncate(fd, 4096) == 0)) {
      void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (m != MAP_FAILED) {
        int64_t *c = m;
        for (int i = 0; i < ORIGINS; i++) c[i] = local[i];
        ctr = c;
      }
    }
    if (fd >= 0) close(fd);
  }
  state = 2;
}

static int origin(void *ret) {
  if (state == 0) setup();
  uintptr_t a = (uintptr_t)ret;
  for (int i = 0; i < nranges; i++)
    if (a >= ranges[i].lo && a < ranges[i].hi) return ranges[i].origin;
  return 0;
}

static void *finish(void *block, uint32_t offset, size_t n, int o) {
  if (!block) return NULL;
  hdr *h = (hdr *)((char *)block + offset) - 1;
  h->size = n;
  h->offset = offset;
  h->origin = (uint16_t)o;
  h->magic = MAGIC;
  __atomic_fetch_add(&ctr[o], (int64_t)n, __ATOMIC_RELAXED);
  return h + 1;
}

static hdr *header(void *p) {
  hdr *h = (hdr *)p - 1;
  return h->magic == MAGIC ? h : NULL;
}

static void release(void *p) {
  hdr *h = header(p);
  if (!h) { __libc_free(p); return; } /* not ours (cannot happen) */
  __atomic_fetch_sub(&ctr[h->origin], (int64_t)h->size, __ATOMIC_RELAXED);
  h->magic = 0;
  __libc_free((char *)(h + 1) - h->offset);
}

static void *aligned(size_t align, size_t n, int o) {
  if (align < sizeof(hdr)) align = sizeof(hdr);
  if (n > SIZE_MAX - align) return NULL;
  return finish(__libc_memalign(align, n + align), (uint32_t)align, n, o);
}

void *malloc(size_t n) {
  int o = origin(__builtin_return_address(0));
  if (n > SIZE_MAX - sizeof(hdr)) return NULL;
  return finish(__libc_malloc(n + sizeof(hdr)), sizeof(hdr), n, o);
}

void *calloc(size_t k, size_t n) {
  int o = origin(__builtin_return_address(0));
  if (n && k > (SIZE_MAX - sizeof(hdr)) / n) return NULL;
  return finish(__libc_calloc(1, k * n + sizeof(hdr)), sizeof(hdr), k * n, o);
}

void free(void *p) {
  if (p) release(p);
}

void *realloc(void *p, size_t n) {
  int o = origin(__builtin_return_address(0));
  if (!p) return finish(__libc_malloc(n + sizeof(hdr)), sizeof(hdr), n, o);
  if (n == 0) { release(p); return NULL; }
  hdr *h = header(p);
  size_t old = h ? h->size : 0;
  void *q = finish(__libc_malloc(n + sizeof(hdr)), sizeof(hdr), n, o);
  if (!q) return NULL;
  memcpy(q, p, old < n ? old : n);
  release(p);
  return q;
}

void *reallocarray(void *p, size_t k, size_t n) {
  if (n && k > SIZE_MAX / n) { errno = ENOMEM; return NULL; }
  return realloc(p, k * n);
}

void *memalign(size_t align, size_t n) {
  return aligned(align, n, origin(__builtin_return_address(0)));
}

void *aligned_alloc(size_t align, size_t n) {
  return aligned(align, n, origin(__builtin_return_address(0)));
}

void *valloc(size_t n) {
  return aligned((size_t)sysconf(_SC_PAGESIZE), n, origin(__builtin_return_address(0)));
}

void *pvalloc(size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  return aligned(pg, (n + pg - 1) / pg * pg, origin(__builtin_return_address(0)));
}

int posix_memalign(void **out, size_t align, size_t n) {
  void *p = aligned(align, n, origin(__builtin_return_address(0)));
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

size_t malloc_usable_size(void *p) {
  hdr *h = p ? header(p) : NULL;
  return h ? h->size : 0;
}
