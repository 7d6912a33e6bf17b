/* SPDX-License-Identifier: MIT */
/*
 * src/poll.c - pier_poll: WSAPoll over pier sockets, answered by the OS
 * about the sockets' own handles (poll on POSIX, WSAPoll on Windows).
 */
#include <string.h>

#include "internal.h"

#ifdef _WIN32
typedef WSAPOLLFD os_pollfd;
#  define os_poll(f, n, t) WSAPoll((f), (ULONG)(n), (t))
#  define os_error() pier_spi_os_error(WSAGetLastError())
#  define os_interrupted() 0 /* WSAPoll is not interrupted by signals */
#  define OS_IN POLLRDNORM
#  define OS_OUT POLLWRNORM
#  define OS_PRI POLLRDBAND
#else
#  include <errno.h>
#  include <poll.h>
typedef struct pollfd os_pollfd;
#  define os_poll(f, n, t) poll((f), (nfds_t)(n), (t))
#  define os_error() pier_spi_os_error(errno)
#  define os_interrupted() (errno == EINTR)
#  define OS_IN POLLIN
#  define OS_OUT POLLOUT
#  define OS_PRI POLLPRI
#endif

#define ASKABLE (PIER_POLLIN | PIER_POLLOUT | PIER_POLLPRI)
#define STACK_FDS 16

static short to_os(unsigned ev) {
  return (short)(((ev & PIER_POLLIN) ? OS_IN : 0) | ((ev & PIER_POLLOUT) ? OS_OUT : 0) |
                 ((ev & PIER_POLLPRI) ? OS_PRI : 0));
}

static unsigned from_os(short rev) {
  return ((rev & (OS_IN | POLLIN)) ? PIER_POLLIN : 0) |
         ((rev & (OS_OUT | POLLOUT)) ? PIER_POLLOUT : 0) |
         ((rev & OS_PRI) ? PIER_POLLPRI : 0) |
         ((rev & POLLHUP) ? PIER_POLLHUP : 0) |
         ((rev & (POLLERR | POLLNVAL)) ? PIER_POLLERR : 0);
}

int pier_poll(pier_pollfd *fds, size_t n, int timeout_ms) {
  if (!fds || n == 0 || timeout_ms < -1)
    return !fds || n == 0
               ? pier__bad(__func__, "%s", !fds ? "fds is NULL" : "n is 0")
               : pier__bad(__func__, "timeout_ms %d is below -1", timeout_ms);
  for (size_t i = 0; i < n; i++)
    if (!fds[i].socket || pier__socket_usable(__func__, fds[i].socket) ||
        (fds[i].events & ~ASKABLE))
      return pier__bad(__func__, "fds[%lu] %s", (unsigned long)i,
                       !fds[i].socket ? "has a NULL socket"
                       : (fds[i].events & ~ASKABLE)
                           ? "asks for events outside PIER_POLLIN, "
                             "PIER_POLLOUT and PIER_POLLPRI"
                           : "has a closing socket");
  /* A layer keeps data of its own the OS handle knows nothing of. */
  for (size_t i = 0; i < n; i++)
    if (fds[i].socket->lower) return PIER_EOPNOTSUPP;
  os_pollfd stack[STACK_FDS], *p = stack;
  if (n > STACK_FDS && !(p = pier__calloc(n, sizeof *p))) return PIER_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    memset(&p[i], 0, sizeof p[i]);
    p[i].fd = pier_socket_handle(fds[i].socket);
    p[i].events = to_os(fds[i].events);
  }
  int rc;
  do {
    rc = os_poll(p, n, timeout_ms);
  } while (rc < 0 && os_interrupted());
  if (rc < 0) {
    rc = os_error();
  } else {
    rc = 0;
    for (size_t i = 0; i < n; i++) {
      fds[i].revents = from_os(p[i].revents);
      if (fds[i].revents) rc++;
    }
  }
  if (p != stack) pier__free(p);
  return rc;
}
