/* SPDX-License-Identifier: MIT */
/*
 * src/thread.c - mutexes, condition variables, threads and the monotonic
 * clock for POSIX and Windows.
 */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#ifndef _WIN32
#  include <sched.h>
#endif

#include "internal.h"
#include "thread.h"

struct thread_start { void (*fn)(void *); void *arg; };

#ifdef _WIN32

int pier__mutex_init(pier__mutex *m) { InitializeSRWLock(m); return 0; }
void pier__mutex_destroy(pier__mutex *m) { (void)m; }
void pier__mutex_lock(pier__mutex *m) { AcquireSRWLockExclusive(m); }
void pier__mutex_unlock(pier__mutex *m) { ReleaseSRWLockExclusive(m); }
int pier__mutex_trylock(pier__mutex *m) {
  return TryAcquireSRWLockExclusive(m) != 0;
}
int pier__cond_init(pier__cond *c) { InitializeConditionVariable(c); return 0; }
void pier__cond_destroy(pier__cond *c) { (void)c; }
void pier__cond_wait(pier__cond *c, pier__mutex *m) {
  SleepConditionVariableSRW(c, m, INFINITE, 0);
}
void pier__cond_broadcast(pier__cond *c) { WakeAllConditionVariable(c); }
void pier__cond_signal(pier__cond *c) { WakeConditionVariable(c); }

static DWORD WINAPI thread_main(LPVOID p) {
  struct thread_start st = *(struct thread_start *)p;
  pier__free(p);
  st.fn(st.arg);
  return 0;
}

int pier__thread_start(pier__thread *t, void (*fn)(void *), void *arg) {
  struct thread_start *st = pier__malloc(sizeof *st);
  if (!st) return PIER_ENOMEM;
  st->fn = fn;
  st->arg = arg;
  *t = CreateThread(NULL, 0, thread_main, st, 0, NULL);
  if (*t == NULL) {
    pier__free(st);
    return pier_spi_os_error((int)GetLastError());
  }
  return 0;
}

void pier__thread_join(pier__thread t) {
  WaitForSingleObject(t, INFINITE);
  CloseHandle(t);
}

pier__thread_id pier__thread_self(void) { return GetCurrentThreadId(); }
void pier__thread_yield(void) { SwitchToThread(); }
int pier__thread_equal(pier__thread_id a, pier__thread_id b) { return a == b; }

/* QueryPerformanceCounter: GetTickCount64 moves in steps of ~16 ms. */
uint64_t pier__hrtime_ms(void) {
  static LARGE_INTEGER freq;
  LARGE_INTEGER now;
  if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&now);
  return (uint64_t)(now.QuadPart / freq.QuadPart * 1000 +
                    now.QuadPart % freq.QuadPart * 1000 / freq.QuadPart);
}

#else /* POSIX */

int pier__mutex_init(pier__mutex *m) {
  return pthread_mutex_init(m, NULL) ? PIER_ENOMEM : 0;
}
void pier__mutex_destroy(pier__mutex *m) { pthread_mutex_destroy(m); }
void pier__mutex_lock(pier__mutex *m) {
  if (pthread_mutex_lock(m)) abort();
}
void pier__mutex_unlock(pier__mutex *m) {
  if (pthread_mutex_unlock(m)) abort();
}
int pier__mutex_trylock(pier__mutex *m) { return pthread_mutex_trylock(m) == 0; }

int pier__cond_init(pier__cond *c) {
  return pthread_cond_init(c, NULL) ? PIER_ENOMEM : 0;
}
void pier__cond_destroy(pier__cond *c) { pthread_cond_destroy(c); }
void pier__cond_wait(pier__cond *c, pier__mutex *m) {
  if (pthread_cond_wait(c, m)) abort();
}
void pier__cond_broadcast(pier__cond *c) { pthread_cond_broadcast(c); }
void pier__cond_signal(pier__cond *c) { pthread_cond_signal(c); }

static void *thread_main(void *p) {
  struct thread_start st = *(struct thread_start *)p;
  pier__free(p);
  st.fn(st.arg);
  return NULL;
}

int pier__thread_start(pier__thread *t, void (*fn)(void *), void *arg) {
  struct thread_start *st = pier__malloc(sizeof *st);
  if (!st) return PIER_ENOMEM;
  st->fn = fn;
  st->arg = arg;
  int rc = pthread_create(t, NULL, thread_main, st);
  if (rc) {
    pier__free(st);
    return pier_spi_os_error(rc);
  }
  return 0;
}

void pier__thread_join(pier__thread t) { pthread_join(t, NULL); }
pier__thread_id pier__thread_self(void) { return pthread_self(); }
void pier__thread_yield(void) { sched_yield(); }
int pier__thread_equal(pier__thread_id a, pier__thread_id b) {
  return pthread_equal(a, b);
}

uint64_t pier__hrtime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
