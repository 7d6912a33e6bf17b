/* SPDX-License-Identifier: MIT */
/*
 * src/layers/msg/wire.h - pier's connect-data handshake and message
 * framing on the wire (doc/protocol.md): encoders, decoders and the
 * incremental frame reader.  Pure functions over bytes, shared by the
 * layer and the fuzz targets (tests/fuzz/).
 */
#ifndef PIER_MSG_WIRE_H
#define PIER_MSG_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 1
#define WIRE_HELLO_SIZE 20  /* fixed part of a connect request */
#define WIRE_ANSWER_SIZE 16 /* fixed part of an answer */
#define WIRE_FRAME_SIZE 5   /* frame header */
#define WIRE_DATA_MAX 65536 /* caller, callee and disconnect data */

enum wire_type {
  WIRE_HELLO = 1, WIRE_ACCEPT = 2, WIRE_REJECT = 3, WIRE_UNSUPPORTED = 4
};
enum wire_frame { WIRE_F_DATA = 1, WIRE_F_DISCONNECT = 2 };
#define WIRE_HELLO_FRAMED 0x0001u /* flags: message framing follows */
#define WIRE_NO_QOS 0xFF

typedef struct wire_hello {
  unsigned version;     /* as sent (decode rejects only the magic) */
  unsigned flags;       /* WIRE_HELLO_* */
  uint32_t data_len;    /* caller data that follows */
  uint32_t callee_max;  /* room the caller has for callee data */
  unsigned dscp, priority; /* WIRE_NO_QOS: none */
} wire_hello;

typedef struct wire_answer {
  unsigned version, type; /* WIRE_ACCEPT, WIRE_REJECT, WIRE_UNSUPPORTED */
  uint32_t data_len;      /* callee data that follows */
} wire_answer;

/* Encode the fixed parts; the data follows them. */
void pier__wire_hello_encode(uint8_t out[WIRE_HELLO_SIZE], const wire_hello *h);
void pier__wire_answer_encode(uint8_t out[WIRE_ANSWER_SIZE], const wire_answer *a);
void pier__wire_frame_encode(uint8_t out[WIRE_FRAME_SIZE], unsigned type,
                       uint32_t len);

/*
 * Decode a fixed part from the first n bytes of p: 0 and *h when whole,
 * 1 when more bytes are needed, or a PIER_E* code: PIER_EPROTO (not
 * pier's magic, a reserved field that is not zero, an unknown type),
 * PIER_EMSGSIZE (a length over WIRE_DATA_MAX).  A hello's version and
 * flags are returned for the caller to judge.
 */
int pier__wire_hello_decode(const uint8_t *p, size_t n, wire_hello *h);
int pier__wire_answer_decode(const uint8_t *p, size_t n, wire_answer *a);

/*
 * The frame reader: feed it the bytes of a framed stream and it says
 * where each message's bytes are.  wire_read takes up to n bytes at p and
 * returns how many it consumed, filling *ev:
 *   WIRE_EV_NONE      all consumed, nothing to report yet
 *   WIRE_EV_DATA      ev->len bytes of message payload start at p + ev->off
 *                     (ev->end: the message's last byte is among them)
 *   WIRE_EV_DISC      a disconnect frame of ev->len bytes of data starts;
 *                     its data comes as WIRE_EV_DISC_DATA pieces
 *   WIRE_EV_DISC_DATA ev->len bytes of disconnect data at p + ev->off
 *                     (ev->end: the last of it)
 *   WIRE_EV_ERROR     ev->error: PIER_EPROTO (unknown frame type, an empty
 *                     message, data after the disconnect frame) or
 *                     PIER_EMSGSIZE (a frame over the limits)
 * At most `room` payload bytes are handed out per call, so a receive can
 * stop at the end of its buffers.  After WIRE_EV_ERROR the reader stays
 * failed.
 */
enum wire_ev {
  WIRE_EV_NONE, WIRE_EV_DATA, WIRE_EV_DISC, WIRE_EV_DISC_DATA, WIRE_EV_ERROR
};

typedef struct wire_event {
  int type;       /* WIRE_EV_* */
  size_t off, len;
  int end;        /* 1 when these bytes end the message / disconnect data */
  int error;
} wire_event;

typedef struct wire_reader {
  uint8_t hdr[WIRE_FRAME_SIZE];
  unsigned nhdr;       /* header bytes gathered */
  unsigned type;       /* frame being read */
  uint64_t left;       /* its payload bytes still to come */
  uint64_t max;        /* largest message accepted */
  int in_frame, done, failed;
} wire_reader;

void pier__wire_reader_init(wire_reader *r, uint64_t max_message);
size_t pier__wire_read(wire_reader *r, const uint8_t *p, size_t n, size_t room,
                 wire_event *ev);
/* 1 between frames (a clean place for the stream to end). */
int pier__wire_reader_at_boundary(const wire_reader *r);

#endif
