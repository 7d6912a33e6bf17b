/* SPDX-License-Identifier: MIT */
/*
 * src/layers/timer.h - the handshake timer of pier's layers (msg, tls).
 * The timer is allocated apart from the socket it serves: when the
 * socket lets go of it while its callback is already on its way
 * (pier_spi_timer_firing), that callback frees it instead of touching
 * the socket.  Core lock held for every call; the callback runs with it.
 */
#ifndef PIER_LAYERS_TIMER_H
#define PIER_LAYERS_TIMER_H

#include <stdint.h>

#include "pier.h"
#include "pier/spi.h"

typedef struct ltimer {
  pier_timer t;
  void *owner;               /* NULL once the owner has let go */
  void (*fire)(void *owner); /* runs with the core lock held */
  int armed;                 /* started, callback not yet begun */
} ltimer;

/* Start (or restart) *slot for ms, allocating it at the first start. */
int pier__ltimer_start(ltimer **slot, pier_loop *loop, uint64_t ms,
                       void (*fire)(void *owner), void *owner);
/* Stop *slot and let go of it; NULL afterwards. */
void pier__ltimer_release(ltimer **slot);

#endif
