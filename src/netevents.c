/* SPDX-License-Identifier: MIT */
/*
 * src/netevents.c - network event notification (WSPEventSelect,
 * WSPEnumNetworkEvents): the per-socket record of events, Winsock's
 * re-enabling rules, and the notification callback.
 *
 * The provider watches the OS (select_events slot) and reports events;
 * the core keeps what the application selected, which events are enabled
 * (an event, once recorded, is not recorded again until the application
 * calls its re-enabling function), the record itself with one error code
 * per event, and runs the callback as a completion of the socket - a
 * private op on the socket's done queue - so that it is serialised with
 * the socket's other callbacks and never runs after pier_close().
 *
 * State is allocated on first use: sockets that never select events pay
 * one pointer.
 */
#include <string.h>

#include "internal.h"

struct pier__netev {
  unsigned selected;         /* PIER_EV_* the application asked for */
  unsigned enabled;          /* of those, the ones to record now */
  unsigned recorded;         /* recorded since the last enumeration */
  int errors[PIER_EV_COUNT];
  pier_event_cb cb;
  pier_op notify;            /* the callback's ride on the done queue */
  int held;                  /* an accepted socket not yet handed over:
                                what it records waits (release) */
};

/* What the provider watches; CONNECT comes from connect completions. */
#define PROVIDER_EVENTS (PIER_EV_ALL & ~PIER_EV_CONNECT)

static int bit_index(unsigned ev) {
  int i = 0;
  while (ev > 1) {
    ev >>= 1;
    i++;
  }
  return i;
}

static pier_select_fn slot(const pier_socket *s) {
  return s->prov->version >= 2 ? s->prov->select_events : NULL;
}

/* Tell the provider what to watch now (core lock held). */
static void update_provider(pier_socket *s) {
  struct pier__netev *ne = s->netev;
  pier_select_fn fn = slot(s);
  if (!fn || (PIER__SFLAGS(s) & PIER__S_CLOSING)) return;
  int rc = fn(s, ne->selected & PROVIDER_EVENTS, ne->enabled & PROVIDER_EVENTS);
  if (rc) pier_spi_log(PIER_LOG_WARN, "select_events: %s", pier_strerror(rc));
}

static void notify_cb(pier_op *op, int status) {
  pier_socket *s = op->socket;
  struct pier__netev *ne = s->netev;
  (void)status;
  /* Read under the lock: the provider records from other threads. */
  pier__lock(s->loop);
  unsigned events = ne->recorded;
  pier_event_cb cb = ne->cb;
  int closing = (PIER__SFLAGS(s) & PIER__S_CLOSING) != 0;
  pier__unlock(s->loop);
  if (cb && events && !closing) cb(s, events);
}

/* New event state for s, its notify op set up once: the op's fixed fields
   are read by notify_cb without the lock while a provider thread may queue
   the op again, so nothing but its state changes after this. */
static struct pier__netev *netev_new(pier_socket *s) {
  struct pier__netev *ne = pier__calloc(1, sizeof *ne);
  if (!ne) return NULL;
  ne->notify.socket = s;
  ne->notify.pier__r.type = PIER_OP_POST;
  ne->notify.pier__r.cb = notify_cb;
  return ne;
}

/* Queue the callback unless it is queued already (core lock held). */
static void schedule(pier_socket *s) {
  struct pier__netev *ne = s->netev;
  pier_op *op = &ne->notify;
  if (!ne->cb || ne->held || pier__load(&op->pier__r.state) != PIER_OPS_IDLE)
    return;
  pier__loop_op_started(s->loop, op);
  pier_spi_complete(op, 0);
}

/* Record ev with error if it is enabled (core lock held). */
static void record(pier_socket *s, unsigned ev, int error) {
  struct pier__netev *ne = s->netev;
  if (!ne || !(ne->enabled & ev)) return;
  ne->enabled &= ~ev;
  ne->recorded |= ev;
  ne->errors[bit_index(ev)] = error;
  if (ev & PROVIDER_EVENTS) update_provider(s);
  schedule(s);
}

void pier_spi_net_event(pier_socket *s, unsigned ev, int error) {
  record(s, ev, error);
}

/* ------------------------------------------------------------------ */
/* hooks from the operation calls (core lock held)                     */
/* ------------------------------------------------------------------ */

void pier__netev_reenable(pier_socket *s, unsigned ev) {
  struct pier__netev *ne = s->netev;
  if (!ne) return;
  if (ne->selected & ev) {
    if (ne->enabled & ev) return;
    ne->enabled |= ev;
    update_provider(s);
  } else if (ev == PIER_EV_READ && (ne->enabled & PIER_EV_CLOSE)) {
    /* A provider may stop watching while unread data hides the close:
       a receive makes it look again. */
    update_provider(s);
  }
}

void pier__netev_connected(pier_socket *s, int status) {
  struct pier__netev *ne = s->netev;
  if (!ne) return;
  record(s, PIER_EV_CONNECT, status);
  if (status == 0) record(s, PIER_EV_WRITE, 0);
}

void pier__netev_inherit(pier_socket *listener, pier_socket *s) {
  struct pier__netev *ln = listener->netev;
  pier_select_fn fn = slot(s);
  if (!ln || !ln->selected || !fn) return;
  struct pier__netev *ne = netev_new(s);
  if (!ne) {
    pier_spi_log(PIER_LOG_WARN, "accepted socket: no memory for its events");
    return;
  }
  ne->selected = ne->enabled = ln->selected;
  ne->cb = ln->cb;
  ne->held = 1; /* no callback before the accept's own has returned */
  pier__store(&s->netev, ne);
  int rc = fn(s, ne->selected & PROVIDER_EVENTS, ne->enabled & PROVIDER_EVENTS);
  if (rc) pier_spi_log(PIER_LOG_WARN, "accepted socket events: %s",
                       pier_strerror(rc));
}

void pier__netev_release(pier_socket *s) {
  struct pier__netev *ne = s->netev;
  if (!ne || !ne->held) return;
  ne->held = 0;
  if (ne->recorded) schedule(s);
}

void pier__netev_free(pier_socket *s) {
  pier__free(s->netev);
  s->netev = NULL;
}

/* ------------------------------------------------------------------ */
/* the public calls                                                    */
/* ------------------------------------------------------------------ */

int pier_event_select(pier_socket *s, unsigned mask, pier_event_cb cb) {
  if (!s || (mask & ~PIER_EV_ALL) || (mask && !cb))
    return !s ? pier__bad(__func__, "the socket (first argument) is NULL")
           : (mask & ~PIER_EV_ALL)
               ? pier__bad(__func__, "mask 0x%x has bits outside PIER_EV_ALL",
                           mask)
               : pier__bad(__func__, "cb is NULL with a non-zero mask");
  pier_select_fn fn = slot(s);
  if (!fn) return PIER_EOPNOTSUPP;
  pier__lock(s->loop);
  int rc = pier__socket_usable(__func__, s);
  struct pier__netev *ne = s->netev;
  if (rc == 0 && !ne && mask) {
    ne = netev_new(s);
    if (!ne) rc = PIER_ENOMEM;
    pier__store(&s->netev, ne); /* read without the lock by blocking calls */
  }
  if (rc == 0 && ne) {
    unsigned old_sel = ne->selected, old_en = ne->enabled;
    ne->selected = ne->enabled = mask;
    ne->recorded = 0;
    memset(ne->errors, 0, sizeof ne->errors);
    ne->cb = cb;
    ne->held = 0; /* the application has the socket */
    rc = fn(s, mask & PROVIDER_EVENTS, mask & PROVIDER_EVENTS);
    if (rc) { /* keep the earlier selection */
      ne->selected = old_sel;
      ne->enabled = old_en;
    }
  }
  pier__unlock(s->loop);
  return rc;
}

int pier_enum_network_events(pier_socket *s, pier_net_events *out) {
  if (!s || !out)
    return pier__bad(__func__, "%s is NULL",
                     !s ? "the socket (first argument)" : "out");
  pier__lock(s->loop);
  int rc = pier__socket_usable(__func__, s);
  if (rc == 0) {
    struct pier__netev *ne = s->netev;
    memset(out, 0, sizeof *out);
    if (ne) {
      out->events = ne->recorded;
      memcpy(out->errors, ne->errors, sizeof out->errors);
      ne->recorded = 0;
      memset(ne->errors, 0, sizeof ne->errors);
    }
  }
  pier__unlock(s->loop);
  return rc;
}
