/* SPDX-License-Identifier: MIT */
/*
 * src/os_posix.c - POSIX errors translated into PIER_E* codes: the one
 * place that knows errno values and getaddrinfo's EAI_* codes.
 */
#include <errno.h>
#include <netdb.h>

#include "internal.h"

int pier__os_init(void) { return 0; }
void pier__os_cleanup(void) {}

int pier_spi_os_error(int e) {
  switch (e) {
  case 0: return 0;
  case EINVAL: return PIER_EINVAL;
  case ENOMEM: return PIER_ENOMEM;
  case EBADF: return PIER_EBADF;
  case EBUSY: return PIER_EBUSY;
  case EALREADY: return PIER_EALREADY;
  case EINPROGRESS: return PIER_EINPROGRESS;
  case ECANCELED: return PIER_ECANCELED;
  case ENOENT: return PIER_ENOENT;
  case EOPNOTSUPP: return PIER_EOPNOTSUPP;
#if EWOULDBLOCK != EAGAIN
  case EWOULDBLOCK:
#endif
  case EAGAIN: return PIER_EWOULDBLOCK;
  case ENOTCONN: case EDESTADDRREQ: return PIER_ENOTCONN;
  case EISCONN: return PIER_EISCONN;
  case ECONNREFUSED: return PIER_ECONNREFUSED;
  case ECONNRESET: return PIER_ECONNRESET;
  case ECONNABORTED: return PIER_ECONNABORTED;
  case ETIMEDOUT: return PIER_ETIMEDOUT;
  case EADDRINUSE: return PIER_EADDRINUSE;
  case EADDRNOTAVAIL: return PIER_EADDRNOTAVAIL;
  case EAFNOSUPPORT: return PIER_EAFNOSUPPORT;
  case EPROTONOSUPPORT: return PIER_EAFNOSUPPORT;
  case ENETUNREACH: return PIER_ENETUNREACH;
  case EHOSTUNREACH: return PIER_EHOSTUNREACH;
  case ENETDOWN: return PIER_ENETDOWN;
  case EPIPE: return PIER_EPIPE;
  case EMSGSIZE: return PIER_EMSGSIZE;
  case EACCES: case EPERM: return PIER_EACCES;
  case EMFILE: case ENFILE: return PIER_EMFILE;
  case ENOBUFS: return PIER_ENOBUFS;
  case ENOPROTOOPT: return PIER_ENOPROTOOPT;
  case ENOTSOCK: return PIER_ENOTSOCK;
  case EPROTO: return PIER_EPROTO;
  case EIO: return PIER_EIO;
  case EDEADLK: return PIER_EDEADLK;
  case EINTR: return PIER_ECANCELED;
  default: return PIER_EUNKNOWN;
  }
}

int pier__gai_error(int gai) {
  switch (gai) {
  case 0: return 0;
  case EAI_NONAME: return PIER_EAI_NONAME;
#ifdef EAI_NODATA
  case EAI_NODATA: return PIER_EAI_NONAME;
#endif
  case EAI_SERVICE: return PIER_EAI_NONAME;
  case EAI_AGAIN: return PIER_EAI_AGAIN;
  case EAI_FAIL: return PIER_EAI_FAIL;
  case EAI_FAMILY: return PIER_EAI_FAMILY;
#ifdef EAI_ADDRFAMILY
  case EAI_ADDRFAMILY: return PIER_EAI_FAMILY;
#endif
  case EAI_MEMORY: return PIER_ENOMEM;
  case EAI_BADFLAGS: return PIER_EINVAL;
  case EAI_SOCKTYPE: return PIER_EINVAL;
  case EAI_SYSTEM: return pier_spi_os_error(errno);
  default: return PIER_EAI_FAIL;
  }
}
