/* SPDX-License-Identifier: MIT */
/*
 * src/share.c - sharing a socket with another process (WSPDuplicate-
 * Socket): the pier_share format and its checks, the target's adoption of
 * the copy (listening state included), and the channel exchange of
 * pier_share_send / pier_share_recv.  What differs by OS is behind
 * src/share.h (share_posix.c, share_win.c).
 *
 * Section map
 *   1. the pier_share format
 *   2. pier_socket_share / pier_socket_from_share
 *   3. the channel: pier_share_send / pier_share_recv
 *
 * Format: a header of fixed little-endian fields, so that a share reads
 * the same in a 32-bit and a 64-bit process, then the OS description at
 * PIER__SHARE_INFO_OFF; unused bytes are zero; an FNV-1a checksum over
 * all PIER_SHARE_SIZE bytes (its own field taken as zero) catches bytes
 * damaged on the way.
 *
 *   0 "PSHR"   4 version   6 os   8 checksum   12 flags
 *   16 family  20 socktype 24 protocol  28 fd (POSIX)
 *   32 source pid (64 bits)  40 target pid (64 bits)  48 info length
 */
#include <string.h>

#include "share.h"

typedef char pier__share_info_fits[PIER__SHARE_INFO_OFF >= 52 ? 1 : -1];

/* ------------------------------------------------------------------ */
/* 1. the pier_share format                                            */
/* ------------------------------------------------------------------ */

static const unsigned char magic[4] = { 'P', 'S', 'H', 'R' };

enum { OFF_VERSION = 4, OFF_OS = 6, OFF_SUM = 8, OFF_FLAGS = 12,
       OFF_FAMILY = 16, OFF_TYPE = 20, OFF_PROTO = 24, OFF_FD = 28,
       OFF_SOURCE = 32, OFF_TARGET = 40, OFF_INFO_LEN = 48 };

static void put(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static uint32_t checksum(const unsigned char *b) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < PIER_SHARE_SIZE; i++) {
    unsigned char c = (i >= OFF_SUM && i < OFF_SUM + 4) ? 0 : b[i];
    h = (h ^ c) * 16777619u;
  }
  return h;
}

/* Write the header of h into b (the OS description is already there). */
static void encode(const pier__share_hdr *h, unsigned char *b) {
  memcpy(b, magic, sizeof magic);
  put(b + OFF_VERSION, h->version, 2);
  put(b + OFF_OS, h->os, 2);
  put(b + OFF_FLAGS, h->flags, 4);
  put(b + OFF_FAMILY, (uint32_t)h->family, 4);
  put(b + OFF_TYPE, (uint32_t)h->socktype, 4);
  put(b + OFF_PROTO, (uint32_t)h->protocol, 4);
  put(b + OFF_FD, (uint32_t)h->fd, 4);
  put(b + OFF_SOURCE, h->source_pid, 8);
  put(b + OFF_TARGET, h->target_pid, 8);
  put(b + OFF_INFO_LEN, h->info_len, 4);
  put(b + OFF_SUM, checksum(b), 4);
}

/* Read and check a share's header: 0, or PIER_EINVAL for bytes that are
   no intact share of this format. */
static int decode(const char *fn, const unsigned char *b, pier__share_hdr *h) {
  memset(h, 0, sizeof *h);
  if (memcmp(b, magic, sizeof magic) != 0)
    return pier__bad(fn, "the share does not start with pier's magic bytes");
  h->version = (unsigned)get(b + OFF_VERSION, 2);
  if (h->version != PIER__SHARE_VERSION)
    return pier__bad(fn,
                     "the share has format version %u, this library reads %u",
                     h->version, (unsigned)PIER__SHARE_VERSION);
  if (get(b + OFF_SUM, 4) != checksum(b))
    return pier__bad(fn, "the share's checksum does not match (damaged bytes)");
  h->os = (unsigned)get(b + OFF_OS, 2);
  h->flags = (unsigned)get(b + OFF_FLAGS, 4);
  h->family = (int)(uint32_t)get(b + OFF_FAMILY, 4);
  h->socktype = (int)(uint32_t)get(b + OFF_TYPE, 4);
  h->protocol = (int)(uint32_t)get(b + OFF_PROTO, 4);
  h->fd = (int)(uint32_t)get(b + OFF_FD, 4);
  h->source_pid = get(b + OFF_SOURCE, 8);
  h->target_pid = get(b + OFF_TARGET, 8);
  h->info_len = (size_t)get(b + OFF_INFO_LEN, 4);
  if (h->info_len > PIER__SHARE_INFO_CAP)
    return pier__bad(fn, "the share's info length %lu is above %lu",
                     (unsigned long)h->info_len,
                     (unsigned long)PIER__SHARE_INFO_CAP);
  return 0;
}

/* ------------------------------------------------------------------ */
/* 2. pier_socket_share / pier_socket_from_share                       */
/* ------------------------------------------------------------------ */

int pier_socket_share(pier_socket *s, unsigned long pid, pier_share *out) {
  if (!s || !out || pid == 0)
    return pier__bad(__func__, "%s", !s ? "the socket (first argument) is NULL"
                     : !out ? "out is NULL" : "pid is 0");
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  /* A layer's state (handshake, framing, TLS session) cannot travel. */
  if (s->lower) return PIER_EOPNOTSUPP;
  pier__share_hdr h;
  memset(&h, 0, sizeof h);
  h.version = PIER__SHARE_VERSION;
  h.flags = (PIER__SFLAGS(s) & PIER__S_LISTENING) ? PIER__SHARE_F_LISTENING : 0;
  h.family = s->proto->family;
  h.socktype = s->proto->socktype;
  h.protocol = s->proto->protocol;
  h.source_pid = pier__share_self();
  h.target_pid = pid;
  memset(out, 0, sizeof *out);
  rc = pier__share_describe(s->handle, pid, &h,
                            out->bytes + PIER__SHARE_INFO_OFF,
                            PIER__SHARE_INFO_CAP);
  if (rc) {
    memset(out, 0, sizeof *out);
    return rc;
  }
  encode(&h, out->bytes);
  return 0;
}

/* The target's checks, before anything is taken: a share of this OS,
   made for this process, of a kind the catalog has, and a usable loop. */
static int check_share(const char *fn, pier_loop *loop, const pier_share *sh,
                       pier__share_hdr *h) {
  int rc = decode(fn, sh->bytes, h);
  if (rc) return rc;
  if (h->os != pier__share_os || h->target_pid != pier__share_self())
    return pier__bad(fn, "the share was made %s",
                     h->os != pier__share_os ? "on another operating system"
                     : "for another process id");
  if (!pier__protocol_for(h->family, h->socktype)) return PIER_EAFNOSUPPORT;
  return pier__loop_usable(fn, loop);
}

/*
 * Wrap h, a copy now owned here, as a pier socket on loop - as
 * pier_socket_adopt does, under the core lock - listening if the source
 * was.  The copy must still be the socket described: a descriptor the
 * source closed (and maybe reused) is not.  h is closed on failure.
 */
static int adopt(pier_loop *loop, pier_os_socket h, const pier__share_hdr *hd,
                 unsigned flags, pier_socket **out) {
  int family = 0, type = 0;
  int rc = pier__share_kind(h, &family, &type);
  if (rc || family != hd->family || type != hd->socktype) rc = PIER_EBADF;
  if (rc == 0) {
    pier__lock(loop);
    rc = pier__socket_create(loop, loop->prov,
                             pier__protocol_for(family, type), h, NULL, flags,
                             out);
    if (rc == 0 && (hd->flags & PIER__SHARE_F_LISTENING))
      PIER__SSET(*out, PIER__S_LISTENING);
    pier__unlock(loop);
  }
  if (rc) {
    pier__share_close(h);
    *out = NULL;
  }
  return rc;
}

int pier_socket_from_share(pier_loop *loop, const pier_share *sh,
                           unsigned flags, pier_socket **out) {
  if (!loop || !sh || !out || (flags & ~PIER_SOCK_NONBLOCK))
    return pier__bad(__func__, "%s", !loop ? "loop is NULL" : !sh ? "sh is NULL"
                     : !out ? "out is NULL"
                     : "flags has bits other than PIER_SOCK_NONBLOCK");
  *out = NULL;
  pier__share_hdr h;
  int rc = check_share(__func__, loop, sh, &h);
  if (rc) return rc;
  pier_os_socket copy = PIER_INVALID_SOCKET;
  rc = pier__share_take(&h, sh->bytes + PIER__SHARE_INFO_OFF, &copy);
  return rc ? rc : adopt(loop, copy, &h, flags, out);
}

/* ------------------------------------------------------------------ */
/* 3. the channel                                                      */
/* ------------------------------------------------------------------ */

/* The answer byte: 0, or the magnitude of the target's PIER_E* code. */
static unsigned char answer_of(int rc) {
  return (unsigned char)(rc == 0 ? 0 : -rc <= 255 ? -rc : -PIER_EUNKNOWN);
}

/* pier__hrtime_ms() deadline for timeout_ms; 0 (none) for -1. */
static uint64_t deadline_of(int timeout_ms) {
  if (timeout_ms < 0) return 0;
  uint64_t d = pier__hrtime_ms() + (uint64_t)timeout_ms;
  return d ? d : 1;
}

int pier_share_send(pier_os_socket ch, pier_socket *s, unsigned long pid,
                    int timeout_ms) {
  if (ch == PIER_INVALID_SOCKET || !s || timeout_ms < -1)
    return pier__bad(__func__, "%s",
                     ch == PIER_INVALID_SOCKET ? "ch is PIER_INVALID_SOCKET"
                     : !s ? "the socket (first argument) is NULL"
                     : "timeout_ms is below -1");
  uint64_t deadline = deadline_of(timeout_ms);
  pier_share sh;
  int rc = pier_socket_share(s, pid, &sh);
  if (rc) return rc;
  pier_os_socket attach =
      pier__share_passes_handle ? s->handle : PIER_INVALID_SOCKET;
  rc = pier__chan_send(ch, sh.bytes, sizeof sh.bytes, attach, deadline);
  unsigned char answer = 0;
  if (rc == 0) rc = pier__chan_recv(ch, &answer, 1, NULL, deadline);
  if (rc) return rc;
  return answer == 0 ? 0 : -(int)answer;
}

/* The target's side once the share's bytes (and maybe a handle) are in;
   a handle that came with refused bytes is closed. */
static int take_received(pier_loop *loop, const pier_share *sh,
                         pier_os_socket h, unsigned flags, pier_socket **out) {
  pier__share_hdr hd;
  int rc = check_share("pier_share_recv", loop, sh, &hd);
  if (rc) {
    if (h != PIER_INVALID_SOCKET) pier__share_close(h);
    return rc;
  }
  if (h == PIER_INVALID_SOCKET) {
    /* POSIX: the descriptor travels with the bytes, or not at all. */
    if (pier__share_passes_handle) return PIER_EPROTO;
    rc = pier__share_take(&hd, sh->bytes + PIER__SHARE_INFO_OFF, &h);
    if (rc) return rc;
  }
  return adopt(loop, h, &hd, flags, out);
}

int pier_share_recv(pier_loop *loop, pier_os_socket ch, unsigned flags,
                    int timeout_ms, pier_socket **out) {
  if (!loop || ch == PIER_INVALID_SOCKET || !out ||
      (flags & ~PIER_SOCK_NONBLOCK) || timeout_ms < -1)
    return pier__bad(__func__, "%s", !loop ? "loop is NULL"
                     : ch == PIER_INVALID_SOCKET ? "ch is PIER_INVALID_SOCKET"
                     : !out ? "out is NULL"
                     : timeout_ms < -1 ? "timeout_ms is below -1"
                     : "flags has bits other than PIER_SOCK_NONBLOCK");
  *out = NULL;
  uint64_t deadline = deadline_of(timeout_ms);
  pier_share sh;
  pier_os_socket h = PIER_INVALID_SOCKET;
  int rc = pier__chan_recv(ch, sh.bytes, sizeof sh.bytes, &h, deadline);
  if (rc) return rc;
  rc = take_received(loop, &sh, h, flags, out);
  /* The sender waits for this; if it cannot be told, the copy is still
     good here, and the sender learns of a timeout or a closed channel. */
  unsigned char answer = answer_of(rc);
  pier__chan_send(ch, &answer, 1, PIER_INVALID_SOCKET, deadline);
  return rc;
}
