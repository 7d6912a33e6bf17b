/* SPDX-License-Identifier: MIT */
/*
 * tests/fault.h - a seeded fault plan for the fault suite
 * (tests/test_fault.c).
 *
 * Installed, it puts its own functions in front of the provider's system
 * calls (pier/spi.h section 5; the libevent provider has the table) and
 * in place of pier's allocator (pier_set_allocator).  They pass every call
 * through until the plan is armed; armed, each call the plan may touch
 * fails or shrinks with a probability per kind, drawn from the seed's
 * random sequence, and the nth allocation (or any, by chance) returns NULL.
 * What it injects is counted and the last few injections are kept, so a
 * failing seed can say what happened before it failed.
 *
 * Which call gets which fault: only what the OS itself could answer there.
 *   recvmsg, recv     EINTR, EAGAIN; on streams also a 1-byte read, ECONNRESET
 *   sendmsg, send     EINTR, EAGAIN, ENOBUFS; on streams also a 1-byte
 *                     write, ECONNRESET, EPIPE
 *   accept4, accept   EINTR, EAGAIN, EMFILE, ENFILE, ENOBUFS
 *   socket            EMFILE, ENFILE, ENOBUFS
 *   connect           ENOBUFS
 *   eventfd, pipe     EMFILE, ENFILE
 *   poll              EINTR
 * An injected error makes no OS call at all (the connection is untouched;
 * only pier is told it failed); a short transfer makes the real call with
 * one byte.
 *
 * Not thread-safe against fault_install / fault_uninstall; the wrappers
 * themselves may run on any thread.
 */
#ifndef PIER_TESTS_FAULT_H
#define PIER_TESTS_FAULT_H

#include <stddef.h>

enum fault_kind {
  FK_EINTR, FK_EAGAIN, FK_SHORT, FK_ECONNRESET, FK_EPIPE, FK_EMFILE,
  FK_ENFILE, FK_ENOBUFS, FK_NOMEM, FK_NKINDS
};

/* "EINTR", "EAGAIN", "short", ..., "NULL-alloc". */
const char *fault_kind_name(int kind);

typedef struct fault_plan {
  unsigned seed;              /* the random sequence */
  unsigned permille[FK_NKINDS]; /* chance per call the kind may hit, of 1000 */
  long alloc_fail_at;         /* fail only the nth allocation once armed
                                 (1: the first); 0: none that way */
} fault_plan;

/*
 * A plan whose probabilities come from the seed too.  EINTR, EAGAIN and
 * short transfers are off, rare (0.5%), some (3%) or often (10%); by
 * seed % 4 the plan adds nothing (0), rare allocation failures (1), one
 * other kind at 0.5% (2), or every kind at random levels (3).
 */
void fault_plan_random(fault_plan *p, unsigned seed);
/* 1 if p injects only EINTR, EAGAIN and short transfers: nothing that
   may end a connection or an operation, so everything must go through. */
int fault_plan_benign(const fault_plan *p);

/*
 * fault_install - put the plan's functions in place, passing through:
 * the allocator always, the system calls where the table exists.  Call
 * with no pier loop alive (pier_set_allocator).  Returns 0 or the PIER_E*
 * code of pier_set_allocator.
 */
int fault_install(void);
/* fault_uninstall - the OS's calls and malloc again (no loop alive). */
void fault_uninstall(void);
/* 1 where the provider's system calls go through the table (libevent
   built); fault_install replaces them only then. */
int fault_have_syscalls(void);

/* fault_arm - start injecting as p says (copied); resets the record.
   fault_disarm - pass everything through again, keeping the record. */
void fault_arm(const fault_plan *p);
void fault_disarm(void);

typedef struct fault_record {
  unsigned long calls;        /* calls the plan could touch, while armed */
  unsigned long allocs;       /* allocations, while armed */
  unsigned long injected[FK_NKINDS];
  long live;                  /* blocks allocated through the plan's
                                 allocator and not freed: a running count,
                                 compare two readings */
} fault_record;

/* A copy of the record so far. */
fault_record fault_record_get(void);
/* What was injected: counts per kind and the last injections, as text
   into buf (always terminated). */
void fault_describe(char *buf, size_t len);

#endif
