/* SPDX-License-Identifier: MIT */
/*
 * src/layer.c - the core's services for layered providers: a socket over
 * a lower pier socket, the lock for a layer's callbacks, and the
 * disconnect-data query.  The catalog side (layered entries) is in
 * protocol.c, blocking calls on layered sockets in op.c.
 */
#include "internal.h"

pier_socket *pier_spi_lower(const pier_socket *s) { return s ? s->lower : NULL; }

void pier_spi_lock(pier_loop *loop) { pier__lock(loop); }

void pier_spi_unlock(pier_loop *loop) { pier__unlock(loop); }

int pier_spi_layer_open(const pier_provider *layer,
                        const pier_protocol_info *proto, pier_socket *lower,
                        pier_socket *listener, pier_socket **out) {
  if (!layer || !proto || !lower || !out || layer->version < 3 ||
      !(layer->caps & PIER_PCAP_LAYER))
    return pier__bad(__func__, "%s", !layer ? "layer is NULL"
                     : !proto ? "proto is NULL" : !lower ? "lower is NULL"
                     : !out ? "out is NULL"
                     : "layer is not a layered provider (version < 3 or no "
                     "PIER_PCAP_LAYER)");
  if (listener && (listener->prov != layer || listener->proto != proto))
    return pier__bad(__func__,
                     "listener is not a socket of this layer and proto");
  *out = NULL;
  pier_loop *loop = lower->loop;
  int rc = pier__socket_usable(__func__, lower);
  if (rc) return rc;
  unsigned flags = (PIER__SFLAGS(lower) & PIER__S_NONBLOCK) ? PIER_SOCK_NONBLOCK : 0;
  pier__lock(loop);
  rc = pier__socket_create(loop, layer, proto, PIER_INVALID_SOCKET, lower,
                           flags, out);
  if (rc == 0 && listener) {
    pier__qos_inherit(listener, *out);
    pier__netev_inherit(listener, *out);
  }
  pier__unlock(loop);
  return rc;
}

int pier_recv_disconnect(pier_socket *s, void *buf, size_t cap, size_t *len) {
  int rc = pier__socket_usable(__func__, s);
  if (rc) return rc;
  if (!len || (!buf && cap))
    return pier__bad(__func__, "%s",
                     !len ? "len is NULL" : "buf is NULL with a non-zero cap");
  if (!(s->proto->caps & PIER_CAP_DISCONNECT_DATA)) return PIER_EOPNOTSUPP;
  size_t n = cap;
  rc = pier__prov_getsockopt(s, PIER_SOL_PROVIDER,
                             PIER_SPI_OPT_DISCONNECT_DATA, buf, &n);
  if (rc == PIER_ENOPROTOOPT) rc = PIER_EOPNOTSUPP;
  if (rc == 0) *len = n;
  return rc;
}
