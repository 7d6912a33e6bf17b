/* SPDX-License-Identifier: MIT */
/*
 * tests/test_chaos.c - many sockets on one loop driven at random by a
 * seeded schedule, with every promise of DESIGN.md §3.4 checked as it
 * goes.  One loop served by one thread, and the same by four.
 *
 * The schedule (a 1 ms repeating timer, plus a random action from inside
 * most callbacks) opens connections to a listener whose condition
 * function ACCEPTs, REJECTs or DEFERs at random and re-enters pier
 * (closing or sending on other sockets, posting); starts receives and
 * sends with random buffer shapes and flags; cancels pending ops; closes
 * sockets, resets them (linger 0) and half-closes them (pier_disconnect);
 * changes their network-event selection; starts and stops timers; keeps
 * NPOSTS posts re-posting themselves; and sends a datagram probe now and
 * then.  Checked on every callback:
 *   - each op completes exactly once, never after its socket's close
 *     callback, and every op of a socket has completed when it runs;
 *   - per-direction order: receives, and sends, complete in start order;
 *   - callbacks of one socket never overlap (with four threads too);
 *   - the data that arrives is the data sent, in order, and the end of a
 *     stream comes only after all of it (while the stream is whole: a
 *     send that did not go out entirely, a reset, or a rejected caller
 *     turns the check off for that direction);
 *   - no starvation: a datagram whose receive is ready runs within a
 *     bound of callbacks after its send completed (one thread: with
 *     four, preemption makes the count meaningless);
 *   - at the end every socket's close callback has run and the loop
 *     frees.
 * A failure names its seed: PIER_CHAOS_SEED=N PIER_CHAOS_SEEDS=1 reruns
 * it alone.  PIER_CHAOS_SEEDS sets how many seeds each mode runs (8).
 */
#include "helpers.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXSOCK 64     /* sockets one seed opens, clients and servers */
#define MAXLIVE 20     /* client sockets open at once */
#define SLOTS 2        /* receives and sends in flight per socket */
#define CHUNK 2048     /* bytes of one op's buffers */
#define NPOSTS 100     /* posts that re-post themselves (> the run budget) */
#define NTIMERS 4
#define STEPS 400      /* ticks of the schedule */
#define SEED_BASE 0x5eed0000u

typedef struct chaos chaos;
typedef struct csock csock;

typedef struct cop {
  pier_op op;
  csock *cs;
  int dir;            /* 0 receive, 1 send */
  int pending;
  uint64_t seq;       /* start order in its direction */
  size_t len;
  pier_buf bufs[4];
  char buf[CHUNK];
} cop;

struct csock {
  chaos *ch;
  pier_socket *s;
  csock *peer;
  int id, server;
  unsigned short port;   /* local port (clients: their caller address) */
  int connected, closing, closed, shut_wr, eof, dead;
  int in_cb;             /* atomic: one of its callbacks runs */
  int verify_in;         /* the incoming stream is whole so far */
  uint64_t seed_out, seed_in;
  uint64_t sent_off;     /* stream offset of the next send */
  uint64_t recv_off;     /* bytes received and verified */
  uint64_t rstart, sstart;   /* ops started per direction */
  struct order { uint64_t base, done; } rord, sord;
  int pending;           /* ops started and not completed */
  cop rx[SLOTS], tx[SLOTS];
  pier_op conn_op, disc_op;
  int conn_pending, disc_pending;
};


struct chaos {
  pthread_mutex_t mu;
  pier_loop *loop;
  unsigned seed, threads;
  uint64_t rng;
  char failure[512];
  int ending, steps;
  long callbacks;               /* every callback, any kind */
  pier_socket *listener;
  pier_op acc;
  int acc_pending;
  struct sockaddr_storage laddr;
  size_t laddr_len;
  csock socks[MAXSOCK];
  int nsocks, live_clients;
  pier_op posts[NPOSTS];
  int posts_pending;
  pier_timer timers[NTIMERS];
  pier_timer tick;
  /* the starvation probe: a datagram to ourselves */
  pier_socket *urx, *utx;
  struct sockaddr_storage uaddr;
  size_t uaddr_len;
  pier_op urecv, usend;
  char ubuf[8];
  int urecv_pending, usend_pending;
  long probe_cb_at;             /* callbacks when the send completed */
  long probe_bound;
  uint64_t probe_ms;
  long probes, worst_wait;
  int closes_due;               /* close callbacks still to come */
  /* a thread of the application in blocking receives on its own socket,
     which the schedule cancels, closes and feeds */
  pthread_t blocker, canceller;
  pier_socket *bs;              /* its socket, NULL between two */
  struct sockaddr_storage baddr;
  size_t baddr_len;
  int bs_closing;               /* the schedule closed bs */
  pier_socket *in_call;         /* atomic: the socket the thread is in (or
                                   about to make) a blocking call on */
  pier_op feed;                 /* a datagram for it */
  pier_buf feed_buf;
  int feed_pending;
  int blocker_done;             /* atomic: the thread has returned */
  uint64_t cancel_at;           /* ms of a cancel that found a call, or 0 */
  long blocking_calls, blocking_canceled;
};

/* ------------------------------------------------------------------ */
/* model helpers (ch->mu held)                                         */
/* ------------------------------------------------------------------ */

static unsigned rnd(chaos *ch, unsigned n) {
  uint64_t x = ch->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  ch->rng = x;
  return n ? (unsigned)(x % n) : 0;
}

static void chaos_fail(chaos *ch, const char *fmt, ...) {
  if (ch->failure[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ch->failure, sizeof ch->failure, fmt, ap);
  va_end(ap);
  ch->ending = 1;
  pier_loop_stop(ch->loop);
}

static uint64_t mix(unsigned seed, int id, int side) {
  uint64_t x = ((uint64_t)seed << 32) ^ ((uint64_t)id << 8) ^ (uint64_t)side;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x | 1;
}

static int usable(const csock *cs) {
  return cs->s && !cs->closing && !cs->dead;
}

static csock *pick_sock(chaos *ch) {
  if (ch->nsocks == 0) return NULL;
  for (int tries = 0; tries < 4; tries++) {
    csock *cs = &ch->socks[rnd(ch, (unsigned)ch->nsocks)];
    if (usable(cs)) return cs;
  }
  return NULL;
}

/* Enter a callback of cs: no other of its callbacks may be running.
   Returns the callback's number in the order pier started them (counted
   before our own lock, which is not fair between threads). */
static long cb_enter(chaos *ch, csock *cs, const char *what) {
  long at = __atomic_add_fetch(&ch->callbacks, 1, __ATOMIC_SEQ_CST);
  if (cs && __atomic_exchange_n(&cs->in_cb, 1, __ATOMIC_SEQ_CST)) {
    pthread_mutex_lock(&ch->mu);
    chaos_fail(ch, "socket %d: %s callback overlaps another of its callbacks",
         cs->id, what);
    pthread_mutex_unlock(&ch->mu);
  }
  pthread_mutex_lock(&ch->mu);
  if (cs && cs->closed)
    chaos_fail(ch, "socket %d: %s callback after its close callback", cs->id, what);
  return at;
}

static void cb_leave(chaos *ch, csock *cs) {
  pthread_mutex_unlock(&ch->mu);
  if (cs) __atomic_store_n(&cs->in_cb, 0, __ATOMIC_SEQ_CST);
}

static void action(chaos *ch);

/* ------------------------------------------------------------------ */
/* receives and sends                                                  */
/* ------------------------------------------------------------------ */

/* Cut len bytes of c->buf into 1..4 buffers of random sizes. */
static size_t shape(chaos *ch, cop *c, size_t len) {
  size_t n = 1 + rnd(ch, 4), off = 0, i = 0;
  for (; i < n && off < len; i++) {
    size_t part = i + 1 == n ? len - off : 1 + rnd(ch, (unsigned)(len - off));
    c->bufs[i] = pier_buf_init(c->buf + off, part);
    off += part;
  }
  return i;
}

static void op_done(pier_op *op, int status);

/*
 * Per-direction order.  Ops complete in start order, except that
 * pier_cancel completes the op it names at once: a PIER_ECANCELED may
 * come ahead of earlier ops.  o->base is the last seq with everything up
 * to it completed; bit i of o->done stands for seq base + 1 + i.
 */
static int order_ok(struct order *o, uint64_t seq, int status) {
  if (seq <= o->base || seq > o->base + 64) return 0;
  uint64_t bit = 1ull << (seq - o->base - 1);
  if (o->done & bit) return 0;
  if (status != PIER_ECANCELED && (o->done & (bit - 1)) != bit - 1)
    return 0; /* an earlier op has neither completed nor been cancelled */
  o->done |= bit;
  while (o->done & 1) {
    o->done >>= 1;
    o->base++;
  }
  return 1;
}

static void stream_broken(csock *to) {
  if (to) to->verify_in = 0;
}

static void start_recv(chaos *ch, csock *cs) {
  if (!usable(cs) || !cs->connected || cs->eof) return;
  for (int i = 0; i < SLOTS; i++) {
    cop *c = &cs->rx[i];
    if (c->pending) continue;
    size_t len = 1 + rnd(ch, CHUNK);
    size_t n = shape(ch, c, len);
    unsigned flags = rnd(ch, 4) == 0 ? PIER_MSG_WAITALL : 0;
    memset(&c->op, 0, sizeof c->op);
    c->op.data = c;
    c->len = len;
    int rc = pier_recv(cs->s, &c->op, c->bufs, n, flags, op_done);
    if (rc) {
      chaos_fail(ch, "socket %d: pier_recv: %s", cs->id, pier_err_name(rc));
      return;
    }
    c->pending = 1;
    c->seq = ++cs->rstart;
    cs->pending++;
    return;
  }
}

static void start_send(chaos *ch, csock *cs) {
  if (!usable(cs) || !cs->connected || cs->shut_wr) return;
  for (int i = 0; i < SLOTS; i++) {
    cop *c = &cs->tx[i];
    if (c->pending) continue;
    size_t len = 1 + rnd(ch, CHUNK);
    t_fill(c->buf, len, cs->seed_out, (size_t)cs->sent_off);
    size_t n = shape(ch, c, len);
    memset(&c->op, 0, sizeof c->op);
    c->op.data = c;
    c->len = len;
    int rc = pier_send(cs->s, &c->op, c->bufs, n, 0, op_done);
    if (rc) {
      chaos_fail(ch, "socket %d: pier_send: %s", cs->id, pier_err_name(rc));
      return;
    }
    cs->sent_off += len;
    c->pending = 1;
    c->seq = ++cs->sstart;
    cs->pending++;
    return;
  }
}

static int status_known(int status) {
  switch (status) {
  case 0: case PIER_ECANCELED: case PIER_ECONNRESET: case PIER_ECONNABORTED:
  case PIER_EPIPE: case PIER_ENOTCONN: case PIER_ESHUTDOWN:
    return 1;
  default:
    return 0;
  }
}

static void recv_done(chaos *ch, csock *cs, cop *c, int status) {
  if (!order_ok(&cs->rord, c->seq, status))
    chaos_fail(ch, "socket %d: receive %llu completed out of order (%s; all "
               "before %llu done)", cs->id, (unsigned long long)c->seq,
               pier_err_name(status), (unsigned long long)cs->rord.base);
  size_t got = c->op.bytes;
  if (got > c->len) chaos_fail(ch, "socket %d: %zu bytes into %zu", cs->id, got, c->len);
  if (got && cs->verify_in) { /* scattered in order: check each piece */
    size_t off = 0;
    for (size_t i = 0; i < 4 && off < got; i++) {
      size_t part = c->bufs[i].len < got - off ? c->bufs[i].len : got - off;
      size_t bad = t_verify(c->bufs[i].base, part, cs->seed_in,
                            (size_t)(cs->recv_off + off));
      if (bad != (size_t)-1) {
        chaos_fail(ch, "socket %d: byte %llu of its stream is wrong", cs->id,
             (unsigned long long)(cs->recv_off + off + bad));
        break;
      }
      off += part;
    }
  }
  cs->recv_off += got;
  if (status == 0 && got == 0) { /* end of stream: after all the data */
    cs->eof = 1;
    csock *p = cs->peer;
    if (cs->verify_in && p && cs->recv_off != p->sent_off)
      chaos_fail(ch, "socket %d: end of stream after %llu of %llu bytes", cs->id,
           (unsigned long long)cs->recv_off, (unsigned long long)p->sent_off);
  }
  if (status && status != PIER_ECANCELED) cs->dead = 1;
}

static void send_done(chaos *ch, csock *cs, cop *c, int status) {
  if (!order_ok(&cs->sord, c->seq, status))
    chaos_fail(ch, "socket %d: send %llu completed out of order (%s; all "
               "before %llu done)", cs->id, (unsigned long long)c->seq,
               pier_err_name(status), (unsigned long long)cs->sord.base);
  if (status == 0 && c->op.bytes != c->len)
    chaos_fail(ch, "socket %d: a send completed with %zu of %zu bytes", cs->id,
         c->op.bytes, c->len);
  if (status) { /* the stream has a hole from here on */
    stream_broken(cs->peer);
    if (!cs->peer) cs->shut_wr = 1;
    if (status != PIER_ECANCELED) cs->dead = 1;
  }
}

static void op_done(pier_op *op, int status) {
  cop *c = op->data;
  csock *cs = c->cs;
  chaos *ch = cs->ch;
  cb_enter(ch, cs, c->dir ? "send" : "receive");
  if (!c->pending) chaos_fail(ch, "socket %d: an op completed twice", cs->id);
  c->pending = 0;
  cs->pending--;
  if (!status_known(status))
    chaos_fail(ch, "socket %d: %s completed with %s", cs->id,
         c->dir ? "send" : "receive", pier_err_name(status));
  if (c->dir) send_done(ch, cs, c, status);
  else recv_done(ch, cs, c, status);
  if (!ch->ending) {
    if (rnd(ch, 3)) (c->dir ? start_send : start_recv)(ch, cs);
    if (rnd(ch, 2)) action(ch);
  }
  cb_leave(ch, cs);
}

/* ------------------------------------------------------------------ */
/* opening, accepting, closing                                         */
/* ------------------------------------------------------------------ */

static void closed_cb(pier_socket *s) {
  csock *cs = pier_socket_get_data(s);
  chaos *ch = cs->ch;
  cb_enter(ch, cs, "close");
  if (cs->pending || cs->conn_pending || cs->disc_pending)
    chaos_fail(ch, "socket %d: close callback with %d ops pending", cs->id,
         cs->pending + cs->conn_pending + cs->disc_pending);
  cs->closed = 1;
  cs->s = NULL;
  if (!cs->server) ch->live_clients--;
  ch->closes_due--;
  cb_leave(ch, cs);
}

static void close_sock(chaos *ch, csock *cs, int reset) {
  if (!cs->s || cs->closing) return;
  /* Sends still pending are cancelled, and a socket closed with data
     unread is reset by the OS: either way the peer may see its stream
     end early, before any completion here says how much went. */
  int clean = cs->eof;
  for (int i = 0; i < SLOTS; i++)
    if (cs->tx[i].pending) clean = 0;
  if (!clean) stream_broken(cs->peer);
  if (reset) {
    pier_setsockopt(cs->s, PIER_SO_LINGER, 0);
    stream_broken(cs->peer);
    if (cs->peer) cs->peer->dead = 1;
  }
  int rc = pier_close(cs->s, closed_cb);
  if (rc) chaos_fail(ch, "socket %d: pier_close: %s", cs->id, pier_err_name(rc));
  cs->closing = 1;
}

static void disc_done(pier_op *op, int status) {
  csock *cs = op->data;
  chaos *ch = cs->ch;
  cb_enter(ch, cs, "disconnect");
  if (!cs->disc_pending) chaos_fail(ch, "socket %d: disconnect completed twice", cs->id);
  cs->disc_pending = 0;
  if (!status_known(status))
    chaos_fail(ch, "socket %d: disconnect: %s", cs->id, pier_err_name(status));
  cb_leave(ch, cs);
}

static void half_close(chaos *ch, csock *cs) {
  if (!usable(cs) || !cs->connected || cs->shut_wr || cs->disc_pending) return;
  memset(&cs->disc_op, 0, sizeof cs->disc_op);
  cs->disc_op.data = cs;
  int rc = pier_disconnect(cs->s, &cs->disc_op, NULL, 0, disc_done);
  if (rc) {
    chaos_fail(ch, "socket %d: pier_disconnect: %s", cs->id, pier_err_name(rc));
    return;
  }
  cs->shut_wr = 1;
  cs->disc_pending = 1;
}

static csock *new_sock(chaos *ch, pier_socket *s, int server) {
  if (ch->nsocks == MAXSOCK) return NULL;
  csock *cs = &ch->socks[ch->nsocks];
  memset(cs, 0, sizeof *cs);
  cs->ch = ch;
  cs->s = s;
  cs->id = ch->nsocks++;
  cs->server = server;
  for (int i = 0; i < SLOTS; i++) {
    cs->rx[i].cs = cs->tx[i].cs = cs;
    cs->tx[i].dir = 1;
  }
  pier_socket_set_data(s, cs);
  ch->closes_due++;
  return cs;
}

static void connected(pier_op *op, int status) {
  csock *cs = op->data;
  chaos *ch = cs->ch;
  cb_enter(ch, cs, "connect");
  if (!cs->conn_pending) chaos_fail(ch, "socket %d: connect completed twice", cs->id);
  cs->conn_pending = 0;
  if (status == 0) {
    cs->connected = 1;
    if (!ch->ending) {
      start_recv(ch, cs);
      start_send(ch, cs);
    }
  } else {
    cs->dead = 1;
  }
  cb_leave(ch, cs);
}

static void open_client(chaos *ch) {
  if (ch->live_clients >= MAXLIVE || ch->nsocks >= MAXSOCK - 1) return;
  pier_socket *s;
  int rc = pier_socket_open(ch->loop, pier_protocol_find("tcp4"), 0, &s);
  if (rc) {
    chaos_fail(ch, "pier_socket_open: %s", pier_err_name(rc));
    return;
  }
  csock *cs = new_sock(ch, s, 0);
  ch->live_clients++;
  cs->seed_out = mix(ch->seed, cs->id, 0);
  cs->seed_in = mix(ch->seed, cs->id, 1);
  struct sockaddr_storage a;
  size_t alen;
  t_loopback("tcp4", &a, &alen);
  if ((rc = pier_bind(s, T_SA(&a), alen)) == 0) {
    alen = sizeof a;
    rc = pier_getsockname(s, &a, &alen);
  }
  if (rc) {
    chaos_fail(ch, "client bind: %s", pier_err_name(rc));
    return;
  }
  cs->port = ntohs(((struct sockaddr_in *)&a)->sin_port);
  cs->conn_op.data = cs;
  rc = pier_connect(s, &cs->conn_op, T_SA(&ch->laddr), ch->laddr_len, NULL,
                    NULL, connected);
  if (rc) {
    chaos_fail(ch, "pier_connect: %s", pier_err_name(rc));
    return;
  }
  cs->conn_pending = 1;
}

static void pair_server(chaos *ch, pier_socket *s) {
  csock *cs = new_sock(ch, s, 1);
  if (!cs) { /* out of slots: this one is not watched */
    ch->closes_due++;
    pier_socket_set_data(s, NULL);
    pier_close(s, NULL);
    ch->closes_due--;
    return;
  }
  cs->connected = 1;
  struct sockaddr_storage a;
  size_t alen = sizeof a;
  if (pier_getpeername(s, &a, &alen) == 0) {
    /* The caller is the client bound to that port.  A port comes back
       once its client has closed: with two candidates this connection
       stays unpaired (and unchecked) rather than checked against the
       wrong stream. */
    unsigned short port = ntohs(((struct sockaddr_in *)&a)->sin_port);
    csock *c = NULL;
    int candidates = 0;
    for (int i = 0; i < ch->nsocks; i++) {
      csock *x = &ch->socks[i];
      if (x->server || x->port != port || x->peer) continue;
      c = x;
      candidates++;
    }
    if (candidates == 1) {
      cs->peer = c;
      c->peer = cs;
      cs->seed_out = c->seed_in;
      cs->seed_in = c->seed_out;
      cs->verify_in = 1;
      c->verify_in = !c->dead;
    }
  }
  if (!cs->peer) cs->dead = 1;
  else if (!ch->ending) {
    start_recv(ch, cs);
    start_send(ch, cs);
  }
}

static void post_accept(chaos *ch);

/* The condition function decides at random and sometimes re-enters. */
static int condition(pier_accept_info *info, void *ctx) {
  chaos *ch = ctx;
  (void)info;
  /* Only a trylock: the condition function may run inside pier with its
     lock held, while another thread holds ours and waits for pier's. */
  if (pthread_mutex_trylock(&ch->mu) != 0) return PIER_CF_ACCEPT;
  int v = (int)rnd(ch, 20), verdict = PIER_CF_ACCEPT;
  if (v < 3) verdict = PIER_CF_REJECT;
  else if (v < 6) verdict = PIER_CF_DEFER;
  if (!ch->ending) {
    csock *other = pick_sock(ch);
    switch (rnd(ch, 6)) {
    case 0: if (other) close_sock(ch, other, 0); break;
    case 1: if (other) start_send(ch, other); break;
    case 2: if (other) start_recv(ch, other); break;
    default: break;
    }
  }
  pthread_mutex_unlock(&ch->mu);
  return verdict;
}

static void accepted(pier_op *op, int status) {
  chaos *ch = op->data;
  cb_enter(ch, NULL, "accept");
  if (!ch->acc_pending) chaos_fail(ch, "the accept completed twice");
  ch->acc_pending = 0;
  if (status == 0) pair_server(ch, op->accepted);
  else if (status != PIER_ETRYAGAIN && status != PIER_ECANCELED &&
           !status_known(status))
    chaos_fail(ch, "accept: %s", pier_err_name(status));
  if (!ch->ending) post_accept(ch);
  cb_leave(ch, NULL);
}

static void post_accept(chaos *ch) {
  if (ch->acc_pending || !ch->listener) return;
  memset(&ch->acc, 0, sizeof ch->acc);
  ch->acc.data = ch;
  int rc = pier_accept(ch->listener, &ch->acc, condition, ch, accepted);
  if (rc) chaos_fail(ch, "pier_accept: %s", pier_err_name(rc));
  else ch->acc_pending = 1;
}

/* ------------------------------------------------------------------ */
/* events, timers, posts, the datagram probe                           */
/* ------------------------------------------------------------------ */

static chaos *the_chaos; /* for the listener's events, which have no csock */

static void events_cb(pier_socket *s, unsigned events) {
  csock *cs = pier_socket_get_data(s);
  chaos *ch = cs ? cs->ch : the_chaos;
  (void)events;
  cb_enter(ch, cs, "network event");
  pier_net_events ev;
  int rc = pier_enum_network_events(s, &ev);
  if (rc && rc != PIER_EBADF)
    chaos_fail(ch, "socket %d: pier_enum_network_events: %s", cs ? cs->id : -1,
         pier_err_name(rc));
  cb_leave(ch, cs);
}

static void select_events(chaos *ch, csock *cs) {
  static const unsigned masks[] = {
    0, PIER_EV_READ, PIER_EV_WRITE, PIER_EV_READ | PIER_EV_CLOSE,
    PIER_EV_ALL & ~(unsigned)PIER_EV_ACCEPT
  };
  unsigned m = masks[rnd(ch, sizeof masks / sizeof masks[0])];
  int rc = pier_event_select(cs->s, m, m ? events_cb : NULL);
  if (rc && rc != PIER_EOPNOTSUPP)
    chaos_fail(ch, "socket %d: pier_event_select: %s", cs->id, pier_err_name(rc));
}

static void timer_cb(pier_timer *t) {
  chaos *ch = t->data;
  cb_enter(ch, NULL, "timer");
  if (!ch->ending) action(ch);
  cb_leave(ch, NULL);
}

static void post_cb(pier_op *op, int status) {
  chaos *ch = op->data;
  (void)status;
  cb_enter(ch, NULL, "post");
  if (!ch->ending) {
    int rc = pier_loop_post(ch->loop, op, post_cb);
    if (rc) chaos_fail(ch, "pier_loop_post: %s", pier_err_name(rc));
  } else {
    ch->posts_pending--;
  }
  cb_leave(ch, NULL);
}

static long outstanding(chaos *ch) {
  long n = ch->posts_pending + NTIMERS + 2;
  for (int i = 0; i < ch->nsocks; i++) n += ch->socks[i].pending + 2;
  return n;
}

static void probe_recv_done(pier_op *op, int status) {
  chaos *ch = op->data;
  long at = cb_enter(ch, NULL, "probe receive");
  ch->urecv_pending = 0;
  if (status != 0 && status != PIER_ECANCELED)
    chaos_fail(ch, "probe receive: %s", pier_err_name(status));
  if (status == 0 && ch->probe_cb_at >= 0) {
    long waited = at - ch->probe_cb_at;
    if (waited > ch->worst_wait) ch->worst_wait = waited;
    /* With more runner threads than cores a thread can be preempted
       between pier calling it and the count above, while the others run
       thousands of callbacks: the bound holds for one thread only, and
       with four every probe must still arrive. */
    if (ch->threads == 1 && waited > ch->probe_bound)
      chaos_fail(ch, "a ready datagram waited behind %ld callbacks (bound %ld, "
                 "%ld ms)", waited, ch->probe_bound,
                 (long)(t_now_ms() - ch->probe_ms));
    ch->probes++;
  }
  ch->probe_cb_at = -1;
  cb_leave(ch, NULL);
}

static void probe_send_done(pier_op *op, int status) {
  chaos *ch = op->data;
  long at = cb_enter(ch, NULL, "probe send");
  ch->usend_pending = 0;
  if (status == 0 && ch->urecv_pending) {
    ch->probe_cb_at = at;
    ch->probe_ms = t_now_ms();
    ch->probe_bound = 2 * (outstanding(ch) + 64) + 100;
  }
  cb_leave(ch, NULL);
}

static void probe(chaos *ch) {
  if (ch->urecv_pending || ch->usend_pending || !ch->urx) return;
  static pier_buf rb, sb;
  rb = pier_buf_init(ch->ubuf, sizeof ch->ubuf);
  sb = pier_buf_init("probe", 5);
  memset(&ch->urecv, 0, sizeof ch->urecv);
  memset(&ch->usend, 0, sizeof ch->usend);
  ch->urecv.data = ch->usend.data = ch;
  ch->probe_cb_at = -1;
  int rc = pier_recvfrom(ch->urx, &ch->urecv, &rb, 1, 0, NULL, probe_recv_done);
  if (rc == 0) {
    ch->urecv_pending = 1;
    rc = pier_sendto(ch->utx, &ch->usend, &sb, 1, 0, T_SA(&ch->uaddr),
                     ch->uaddr_len, probe_send_done);
    if (rc == 0) ch->usend_pending = 1;
  }
  if (rc) chaos_fail(ch, "probe: %s", pier_err_name(rc));
}

/* ------------------------------------------------------------------ */
/* blocking calls from a thread of the application                     */
/* ------------------------------------------------------------------ */

/* A cancel or close that finds a blocking call must end it: 2 s is far
   beyond any wake-up (a lost one hangs for ever). */
#define CANCEL_BOUND_MS 2000

static void blocker_closed(pier_socket *s) {
  chaos *ch = pier_socket_get_data(s);
  /* The socket is freed when this returns.  pier ran it, so it counts no
     blocking call in progress: one the thread was about to make when the
     close came must return at once (PIER_EBADF).  Wait for that, without
     our lock, which the thread takes after its call. */
  uint64_t until = t_now_ms() + CANCEL_BOUND_MS;
  while (__atomic_load_n(&ch->in_call, __ATOMIC_SEQ_CST) == s &&
         t_now_ms() < until)
    t_sleep_ms(1);
  int stuck = __atomic_load_n(&ch->in_call, __ATOMIC_SEQ_CST) == s;
  cb_enter(ch, NULL, "blocking socket close");
  if (stuck)
    chaos_fail(ch, "the blocking socket's close callback ran while a "
               "blocking receive on it went on");
  ch->closes_due--;
  cb_leave(ch, NULL);
}

/* Open the blocking socket (ch->mu held); 0 or a PIER_E* code. */
static int blocker_open(chaos *ch) {
  const pier_protocol_info *p = pier_protocol_find("udp4");
  struct sockaddr_storage b;
  size_t blen;
  t_loopback("udp4", &b, &blen);
  pier_socket *s;
  int rc = pier_socket_open(ch->loop, p, 0, &s);
  if (rc) return rc;
  pier_socket_set_data(s, ch);
  ch->closes_due++;
  ch->baddr_len = sizeof ch->baddr;
  if ((rc = pier_bind(s, T_SA(&b), blen)) == 0)
    rc = pier_getsockname(s, &ch->baddr, &ch->baddr_len);
  if (rc) {
    pier_close(s, blocker_closed);
    return rc;
  }
  ch->bs = s;
  ch->bs_closing = 0;
  return 0;
}

static void *blocker_main(void *arg) {
  chaos *ch = arg;
  char buf[64];
  pthread_mutex_lock(&ch->mu);
  while (!ch->ending) {
    if (!ch->bs) {
      int rc = blocker_open(ch);
      if (rc) {
        chaos_fail(ch, "blocking socket: %s", pier_err_name(rc));
        break;
      }
    }
    pier_socket *s = ch->bs;
    ch->blocking_calls++;
    __atomic_store_n(&ch->in_call, s, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&ch->mu);
    pier_op op;
    memset(&op, 0, sizeof op);
    pier_buf b = pier_buf_init(buf, sizeof buf);
    int rc = pier_recvfrom(s, &op, &b, 1, 0, NULL, NULL); /* blocking */
    __atomic_store_n(&ch->in_call, NULL, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&ch->mu);
    if (ch->cancel_at) {
      uint64_t took = t_now_ms() - ch->cancel_at;
      if (took > CANCEL_BOUND_MS)
        chaos_fail(ch, "a blocking receive returned %llu ms after its cancel",
                   (unsigned long long)took);
      ch->cancel_at = 0;
    }
    if (rc == PIER_ECANCELED) ch->blocking_canceled++;
    else if (rc != 0 && rc != PIER_EBADF)
      chaos_fail(ch, "blocking receive: %s", pier_err_name(rc));
    if (ch->bs_closing && ch->bs == s) ch->bs = NULL; /* open another */
  }
  pthread_mutex_unlock(&ch->mu);
  __atomic_store_n(&ch->blocker_done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void feed_done(pier_op *op, int status) {
  chaos *ch = op->data;
  cb_enter(ch, NULL, "feed");
  ch->feed_pending = 0;
  if (status && status != PIER_ECANCELED)
    chaos_fail(ch, "feed: %s", pier_err_name(status));
  cb_leave(ch, NULL);
}

/* Another thread of the application cancels the blocking calls at random
   moments, often just as one starts: a cancel that finds a call must end
   it, whenever it lands. */
static void *canceller_main(void *arg) {
  chaos *ch = arg;
  for (;;) {
    pthread_mutex_lock(&ch->mu);
    int stop = ch->ending;
    unsigned pause = rnd(ch, 400);
    pthread_mutex_unlock(&ch->mu);
    if (stop) break;
    /* Wait for a call to begin, then a few microseconds at most. */
    for (int i = 0; i < 2000 && !__atomic_load_n(&ch->in_call, __ATOMIC_SEQ_CST);
         i++)
      t_sleep_ms(0);
    for (volatile unsigned spin = 0; spin < pause * 50; spin++)
      ;
    pthread_mutex_lock(&ch->mu);
    if (ch->bs && !ch->bs_closing &&
        __atomic_load_n(&ch->in_call, __ATOMIC_SEQ_CST) == ch->bs) {
      int rc = pier_cancel_blocking(ch->bs);
      if (rc == 0 && !ch->cancel_at) ch->cancel_at = t_now_ms();
      else if (rc && rc != PIER_ENOENT)
        chaos_fail(ch, "pier_cancel_blocking: %s", pier_err_name(rc));
    }
    pthread_mutex_unlock(&ch->mu);
    t_sleep_ms(1);
  }
  return NULL;
}

/* Cancel, close or feed the blocking socket (ch->mu held). */
static void blocking_action(chaos *ch) {
  pier_socket *s = ch->bs;
  if (!s || ch->bs_closing) return;
  switch (rnd(ch, 4)) {
  case 0: {
    int rc = pier_cancel_blocking(s);
    if (rc == 0 && !ch->cancel_at) ch->cancel_at = t_now_ms();
    else if (rc && rc != PIER_ENOENT)
      chaos_fail(ch, "pier_cancel_blocking: %s", pier_err_name(rc));
    break;
  }
  case 1: {
    int rc = pier_close(s, blocker_closed);
    if (rc) chaos_fail(ch, "closing the blocking socket: %s", pier_err_name(rc));
    ch->bs_closing = 1;
    break;
  }
  default: {
    if (!ch->utx || ch->feed_pending) break; /* one datagram at a time */
    ch->feed_buf = pier_buf_init("wake", 4);
    memset(&ch->feed, 0, sizeof ch->feed);
    ch->feed.data = ch;
    int rc = pier_sendto(ch->utx, &ch->feed, &ch->feed_buf, 1, 0,
                         T_SA(&ch->baddr), ch->baddr_len, feed_done);
    if (rc) chaos_fail(ch, "feeding the blocking socket: %s", pier_err_name(rc));
    else ch->feed_pending = 1;
    break;
  }
  }
}

/* A careless caller makes a blocking call from a callback.  With one
   thread serving the loop nothing could complete it: PIER_EDEADLK at
   once, nothing started.  (With four another thread would: not tried.) */
static void careless_blocking(chaos *ch, csock *cs) {
  if (ch->threads != 1 || !cs->connected) return;
  char b1[8];
  pier_buf b = pier_buf_init(b1, sizeof b1);
  pier_op op;
  memset(&op, 0, sizeof op);
  int rc = pier_recv(cs->s, &op, &b, 1, 0, NULL);
  if (rc != PIER_EDEADLK)
    chaos_fail(ch, "socket %d: a blocking receive from a callback of a "
               "one-thread loop gave %s, not EDEADLK", cs->id,
               pier_err_name(rc));
}

/* One random step of the schedule. */
static void action(chaos *ch) {
  csock *cs = pick_sock(ch);
  switch (rnd(ch, 17)) {
  case 0: case 1: case 2: open_client(ch); break;
  case 3: case 4: case 5: if (cs) start_recv(ch, cs); break;
  case 6: case 7: case 8: if (cs) start_send(ch, cs); break;
  case 9: {
    if (!cs) break;
    cop *c = rnd(ch, 2) ? &cs->rx[rnd(ch, SLOTS)] : &cs->tx[rnd(ch, SLOTS)];
    if (c->pending) {
      int rc = pier_cancel(&c->op);
      if (rc && rc != PIER_ENOENT)
        chaos_fail(ch, "socket %d: pier_cancel: %s", cs->id, pier_err_name(rc));
    }
    break;
  }
  case 10: if (cs && rnd(ch, 3) == 0) close_sock(ch, cs, 0); break;
  case 11: if (cs && rnd(ch, 3) == 0) close_sock(ch, cs, 1); break;
  case 12: if (cs) half_close(ch, cs); break;
  case 13: if (cs) select_events(ch, cs); break;
  case 14: {
    pier_timer *tm = &ch->timers[rnd(ch, NTIMERS)];
    if (rnd(ch, 3) == 0) pier_timer_stop(tm);
    else pier_timer_start(tm, rnd(ch, 4), rnd(ch, 2) ? 1 + rnd(ch, 3) : 0,
                          timer_cb);
    break;
  }
  case 15: if (rnd(ch, 2)) probe(ch); else blocking_action(ch); break;
  default: if (cs) careless_blocking(ch, cs); break;
  }
}

/* ------------------------------------------------------------------ */
/* one seed                                                            */
/* ------------------------------------------------------------------ */

static void teardown(chaos *ch) {
  ch->ending = 1;
  pier_timer_stop(&ch->tick);
  for (int i = 0; i < NTIMERS; i++) pier_timer_stop(&ch->timers[i]);
  for (int i = 0; i < ch->nsocks; i++) close_sock(ch, &ch->socks[i], 0);
  if (ch->bs && !ch->bs_closing) { /* wakes the blocking thread */
    pier_close(ch->bs, blocker_closed);
    ch->bs_closing = 1;
  }
  if (ch->listener) pier_close(ch->listener, NULL);
  if (ch->urx) pier_close(ch->urx, NULL);
  if (ch->utx) pier_close(ch->utx, NULL);
  ch->listener = ch->urx = ch->utx = NULL;
}

static void tick_cb(pier_timer *t) {
  chaos *ch = t->data;
  cb_enter(ch, NULL, "tick");
  if (!ch->ending) {
    for (int i = 0; i < 3; i++) action(ch);
    if (++ch->steps >= STEPS) teardown(ch);
  }
  cb_leave(ch, NULL);
}

static void udp_open(chaos *ch) {
  const pier_protocol_info *p = pier_protocol_find("udp4");
  struct sockaddr_storage b;
  size_t blen;
  t_loopback("udp4", &b, &blen);
  T_OK(pier_socket_open(ch->loop, p, 0, &ch->urx));
  T_OK(pier_bind(ch->urx, T_SA(&b), blen));
  ch->uaddr_len = sizeof ch->uaddr;
  T_OK(pier_getsockname(ch->urx, &ch->uaddr, &ch->uaddr_len));
  T_OK(pier_socket_open(ch->loop, p, 0, &ch->utx));
}

static unsigned seeds_per_mode(void) {
  const char *e = getenv("PIER_CHAOS_SEEDS");
  long n = e && *e ? strtol(e, NULL, 10) : 8;
  return n > 0 && n < 100000 ? (unsigned)n : 8;
}

static unsigned seed_base(void) {
  const char *e = getenv("PIER_CHAOS_SEED");
  return e && *e ? (unsigned)strtoul(e, NULL, 0) : SEED_BASE;
}

static void run_seed(unsigned seed, unsigned threads) {
  chaos *ch = calloc(1, sizeof *ch);
  ck_assert_ptr_nonnull(ch);
  pthread_mutex_init(&ch->mu, NULL);
  ch->seed = seed;
  ch->threads = threads;
  ch->rng = mix(seed, 0x7fff, 2);
  ch->probe_cb_at = -1;
  ch->loop = threads > 1 ? t_loop_threads(threads) : t_loop_new();
  ch->listener = t_listener_backlog(ch->loop, "tcp4", &ch->laddr,
                                    &ch->laddr_len, 64);
  udp_open(ch);
  the_chaos = ch;
  pthread_mutex_lock(&ch->mu);
  /* Half the seeds watch the listener's events: accepted sockets inherit
     them and have a completion waiting before their accept is delivered. */
  if (rnd(ch, 2)) {
    unsigned m = PIER_EV_ACCEPT | PIER_EV_WRITE | (rnd(ch, 2) ? PIER_EV_READ : 0);
    int rc = pier_event_select(ch->listener, m, events_cb);
    if (rc != PIER_EOPNOTSUPP) T_OK(rc);
  }
  post_accept(ch);
  for (int i = 0; i < NPOSTS; i++) {
    ch->posts[i].data = ch;
    T_OK(pier_loop_post(ch->loop, &ch->posts[i], post_cb));
  }
  ch->posts_pending = NPOSTS;
  for (int i = 0; i < NTIMERS; i++) {
    T_OK(pier_timer_init(ch->loop, &ch->timers[i]));
    ch->timers[i].data = ch;
  }
  T_OK(pier_timer_init(ch->loop, &ch->tick));
  ch->tick.data = ch;
  T_OK(pier_timer_start(&ch->tick, 1, 1, tick_cb));
  pthread_mutex_unlock(&ch->mu);
  ck_assert_int_eq(pthread_create(&ch->blocker, NULL, blocker_main, ch), 0);
  ck_assert_int_eq(pthread_create(&ch->canceller, NULL, canceller_main, ch), 0);

  uint64_t deadline = t_now_ms() + 20000;
  while (t_now_ms() < deadline) {
    int rc = pier_loop_run(ch->loop, PIER_RUN_DEFAULT);
    if (rc <= 0 || ch->failure[0]) break; /* idle, or stopped by chaos_fail() */
  }
  pthread_mutex_lock(&ch->mu);
  if (!ch->failure[0] && !ch->ending)
    chaos_fail(ch, "the schedule did not finish in 20 s (%d of %d steps)",
         ch->steps, STEPS);
  if (ch->failure[0]) { /* close what is left so the loop can be freed */
    ch->ending = 1;
    teardown(ch);
  }
  pthread_mutex_unlock(&ch->mu);
  deadline = t_now_ms() + 5000;
  while ((pier_loop_run(ch->loop, PIER_RUN_ONCE) > 0 ||
          !__atomic_load_n(&ch->blocker_done, __ATOMIC_SEQ_CST)) &&
         t_now_ms() < deadline)
    t_sleep_ms(0);
  pthread_mutex_lock(&ch->mu);
  if (!__atomic_load_n(&ch->blocker_done, __ATOMIC_SEQ_CST))
    chaos_fail(ch, "a blocking receive never returned after its socket "
               "was closed");
  pthread_mutex_unlock(&ch->mu);
  pthread_join(ch->canceller, NULL); /* it stops once ending is set */
  if (__atomic_load_n(&ch->blocker_done, __ATOMIC_SEQ_CST))
    pthread_join(ch->blocker, NULL);
  else
    pthread_detach(ch->blocker); /* reported; the process ends with it */
  pthread_mutex_lock(&ch->mu);
  if (!ch->failure[0] && ch->closes_due != 0)
    chaos_fail(ch, "%d close callbacks never ran", ch->closes_due);
  for (int i = 0; i < ch->nsocks && !ch->failure[0]; i++)
    if (!ch->socks[i].closed) chaos_fail(ch, "socket %d never closed", i);
  pthread_mutex_unlock(&ch->mu);
  int freed = pier_loop_free(ch->loop);
  ck_assert_msg(!ch->failure[0], "chaos seed %u (%u threads): %s "
                "[rerun: PIER_CHAOS_SEED=%u PIER_CHAOS_SEEDS=1]", seed,
                threads, ch->failure, seed);
  ck_assert_msg(freed == 0, "chaos seed %u (%u threads): pier_loop_free: %s",
                seed, threads, pier_err_name(freed));
  if (getenv("PIER_CHAOS_VERBOSE"))
    printf("chaos seed %u threads %u: %d sockets, %ld callbacks, %ld probes, "
           "worst probe wait %ld callbacks, %ld blocking calls (%ld "
           "cancelled)\n", seed, threads, ch->nsocks, ch->callbacks,
           ch->probes, ch->worst_wait, ch->blocking_calls,
           ch->blocking_canceled);
  if (!__atomic_load_n(&ch->blocker_done, __ATOMIC_SEQ_CST))
    return; /* the stuck thread still uses ch: leave it (the test failed) */
  pthread_mutex_destroy(&ch->mu);
  free(ch);
}

START_TEST(chaos_one_thread) {
  run_seed(seed_base() + (unsigned)_i, 1);
}
END_TEST

START_TEST(chaos_four_threads) {
  run_seed(seed_base() + 0x1000u + (unsigned)_i, 4);
}
END_TEST

Suite *suite_chaos(void) {
  Suite *s = suite_create("chaos");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 30);
  int n = (int)seeds_per_mode();
  tcase_add_loop_test(tc, chaos_one_thread, 0, n);
  tcase_add_loop_test(tc, chaos_four_threads, 0, n);
  suite_add_tcase(s, tc);
  return s;
}
