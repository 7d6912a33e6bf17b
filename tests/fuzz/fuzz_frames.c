/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/fuzz_frames.c - libFuzzer target for the message framing
 * reader (src/layers/msg/wire.c, doc/protocol.md).
 *
 * Input: byte 0 picks the receiver's message limit, byte 1 the receive
 * buffer room, byte 2 the size of the pieces the stream arrives in; the
 * rest is the stream.  The reader is driven as the layer drives it, and
 * its events are checked against a reference parse of the whole stream
 * done here in the simplest way: same messages, same lengths, same
 * bytes, same disconnect data, the same error at the same place, never
 * more than `room` bytes at once and never a byte outside the piece.
 */
#include <stdlib.h>
#include <string.h>

#include "pier.h"
#include "wire.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The reference: consumed bytes of payload per frame, in order, into
   out (message bytes and disconnect bytes alike); returns the error at
   the end, 0 if none, 1 if the stream stops inside a frame. */
static int reference(const uint8_t *p, size_t n, uint64_t max, uint8_t *out,
                     size_t *outlen, size_t *frames) {
  size_t i = 0, o = 0, f = 0;
  int done = 0;
  while (i < n) {
    if (done) { *outlen = o; *frames = f; return PIER_EPROTO; }
    if (n - i < WIRE_FRAME_SIZE) { *outlen = o; *frames = f; return 1; }
    unsigned type = p[i];
    uint32_t len = get32(p + i + 1);
    i += WIRE_FRAME_SIZE;
    if (type == WIRE_F_DATA) {
      if (len == 0) { *outlen = o; *frames = f; return PIER_EPROTO; }
      if (len > max) { *outlen = o; *frames = f; return PIER_EMSGSIZE; }
    } else if (type == WIRE_F_DISCONNECT) {
      if (len > WIRE_DATA_MAX) { *outlen = o; *frames = f; return PIER_EMSGSIZE; }
      done = 1;
    } else {
      *outlen = o; *frames = f; return PIER_EPROTO;
    }
    size_t take = n - i < len ? n - i : len;
    memcpy(out + o, p + i, take);
    o += take;
    i += take;
    if (take < len) { *outlen = o; *frames = f; return 1; }
    f++;
  }
  *outlen = o;
  *frames = f;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  static const uint64_t maxes[] = { 1, 7, 64, 4096, PIER_MESSAGE_DEFAULT_MAX };
  uint64_t max = maxes[data[0] % 5];
  size_t room = (size_t)data[1] % 40 + 1;
  size_t piece = (size_t)data[2] % 17 + 1;
  const uint8_t *p = data + 3;
  size_t n = size - 3;

  uint8_t *want = malloc(n + 1), *got = malloc(n + 1);
  size_t wantlen = 0, frames = 0;
  int ref = reference(p, n, max, want, &wantlen, &frames);

  wire_reader r;
  pier__wire_reader_init(&r, max);
  size_t gotlen = 0, ends = 0, off = 0;
  int err = 0;
  uint64_t disc_left = 0;
  while (off < n && !err) {
    size_t chunk = n - off < piece ? n - off : piece;
    size_t pos = 0;
    while (pos < chunk && !err) {
      wire_event ev;
      size_t used = pier__wire_read(&r, p + off + pos, chunk - pos, room, &ev);
      CHECK(used <= chunk - pos);
      switch (ev.type) {
      case WIRE_EV_NONE:
        CHECK(used == chunk - pos); /* all of it taken */
        break;
      case WIRE_EV_DATA:
      case WIRE_EV_DISC_DATA:
        CHECK(ev.len > 0 && ev.len <= room);
        CHECK(ev.off + ev.len == used);
        memcpy(got + gotlen, p + off + pos + ev.off, ev.len);
        gotlen += ev.len;
        if (ev.type == WIRE_EV_DISC_DATA) {
          CHECK(ev.len <= disc_left);
          disc_left -= ev.len;
          CHECK(!ev.end == (disc_left != 0));
        }
        if (ev.end) ends++;
        break;
      case WIRE_EV_DISC:
        CHECK(ev.len <= WIRE_DATA_MAX);
        disc_left = ev.len;
        if (ev.end) ends++;
        break;
      case WIRE_EV_ERROR:
        err = ev.error;
        CHECK(err == PIER_EPROTO || err == PIER_EMSGSIZE);
        break;
      default:
        abort();
      }
      CHECK(used > 0 || ev.type == WIRE_EV_ERROR);
      pos += used;
    }
    off += chunk;
  }
  if (err) {
    CHECK(ref == err);
    wire_event ev;
    CHECK(pier__wire_read(&r, p, n, room, &ev) == 0 && ev.type == WIRE_EV_ERROR);
  } else {
    CHECK(ref == 0 || ref == 1);
    CHECK(pier__wire_reader_at_boundary(&r) == (ref == 0));
    CHECK(ends == frames);
  }
  CHECK(gotlen == wantlen);
  CHECK(memcmp(got, want, gotlen) == 0);
  free(want);
  free(got);
  return 0;
}
