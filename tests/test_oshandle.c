/* SPDX-License-Identifier: MIT */
/*
 * tests/test_oshandle.c - socket handles are OS handles (WSP's IFS
 * handles): pier_socket_handle() is the OS socket itself, and
 * pier_socket_adopt() takes one made outside pier.
 *
 * The file calls of the platform - read()/write() on POSIX,
 * ReadFile()/WriteFile() on Windows, through t_os_read / t_os_write - are
 * interleaved with pier's own operations on the same connection, in a
 * fixed order, and every byte of both streams is checked against its
 * place in the stream.  That fails if a provider reads ahead into a
 * buffer of its own, holds back or reorders sends, keeps the handle from
 * working outside pier, or (Windows) lets a completion of a call pier did
 * not make reach its loop's port.  The other way round, sockets made with
 * socket() - connected, listening, datagram - are adopted and carry pier
 * operations.
 *
 * Section map
 *   1. connections, byte streams, the script of steps
 *   2. one step, in callback form and in blocking form
 *   3. pier and OS calls interleaved on one connection
 *   4. adopting OS sockets
 *   5. listener and accepted handles seen by the OS
 *
 * The rule every test keeps: no socket has a pier receive pending while
 * the test reads it with the OS call.  Two readers of one socket race for
 * its bytes, and which of them gets which is the OS's choice.  A pending
 * pier receive while the OS *writes* on the same socket is fine (one
 * reader, one writer) and is tested.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* 1. connections, byte streams, the script                            */
/* ------------------------------------------------------------------ */

static const char *const wanted_stream[] = { "tcp4", "tcp6", "local" };
static const char *stream_protos[3]; /* those in the catalog */
static int n_stream;
static const char *const wanted_dgram[] = { "udp4", "udp6" };
static const char *dgram_protos[2];
static int n_dgram;

enum { C2S = 0, S2C = 1 }; /* directions: client to server, and back */
enum { PIER = 0, OS = 1 }; /* who moves a side's bytes */
static const char *const dir_name[2] = { "client->server", "server->client" };
static const char *const how_name[2] = { "pier", "os" };

/* The two byte streams of a connection, one per direction. */
static const uint64_t seed_of[2] = { 0x05a11ce, 0x0b0b };

/*
 * A connection under test.  sock[d] writes direction d: sock[C2S] is the
 * client, sock[S2C] the server; off[d] counts direction d's bytes so far,
 * whoever moved them, so each step continues the same stream.
 */
typedef struct conn {
  pier_loop *loop;
  pier_socket *sock[2];
  size_t off[2];
} conn;

/* One step: len bytes in direction dir, written and read by pier or OS. */
typedef struct step {
  int dir, writer, reader;
  size_t len;
} step;

/*
 * Every combination of direction, writer and reader, twice, with sizes
 * from 1 byte to 12000.  Steps run one after the other on one thread, so
 * each one's bytes must fit in the two ends' socket buffers (a pier send
 * completes before the OS reader starts): 12000 bytes do everywhere, even
 * AF_UNIX on the BSDs (8 KiB each end).  Bulk transfers, with the OS side
 * on a thread, are bulk_1mib_each_way_with_the_os_side_on_a_thread.
 */
static const step script[] = {
  { C2S, PIER, OS, 1 },      { S2C, OS, PIER, 7 },
  { C2S, OS, PIER, 100 },    { S2C, PIER, OS, 1000 },
  { C2S, PIER, PIER, 1460 }, { S2C, OS, OS, 4096 },
  { C2S, OS, OS, 8192 },     { S2C, PIER, PIER, 12000 },
  { C2S, PIER, OS, 12000 },  { S2C, OS, PIER, 8192 },
  { C2S, OS, PIER, 4096 },   { S2C, PIER, OS, 1460 },
  { C2S, PIER, PIER, 1000 }, { S2C, OS, OS, 100 },
  { C2S, OS, OS, 7 },        { S2C, PIER, PIER, 1 },
};

/* pier only, both directions: what adopted sockets must carry. */
static const step pier_script[] = {
  { C2S, PIER, PIER, 1 },    { S2C, PIER, PIER, 1000 },
  { C2S, PIER, PIER, 12000 }, { S2C, PIER, PIER, 7 },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void open_conn(conn *c, const char *proto) {
  memset(c, 0, sizeof *c);
  c->loop = t_loop_new();
  t_pair(c->loop, proto, &c->sock[C2S], &c->sock[S2C]);
}

/* Close s and run the loop until its close callback has run. */
static void close_cb(pier_socket *s) { (*(int *)pier_socket_get_data(s))++; }

static void close_wait(pier_loop *loop, pier_socket *s) {
  int closed = 0;
  pier_socket_set_data(s, &closed);
  T_OK(pier_close(s, close_cb));
  t_run_until(loop, &closed, 3000);
}

/* Nothing is left unread in either direction; then close and free. */
static void close_conn(conn *c) {
  for (int d = 0; d < 2; d++) {
    size_t ready = 1;
    T_OK(pier_ioctl(c->sock[d], PIER_FIONREAD, &ready));
    ck_assert_msg(ready == 0, "%zu bytes left unread towards the %s", ready,
                  d == C2S ? "client" : "server");
  }
  close_wait(c->loop, c->sock[C2S]);
  close_wait(c->loop, c->sock[S2C]);
  t_loop_free(c->loop);
}
static int is_ip(const struct sockaddr_storage *a) {
  return a->ss_family == AF_INET || a->ss_family == AF_INET6;
}

/* ------------------------------------------------------------------ */
/* 2. one step                                                         */
/* ------------------------------------------------------------------ */

typedef struct rec {
  int count, status;
  size_t bytes;
} rec;

static void rec_cb(pier_op *op, int status) {
  rec *r = op->data;
  r->count++;
  r->status = status;
  r->bytes = op->bytes;
}

/* Post an overlapped receive of len bytes into buf. */
static void post_recv(pier_socket *s, pier_op *op, rec *r, char *buf,
                      size_t len) {
  pier_buf b = pier_buf_init(buf, len);
  memset(op, 0, sizeof *op);
  memset(r, 0, sizeof *r);
  op->data = r;
  T_OK(pier_recv(s, op, &b, 1, 0, rec_cb));
}

/* Wait for a receive from post_recv, then receive the rest of len. */
static void finish_recv(pier_loop *loop, pier_socket *s, pier_op *op, rec *r,
                        char *buf, size_t len) {
  size_t got = 0;
  for (;;) {
    t_run_until(loop, &r->count, 5000);
    T_OK(r->status);
    ck_assert_msg(r->bytes > 0, "pier_recv: end of stream after %zu of %zu",
                  got, len);
    got += r->bytes;
    ck_assert_uint_le(got, len);
    if (got == len) return;
    post_recv(s, op, r, buf + got, len - got);
  }
}

static void send_overlapped(pier_loop *loop, pier_socket *s, char *buf,
                            size_t len) {
  pier_buf b = pier_buf_init(buf, len);
  pier_op op;
  rec r;
  memset(&op, 0, sizeof op);
  memset(&r, 0, sizeof r);
  op.data = &r;
  T_OK(pier_send(s, &op, &b, 1, 0, rec_cb));
  t_run_until(loop, &r.count, 5000);
  T_OK(r.status);
  ck_assert_uint_eq(r.bytes, len);
}

/* Blocking form (no callback): the call returns when done. */
static void send_blocking(pier_socket *s, char *buf, size_t len) {
  pier_buf b = pier_buf_init(buf, len);
  pier_op op;
  memset(&op, 0, sizeof op);
  T_OK(pier_send(s, &op, &b, 1, 0, NULL));
  ck_assert_uint_eq(op.bytes, len);
}

/* Only called with the bytes already sent, so it never waits for long. */
static void recv_blocking(pier_socket *s, char *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    pier_buf b = pier_buf_init(buf + got, len - got);
    pier_op op;
    memset(&op, 0, sizeof op);
    T_OK(pier_recv(s, &op, &b, 1, 0, NULL));
    ck_assert_msg(op.bytes > 0, "blocking pier_recv: end of stream after "
                  "%zu of %zu", got, len);
    got += op.bytes;
  }
}

static void os_write_all(pier_os_socket h, const char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    long n = t_os_write(h, buf + done, len - done);
    ck_assert_msg(n > 0, "OS write on pier's handle after %zu of %zu: %s",
                  done, len, t_os_strerror(t_os_errno()));
    done += (size_t)n;
  }
}

static void os_read_all(pier_os_socket h, char *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    long n = t_os_read(h, buf + got, len - got);
    ck_assert_msg(n >= 0, "OS read on pier's handle after %zu of %zu: %s",
                  got, len, t_os_strerror(t_os_errno()));
    ck_assert_msg(n > 0, "OS read: end of stream after %zu of %zu", got, len);
    got += (size_t)n;
  }
}

/*
 * Callback form.  A pier reader's receive is posted before the writer
 * starts, so it is pending while the bytes arrive, also when the OS
 * writes them; an OS reader starts once the writer is done, and its
 * socket has no pier receive pending then.
 */
static void overlapped_step(pier_loop *loop, pier_socket *w, pier_socket *r,
                            const step *st, char *out, char *in) {
  pier_op op;
  rec rr;
  if (st->reader == PIER) post_recv(r, &op, &rr, in, st->len);
  if (st->writer == PIER)
    send_overlapped(loop, w, out, st->len);
  else
    os_write_all(pier_socket_handle(w), out, st->len);
  if (st->reader == PIER)
    finish_recv(loop, r, &op, &rr, in, st->len);
  else
    os_read_all(pier_socket_handle(r), in, st->len);
}

/* Blocking form: a blocking receive would wait, so the writer goes first. */
static void blocking_step(pier_socket *w, pier_socket *r, const step *st,
                          char *out, char *in) {
  if (st->writer == PIER)
    send_blocking(w, out, st->len);
  else
    os_write_all(pier_socket_handle(w), out, st->len);
  if (st->reader == PIER)
    recv_blocking(r, in, st->len);
  else
    os_read_all(pier_socket_handle(r), in, st->len);
}

/* Run one step and check its bytes are the stream's next ones. */
static void run_step(conn *c, const step *st, int blocking) {
  int d = st->dir;
  char *out = malloc(st->len), *in = malloc(st->len);
  ck_assert(out != NULL && in != NULL);
  t_fill(out, st->len, seed_of[d], c->off[d]);
  memset(in, 0, st->len);
  if (blocking)
    blocking_step(c->sock[d], c->sock[!d], st, out, in);
  else
    overlapped_step(c->loop, c->sock[d], c->sock[!d], st, out, in);
  size_t bad = t_verify(in, st->len, seed_of[d], c->off[d]);
  ck_assert_msg(bad == (size_t)-1, "%s, %s writes, %s reads %zu bytes at "
                "stream offset %zu (%s form): byte %zu is wrong",
                dir_name[d], how_name[st->writer], how_name[st->reader],
                st->len, c->off[d], blocking ? "blocking" : "callback", bad);
  c->off[d] += st->len;
  free(out);
  free(in);
}

static void run_script(conn *c, const step *s, size_t n, int blocking) {
  for (size_t k = 0; k < n; k++) run_step(c, &s[k], blocking);
}

/* ------------------------------------------------------------------ */
/* 3. pier and OS calls interleaved on one connection                  */
/* ------------------------------------------------------------------ */

START_TEST(overlapped_ops_interleave_with_os_read_write) {
  conn c;
  open_conn(&c, stream_protos[_i]);
  run_script(&c, script, COUNT(script), 0);
  close_conn(&c);
}
END_TEST

START_TEST(blocking_ops_interleave_with_os_read_write) {
  conn c;
  open_conn(&c, stream_protos[_i]);
  run_script(&c, script, COUNT(script), 1);
  close_conn(&c);
}
END_TEST

/*
 * On each side in turn: a pier receive waits on the socket while the OS
 * writes on the same socket's handle.  The receive must not see the
 * socket's own outgoing bytes, must still be pending after the loop has
 * run, and must get the peer's answer.
 */
START_TEST(pending_pier_recv_while_os_writes_on_same_socket) {
  enum { LEN = 4096 };
  static char out[LEN], in[LEN], answer[LEN], got[LEN];
  conn c;
  open_conn(&c, stream_protos[_i]);
  for (int side = 0; side < 2; side++) {
    pier_socket *me = c.sock[side], *peer = c.sock[!side];
    pier_op op;
    rec rr;
    post_recv(me, &op, &rr, got, LEN);
    t_fill(out, LEN, seed_of[side], c.off[side]);
    os_write_all(pier_socket_handle(me), out, LEN);
    os_read_all(pier_socket_handle(peer), in, LEN);
    ck_assert_uint_eq(t_verify(in, LEN, seed_of[side], c.off[side]),
                      (size_t)-1);
    c.off[side] += LEN;
    for (int k = 0; k < 5; k++) pier_loop_run(c.loop, PIER_RUN_NOWAIT);
    ck_assert_msg(rr.count == 0, "the %s's pending receive completed (%d "
                  "bytes, %s) before its peer sent anything",
                  side == C2S ? "client" : "server", (int)rr.bytes,
                  pier_err_name(rr.status));
    t_fill(answer, LEN, seed_of[!side], c.off[!side]);
    send_overlapped(c.loop, peer, answer, LEN);
    finish_recv(c.loop, me, &op, &rr, got, LEN);
    ck_assert_uint_eq(t_verify(got, LEN, seed_of[!side], c.off[!side]),
                      (size_t)-1);
    c.off[!side] += LEN;
  }
  close_conn(&c);
}
END_TEST

/*
 * The OS side of a bulk transfer, on its own thread, so that pier's loop
 * and the OS calls run at once and flow control goes back and forth.  The
 * thread asserts nothing (Check's assertions belong to the test's
 * thread); the test reads its results after joining it.
 */
typedef struct os_side {
  pier_os_socket h;
  int writing;
  size_t len;
  uint64_t seed;
  size_t moved; /* bytes written or read */
  int err;      /* t_os_errno() of a failed call, or 0 */
  size_t bad;   /* reader: first wrong byte, or (size_t)-1 */
} os_side;

static void *os_side_main(void *arg) {
  os_side *o = arg;
  char *buf = malloc(o->len);
  o->bad = (size_t)-1;
  if (buf && o->writing) t_fill(buf, o->len, o->seed, 0);
  while (buf && o->moved < o->len) {
    long n = o->writing ? t_os_write(o->h, buf + o->moved, o->len - o->moved)
                        : t_os_read(o->h, buf + o->moved, o->len - o->moved);
    if (n <= 0) {
      o->err = n < 0 ? t_os_errno() : 0;
      break;
    }
    o->moved += (size_t)n;
  }
  if (buf && !o->writing && o->moved == o->len)
    o->bad = t_verify(buf, o->len, o->seed, 0);
  free(buf);
  return NULL;
}

static void check_os_side(const os_side *o) {
  ck_assert_msg(o->moved == o->len, "OS %s on pier's handle moved %zu of "
                "%zu bytes: %s", o->writing ? "write" : "read", o->moved,
                o->len, o->err ? t_os_strerror(o->err) : "end of stream");
  ck_assert_msg(o->bad == (size_t)-1, "OS read: byte %zu is wrong", o->bad);
}

/*
 * 1 MiB each way between pier on the client and the OS calls on the
 * server's handle.  The OS side starts first and pier only HOLD_MS later,
 * so the OS calls really wait: the read finds nothing yet, the write
 * fills the socket buffers - on Windows ReadFile / WriteFile return
 * ERROR_IO_PENDING, and their completions must stay out of pier's port
 * (pier skips the port only for calls that succeed at once).
 */
START_TEST(bulk_1mib_each_way_with_the_os_side_on_a_thread) {
  enum { LEN = 1 << 20, HOLD_MS = 100 };
  /* static: a thread left behind by a failed test still has it */
  static os_side side;
  char *buf = malloc(LEN);
  pthread_t th;
  pier_op op;
  rec rr;
  conn c;
  ck_assert_ptr_nonnull(buf);
  open_conn(&c, stream_protos[_i]);
  /* client: pier_send of 1 MiB; server: read() / ReadFile on a thread */
  memset(&side, 0, sizeof side);
  side.h = pier_socket_handle(c.sock[S2C]);
  side.len = LEN;
  side.seed = seed_of[C2S];
  ck_assert_int_eq(pthread_create(&th, NULL, os_side_main, &side), 0);
  t_fill(buf, LEN, seed_of[C2S], 0);
  t_sleep_ms(HOLD_MS);
  send_overlapped(c.loop, c.sock[C2S], buf, LEN);
  pthread_join(th, NULL);
  check_os_side(&side);
  /* server: write() / WriteFile on a thread; client: pier_recv */
  memset(&side, 0, sizeof side);
  side.h = pier_socket_handle(c.sock[S2C]);
  side.writing = 1;
  side.len = LEN;
  side.seed = seed_of[S2C];
  memset(buf, 0, LEN);
  ck_assert_int_eq(pthread_create(&th, NULL, os_side_main, &side), 0);
  t_sleep_ms(HOLD_MS);
  post_recv(c.sock[C2S], &op, &rr, buf, LEN);
  finish_recv(c.loop, c.sock[C2S], &op, &rr, buf, LEN);
  pthread_join(th, NULL);
  check_os_side(&side);
  ck_assert_uint_eq(t_verify(buf, LEN, seed_of[S2C], 0), (size_t)-1);
  free(buf);
  close_conn(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. adopting OS sockets                                              */
/* ------------------------------------------------------------------ */

/* s was adopted from h: the same handle, its catalog entry found. */
static void check_adopted(pier_socket *s, pier_os_socket h, const char *proto) {
  ck_assert(pier_socket_handle(s) == h);
  ck_assert_msg(pier_socket_protocol(s) == pier_protocol_find(proto),
                "adopted socket has catalog entry %s, expected %s",
                pier_socket_protocol(s) ? pier_socket_protocol(s)->name
                                        : "(none)", proto);
}

/* pier_close of an adopted socket closes the OS handle it was given. */
static void close_adopted(pier_loop *loop, pier_socket *s, pier_os_socket h) {
  close_wait(loop, s);
  ck_assert_msg(!t_os_handle_is_open(h),
                "pier_close left the adopted handle %lld open", (long long)h);
}

/*
 * A client connected with socket() + connect() outside pier is adopted
 * and talks to a pier-accepted server with pier operations, in callback
 * and blocking form.
 */
START_TEST(adopted_os_client_carries_pier_ops_both_ways) {
  const char *proto = stream_protos[_i];
  struct sockaddr_storage la, pa;
  size_t llen, plen = sizeof pa;
  pier_op aop;
  rec ar;
  conn c;
  memset(&c, 0, sizeof c);
  c.loop = t_loop_new();
  pier_socket *l = t_listener(c.loop, proto, &la, &llen);
  memset(&aop, 0, sizeof aop);
  memset(&ar, 0, sizeof ar);
  aop.data = &ar;
  T_OK(pier_accept(l, &aop, NULL, NULL, rec_cb));
  /* blocking connect: the listen backlog answers without the loop */
  pier_os_socket h = t_os_connect(&la, llen);
  t_run_until(c.loop, &ar.count, 5000);
  T_OK(ar.status);
  c.sock[S2C] = aop.accepted;
  T_OK(pier_socket_adopt(c.loop, h, 0, &c.sock[C2S]));
  check_adopted(c.sock[C2S], h, proto);
  T_OK(pier_getpeername(c.sock[C2S], &pa, &plen));
  ck_assert_msg(t_addr_eq(T_SA(&pa), plen, T_SA(&la), llen),
                "adopted client's peer is not the listener");
  close_wait(c.loop, l);
  run_script(&c, pier_script, COUNT(pier_script), 0);
  run_script(&c, pier_script, COUNT(pier_script), 1);
  close_adopted(c.loop, c.sock[C2S], h);
  close_wait(c.loop, c.sock[S2C]);
  t_loop_free(c.loop);
}
END_TEST

/* A listening socket made with socket() + bind() + listen() outside pier. */
static pier_os_socket os_listener(const char *proto) {
  struct sockaddr_storage a;
  size_t alen;
  t_loopback(proto, &a, &alen);
  pier_os_socket h = socket(a.ss_family, SOCK_STREAM, 0);
  ck_assert_msg(h != PIER_INVALID_SOCKET, "socket(): %s",
                t_os_strerror(t_os_errno()));
  ck_assert_msg(bind(h, (const struct sockaddr *)&a, (socklen_t)alen) == 0,
                "bind(): %s", t_os_strerror(t_os_errno()));
  ck_assert_msg(listen(h, 8) == 0, "listen(): %s",
                t_os_strerror(t_os_errno()));
  return h;
}

/* An adopted listening socket accepts pier clients; the accepted
   sockets carry pier operations. */
START_TEST(adopted_os_listener_accepts_with_pier) {
  const char *proto = stream_protos[_i];
  struct sockaddr_storage la;
  size_t llen = sizeof la;
  pier_socket *l;
  pier_op aop, cop;
  int done = 0;
  conn c;
  memset(&c, 0, sizeof c);
  c.loop = t_loop_new();
  pier_os_socket h = os_listener(proto);
  T_OK(pier_socket_adopt(c.loop, h, 0, &l));
  check_adopted(l, h, proto);
  T_OK(pier_getsockname(l, &la, &llen));
  memset(&aop, 0, sizeof aop);
  memset(&cop, 0, sizeof cop);
  aop.data = cop.data = &done;
  T_OK(pier_socket_open(c.loop, pier_protocol_find(proto), 0, &c.sock[C2S]));
  T_OK(pier_accept(l, &aop, NULL, NULL, t_count_cb));
  T_OK(pier_connect(c.sock[C2S], &cop, (const struct sockaddr *)&la, llen,
                    NULL, NULL, t_count_cb));
  t_run_until_count(c.loop, &done, 2, 5000);
  T_OK(aop.status);
  T_OK(cop.status);
  c.sock[S2C] = aop.accepted;
  ck_assert_ptr_eq(pier_socket_protocol(c.sock[S2C]), pier_protocol_find(proto));
  run_script(&c, pier_script, COUNT(pier_script), 0);
  close_adopted(c.loop, l, h);
  close_conn(&c);
}
END_TEST

/* One datagram from one pier socket to another; checks bytes and sender. */
static void datagram(pier_loop *loop, pier_socket *from, pier_socket *to,
                     uint64_t seed, size_t len) {
  struct sockaddr_storage dst, src, sender;
  size_t dlen = sizeof dst, slen = sizeof src;
  char out[1500], in[1500];
  pier_op rop, sop;
  rec rr, sr;
  T_OK(pier_getsockname(to, &dst, &dlen));
  T_OK(pier_getsockname(from, &src, &slen));
  t_fill(out, len, seed, 0);
  pier_buf ib = pier_buf_init(in, sizeof in), ob = pier_buf_init(out, len);
  memset(&rop, 0, sizeof rop);
  memset(&sop, 0, sizeof sop);
  memset(&rr, 0, sizeof rr);
  memset(&sr, 0, sizeof sr);
  rop.data = &rr;
  sop.data = &sr;
  T_OK(pier_recvfrom(to, &rop, &ib, 1, 0, &sender, rec_cb));
  T_OK(pier_sendto(from, &sop, &ob, 1, 0, (const struct sockaddr *)&dst, dlen,
                   rec_cb));
  t_run_until(loop, &sr.count, 5000);
  t_run_until(loop, &rr.count, 5000);
  T_OK(sr.status);
  T_OK(rr.status);
  ck_assert_uint_eq(rr.bytes, len);
  ck_assert_uint_eq(rop.flags & PIER_MSG_TRUNC, 0);
  ck_assert_uint_eq(t_verify(in, len, seed, 0), (size_t)-1);
  ck_assert_msg(t_addr_eq(T_SA(&sender), rop.addrlen, T_SA(&src), slen),
                "datagram's sender is not the socket that sent it");
}

/*
 * A datagram socket made and bound with socket() + bind() is adopted in
 * non-blocking mode, and exchanges a datagram each way with a pier one.
 */
START_TEST(adopted_os_datagram_socket_sends_and_receives) {
  const char *proto = dgram_protos[_i];
  struct sockaddr_storage a, sender;
  size_t alen;
  pier_socket *u, *peer;
  char b1[8];
  pier_buf b = pier_buf_init(b1, sizeof b1);
  pier_op op;
  pier_loop *loop = t_loop_new();
  t_loopback(proto, &a, &alen);
  pier_os_socket h = socket(a.ss_family, SOCK_DGRAM, 0);
  ck_assert(h != PIER_INVALID_SOCKET);
  ck_assert_msg(bind(h, (const struct sockaddr *)&a, (socklen_t)alen) == 0,
                "bind(): %s", t_os_strerror(t_os_errno()));
  T_OK(pier_socket_adopt(loop, h, PIER_SOCK_NONBLOCK, &u));
  check_adopted(u, h, proto);
  /* nothing queued: the blocking form in non-blocking mode says so */
  memset(&op, 0, sizeof op);
  T_ERR(pier_recvfrom(u, &op, &b, 1, 0, &sender, NULL), PIER_EWOULDBLOCK);
  T_OK(pier_socket_open(loop, pier_protocol_find(proto), 0, &peer));
  T_OK(pier_bind(peer, (const struct sockaddr *)&a, alen));
  datagram(loop, peer, u, 0xd6a1, 1200);
  datagram(loop, u, peer, 0xd6a2, 333);
  close_adopted(loop, u, h);
  close_wait(loop, peer);
  t_loop_free(loop);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 5. listener and accepted handles seen by the OS                     */
/* ------------------------------------------------------------------ */

/* The OS's getsockname (peer: getpeername) on s's handle equals pier's. */
static void check_os_name(pier_socket *s, int peer) {
  struct sockaddr_storage os, pi;
  socklen_t olen = sizeof os;
  size_t plen = sizeof pi;
  pier_os_socket h = pier_socket_handle(s);
  ck_assert(h != PIER_INVALID_SOCKET);
  memset(&os, 0, sizeof os);
  int rc = peer ? getpeername(h, (struct sockaddr *)&os, &olen)
                : getsockname(h, (struct sockaddr *)&os, &olen);
  ck_assert_msg(rc == 0, "OS %s on pier's handle: %s",
                peer ? "getpeername" : "getsockname",
                t_os_strerror(t_os_errno()));
  T_OK(peer ? pier_getpeername(s, &pi, &plen) : pier_getsockname(s, &pi, &plen));
  ck_assert_msg(t_addr_eq(T_SA(&os), (size_t)olen, T_SA(&pi), plen),
                "the OS's %s of the handle differs from pier's",
                peer ? "peer name" : "socket name");
}

/* An int socket option read by the OS from h. */
static int os_sockopt(pier_os_socket h, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  ck_assert_msg(getsockopt(h, SOL_SOCKET, name, (char *)&v, &len) == 0,
                "OS getsockopt(%d) on pier's handle: %s", name,
                t_os_strerror(t_os_errno()));
  return v;
}

START_TEST(listener_and_accepted_handles_are_os_sockets) {
  enum { LEN = 64 };
  const char *proto = stream_protos[_i];
  struct sockaddr_storage la, an, cn;
  size_t llen, alen = sizeof an, clen = sizeof cn;
  pier_op aop, cop, op;
  rec rr;
  int done = 0;
  char out[LEN], in[LEN];
  pier_socket *c, *a;
  pier_loop *loop = t_loop_new();
  pier_socket *l = t_listener(loop, proto, &la, &llen);
  check_os_name(l, 0);
  ck_assert_int_eq(os_sockopt(pier_socket_handle(l), SO_TYPE), SOCK_STREAM);
  ck_assert_int_ne(os_sockopt(pier_socket_handle(l), SO_ACCEPTCONN), 0);
  memset(&aop, 0, sizeof aop);
  memset(&cop, 0, sizeof cop);
  aop.data = cop.data = &done;
  T_OK(pier_socket_open(loop, pier_protocol_find(proto), 0, &c));
  T_OK(pier_accept(l, &aop, NULL, NULL, t_count_cb));
  T_OK(pier_connect(c, &cop, (const struct sockaddr *)&la, llen, NULL, NULL,
                    t_count_cb));
  t_run_until_count(loop, &done, 2, 5000);
  T_OK(aop.status);
  T_OK(cop.status);
  a = aop.accepted;
  ck_assert(pier_socket_handle(a) != pier_socket_handle(l));
  check_os_name(a, 0);
  check_os_name(a, 1);
  ck_assert_int_eq(os_sockopt(pier_socket_handle(a), SO_ACCEPTCONN), 0);
  T_OK(pier_getsockname(a, &an, &alen));
  T_OK(pier_getsockname(c, &cn, &clen));
  if (is_ip(&la)) { /* AF_UNIX names of accepted sockets vary by OS */
    ck_assert_msg(t_addr_eq(T_SA(&an), alen, T_SA(&la), llen),
                  "accepted socket's name is not the listener's address");
    check_os_name(c, 1);
  }
  /* the accepted handle carries bytes: OS write, pier receive */
  t_fill(out, LEN, 0xacce, 0);
  post_recv(c, &op, &rr, in, LEN);
  os_write_all(pier_socket_handle(a), out, LEN);
  finish_recv(loop, c, &op, &rr, in, LEN);
  ck_assert_uint_eq(t_verify(in, LEN, 0xacce, 0), (size_t)-1);
  close_wait(loop, l);
  close_wait(loop, a);
  close_wait(loop, c);
  t_loop_free(loop);
}
END_TEST

Suite *suite_oshandle(void) {
  Suite *s = suite_create("oshandle");
  TCase *tc;
  n_stream = t_protos_available(wanted_stream, 3, stream_protos);
  n_dgram = t_protos_available(wanted_dgram, 2, dgram_protos);

  tc = tcase_create("interleave");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, overlapped_ops_interleave_with_os_read_write, 0,
                      n_stream);
  tcase_add_loop_test(tc, blocking_ops_interleave_with_os_read_write, 0,
                      n_stream);
  tcase_add_loop_test(tc, pending_pier_recv_while_os_writes_on_same_socket, 0,
                      n_stream);
  tcase_add_loop_test(tc, bulk_1mib_each_way_with_the_os_side_on_a_thread, 0,
                      n_stream);
  suite_add_tcase(s, tc);

  tc = tcase_create("adopt");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, adopted_os_client_carries_pier_ops_both_ways, 0,
                      n_stream);
  tcase_add_loop_test(tc, adopted_os_listener_accepts_with_pier, 0, n_stream);
  tcase_add_loop_test(tc, adopted_os_datagram_socket_sends_and_receives, 0,
                      n_dgram);
  suite_add_tcase(s, tc);

  tc = tcase_create("handles");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, listener_and_accepted_handles_are_os_sockets, 0,
                      n_stream);
  suite_add_tcase(s, tc);
  return s;
}
