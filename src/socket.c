/* SPDX-License-Identifier: MIT */
/*
 * src/socket.c - socket objects: open, adopt, accepted sockets, the
 * synchronous calls (bind, listen, shutdown, names, ioctl) and close,
 * whose callback runs once every pending operation has been delivered.
 *
 * Section map
 *   1. create / adopt / accepted
 *   2. synchronous calls
 *   3. blocking calls, close and reaping
 *   4. accessors and SPI services
 */
#include <string.h>

#include "internal.h"

#define SOCK_ALIGN 16
#define ROUND_UP(n) (((n) + SOCK_ALIGN - 1) & ~(size_t)(SOCK_ALIGN - 1))

/* ------------------------------------------------------------------ */
/* 1. create / adopt / accepted                                        */
/* ------------------------------------------------------------------ */

int pier__socket_create(pier_loop *loop, const pier_provider *prov,
                        const pier_protocol_info *proto, pier_os_socket h,
                        pier_socket *lower, unsigned flags, pier_socket **out) {
  pier_socket *s = pier__calloc(1, ROUND_UP(sizeof *s) + prov->socket_size);
  if (!s) return PIER_ENOMEM;
  s->loop = loop;
  s->prov = prov;
  s->proto = proto;
  s->handle = PIER_INVALID_SOCKET;
  s->state = (char *)s + ROUND_UP(sizeof *s);
  if (flags & PIER_SOCK_NONBLOCK) s->flags |= PIER__S_NONBLOCK;
  s->preposted = PIER_SPI_PREPOSTED_DEFAULT;
  s->lower = lower;
  int rc = prov->open(s, proto, h);
  if (rc) {
    pier__free(s);
    return rc;
  }
  loop->nsockets++;
  *out = s;
  return 0;
}

int pier_socket_open(pier_loop *loop, const pier_protocol_info *proto,
                     unsigned flags, pier_socket **out) {
  if (!loop || !proto || !out || (flags & ~PIER_SOCK_NONBLOCK))
    return pier__bad(__func__, "%s", !loop ? "loop is NULL"
                     : !proto ? "proto is NULL (pier_protocol_find returns "
                                "NULL for a name not in the catalog; "
                                "pier_protocols() lists them)"
                     : !out ? "out is NULL"
                     : "flags has bits other than PIER_SOCK_NONBLOCK");
  *out = NULL;
  /* Only catalog entries: a copied struct would outlive nothing useful. */
  const pier_protocol_info *entry = pier_protocol_find(proto->name);
  if (entry != proto)
    return pier__bad(__func__,
                     "proto is not an entry of the catalog (pass what "
                     "pier_protocol_find or pier_protocols returns, not a "
                     "copy)");
  int rc = pier__loop_usable(__func__, loop);
  if (rc) return rc;
  const pier_provider *layer;
  const pier_protocol_info *base;
  pier_spi_protocol_layer(proto, &layer, &base);
  if (layer) { /* open what lies below, then the layer over it */
    pier_socket *lower = NULL;
    if (!base)
      return pier__bad(__func__, "layered entry %s has no base protocol",
                       proto->name);
    if ((rc = pier_socket_open(loop, base, flags, &lower)) != 0) return rc;
    rc = pier_spi_layer_open(layer, proto, lower, NULL, out);
    if (rc) pier_close(lower, NULL);
    return rc;
  }
  pier__lock(loop);
  rc = pier__socket_create(loop, loop->prov, proto, PIER_INVALID_SOCKET,
                           NULL, flags, out);
  pier__unlock(loop);
  return rc;
}

/* The family and type of an OS socket (bound or not). */
static int socket_kind(pier_os_socket h, int *family, int *type) {
#ifdef _WIN32
  WSAPROTOCOL_INFOW info;
  int len = sizeof info;
  if (getsockopt(h, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&info, &len) != 0)
    return -1;
  *family = info.iAddressFamily;
  *type = info.iSocketType;
  return 0;
#else
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(h, (struct sockaddr *)&ss, &len) != 0) return -1;
  socklen_t tlen = sizeof *type;
  if (getsockopt(h, SOL_SOCKET, SO_TYPE, (char *)type, &tlen) != 0) return -1;
  *family = ss.ss_family;
  return 0;
#endif
}

/* Is h already listening (so pier_accept works on it)? */
static int is_listening(pier_os_socket h) {
  int on = 0;
#ifdef _WIN32
  int len = sizeof on;
#else
  socklen_t len = sizeof on;
#endif
  return getsockopt(h, SOL_SOCKET, SO_ACCEPTCONN, (char *)&on, &len) == 0 &&
         on != 0;
}

int pier_socket_adopt(pier_loop *loop, pier_os_socket h, unsigned flags,
                      pier_socket **out) {
  if (!loop || !out || h == PIER_INVALID_SOCKET ||
      (flags & ~PIER_SOCK_NONBLOCK))
    return pier__bad(__func__, "%s", !loop ? "loop is NULL"
                     : !out ? "out is NULL"
                     : h == PIER_INVALID_SOCKET ? "handle is PIER_INVALID_SOCKET"
                     : "flags has bits other than PIER_SOCK_NONBLOCK");
  *out = NULL;
  int rc = pier__loop_usable(__func__, loop);
  if (rc) return rc;
  int family = 0, type = 0;
  if (socket_kind(h, &family, &type) != 0) return PIER_ENOTSOCK;
  const pier_protocol_info *proto = pier__protocol_for(family, type);
  if (!proto) return PIER_EAFNOSUPPORT;
  pier__lock(loop);
  rc = pier__socket_create(loop, loop->prov, proto, h, NULL, flags, out);
  if (rc == 0 && is_listening(h)) PIER__SSET(*out, PIER__S_LISTENING);
  pier__unlock(loop);
  return rc;
}

int pier_spi_accepted(pier_socket *l, pier_os_socket h, pier_socket **out) {
  unsigned flags = (PIER__SFLAGS(l) & PIER__S_NONBLOCK) ? PIER_SOCK_NONBLOCK : 0;
  /* Also called by blocking accepts, outside any slot: take the lock. */
  pier__lock(l->loop);
  int rc = pier__socket_create(l->loop, l->prov, l->proto, h, NULL, flags,
                               out);
  if (rc == 0) {
    pier__qos_inherit(l, *out);
    pier__netev_inherit(l, *out);
  }
  pier__unlock(l->loop);
  return rc;
}

/* ------------------------------------------------------------------ */
/* 2. synchronous calls                                                */
/* ------------------------------------------------------------------ */

int pier__socket_usable(const char *fn, const pier_socket *s) {
  if (!s) return pier__bad(fn, "the socket (first argument) is NULL");
  if (PIER__SFLAGS(s) & PIER__S_CLOSING) return PIER_EBADF;
  return 0;
}

int pier__addr_check(const char *fn, const struct sockaddr *addr, size_t len) {
  if (!addr || len < sizeof addr->sa_family ||
      len > sizeof(struct sockaddr_storage))
    return !addr ? pier__bad(fn, "addr is NULL")
                 : pier__bad(fn, "addrlen %lu is outside %lu..%lu",
                             (unsigned long)len,
                             (unsigned long)sizeof addr->sa_family,
                             (unsigned long)sizeof(struct sockaddr_storage));
  switch (addr->sa_family) {
  case AF_INET: return len >= sizeof(struct sockaddr_in) ? 0 : pier__bad(
      fn, "addrlen %lu is shorter than a sockaddr_in (%lu)", (unsigned long)len,
      (unsigned long)sizeof(struct sockaddr_in));
  case AF_INET6: return len >= sizeof(struct sockaddr_in6) ? 0 : pier__bad(
      fn, "addrlen %lu is shorter than a sockaddr_in6 (%lu)",
      (unsigned long)len, (unsigned long)sizeof(struct sockaddr_in6));
  default: return 0; /* AF_UNIX and others: the OS judges the rest */
  }
}

/* Lock s's loop and check s can take a call; 0 with the lock held. */
static int enter(const char *fn, pier_socket *s) {
  if (!s) return pier__bad(fn, "the socket (first argument) is NULL");
  pier__lock(s->loop);
  int rc = pier__socket_usable(fn, s);
  if (rc) pier__unlock(s->loop);
  return rc;
}

static int leave(pier_socket *s, int rc) {
  pier__unlock(s->loop);
  return rc;
}

int pier_bind(pier_socket *s, const struct sockaddr *addr, size_t addrlen) {
  int rc = pier__addr_check(__func__, addr, addrlen);
  if (rc == 0) rc = enter(__func__, s);
  return rc ? rc : leave(s, s->prov->bind ? s->prov->bind(s, addr, addrlen)
                                                : PIER_EOPNOTSUPP);
}

int pier_listen(pier_socket *s, int backlog) {
  int rc = enter(__func__, s);
  if (rc) return rc;
  if (s->proto->caps & PIER_CAP_CONNECTIONLESS) return leave(s, PIER_EOPNOTSUPP);
  rc = s->prov->listen ? s->prov->listen(s, backlog <= 0 ? SOMAXCONN : backlog)
                       : PIER_EOPNOTSUPP;
  if (rc == 0) PIER__SSET(s, PIER__S_LISTENING);
  return leave(s, rc);
}

int pier_shutdown(pier_socket *s, int how) {
  if (how != PIER_SHUT_RD && how != PIER_SHUT_WR && how != PIER_SHUT_RDWR)
    return pier__bad(__func__, "how %d is not PIER_SHUT_RD, PIER_SHUT_WR or "
                     "PIER_SHUT_RDWR", how);
  int rc = enter(__func__, s);
  return rc ? rc : leave(s, s->prov->shutdown ? s->prov->shutdown(s, how)
                                                  : PIER_EOPNOTSUPP);
}

static int name_of(pier_socket *s, int peer, struct sockaddr_storage *addr,
                   size_t *len) {
  const char *fn = peer ? "pier_getpeername" : "pier_getsockname";
  if (!addr || !len || *len == 0)
    return pier__bad(fn, "%s", !addr ? "addr is NULL" : !len ? "len is NULL"
                     : "*len is 0");
  int rc = enter(fn, s);
  return rc ? rc : leave(s, s->prov->sockname
                                  ? s->prov->sockname(s, peer, addr, len)
                                  : PIER_EOPNOTSUPP);
}

int pier_getsockname(pier_socket *s, struct sockaddr_storage *addr, size_t *len) {
  return name_of(s, 0, addr, len);
}

int pier_getpeername(pier_socket *s, struct sockaddr_storage *addr, size_t *len) {
  return name_of(s, 1, addr, len);
}

int pier_ioctl(pier_socket *s, int cmd, void *arg) {
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  if (!arg) return pier__bad(__func__, "arg is NULL");
  switch (cmd) {
  case PIER_FIONBIO:
    if (*(int *)arg) PIER__SSET(s, PIER__S_NONBLOCK);
    else PIER__SCLEAR(s, PIER__S_NONBLOCK);
    return 0;
  case PIER_FIONREAD:
  case PIER_SIOCATMARK:
    if (!s->prov->ioctl) return PIER_EOPNOTSUPP;
    if ((rc = enter(__func__, s)) != 0) return rc;
    return leave(s, s->prov->ioctl(s, cmd, arg));
  default:
    return pier__bad(__func__, "cmd %d is not PIER_FIONBIO, PIER_FIONREAD or "
                     "PIER_SIOCATMARK", cmd);
  }
}

/* ------------------------------------------------------------------ */
/* 3. blocking calls, close and reaping                                */
/* ------------------------------------------------------------------ */

/*
 * Blocking calls run in their callers' threads, outside the core lock.
 * Each counts itself in s->blocked and notes s->cancel_seq before its
 * first attempt; pier_cancel_blocking and pier_close move cancel_seq on,
 * so a call sees a cancel whenever it lands (pier_spi_block_canceled),
 * and then ask the provider to wake the calls that wait.  A close marks
 * s->blocked itself (BLOCK_CLOSING), in one atomic step that also counts
 * the calls: a call that comes in after it backs out, and the close
 * leaves the OS socket to the last of those before it, which wakes the
 * loop to release it (pier__socket_reap_one).
 */
#define BLOCK_CLOSING (1 << 30)

/* The blocking calls this thread is in, innermost first. */
static PIER__TLS pier__block *this_thread_calls;

static int blocked_calls(pier_socket *s) {
  return pier__sc_load(&s->blocked) & ~BLOCK_CLOSING;
}

static void block_done(pier_socket *s) {
  int n = pier__sc_load(&s->blocked);
  while (n != (BLOCK_CLOSING | 1))
    if (__atomic_compare_exchange_n(&s->blocked, &n, n - 1, 0,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
      return;
  /* The last call a close waits for: leave under the core lock, so that
     the loop can free neither s nor itself before it is woken. */
  pier_loop *loop = s->loop;
  pier__lock(loop);
  pier__sc_add(&s->blocked, -1);
  loop->prov->loop_wake(loop);
  pier__unlock(loop);
}

int pier__socket_block_enter(pier_socket *s, pier__block *b) {
  b->s = s;
  b->seq = pier__sc_load(&s->cancel_seq);
  if (pier__sc_add(&s->blocked, 1) & BLOCK_CLOSING) {
    block_done(s);
    return PIER_EBADF;
  }
  b->outer = this_thread_calls;
  this_thread_calls = b;
  return 0;
}

void pier__socket_block_leave(pier_socket *s, pier__block *b) {
  this_thread_calls = b->outer;
  block_done(s);
}

int pier_spi_block_canceled(const pier_socket *s) {
  for (const pier__block *b = this_thread_calls; b; b = b->outer)
    if (b->s == s) return pier__sc_load(&s->cancel_seq) != b->seq;
  return 0;
}

/* Cancel the calls counted in s->blocked; 1 if there were any. */
static int cancel_blocked(pier_socket *s, int calls) {
  if (calls == 0) return 0;
  pier__sc_add(&s->cancel_seq, 1u);
  if (s->prov->cancel_blocking) s->prov->cancel_blocking(s); /* wake them */
  return 1;
}

int pier__socket_cancel_blocking(pier_socket *s) {
  return cancel_blocked(s, blocked_calls(s)) ? 0 : PIER_ENOENT;
}

static void provider_close(pier_socket *s) {
  PIER__SSET(s, PIER__S_PROV_CLOSING);
  s->prov->close(s);
}

int pier_close(pier_socket *s, pier_close_cb cb) {
  if (!s) return pier__bad(__func__, "the socket (first argument) is NULL");
  pier_loop *loop = s->loop;
  pier__lock(loop);
  if (PIER__SFLAGS(s) & PIER__S_CLOSING) {
    pier__unlock(loop);
    return PIER_EALREADY;
  }
  PIER__SSET(s, PIER__S_CLOSING);
  s->close_cb = cb;
  s->next_closing = loop->closing;
  loop->closing = s;
  /* Blocked threads still use the OS socket: cancel them, and release it
     only when the last has left (see pier__socket_reap_one). */
  int calls = pier__sc_or(&s->blocked, BLOCK_CLOSING) & ~BLOCK_CLOSING;
  if (!cancel_blocked(s, calls)) provider_close(s);
  pier__unlock(loop);
  return 0;
}

void pier_spi_closed(pier_socket *s) { PIER__SSET(s, PIER__S_PROV_CLOSED); }

/* 1 if reap_one has something to do for s. */
static int reapable(pier_socket *s) {
  unsigned f = PIER__SFLAGS(s);
  int blocked = blocked_calls(s);
  if (!(f & PIER__S_PROV_CLOSING)) return blocked == 0;
  return !s->pending && (f & PIER__S_PROV_CLOSED) && !(f & PIER__S_BUSY) &&
         blocked == 0;
}

int pier__sockets_reapable(pier_loop *loop) {
  for (pier_socket *s = loop->closing; s; s = s->next_closing)
    if (reapable(s)) return 1;
  return 0;
}

int pier__socket_reap_one(pier_loop *loop) {
  pier_socket **link = &loop->closing;
  while (*link) {
    pier_socket *s = *link;
    if (!(PIER__SFLAGS(s) & PIER__S_PROV_CLOSING) && blocked_calls(s) == 0)
      provider_close(s);
    unsigned f = PIER__SFLAGS(s);
    if (s->pending || !(f & PIER__S_PROV_CLOSED) || (f & PIER__S_BUSY) ||
        blocked_calls(s) > 0) {
      link = &s->next_closing;
      continue;
    }
    *link = s->next_closing;
    if (s->close_cb) {
      loop->active++;
      pier__unlock(loop);
      s->close_cb(s);
      pier__lock(loop);
      loop->active--;
    }
    loop->nsockets--;
    pier__netev_free(s);
    pier__free(s);
    pier__event_signal(loop, &loop->changed);
    return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* 4. accessors and SPI services                                       */
/* ------------------------------------------------------------------ */

pier_os_socket pier_socket_handle(const pier_socket *s) {
  return s ? s->handle : PIER_INVALID_SOCKET;
}

const pier_protocol_info *pier_socket_protocol(const pier_socket *s) {
  return s ? s->proto : NULL;
}

pier_loop *pier_socket_loop(const pier_socket *s) { return s ? s->loop : NULL; }

void pier_socket_set_data(pier_socket *s, void *data) {
  if (s) s->data = data;
}

void *pier_socket_get_data(const pier_socket *s) { return s ? s->data : NULL; }

void *pier_spi_socket_state(pier_socket *s) { return s->state; }

void pier_spi_set_handle(pier_socket *s, pier_os_socket h) { s->handle = h; }

int pier_spi_nonblocking(const pier_socket *s) {
  return (PIER__SFLAGS(s) & PIER__S_NONBLOCK) != 0;
}
