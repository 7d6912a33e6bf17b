/* SPDX-License-Identifier: MIT */
/*
 * tests/test_fault.c - the fault suite: the stream (tcp4, msg4, TLS),
 * datagram (udp4) and conditional-accept scenarios rerun under many
 * seeds of a fault plan (tests/fault.h) that makes the provider's system
 * calls fail or shrink (EINTR, EAGAIN, 1-byte transfers, ECONNRESET,
 * EPIPE, EMFILE, ENFILE, ENOBUFS) and pier's allocations return NULL.
 * A fourth scenario makes blocking calls (no callback; block.c's poll
 * through the table) over tcp4, msg4 and TLS: sends, then receives, with
 * a watchdog thread that cancels calls still waiting after 5 s.
 * Checked for every seed:
 *   - every op completes exactly once, with 0 or a status pier documents
 *     for what was injected (ok_status below), never after its socket's
 *     close callback; every op has completed when the close callback runs;
 *   - data that arrives is the data sent, in order; a stream may end
 *     early only with an error status or after a fault that ends
 *     connections; datagrams arrive whole, each once, in order, none lost
 *     unless its send failed;
 *   - conditional accept (ACCEPT, REJECT, DEFER at random): a deferred
 *     request is presented first by the next accept; a caller greeted by
 *     the server was accepted by it;
 *   - a plan of EINTR, EAGAIN and short transfers alone (one seed in
 *     four, fault_plan_random) ends nothing: everything must go through;
 *   - each run ends within RUN_MS, the loop frees, and every block pier
 *     allocated during it is freed (the ASan build checks the rest).
 * Then every allocation in turn is failed (SQLite's malloc walk) for
 * pier_loop_new, pier_socket_open (with the TLS set-up: context, wrap),
 * and accept with connect (the msg handshake and the TLS handshake with
 * them): each call returns PIER_ENOMEM or completes its op with an error
 * status, and the loop goes on - a pair made afterwards on the same loop
 * carries data - and frees everything.  Only pier's own allocations are
 * walked: libevent's and OpenSSL's do not go through pier's allocator.
 *
 * PIER_FAULT_SEEDS sets the seeds per scenario (20); PIER_FAULT_SEED=N
 * runs from seed N (alone, unless PIER_FAULT_SEEDS says more).  Each
 * scenario prints
 *   fault: provider P scenario S seeds N failures F (...)
 * (scripts/check sums them per provider), and each failing seed what
 * was injected and its rerun line.  Where the provider's system calls
 * have no table (iocp has none yet), the same scenarios run with
 * allocation failures alone, and the scenario lines say so.
 */
#ifdef HAVE_CONFIG_H
#  include <config.h>
#endif
#include "fault.h"
#include "kinds.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_MS 10000       /* one seed's bound */
#define XFER (256u * 1024) /* bytes each way, stream scenarios */
#define MAXBUF 6           /* buffers of one op (> PIER_OP_INLINE_BUFS) */
#define NDGRAM 60          /* datagrams of the udp4 scenario */
#define NCLIENTS 8         /* callers of the accept scenario */

/* ------------------------------------------------------------------ */
/* one run                                                             */
/* ------------------------------------------------------------------ */

typedef struct run {
  pier_loop *loop;
  unsigned seed;
  uint64_t rng;            /* the scenario's own choices */
  char failure[400];
  int closes_due;          /* close callbacks still to come */
  pier_timer tick;
  int ticking;
  int whole;               /* everything arrived (no fault cut it short) */
  int benign;              /* the plan ends nothing: all must arrive */
} run;

static void fail_run(run *r, const char *fmt, ...) {
  if (r->failure[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->failure, sizeof r->failure, fmt, ap);
  va_end(ap);
}

static uint64_t rnd(run *r) {
  r->rng ^= r->rng >> 12;
  r->rng ^= r->rng << 25;
  r->rng ^= r->rng >> 27;
  return r->rng * 0x2545F4914F6CDD1DULL;
}

/* 1 .. n */
static size_t rnd_len(run *r, size_t n) { return 1 + (size_t)(rnd(r) % n); }

/*
 * Statuses pier documents for what the plan injects: the connection
 * failures, out of memory / descriptors / buffers, a cancel by close;
 * and on TLS, a stream cut inside a record (pier_tls_wrap's statuses).
 */
static int ok_status(int st) {
  switch (st) {
  case 0: case PIER_ECANCELED: case PIER_ECONNRESET: case PIER_ECONNABORTED:
  case PIER_EPIPE: case PIER_ENOBUFS: case PIER_ENOMEM: case PIER_EMFILE:
  case PIER_ENOTCONN: case PIER_ETLS_PROTOCOL:
    return 1;
  default:
    return 0;
  }
}

static void check_status(run *r, const char *what, int st) {
  if (!ok_status(st))
    fail_run(r, "%s completed with %s (%d), not a status documented for the "
             "faults injected", what, pier_err_name(st), st);
}

/* Statuses of a connect, an accept or the first receive whose other
   side failed, refused or ran out of memory. */
static int ok_connect_status(int st) {
  return ok_status(st) || st == PIER_ECONNREFUSED || st == PIER_EREFUSED ||
         st == PIER_ETIMEDOUT ||
         st == PIER_EPROTO || st == PIER_ETLS_HANDSHAKE ||
         st == PIER_ETLS_PROTOCOL;
}

/* Did the plan inject a fault that ends a connection or an operation? */
static int destructive(void) {
  fault_record f = fault_record_get();
  return f.injected[FK_ECONNRESET] || f.injected[FK_EPIPE] ||
         f.injected[FK_ENOBUFS] || f.injected[FK_NOMEM] ||
         f.injected[FK_EMFILE] || f.injected[FK_ENFILE];
}

static void tick_cb(pier_timer *t) { (void)t; }

/* Run the loop until done(r), for at most ms; 1 if done. */
static int drive(run *r, int (*done)(run *), int ms) {
  uint64_t start = t_now_ms();
  while (!done(r)) {
    if (t_now_ms() - start > (uint64_t)ms) return 0;
    int rc = pier_loop_run(r->loop, r->ticking ? PIER_RUN_ONCE
                                                : PIER_RUN_NOWAIT);
    if (rc < 0) {
      fail_run(r, "pier_loop_run: %s", pier_err_name(rc));
      return 0;
    }
    if (!r->ticking) t_sleep_ms(1);
  }
  return 1;
}

static void close_cb(pier_socket *s) {
  run *r = pier_socket_get_data(s);
  r->closes_due--;
}

/* Close s (may be NULL) counting its close callback. */
static void close_sock(run *r, pier_socket **s) {
  if (!*s) return;
  pier_socket_set_data(*s, r);
  int rc = pier_close(*s, close_cb);
  if (rc == 0) r->closes_due++;
  else fail_run(r, "pier_close: %s", pier_err_name(rc));
  *s = NULL;
}

static int closes_done(run *r) { return r->closes_due == 0; }

/* A loop with a 2 ms tick, before the plan is armed. */
static int run_begin(run *r, unsigned seed) {
  memset(r, 0, sizeof *r);
  r->seed = seed;
  r->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed << 20) ^ seed;
  int rc = pier_loop_new(NULL, &r->loop);
  if (rc) return rc;
  if (pier_timer_init(r->loop, &r->tick) == 0 &&
      pier_timer_start(&r->tick, 2, 2, tick_cb) == 0)
    r->ticking = 1;
  return 0;
}

static int syscall_faults; /* the plan reaches the system calls */

/* Arm the seed's plan (kept in *plan).  Where only allocations can
   fail, every seed fails some (0.5% to 3.5% of them). */
static void arm(run *r, fault_plan *plan) {
  fault_plan_random(plan, r->seed);
  if (!syscall_faults && !plan->permille[FK_NOMEM])
    plan->permille[FK_NOMEM] = 5 + r->seed % 4 * 10;
  r->benign = fault_plan_benign(plan);
  fault_arm(plan);
}

/* Disarm, wait for the close callbacks, free the loop. */
static void run_end(run *r) {
  fault_disarm();
  if (!drive(r, closes_done, 3000))
    fail_run(r, "%d close callback(s) never ran", r->closes_due);
  if (r->ticking) pier_timer_stop(&r->tick);
  uint64_t until = t_now_ms() + 3000;
  int rc;
  while ((rc = pier_loop_free(r->loop)) == PIER_EBUSY && t_now_ms() < until) {
    pier_loop_run(r->loop, PIER_RUN_NOWAIT);
    t_sleep_ms(1);
  }
  if (rc) {
    fail_run(r, "pier_loop_free: %s: something is left alive",
             pier_err_name(rc));
    ck_abort_msg("seed %u: %s (the loop cannot be freed: stopping here)",
                 r->seed, r->failure);
  }
}

/* ------------------------------------------------------------------ */
/* making connections                                                  */
/* ------------------------------------------------------------------ */

typedef struct pairing {
  pier_op aop, cop;
  int adone, cdone;
} pairing;

static void pair_acc_cb(pier_op *op, int st) {
  ((pairing *)op->data)->adone = st ? st : 1;
}
static void pair_con_cb(pier_op *op, int st) {
  ((pairing *)op->data)->cdone = st ? st : 1;
}

static pairing *cur_pairing;
static int pairing_done(run *r) {
  (void)r;
  return cur_pairing->adone && cur_pairing->cdone;
}

/*
 * A connected pair of kind on r's loop: *c the client, *s the accepted
 * side.  The listener is closed again.  Nothing asserts: 0, or the first
 * error (then *c and *s are NULL, closed).
 */
static int pair_up(run *r, int kind, pier_socket **c, pier_socket **s) {
  struct sockaddr_storage addr;
  size_t alen;
  pairing p;
  memset(&p, 0, sizeof p);
  p.aop.data = p.cop.data = &p;
  *c = *s = NULL;
  pier_socket *l = t_kind_listener(r->loop, kind, &addr, &alen, 4);
  pier_socket *cl = t_kind_client(r->loop, kind);
  int rc = pier_accept(l, &p.aop, NULL, NULL, pair_acc_cb);
  if (rc == 0)
    rc = pier_connect(cl, &p.cop, T_SA(&addr), alen, NULL, NULL, pair_con_cb);
  if (rc == 0) {
    cur_pairing = &p;
    if (!drive(r, pairing_done, RUN_MS)) rc = PIER_ETIMEDOUT;
  }
  if (rc == 0 && p.adone != 1) rc = p.adone;
  if (rc == 0 && p.cdone != 1) rc = p.cdone;
  pier_socket *acc = rc == 0 ? p.aop.accepted : NULL;
  close_sock(r, &l); /* completes a pending accept with ECANCELED */
  if (rc) {
    close_sock(r, &cl);
    if (p.adone == 1) close_sock(r, &p.aop.accepted);
    drive(r, closes_done, 3000); /* p's ops complete before it goes */
    return rc;
  }
  *c = cl;
  *s = acc;
  return 0;
}

/* ------------------------------------------------------------------ */
/* scenario: a stream both ways                                        */
/* ------------------------------------------------------------------ */

typedef struct xop {
  pier_op op;
  struct sdir *d;
  int pending;
  size_t len;      /* bytes of its buffers */
  pier_buf bufs[MAXBUF];
} xop;

typedef struct sdir {
  run *r;
  int id;
  pier_socket *tx, *rx;
  xop send, recv;
  unsigned char src[XFER], dst[XFER];
  size_t sent, recvd;
  int ended;       /* all arrived, or failed */
  int status;      /* the failure, 0 */
  int closed[2];   /* close callbacks of tx, rx seen (order check) */
} sdir;

static struct stream_run {
  pier_socket *c, *s;
  sdir d[2];
  int tearing;
} *sr;

/* Scatter/gather: up to MAXBUF buffers of random sizes over
   base[at..end); returns how many. */
static size_t shape_over(run *r, pier_buf *bufs, unsigned char *base,
                         size_t at, size_t end) {
  size_t n = 0, want = rnd_len(r, MAXBUF);
  while (n < want && at < end) {
    size_t len = rnd_len(r, rnd(r) % 4 ? 4096 : 16);
    if (len > end - at) len = end - at;
    bufs[n++] = pier_buf_init(base + at, len);
    at += len;
  }
  return n;
}

static size_t shape(run *r, pier_buf *bufs, unsigned char *base, size_t at) {
  return shape_over(r, bufs, base, at, XFER);
}

static void dir_end(sdir *d, int st) {
  if (d->ended) return;
  d->ended = 1;
  d->status = st;
}

static void s_send_cb(pier_op *op, int st);
static void s_recv_cb(pier_op *op, int st);

static void start_op(sdir *d, xop *x, int send) {
  run *r = d->r;
  size_t n = send ? shape(r, x->bufs, d->src, d->sent)
                  : shape(r, x->bufs, d->dst, d->recvd);
  x->op.data = x;
  x->d = d;
  x->pending = 1;
  x->len = 0;
  for (size_t i = 0; i < n; i++) x->len += x->bufs[i].len;
  int rc = send ? pier_send(d->tx, &x->op, x->bufs, n, 0, s_send_cb)
                : pier_recv(d->rx, &x->op, x->bufs, n, 0, s_recv_cb);
  if (rc) {
    x->pending = 0;
    check_status(r, send ? "pier_send" : "pier_recv", rc);
    dir_end(d, rc);
  }
}

/* Common to both callbacks: exactly once, a documented status. */
static int op_done(xop *x, const char *what, int st) {
  sdir *d = x->d;
  if (!x->pending) {
    fail_run(d->r, "direction %d: a %s completed twice", d->id, what);
    return 0;
  }
  x->pending = 0;
  if (d->closed[x == &d->recv])
    fail_run(d->r, "direction %d: a %s completed after its close callback",
             d->id, what);
  check_status(d->r, what, st);
  return 1;
}

static void s_send_cb(pier_op *op, int st) {
  xop *x = op->data;
  sdir *d = x->d;
  if (!op_done(x, "send", st)) return;
  if (st) {
    dir_end(d, st);
    return;
  }
  if (op->bytes != x->len)
    fail_run(d->r, "direction %d: a send completed with %zu of its %zu "
             "bytes", d->id, op->bytes, x->len);
  d->sent += op->bytes;
  if (d->sent < XFER && !sr->tearing) start_op(d, x, 1);
}

static void s_recv_cb(pier_op *op, int st) {
  xop *x = op->data;
  sdir *d = x->d;
  if (!op_done(x, "recv", st)) return;
  if (st) {
    dir_end(d, st);
    return;
  }
  if (op->bytes == 0) { /* the end of the stream, early */
    if (!destructive() && !sr->d[!d->id].status && !sr->tearing)
      fail_run(d->r, "direction %d: end of stream after %zu of %u bytes with "
               "no fault that ends a connection", d->id, d->recvd, XFER);
    dir_end(d, PIER_ECONNRESET);
    return;
  }
  size_t bad = t_verify(d->dst + d->recvd, op->bytes,
                        0xfa17 + (uint64_t)d->id * 7 + d->r->seed, d->recvd);
  if (bad != (size_t)-1)
    fail_run(d->r, "direction %d: byte %zu differs from the byte sent", d->id,
             d->recvd + bad);
  d->recvd += op->bytes;
  if (d->recvd == XFER) dir_end(d, 0);
  else if (!sr->tearing) start_op(d, x, 0);
}

static void s_close_cb(pier_socket *s) {
  for (int i = 0; i < 2; i++) {
    sdir *d = &sr->d[i];
    if (s == d->tx) d->closed[0] = 1;
    if (s == d->rx) d->closed[1] = 1;
    if ((s == d->tx && d->send.pending) || (s == d->rx && d->recv.pending))
      fail_run(pier_socket_get_data(s), "direction %d: the close callback "
               "ran before an op of its socket completed", i);
  }
  ((run *)pier_socket_get_data(s))->closes_due--;
}

static int stream_over(run *r) {
  (void)r;
  return sr->d[0].ended && sr->d[1].ended;
}

/* Over, or one direction failed (the other may then wait for good). */
static int stream_stop(run *r) {
  return stream_over(r) || sr->d[0].status || sr->d[1].status;
}

static void stream_scenario(run *r, int kind) {
  int rc = pair_up(r, kind, &sr->c, &sr->s);
  if (rc) {
    fail_run(r, "set-up (no faults yet): %s", pier_err_name(rc));
    return;
  }
  fault_plan plan;
  arm(r, &plan);
  for (int i = 0; i < 2; i++) {
    sdir *d = &sr->d[i];
    d->r = r;
    d->id = i;
    d->tx = i ? sr->s : sr->c;
    d->rx = i ? sr->c : sr->s;
    t_fill(d->src, XFER, 0xfa17 + (uint64_t)i * 7 + r->seed, 0);
  }
  for (int i = 0; i < 2; i++) {
    start_op(&sr->d[i], &sr->d[i].recv, 0);
    start_op(&sr->d[i], &sr->d[i].send, 1);
  }
  if (!drive(r, stream_stop, RUN_MS))
    fail_run(r, "hung: after %d ms, sent %zu/%zu, received %zu/%zu", RUN_MS,
             sr->d[0].sent, sr->d[1].sent, sr->d[0].recvd, sr->d[1].recvd);
  sr->tearing = 1;
  r->whole = sr->d[0].recvd == XFER && sr->d[1].recvd == XFER;
  for (int i = 0; i < 2; i++) {
    pier_socket *s = i ? sr->s : sr->c;
    pier_socket_set_data(s, r);
    if ((rc = pier_close(s, s_close_cb)) == 0) r->closes_due++;
    else fail_run(r, "pier_close: %s", pier_err_name(rc));
  }
  run_end(r);
  for (int i = 0; i < 2; i++)
    if (sr->d[i].send.pending || sr->d[i].recv.pending)
      fail_run(r, "direction %d: an op never completed", i);
}

/* ------------------------------------------------------------------ */
/* scenario: datagrams                                                 */
/* ------------------------------------------------------------------ */

static struct dgram_run {
  run *r;
  pier_socket *a, *b;       /* a sends to b */
  struct sockaddr_storage baddr;
  size_t blen;
  pier_op sop, rop;
  int spending, rpending;
  unsigned next;            /* seq of the next send */
  int sent_ok[NDGRAM];
  unsigned nsent_ok, nrecvd;
  int last_seq;
  unsigned char sbuf[1500], rbuf[1500];
  pier_buf sb[2], rb[2];
  int stop;
} *dr;

static void d_send_cb(pier_op *op, int st);
static void d_recv_cb(pier_op *op, int st);

/* Datagram seq: 4 bytes of seq then a pattern, len in total. */
static size_t dgram_len(unsigned seq) { return 4 + (seq * 97u + 13) % 1100; }

static void d_send_next(void) {
  run *r = dr->r;
  while (dr->next < NDGRAM && !dr->stop) {
    unsigned seq = dr->next++;
    size_t len = dgram_len(seq), cut = rnd_len(r, len);
    memcpy(dr->sbuf, &seq, 4);
    t_fill(dr->sbuf + 4, len - 4, 0xd6 + seq + r->seed, 0);
    dr->sb[0] = pier_buf_init(dr->sbuf, cut);
    dr->sb[1] = pier_buf_init(dr->sbuf + cut, len - cut);
    dr->spending = 1;
    int rc = pier_sendto(dr->a, &dr->sop, dr->sb, cut < len ? 2 : 1, 0,
                         T_SA(&dr->baddr), dr->blen, d_send_cb);
    if (rc == 0) return;
    dr->spending = 0;
    check_status(r, "pier_sendto", rc);
  }
}

static void d_recv_next(void) {
  size_t cut = rnd_len(dr->r, 600);
  dr->rb[0] = pier_buf_init(dr->rbuf, cut);
  dr->rb[1] = pier_buf_init(dr->rbuf + cut, sizeof dr->rbuf - cut);
  dr->rpending = 1;
  int rc = pier_recvfrom(dr->b, &dr->rop, dr->rb, 2, 0, NULL, d_recv_cb);
  if (rc) {
    dr->rpending = 0;
    check_status(dr->r, "pier_recvfrom", rc);
    if (rc == PIER_ENOMEM) dr->stop = 1; /* ends the scenario cleanly */
  }
}

static void d_send_cb(pier_op *op, int st) {
  (void)op;
  if (!dr->spending) fail_run(dr->r, "a sendto completed twice");
  dr->spending = 0;
  check_status(dr->r, "sendto", st);
  if (st == 0) {
    dr->sent_ok[dr->next - 1] = 1;
    dr->nsent_ok++;
  }
  d_send_next();
}

static void d_recv_cb(pier_op *op, int st) {
  run *r = dr->r;
  if (!dr->rpending) fail_run(r, "a recvfrom completed twice");
  dr->rpending = 0;
  check_status(r, "recvfrom", st);
  if (st) {
    if (st != PIER_ECANCELED && !dr->stop) d_recv_next();
    return;
  }
  unsigned seq;
  memcpy(&seq, dr->rbuf, 4);
  if (op->bytes < 4 || seq >= NDGRAM || op->bytes != dgram_len(seq)) {
    fail_run(r, "a datagram of %zu bytes (seq %u) that was never sent",
             op->bytes, seq);
  } else if ((int)seq <= dr->last_seq) {
    fail_run(r, "datagram %u arrived after %d (twice, or out of order)", seq,
             dr->last_seq);
  } else {
    size_t bad = t_verify(dr->rbuf + 4, op->bytes - 4, 0xd6 + seq + r->seed, 0);
    if (bad != (size_t)-1)
      fail_run(r, "datagram %u: byte %zu differs", seq, bad);
    for (int i = dr->last_seq + 1; i < (int)seq; i++)
      if (dr->sent_ok[i])
        fail_run(r, "datagram %d was sent and never arrived", i);
    dr->last_seq = (int)seq;
  }
  dr->nrecvd++;
  d_recv_next();
}

static int dgram_over(run *r) {
  (void)r;
  return r->failure[0] || dr->stop ||
         (!dr->spending && dr->next == NDGRAM && dr->nrecvd >= dr->nsent_ok);
}

static pier_socket *udp_bound(run *r, struct sockaddr_storage *addr,
                              size_t *len) {
  pier_socket *s = NULL;
  t_loopback("udp4", addr, len);
  int rc = pier_socket_open(r->loop, pier_protocol_find("udp4"), 0, &s);
  if (rc == 0) rc = pier_bind(s, T_SA(addr), *len);
  if (rc == 0) rc = pier_getsockname(s, addr, len);
  if (rc) {
    fail_run(r, "set-up (no faults yet): %s", pier_err_name(rc));
    close_sock(r, &s);
  }
  return s;
}

static void dgram_scenario(run *r) {
  struct sockaddr_storage aaddr;
  size_t alen;
  dr->r = r;
  dr->last_seq = -1;
  dr->a = udp_bound(r, &aaddr, &alen);
  dr->b = udp_bound(r, &dr->baddr, &dr->blen);
  if (!r->failure[0]) {
    fault_plan plan;
    arm(r, &plan);
    d_recv_next();
    d_send_next();
    if (!drive(r, dgram_over, RUN_MS))
      fail_run(r, "hung: %u of %d datagrams sent (%u ok), %u received",
               dr->next, NDGRAM, dr->nsent_ok, dr->nrecvd);
    r->whole = dr->nrecvd == NDGRAM;
  }
  close_sock(r, &dr->a);
  close_sock(r, &dr->b);
  run_end(r);
  if (dr->spending || dr->rpending) fail_run(r, "an op never completed");
}

/* ------------------------------------------------------------------ */
/* scenario: conditional accept                                        */
/* ------------------------------------------------------------------ */

typedef struct caller {
  pier_socket *s;
  pier_op cop, rop;
  int cpending, rpending;
  unsigned short port;      /* its local port, once connected */
  unsigned char greet[2];
  size_t got;
  int resolved;             /* greeted, refused or failed */
  int greeted;
} caller;

static struct accept_run {
  run *r;
  pier_socket *l;
  struct sockaddr_storage laddr;
  size_t llen;
  pier_op aop;
  int apending;
  unsigned short deferred;  /* the port a DEFER left at the head, or 0 */
  unsigned short accepted_ports[NCLIENTS];
  int naccepted;
  pier_socket *served[NCLIENTS];
  pier_op sops[NCLIENTS];
  pier_buf sbufs[NCLIENTS];
  unsigned char ports[NCLIENTS][2];
  int nserved;
  caller c[NCLIENTS];
  int resolved;
  int accept_verdicts;      /* callers the condition function accepted */
} *ar;

static unsigned short port_of(const struct sockaddr *a) {
  return ntohs(((const struct sockaddr_in *)a)->sin_port);
}

static void a_accept_next(void);

static int cond(pier_accept_info *info, void *ctx) {
  (void)ctx;
  unsigned short port = port_of(info->caller);
  if (ar->deferred) {
    if (port != ar->deferred)
      fail_run(ar->r, "after a DEFER of caller %u, the next accept presented "
               "caller %u first", ar->deferred, port);
    ar->deferred = 0;
    ar->accept_verdicts++;
    return PIER_CF_ACCEPT;
  }
  unsigned v = (unsigned)(rnd(ar->r) % 10);
  if (v < 2) {
    ar->deferred = port;
    return PIER_CF_DEFER;
  }
  if (v < 4) return PIER_CF_REJECT;
  ar->accept_verdicts++;
  return PIER_CF_ACCEPT;
}

static void serve_cb(pier_op *op, int st);

/* Send the caller its own port (as the server sees it) and keep s. */
static void greet(run *r, pier_socket *s) {
  int i = ar->nserved++;
  struct sockaddr_storage peer;
  size_t plen = sizeof peer;
  ar->served[i] = s;
  int rc = pier_getpeername(s, &peer, &plen);
  if (rc == 0) {
    unsigned short p = port_of(T_SA(&peer));
    ar->accepted_ports[ar->naccepted++] = p;
    memcpy(ar->ports[i], &p, 2);
    ar->sbufs[i] = pier_buf_init(ar->ports[i], 2);
    rc = pier_send(s, &ar->sops[i], &ar->sbufs[i], 1, 0, serve_cb);
  }
  if (rc) { /* the caller sees the connection end */
    check_status(r, "greeting an accepted caller", rc);
    close_sock(r, &ar->served[i]);
  }
}

/* A greeting that failed: the caller sees the connection end. */
static void serve_cb(pier_op *op, int st) {
  check_status(ar->r, "the server's greeting", st);
  if (st && st != PIER_ECANCELED) close_sock(ar->r, &ar->served[op - ar->sops]);
}

static void a_accept_cb(pier_op *op, int st) {
  run *r = ar->r;
  if (!ar->apending) fail_run(r, "an accept completed twice");
  ar->apending = 0;
  if (st == PIER_ECANCELED) return;
  if (st != PIER_ETRYAGAIN) check_status(r, "accept", st);
  if (st == 0 && ar->nserved == NCLIENTS) {
    fail_run(r, "more accepts than callers");
    pier_socket *s = op->accepted;
    close_sock(r, &s);
  } else if (st == 0) {
    greet(r, op->accepted);
  }
  if (st == PIER_ETRYAGAIN && !ar->deferred)
    fail_run(r, "accept said PIER_ETRYAGAIN with no DEFER");
  a_accept_next();
}

static void a_accept_next(void) {
  if (ar->resolved == NCLIENTS) return;
  ar->apending = 1;
  int rc = pier_accept(ar->l, &ar->aop, cond, NULL, a_accept_cb);
  if (rc) {
    ar->apending = 0;
    fail_run(ar->r, "pier_accept: %s", pier_err_name(rc));
  }
}

static void resolve(caller *c) {
  if (c->resolved) return;
  c->resolved = 1;
  ar->resolved++;
}

static void c_recv_cb(pier_op *op, int st) {
  caller *c = op->data;
  if (!c->rpending) fail_run(ar->r, "a caller's recv completed twice");
  c->rpending = 0;
  if (!ok_connect_status(st))
    fail_run(ar->r, "the caller's recv completed with %s", pier_err_name(st));
  if (st || op->bytes == 0) {
    resolve(c);
    return;
  }
  c->got += op->bytes;
  if (c->got < 2) {
    pier_buf b = pier_buf_init(c->greet + c->got, 2 - c->got);
    c->rpending = 1;
    if (pier_recv(c->s, &c->rop, &b, 1, 0, c_recv_cb)) c->rpending = 0;
    if (!c->rpending) resolve(c);
    return;
  }
  unsigned short p;
  memcpy(&p, c->greet, 2);
  if (p != c->port)
    fail_run(ar->r, "caller %u got the greeting of caller %u", c->port, p);
  c->greeted = 1;
  resolve(c);
}

static void c_conn_cb(pier_op *op, int st) {
  caller *c = op->data;
  if (!c->cpending) fail_run(ar->r, "a connect completed twice");
  c->cpending = 0;
  if (!ok_connect_status(st))
    fail_run(ar->r, "a caller's connect completed with %s", pier_err_name(st));
  struct sockaddr_storage me;
  size_t mlen = sizeof me;
  if (st || pier_getsockname(c->s, &me, &mlen) != 0) {
    resolve(c);
    return;
  }
  c->port = port_of(T_SA(&me));
  pier_buf b = pier_buf_init(c->greet, 2);
  c->rop.data = c;
  c->rpending = 1;
  int rc = pier_recv(c->s, &c->rop, &b, 1, 0, c_recv_cb);
  if (rc) {
    c->rpending = 0;
    check_status(ar->r, "pier_recv", rc);
    resolve(c);
  }
}

/* Opens (tcp4: under the plan; other kinds are opened before) and
   connects caller c. */
static void caller_start(run *r, caller *c) {
  int rc = 0;
  if (!c->s) rc = pier_socket_open(r->loop, pier_protocol_find("tcp4"), 0,
                                   &c->s);
  if (rc == 0) {
    c->cop.data = c;
    c->cpending = 1;
    rc = pier_connect(c->s, &c->cop, T_SA(&ar->laddr), ar->llen, NULL, NULL,
                      c_conn_cb);
    if (rc) c->cpending = 0;
  }
  if (rc) {
    check_status(r, "opening or connecting a caller", rc);
    resolve(c);
  }
}

static int accept_over(run *r) {
  (void)r;
  return ar->resolved == NCLIENTS;
}

static void accept_scenario(run *r, int kind) {
  ar->r = r;
  ar->l = t_kind_listener(r->loop, kind, &ar->laddr, &ar->llen, 16);
  /* A handshake whose last flight was lost (a send failed after the
     other side had finished) ends at the handshake timeout: 2 s, inside
     RUN_MS. */
  if (kind != T_KIND_TCP)
    pier_setsockopt(ar->l, PIER_SO_HANDSHAKE_TIMEOUT, 2000);
  for (int i = 0; kind != T_KIND_TCP && i < NCLIENTS; i++) {
    ar->c[i].s = t_kind_client(r->loop, kind);
    pier_setsockopt(ar->c[i].s, PIER_SO_HANDSHAKE_TIMEOUT, 2000);
  }
  fault_plan plan;
  arm(r, &plan);
  a_accept_next();
  for (int i = 0; i < NCLIENTS; i++) caller_start(r, &ar->c[i]);
  if (!drive(r, accept_over, RUN_MS)) {
    int i = 0;
    while (ar->c[i].resolved) i++;
    caller *c = &ar->c[i];
    fail_run(r, "hung: %d of %d callers resolved; caller %d (port %u): "
             "connect %s, greeting %s (%zu bytes), accepts %d, verdicts "
             "ACCEPT %d, accept %s", ar->resolved, NCLIENTS, i, c->port,
             c->cpending ? "pending" : "done", c->rpending ? "pending" : "-",
             c->got, ar->naccepted, ar->accept_verdicts,
             ar->apending ? "pending" : "idle");
  }
  int greeted = 0;
  for (int i = 0; i < NCLIENTS; i++) greeted += ar->c[i].greeted;
  r->whole = greeted == ar->accept_verdicts;
  for (int i = 0; i < NCLIENTS; i++) {
    caller *c = &ar->c[i];
    if (!c->greeted) continue;
    int found = 0;
    for (int j = 0; j < ar->naccepted; j++)
      found |= ar->accepted_ports[j] == c->port;
    if (!found)
      fail_run(r, "caller %u was greeted and never accepted", c->port);
  }
  close_sock(r, &ar->l);
  for (int i = 0; i < NCLIENTS; i++) close_sock(r, &ar->c[i].s);
  for (int i = 0; i < ar->nserved; i++) close_sock(r, &ar->served[i]);
  run_end(r);
  if (ar->apending) fail_run(r, "an accept never completed");
  for (int i = 0; i < NCLIENTS; i++)
    if (ar->c[i].cpending || ar->c[i].rpending)
      fail_run(r, "caller %d: an op never completed", i);
}


/* ------------------------------------------------------------------ */
/* scenario: blocking calls                                            */
/* ------------------------------------------------------------------ */

#define BXFER (32u * 1024) /* fits in loopback's socket buffers */

static struct block_run {
  run *r;
  pier_socket *c, *s;
  unsigned char src[BXFER], dst[BXFER];
  int done;                 /* atomic: the calls are over */
  int rescued;              /* atomic: the watchdog had to cancel them */
} *br;

/* Cancels the calls of a run that takes longer than 5 s (a hang). */
static void *block_watchdog(void *arg) {
  (void)arg;
  if (t_wait_flag(&br->done, 5000)) return NULL;
  T_FLAG_SET(&br->rescued, 1);
  pier_cancel_blocking(br->c);
  pier_cancel_blocking(br->s);
  return NULL;
}

/* Blocking sends of BXFER bytes from c in pieces, then blocking
   receives on s until all arrived or one fails; the status that ended
   them (0: all there).  *got: bytes received. */
static int block_transfer(run *r, size_t *got) {
  size_t sent = 0;
  int rc = 0;
  *got = 0;
  while (sent < BXFER && rc == 0) {
    pier_op op;
    pier_buf b[MAXBUF];
    size_t n = shape_over(r, b, br->src, sent, BXFER);
    memset(&op, 0, sizeof op);
    rc = pier_send(br->c, &op, b, n, 0, NULL);
    if (rc == 0) sent += op.bytes;
  }
  if (rc) pier_shutdown(br->c, PIER_SHUT_WR); /* the receiver sees an end */
  int rrc = 0;
  while (*got < sent && rrc == 0) {
    pier_op op;
    pier_buf b[MAXBUF];
    size_t n = shape_over(r, b, br->dst, *got, sent);
    memset(&op, 0, sizeof op);
    rrc = pier_recv(br->s, &op, b, n, 0, NULL);
    if (rrc == 0 && op.bytes == 0) break; /* the end, early */
    if (rrc == 0) *got += op.bytes;
  }
  if (*got < BXFER && !rc && !rrc && !destructive())
    fail_run(r, "%zu of %u bytes arrived with no fault that ends a "
             "connection", *got, BXFER);
  return rc ? rc : rrc;
}

static void block_scenario(run *r, int kind) {
  size_t got;
  int rc = pair_up(r, kind, &br->c, &br->s);
  if (rc) {
    fail_run(r, "set-up (no faults yet): %s", pier_err_name(rc));
    return;
  }
  br->r = r;
  t_fill(br->src, BXFER, 0xb10c + r->seed, 0);
  pthread_t th;
  int watched = pthread_create(&th, NULL, block_watchdog, NULL) == 0;
  fault_plan plan;
  arm(r, &plan);
  rc = block_transfer(r, &got);
  fault_disarm();
  T_FLAG_SET(&br->done, 1);
  if (watched) pthread_join(th, NULL);
  if (T_FLAG(&br->rescued))
    fail_run(r, "hung: blocking calls still waiting after 5 s (%zu bytes "
             "received)", got);
  check_status(r, "a blocking call", rc);
  size_t bad = t_verify(br->dst, got, 0xb10c + r->seed, 0);
  if (bad != (size_t)-1)
    fail_run(r, "byte %zu differs from the byte sent", bad);
  r->whole = got == BXFER;
  close_sock(r, &br->c);
  close_sock(r, &br->s);
  run_end(r);
}

/* ------------------------------------------------------------------ */
/* seeds                                                               */
/* ------------------------------------------------------------------ */

static unsigned nseeds(void) {
  const char *e = getenv("PIER_FAULT_SEEDS");
  if (e && *e) return (unsigned)strtoul(e, NULL, 0);
  return getenv("PIER_FAULT_SEED") ? 1 : 20;
}

static unsigned first_seed(void) {
  const char *e = getenv("PIER_FAULT_SEED");
  return e && *e ? (unsigned)strtoul(e, NULL, 0) : 1;
}

static char provider_name[32] = "?"; /* the loop's (suite_fault) */
static const char *provider(void) { return provider_name; }

typedef void (*scenario_fn)(run *r, int arg);


/* Over the seeds of one scenario: runs whole, faults injected. */
static unsigned seeds_whole;
static unsigned long seeds_injected;

/* One seed of fn: install, run, check the memory, uninstall.  0 if it
   passed, else 1 (having printed why and how to rerun it). */
static int one_seed(const char *name, const char *test, scenario_fn fn,
                    int arg, unsigned seed) {
  run r;
  T_OK(fault_install());
  long live = fault_record_get().live;
  int rc = run_begin(&r, seed);
  if (rc) {
    fault_uninstall();
    ck_abort_msg("pier_loop_new: %s", pier_err_name(rc));
  }
  fn(&r, arg);
  fault_record f = fault_record_get();
  if (!r.failure[0] && f.live != live)
    fail_run(&r, "%ld block(s) pier allocated were never freed", f.live - live);
  if (!r.failure[0] && r.benign && !r.whole)
    fail_run(&r, "only EINTR, EAGAIN and short transfers were injected, "
             "and not everything went through");
  seeds_whole += r.whole;
  for (int k = 0; k < FK_NKINDS; k++) seeds_injected += f.injected[k];
  char what[400];
  fault_describe(what, sizeof what);
  fault_uninstall();
  if (!r.failure[0]) return 0;
  printf("fault: %s seed %u FAILED: %s\n  injected: %s\n  rerun: "
         "PIER_FAULT_SEED=%u PIER_BACKEND=%s tests/pier-tests %s\n",
         name, seed, r.failure, what, seed, provider(), test);
  fflush(stdout);
  return 1;
}

static void run_seeds(const char *name, const char *test, scenario_fn fn,
                      int arg) {
  unsigned n = nseeds(), s0 = first_seed(), failures = 0, bad = 0;
  seeds_whole = 0;
  seeds_injected = 0;
  for (unsigned i = 0; i < n; i++)
    if (one_seed(name, test, fn, arg, s0 + i) && failures++ == 0) bad = s0 + i;
  printf("fault: provider %s scenario %s seeds %u failures %u (%u whole, "
         "%lu faults injected)%s\n", provider(), name, n, failures,
         seeds_whole, seeds_injected,
         syscall_faults ? "" : " (allocation failures only: the provider "
         "has no system-call table)");
  fflush(stdout);
  ck_assert_msg(failures == 0, "%s: %u of %u seeds failed, first seed %u "
                "(rerun: PIER_FAULT_SEED=%u tests/pier-tests %s)", name,
                failures, n, bad, bad, test);
}

static void stream_fn(run *r, int kind) {
  static struct stream_run st;
  memset(&st, 0, sizeof st);
  sr = &st;
  stream_scenario(r, kind);
}

static void dgram_fn(run *r, int arg) {
  static struct dgram_run st;
  (void)arg;
  memset(&st, 0, sizeof st);
  dr = &st;
  dgram_scenario(r);
}

static void block_fn(run *r, int kind) {
  static struct block_run st;
  memset(&st, 0, sizeof st);
  br = &st;
  block_scenario(r, kind);
}

static void accept_fn(run *r, int kind) {
  static struct accept_run st;
  memset(&st, 0, sizeof st);
  ar = &st;
  accept_scenario(r, kind);
}

START_TEST(stream_under_faults) {
  char name[32], test[64];
  if (t_kind_skip(_i)) return;
  snprintf(name, sizeof name, "stream-%s", t_kind_name(_i));
  snprintf(test, sizeof test, "fault/seeds/stream_under_faults");
  run_seeds(name, test, stream_fn, _i);
}
END_TEST

START_TEST(blocking_calls_under_faults) {
  char name[32];
  if (t_kind_skip(_i)) return;
  snprintf(name, sizeof name, "blocking-%s", t_kind_name(_i));
  run_seeds(name, "fault/seeds/blocking_calls_under_faults", block_fn, _i);
}
END_TEST

START_TEST(datagrams_under_faults) {
  run_seeds("dgram-udp4", "fault/seeds/datagrams_under_faults", dgram_fn, 0);
}
END_TEST

START_TEST(conditional_accept_under_faults) {
  char name[32];
  if (t_kind_skip(_i)) return;
  snprintf(name, sizeof name, "accept-%s", t_kind_name(_i));
  run_seeds(name, "fault/seeds/conditional_accept_under_faults", accept_fn,
            _i);
}
END_TEST


/* ------------------------------------------------------------------ */
/* every allocation in turn                                            */
/* ------------------------------------------------------------------ */

/*
 * A walk step runs armed: it makes the calls under test and waits for
 * their ops, checking each call's result and each op's status; it
 * returns 0, or what failed (for the record).  The walk counts the
 * allocations the step makes with nothing failing, then reruns it
 * failing the 1st, 2nd, ... of them, and after each run checks that the
 * loop goes on (a new pair carries data) and frees everything.
 */
typedef struct walk {
  const char *name;
  int kind;
  int (*step)(run *r, int kind);
  pier_socket *keep[4];     /* sockets the step leaves to close */
} walk;

static walk *cur_walk;

static void keep(pier_socket *s) {
  for (int i = 0; i < 4; i++)
    if (!cur_walk->keep[i]) {
      cur_walk->keep[i] = s;
      return;
    }
}


static int step_loop(run *r, int kind) {
  (void)kind;
  pier_loop *loop = NULL;
  int rc = pier_loop_new(NULL, &loop);
  if (rc && rc != PIER_ENOMEM)
    fail_run(r, "pier_loop_new: %s, not PIER_ENOMEM", pier_err_name(rc));
  if (rc == 0 && (rc = pier_loop_free(loop)) != 0)
    fail_run(r, "pier_loop_free of a new loop: %s", pier_err_name(rc));
  return rc;
}

#ifdef PIER_HAVE_OPENSSL
#  include <pier/tls.h>
/* TLS set-up of a client over s: context and wrap. */
static int tls_client(pier_socket **s) {
  pier_tls_ctx *ctx = NULL;
  pier_socket *t = NULL;
  int rc = pier_tls_ctx_new(PIER_TLS_CLIENT, &ctx);
  if (rc == 0) rc = pier_tls_wrap(ctx, *s, "localhost", &t);
  if (ctx) pier_tls_ctx_free(ctx);
  if (rc == 0) *s = t;
  return rc;
}
#else
static int tls_client(pier_socket **s) {
  (void)s;
  return PIER_EOPNOTSUPP;
}
#endif

static int step_open(run *r, int kind) {
  pier_socket *s = NULL;
  const char *proto = kind == T_KIND_MSG ? "msg4" : "tcp4";
  int rc = pier_socket_open(r->loop, pier_protocol_find(proto), 0, &s);
  if (rc == 0) keep(s);
  if (rc == 0 && kind == T_KIND_TLS && (rc = tls_client(&s)) == 0) {
    cur_walk->keep[0] = s; /* the TLS socket owns s now */
  }
  if (rc && rc != PIER_ENOMEM)
    fail_run(r, "opening a %s socket: %s, not PIER_ENOMEM", t_kind_name(kind),
             pier_err_name(rc));
  return rc;
}

static struct {
  pier_socket *l, *c;
  struct sockaddr_storage addr;
  size_t len;
} wc;

/* Before step_connect, with nothing failing: a listener and a client. */
static void prepare_connect(run *r, int kind) {
  int ms = 2000;
  wc.l = t_kind_listener(r->loop, kind, &wc.addr, &wc.len, 8);
  wc.c = t_kind_client(r->loop, kind);
  keep(wc.l);
  keep(wc.c);
  if (kind != T_KIND_TCP) {
    pier_setsockopt(wc.l, PIER_SO_HANDSHAKE_TIMEOUT, ms);
    pier_setsockopt(wc.c, PIER_SO_HANDSHAKE_TIMEOUT, ms);
  }
}

/* The ops of step_connect: static, since an accept may outlive it
   until its listener is closed. */
static pairing wp;

static void walk_acc_cb(pier_op *op, int st) {
  if (st == 0) keep(op->accepted);
  wp.adone = st ? st : 1;
}

static int accept_done(run *r) {
  (void)r;
  return wp.adone != 0;
}

static int connect_done(run *r) {
  (void)r;
  return wp.cdone != 0;
}

/* A layered listener (msg4, tls) accepts below eagerly and presents only
   callers whose handshake completed: a caller that failed before that
   never reaches the application's accept, which waits for the next. */
static int accept_or_layered_refusal(run *r) {
  return accept_done(r) ||
         (cur_walk->kind != T_KIND_TCP && wp.cdone && wp.cdone != 1);
}

/* wp.aop cancelled: it must complete (cancelled, or just done). */
static void cancel_accept(run *r) {
  if (wp.adone) return;
  pier_cancel(&wp.aop);
  if (!drive(r, accept_done, 3000))
    fail_run(r, "a cancelled accept never completed");
  else if (wp.adone != 1 && !ok_connect_status(wp.adone))
    fail_run(r, "a cancelled accept completed with %s",
             pier_err_name(wp.adone));
}

/*
 * Accept and connect, each completing once with 0 or a documented
 * status.  A connect that fails at once leaves the accept waiting: it is
 * cancelled.  An accept that fails while the connect goes on is made
 * again, disarmed: the listener goes on and the caller's connect ends
 * one way or the other.
 */
static int step_connect(run *r, int kind) {
  (void)kind;
  memset(&wp, 0, sizeof wp);
  wp.aop.data = wp.cop.data = &wp;
  int rc = pier_accept(wc.l, &wp.aop, NULL, NULL, walk_acc_cb);
  if (rc) {
    if (rc != PIER_ENOMEM)
      fail_run(r, "pier_accept: %s, not PIER_ENOMEM", pier_err_name(rc));
    return rc;
  }
  rc = pier_connect(wc.c, &wp.cop, T_SA(&wc.addr), wc.len, NULL, NULL,
                    pair_con_cb);
  if (rc) {
    if (rc != PIER_ENOMEM)
      fail_run(r, "pier_connect: %s, not PIER_ENOMEM", pier_err_name(rc));
    wp.cdone = rc;
    cancel_accept(r);
    return rc;
  }
  if (!drive(r, accept_or_layered_refusal, 5000)) {
    fail_run(r, "the accept never completed (connect: %s)",
             wp.cdone == 1 ? "done" : pier_err_name(wp.cdone));
    return PIER_ETIMEDOUT;
  }
  int first = wp.adone;
  if (first && first != 1) {
    if (!ok_connect_status(first))
      fail_run(r, "accept completed with %s", pier_err_name(first));
    if (!wp.cdone) {
      fault_disarm();
      wp.adone = 0;
      if ((rc = pier_accept(wc.l, &wp.aop, NULL, NULL, walk_acc_cb)) != 0)
        fail_run(r, "pier_accept after one failed with %s: %s",
                 pier_err_name(first), pier_err_name(rc));
    }
  }
  if (!drive(r, connect_done, 5000)) {
    fail_run(r, "the connect never completed (accept: %s)",
             pier_err_name(first == 1 ? 0 : first));
    return PIER_ETIMEDOUT;
  }
  if (wp.cdone != 1 && !ok_connect_status(wp.cdone))
    fail_run(r, "connect completed with %s", pier_err_name(wp.cdone));
  if (!wp.adone && wp.cdone == 1) drive(r, accept_done, 3000);
  cancel_accept(r);
  return wp.cdone == 1 ? (first == 1 || !first ? 0 : first) : wp.cdone;
}

/* After a step: a new pair of kind on the same loop carries 5 bytes. */
static int exchange_done;
static void exchange_cb(pier_op *op, int st) {
  (void)op;
  exchange_done = st ? st : exchange_done + 1;
}

static int exchanged(run *r) {
  (void)r;
  return exchange_done < 0 || exchange_done == 2;
}

static void loop_goes_on(run *r, int kind) {
  pier_socket *c, *s;
  int rc = pair_up(r, kind, &c, &s);
  if (rc) {
    fail_run(r, "a new %s pair afterwards: %s", t_kind_name(kind),
             pier_err_name(rc));
    return;
  }
  char out[5] = "hello", in[5] = {0};
  pier_buf ob = pier_buf_init(out, 5), ib = pier_buf_init(in, 5);
  pier_op sop, rop;
  memset(&sop, 0, sizeof sop);
  memset(&rop, 0, sizeof rop);
  exchange_done = 0;
  if (pier_recv(s, &rop, &ib, 1, PIER_MSG_WAITALL, exchange_cb) != 0 ||
      pier_send(c, &sop, &ob, 1, 0, exchange_cb) != 0)
    fail_run(r, "starting I/O on a new pair afterwards");
  else if (!drive(r, exchanged, 5000) || exchange_done != 2 ||
           memcmp(in, out, 5) != 0)
    fail_run(r, "a new pair afterwards did not carry its bytes (%s)",
             exchange_done < 0 ? pier_err_name(exchange_done) : "timeout");
  close_sock(r, &c);
  close_sock(r, &s);
}

/* One run of w failing allocation k (0: none); the allocations made. */
static unsigned long walk_once(walk *w, long k) {
  run r;
  fault_plan plan;
  memset(&plan, 0, sizeof plan);
  plan.alloc_fail_at = k;
  memset(w->keep, 0, sizeof w->keep);
  cur_walk = w;
  T_OK(fault_install());
  long live = fault_record_get().live;
  int rc = run_begin(&r, (unsigned)k);
  ck_assert_msg(rc == 0, "pier_loop_new: %s", pier_err_name(rc));
  if (w->step == step_connect) prepare_connect(&r, w->kind);
  fault_arm(&plan);
  int got = w->step(&r, w->kind);
  fault_disarm();
  fault_record f = fault_record_get();
  for (int i = 0; i < 4; i++) close_sock(&r, &w->keep[i]);
  drive(&r, closes_done, 3000);
  loop_goes_on(&r, w->kind);
  run_end(&r);
  f.live = fault_record_get().live;
  if (!r.failure[0] && f.live != live)
    fail_run(&r, "%ld block(s) pier allocated were never freed",
             f.live - live);
  fault_uninstall();
  ck_assert_msg(!r.failure[0], "%s: failing allocation %ld of the step: %s "
                "(the step returned %s)", w->name, k, r.failure,
                pier_err_name(got));
  return f.allocs;
}

static walk walks[] = {
  {"pier_loop_new", T_KIND_TCP, step_loop, {0}},
  {"open tcp4", T_KIND_TCP, step_open, {0}},
  {"open msg4", T_KIND_MSG, step_open, {0}},
  {"open tls (TLS set-up)", T_KIND_TLS, step_open, {0}},
  {"accept+connect tcp4", T_KIND_TCP, step_connect, {0}},
  {"accept+connect msg4 (handshake)", T_KIND_MSG, step_connect, {0}},
  {"accept+connect tls (handshake)", T_KIND_TLS, step_connect, {0}},
};
#define NWALKS (int)(sizeof walks / sizeof walks[0])

START_TEST(every_allocation_fails_in_turn) {
  walk *w = &walks[_i];
  if (t_kind_skip(w->kind)) return;
  unsigned long n = walk_once(w, 0);
  ck_assert_msg(n > 0, "%s: no allocation to fail", w->name);
  for (unsigned long k = 1; k <= n; k++) walk_once(w, (long)k);
  printf("fault: provider %s walk %s: %lu allocations, each failed in turn\n",
         provider(), w->name, n);
  fflush(stdout);
}
END_TEST

/* ------------------------------------------------------------------ */
/* the suite                                                           */
/* ------------------------------------------------------------------ */

/* Is the provider under test one whose system calls the plan reaches?
   (Called before any test: nothing may assert.) */
static int table_reaches_provider(void) {
  pier_loop *loop;
  if (pier_loop_new(NULL, &loop) != 0) return 0;
  snprintf(provider_name, sizeof provider_name, "%s",
           pier_loop_backend(loop));
  int yes = fault_have_syscalls() && strcmp(provider_name, "libevent") == 0;
  pier_loop_free(loop);
  return yes;
}

Suite *suite_fault(void) {
  Suite *s = suite_create("fault");
  TCase *tc = tcase_create("seeds");
  /* The seeds of a scenario run one after another inside one test. */
  tcase_set_timeout(tc, 600);
  /* Where the provider has no system-call table (iocp has none yet),
     the same scenarios run with allocation failures alone. */
  syscall_faults = table_reaches_provider();
  tcase_add_loop_test(tc, stream_under_faults, 0, T_NKINDS);
  tcase_add_loop_test(tc, blocking_calls_under_faults, 0, T_NKINDS);
  tcase_add_test(tc, datagrams_under_faults);
  tcase_add_loop_test(tc, conditional_accept_under_faults, 0, T_NKINDS);
  suite_add_tcase(s, tc);
  tc = tcase_create("allocs");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, every_allocation_fails_in_turn, 0, NWALKS);
  suite_add_tcase(s, tc);
  return s;
}
