/* SPDX-License-Identifier: MIT */
/*
 * src/share.h - socket sharing between processes, the core's private
 * interface between share.c (the pier_share format, checks, adoption and
 * the channel exchange) and the OS parts: share_posix.c (descriptors,
 * SCM_RIGHTS, pidfd_getfd) and share_win.c (WSADuplicateSocketW).
 */
#ifndef PIER_SHARE_H
#define PIER_SHARE_H

#include "internal.h"

/* What the header of a pier_share says, decoded (share.c encodes it). */
typedef struct pier__share_hdr {
  unsigned version;        /* PIER__SHARE_VERSION */
  unsigned os;             /* PIER__SHARE_OS_*: the description that follows */
  unsigned flags;          /* PIER__SHARE_F_* */
  int family, socktype, protocol;
  int fd;                  /* POSIX: the descriptor in the source process */
  uint64_t source_pid, target_pid;
  size_t info_len;         /* bytes of OS description (Windows) */
} pier__share_hdr;

#define PIER__SHARE_VERSION 1
enum { PIER__SHARE_OS_POSIX = 1, PIER__SHARE_OS_WINDOWS = 2 };
enum { PIER__SHARE_F_LISTENING = 1u << 0 };

/* Room for the OS description after the header. */
#define PIER__SHARE_INFO_OFF 64
#define PIER__SHARE_INFO_CAP (PIER_SHARE_SIZE - PIER__SHARE_INFO_OFF)

/* --- the OS parts (share_posix.c / share_win.c) --------------------- */

/* This OS's PIER__SHARE_OS_* and whether its channel carries the handle
   itself (SCM_RIGHTS) rather than the share naming it. */
extern const unsigned pier__share_os;
extern const int pier__share_passes_handle;

/* This process's id. */
uint64_t pier__share_self(void);

/*
 * Describe h for process pid: set hdr->os and hdr->fd, write the OS
 * description (if any) to info (cap bytes) and its length to
 * hdr->info_len.  0 or a PIER_E* code.
 */
int pier__share_describe(pier_os_socket h, unsigned long pid,
                         pier__share_hdr *hdr, unsigned char *info,
                         size_t cap);

/* Create this process's handle for a share that passed the checks. */
int pier__share_take(const pier__share_hdr *hdr, const unsigned char *info,
                     pier_os_socket *out);

/* The family and type of socket h: 0, or PIER_ENOTSOCK. */
int pier__share_kind(pier_os_socket h, int *family, int *socktype);

/* Close a handle nobody else owns yet. */
void pier__share_close(pier_os_socket h);

/*
 * The channel, as one blocking exchange however the channel is set:
 * send len bytes (attaching handle `attach` with them where the OS passes
 * handles, when it is not PIER_INVALID_SOCKET), or receive len bytes
 * (storing a handle that came with them in *attached, else
 * PIER_INVALID_SOCKET; extra ones are closed).  deadline is on
 * pier__hrtime_ms(), 0 for none.  0, PIER_ETIMEDOUT, PIER_ECONNRESET (the
 * other end closed), PIER_EOPNOTSUPP (a channel that cannot carry a
 * handle), or an OS error.
 */
int pier__chan_send(pier_os_socket ch, const void *buf, size_t len,
                    pier_os_socket attach, uint64_t deadline);
int pier__chan_recv(pier_os_socket ch, void *buf, size_t len,
                    pier_os_socket *attached, uint64_t deadline);

#endif
