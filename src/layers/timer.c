/* SPDX-License-Identifier: MIT */
/*
 * src/layers/timer.c - the handshake timer of pier's layers (timer.h).
 */
#include "timer.h"

static void fired(pier_timer *t) {
  ltimer *lt = (ltimer *)t;
  pier_loop *loop = t->pier__t.loop;
  pier_spi_lock(loop);
  lt->armed = 0;
  if (!lt->owner) /* its owner let go while this call was on its way */
    pier_spi_free(lt);
  else
    lt->fire(lt->owner);
  pier_spi_unlock(loop);
}

int pier__ltimer_start(ltimer **slot, pier_loop *loop, uint64_t ms,
                       void (*fire)(void *owner), void *owner) {
  if (!*slot) {
    ltimer *lt = pier_spi_calloc(1, sizeof *lt);
    if (!lt) return PIER_ENOMEM;
    int rc = pier_timer_init(loop, &lt->t);
    if (rc) {
      pier_spi_free(lt);
      return rc;
    }
    *slot = lt;
  }
  (*slot)->owner = owner;
  (*slot)->fire = fire;
  (*slot)->armed = 1;
  return pier_timer_start(&(*slot)->t, ms, 0, fired);
}

void pier__ltimer_release(ltimer **slot) {
  ltimer *lt = *slot;
  if (!lt) return;
  *slot = NULL;
  pier_timer_stop(&lt->t);
  if (lt->armed && pier_spi_timer_firing(&lt->t))
    lt->owner = NULL; /* its callback frees it */
  else
    pier_spi_free(lt);
}
