/* SPDX-License-Identifier: MIT */
/*
 * src/share_posix.c - socket sharing on POSIX (see src/share.h): a share
 * names the source's descriptor and process, for pidfd_getfd (Linux 5.6
 * and later); over a channel the descriptor itself travels as SCM_RIGHTS
 * ancillary data of an AF_UNIX stream.
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* MSG_CMSG_CLOEXEC, syscall() */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#  include <sys/syscall.h>
#endif

#include "share.h"

#ifndef MSG_NOSIGNAL
#  define MSG_NOSIGNAL 0 /* SO_NOSIGPIPE on the channel instead */
#endif
#ifndef MSG_CMSG_CLOEXEC
#  define MSG_CMSG_CLOEXEC 0 /* FD_CLOEXEC set after the fact */
#endif

#define MAX_FDS 4 /* room for descriptors that came uninvited, to close */

const unsigned pier__share_os = PIER__SHARE_OS_POSIX;
const int pier__share_passes_handle = 1;

uint64_t pier__share_self(void) { return (uint64_t)getpid(); }

int pier__share_describe(pier_os_socket h, unsigned long pid,
                         pier__share_hdr *hdr, unsigned char *info,
                         size_t cap) {
  (void)info;
  (void)cap;
  if (pid > INT_MAX)
    return pier__bad("pier_socket_share",
                     "pid %lu is above INT_MAX (no such pid_t)", pid);
  hdr->os = PIER__SHARE_OS_POSIX;
  hdr->fd = h;
  hdr->info_len = 0;
  return 0;
}

#if defined(__linux__) && defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
/* A pidfd call's errno as pier says it: ENOSYS is a kernel (or sandbox)
   without the call, EPERM the ptrace access check (or a seccomp policy). */
static int pidfd_error(int e) {
  switch (e) {
  case ENOSYS: return PIER_EOPNOTSUPP;
  case EPERM: return PIER_EACCES;
  case ESRCH: return PIER_ENOENT;
  default: return pier_spi_os_error(e);
  }
}

int pier__share_take(const pier__share_hdr *hdr, const unsigned char *info,
                     pier_os_socket *out) {
  (void)info;
  if (hdr->source_pid == 0 || hdr->source_pid > INT_MAX || hdr->fd < 0)
    return pier__bad("pier_socket_from_share",
                     "the share names no valid source process or descriptor");
  int pfd = (int)syscall(SYS_pidfd_open, (pid_t)hdr->source_pid, 0);
  if (pfd < 0) return pidfd_error(errno);
  /* The copy comes with FD_CLOEXEC set. */
  int fd = (int)syscall(SYS_pidfd_getfd, pfd, hdr->fd, 0);
  int e = errno;
  close(pfd);
  if (fd < 0) return pidfd_error(e);
  *out = fd;
  return 0;
}
#else
int pier__share_take(const pier__share_hdr *hdr, const unsigned char *info,
                     pier_os_socket *out) {
  (void)hdr;
  (void)info;
  (void)out;
  return PIER_EOPNOTSUPP; /* no way to take a descriptor from a process */
}
#endif

int pier__share_kind(pier_os_socket h, int *family, int *socktype) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss, tlen = sizeof *socktype;
  memset(&ss, 0, sizeof ss);
  if (getsockname(h, (struct sockaddr *)&ss, &len) != 0 ||
      getsockopt(h, SOL_SOCKET, SO_TYPE, socktype, &tlen) != 0)
    return PIER_ENOTSOCK;
  *family = ss.ss_family;
  return 0;
}

void pier__share_close(pier_os_socket h) { close(h); }

/* ------------------------------------------------------------------ */
/* the channel                                                         */
/* ------------------------------------------------------------------ */

/* Wait until ch is ready for ev, or the deadline has passed. */
static int chan_wait(int ch, short ev, uint64_t deadline) {
  for (;;) {
    int ms = -1;
    if (deadline) {
      uint64_t now = pier__hrtime_ms();
      uint64_t left = now >= deadline ? 0 : deadline - now;
      ms = left > INT_MAX ? INT_MAX : (int)left;
    }
    struct pollfd p;
    p.fd = ch;
    p.events = ev;
    p.revents = 0;
    int n = poll(&p, 1, ms);
    if (n > 0) return 0; /* also hang-up or error: the call says which */
    if (n == 0) return PIER_ETIMEDOUT;
    if (errno != EINTR) return pier_spi_os_error(errno);
  }
}

static int chan_error(int e) {
  return e == EPIPE || e == ECONNRESET ? PIER_ECONNRESET : pier_spi_os_error(e);
}

/* SCM_RIGHTS travels on AF_UNIX only; say so before sending anything. */
static int chan_check(int ch) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(ch, (struct sockaddr *)&ss, &len) != 0)
    return pier_spi_os_error(errno);
  if (ss.ss_family != AF_UNIX) return PIER_EOPNOTSUPP;
#ifdef SO_NOSIGPIPE
  int one = 1; /* where MSG_NOSIGNAL is missing */
  setsockopt(ch, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  return 0;
}

int pier__chan_send(pier_os_socket ch, const void *buf, size_t len,
                    pier_os_socket attach, uint64_t deadline) {
  union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } ctl;
  size_t done = 0;
  int rc = attach >= 0 ? chan_check(ch) : 0;
  while (rc == 0 && done < len) {
    if ((rc = chan_wait(ch, POLLOUT, deadline)) != 0) break;
    struct iovec v;
    struct msghdr m;
    memset(&m, 0, sizeof m);
    v.iov_base = (char *)buf + done;
    v.iov_len = len - done;
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    if (attach >= 0 && done == 0) { /* with the first bytes that leave */
      memset(&ctl, 0, sizeof ctl);
      m.msg_control = ctl.b;
      m.msg_controllen = sizeof ctl.b;
      struct cmsghdr *c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &attach, sizeof(int));
    }
    ssize_t n = sendmsg(ch, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) done += (size_t)n;
    else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
      rc = chan_error(errno);
  }
  return rc;
}

/* Keep the first descriptor that arrived (in *keep), close the others. */
static void collect_fds(struct msghdr *m, int *keep) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*keep >= 0) {
        close(fd);
        continue;
      }
      if (MSG_CMSG_CLOEXEC == 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
      *keep = fd;
    }
  }
}

int pier__chan_recv(pier_os_socket ch, void *buf, size_t len,
                    pier_os_socket *attached, uint64_t deadline) {
  union { struct cmsghdr h; char b[CMSG_SPACE(MAX_FDS * sizeof(int))]; } ctl;
  size_t done = 0;
  int rc = 0, fd = -1;
  while (rc == 0 && done < len) {
    if ((rc = chan_wait(ch, POLLIN, deadline)) != 0) break;
    struct iovec v;
    struct msghdr m;
    memset(&m, 0, sizeof m);
    v.iov_base = (char *)buf + done;
    v.iov_len = len - done;
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    m.msg_control = ctl.b;
    m.msg_controllen = sizeof ctl.b;
    ssize_t n = recvmsg(ch, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n > 0) {
      done += (size_t)n;
      collect_fds(&m, &fd);
    } else if (n == 0) {
      rc = PIER_ECONNRESET; /* the other end closed */
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      rc = chan_error(errno);
    }
  }
  if ((rc || !attached) && fd >= 0) {
    close(fd);
    fd = -1;
  }
  if (attached) *attached = fd;
  return rc;
}
