/* SPDX-License-Identifier: MIT */
/*
 * backends/iocp/keepalive.c - TCP keep-alive timings where Winsock has no
 * TCP_KEEPIDLE / TCP_KEEPINTVL options (Windows before 10 1709, and Wine,
 * which refuses them with WSAENOPROTOOPT): SIO_KEEPALIVE_VALS instead.
 *
 * That ioctl sets both timings at once and switches keep-alive on, and it
 * cannot be read back.  So the provider remembers what the application
 * set, applies both (Windows' defaults, 2 h and 1 s, for the one not
 * set) while SO_KEEPALIVE is on, applies them again when SO_KEEPALIVE is
 * turned on later, and answers reads from what it remembers.  The probe
 * count (TCP_KEEPCNT) has no such fallback: Windows fixes it at 10.
 */
#include "iocp.h"

#include <mstcpip.h> /* after winsock2.h: it uses its types */

#ifndef TCP_KEEPIDLE
#  define TCP_KEEPIDLE 3
#endif
#ifndef TCP_KEEPINTVL
#  define TCP_KEEPINTVL 17
#endif

#define DEFAULT_IDLE_S 7200
#define DEFAULT_INTVL_S 1

static int is_timing(int level, int name) {
  return level == IPPROTO_TCP && (name == TCP_KEEPIDLE || name == TCP_KEEPINTVL);
}

static int keepalive_on(iocp_sock *is) {
  BOOL on = FALSE;
  int len = sizeof on;
  return getsockopt(is->sock, SOL_SOCKET, SO_KEEPALIVE, (char *)&on, &len) == 0 &&
         on;
}

/* Hand both timings to Winsock (keep-alive must be on). */
static int apply(iocp_sock *is) {
  struct tcp_keepalive ka;
  DWORD got = 0;
  ka.onoff = 1;
  ka.keepalivetime = (ULONG)(is->ka_idle ? is->ka_idle : DEFAULT_IDLE_S) * 1000u;
  ka.keepaliveinterval =
      (ULONG)(is->ka_intvl ? is->ka_intvl : DEFAULT_INTVL_S) * 1000u;
  if (WSAIoctl(is->sock, SIO_KEEPALIVE_VALS, &ka, sizeof ka, NULL, 0, &got,
               NULL, NULL) != 0)
    return pier_spi_os_error(WSAGetLastError());
  return 0;
}

int pier__iocp_keepalive_set(iocp_sock *is, int level, int name,
                             const void *val, size_t len, int *rc) {
  if (!is_timing(level, name) || len != sizeof(int)) return 0;
  int v = *(const int *)val;
  if (v <= 0) {
    *rc = PIER_EINVAL;
    return 1;
  }
  int *slot = name == TCP_KEEPIDLE ? &is->ka_idle : &is->ka_intvl;
  int old = *slot;
  *slot = v;
  *rc = keepalive_on(is) ? apply(is) : 0;
  if (*rc) *slot = old;
  return 1;
}

int pier__iocp_keepalive_get(iocp_sock *is, int level, int name, void *val,
                             size_t *len) {
  if (!is_timing(level, name) || *len < sizeof(int)) return 0;
  int v = name == TCP_KEEPIDLE ? is->ka_idle : is->ka_intvl;
  if (!v) v = name == TCP_KEEPIDLE ? DEFAULT_IDLE_S : DEFAULT_INTVL_S;
  *(int *)val = v;
  *len = sizeof(int);
  return 1;
}

void pier__iocp_keepalive_switched(iocp_sock *is, int level, int name,
                                   const void *val) {
  if (level != SOL_SOCKET || name != SO_KEEPALIVE || !*(const int *)val ||
      !(is->ka_idle || is->ka_intvl))
    return;
  int rc = apply(is);
  if (rc) pier_spi_log(PIER_LOG_WARN, "keep-alive timings: %s", pier_strerror(rc));
}
