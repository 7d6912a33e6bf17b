/* SPDX-License-Identifier: MIT */
/*
 * bench/report.c - turn bench/run's result lines (stdin) into the table:
 * per workload and server, the median over the rounds of each figure and
 * of its ratio to libuv *taken within each round*, then pier's targets.
 *
 * A line: "result impl=NAME workload=W key=value ... round=R" (loadgen's
 * output, tagged by bench/run).  Servers are shown in the order they
 * first appear; those named "pier/..." are pier's examples/iocpserver.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RECS 4096
#define MAX_KEYS 24
#define MAX_IMPLS 16

typedef struct rec {
  char impl[48], workload[32];
  int round, nkeys;
  char key[MAX_KEYS][24];
  double val[MAX_KEYS];
} rec;

static rec recs[MAX_RECS];
static int nrecs;
static char impls[MAX_IMPLS][48];
static int nimpls;

static int get(const rec *r, const char *key, double *v) {
  for (int i = 0; i < r->nkeys; i++)
    if (strcmp(r->key[i], key) == 0) { *v = r->val[i]; return 1; }
  return 0;
}

static const rec *find(const char *impl, const char *wl, int round) {
  for (int i = 0; i < nrecs; i++)
    if (recs[i].round == round && strcmp(recs[i].impl, impl) == 0 &&
        strcmp(recs[i].workload, wl) == 0)
      return &recs[i];
  return NULL;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int max_round(void) {
  int m = 0;
  for (int i = 0; i < nrecs; i++) if (recs[i].round > m) m = recs[i].round;
  return m;
}

/* Median over rounds of impl's key; *n rounds.  Returns -1 if none. */
static double med(const char *impl, const char *wl, const char *key, int *n) {
  double v[512];
  int k = 0;
  for (int r = 1; r <= max_round() && k < 512; r++) {
    const rec *x = find(impl, wl, r);
    double d;
    if (x && get(x, key, &d)) v[k++] = d;
  }
  if (n) *n = k;
  return k ? median(v, k) : -1;
}

/* Median over rounds of impl's key / base's key in the same round. */
static double ratio(const char *impl, const char *base, const char *wl, const char *key) {
  double v[512];
  int k = 0;
  for (int r = 1; r <= max_round() && k < 512; r++) {
    const rec *x = find(impl, wl, r), *y = find(base, wl, r);
    double a, b;
    if (x && y && get(x, key, &a) && get(y, key, &b) && b > 0) v[k++] = a / b;
  }
  return k ? median(v, k) : -1;
}

static void put_ratio(double r) {
  if (r < 0) printf("  %7s", "-");
  else printf("  %7.2f", r);
}

static int has(const char *wl) {
  for (int i = 0; i < nrecs; i++) if (strcmp(recs[i].workload, wl) == 0) return 1;
  return 0;
}

static void echo_table(const char *wl, const char *title) {
  if (!has(wl)) return;
  printf("\n%s\n", title);
  printf("  %-16s %10s %8s %9s %8s %11s %8s %8s  %s\n", "server", "msgs/s",
         "x libuv", "p99 us", "x libuv", "CPU ns/msg", "x libuv", "x epoll", "rounds");
  for (int i = 0; i < nimpls; i++) {
    int n;
    double m = med(impls[i], wl, "msgs_s", &n);
    if (n == 0) continue;
    printf("  %-16s %10.0f", impls[i], m);
    put_ratio(ratio(impls[i], "libuv", wl, "msgs_s"));
    printf("  %8.1f", med(impls[i], wl, "p99_us", NULL));
    put_ratio(ratio(impls[i], "libuv", wl, "p99_us"));
    printf("  %10.0f", med(impls[i], wl, "cpu_ns_msg", NULL));
    put_ratio(ratio(impls[i], "libuv", wl, "cpu_ns_msg"));
    put_ratio(ratio(impls[i], "epoll", wl, "cpu_ns_msg"));
    printf("  %d\n", n);
  }
}

static int target(const char *what, double fig, double limit, int le) {
  int ok = fig >= 0 && (le ? fig <= limit : fig >= limit);
  if (fig < 0) printf("  %-52s %9s %s %-7g no figure\n", what, "-", le ? "<=" : ">=", limit);
  else printf("  %-52s %9.2f %s %-7g %s\n", what, fig, le ? "<=" : ">=", limit,
              ok ? "met" : "NOT met");
  return ok;
}

int main(void) {
  char line[4096];
  while (fgets(line, sizeof line, stdin) && nrecs < MAX_RECS) {
    if (strncmp(line, "result ", 7) != 0) continue;
    rec *r = &recs[nrecs];
    memset(r, 0, sizeof *r);
    for (char *tok = strtok(line + 7, " \n"); tok; tok = strtok(NULL, " \n")) {
      char *eq = strchr(tok, '=');
      if (!eq) continue;
      *eq = 0;
      const char *v = eq + 1;
      if (strcmp(tok, "impl") == 0) snprintf(r->impl, sizeof r->impl, "%s", v);
      else if (strcmp(tok, "workload") == 0) snprintf(r->workload, sizeof r->workload, "%s", v);
      else if (strcmp(tok, "round") == 0) r->round = atoi(v);
      else if (r->nkeys < MAX_KEYS) {
        char *end;
        double d = strtod(v, &end);
        if (end == v) continue;
        snprintf(r->key[r->nkeys], sizeof r->key[0], "%s", tok);
        r->val[r->nkeys++] = d;
      }
    }
    if (!r->impl[0] || !r->workload[0] || r->round < 1) continue;
    int known = 0;
    for (int i = 0; i < nimpls; i++) known |= strcmp(impls[i], r->impl) == 0;
    if (!known && nimpls < MAX_IMPLS) snprintf(impls[nimpls++], sizeof impls[0], "%s", r->impl);
    nrecs++;
  }
  if (nrecs == 0) {
    fprintf(stderr, "bench-report: no result lines\n");
    return 1;
  }
  printf("medians over %d rounds; \"x libuv\" / \"x epoll\": this server's figure divided by\n"
         "libuv's / epoll's in the same round, median over the rounds (not the ratio of the medians)\n",
         max_round());

  echo_table("pingpong", "pingpong: 50 connections x 64-byte ping-pong (1 message in flight each)");
  echo_table("inflight", "inflight: 200 connections x 64-byte messages, 4 in flight each");
  echo_table("bulk", "bulk: 2 connections x 64 KiB messages, 4 in flight each");

  if (has("idle")) {
    printf("\nidle: idle connections held open (conns), each with a read pending; bytes per connection\n");
    printf("  %-16s %6s %8s %8s %8s %8s   %s\n", "server", "conns", "RSS", "x libuv",
           "heap", "x libuv", "heap by caller: app / pier / libevent / libuv");
    for (int i = 0; i < nimpls; i++) {
      int n;
      double c = med(impls[i], "idle", "conns", &n);
      if (n == 0) continue;
      printf("  %-16s %6.0f %8.0f", impls[i], c, med(impls[i], "idle", "rss_b", NULL));
      put_ratio(ratio(impls[i], "libuv", "idle", "rss_b"));
      double h = med(impls[i], "idle", "heap_b", NULL);
      if (h < 0) printf("  %8s  %7s", "-", "-");
      else {
        printf("  %8.0f", h);
        put_ratio(ratio(impls[i], "libuv", "idle", "heap_b"));
        printf("   %.0f / %.0f / %.0f / %.0f", med(impls[i], "idle", "heap_app_b", NULL),
               med(impls[i], "idle", "heap_pier_b", NULL),
               med(impls[i], "idle", "heap_libevent_b", NULL),
               med(impls[i], "idle", "heap_libuv_b", NULL));
      }
      printf("  (%d rounds)\n", n);
    }
    printf("  RSS: growth of the server's resident set (/proc/PID/statm); heap: growth of the\n"
           "  bytes it has malloc'ed and not freed (bench/heapcount.so, sizes as requested),\n"
           "  split by the caller of malloc.  Kernel socket buffers are counted in neither.\n");
  }

  if (has("accept")) {
    printf("\naccept: connections accepted and closed per second (pier: through its condition function)\n");
    printf("  %-16s %10s %8s %11s %8s  %s\n", "server", "accepts/s", "x libuv",
           "CPU ns/acc", "x libuv", "rounds");
    for (int i = 0; i < nimpls; i++) {
      int n;
      double m = med(impls[i], "accept", "accepts_s", &n);
      if (n == 0) continue;
      printf("  %-16s %10.0f", impls[i], m);
      put_ratio(ratio(impls[i], "libuv", "accept", "accepts_s"));
      printf("  %10.0f", med(impls[i], "accept", "cpu_ns_acc", NULL));
      put_ratio(ratio(impls[i], "libuv", "accept", "cpu_ns_acc"));
      printf("  %d\n", n);
    }
  }

  int all = 1, any = 0;
  for (int i = 0; i < nimpls; i++) {
    const char *p = impls[i];
    if (strncmp(p, "pier/", 5) != 0) continue;
    any = 1;
    printf("\ntargets for %s (same-round ratios, medians):\n", p);
    static const char *const wls[] = {"pingpong", "inflight", "bulk"};
    char what[96];
    for (int w = 0; w < 3; w++) {
      if (!has(wls[w])) continue;
      snprintf(what, sizeof what, "%s: server CPU per message, x libuv", wls[w]);
      all &= target(what, ratio(p, "libuv", wls[w], "cpu_ns_msg"), 1.0, 1);
      snprintf(what, sizeof what, "%s: server CPU per message, x epoll", wls[w]);
      all &= target(what, ratio(p, "epoll", wls[w], "cpu_ns_msg"), 1.05, 1);
    }
    if (has("bulk"))
      all &= target("bulk: 64 KiB throughput (msgs/s), x libuv",
                    ratio(p, "libuv", "bulk", "msgs_s"), 1.0, 0);
    if (has("idle")) {
      double h = med(p, "idle", "heap_b", NULL), own = -1;
      if (h >= 0) {
        own = med(p, "idle", "heap_pier_b", NULL) + med(p, "idle", "heap_libevent_b", NULL);
        all &= target("idle: user-space heap bytes per connection, whole server", h, 256, 1);
        all &= target("idle: ... of which pier's library (+ its libevent)", own, 256, 1);
      }
      all &= target("idle: resident set growth per connection, bytes",
                    med(p, "idle", "rss_b", NULL), 256, 1);
    }
  }
  if (any) printf("\n%s\n", all ? "every target met" : "some targets NOT met (see above)");
  return 0;
}
