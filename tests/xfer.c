/* SPDX-License-Identifier: MIT */
/*
 * tests/xfer.c - a pier-to-pier transfer across providers (and processes,
 * and under Wine across operating systems): both sides send N bytes of a
 * known pattern and verify every byte they receive, at the same time.
 *
 *   pier-xfer server PORTFILE BYTES   listen on 127.0.0.1, write the port
 *                                     to PORTFILE, serve one connection
 *   pier-xfer client PORT BYTES       connect to 127.0.0.1:PORT
 *
 * The provider is the default one or $PIER_BACKEND.  Prints one line,
 *   xfer: server on libevent sent 8388608 received 8388608 verified
 * and exits 0 only when both directions are complete and intact.
 */
#include <pier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#  include <arpa/inet.h>
#endif

#define CHUNK (64 * 1024)
#define DEADLINE_MS 120000

typedef struct xfer {
  pier_loop *loop;
  pier_socket *listener, *conn;
  pier_op accept_op, connect_op, send_op, recv_op;
  pier_timer deadline;
  size_t total, sent, received;
  unsigned char sbuf[CHUNK], rbuf[CHUNK];
  int role_server, failed, done_send, done_recv;
} xfer;

/* Byte i of the stream of side `from` (0 server, 1 client). */
static unsigned char pattern(int from, size_t i) {
  return (unsigned char)((i * 2654435761u) >> 11 ^ (i >> 8) ^ (unsigned)from * 0x5a);
}

static void fail(xfer *x, const char *what, int status) {
  fprintf(stderr, "xfer: %s: %s (%s)\n", what, pier_strerror(status),
          pier_err_name(status));
  x->failed = 1;
  pier_loop_stop(x->loop);
}

static void maybe_finish(xfer *x) {
  if (x->done_send && x->done_recv) {
    pier_timer_stop(&x->deadline);
    pier_close(x->conn, NULL);
    x->conn = NULL;
  }
}

static void send_next(xfer *x);
static void recv_next(xfer *x);

static void on_send(pier_op *op, int status) {
  xfer *x = op->data;
  if (status) return fail(x, "send", status);
  x->sent += op->bytes;
  if (x->sent < x->total) return send_next(x);
  x->done_send = 1;
  maybe_finish(x);
}

static void send_next(xfer *x) {
  size_t n = x->total - x->sent < CHUNK ? x->total - x->sent : CHUNK;
  for (size_t i = 0; i < n; i++) x->sbuf[i] = pattern(!x->role_server, x->sent + i);
  pier_buf b = pier_buf_init(x->sbuf, n);
  int rc = pier_send(x->conn, &x->send_op, &b, 1, 0, on_send);
  if (rc) fail(x, "pier_send", rc);
}

static void on_recv(pier_op *op, int status) {
  xfer *x = op->data;
  if (status) return fail(x, "recv", status);
  if (op->bytes == 0) return fail(x, "recv: early end of stream", PIER_ECONNRESET);
  int from = x->role_server; /* the server receives the client's stream */
  for (size_t i = 0; i < op->bytes; i++) {
    if (x->rbuf[i] != pattern(from, x->received + i)) {
      fprintf(stderr, "xfer: byte %zu differs\n", x->received + i);
      return fail(x, "verify", PIER_EPROTO);
    }
  }
  x->received += op->bytes;
  if (x->received < x->total) return recv_next(x);
  x->done_recv = 1;
  maybe_finish(x);
}

static void recv_next(xfer *x) {
  size_t n = x->total - x->received < CHUNK ? x->total - x->received : CHUNK;
  pier_buf b = pier_buf_init(x->rbuf, n);
  int rc = pier_recv(x->conn, &x->recv_op, &b, 1, 0, on_recv);
  if (rc) fail(x, "pier_recv", rc);
}

static void start_transfer(xfer *x) {
  x->send_op.data = x->recv_op.data = x;
  send_next(x);
  recv_next(x);
}

static void on_accept(pier_op *op, int status) {
  xfer *x = op->data;
  pier_close(x->listener, NULL);
  x->listener = NULL;
  if (status) return fail(x, "accept", status);
  x->conn = op->accepted;
  start_transfer(x);
}

static void on_connect(pier_op *op, int status) {
  xfer *x = op->data;
  if (status) return fail(x, "connect", status);
  start_transfer(x);
}

static void on_deadline(pier_timer *t) { fail(t->data, "deadline", PIER_ETIMEDOUT); }

static int serve(xfer *x, const char *portfile) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct sockaddr_storage ss;
  size_t len = sizeof ss;
  int rc = pier_socket_open(x->loop, pier_protocol_find("tcp4"), 0, &x->listener);
  if (!rc) rc = pier_bind(x->listener, (struct sockaddr *)&a, sizeof a);
  if (!rc) rc = pier_listen(x->listener, 1);
  if (!rc) rc = pier_getsockname(x->listener, &ss, &len);
  if (rc) return fail(x, "listen", rc), 1;
  FILE *f = fopen(portfile, "w");
  if (!f) return perror(portfile), 1;
  fprintf(f, "%u\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  fclose(f);
  x->accept_op.data = x;
  rc = pier_accept(x->listener, &x->accept_op, NULL, NULL, on_accept);
  return rc ? (fail(x, "pier_accept", rc), 1) : 0;
}

static int dial(xfer *x, unsigned port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = pier_socket_open(x->loop, pier_protocol_find("tcp4"), 0, &x->conn);
  x->connect_op.data = x;
  if (!rc) rc = pier_connect(x->conn, &x->connect_op, (struct sockaddr *)&a,
                             sizeof a, NULL, NULL, on_connect);
  return rc ? (fail(x, "connect", rc), 1) : 0;
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
    fprintf(stderr, "usage: pier-xfer server PORTFILE BYTES | client PORT BYTES\n");
    return 2;
  }
  static xfer x;
  x.role_server = strcmp(argv[1], "server") == 0;
  x.total = strtoull(argv[3], NULL, 10);
  int rc = pier_loop_new(NULL, &x.loop);
  if (rc) return fprintf(stderr, "xfer: loop: %s\n", pier_strerror(rc)), 1;
  pier_timer_init(x.loop, &x.deadline);
  x.deadline.data = &x;
  pier_timer_start(&x.deadline, DEADLINE_MS, 0, on_deadline);
  rc = x.role_server ? serve(&x, argv[2]) : dial(&x, (unsigned)atoi(argv[2]));
  if (rc == 0) pier_loop_run(x.loop, PIER_RUN_DEFAULT);
  /* Whatever happened, release everything before the verdict. */
  pier_timer_stop(&x.deadline);
  if (x.listener) pier_close(x.listener, NULL);
  if (x.conn) pier_close(x.conn, NULL);
  pier_loop_run(x.loop, PIER_RUN_DEFAULT);
  int ok = !x.failed && x.sent == x.total && x.received == x.total;
  printf("xfer: %s on %s sent %zu received %zu %s\n",
         x.role_server ? "server" : "client", pier_loop_backend(x.loop), x.sent,
         x.received, ok ? "verified" : "FAILED");
  pier_loop_free(x.loop);
  return ok ? 0 : 1;
}
