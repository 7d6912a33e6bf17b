/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/replay.c - a main() for a libFuzzer target built without
 * libFuzzer: runs LLVMFuzzerTestOneInput once on each file named on the
 * command line, and on each regular file of each directory named (so a
 * seed corpus and the crash inputs kept as regressions replay as a
 * plain test under make check, in any build).  Prints
 *   replay: N inputs, no failure
 * and exits 0; a failing input aborts in the target (its name is
 * printed before it runs), a file that cannot be read exits 1.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  static uint8_t buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
  LLVMFuzzerTestOneInput(buf, n);
  return 1;
}

/* Every regular file of dir; returns how many, or -1. */
static int replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return replay_file(dir);
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char path[4096];
    struct stat st;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (replay_file(path) < 0) { count = -1; break; }
    count++;
  }
  closedir(d);
  return count;
}

int main(int argc, char **argv) {
  int total = 0;
  for (int i = 1; i < argc; i++) {
    int n = replay_dir(argv[i]);
    if (n < 0) return 1;
    total += n;
  }
  printf("replay: %d inputs, no failure\n", total);
  return 0;
}
