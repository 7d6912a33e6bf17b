/* SPDX-License-Identifier: MIT */
// tests/headers-cxx.cc - proves the public headers compile as C++11
// (extern "C", no C-only constructs); compiled with -fsyntax-only by
// tests/symbols.sh.
#include <pier.h>
#include <pier/spi.h>
#include <pier/tls.h>

namespace {

void on_done(pier_op *op, int status) { op->status = status; }

int use_declarations(pier_loop *loop, pier_socket *s) {
  char data[4] = {0, 1, 2, 3};
  pier_buf b = pier_buf_init(data, sizeof data);
  pier_op op = pier_op();
  pier_opq q = {nullptr, nullptr};
  pier_opq_push(&q, &op);
  pier_opq_pop(&q);
  const pier_protocol_info *tcp = pier_protocol_find("tcp4");
  pier_run_mode mode = PIER_RUN_NOWAIT;
  int rc = pier_recv(s, &op, &b, 1, PIER_MSG_PEEK, on_done);
  rc += pier_loop_run(loop, mode);
  rc += pier_opq_empty(&q) + (tcp ? tcp->family : 0);
  return rc == PIER_EINVAL ? 1 : static_cast<int>(PIER_VERSION_HEX) +
                                     pier_spi_register(nullptr);
}

}  // namespace

int main() {
  return use_declarations(nullptr, nullptr) + (pier_strerror(PIER_EBUSY) ? 0 : 1);
}
