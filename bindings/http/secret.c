/*
** secret.c — secret_fields: a JSON response whose members of the given names carry secrets
** (Key Vault's {"value": ...}, a storage account's listed keys). Before the body becomes a Lua
** string, each string value of such a member is moved out of it into C memory (the JSON escapes
** undone) and replaced by "<redacted #N>"; the task gets the body without them and the values
** as opsh.secret. The body is kept in memory that is wiped when it grows or is let go.
** The scan is lexical: a string followed by ':' is a key (in valid JSON only keys are); the
** decoder that reads the body afterwards checks the rest.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http.h"

int http_secret_reserve(byte_buf *b, size_t more) {
  b->wipe = 1;   /* growth and free wipe what they leave behind (buf.h) */
  return byte_buf_reserve(b, more);
}

static int wiped_add(byte_buf *b, const void *p, size_t n) {
  if (http_secret_reserve(b, n) != 0) return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static void wiped_free(byte_buf *b) {
  if (b->data) explicit_bzero(b->data, b->cap);
  byte_buf_free(b);
}

void http_secret_setup(lua_State *L, int spec, http_xfer *x) {
  if (lua_getfield(L, spec, "secret_fields") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  int t = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, t);
  if (n > 0) {
    x->sfields = calloc((size_t)n, sizeof *x->sfields);
    if (!x->sfields) opsh_error(L, "memory", "out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, t, i);
      const char *name = lua_tostring(L, -1);
      if (!name) opsh_error(L, "usage", "http: secret_fields must be a list of names");
      x->sfields[x->nsfields] = strdup(name);
      if (!x->sfields[x->nsfields]) opsh_error(L, "memory", "out of memory");
      x->nsfields++;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

static int is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* the index after the closing quote of the string whose opening quote is at i, or 0 */
static size_t string_end(const char *s, size_t len, size_t i) {
  for (size_t j = i + 1; j < len; j++) {
    if (s[j] == '\\') j++;
    else if (s[j] == '"') return j + 1;
  }
  return 0;
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = (unsigned char)p[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    v = v << 4 | d;
  }
  return v;
}

static int add_utf8(byte_buf *b, unsigned cp) {
  unsigned char u[4];
  size_t n;
  if (cp < 0x80) { u[0] = (unsigned char)cp; n = 1; }
  else if (cp < 0x800) { u[0] = (unsigned char)(0xC0 | cp >> 6); u[1] = (unsigned char)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) {
    u[0] = (unsigned char)(0xE0 | cp >> 12); u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    u[2] = (unsigned char)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    u[0] = (unsigned char)(0xF0 | cp >> 18); u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)); u[3] = (unsigned char)(0x80 | (cp & 0x3F)); n = 4;
  }
  int rc = wiped_add(b, u, n);
  explicit_bzero(u, sizeof u);
  return rc;
}

/* the contents of a JSON string (between its quotes) unescaped into b, as opsh.json decodes it
** (a lone surrogate becomes U+FFFD); 0, -1 if it is not a valid JSON string, -2 out of memory */
static int unescape(const char *s, size_t len, byte_buf *b) {
  size_t i = 0;
  while (i < len) {
    size_t run = i;
    while (i < len && s[i] != '\\' && (unsigned char)s[i] >= 0x20) i++;
    if (i > run && wiped_add(b, s + run, i - run) != 0) return -2;
    if (i == len) return 0;
    if (s[i] != '\\' || i + 1 >= len) return -1;
    char c = s[i + 1], out;
    i += 2;
    switch (c) {
      case '"': out = '"'; break;
      case '\\': out = '\\'; break;
      case '/': out = '/'; break;
      case 'b': out = '\b'; break;
      case 'f': out = '\f'; break;
      case 'n': out = '\n'; break;
      case 'r': out = '\r'; break;
      case 't': out = '\t'; break;
      case 'u': {
        int cp = i + 4 <= len ? hex4(s + i) : -1;
        if (cp < 0) return -1;
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          int lo = i + 6 <= len && s[i] == '\\' && s[i + 1] == 'u' ? hex4(s + i + 2) : -1;
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          } else {
            cp = 0xFFFD;
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = 0xFFFD;
        }
        if (add_utf8(b, (unsigned)cp) != 0) return -2;
        continue;
      }
      default: return -1;
    }
    if (wiped_add(b, &out, 1) != 0) return -2;
  }
  return 0;
}

/* is the key (a JSON string's contents, escapes and all) one of the secret fields? */
static int key_matches(http_xfer *x, const char *k, size_t len) {
  byte_buf plain = {0};
  if (memchr(k, '\\', len)) {
    if (unescape(k, len, &plain) != 0) {
      wiped_free(&plain);
      return 0;
    }
    k = plain.data ? plain.data : "";
    len = plain.len;
  }
  int found = 0;
  for (int i = 0; i < x->nsfields && !found; i++)
    found = strlen(x->sfields[i]) == len && memcmp(x->sfields[i], k, len) == 0;
  wiped_free(&plain);
  return found;
}

/* keep the value s[0..len) (a JSON string's contents) as secret number x->nsecrets + 1 */
static int take_secret(http_xfer *x, const char *s, size_t len) {
  http_secret_value *v = realloc(x->secrets, (size_t)(x->nsecrets + 1) * sizeof *v);
  if (!v) return -2;
  x->secrets = v;
  byte_buf b = {0};
  int rc = unescape(s, len, &b);
  if (rc != 0) {
    wiped_free(&b);
    return rc;
  }
  v[x->nsecrets].bytes = b.data;
  v[x->nsecrets].len = b.len;
  x->nsecrets++;
  return 0;
}

void http_secret_split(http_xfer *x) {
  const char *s = x->body.data;
  size_t len = x->body.len, i = 0, copied = 0;
  if (!s) return;
  byte_buf out = {0};
  int want_value = 0, rc = 0;
  while (i < len && rc == 0) {
    if (want_value) {   /* after a secret field's key and ':' */
      while (i < len && is_ws(s[i])) i++;
      if (i < len && s[i] != '"') want_value = 0;   /* not a string: left as it is */
    }
    if (!want_value) {
      const char *q = memchr(s + i, '"', len - i);
      if (!q) break;
      i = (size_t)(q - s);
    }
    if (i >= len) break;
    size_t end = string_end(s, len, i);
    if (!end) break;   /* unterminated: the decoder will say so */
    if (want_value) {
      char mark[32];
      int n = snprintf(mark, sizeof mark, "\"<redacted #%d>\"", x->nsecrets + 1);
      rc = take_secret(x, s + i + 1, end - i - 2);
      if (rc == 0 && (byte_buf_add(&out, s + copied, i - copied) != 0 || byte_buf_add(&out, mark, (size_t)n) != 0))
        rc = -2;
      copied = i = end;
      want_value = 0;
      continue;
    }
    size_t k = end;
    while (k < len && is_ws(s[k])) k++;
    if (k < len && s[k] == ':' && key_matches(x, s + i + 1, end - i - 2)) {
      want_value = 1;
      i = k + 1;
    } else {
      i = end;
    }
  }
  if (rc == 0 && byte_buf_add(&out, s + copied, len - copied) != 0) rc = -2;
  wiped_free(&x->body);
  if (rc != 0) {
    byte_buf_free(&out);
    if (rc == -1) x->bad_secret = 1;
    else x->nomem = 1;
    return;
  }
  x->body = out;
}

void http_secret_push(lua_State *L, http_xfer *x) {
  lua_createtable(L, x->nsecrets, 0);
  for (int i = 0; i < x->nsecrets; i++) {
    opsh_secret_push(L, x->secrets[i].bytes ? x->secrets[i].bytes : "", x->secrets[i].len);
    lua_rawseti(L, -2, i + 1);
  }
}

void http_secret_free(http_xfer *x) {
  for (int i = 0; i < x->nsfields; i++) free(x->sfields[i]);
  free(x->sfields);
  x->sfields = NULL;
  x->nsfields = 0;
  for (int i = 0; i < x->nsecrets; i++) {
    if (x->secrets[i].bytes) explicit_bzero(x->secrets[i].bytes, x->secrets[i].len);
    free(x->secrets[i].bytes);
  }
  free(x->secrets);
  x->secrets = NULL;
  x->nsecrets = 0;
}
