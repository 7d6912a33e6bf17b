/* SPDX-License-Identifier: MIT */
/*
 * tests/kinds.h - the kinds of listener the accept suites (reenter,
 * emfile, slowcallers) run over: plain tcp4, the message layer (msg4)
 * and TLS over tcp4 (when built with OpenSSL), with clients of the same
 * kind.  A loop test indexes them with 0 .. T_NKINDS-1; t_kind_skip()
 * says when a kind is not built.
 */
#ifndef PIER_TESTS_KINDS_H
#define PIER_TESTS_KINDS_H

#include "helpers.h"

enum { T_KIND_TCP, T_KIND_MSG, T_KIND_TLS, T_NKINDS };

/* "tcp4", "msg4", "tls". */
const char *t_kind_name(int kind);
/* 1 if kind is not built here (TLS without OpenSSL): skip the test. */
int t_kind_skip(int kind);
/* A listener of kind on loopback (backlog as t_listener_backlog). */
pier_socket *t_kind_listener(pier_loop *loop, int kind,
                             struct sockaddr_storage *addr, size_t *len,
                             int backlog);
/* An unconnected client socket of kind (trusts the listeners' cert). */
pier_socket *t_kind_client(pier_loop *loop, int kind);

#endif
