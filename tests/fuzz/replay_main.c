/* SPDX-License-Identifier: MIT */
/*
 * A main() for fuzz targets built without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file named on the command line, and
 * on every regular file inside each directory named there (not recursive).
 * The corpus thus becomes a regression test under any compiler.
 *
 *   replay_fuzz_<name> DIR_OR_FILE...
 *
 * Exits 0 when every input ran (a crash or sanitizer report ends the
 * process on its own), 1 when a path could not be read.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, n;
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  for (;;) {
    if (len == cap) {
      uint8_t *p;
      cap = cap ? cap * 2 : 4096;
      p = realloc(buf, cap);
      if (!p) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = p;
    }
    n = fread(buf + len, 1, cap - len, f);
    if (n == 0)
      break;
    len += n;
  }
  fclose(f);
  /* An exact-size copy, so ASan catches reads past the input's end. */
  {
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
      free(buf);
      return -1;
    }
    if (len)
      memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
  }
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in |dir|, in name order so runs are repeatable. */
static int run_dir(const char *dir, int *count) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char **names = NULL;
  size_t n = 0, cap = 0, i;
  int rv = 0;
  if (!d) {
    fprintf(stderr, "replay: cannot open %s\n", dir);
    return -1;
  }
  while ((e = readdir(d)) != NULL) {
    char path[4096];
    struct stat st;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (n == cap) {
      char **p;
      cap = cap ? cap * 2 : 64;
      p = realloc(names, cap * sizeof *names);
      if (!p) {
        rv = -1;
        break;
      }
      names = p;
    }
    names[n] = strdup(path);
    if (!names[n]) {
      rv = -1;
      break;
    }
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp_names);
  for (i = 0; i < n; i++) {
    if (rv == 0 && run_file(names[i]) != 0)
      rv = -1;
    else if (rv == 0)
      (*count)++;
    free(names[i]);
  }
  free(names);
  return rv;
}

int main(int argc, char **argv) {
  int i, count = 0, rv = 0;
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  for (i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: cannot stat %s\n", argv[i]);
      rv = 1;
    } else if (S_ISDIR(st.st_mode)) {
      if (run_dir(argv[i], &count) != 0)
        rv = 1;
    } else if (run_file(argv[i]) != 0) {
      rv = 1;
    } else {
      count++;
    }
  }
  printf("replay: %d inputs ran\n", count);
  return rv;
}
