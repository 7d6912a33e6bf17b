/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/fuzz_handshake.c - libFuzzer target for the connect-time
 * handshake decoders (src/layers/msg/wire.c, doc/protocol.md).
 *
 * The input is fed as bytes arriving one at a time, as a slow peer would
 * send them.  For every prefix each decoder must answer "need more" (1),
 * a PIER_E* code, or 0 with a result; once it has answered 0 or an error
 * a longer prefix must give the same answer (the verdict never depends
 * on bytes after the fixed part); a request or answer it accepts must
 * encode back to the same bytes and respect the documented limits.
 */
#include <stdlib.h>
#include <string.h>

#include "pier.h"
#include "wire.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void hello_prefixes(const uint8_t *p, size_t n) {
  int settled = 0, verdict = 0;
  wire_hello first;
  memset(&first, 0, sizeof first);
  for (size_t k = 0; k <= n; k++) {
    wire_hello h;
    memset(&h, 0, sizeof h);
    int rc = pier__wire_hello_decode(p, k, &h);
    CHECK(rc == 0 || rc == 1 || rc == PIER_EPROTO || rc == PIER_EMSGSIZE);
    if (settled) {
      CHECK(rc == verdict);
      if (rc == 0) CHECK(memcmp(&h, &first, sizeof h) == 0);
      continue;
    }
    if (rc == 1) {
      CHECK(k < WIRE_HELLO_SIZE);
      continue;
    }
    settled = 1;
    verdict = rc;
    if (rc == 0) {
      CHECK(k == WIRE_HELLO_SIZE);
      CHECK(h.data_len <= WIRE_DATA_MAX && h.callee_max <= WIRE_DATA_MAX);
      CHECK(h.dscp == WIRE_NO_QOS || h.dscp <= 63);
      CHECK(h.priority == WIRE_NO_QOS || h.priority <= 7);
      uint8_t again[WIRE_HELLO_SIZE];
      pier__wire_hello_encode(again, &h);
      CHECK(memcmp(again, p, WIRE_HELLO_SIZE) == 0);
      first = h;
    }
  }
}

static void answer_prefixes(const uint8_t *p, size_t n) {
  int settled = 0, verdict = 0;
  for (size_t k = 0; k <= n; k++) {
    wire_answer a;
    memset(&a, 0, sizeof a);
    int rc = pier__wire_answer_decode(p, k, &a);
    CHECK(rc == 0 || rc == 1 || rc == PIER_EPROTO || rc == PIER_EMSGSIZE);
    if (settled) {
      CHECK(rc == verdict);
      continue;
    }
    if (rc == 1) {
      CHECK(k < WIRE_ANSWER_SIZE);
      continue;
    }
    settled = 1;
    verdict = rc;
    if (rc == 0) {
      CHECK(k == WIRE_ANSWER_SIZE);
      CHECK(a.data_len <= WIRE_DATA_MAX);
      CHECK(a.type >= WIRE_ACCEPT && a.type <= WIRE_UNSUPPORTED);
      CHECK(a.type == WIRE_ACCEPT || a.data_len == 0);
      uint8_t again[WIRE_ANSWER_SIZE];
      pier__wire_answer_encode(again, &a);
      CHECK(memcmp(again, p, WIRE_ANSWER_SIZE) == 0);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 64) size = 64; /* only the fixed parts matter */
  hello_prefixes(data, size);
  answer_prefixes(data, size);
  return 0;
}
