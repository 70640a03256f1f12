/*
** buf.h — the growable byte buffer the bindings share (response bodies, captured output, COPY
** data, encoder output, pipelined commands). Header only: a few lines each module inlines.
*/
#ifndef opsh_buf_h
#define opsh_buf_h

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct byte_buf {
  char *data;
  size_t len, cap;
} byte_buf;

#define BYTE_BUF_FIRST 256

/* room for `more` bytes after len (capacity doubles); 0, or -1 when out of memory */
static inline int byte_buf_reserve(byte_buf *b, size_t more) {
  if (b->cap - b->len >= more) return 0;
  if (more > SIZE_MAX / 2 - b->len) return -1;
  size_t cap = b->cap ? b->cap : BYTE_BUF_FIRST;
  while (cap - b->len < more) cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) return -1;
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
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

#endif
