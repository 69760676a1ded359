/* SPDX-License-Identifier: MIT */
#include "util/timeout.h"

#define MAX_DIGITS 8
#define MAX_VALUE 99999999

/* Nanoseconds per unit, finest first; this is also the order in which
 * cgrpc__timeout_format() tries them. */
static const struct {
  char unit;
  int64_t ns;
} units[] = {
    {'n', 1},
    {'u', 1000},
    {'m', 1000000},
    {'S', 1000000000},
    {'M', 60 * (int64_t)1000000000},
    {'H', 3600 * (int64_t)1000000000},
};
#define NUNITS (sizeof(units) / sizeof(units[0]))

int cgrpc__timeout_parse(const char *s, size_t n, int64_t *out_ns) {
  int64_t value = 0;
  size_t i, digits = n - 1;

  /* Exactly "digits + unit": anything after the unit is an error, so the
   * unit is always the last character. */
  if (n < 2 || digits > MAX_DIGITS) {
    return -1;
  }
  for (i = 0; i < digits; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return -1;
    }
    value = value * 10 + (s[i] - '0');
  }
  for (i = 0; i < NUNITS; ++i) {
    if (s[digits] == units[i].unit) {
      /* At most 8 digits, so |value| * unit overflows only for large M and
       * H values; check before multiplying. */
      if (value > INT64_MAX / units[i].ns) {
        *out_ns = INT64_MAX;
      } else {
        *out_ns = value * units[i].ns;
      }
      return 0;
    }
  }
  return -1;
}

size_t cgrpc__timeout_format(char buf[CGRPC__TIMEOUT_BUFLEN], int64_t ns) {
  int64_t value = 1;
  char unit = 'n', tmp[MAX_DIGITS];
  size_t i, len = 0, ndig = 0;

  if (ns > 0) {
    for (i = 0; i < NUNITS; ++i) {
      /* Round up: ceil(ns / unit) without overflowing near INT64_MAX. */
      value = ns / units[i].ns + (ns % units[i].ns != 0);
      unit = units[i].unit;
      if (value <= MAX_VALUE) {
        break;
      }
    }
    /* INT64_MAX ns is about 2562047 hours, so the loop always ends on a
     * value that fits. */
  }
  do {
    tmp[ndig++] = (char)('0' + value % 10);
    value /= 10;
  } while (value > 0);
  while (ndig > 0) {
    buf[len++] = tmp[--ndig];
  }
  buf[len++] = unit;
  buf[len] = '\0';
  return len;
}
