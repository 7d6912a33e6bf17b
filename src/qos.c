/* SPDX-License-Identifier: MIT */
/*
 * src/qos.c - traffic classes by name (WSPGetQOSByName) and applying them
 * to sockets: DSCP into IP_TOS / IPV6_TCLASS, priority into the OS's
 * queueing priority where there is one.  Everything goes through the
 * socket's provider options, so a layer sees it too.
 */
#include <string.h>

#include "internal.h"

typedef struct qos_name { const char *name; int dscp, priority; } qos_name;

/* RFC 4594, figure 3 (service classes and their DSCPs). */
static const qos_name classes[] = {
  { "best-effort", 0, 0 },       /* DF   standard */
  { "background", 8, 1 },        /* CS1  low-priority data */
  { "bulk", 10, 2 },             /* AF11 high-throughput data */
  { "oam", 16, 4 },              /* CS2  operations and management */
  { "low-latency", 18, 4 },      /* AF21 low-latency data */
  { "broadcast-video", 24, 5 },  /* CS3 */
  { "streaming", 26, 5 },        /* AF31 multimedia streaming */
  { "realtime", 32, 5 },         /* CS4  real-time interactive */
  { "video", 34, 5 },            /* AF41 multimedia conferencing */
  { "signaling", 40, 6 },        /* CS5 */
  { "voice", 46, 6 },            /* EF   telephony */
  { "control", 48, 6 },          /* CS6  network control */
};

#define NCLASSES (sizeof classes / sizeof classes[0])

int pier_qos_by_name(const char *name, pier_qos *out) {
  if (!name || !out)
    return pier__bad(__func__, "%s is NULL", !name ? "name" : "out");
  for (size_t i = 0; i < NCLASSES; i++) {
    if (strcmp(classes[i].name, name) == 0) {
      out->dscp = classes[i].dscp;
      out->priority = classes[i].priority;
      return 0;
    }
  }
  return PIER_ENOENT;
}

size_t pier_qos_names(const char **names, size_t cap) {
  for (size_t i = 0; i < NCLASSES && i < cap; i++) names[i] = classes[i].name;
  return NCLASSES;
}

static int valid(const pier_qos *q) {
  return q->dscp >= -1 && q->dscp <= 63 && q->priority >= -1 && q->priority <= 7;
}

static int set_priority(pier_socket *s, int priority) {
#ifdef SO_PRIORITY
  return pier__prov_setsockopt(s, SOL_SOCKET, SO_PRIORITY, &priority,
                             sizeof priority);
#else
  (void)s;
  (void)priority;
  return 0; /* no queueing priority to set on this OS */
#endif
}

static int get_priority(pier_socket *s, int *priority) {
#ifdef SO_PRIORITY
  size_t len = sizeof *priority;
  return pier__prov_getsockopt(s, SOL_SOCKET, SO_PRIORITY, priority, &len);
#else
  (void)s;
  *priority = -1;
  return 0;
#endif
}

static int set_qos(pier_socket *s, const pier_qos *qos);

int pier_set_qos(pier_socket *s, const pier_qos *qos) {
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  if (!qos || !valid(qos))
    return qos ? pier__bad(__func__, "qos has dscp %d or priority %d outside "
                           "-1..63 / -1..7", qos->dscp, qos->priority)
               : pier__bad(__func__, "qos is NULL");
  pier__lock(s->loop); /* s->qos is read by accepts on other threads */
  rc = set_qos(s, qos);
  pier__unlock(s->loop);
  return rc;
}

static int set_qos(pier_socket *s, const pier_qos *qos) {
  int rc;
  int old_tos = 0;
  if (qos->dscp >= 0) {
    if ((rc = pier_getsockopt(s, PIER_SO_TOS, &old_tos)) != 0) return rc;
    if ((rc = pier_setsockopt(s, PIER_SO_TOS, qos->dscp << 2)) != 0) return rc;
    if (s->proto->family == AF_INET6) { /* IPv4 traffic of a dual-stack socket */
      int tos = qos->dscp << 2;
      pier__prov_setsockopt(s, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
    }
  }
  if (qos->priority >= 0 && (rc = set_priority(s, qos->priority)) != 0) {
    if (qos->dscp >= 0) pier_setsockopt(s, PIER_SO_TOS, old_tos); /* undo */
    return rc;
  }
  s->qos = *qos;
  s->has_qos = 1;
  return 0;
}

int pier_get_qos(pier_socket *s, pier_qos *out) {
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  if (!out) return pier__bad(__func__, "out is NULL");
  int tos = 0, priority = -1;
  rc = pier_getsockopt(s, PIER_SO_TOS, &tos);
  if (rc == PIER_ENOPROTOOPT) tos = -4; /* the OS keeps no DSCP for it */
  else if (rc) return rc;
  if ((rc = get_priority(s, &priority)) != 0) return rc;
  out->dscp = tos >> 2;
  out->priority = priority;
  return 0;
}

void pier__qos_inherit(pier_socket *listener, pier_socket *s) {
  if (!listener->has_qos) return;
  int rc = pier_set_qos(s, &listener->qos);
  if (rc) pier_spi_log(PIER_LOG_WARN, "accepted socket kept no QoS: %s",
                       pier_strerror(rc));
}

int pier__qos_save(pier_socket *s, pier__qos_saved *out) {
  out->qos = s->qos;
  out->has_qos = s->has_qos;
  return pier_get_qos(s, &out->os);
}

void pier__qos_restore(pier_socket *s, const pier__qos_saved *saved) {
  pier__lock(s->loop);
  if (saved->os.dscp >= 0 || saved->os.priority >= 0) {
    int rc = set_qos(s, &saved->os);
    if (rc) pier_spi_log(PIER_LOG_WARN, "QoS not restored: %s",
                         pier_strerror(rc));
  }
  s->qos = saved->qos;
  s->has_qos = saved->has_qos;
  pier__unlock(s->loop);
}
