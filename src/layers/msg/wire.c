/* SPDX-License-Identifier: MIT */
/*
 * src/layers/msg/wire.c - the handshake and frame formats of
 * doc/protocol.md: big-endian fixed fields, strict checks, no allocation.
 */
#include <string.h>

#include "pier.h"
#include "wire.h"

static const uint8_t magic[4] = {'P', 'I', 'E', 'R'};

static void put16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

void pier__wire_hello_encode(uint8_t out[WIRE_HELLO_SIZE], const wire_hello *h) {
  memset(out, 0, WIRE_HELLO_SIZE);
  memcpy(out, magic, 4);
  out[4] = (uint8_t)h->version;
  out[5] = WIRE_HELLO;
  put16(out + 6, h->flags);
  put32(out + 8, h->data_len);
  put32(out + 12, h->callee_max);
  out[16] = (uint8_t)h->dscp;
  out[17] = (uint8_t)h->priority;
}

void pier__wire_answer_encode(uint8_t out[WIRE_ANSWER_SIZE], const wire_answer *a) {
  memset(out, 0, WIRE_ANSWER_SIZE);
  memcpy(out, magic, 4);
  out[4] = (uint8_t)a->version;
  out[5] = (uint8_t)a->type;
  put32(out + 8, a->data_len);
}

void pier__wire_frame_encode(uint8_t out[WIRE_FRAME_SIZE], unsigned type,
                       uint32_t len) {
  out[0] = (uint8_t)type;
  put32(out + 1, len);
}

/* The magic is checked as soon as its bytes arrive, so that a stranger
   speaking another protocol is told apart without waiting for more. */
static int magic_ok(const uint8_t *p, size_t n) {
  return memcmp(p, magic, n < 4 ? n : 4) == 0;
}

int pier__wire_hello_decode(const uint8_t *p, size_t n, wire_hello *h) {
  if (!magic_ok(p, n)) return PIER_EPROTO;
  if (n > 5 && p[5] != WIRE_HELLO) return PIER_EPROTO;
  if (n < WIRE_HELLO_SIZE) return 1;
  if (p[18] || p[19]) return PIER_EPROTO;
  h->version = p[4];
  h->flags = get16(p + 6);
  h->data_len = get32(p + 8);
  h->callee_max = get32(p + 12);
  h->dscp = p[16];
  h->priority = p[17];
  if (h->data_len > WIRE_DATA_MAX || h->callee_max > WIRE_DATA_MAX)
    return PIER_EMSGSIZE;
  if ((h->dscp != WIRE_NO_QOS && h->dscp > 63) ||
      (h->priority != WIRE_NO_QOS && h->priority > 7))
    return PIER_EPROTO;
  return 0;
}

int pier__wire_answer_decode(const uint8_t *p, size_t n, wire_answer *a) {
  if (!magic_ok(p, n)) return PIER_EPROTO;
  if (n > 5 && (p[5] < WIRE_ACCEPT || p[5] > WIRE_UNSUPPORTED))
    return PIER_EPROTO;
  if (n < WIRE_ANSWER_SIZE) return 1;
  for (size_t i = 6; i < WIRE_ANSWER_SIZE; i++)
    if (i < 8 || i >= 12) { if (p[i]) return PIER_EPROTO; }
  a->version = p[4];
  a->type = p[5];
  a->data_len = get32(p + 8);
  if (a->data_len > WIRE_DATA_MAX) return PIER_EMSGSIZE;
  if (a->type != WIRE_ACCEPT && a->data_len) return PIER_EPROTO;
  return 0;
}

void pier__wire_reader_init(wire_reader *r, uint64_t max_message) {
  memset(r, 0, sizeof *r);
  r->max = max_message;
}

int pier__wire_reader_at_boundary(const wire_reader *r) {
  return !r->failed && !r->in_frame && r->nhdr == 0;
}

static size_t fail(wire_reader *r, wire_event *ev, int error, size_t used) {
  r->failed = 1;
  ev->type = WIRE_EV_ERROR;
  ev->error = error;
  return used;
}

size_t pier__wire_read(wire_reader *r, const uint8_t *p, size_t n, size_t room,
                 wire_event *ev) {
  memset(ev, 0, sizeof *ev);
  if (r->failed) return fail(r, ev, PIER_EPROTO, 0);
  size_t used = 0;
  if (!r->in_frame) {
    if (n && r->done) return fail(r, ev, PIER_EPROTO, 0);
    while (r->nhdr < WIRE_FRAME_SIZE && used < n) r->hdr[r->nhdr++] = p[used++];
    if (r->nhdr < WIRE_FRAME_SIZE) return used;
    r->nhdr = 0;
    r->type = r->hdr[0];
    r->left = get32(r->hdr + 1);
    if (r->type == WIRE_F_DATA) {
      if (r->left == 0) return fail(r, ev, PIER_EPROTO, used);
      if (r->left > r->max) return fail(r, ev, PIER_EMSGSIZE, used);
    } else if (r->type == WIRE_F_DISCONNECT) {
      if (r->left > WIRE_DATA_MAX) return fail(r, ev, PIER_EMSGSIZE, used);
      r->done = 1; /* nothing may follow it */
      r->in_frame = r->left > 0;
      ev->type = WIRE_EV_DISC;
      ev->len = (size_t)r->left;
      ev->end = r->left == 0;
      return used;
    } else {
      return fail(r, ev, PIER_EPROTO, used);
    }
    r->in_frame = 1;
  }
  size_t take = n - used;
  if (take > room) take = room;
  if (take > r->left) take = (size_t)r->left;
  if (take == 0) return used;
  r->left -= take;
  ev->type = r->type == WIRE_F_DATA ? WIRE_EV_DATA : WIRE_EV_DISC_DATA;
  ev->off = used;
  ev->len = take;
  ev->end = r->left == 0;
  if (ev->end) r->in_frame = 0;
  return used + take;
}
