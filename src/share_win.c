/* SPDX-License-Identifier: MIT */
/*
 * src/share_win.c - socket sharing on Windows (see src/share.h): a share
 * carries the WSAPROTOCOL_INFOW of WSADuplicateSocketW, from which the
 * target creates its copy with WSASocketW(FROM_PROTOCOL_INFO); a channel
 * carries only those bytes.
 *
 * The copy shares the source's file object, and with it the source's
 * completion port: the iocp provider finds it cannot tie the copy to its
 * own port and runs it "evented" (backends/iocp/evented.c).
 */
#include <string.h>

#include "share.h"

typedef char pier__share_info_fits_win[sizeof(WSAPROTOCOL_INFOW) <=
                                               PIER__SHARE_INFO_CAP ? 1 : -1];

const unsigned pier__share_os = PIER__SHARE_OS_WINDOWS;
const int pier__share_passes_handle = 0;

uint64_t pier__share_self(void) { return (uint64_t)GetCurrentProcessId(); }

int pier__share_describe(pier_os_socket h, unsigned long pid,
                         pier__share_hdr *hdr, unsigned char *info,
                         size_t cap) {
  WSAPROTOCOL_INFOW pi;
  (void)cap; /* checked at compile time above */
  memset(&pi, 0, sizeof pi);
  if (WSADuplicateSocketW(h, (DWORD)pid, &pi) != 0)
    return pier_spi_os_error(WSAGetLastError());
  memcpy(info, &pi, sizeof pi);
  hdr->os = PIER__SHARE_OS_WINDOWS;
  hdr->fd = -1;
  hdr->info_len = sizeof pi;
  return 0;
}

int pier__share_take(const pier__share_hdr *hdr, const unsigned char *info,
                     pier_os_socket *out) {
  WSAPROTOCOL_INFOW pi;
  if (hdr->info_len != sizeof pi)
    return pier__bad("pier_socket_from_share",
                     "the share's info length %lu is not a WSAPROTOCOL_INFOW's",
                     (unsigned long)hdr->info_len);
  memcpy(&pi, info, sizeof pi);
  SOCKET s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
                        FROM_PROTOCOL_INFO, &pi, 0,
                        WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) return pier_spi_os_error(WSAGetLastError());
  *out = s;
  return 0;
}

int pier__share_kind(pier_os_socket h, int *family, int *socktype) {
  WSAPROTOCOL_INFOW pi;
  int len = sizeof pi;
  if (getsockopt(h, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&pi, &len) != 0)
    return PIER_ENOTSOCK;
  *family = pi.iAddressFamily;
  *socktype = pi.iSocketType;
  return 0;
}

void pier__share_close(pier_os_socket h) { closesocket(h); }

/* ------------------------------------------------------------------ */
/* the channel                                                         */
/* ------------------------------------------------------------------ */

/* Wait until ch is ready to read (or write), or the deadline has passed. */
static int chan_wait(SOCKET ch, int writing, uint64_t deadline) {
  fd_set set, ex;
  struct timeval tv, *tp = NULL;
  FD_ZERO(&set);
  FD_ZERO(&ex);
  FD_SET(ch, &set);
  FD_SET(ch, &ex); /* a reset shows here */
  if (deadline) {
    uint64_t now = pier__hrtime_ms();
    uint64_t left = now >= deadline ? 0 : deadline - now;
    if (left > 0x7fffffff) left = 0x7fffffff;
    tv.tv_sec = (long)(left / 1000);
    tv.tv_usec = (long)(left % 1000) * 1000;
    tp = &tv;
  }
  int n = select(0, writing ? NULL : &set, writing ? &set : NULL, &ex, tp);
  if (n > 0) return 0;
  if (n == 0) return PIER_ETIMEDOUT;
  return pier_spi_os_error(WSAGetLastError());
}

static int chan_error(int e) {
  return e == WSAECONNRESET || e == WSAECONNABORTED || e == WSAESHUTDOWN
             ? PIER_ECONNRESET
             : pier_spi_os_error(e);
}

/* One send or recv of what is left; the channel may block or not. */
static int chan_io(SOCKET ch, char *buf, size_t len, int writing,
                   uint64_t deadline) {
  size_t done = 0;
  while (done < len) {
    int rc = chan_wait(ch, writing, deadline);
    if (rc) return rc;
    int want = len - done > 0x10000 ? 0x10000 : (int)(len - done);
    int n = writing ? send(ch, buf + done, want, 0)
                    : recv(ch, buf + done, want, 0);
    if (n > 0) done += (size_t)n;
    else if (n == 0 && !writing) return PIER_ECONNRESET; /* the end closed */
    else if (n < 0 && WSAGetLastError() != WSAEWOULDBLOCK)
      return chan_error(WSAGetLastError());
  }
  return 0;
}

int pier__chan_send(pier_os_socket ch, const void *buf, size_t len,
                    pier_os_socket attach, uint64_t deadline) {
  (void)attach; /* the share names the copy: nothing travels beside it */
  return chan_io(ch, (char *)(uintptr_t)buf, len, 1, deadline);
}

int pier__chan_recv(pier_os_socket ch, void *buf, size_t len,
                    pier_os_socket *attached, uint64_t deadline) {
  if (attached) *attached = PIER_INVALID_SOCKET;
  return chan_io(ch, buf, len, 0, deadline);
}
