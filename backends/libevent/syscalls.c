/* SPDX-License-Identifier: MIT */
/*
 * backends/libevent/syscalls.c - the libevent provider's system calls,
 * through one table (SQLite's aSyscall in os_unix.c): each entry has a
 * name, the OS's function and the one in use, which lev.h's sys_NAME
 * macros call.  pier_spi_syscall_set() and its
 * kin (pier/spi.h section 5) let tests and fault injection replace any.
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* accept4 */
#endif
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifdef __linux__
#  include <sys/eventfd.h>
#endif

#include "lev.h"

/* Each entry starts as the OS's own function. */
#define ENTRY(id, fn) \
  [LEV_SYS_##id] = {#fn, (pier_syscall_fn)fn, (pier_syscall_fn)fn}

lev_syscall pier__lev_syscalls[LEV_SYS_COUNT] = {
  ENTRY(SOCKET, socket),
  ENTRY(CLOSE, close),
  ENTRY(BIND, bind),
  ENTRY(LISTEN, listen),
  ENTRY(SHUTDOWN, shutdown),
  ENTRY(CONNECT, connect),
  ENTRY(RECV, recv),
  ENTRY(SEND, send),
  ENTRY(RECVMSG, recvmsg),
  ENTRY(SENDMSG, sendmsg),
  ENTRY(GETSOCKOPT, getsockopt),
  ENTRY(SETSOCKOPT, setsockopt),
  ENTRY(GETSOCKNAME, getsockname),
  ENTRY(GETPEERNAME, getpeername),
  ENTRY(FCNTL, fcntl),
  ENTRY(IOCTL, ioctl),
  ENTRY(READ, read),
  ENTRY(WRITE, write),
  ENTRY(PIPE, pipe),
  ENTRY(ACCEPT, accept),
  ENTRY(OPEN, open),
  ENTRY(POLL, poll),
#ifdef SOCK_NONBLOCK
  ENTRY(ACCEPT4, accept4),
#endif
#ifdef __linux__
  ENTRY(EVENTFD, eventfd),
#endif
};

static int find(const char *name) {
  for (int i = 0; i < LEV_SYS_COUNT; i++)
    if (strcmp(pier__lev_syscalls[i].name, name) == 0) return i;
  return -1;
}

int pier_spi_syscall_set(const char *name, pier_syscall_fn fn,
                         pier_syscall_fn *old) {
  if (!name) {
    for (int i = 0; i < LEV_SYS_COUNT; i++)
      __atomic_store_n(&pier__lev_syscalls[i].cur, pier__lev_syscalls[i].os,
                       __ATOMIC_RELEASE);
    return 0;
  }
  int i = find(name);
  if (i < 0) return PIER_ENOENT;
  lev_syscall *e = &pier__lev_syscalls[i];
  pier_syscall_fn prev =
      __atomic_exchange_n(&e->cur, fn ? fn : e->os, __ATOMIC_ACQ_REL);
  if (old) *old = prev;
  return 0;
}

pier_syscall_fn pier_spi_syscall_get(const char *name) {
  int i = name ? find(name) : -1;
  return i < 0 ? NULL : lev_sys(i);
}

const char *pier_spi_syscall_next(const char *name) {
  int i = name ? find(name) : -1;
  if (name && i < 0) return NULL;
  return i + 1 < LEV_SYS_COUNT ? pier__lev_syscalls[i + 1].name : NULL;
}
