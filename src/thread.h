/* SPDX-License-Identifier: MIT */
/*
 * src/thread.h - the few threading primitives the core needs, over
 * pthreads or Win32, plus atomics (GCC/Clang builtins, mingw included).
 */
#ifndef PIER_THREAD_H
#define PIER_THREAD_H

#ifdef _WIN32
#  include <windows.h>
typedef SRWLOCK pier__mutex;
typedef CONDITION_VARIABLE pier__cond;
typedef HANDLE pier__thread;
typedef DWORD pier__thread_id;
#  define PIER__MUTEX_INIT SRWLOCK_INIT /* a static mutex */
#else
#  include <pthread.h>
typedef pthread_mutex_t pier__mutex;
typedef pthread_cond_t pier__cond;
typedef pthread_t pier__thread;
typedef pthread_t pier__thread_id;
#  define PIER__MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
#endif

int pier__mutex_init(pier__mutex *m);
void pier__mutex_destroy(pier__mutex *m);
void pier__mutex_lock(pier__mutex *m);
/* 1 if taken, 0 if another thread holds it. */
int pier__mutex_trylock(pier__mutex *m);
void pier__mutex_unlock(pier__mutex *m);
int pier__cond_init(pier__cond *c);
void pier__cond_destroy(pier__cond *c);
void pier__cond_wait(pier__cond *c, pier__mutex *m);
void pier__cond_broadcast(pier__cond *c);
void pier__cond_signal(pier__cond *c);

/* pier__thread_start - run fn(arg) on a new joinable thread. */
int pier__thread_start(pier__thread *t, void (*fn)(void *), void *arg);
void pier__thread_join(pier__thread t);
pier__thread_id pier__thread_self(void);
/* Let another ready thread run. */
void pier__thread_yield(void);
int pier__thread_equal(pier__thread_id a, pier__thread_id b);

/* Monotonic milliseconds. */
uint64_t pier__hrtime_ms(void);

/* Thread-local storage class. */
#if defined(_MSC_VER)
#  define PIER__TLS __declspec(thread)
#else
#  define PIER__TLS __thread
#endif

#define pier__load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define pier__store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define pier__fetch_add(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define pier__fetch_or(p, v) __atomic_fetch_or((p), (v), __ATOMIC_ACQ_REL)
#define pier__fetch_and(p, v) __atomic_fetch_and((p), (v), __ATOMIC_ACQ_REL)
/* Sequentially consistent: the lock/poll handshake of src/lock.c, the
   close/blocking-call handshake of src/socket.c. */
#define pier__sc_load(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define pier__sc_store(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define pier__sc_add(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define pier__sc_or(p, v) __atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST)

#endif
