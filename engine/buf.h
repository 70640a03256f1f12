/*
** buf.h — the growable byte buffer the bindings share (response bodies, captured output, COPY
** data, encoder output, pipelined commands). Header only: a few lines each module inlines.
**
** Secret bytes: growing a buffer moves it, and byte_buf_free hands it back to malloc; either
** would leave a copy of what it held in freed memory. A buffer of up to BYTE_BUF_WIPE_SMALL
** bytes (where headers, tokens, query strings and AUTH commands live) is always wiped when it
** moves or is freed: measured, that costs under 5 µs a buffer. A bigger one is wiped only when
** marked (`b.wipe = 1`): wiping it means copying instead of realloc's mremap, 2x to 100x the
** cost of growth for megabyte bodies (bench figures in the commit that added this).
*/
#ifndef opsh_buf_h
#define opsh_buf_h

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct byte_buf {
  char *data;
  size_t len, cap;
  int wipe;   /* holds secret bytes, whatever its size: wipe what growth and free leave behind */
} byte_buf;

#define BYTE_BUF_FIRST 256
#define BYTE_BUF_WIPE_SMALL (64 * 1024)

static inline int byte_buf_wipes(const byte_buf *b) {
  return b->wipe || b->cap <= BYTE_BUF_WIPE_SMALL;
}

/* room for `more` bytes after len (capacity doubles); 0, or -1 when out of memory */
static inline int byte_buf_reserve(byte_buf *b, size_t more) {
  if (b->cap - b->len >= more) return 0;
  if (more > SIZE_MAX / 4 || b->len > SIZE_MAX / 4 - more) return -1;
  size_t cap = b->cap ? b->cap : BYTE_BUF_FIRST;
  while (cap - b->len < more) cap *= 2;
  char *d;
  if (b->data && byte_buf_wipes(b)) {
    d = malloc(cap);
    if (!d) return -1;
    memcpy(d, b->data, b->len);
    explicit_bzero(b->data, b->cap);   /* bytes past len too: a reused buffer held more before */
    free(b->data);
  } else {
    d = realloc(b->data, cap);
    if (!d) return -1;
  }
  b->data = d;
  b->cap = cap;
  return 0;
}

/* append n bytes; 0, or -1 when out of memory */
static inline int byte_buf_add(byte_buf *b, const void *p, size_t n) {
  if (byte_buf_reserve(b, n) != 0) return -1;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static inline void byte_buf_free(byte_buf *b) {
  if (b->data && byte_buf_wipes(b)) explicit_bzero(b->data, b->cap);
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

#endif
