/* SPDX-License-Identifier: MIT */
/*
 * tests/test_syscalls.c - the libevent provider's replaceable system
 * calls (pier/spi.h section 5): the table walks, reads back and restores;
 * and with recvmsg and sendmsg replaced by functions that, on one
 * connection, answer in turn EINTR, EAGAIN, a transfer of at most 3
 * bytes and the real call, 256 KiB each way arrive whole and in order.
 *
 * Built where the libevent provider is; the fault case runs only when it
 * is the provider under test.
 */
#include "helpers.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <pier/spi.h>

/* ---------------------------------------------------------------- table */

static void fake_close(void) {}

START_TEST(next_walks_every_entry_and_get_finds_each) {
  int n = 0, saw_recvmsg = 0, saw_sendmsg = 0;
  for (const char *name = pier_spi_syscall_next(NULL); name;
       name = pier_spi_syscall_next(name)) {
    ck_assert_msg(pier_spi_syscall_get(name) != NULL, "no entry for %s", name);
    saw_recvmsg |= strcmp(name, "recvmsg") == 0;
    saw_sendmsg |= strcmp(name, "sendmsg") == 0;
    n++;
  }
  ck_assert_int_ge(n, 19);
  ck_assert(saw_recvmsg && saw_sendmsg);
  ck_assert_ptr_null(pier_spi_syscall_get("no-such-call"));
  ck_assert_ptr_null(pier_spi_syscall_next("no-such-call"));
  T_ERR(pier_spi_syscall_set("no-such-call", fake_close, NULL), PIER_ENOENT);
}
END_TEST

START_TEST(set_gives_the_old_entry_and_null_restores_the_os_call) {
  pier_syscall_fn os = pier_spi_syscall_get("close"), old = NULL;
  T_OK(pier_spi_syscall_set("close", fake_close, &old));
  ck_assert(old == os);
  ck_assert(pier_spi_syscall_get("close") == fake_close);
  T_OK(pier_spi_syscall_set("close", NULL, &old));
  ck_assert(old == fake_close);
  ck_assert(pier_spi_syscall_get("close") == os);
  T_OK(pier_spi_syscall_set("close", fake_close, NULL));
  T_OK(pier_spi_syscall_set(NULL, NULL, NULL)); /* every entry */
  ck_assert(pier_spi_syscall_get("close") == os);
}
END_TEST

/* ---------------------------------------------------------------- faults */

#define XFER_LEN (256u * 1024)

typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

static struct {
  pier_os_socket fds[2];  /* the connection's two ends; others pass */
  recvmsg_fn os_recvmsg;
  sendmsg_fn os_sendmsg;
  unsigned calls;         /* calls on the connection, both ends */
  int eintr, eagain, shorts;
} f;

/* What the next call on fd does: 0 EINTR, 1 EAGAIN, 2 short, 3 real. */
static unsigned fault_next(int fd) {
  if (fd != f.fds[0] && fd != f.fds[1]) return 3;
  return f.calls++ % 4;
}

/* msg cut down to its first at most 3 bytes, in *one (and *cut). */
static const struct msghdr *three_bytes(const struct msghdr *msg,
                                        struct msghdr *cut, struct iovec *one) {
  size_t i = 0;
  while (i < msg->msg_iovlen && msg->msg_iov[i].iov_len == 0) i++;
  if (i == msg->msg_iovlen) return msg;
  *cut = *msg;
  *one = msg->msg_iov[i];
  if (one->iov_len > 3) one->iov_len = 3;
  cut->msg_iov = one;
  cut->msg_iovlen = 1;
  f.shorts++;
  return cut;
}

/* The fault of a call that fails (0 or 1); returns -1 with errno. */
static ssize_t inject_error(unsigned what) {
  if (what == 0) {
    f.eintr++;
    errno = EINTR;
  } else {
    f.eagain++;
    errno = EAGAIN;
  }
  return -1;
}

static ssize_t faulty_recvmsg(int fd, struct msghdr *msg, int flags) {
  unsigned what = fault_next(fd);
  if (what < 2) return inject_error(what);
  if (what == 3) return f.os_recvmsg(fd, msg, flags);
  struct msghdr cut;
  struct iovec one;
  const struct msghdr *m = three_bytes(msg, &cut, &one);
  ssize_t n = f.os_recvmsg(fd, (struct msghdr *)m, flags);
  if (m == &cut) { /* the caller reads its own msghdr's results */
    msg->msg_flags = cut.msg_flags;
    msg->msg_namelen = cut.msg_namelen;
  }
  return n;
}

static ssize_t faulty_sendmsg(int fd, const struct msghdr *msg, int flags) {
  unsigned what = fault_next(fd);
  if (what < 2) return inject_error(what);
  if (what == 3) return f.os_sendmsg(fd, msg, flags);
  struct msghdr cut;
  struct iovec one;
  return f.os_sendmsg(fd, three_bytes(msg, &cut, &one), flags);
}

static void faults_on(pier_socket *a, pier_socket *b) {
  pier_syscall_fn old;
  memset(&f, 0, sizeof f);
  f.fds[0] = pier_socket_handle(a);
  f.fds[1] = pier_socket_handle(b);
  T_OK(pier_spi_syscall_set("recvmsg", (pier_syscall_fn)faulty_recvmsg, &old));
  f.os_recvmsg = (recvmsg_fn)old;
  T_OK(pier_spi_syscall_set("sendmsg", (pier_syscall_fn)faulty_sendmsg, &old));
  f.os_sendmsg = (sendmsg_fn)old;
}

/* Fixture teardown: the OS calls again, also after a failed test. */
static void faults_off(void) { pier_spi_syscall_set(NULL, NULL, NULL); }

/* One direction: sends of 3 buffers (1000, 7, 50000 bytes) from src;
   receives into 3 buffers (4096, 1, 30000 bytes) at dst. */
typedef struct dir {
  pier_socket *tx, *rx;
  pier_op sop, rop;
  pier_buf sb[3], rb[3];
  unsigned char src[XFER_LEN], dst[XFER_LEN];
  size_t sent, recvd;
  int status;             /* first failure, else 0 */
} dir;

static const size_t send_sizes[3] = {1000, 7, 50000};
static const size_t recv_sizes[3] = {4096, 1, 30000};
static volatile int dirs_done;

/* bufs over base[at..XFER_LEN) with sizes[]; returns how many. */
static size_t lay_out(pier_buf *bufs, unsigned char *base, size_t at,
                      const size_t *sizes) {
  size_t n = 0;
  for (int i = 0; i < 3 && at < XFER_LEN; i++) {
    size_t len = sizes[i] < XFER_LEN - at ? sizes[i] : XFER_LEN - at;
    bufs[n++] = pier_buf_init(base + at, len);
    at += len;
  }
  return n;
}

static void dir_fail(dir *d, int status) {
  if (d->status == 0) {
    d->status = status ? status : PIER_EIO;
    dirs_done++;
  }
}

static void send_cb(pier_op *op, int status);
static void recv_cb(pier_op *op, int status);

static void send_next(dir *d) {
  size_t n = lay_out(d->sb, d->src, d->sent, send_sizes);
  d->sop.data = d;
  int rc = pier_send(d->tx, &d->sop, d->sb, n, 0, send_cb);
  if (rc) dir_fail(d, rc);
}

static void recv_next(dir *d) {
  size_t n = lay_out(d->rb, d->dst, d->recvd, recv_sizes);
  d->rop.data = d;
  int rc = pier_recv(d->rx, &d->rop, d->rb, n, 0, recv_cb);
  if (rc) dir_fail(d, rc);
}

static void send_cb(pier_op *op, int status) {
  dir *d = op->data;
  if (status) {
    dir_fail(d, status);
    return;
  }
  d->sent += op->bytes; /* a send completes only when all is accepted */
  if (d->sent < XFER_LEN) send_next(d);
}

static void recv_cb(pier_op *op, int status) {
  dir *d = op->data;
  if (status || op->bytes == 0) { /* 0 bytes: end of stream, too early */
    dir_fail(d, status);
    return;
  }
  d->recvd += op->bytes;
  if (d->recvd < XFER_LEN) recv_next(d);
  else dirs_done++;
}

static dir dirs[2];

START_TEST(eintr_eagain_and_3_byte_transfers_keep_the_stream_whole) {
  pier_loop *loop = t_loop_new();
  pier_socket *c, *s;
  t_pair(loop, "tcp4", &c, &s);
  faults_on(c, s);
  dirs_done = 0;
  for (int i = 0; i < 2; i++) {
    dir *d = &dirs[i];
    memset(d, 0, sizeof *d);
    d->tx = i ? s : c;
    d->rx = i ? c : s;
    t_fill(d->src, XFER_LEN, 0x5ca1ab1e + (uint64_t)i, 0);
    recv_next(d);
    send_next(d);
  }
  t_run_until_count(loop, &dirs_done, 2, 30000);
  faults_off();
  for (int i = 0; i < 2; i++) {
    dir *d = &dirs[i];
    ck_assert_msg(d->status == 0, "direction %d failed: %s", i,
                  pier_err_name(d->status));
    ck_assert_uint_eq(d->sent, XFER_LEN);
    ck_assert_uint_eq(d->recvd, XFER_LEN);
    size_t bad = t_verify(d->dst, XFER_LEN, 0x5ca1ab1e + (uint64_t)i, 0);
    ck_assert_msg(bad == (size_t)-1, "direction %d: byte %zu differs", i,
                  bad);
  }
  /* Every kind of fault happened, many times. */
  ck_assert_int_gt(f.eintr, 10);
  ck_assert_int_gt(f.eagain, 10);
  ck_assert_int_gt(f.shorts, 10);
  T_OK(pier_close(c, NULL));
  T_OK(pier_close(s, NULL));
  t_loop_free(loop);
}
END_TEST

/* Is the provider under test the libevent one (whose table this is)? */
static int testing_libevent(void) {
  pier_loop *loop;
  if (pier_loop_new(NULL, &loop) != 0) return 0;
  int yes = strcmp(pier_loop_backend(loop), "libevent") == 0;
  pier_loop_free(loop);
  return yes;
}

Suite *suite_syscalls(void) {
  Suite *s = suite_create("syscalls");
  TCase *tc = tcase_create("table");
  tcase_add_checked_fixture(tc, NULL, faults_off);
  tcase_add_test(tc, next_walks_every_entry_and_get_finds_each);
  tcase_add_test(tc, set_gives_the_old_entry_and_null_restores_the_os_call);
  suite_add_tcase(s, tc);
  if (testing_libevent()) {
    tc = tcase_create("faults");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, NULL, faults_off);
    tcase_add_test(tc, eintr_eagain_and_3_byte_transfers_keep_the_stream_whole);
    suite_add_tcase(s, tc);
  }
  return s;
}
