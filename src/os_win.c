/* SPDX-License-Identifier: MIT */
/*
 * src/os_win.c - Winsock errors translated into PIER_E* codes, and the
 * process-wide WSAStartup/WSACleanup (Winsock refcounts them itself).
 */
#include "internal.h"

int pier__os_init(void) {
  WSADATA wsa;
  int rc = WSAStartup(MAKEWORD(2, 2), &wsa);
  return rc ? pier_spi_os_error(rc) : 0;
}

void pier__os_cleanup(void) { WSACleanup(); }

int pier_spi_os_error(int e) {
  switch (e) {
  case 0: return 0;
  case WSAEINVAL: case ERROR_INVALID_PARAMETER: return PIER_EINVAL;
  /* WSA_NOT_ENOUGH_MEMORY, WSA_INVALID_HANDLE, WSA_IO_PENDING and
     WSA_OPERATION_ABORTED are the ERROR_* values of the same names. */
  case ERROR_NOT_ENOUGH_MEMORY: case ERROR_OUTOFMEMORY: return PIER_ENOMEM;
  case WSAEBADF: case ERROR_INVALID_HANDLE: return PIER_EBADF;
  case WSAEALREADY: return PIER_EALREADY;
  case WSAEINPROGRESS: case ERROR_IO_PENDING: return PIER_EINPROGRESS;
  case WSAEINTR: case ERROR_OPERATION_ABORTED: case WSAECANCELLED:
    return PIER_ECANCELED;
  case ERROR_NOT_FOUND: return PIER_ENOENT;
  case WSAEOPNOTSUPP: return PIER_EOPNOTSUPP;
  case WSAEWOULDBLOCK: return PIER_EWOULDBLOCK;
  case WSATRY_AGAIN: return PIER_ETRYAGAIN;
  case WSAENOTCONN: return PIER_ENOTCONN;
  case WSAEISCONN: return PIER_EISCONN;
  case WSAECONNREFUSED: case ERROR_CONNECTION_REFUSED:
    return PIER_ECONNREFUSED;
  case WSAECONNRESET: case ERROR_NETNAME_DELETED: return PIER_ECONNRESET;
  case WSAECONNABORTED: case ERROR_CONNECTION_ABORTED:
    return PIER_ECONNABORTED;
  case WSAETIMEDOUT: case ERROR_SEM_TIMEOUT: return PIER_ETIMEDOUT;
  case WSAEADDRINUSE: return PIER_EADDRINUSE;
  case WSAEADDRNOTAVAIL: return PIER_EADDRNOTAVAIL;
  case WSAEAFNOSUPPORT: case WSAEPROTONOSUPPORT: return PIER_EAFNOSUPPORT;
  case WSAENETUNREACH: case ERROR_NETWORK_UNREACHABLE:
    return PIER_ENETUNREACH;
  case WSAEHOSTUNREACH: case ERROR_HOST_UNREACHABLE: return PIER_EHOSTUNREACH;
  case WSAENETDOWN: return PIER_ENETDOWN;
  case WSAESHUTDOWN: case ERROR_BROKEN_PIPE: return PIER_EPIPE;
  case WSAEMSGSIZE: case ERROR_MORE_DATA: return PIER_EMSGSIZE;
  case WSAEACCES: case ERROR_ACCESS_DENIED: return PIER_EACCES;
  case WSAEMFILE: return PIER_EMFILE;
  case WSAENOBUFS: return PIER_ENOBUFS;
  case WSAENOPROTOOPT: return PIER_ENOPROTOOPT;
  case WSAENOTSOCK: return PIER_ENOTSOCK;
  case WSAHOST_NOT_FOUND: return PIER_EAI_NONAME;
  case WSANO_DATA: return PIER_EAI_NONAME;
  case WSANO_RECOVERY: return PIER_EAI_FAIL;
  default: return PIER_EUNKNOWN;
  }
}

int pier__gai_error(int gai) {
  switch (gai) {
  case 0: return 0;
  case EAI_NONAME: return PIER_EAI_NONAME;
  case EAI_AGAIN: return PIER_EAI_AGAIN;
  case EAI_FAIL: return PIER_EAI_FAIL;
  case EAI_FAMILY: return PIER_EAI_FAMILY;
  case EAI_MEMORY: return PIER_ENOMEM;
  default: return pier_spi_os_error(gai);
  }
}
