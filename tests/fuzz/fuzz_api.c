/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/fuzz_api.c - libFuzzer target that reads its input as a
 * program of pier calls on real loopback sockets (127.0.0.1 only) and
 * checks the promises of DESIGN.md §3.4 on every callback.
 *
 * Input format: a sequence of 4-byte instructions OP A B C (at most
 * MAXINS; a trailing partial one is ignored).  OP & 0x1f (modulo the
 * number of opcodes) picks the call; OP & 0x80 queues the instruction
 * instead of running it: the next callback that runs (operation,
 * close, timer, network event or condition function) runs it from
 * inside itself, so any call can be made re-entrantly.  S is slot A %
 * NSLOT, P is op record B % NOP.
 *   0 OPEN     S  proto B%4 (tcp4 udp4 tcp4+cd msg4), C&1 non-blocking
 *   1 BIND     S  127.0.0.1:0; C&1: a 1-byte addrlen (must be refused)
 *   2 LISTEN   S  backlog B%8
 *   3 ACCEPT   S P  C = condition script: C&3 0/3 ACCEPT 1 REJECT
 *                   2 DEFER; (C>>2)&7 what the condition function does
 *                   first: 1 close the listener, 2 cancel this accept,
 *                   3 start an accept on op (C>>5)+P, 4 run the queued
 *                   instruction, 5 close the slot after the listener
 *   4 CONNECT  S P  to slot C%NSLOT's address (port 1 if it has none);
 *                   C&0x80: addrlen 0 (must be refused)
 *   5 RECV     S P  C: nbufs (C&7)+1, flags PEEK/OOB/WAITALL from bits
 *                   3-5, C&0x40 recvfrom, C&0x80 an unknown flag
 *                   (must be refused)
 *   6 SEND     S P  C: nbufs (C&7)+1, C&8 OOB, C&0x40 sendto slot S+1,
 *                   C&0x80 a NULL buffer of length 1 (must be refused)
 *   7 CANCEL   P
 *   8 CLOSE    S  C&1: linger 0 first (a reset)
 *   9 SHUTDOWN S  how B%4 (3 must be refused)
 *  10 DISCONN  S P  C%8 bytes of disconnect data
 *  11 EVSEL    S  mask B&0x7f (bit 6 is unknown: must be refused)
 *  12 POST     P
 *  13 TIMER    timer A%NTIMER: B%5 == 0 stops it, else starts it with
 *              B%5 ms and repeat C%3 ms
 *  14 RUN      A&2: pier_loop_stop; else A&1: ONCE behind a (B%3)+1 ms
 *              guard timer, else NOWAIT (from a callback: must answer
 *              PIER_EBUSY)
 *  15 ENUM     S  pier_enum_network_events
 *  16 NAMES    S  pier_getsockname and pier_getpeername
 * Buffers are filled from the instruction bytes; the loop runs only
 * when the program says so (never blocking: every operation has a
 * callback).  At the end every socket is closed and the loop runs until
 * the close callbacks have run; pier_loop_free must then return 0.
 *
 * Checked: a call that fails returns a PIER_E* code and its callback
 * never runs; a call with a bad argument fails; each op completes
 * exactly once, with PIER_ECANCELED only after pier_cancel or
 * pier_close, never after its socket's close callback (which runs only
 * when every op of the socket has completed); per socket and direction
 * (receives and accepts; urgent-data receives, which have a queue of
 * their own; sends and disconnects) ops complete in start order, except
 * one pier_cancel completed; no callback runs inside
 * another or inside a pier call (one thread serves the loop); a stopped
 * timer does not fire; a network-event callback never follows
 * pier_close; the loop frees cleanly.  A failure prints what broke and
 * aborts.  Built with tests/fuzz/replay.c instead of libFuzzer, the same
 * function replays corpus files as a plain test (make check).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#  include <arpa/inet.h>
#  include <netinet/in.h>
#endif

#include "pier.h"

#define MAXINS 64   /* instructions one input runs */
#define NSLOT 8     /* sockets addressable at once */
#define NOP 12      /* op records */
#define NTIMER 3
#define NQUEUE 8    /* queued instructions */
#define BUFROOM 64  /* bytes of one op's buffers */
#define NOPCODE 17

#define CHECK(c, what) \
  do { if (!(c)) fail(__LINE__, what); } while (0)

/* Directions of per-socket order: receives and accepts; sends and
   disconnects; connects; urgent-data receives (a queue of their own,
   served as urgent data arrives). */
enum dir { DIR_IN, DIR_OUT, DIR_CONNECT, DIR_OOB, DIR_NONE };

typedef struct slot {
  pier_socket *s;
  int closing;       /* pier_close called */
  unsigned gen;      /* bumped when the close callback frees it */
  unsigned long long seq[DIR_NONE]; /* ops started per direction */
  struct sockaddr_in addr;   /* bound address, port 0 if none */
} slot;

typedef struct rec {
  pier_op op;
  int pending, cancelled;
  int slot;            /* -1: a post */
  unsigned gen;
  int dir;
  unsigned long long seq;
  int accept;           /* an accept (else a receive when DIR_IN) */
  unsigned char script; /* accept: the condition script */
  pier_buf bufs[8];
  char room[BUFROOM];
  struct sockaddr_storage from;
  pier_connect_data cdata;
  char callee[16];
} rec;

typedef struct trec {
  pier_timer t;
  int active, repeat;
} trec;

static struct state {
  pier_loop *loop;
  slot slots[NSLOT];
  rec ops[NOP];
  trec timers[NTIMER];
  pier_timer guard;
  int guard_fired;
  unsigned char queue[NQUEUE][4];
  int qhead, qlen;
  int busy;        /* a callback or a top-level pier call is running */
  int finishing;
  int closes_due;  /* close callbacks still to come */
  int strays;      /* accepted sockets with no free slot, closing */
} g;

static int tracing = -1; /* PIER_FUZZ_TRACE set: print every step */

static void trace(const char *fmt, int a, int b, int c) {
  if (tracing < 0) tracing = getenv("PIER_FUZZ_TRACE") != NULL;
  if (!tracing) return;
  fprintf(stderr, "fuzz_api: ");
  fprintf(stderr, fmt, a, b, c);
  fputc('\n', stderr);
}

static void fail(int line, const char *what) {
  fprintf(stderr, "fuzz_api: line %d: %s\n", line, what);
  abort();
}

static void check_code(int rc) {
  CHECK(rc <= 0, "a call returned a positive value");
  CHECK(rc == 0 || strcmp(pier_err_name(rc), "UNKNOWN") != 0,
        "a call returned a code that is no PIER_E*");
}

static void run_insn(const unsigned char *in);

/* pier_loop_run: 1 alive, 0 not, or a PIER_E* code. */
static void check_run(int rc) {
  CHECK(rc == 0 || rc == 1 || (rc < 0 && strcmp(pier_err_name(rc), "UNKNOWN") != 0),
        "pier_loop_run returned something else than 0, 1 or a PIER_E*");
}

/* ------------------------------------------------------------------ */
/* callbacks                                                           */
/* ------------------------------------------------------------------ */

/* Every callback but the condition function: none may run inside
   another, or inside a pier call the program made. */
static void cb_enter(void) {
  CHECK(g.busy == 0, "a callback ran inside another callback or pier call");
  g.busy = 1;
}

/* Runs the oldest queued instruction, if any (from inside a callback). */
static void run_queued(void) {
  if (!g.qlen || g.finishing) return;
  unsigned char in[4];
  memcpy(in, g.queue[g.qhead], 4);
  g.qhead = (g.qhead + 1) % NQUEUE;
  g.qlen--;
  run_insn(in);
}

static void cb_leave(void) {
  run_queued();
  g.busy = 0;
}

/* Per-direction order: no op of the same socket and direction started
   before r is still pending, unless one of them was cancelled. */
static void check_order(const rec *r) {
  if (r->slot < 0 || r->dir == DIR_NONE || r->cancelled) return;
  for (int i = 0; i < NOP; i++) {
    const rec *o = &g.ops[i];
    if (o == r || !o->pending || o->slot != r->slot || o->dir != r->dir)
      continue;
    CHECK(o->seq > r->seq || o->cancelled,
          "an op completed ahead of an earlier one of its direction");
  }
}

static void take_accepted(pier_socket *a);

static void on_op(pier_op *op, int status) {
  rec *r = (rec *)op; /* op is the first member */
  trace("callback op %d slot %d status %d", (int)(r - g.ops), r->slot, status);
  cb_enter();
  CHECK(r >= g.ops && r < g.ops + NOP, "a callback for an unknown op");
  CHECK(r->pending, "an op completed twice, or after its start failed");
  CHECK(op->status == status, "op->status differs from the status passed");
  check_code(status);
  if (r->slot >= 0) {
    slot *sl = &g.slots[r->slot];
    CHECK(sl->gen == r->gen && sl->s, "an op completed after its close callback");
    CHECK(status != PIER_ECANCELED || r->cancelled || sl->closing,
          "PIER_ECANCELED without pier_cancel or pier_close");
  } else {
    CHECK(status == 0 || (status == PIER_ECANCELED && r->cancelled),
          "a post completed with an error");
  }
  check_order(r);
  r->pending = 0;
  if (r->accept && status == 0) {
    CHECK(op->accepted != NULL, "an accept succeeded with no socket");
    take_accepted(op->accepted);
  }
  if ((r->dir == DIR_IN || r->dir == DIR_OOB) && !r->accept && status == 0)
    CHECK(op->bytes <= BUFROOM, "a receive reported more bytes than its buffers");
  cb_leave();
}

static void on_close(pier_socket *s) {
  slot *sl = pier_socket_get_data(s);
  trace("close callback slot %d", sl ? (int)(sl - g.slots) : -1, 0, 0);
  cb_enter();
  if (sl) {
    CHECK(sl->s == s && sl->closing, "a close callback without pier_close");
    int i = (int)(sl - g.slots);
    for (int k = 0; k < NOP; k++)
      CHECK(!(g.ops[k].pending && g.ops[k].slot == i),
            "the close callback ran before an op of its socket completed");
    sl->s = NULL;
    memset(&sl->addr, 0, sizeof sl->addr);
    sl->closing = 0;
    sl->gen++;
  } else {
    g.strays--;
  }
  g.closes_due--;
  CHECK(g.closes_due >= 0, "more close callbacks than closes");
  cb_leave();
}

static void take_accepted(pier_socket *a) {
  CHECK(pier_socket_get_data(a) == NULL, "an accepted socket with data set");
  for (int i = 0; i < NSLOT && !g.finishing; i++) {
    slot *sl = &g.slots[i];
    if (sl->s) continue;
    sl->s = a;
    pier_socket_set_data(a, sl);
    return;
  }
  /* No room (or the end): close it at once. */
  g.strays++;
  g.closes_due++;
  CHECK(pier_close(a, on_close) == 0, "closing a fresh accepted socket failed");
}

static void on_timer(pier_timer *t) {
  trec *tr = (trec *)t;
  trace("timer %d fired", (int)(tr - g.timers), 0, 0);
  cb_enter();
  CHECK(tr->active, "a stopped timer fired");
  if (!tr->repeat) tr->active = 0;
  cb_leave();
}

static void on_guard(pier_timer *t) {
  (void)t;
  g.guard_fired = 1;
}

static void on_events(pier_socket *s, unsigned events) {
  slot *sl = pier_socket_get_data(s);
  trace("events slot %d 0x%x", sl ? (int)(sl - g.slots) : -1, (int)events, 0);
  cb_enter();
  /* An accepted socket inherits the selection; its data is set in the
     accept callback, before any of its own callbacks may run. */
  CHECK(sl != NULL, "a network event before the accept callback");
  CHECK(sl->s == s, "a network event after the close callback");
  CHECK(!sl->closing, "a network event after pier_close");
  CHECK((events & ~(unsigned)PIER_EV_ALL) == 0, "unknown network events");
  cb_leave();
}

static void close_slot(slot *sl, int reset);

static int on_cond(pier_accept_info *info, void *ctx) {
  rec *r = ctx;
  int was = g.busy;
  trace("condition op %d script 0x%x", (int)(r - g.ops), r->script, 0);
  CHECK(r->pending, "a condition function ran for an op not pending");
  CHECK(info != NULL && info->caller != NULL, "a condition function without caller");
  slot *lsl = &g.slots[r->slot];
  CHECK(lsl->s && lsl->gen == r->gen, "a condition function after the close callback");
  if (info->callee_data && info->callee_data_cap) {
    size_t n = info->callee_data_cap < 3 ? info->callee_data_cap : 3;
    memcpy(info->callee_data, "yes", n);
    info->callee_data_len = n;
  }
  g.busy = 1;
  switch ((r->script >> 2) & 7) {
  case 1: if (!lsl->closing) close_slot(lsl, 0); break;
  case 2: if (pier_cancel(&r->op) == 0) r->cancelled = 1; break;
  case 3: {
    unsigned char in[4] = {3, (unsigned char)r->slot,
                           (unsigned char)((r->script >> 5) + (r - g.ops) + 1),
                           (unsigned char)(r->script & 3)};
    run_insn(in);
    break;
  }
  case 4: run_queued(); break;
  case 5: {
    slot *o = &g.slots[(r->slot + 1) % NSLOT];
    if (o->s && !o->closing) close_slot(o, 1);
    break;
  }
  default: break;
  }
  g.busy = was;
  switch (r->script & 3) {
  case 1: return PIER_CF_REJECT;
  case 2: return PIER_CF_DEFER;
  default: return PIER_CF_ACCEPT;
  }
}

/* ------------------------------------------------------------------ */
/* instructions                                                        */
/* ------------------------------------------------------------------ */

static void close_slot(slot *sl, int reset) {
  if (reset) check_code(pier_setsockopt(sl->s, PIER_SO_LINGER, 0));
  int rc = pier_close(sl->s, on_close);
  CHECK(rc == 0, "pier_close of an open socket failed");
  sl->closing = 1;
  g.closes_due++;
}

/* Marks r started on slot i in direction dir, before the call: a
   callback may run inside it only as a failure, which cb_enter sees. */
static void start(rec *r, int i, int dir) {
  r->slot = i;
  r->gen = i >= 0 ? g.slots[i].gen : 0;
  r->dir = dir;
  r->cancelled = 0;
  r->accept = 0;
  r->seq = i >= 0 && dir != DIR_NONE ? g.slots[i].seq[dir]++ : 0;
  r->pending = 1;
}

/* The result of a start: on failure the op was never started. */
static void started(rec *r, int rc, int bad) {
  trace("start op %d: %d", (int)(r - g.ops), rc, 0);
  check_code(rc);
  if (bad) CHECK(rc < 0, "a call with a bad argument was accepted");
  if (rc < 0) r->pending = 0;
}

static size_t shape(rec *r, unsigned c, const unsigned char *fill, int nullbuf) {
  size_t n = (c & 7) + 1, used = 0;
  for (size_t k = 0; k < n; k++) {
    size_t len = (fill[k % 3] >> (k & 3)) % (BUFROOM / 8 + 1);
    if (k == 0 && len == 0) len = 1;
    r->bufs[k] = pier_buf_init(r->room + used, len);
    memset(r->room + used, fill[k % 3], len);
    used += len;
  }
  if (nullbuf) r->bufs[n - 1] = pier_buf_init(NULL, 1);
  return n;
}

static void set_target(struct sockaddr_in *to, unsigned c) {
  const slot *t = &g.slots[c % NSLOT];
  if (t->s && t->addr.sin_port) {
    *to = t->addr;
    return;
  }
  memset(to, 0, sizeof *to);
  to->sin_family = AF_INET;
  to->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to->sin_port = htons(1);
}

static void do_open(slot *sl, unsigned b, unsigned c) {
  static const char *const names[] = {"tcp4", "udp4", "tcp4+cd", "msg4"};
  if (sl->s) return;
  const pier_protocol_info *p = pier_protocol_find(names[b % 4]);
  if (!p) return;
  pier_socket *s = NULL;
  int rc = pier_socket_open(g.loop, p, c & 1 ? PIER_SOCK_NONBLOCK : 0, &s);
  check_code(rc);
  if (rc < 0) return;
  sl->s = s;
  memset(&sl->addr, 0, sizeof sl->addr);
  pier_socket_set_data(s, sl);
}

static void do_bind(slot *sl, unsigned c) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int bad = c & 1;
  int rc = pier_bind(sl->s, (struct sockaddr *)&a, bad ? 1 : sizeof a);
  check_code(rc);
  if (bad) CHECK(rc < 0, "pier_bind took a 1-byte address");
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  if (rc == 0 && pier_getsockname(sl->s, &ss, &len) == 0 &&
      ss.ss_family == AF_INET)
    memcpy(&sl->addr, &ss, sizeof sl->addr);
}

static void do_listen(slot *sl, unsigned b) {
  int rc = pier_listen(sl->s, (int)(b % 8));
  check_code(rc);
  if (rc == 0) {
    struct sockaddr_storage ss;
    size_t len = sizeof ss;
    if (pier_getsockname(sl->s, &ss, &len) == 0 && ss.ss_family == AF_INET)
      memcpy(&sl->addr, &ss, sizeof sl->addr);
  }
}

static void do_io(int code, int i, rec *r, const unsigned char *in) {
  slot *sl = &g.slots[i];
  unsigned c = in[3];
  int rc, bad = 0;
  if (code == 5) {
    unsigned fl = (c >> 3) & 7;
    if (c & 0x80) fl |= 1u << 12, bad = 1;
    size_t n = shape(r, c, in, 0);
    start(r, i, fl & PIER_MSG_OOB ? DIR_OOB : DIR_IN);
    rc = c & 0x40 ? pier_recvfrom(sl->s, &r->op, r->bufs, n, fl, &r->from, on_op)
                  : pier_recv(sl->s, &r->op, r->bufs, n, fl, on_op);
  } else {
    unsigned fl = c & 8 ? PIER_MSG_OOB : 0;
    bad = !!(c & 0x80);
    size_t n = shape(r, c, in, bad);
    start(r, i, DIR_OUT);
    if (c & 0x40) {
      struct sockaddr_in to;
      set_target(&to, (unsigned)i + 1);
      rc = pier_sendto(sl->s, &r->op, r->bufs, n, fl, (struct sockaddr *)&to,
                       sizeof to, on_op);
    } else {
      rc = pier_send(sl->s, &r->op, r->bufs, n, fl, on_op);
    }
  }
  started(r, rc, bad);
}

static void do_accept(int i, rec *r, unsigned c) {
  r->script = (unsigned char)c;
  start(r, i, DIR_IN);
  r->accept = 1;
  started(r, pier_accept(g.slots[i].s, &r->op, on_cond, r, on_op), 0);
}

static void do_connect(int i, rec *r, unsigned c) {
  struct sockaddr_in to;
  set_target(&to, c);
  const pier_protocol_info *p = pier_socket_protocol(g.slots[i].s);
  pier_connect_data *cd = NULL;
  if (p && (p->caps & PIER_CAP_CONNECT_DATA)) {
    memset(&r->cdata, 0, sizeof r->cdata);
    r->cdata.caller = "hi";
    r->cdata.caller_len = c & 3;
    r->cdata.callee = r->callee;
    r->cdata.callee_cap = sizeof r->callee;
    cd = &r->cdata;
  }
  int bad = !!(c & 0x80);
  start(r, i, DIR_CONNECT);
  int rc = pier_connect(g.slots[i].s, &r->op, (struct sockaddr *)&to,
                        bad ? 0 : sizeof to, cd, NULL, on_op);
  started(r, rc, bad);
}

static void do_disconnect(int i, rec *r, unsigned c) {
  start(r, i, DIR_OUT);
  started(r, pier_disconnect(g.slots[i].s, &r->op, "bye", c % 4, on_op), 0);
}

static void do_cancel(rec *r) {
  int rc = pier_cancel(&r->op);
  check_code(rc);
  if (!r->pending) CHECK(rc == PIER_ENOENT, "pier_cancel of an idle op did not answer PIER_ENOENT");
  if (rc == 0) r->cancelled = 1;
}

static void do_timer(trec *tr, unsigned b, unsigned c) {
  if (b % 5 == 0) {
    check_code(pier_timer_stop(&tr->t));
    tr->active = 0;
    return;
  }
  tr->repeat = (int)(c % 3);
  trace("timer %d start %d ms", (int)(tr - g.timers), (int)(b % 5), 0);
  int rc = pier_timer_start(&tr->t, b % 5, (uint64_t)tr->repeat, on_timer);
  check_code(rc);
  tr->active = rc == 0;
}

static void do_run(unsigned a, unsigned b) {
  if (a & 2) { /* from anywhere: the run in progress, or the next, ends */
    CHECK(pier_loop_stop(g.loop) == 0, "pier_loop_stop failed");
    return;
  }
  if (g.busy) {
    CHECK(pier_loop_run(g.loop, PIER_RUN_NOWAIT) == PIER_EBUSY,
          "pier_loop_run from a callback did not answer PIER_EBUSY");
    return;
  }
  if (a & 1) {
    CHECK(pier_timer_start(&g.guard, b % 3 + 1, 0, on_guard) == 0, "guard timer");
    check_run(pier_loop_run(g.loop, PIER_RUN_ONCE));
    CHECK(pier_timer_stop(&g.guard) == 0, "guard timer stop");
  } else {
    check_run(pier_loop_run(g.loop, PIER_RUN_NOWAIT));
  }
}

static void do_names(slot *sl) {
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  check_code(pier_getsockname(sl->s, &ss, &len));
  len = sizeof ss;
  check_code(pier_getpeername(sl->s, &ss, &len));
  len = 0;
  CHECK(pier_getsockname(sl->s, &ss, &len) < 0, "pier_getsockname took *len 0");
}

/* The instructions on a socket need an open one (a closing one too: its
   calls must answer PIER_EBADF, not crash). */
static void run_socket_insn(int code, const unsigned char *in) {
  int i = in[1] % NSLOT;
  slot *sl = &g.slots[i];
  rec *r = &g.ops[in[2] % NOP];
  if (!sl->s) return;
  if (r->pending && (code == 3 || code == 4 || code == 5 || code == 6 ||
                     code == 10)) {
    /* Starting a pending op is refused and changes nothing: it still
       completes once, where it was started. */
    pier_buf b = pier_buf_init(r->room, 1);
    pier_op before;
    memcpy(&before, &r->op, sizeof before);
    int rc = pier_send(sl->s, &r->op, &b, 1, 0, on_op);
    check_code(rc);
    CHECK(rc < 0, "a pending op was started again");
    CHECK(memcmp(&before, &r->op, sizeof before) == 0,
          "a refused start changed the pending op");
    return;
  }
  switch (code) {
  case 1: do_bind(sl, in[3]); break;
  case 2: do_listen(sl, in[2]); break;
  case 3: do_accept(i, r, in[3]); break;
  case 4: do_connect(i, r, in[3]); break;
  case 5: case 6: do_io(code, i, r, in); break;
  case 8: if (!sl->closing) close_slot(sl, in[3] & 1);
    else CHECK(pier_close(sl->s, on_close) == PIER_EALREADY, "a second pier_close");
    break;
  case 9: {
    int rc = pier_shutdown(sl->s, (int)(in[2] % 4));
    check_code(rc);
    if (in[2] % 4 == 3) CHECK(rc == PIER_EINVAL, "pier_shutdown took how 3");
    break;
  }
  case 10: do_disconnect(i, r, in[3]); break;
  case 11: {
    unsigned mask = in[2] & 0x7f;
    int rc = pier_event_select(sl->s, mask, mask ? on_events : NULL);
    check_code(rc);
    if (mask & 0x40) CHECK(rc < 0, "pier_event_select took an unknown bit");
    break;
  }
  case 15: {
    pier_net_events ev;
    check_code(pier_enum_network_events(sl->s, &ev));
    break;
  }
  case 16: do_names(sl); break;
  default: break;
  }
}

static void run_insn(const unsigned char *in) {
  int code = (in[0] & 0x1f) % NOPCODE;
  int top = !g.busy;
  trace("insn %d %d %d", code, in[1], in[2] << 8 | in[3]);
  if (top) g.busy = 1;  /* no callback may run inside a call */
  switch (code) {
  case 0: do_open(&g.slots[in[1] % NSLOT], in[2], in[3]); break;
  case 7: do_cancel(&g.ops[in[2] % NOP]); break;
  case 12: {
    rec *r = &g.ops[in[2] % NOP];
    if (r->pending) {
      CHECK(pier_loop_post(g.loop, &r->op, on_op) == PIER_EBUSY, "post of a pending op");
      break;
    }
    start(r, -1, DIR_NONE);
    started(r, pier_loop_post(g.loop, &r->op, on_op), 0);
    break;
  }
  case 13: do_timer(&g.timers[in[1] % NTIMER], in[2], in[3]); break;
  case 14:
    if (top) g.busy = 0;
    do_run(in[1], in[2]);
    return;
  default: run_socket_insn(code, in); break;
  }
  if (top) g.busy = 0;
}

/* ------------------------------------------------------------------ */
/* one input                                                           */
/* ------------------------------------------------------------------ */

static int anything_pending(void) {
  if (g.closes_due) return 1;
  for (int i = 0; i < NOP; i++)
    if (g.ops[i].pending) return 1;
  return 0;
}

/* Close everything, run until the close callbacks have run (bounded by
   a guard timer), and free the loop. */
static void finish(void) {
  g.finishing = 1;
  g.qlen = 0;
  for (int i = 0; i < NTIMER; i++) {
    CHECK(pier_timer_stop(&g.timers[i].t) == 0, "timer stop");
    g.timers[i].active = 0;
  }
  for (int i = 0; i < NSLOT; i++)
    if (g.slots[i].s && !g.slots[i].closing) close_slot(&g.slots[i], 0);
  g.guard_fired = 0;
  CHECK(pier_timer_start(&g.guard, 5000, 0, on_guard) == 0, "guard timer");
  while (anything_pending() && !g.guard_fired)
    check_run(pier_loop_run(g.loop, PIER_RUN_ONCE));
  CHECK(!anything_pending(), "ops or close callbacks still pending 5 s after closing all");
  CHECK(pier_timer_stop(&g.guard) == 0, "guard timer stop");
  CHECK(g.strays == 0, "an accepted socket never closed");
  CHECK(pier_loop_free(g.loop) == 0, "pier_loop_free refused after everything closed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  memset(&g, 0, sizeof g);
  CHECK(pier_loop_new(NULL, &g.loop) == 0, "pier_loop_new");
  for (int i = 0; i < NTIMER; i++)
    CHECK(pier_timer_init(g.loop, &g.timers[i].t) == 0, "timer init");
  CHECK(pier_timer_init(g.loop, &g.guard) == 0, "timer init");
  size_t n = size / 4 < MAXINS ? size / 4 : MAXINS;
  for (size_t k = 0; k < n; k++) {
    const unsigned char *in = data + 4 * k;
    if (in[0] & 0x80) {
      if (g.qlen < NQUEUE) {
        memcpy(g.queue[(g.qhead + g.qlen) % NQUEUE], in, 4);
        g.qlen++;
      }
      continue;
    }
    run_insn(in);
  }
  finish();
  return 0;
}
