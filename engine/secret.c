/*
** secret.c — opsh.secret values: userdata holding bytes that print, concatenate and encode
** as <redacted>. Only C primitives read the bytes (opsh_secret_check); the memory is wiped
** when the value is collected.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "opsh.h"
#include "runtime.h"

typedef struct secret { size_t len; char bytes[]; } secret;

void opsh_secret_push(lua_State *L, const char *s, size_t len) {
  secret *sec = lua_newuserdatauv(L, sizeof(secret) + len + 1, 0);
  sec->len = len;
  memcpy(sec->bytes, s, len);
  sec->bytes[len] = '\0';
  luaL_setmetatable(L, OPSH_SECRET_META);
}

int opsh_is_secret(lua_State *L, int idx) {
  return luaL_testudata(L, idx, OPSH_SECRET_META) != NULL;
}

const char *opsh_secret_check(lua_State *L, int idx, size_t *len) {
  secret *sec = luaL_testudata(L, idx, OPSH_SECRET_META);
  if (sec) {
    if (len) *len = sec->len;
    return sec->bytes;
  }
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tolstring(L, idx, len);
  luaL_typeerror(L, idx, "secret or string");
  return NULL;
}

static int secret_tostring(lua_State *L) {
  lua_pushliteral(L, "<redacted>");
  return 1;
}

static int secret_concat(lua_State *L) {
  return opsh_error(L, "usage", "a secret cannot be concatenated into a string (it would leak)");
}

/* equal bytes in a time that depends on the length only, not on where they first differ */
static int same_bytes(const char *a, const char *b, size_t n) {
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < n; i++) diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

static int secret_eq(lua_State *L) {
  size_t la, lb;
  const char *a = opsh_secret_check(L, 1, &la), *b = opsh_secret_check(L, 2, &lb);
  lua_pushboolean(L, la == lb && same_bytes(a, b, la));
  return 1;
}

static int secret_len(lua_State *L) {
  secret *sec = luaL_checkudata(L, 1, OPSH_SECRET_META);
  lua_pushinteger(L, (lua_Integer)sec->len);
  return 1;
}

static int secret_gc(lua_State *L) {
  secret *sec = luaL_checkudata(L, 1, OPSH_SECRET_META);
  explicit_bzero(sec->bytes, sec->len);
  sec->len = 0;
  return 0;
}

static int secret_index(lua_State *L) {
  return opsh_error(L, "usage", "a secret has no fields; pass it to the primitive that needs it");
}

static const luaL_Reg secret_meta[] = {
  {"__tostring", secret_tostring},
  {"__concat", secret_concat},
  {"__eq", secret_eq},
  {"__len", secret_len},
  {"__gc", secret_gc},
  {"__index", secret_index},
  {NULL, NULL}
};

void opsh_secret_meta(lua_State *L) {
  luaL_newmetatable(L, OPSH_SECRET_META);
  luaL_setfuncs(L, secret_meta, 0);
  lua_pushliteral(L, "opsh.secret");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

/* ---- scrubbing: a text freed of the secrets a call carried, in the forms they travel in ---- */

#define REDACTED "<redacted>"
#define SCRUB_MIN_ENCODED 4   /* shorter encoded forms would redact ordinary text */

typedef struct pattern { char *bytes; size_t len; } pattern;

typedef struct patterns { pattern *items; size_t n, cap; } patterns;

static void patterns_free(patterns *ps) {
  for (size_t i = 0; i < ps->n; i++) {
    explicit_bzero(ps->items[i].bytes, ps->items[i].len);
    free(ps->items[i].bytes);
  }
  free(ps->items);
}

/* takes ownership of bytes (freed on failure) */
static int patterns_add(patterns *ps, char *bytes, size_t len) {
  if (!bytes) return 0;
  for (size_t i = 0; i < ps->n; i++)
    if (ps->items[i].len == len && memcmp(ps->items[i].bytes, bytes, len) == 0) {
      explicit_bzero(bytes, len);
      free(bytes);
      return 1;
    }
  if (ps->n == ps->cap) {
    size_t cap = ps->cap ? ps->cap * 2 : 16;
    pattern *items = realloc(ps->items, cap * sizeof *items);
    if (!items) { explicit_bzero(bytes, len); free(bytes); return 0; }
    ps->items = items;
    ps->cap = cap;
  }
  ps->items[ps->n].bytes = bytes;
  ps->items[ps->n].len = len;
  ps->n++;
  return 1;
}

static int patterns_add_copy(patterns *ps, const char *s, size_t len) {
  char *c = malloc(len ? len : 1);
  if (c) memcpy(c, s, len);
  return patterns_add(ps, c, len);
}

enum { PCT_UPPER = 1, PCT_PLUS = 2, PCT_ALNUM_ONLY = 4 };

/* percent-encoding as URLs and form bodies carry it: RFC 3986 unreserved kept, or only letters
** and digits kept (encoders that escape more) */
static int add_percent(patterns *ps, const char *s, size_t len, int how) {
  const char *hex = how & PCT_UPPER ? "0123456789ABCDEF" : "0123456789abcdef";
  int plus_for_space = how & PCT_PLUS;
  char *out = malloc(len * 3 + 1);
  if (!out) return 0;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        (!(how & PCT_ALNUM_ONLY) && (c == '-' || c == '.' || c == '_' || c == '~'))) {
      out[o++] = (char)c;
    } else if (c == ' ' && plus_for_space) {
      out[o++] = '+';
    } else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  if (o == len && memcmp(out, s, len) == 0) { free(out); return 1; }
  return patterns_add(ps, out, o);
}

/* The base64 characters that depend only on s when s starts `shift` bytes into the encoded
** data: they appear whatever comes before and after (a "user:" prefix in Basic auth). */
static int add_base64_core(patterns *ps, const char *s, size_t len, int shift, const char *alphabet) {
  size_t total = len + (size_t)shift;
  size_t bits = total * 8;
  size_t first = ((size_t)shift * 8 + 5) / 6;          /* first char made of s's bits only */
  size_t last = bits / 6;                              /* one past the last such char */
  if (last <= first || last - first < SCRUB_MIN_ENCODED) return 1;
  char *out = malloc(last - first);
  if (!out) return 0;
  for (size_t c = first; c < last; c++) {
    size_t bit = c * 6, v = 0;
    for (int k = 0; k < 6; k++, bit++) {
      size_t byte = bit / 8;
      unsigned char b = byte < (size_t)shift ? 0 : (unsigned char)s[byte - (size_t)shift];
      v = (v << 1) | ((b >> (7 - bit % 8)) & 1);
    }
    out[c - first] = alphabet[v];
  }
  return patterns_add(ps, out, last - first);
}

static int add_json_escaped(patterns *ps, const char *s, size_t len) {
  char *out = malloc(len * 6 + 1);
  if (!out) return 0;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; }
    else if (c == '/') { out[o++] = '\\'; out[o++] = '/'; }
    else if (c < 0x20) { o += (size_t)snprintf(out + o, 7, "\\u%04x", c); }
    else out[o++] = (char)c;
  }
  if (o == len) { free(out); return 1; }
  return patterns_add(ps, out, o);
}

static int add_forms(patterns *ps, const char *s, size_t len) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  if (len == 0) return 1;
  if (!patterns_add_copy(ps, s, len)) return 0;
  if (len < SCRUB_MIN_ENCODED) return 1;
  static const int percent_forms[] = {PCT_UPPER, 0, PCT_UPPER | PCT_PLUS, PCT_UPPER | PCT_ALNUM_ONLY,
                                      PCT_ALNUM_ONLY, PCT_UPPER | PCT_PLUS | PCT_ALNUM_ONLY};
  int ok = add_json_escaped(ps, s, len);
  for (size_t f = 0; ok && f < sizeof percent_forms / sizeof *percent_forms; f++)
    ok = add_percent(ps, s, len, percent_forms[f]);
  for (int shift = 0; ok && shift < 3; shift++)
    ok = add_base64_core(ps, s, len, shift, b64) && add_base64_core(ps, s, len, shift, b64url);
  return ok;
}

static int longest_first(const void *a, const void *b) {
  size_t la = ((const pattern *)a)->len, lb = ((const pattern *)b)->len;
  return la < lb ? 1 : la > lb ? -1 : 0;
}

/* [-0, +1, m] text with every secret of the array at list_idx (opsh.secret values or strings)
** replaced by <redacted>, in its raw, percent-encoded, JSON-escaped and base64 forms */
void opsh_scrub_push(lua_State *L, const char *text, size_t len, int list_idx) {
  patterns ps = {0};
  int ok = 1;
  list_idx = lua_absindex(L, list_idx);
  lua_Integer n = lua_istable(L, list_idx) ? luaL_len(L, list_idx) : 0;
  for (lua_Integer i = 1; ok && i <= n; i++) {
    lua_rawgeti(L, list_idx, i);
    size_t slen;
    const char *s = NULL;
    if (opsh_is_secret(L, -1) || lua_type(L, -1) == LUA_TSTRING) s = opsh_secret_check(L, -1, &slen);
    if (s) ok = add_forms(&ps, s, slen);
    lua_pop(L, 1);
  }
  if (!ok) {
    patterns_free(&ps);
    lua_pushliteral(L, REDACTED " (the text could not be scrubbed: out of memory)");
    return;
  }
  qsort(ps.items, ps.n, sizeof *ps.items, longest_first);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t i = 0;
  while (i < len) {
    size_t hit = 0;
    for (size_t p = 0; p < ps.n; p++) {
      const pattern *pt = &ps.items[p];
      if (pt->len <= len - i && memcmp(text + i, pt->bytes, pt->len) == 0) { hit = pt->len; break; }
    }
    if (hit) {
      luaL_addstring(&b, REDACTED);
      i += hit;
    } else {
      luaL_addchar(&b, text[i]);
      i++;
    }
  }
  patterns_free(&ps);
  luaL_pushresult(&b);
}
