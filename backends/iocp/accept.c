/* SPDX-License-Identifier: MIT */
/*
 * backends/iocp/accept.c - accepting on Windows, DESIGN.md section 3.1.
 *
 * A listener settles on one way at its first pier_accept:
 *   - WSAAccept (IOCP_ACCEPT_WSA), when that accept has a condition
 *     function or SO_CONDITIONAL_ACCEPT could be set at listen time.  The
 *     listener's FD_ACCEPT event (WSAEventSelect) is waited on by the
 *     thread pool, which posts a "kick" packet; the loop then calls
 *     WSAAccept with pier's condition trampoline.  Winsock answers CF_DEFER
 *     with WSATRY_AGAIN and keeps the request at the head; pier then holds
 *     the listener until the application calls pier_accept again.  Where
 *     SO_CONDITIONAL_ACCEPT is on (not under Wine), a rejected caller never
 *     even completes its handshake.
 *   - pre-posted AcceptEx (IOCP_ACCEPT_EX), the fast path with no
 *     condition: `preposted` slots are kept posted; each completed slot
 *     waits in a FIFO for an accept op.  A condition given later on such a
 *     listener decides after the fact (REJECT closes with a reset, DEFER
 *     holds the slot at the head), as on POSIX.
 *   - accept-first, AcceptEx with a receive buffer (a layer asked for it
 *     with PIER_SO_ACCEPT_FIRST and accepts with
 *     pier_accept_first): a slot completes only when the caller has
 *     sent its first bytes, which come with the accept.  A caller that
 *     connects and stays silent would hold its slot for ever, so once a
 *     second the slots are asked for SO_CONNECT_TIME and a caller silent
 *     for longer than the layer's limit is closed and its slot posted
 *     again.  IOCP_PLAIN_SLOTS slots more take no first bytes and
 *     complete at the connection (op->bytes 0), so however many callers
 *     sit silent in the others, the listener goes on taking callers (the
 *     layer above bounds its handshakes, doc/semantics.md).  Such a
 *     listener does not set SO_CONDITIONAL_ACCEPT (the layer decides after
 *     reading the request).
 * A shared copy of a listener (evented.c) always takes WSAAccept: its
 * AcceptEx calls would take connections even while the application is not
 * accepting, away from the other process.  And it must not WSAEventSelect:
 * a registration belongs to the socket, not to the copy (WSADuplicateSocket
 * documents this), so it would silently cancel the source's.  It polls
 * instead - a waitable timer kicks it every SHARED_POLL_MS, only while
 * accepts are waiting.
 */
#include <string.h>

#include "iocp.h"

#define ADDR_SPACE ((DWORD)(sizeof(struct sockaddr_storage) + 16))
#define RUN_LIMIT 64 /* requests handled per kick before yielding */
#define SHARED_POLL_MS 10 /* a shared listener's accept poll */
#define RETRY_MS 100 /* out of sockets: the next try */

static void reset_close(SOCKET s) {
  struct linger l;
  l.l_onoff = 1;
  l.l_linger = 0;
  setsockopt(s, SOL_SOCKET, SO_LINGER, (const char *)&l, sizeof l);
  closesocket(s);
}

/* Hand an accepted OS socket to the op as a new pier socket. */
static void take(iocp_sock *is, pier_op *op, SOCKET as) {
  pier_socket *ns;
  int rc = pier_spi_accepted(is->s, as, &ns);
  if (rc) {
    reset_close(as);
  } else {
    op->accepted = ns;
  }
  pier_spi_complete(op, rc);
}

static void fail_one(iocp_sock *is, int err) {
  pier_op *op = pier_opq_pop(&is->acceptq);
  if (op) pier_spi_complete(op, pier_spi_os_error(err));
}

/*
 * Out of sockets or buffers (WSAEMFILE, WSAENOBUFS): no accept can be
 * made now, and trying again at once would spin.  The listener tries
 * again RETRY_MS later, from the loop (the timer only posts a kick).
 */
static void CALLBACK retry_tick(PVOID ctx, BOOLEAN fired) {
  iocp_sock *is = ctx;
  (void)fired;
  InterlockedExchange(&is->retry_fired, 1);
  pier__iocp_post_kick(is);
}

static void retry_later(iocp_sock *is, int rc) {
  if (is->retry_timer || is->closing) return;
  pier_spi_log(PIER_LOG_WARN, "listener: no socket to accept with (%s): "
               "trying again in %d ms", pier_strerror(rc), RETRY_MS);
  InterlockedExchange(&is->retry_fired, 0);
  if (!CreateTimerQueueTimer(&is->retry_timer, NULL, retry_tick, is, RETRY_MS,
                             0, WT_EXECUTEONLYONCE))
    is->retry_timer = NULL;
}

static void retry_cancel(iocp_sock *is) {
  if (!is->retry_timer) return;
  DeleteTimerQueueTimer(NULL, is->retry_timer, INVALID_HANDLE_VALUE); /* waits */
  is->retry_timer = NULL;
}

/* 1 while a retry is waiting for its time. */
static int retry_pending(iocp_sock *is) {
  if (!is->retry_timer) return 0;
  if (!InterlockedExchange(&is->retry_fired, 0)) return 1;
  retry_cancel(is);
  return 0;
}

int pier__iocp_listen(iocp_sock *is, int backlog) {
  BOOL on = TRUE;
  /* Decide before the handshake where the OS can (not Wine: detected). */
  if (!is->first_ms &&
      setsockopt(is->sock, SOL_SOCKET, SO_CONDITIONAL_ACCEPT, (const char *)&on,
                 sizeof on) == 0)
    is->conditional = 1;
  if (listen(is->sock, backlog) != 0) return pier_spi_os_error(WSAGetLastError());
  return 0;
}

/* ------------------------------------------------------------------ */
/* the condition trampoline                                            */
/* ------------------------------------------------------------------ */

static int still_pending(const pier_op *op) {
  return __atomic_load_n(&op->pier__r.state, __ATOMIC_ACQUIRE) ==
         PIER_OPS_PENDING;
}

/*
 * The application's condition function, which may re-enter pier
 * (doc/semantics.md, "Re-entry from a condition function"): while it
 * runs, a close of the listener leaves the OS socket and the slots in
 * place (in_cond); the caller finishes that close once it is safe.
 */
static int call_condition(iocp_sock *is, pier_op *op, pier_accept_info *info) {
  is->in_cond++;
  int cf = op->pier__r.cond(info, op->pier__r.cond_ctx);
  is->in_cond--;
  return cf;
}

int CALLBACK pier__iocp_condition(LPWSABUF caller_id, LPWSABUF caller_data,
                                  LPQOS sqos, LPQOS gqos, LPWSABUF callee_id,
                                  LPWSABUF callee_data, GROUP *g,
                                  DWORD_PTR ctx) {
  pier_op *op = (pier_op *)ctx;
  pier_accept_info info;
  memset(&info, 0, sizeof info);
  if (caller_id) {
    info.caller = (const struct sockaddr *)caller_id->buf;
    info.caller_len = caller_id->len;
  }
  struct sockaddr_storage local;
  int family = pier_socket_protocol(op->socket)->family;
  size_t need = family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in);
  if (callee_id && callee_id->buf && callee_id->len >= need &&
      ((const struct sockaddr *)callee_id->buf)->sa_family == family) {
    info.local = (const struct sockaddr *)callee_id->buf;
    info.local_len = callee_id->len;
  } else { /* Wine does not fill the callee's address: the listener's */
    int llen = sizeof local;
    memset(&local, 0, sizeof local);
    if (getsockname(pier_socket_handle(op->socket), (struct sockaddr *)&local,
                    &llen) == 0) {
      info.local = (const struct sockaddr *)&local;
      info.local_len = (size_t)llen;
    }
  }
  if (caller_data && caller_data->buf && caller_data->len) {
    info.caller_data = caller_data->buf;
    info.caller_data_len = caller_data->len;
  }
  if (callee_data && callee_data->buf) {
    info.callee_data = callee_data->buf;
    info.callee_data_cap = callee_data->len;
  }
  iocp_sock *is = iocp_sock_of(op->socket);
  int cf = call_condition(is, op, &info);
  if (callee_data && info.callee_data_len <= info.callee_data_cap)
    callee_data->len = (ULONG)info.callee_data_len;
  /* Re-entered pier: a listener that closed refuses the caller; an op that
     completed meanwhile (cancelled) voids the verdict, and Winsock keeps
     the request at the head for the next accept. */
  if (is->closing) return CF_REJECT;
  if (!still_pending(op)) return CF_DEFER;
  if (cf == PIER_CF_ACCEPT) return CF_ACCEPT;
  if (cf == PIER_CF_DEFER) return CF_DEFER;
  if (cf != PIER_CF_REJECT)
    pier_spi_log(PIER_LOG_WARN, "condition function returned %d; rejecting", cf);
  return CF_REJECT;
}

/* ------------------------------------------------------------------ */
/* WSAAccept                                                           */
/* ------------------------------------------------------------------ */

static void CALLBACK on_accept_event(PVOID ctx, BOOLEAN timed_out) {
  pier__iocp_post_kick((iocp_sock *)ctx);
}

/* A shared listener's next look, SHARED_POLL_MS from now. */
static void poll_later(iocp_sock *is) {
  LARGE_INTEGER due;
  due.QuadPart = -(LONGLONG)SHARED_POLL_MS * 10000; /* relative, 100 ns */
  SetWaitableTimer(is->accept_event, &due, 0, NULL, NULL, FALSE);
}

static int start_wsa(iocp_sock *is) {
  is->accept_event = is->evented ? CreateWaitableTimerW(NULL, FALSE, NULL)
                                 : CreateEventW(NULL, FALSE, FALSE, NULL);
  if (!is->accept_event) return pier_spi_os_error((int)GetLastError());
  if ((!is->evented &&
       WSAEventSelect(is->sock, is->accept_event, FD_ACCEPT) != 0) ||
      !RegisterWaitForSingleObject(&is->accept_wait, is->accept_event,
                                   on_accept_event, is, INFINITE,
                                   WT_EXECUTEINWAITTHREAD)) {
    int err = WSAGetLastError() ? WSAGetLastError() : (int)GetLastError();
    if (!is->evented) WSAEventSelect(is->sock, NULL, 0);
    CloseHandle(is->accept_event);
    is->accept_event = NULL;
    is->accept_wait = NULL;
    return pier_spi_os_error(err);
  }
  return 0;
}

static void run_wsa(iocp_sock *is) {
  if (retry_pending(is)) return;
  for (int n = 0; n < RUN_LIMIT && !is->held && is->acceptq.head; n++) {
    pier_op *op = is->acceptq.head;
    struct sockaddr_storage a;
    int alen = sizeof a;
    SOCKET ns = WSAAccept(is->sock, (struct sockaddr *)&a, &alen,
                          op->pier__r.cond ? pier__iocp_condition : NULL,
                          (DWORD_PTR)op);
    int err = ns == INVALID_SOCKET ? WSAGetLastError() : 0;
    if (is->closing) { /* the condition function closed the listener */
      if (ns != INVALID_SOCKET) reset_close(ns);
      pier__iocp_close_os(is);
      return;
    }
    if (op->pier__r.cond && !still_pending(op)) { /* cancelled meanwhile */
      if (ns != INVALID_SOCKET) reset_close(ns);
      continue;
    }
    if (ns != INVALID_SOCKET) {
      pier_opq_remove(&is->acceptq, op);
      WSAEventSelect(ns, NULL, 0); /* drop what it inherited */
      take(is, op, ns);
      continue;
    }
    if (err == WSAEWOULDBLOCK) {
      if (is->evented) poll_later(is);
      return;
    }
    if (err == WSATRY_AGAIN) { /* CF_DEFER: Winsock keeps it at the head */
      is->held = 1;
      pier_opq_remove(&is->acceptq, op);
      pier_spi_complete(op, PIER_ETRYAGAIN);
      return;
    }
    if (err == WSAECONNREFUSED || err == WSAECONNRESET || err == WSAECONNABORTED)
      continue; /* rejected, or the caller gave up: the next one */
    fail_one(is, err);
    if (err == WSAEMFILE || err == WSAENOBUFS) {
      retry_later(is, pier_spi_os_error(err));
      return;
    }
  }
  if (!is->held && is->acceptq.head) pier__iocp_post_kick(is); /* more later */
}

/* ------------------------------------------------------------------ */
/* pre-posted AcceptEx                                                 */
/* ------------------------------------------------------------------ */

static int post_slot(iocp_sock *is, iocp_slot *slot) {
  slot->as = WSASocketW(is->family, is->type, is->protocol, NULL, 0,
                        WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (slot->as == INVALID_SOCKET) return pier_spi_os_error(WSAGetLastError());
  memset(&slot->h.ov, 0, sizeof slot->h.ov);
  slot->h.kind = IOCP_K_SLOT;
  slot->listener = is;
  slot->state = IOCP_SLOT_POSTED;
  InterlockedIncrement(&is->inflight);
  DWORD bytes = 0, want = slot->first ? IOCP_FIRST_LEN : 0;
  slot->killed = 0;
  slot->nfirst = 0;
  BOOL ok = is->il->acceptex(is->sock, slot->as,
                             slot->first ? slot->first : slot->addrbuf, want,
                             ADDR_SPACE, ADDR_SPACE, &bytes, &slot->h.ov);
  if (ok && !is->skip_on_success) return 0;
  int err = ok ? 0 : WSAGetLastError();
  if (err == ERROR_IO_PENDING) return 0;
  InterlockedDecrement(&is->inflight);
  if (ok) {
    pier__iocp_slot_done(slot, 0, bytes);
    return 0;
  }
  closesocket(slot->as);
  slot->as = INVALID_SOCKET;
  slot->state = IOCP_SLOT_IDLE;
  return pier_spi_os_error(err);
}

static void CALLBACK first_tick(PVOID ctx, BOOLEAN fired) {
  (void)fired;
  pier__iocp_post_kick((iocp_sock *)ctx);
}

static int start_ex(iocp_sock *is) {
  int n = is->first && is->preposted < IOCP_FIRST_SLOTS ? IOCP_FIRST_SLOTS
                                                       : is->preposted;
  int nfirst = is->first ? n : 0;
  if (is->first) n += IOCP_PLAIN_SLOTS;
  is->slots = pier_spi_calloc((size_t)n, sizeof *is->slots);
  if (!is->slots) return PIER_ENOMEM;
  is->nslots = n;
  int posted = 0, rc = 0;
  for (int i = 0; i < is->nslots; i++) {
    is->slots[i].as = INVALID_SOCKET;
    if (i < nfirst &&
        !(is->slots[i].first = pier_spi_malloc(IOCP_FIRST_LEN + 2 * ADDR_SPACE))) {
      rc = PIER_ENOMEM;
      continue;
    }
    if ((rc = post_slot(is, &is->slots[i])) == 0) posted++;
  }
  if (rc && !posted && rc != PIER_EMFILE && rc != PIER_ENOBUFS) {
    for (int i = 0; i < is->nslots; i++) pier_spi_free(is->slots[i].first);
    pier_spi_free(is->slots);
    is->slots = NULL;
    is->nslots = 0;
    return rc;
  }
  if (rc) retry_later(is, rc); /* out of sockets: the accept waits */
  if (is->first &&
      !CreateTimerQueueTimer(&is->first_timer, NULL, first_tick, is, 1000, 1000,
                             WT_EXECUTEDEFAULT))
    is->first_timer = NULL; /* silent callers then wait for the next caller */
  return 0;
}

/* Accept-first: close the slots whose caller has been connected and
   silent for longer than the limit (SO_CONNECT_TIME, in seconds). */
static void drop_silent(iocp_sock *is) {
  for (int i = 0; i < is->nslots; i++) {
    iocp_slot *slot = &is->slots[i];
    if (slot->state != IOCP_SLOT_POSTED || slot->killed) continue;
    DWORD secs = 0xFFFFFFFF;
    int len = sizeof secs;
    if (getsockopt(slot->as, SOL_SOCKET, SO_CONNECT_TIME, (char *)&secs,
                   &len) != 0 || secs == 0xFFFFFFFF)
      continue; /* no caller yet */
    if ((unsigned long long)secs * 1000 < (unsigned long long)is->first_ms)
      continue;
    slot->killed = 1;
    closesocket(slot->as); /* its AcceptEx comes back failed: post again */
    slot->as = INVALID_SOCKET;
  }
}

void pier__iocp_slot_done(iocp_slot *slot, int err, DWORD bytes) {
  iocp_sock *is = slot->listener;
  slot->nfirst = bytes;
  if (is->closing || err || slot->killed) {
    if (slot->as != INVALID_SOCKET) closesocket(slot->as);
    slot->as = INVALID_SOCKET;
    slot->state = IOCP_SLOT_IDLE;
    if (is->closing) return;
    /* A caller that gave up before we took it, or one dropped for its
       silence: post again. */
    if (!slot->killed && err && err != WSAECONNRESET &&
        err != ERROR_NETNAME_DELETED && err != WSAECONNABORTED)
      fail_one(is, err);
    int rc = post_slot(is, slot);
    if (rc) retry_later(is, rc);
    return;
  }
  setsockopt(slot->as, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
             (const char *)&is->sock, sizeof is->sock);
  struct sockaddr *local = NULL, *remote = NULL;
  int llen = 0, rlen = 0;
  is->il->getaddrs(slot->first ? slot->first : slot->addrbuf,
                   slot->first ? IOCP_FIRST_LEN : 0, ADDR_SPACE, ADDR_SPACE,
                   &local, &llen, &remote, &rlen);
  memset(&slot->local, 0, sizeof slot->local);
  memset(&slot->remote, 0, sizeof slot->remote);
  if (local && llen <= (int)sizeof slot->local) memcpy(&slot->local, local, (size_t)llen);
  if (remote && rlen <= (int)sizeof slot->remote) memcpy(&slot->remote, remote, (size_t)rlen);
  slot->local_len = llen;
  slot->remote_len = rlen;
  slot->state = IOCP_SLOT_READY;
  slot->next = NULL;
  if (is->ready_tail) is->ready_tail->next = slot; else is->ready_head = slot;
  is->ready_tail = slot;
  pier__iocp_run_accepts(is);
}

static iocp_slot *ready_pop(iocp_sock *is) {
  iocp_slot *slot = is->ready_head;
  is->ready_head = slot->next;
  if (!is->ready_head) is->ready_tail = NULL;
  slot->next = NULL;
  return slot;
}

static int decide(iocp_sock *is, pier_op *op, iocp_slot *slot) {
  if (!op->pier__r.cond) return PIER_CF_ACCEPT;
  pier_accept_info info;
  memset(&info, 0, sizeof info);
  info.caller = (const struct sockaddr *)&slot->remote;
  info.caller_len = (size_t)slot->remote_len;
  info.local = (const struct sockaddr *)&slot->local;
  info.local_len = (size_t)slot->local_len;
  int cf = call_condition(is, op, &info);
  return cf == PIER_CF_ACCEPT || cf == PIER_CF_DEFER ? cf : PIER_CF_REJECT;
}

static void run_ex(iocp_sock *is) {
  while (!is->held && is->acceptq.head && is->ready_head) {
    pier_op *op = is->acceptq.head;
    iocp_slot *slot = is->ready_head;
    int cf = decide(is, op, slot);
    if (is->closing) { /* the condition closed the listener, slots too */
      pier__iocp_close_os(is);
      return;
    }
    if (op->pier__r.cond && !still_pending(op))
      continue; /* cancelled meanwhile: the slot waits at the head */
    if (cf == PIER_CF_DEFER) {
      is->held = 1;
      pier_opq_remove(&is->acceptq, op);
      pier_spi_complete(op, PIER_ETRYAGAIN);
      return;
    }
    ready_pop(is);
    SOCKET as = slot->as;
    slot->as = INVALID_SOCKET;
    slot->state = IOCP_SLOT_IDLE;
    if (cf == PIER_CF_ACCEPT) {
      pier_opq_remove(&is->acceptq, op);
      if (slot->first && op->pier__r.nbufs) { /* the first bytes come along */
        size_t n = slot->nfirst;
        if (n > op->pier__r.bufs[0].len) n = op->pier__r.bufs[0].len;
        memcpy(op->pier__r.bufs[0].base, slot->first, n);
        op->bytes = n;
      }
      take(is, op, as);
    } else {
      reset_close(as);
    }
    int rc = post_slot(is, slot);
    if (rc) retry_later(is, rc);
  }
}

/* Post again the slots a failure left idle (their retry is due). */
static void repost_idle(iocp_sock *is) {
  if (retry_pending(is)) return;
  for (int i = 0; i < is->nslots && !is->retry_timer; i++) {
    iocp_slot *slot = &is->slots[i];
    if (slot->state != IOCP_SLOT_IDLE) continue;
    int rc = post_slot(is, slot);
    if (rc) retry_later(is, rc);
  }
}

/* ------------------------------------------------------------------ */
/* entry points                                                        */
/* ------------------------------------------------------------------ */

void pier__iocp_run_accepts(iocp_sock *is) {
  if (is->accept_mode == IOCP_ACCEPT_WSA) {
    run_wsa(is);
  } else if (is->accept_mode == IOCP_ACCEPT_EX) {
    if (is->first) drop_silent(is);
    repost_idle(is);
    run_ex(is);
  }
}

int pier__iocp_accept_submit(iocp_sock *is, pier_op *op) {
  if (is->accept_mode == IOCP_ACCEPT_NONE) {
    int wsa = is->conditional || op->pier__r.cond != NULL || is->evented;
    is->first = !wsa && is->first_ms > 0 && op->pier__r.nbufs > 0;
    int rc = wsa ? start_wsa(is) : start_ex(is);
    if (rc) return rc;
    if (wsa && pier__iocp_events_sync(is) != 0) /* join its FD_ACCEPT */
      pier_spi_log(PIER_LOG_WARN, "listener lost its event selection");
    is->accept_mode = wsa ? IOCP_ACCEPT_WSA : IOCP_ACCEPT_EX;
  }
  /* Accept-first slots hold the caller's first bytes: an accept must
     have room for them. */
  if (is->first && (op->pier__r.nbufs == 0 || op->pier__r.cond))
    return PIER_EINVAL;
  /* The application accepts again: a held (deferred) request is
     presented first; the condition never runs inside pier_accept. */
  is->held = 0;
  pier_opq_push(&is->acceptq, op);
  pier__iocp_post_kick(is);
  return 0;
}

void pier__iocp_accept_close(iocp_sock *is) {
  retry_cancel(is);
  if (is->first_timer) { /* waits for a tick in progress */
    DeleteTimerQueueTimer(NULL, is->first_timer, INVALID_HANDLE_VALUE);
    is->first_timer = NULL;
  }
  pier_op *op;
  while ((op = pier_opq_pop(&is->acceptq)) != NULL)
    pier_spi_complete(op, PIER_ECANCELED);
  if (is->accept_wait) {
    UnregisterWaitEx(is->accept_wait, INVALID_HANDLE_VALUE); /* waits */
    is->accept_wait = NULL;
  }
  if (is->accept_event) {
    CloseHandle(is->accept_event);
    is->accept_event = NULL;
  }
  while (is->ready_head) {
    iocp_slot *slot = ready_pop(is);
    reset_close(slot->as);
    slot->as = INVALID_SOCKET;
    slot->state = IOCP_SLOT_IDLE;
  }
  /* Posted slots come back aborted once the listener is closed. */
}
