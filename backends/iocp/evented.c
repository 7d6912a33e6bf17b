/* SPDX-License-Identifier: MIT */
/*
 * backends/iocp/evented.c - sockets that cannot be tied to the loop's
 * completion port.
 *
 * A completion port is tied to a socket's file object, not to a handle,
 * and a file object takes one port for its life.  A socket shared with
 * WSADuplicateSocketW (pier_socket_from_share, or a duplicate adopted
 * with pier_socket_adopt) is another handle on the source's file object,
 * tied to the source loop's port already - in another process, or another
 * loop of this one - so CreateIoCompletionPort on it fails with
 * ERROR_INVALID_PARAMETER, on Windows and under Wine alike.  Worse, an
 * overlapped call on it with a plain OVERLAPPED would queue its completion
 * on that other port, where the address means nothing (seen under Wine:
 * doc/providers.md).
 *
 * Such a socket is "evented".  Every OVERLAPPED it hands to Winsock carries
 * an event with the low-order bit set, which keeps the completion off every
 * port; the event is the direction's own (only the head of each queue is
 * with Winsock at a time, connects go in the write direction), and a
 * thread-pool wait on it posts the OVERLAPPED to this loop's port.  The
 * packet is then dispatched like any other, so the rest of the provider
 * does not know the difference.  A listener of this kind accepts with
 * WSAAccept (accept.c).
 *
 * Who completes a call: a call that succeeded at once or is pending has
 * its event signalled when done (an explicit event always is, whatever
 * notification modes the source set on the file), so the wait posts it
 * and the issuer leaves it.  A call that failed at once signals nothing
 * and is completed by its issuer.  `cur` names the OVERLAPPED the
 * direction's next signal is for; the wait takes it with a compare-and-
 * swap, and posts it only once its Internal is no longer STATUS_PENDING
 * (set before the call starts), so a stray signal never posts a call still
 * in flight; an issuer whose call failed takes `cur` back the same way,
 * and leaves the call to the wait if the wait was first.
 */
#include "iocp.h"

static void CALLBACK on_signal(PVOID ctx, BOOLEAN timed_out) {
  iocp_evw *e = ctx;
  OVERLAPPED *ov = e->cur;
  (void)timed_out;
  if (!ov || !HasOverlappedIoCompleted(ov)) return; /* nothing, or stale */
  if (InterlockedCompareExchangePointer((PVOID volatile *)&e->cur, NULL, ov) != ov)
    return; /* its issuer took it back */
  if (!PostQueuedCompletionStatus(e->is->il->port, (DWORD)ov->InternalHigh,
                                  IOCP_KEY_SOCKET, ov))
    pier_spi_log(PIER_LOG_ERROR, "iocp: a completion could not be posted "
                 "(error %lu); its operation is lost",
                 (unsigned long)GetLastError());
}

static void ev_free(iocp_evw *e) {
  if (e->wait) UnregisterWaitEx(e->wait, INVALID_HANDLE_VALUE); /* waits */
  if (e->event) CloseHandle(e->event);
  e->wait = e->event = NULL;
}

static int ev_init(iocp_sock *is, iocp_evw *e) {
  e->is = is;
  e->cur = NULL;
  /* Auto-reset: the wait consumes each signal, one callback per signal. */
  e->event = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (!e->event ||
      !RegisterWaitForSingleObject(&e->wait, e->event, on_signal, e, INFINITE,
                                   WT_EXECUTEINWAITTHREAD)) {
    int rc = pier_spi_os_error((int)GetLastError());
    e->wait = NULL;
    ev_free(e);
    return rc;
  }
  return 0;
}

/* Make is evented: an event and a wait for each direction. */
int pier__iocp_ev_open(iocp_sock *is) {
  int rc = ev_init(is, &is->ev[IOCP_DIR_R]);
  if (rc == 0 && (rc = ev_init(is, &is->ev[IOCP_DIR_W])) != 0)
    ev_free(&is->ev[IOCP_DIR_R]);
  if (rc == 0) is->evented = 1;
  return rc;
}

/* Release the waits and events; the port owes is nothing any more. */
void pier__iocp_ev_close(iocp_sock *is) {
  if (!is->evented) return;
  ev_free(&is->ev[IOCP_DIR_R]);
  ev_free(&is->ev[IOCP_DIR_W]);
  is->evented = 0;
}

/* Prepare ov, about to be handed to Winsock in direction dir. */
void pier__iocp_ev_arm(iocp_sock *is, int dir, OVERLAPPED *ov) {
  if (!is->evented) return;
  iocp_evw *e = &is->ev[dir];
  ov->hEvent = (HANDLE)((ULONG_PTR)e->event | 1); /* no port packet */
  ov->Internal = (ULONG_PTR)STATUS_PENDING;
  InterlockedExchangePointer((PVOID volatile *)&e->cur, ov);
}

/*
 * An overlapped call on ov has returned: ok (it succeeded at once) or
 * failed with err.  Returns 1 if its completion will come through the
 * port (the caller leaves it), 0 if the caller completes it now.
 */
int pier__iocp_owed(iocp_sock *is, int dir, OVERLAPPED *ov, int ok, int err) {
  int pending = !ok && (err == WSA_IO_PENDING || err == ERROR_IO_PENDING);
  if (!is->evented) return pending || (ok && !is->skip_on_success);
  if (ok || pending) return 1; /* its event will be signalled */
  iocp_evw *e = &is->ev[dir];
  return InterlockedCompareExchangePointer((PVOID volatile *)&e->cur, NULL,
                                           ov) != ov;
}
