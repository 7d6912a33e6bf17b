/*
 * bench/report.c - turn the lines the bench-IMPL programs print (tagged
 * with their round by scripts/bench) into the side-by-side table.
 *
 *   bench-report < results.txt
 *
 * Input, one run per line, key=value words:
 *   result impl=pier workload=latency metric=p50_us ... round=3
 *   memory impl=pier conns=1000 lib=751.4 ... round=3
 * Per workload and implementation it prints the median over the rounds of
 * the workload's figure (and its min..max), and the median over the rounds
 * of the ratio to raw epoll and to libuv taken within the same round - so
 * that a slow moment of the machine, which hits every implementation of
 * that round alike, cancels out of the ratio.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 40
#define MAX_ROUNDS 256

typedef struct record {
  int nkeys;
  char *key[MAX_KEYS], *val[MAX_KEYS]; /* point into the line, kept */
} record;

static record *recs;
static size_t nrecs;

/* The order implementations are listed in; others follow as they come. */
static const char *const known_impls[] = {"epoll", "libevent", "libuv", "pier"};

static const char *get(const record *r, const char *key) {
  for (int i = 0; i < r->nkeys; i++)
    if (strcmp(r->key[i], key) == 0) return r->val[i];
  return NULL;
}

static double num(const record *r, const char *key) {
  const char *v = get(r, key);
  return v ? atof(v) : 0.0;
}

static int is(const record *r, const char *key, const char *want) {
  const char *v = get(r, key);
  return v && strcmp(v, want) == 0;
}

static void parse_line(char *line) {
  record r;
  memset(&r, 0, sizeof r);
  for (char *tok = strtok(line, " \t\n"); tok && r.nkeys < MAX_KEYS;
       tok = strtok(NULL, " \t\n")) {
    char *eq = strchr(tok, '=');
    r.key[r.nkeys] = tok;
    r.val[r.nkeys] = (char *)"";
    if (eq) {
      *eq = 0;
      r.val[r.nkeys] = eq + 1;
    }
    r.nkeys++;
  }
  if (r.nkeys == 0) return;
  if (strcmp(r.key[0], "result") && strcmp(r.key[0], "memory")) return;
  recs = realloc(recs, (nrecs + 1) * sizeof *recs);
  if (!recs) exit(1);
  recs[nrecs++] = r;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Distinct values of key among records of type, in order of appearance
   (known implementations first when key is "impl"). */
static int distinct(const char *type, const char *key, const char **out, int cap) {
  int n = 0;
  if (strcmp(key, "impl") == 0)
    for (size_t k = 0; k < sizeof known_impls / sizeof *known_impls; k++)
      for (size_t i = 0; i < nrecs; i++)
        if (strcmp(recs[i].key[0], type) == 0 && is(&recs[i], "impl", known_impls[k])) {
          out[n++] = known_impls[k];
          break;
        }
  for (size_t i = 0; i < nrecs && n < cap; i++) {
    const char *v = get(&recs[i], key);
    if (strcmp(recs[i].key[0], type) != 0 || !v) continue;
    int seen = 0;
    for (int j = 0; j < n; j++) seen |= strcmp(out[j], v) == 0;
    if (!seen) out[n++] = v;
  }
  return n;
}

/* The record of type/workload/impl in round, or NULL. */
static const record *find(const char *type, const char *workload, const char *impl,
                          const char *round) {
  for (size_t i = 0; i < nrecs; i++) {
    const record *r = &recs[i];
    if (strcmp(r->key[0], type) == 0 && is(r, "impl", impl) &&
        (!workload || is(r, "workload", workload)) && is(r, "round", round))
      return r;
  }
  return NULL;
}

/* Median over rounds of field, for one implementation; n gets the count,
   lo and hi the extremes. */
static double stat(const char *type, const char *workload, const char *impl,
                   const char *field, int *n, double *lo, double *hi) {
  double v[MAX_ROUNDS];
  *n = 0;
  for (size_t i = 0; i < nrecs && *n < MAX_ROUNDS; i++) {
    const record *r = &recs[i];
    if (strcmp(r->key[0], type) == 0 && is(r, "impl", impl) &&
        (!workload || is(r, "workload", workload)))
      v[(*n)++] = num(r, field);
  }
  if (*n == 0) return 0;
  qsort(v, (size_t)*n, sizeof *v, cmp_double);
  if (lo) *lo = v[0];
  if (hi) *hi = v[*n - 1];
  return median(v, *n);
}

/* Median over the rounds that have both of impl's field / base's field;
   negative when there is no such round. */
static double ratio(const char *type, const char *workload, const char *impl,
                    const char *base, const char *field) {
  double v[MAX_ROUNDS];
  int n = 0;
  for (size_t i = 0; i < nrecs && n < MAX_ROUNDS; i++) {
    const record *r = &recs[i];
    if (strcmp(r->key[0], type) || !is(r, "impl", impl) ||
        (workload && !is(r, "workload", workload)))
      continue;
    const record *b = find(type, workload, base, get(r, "round") ? get(r, "round") : "");
    if (b && num(b, field) > 0) v[n++] = num(r, field) / num(b, field);
  }
  return n ? median(v, n) : -1;
}

static void print_ratio(double x) {
  if (x < 0) printf("  %7s", "-");
  else printf("  %7.2f", x);
}

/* What a metric is called, and which way is better. */
static void describe(const char *metric, const char **label, const char **unit,
                     const char **better, const char **cpu_field, const char **cpu_unit) {
  if (strcmp(metric, "mib_s") == 0) {
    *label = "MiB/s echoed"; *unit = "MiB/s"; *better = "higher is better";
    *cpu_field = "cpu_us_mib"; *cpu_unit = "CPU us/MiB";
  } else if (strcmp(metric, "p50_us") == 0) {
    *label = "median round trip"; *unit = "p50 us"; *better = "lower is better";
    *cpu_field = "cpu_us_rtt"; *cpu_unit = "CPU us/rt";
  } else {
    *label = "round trips/s"; *unit = "rt/s"; *better = "higher is better";
    *cpu_field = "cpu_us_rtt"; *cpu_unit = "CPU us/rt";
  }
}

static void report_workload(const char *workload, const char **impls, int nimpl) {
  const record *any = NULL;
  for (size_t i = 0; i < nrecs && !any; i++)
    if (strcmp(recs[i].key[0], "result") == 0 && is(&recs[i], "workload", workload))
      any = &recs[i];
  const char *metric = get(any, "metric");
  if (!metric || strcmp(metric, "-") == 0) metric = "rtt_s";
  const char *label, *unit, *better, *cpu_field, *cpu_unit;
  describe(metric, &label, &unit, &better, &cpu_field, &cpu_unit);
  int lat = strcmp(metric, "p50_us") == 0;

  printf("\n%s: %d conn%s, %d-byte messages, %d bytes in flight per "
         "connection, %.1f s measured per run\n",
         workload, (int)num(any, "conns"), num(any, "conns") == 1 ? "" : "s",
         (int)num(any, "size"), (int)num(any, "window"), num(any, "secs"));
  printf("  %s (%s); ratios: this / epoll and this / libuv, same round\n", label, better);
  printf("  %-16s %10s %21s  %7s  %7s", "impl", unit, "min..max", "x epoll", "x libuv");
  if (lat) printf("  %8s", "p99 us");
  printf("  %10s  %7s  %s\n", cpu_unit, "x epoll", "rounds");
  for (int k = 0; k < nimpl; k++) {
    int n;
    double lo = 0, hi = 0;
    double med = stat("result", workload, impls[k], metric, &n, &lo, &hi);
    if (n == 0) continue;
    char name[64], range[48];
    const record *r = NULL;
    for (size_t i = 0; i < nrecs && !r; i++)
      if (strcmp(recs[i].key[0], "result") == 0 && is(&recs[i], "impl", impls[k]))
        r = &recs[i];
    const char *variant = r ? get(r, "variant") : NULL;
    if (variant && strcmp(variant, "-") != 0)
      snprintf(name, sizeof name, "%s/%s", impls[k], variant);
    else
      snprintf(name, sizeof name, "%s", impls[k]);
    snprintf(range, sizeof range, "%.1f..%.1f", lo, hi);
    printf("  %-16s %10.1f %21s", name, med, range);
    print_ratio(ratio("result", workload, impls[k], "epoll", metric));
    print_ratio(ratio("result", workload, impls[k], "libuv", metric));
    if (lat) printf("  %8.1f", stat("result", workload, impls[k], "p99_us", &n, NULL, NULL));
    printf("  %10.2f", stat("result", workload, impls[k], cpu_field, &n, NULL, NULL));
    print_ratio(ratio("result", workload, impls[k], "epoll", cpu_field));
    printf("  %d\n", n);
  }
}

static void report_memory(const char **impls, int nimpl) {
  const record *any = NULL;
  for (size_t i = 0; i < nrecs && !any; i++)
    if (strcmp(recs[i].key[0], "memory") == 0) any = &recs[i];
  if (!any) return;
  printf("\nmemory per idle connection: %d accepted connections, each with a "
         "read pending, no data; bytes per connection, median of the rounds\n",
         (int)num(any, "conns"));
  printf("  %-10s %8s %-24s %8s %8s %8s  %s\n", "impl", "lib", "(lib counted with)",
         "app", "heap", "RSS", "rounds");
  double pier_lib = -1;
  for (int k = 0; k < nimpl; k++) {
    int n;
    double lib = stat("memory", NULL, impls[k], "lib", &n, NULL, NULL);
    if (n == 0) continue;
    double sub = stat("memory", NULL, impls[k], "sub", &n, NULL, NULL);
    double app = stat("memory", NULL, impls[k], "app", &n, NULL, NULL);
    double heap = stat("memory", NULL, impls[k], "heap", &n, NULL, NULL);
    double rss = stat("memory", NULL, impls[k], "rss", &n, NULL, NULL);
    const record *r = NULL;
    for (size_t i = 0; i < nrecs && !r; i++)
      if (strcmp(recs[i].key[0], "memory") == 0 && is(&recs[i], "impl", impls[k]))
        r = &recs[i];
    const char *how = get(r, "how");
    char hows[64];
    snprintf(hows, sizeof hows, "(%s)", how && strcmp(how, "-") ? how : "nothing to count");
    printf("  %-10s %8.0f %-24s %8.0f %8.0f %8.0f  %d\n", impls[k], lib, hows, app,
           heap, rss, n);
    if (sub >= 0)
      printf("  %-10s %8.0f %-24s\n", "", sub, "(+ its libevent: event_set_mem_functions)");
    if (strcmp(impls[k], "pier") == 0) pier_lib = lib;
  }
  printf("  lib: bytes the library allocated, counted through its allocator hook;\n"
         "  app: the per-connection struct the program keeps for that API (handle,\n"
         "       pending op, 16-byte probe buffer; no data buffer);\n"
         "  heap: growth of malloc's bytes in use (mallinfo2: lib + app + malloc's\n"
         "       own headers); RSS: growth of the resident set.  Kernel socket\n"
         "       memory is the same for all and not counted.\n");
  if (pier_lib >= 0)
    printf("  pier target: <= 256 bytes pier-owned per idle connection: %.0f - %s\n",
           pier_lib, pier_lib <= 256 ? "met" : "NOT met");
}

int main(void) {
  char buf[4096];
  while (fgets(buf, sizeof buf, stdin)) {
    char *line = strdup(buf);
    if (!line) return 1;
    parse_line(line);
  }
  const char *impls[32], *workloads[32];
  int nimpl = distinct("result", "impl", impls, 32);
  int nwork = distinct("result", "workload", workloads, 32);
  for (int w = 0; w < nwork; w++) report_workload(workloads[w], impls, nimpl);
  const char *mimpls[32];
  int nm = distinct("memory", "impl", mimpls, 32);
  report_memory(mimpls, nm);
  if (nwork == 0 && nm == 0) {
    fprintf(stderr, "bench-report: no results\n");
    return 1;
  }
  return 0;
}
