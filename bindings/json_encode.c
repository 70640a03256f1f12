/*
** json_encode.c — the encoder of opsh._json. Integers are written exactly, floats with the
** fewest digits that read back to the same double (and a ".0" when integral, so they read back
** as floats), secrets as "<redacted>", json.null as null. A table is an array when marked
** (opsh.json.array / empty_array) or when its keys are 1..n; an empty unmarked table is {}.
** Errors name the path of the offending value.
*/
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

#define ENCODER_META "opsh.json.encoder"

/* absolute stack slots of json_l_encode */
#define VALUE 1
#define STATE 5
#define ARRAY_MT 6
#define EMPTY_MT 7
#define NULL_VALUE 8

/* A sparse array {[1]=a, [20]=b} is written with nulls in the holes up to this, as lua-cjson does */
#define SPARSE_RATIO 2
#define SPARSE_SAFE 10

typedef struct sortkey {
  const char *s;          /* a string key (anchored by the table), or NULL for a number key */
  size_t len;
  int is_int;
  lua_Integer i;
  lua_Number f;
  char num[40];
} sortkey;

typedef struct enc {
  char *buf;
  size_t len, cap;
  sortkey *keys;          /* a stack of the key sets of the objects being written (sort_keys) */
  size_t nkeys, keys_cap;
  int pretty, sort, indent;
} enc;

/* where the encoder is: one per open container, linked to its parent on the C stack */
typedef struct seg {
  const struct seg *parent;
  const void *table;
  const char *key;        /* the current member's key, or NULL inside an array */
  size_t keylen;
  lua_Integer index;
  int depth;
} seg;

static int enc_gc(lua_State *L) {
  enc *e = luaL_checkudata(L, 1, ENCODER_META);
  free(e->buf);
  free(e->keys);
  e->buf = NULL;
  e->keys = NULL;
  e->len = e->cap = e->nkeys = e->keys_cap = 0;
  return 0;
}

static void reserve(lua_State *L, enc *e, size_t n) {
  if (e->cap - e->len >= n) return;
  size_t cap = e->cap ? e->cap : 256;
  while (cap - e->len < n) cap *= 2;
  char *nb = realloc(e->buf, cap);
  if (!nb) luaL_error(L, "json.encode: out of memory");
  e->buf = nb;
  e->cap = cap;
}

static void put(lua_State *L, enc *e, const char *s, size_t n) {
  reserve(L, e, n);
  memcpy(e->buf + e->len, s, n);
  e->len += n;
}

static void putc_(lua_State *L, enc *e, char c) {
  reserve(L, e, 1);
  e->buf[e->len++] = c;
}

static void newline(lua_State *L, enc *e, int depth) {
  size_t n = 1 + (size_t)e->indent * (size_t)depth;
  reserve(L, e, n);
  e->buf[e->len] = '\n';
  memset(e->buf + e->len + 1, ' ', n - 1);
  e->len += n;
}

/* [-0, +1, m] the path of the value being written: .metadata.labels["app.kubernetes.io/name"], [3] */
static void push_path(lua_State *L, const seg *at) {
  const seg *chain[JSON_MAX_DEPTH + 2];
  int n = 0;
  for (const seg *s = at; s && n < JSON_MAX_DEPTH + 2; s = s->parent) chain[n++] = s;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = n - 1; i >= 0; i--) {
    const seg *s = chain[i];
    if (!s->key) {
      luaL_addstring(&b, "[");
      lua_pushinteger(L, s->index);
      luaL_addvalue(&b);
      luaL_addstring(&b, "]");
      continue;
    }
    size_t len = s->keylen > 64 ? 64 : s->keylen;
    int plain = len > 0 && len == s->keylen;
    for (size_t k = 0; plain && k < len; k++) {
      char c = s->key[k];
      plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (k > 0 && c >= '0' && c <= '9');
    }
    if (plain) {
      luaL_addchar(&b, '.');
      luaL_addlstring(&b, s->key, len);
    } else {
      luaL_addstring(&b, "[\"");
      for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s->key[k];
        if (c < 0x20 || c == '"' || c == '\\') luaL_addchar(&b, '?');
        else luaL_addchar(&b, (char)c);
      }
      luaL_addstring(&b, len < s->keylen ? "...\"]" : "\"]");
    }
  }
  luaL_pushresult(&b);
}

/* [-0, +0, v] raise {kind="json", message="what at <path>", path=} */
__attribute__((noreturn)) static void enc_fail(lua_State *L, const seg *at, const char *what) {
  push_path(L, at);
  const char *path = lua_tostring(L, -1);
  if (*path) {
    opsh_error_push(L, "json", "%s at %s", what, path);
    opsh_error_setstr(L, "path", path);
  } else {
    opsh_error_push(L, "json", "%s", what);
  }
  lua_error(L);
  __builtin_unreachable();
}

static size_t fmt_int(char *out, lua_Integer v) {
  char tmp[24];
  int n = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do { tmp[n++] = (char)('0' + u % 10); u /= 10; } while (u);
  size_t len = 0;
  if (v < 0) out[len++] = '-';
  while (n) out[len++] = tmp[--n];
  out[len] = '\0';
  return len;
}

/* the shortest of %.15g..%.17g that reads back as v (fewer for subnormals); integral values get ".0" */
static size_t fmt_float(char *out, lua_Number v) {
  int n = 0;
  /* subnormals carry fewer digits: 5e-324, not 4.94065645841247e-324 */
  for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
    n = snprintf(out, 32, "%.*g", prec, (double)v);
    if (strtod(out, NULL) == v) break;
  }
  if (!strpbrk(out, ".e")) { out[n++] = '.'; out[n++] = '0'; out[n] = '\0'; }
  return (size_t)n;
}

/* [-0, +0, v] */
static void put_number(lua_State *L, enc *e, int idx, const seg *at) {
  char num[40];
  size_t n;
  if (lua_isinteger(L, idx)) {
    n = fmt_int(num, lua_tointeger(L, idx));
  } else {
    lua_Number v = lua_tonumber(L, idx);
    if (isnan(v)) enc_fail(L, at, "cannot encode NaN (JSON has no NaN)");
    if (isinf(v)) enc_fail(L, at, "cannot encode an infinite number (JSON has no infinity)");
    n = fmt_float(num, v);
  }
  put(L, e, num, n);
}

/* 0: copied as is; 1: escaped; 2: first byte of a UTF-8 sequence to check */
static const unsigned char esc_class[256] = {[0 ... 31] = 1, ['"'] = 1, ['\\'] = 1, [128 ... 255] = 2};

/* [-0, +0, v] */
static void put_string(lua_State *L, enc *e, const char *str, size_t len, const seg *at) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str, *end = s + len;
  reserve(L, e, len + 2);
  e->buf[e->len++] = '"';
  while (s < end) {
    const unsigned char *run = s;
    while (s < end && esc_class[*s] == 0) s++;
    put(L, e, (const char *)run, (size_t)(s - run));
    if (s == end) break;
    if (esc_class[*s] == 2) {
      int n = json_utf8_seq(s, end);
      if (!n) enc_fail(L, at, "cannot encode a string that is not valid UTF-8 (encode binary data, e.g. base64)");
      put(L, e, (const char *)s, (size_t)n);
      s += n;
      continue;
    }
    char esc[6] = {'\\', 0};
    size_t n = 2;
    switch (*s) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      default:
        esc[1] = 'u'; esc[2] = '0'; esc[3] = '0'; esc[4] = hex[*s >> 4]; esc[5] = hex[*s & 15];
        n = 6;
    }
    put(L, e, esc, n);
    s++;
  }
  putc_(L, e, '"');
}

static void enc_value(lua_State *L, enc *e, int idx, const seg *at);

/* [-0, +0, v] -1 for an object, else the length of the array the table at idx is */
static lua_Integer table_shape(lua_State *L, int idx, const seg *at) {
  if (lua_getmetatable(L, idx)) {
    int marked = lua_rawequal(L, -1, ARRAY_MT) || lua_rawequal(L, -1, EMPTY_MT);
    lua_pop(L, 1);
    if (marked) return (lua_Integer)lua_rawlen(L, idx);
  }
  lua_Integer max = 0, count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k > max) max = k;
      count++;
      continue;
    }
    lua_pop(L, 1);
    return -1;
  }
  if (count == 0) return -1;
  if (max > count * SPARSE_RATIO && max > SPARSE_SAFE) {
    char what[128];
    snprintf(what, sizeof what, "cannot encode a sparse array (%lld values, largest index %lld)",
             (long long)count, (long long)max);
    enc_fail(L, at, what);
  }
  return max;
}

/* [-0, +0, v] */
static void put_array(lua_State *L, enc *e, int idx, lua_Integer n, seg *self) {
  if (n == 0) { put(L, e, "[]", 2); return; }
  putc_(L, e, '[');
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1) putc_(L, e, ',');
    if (e->pretty) newline(L, e, self->depth);
    self->index = i;
    lua_rawgeti(L, idx, i);
    enc_value(L, e, lua_gettop(L), self);
    lua_pop(L, 1);
  }
  if (e->pretty) newline(L, e, self->depth - 1);
  putc_(L, e, ']');
}

/* [-0, +0, v] the key at idx as text: a string, or a number written as JSON writes it */
static const char *key_text(lua_State *L, int idx, char *num, size_t *len, const seg *at) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      return lua_tolstring(L, idx, len);
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) *len = fmt_int(num, lua_tointeger(L, idx));
      else {
        lua_Number f = lua_tonumber(L, idx);
        if (isnan(f) || isinf(f)) enc_fail(L, at, "cannot encode a non-finite number as an object key");
        *len = fmt_float(num, f);
      }
      return num;
    default: {
      char what[80];
      snprintf(what, sizeof what, "cannot encode an object key of type %s", luaL_typename(L, idx));
      enc_fail(L, at, what);
    }
  }
}

static void put_member(lua_State *L, enc *e, const char *key, size_t len, int first, seg *self) {
  if (!first) putc_(L, e, ',');
  if (e->pretty) newline(L, e, self->depth);
  self->key = key;
  self->keylen = len;
  put_string(L, e, key, len, self);
  if (e->pretty) put(L, e, ": ", 2);
  else putc_(L, e, ':');
}

static int key_cmp(const void *a, const void *b) {
  const sortkey *x = a, *y = b;
  const char *xs = x->s ? x->s : x->num, *ys = y->s ? y->s : y->num;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(xs, ys, n);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

/* [-0, +0, v] */
static void put_object_sorted(lua_State *L, enc *e, int idx, seg *self) {
  size_t base = e->nkeys;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (e->nkeys == e->keys_cap) {
      size_t cap = e->keys_cap ? e->keys_cap * 2 : 64;
      sortkey *nk = realloc(e->keys, cap * sizeof *nk);
      if (!nk) luaL_error(L, "json.encode: out of memory");
      e->keys = nk;
      e->keys_cap = cap;
    }
    sortkey *k = &e->keys[e->nkeys];
    const char *text = key_text(L, -1, k->num, &k->len, self->parent);
    k->s = text == k->num ? NULL : text;
    k->is_int = lua_isinteger(L, -1);
    k->i = k->is_int ? lua_tointeger(L, -1) : 0;
    k->f = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
    e->nkeys++;
  }
  size_t n = e->nkeys - base;
  qsort(e->keys + base, n, sizeof *e->keys, key_cmp);
  putc_(L, e, '{');
  for (size_t i = 0; i < n; i++) {
    sortkey *k = &e->keys[base + i];   /* e->keys moves when a nested object grows it */
    if (k->s) lua_pushlstring(L, k->s, k->len);
    else if (k->is_int) lua_pushinteger(L, k->i);
    else lua_pushnumber(L, k->f);
    lua_rawget(L, idx);
    k = &e->keys[base + i];
    char num[40];
    const char *key = k->s;
    if (!key) key = memcpy(num, k->num, k->len + 1);
    put_member(L, e, key, k->len, i == 0, self);
    enc_value(L, e, lua_gettop(L), self);
    lua_pop(L, 1);
  }
  e->nkeys = base;
  if (e->pretty) newline(L, e, self->depth - 1);
  putc_(L, e, '}');
}

/* [-0, +0, v] */
static void put_object(lua_State *L, enc *e, int idx, seg *self) {
  lua_pushnil(L);
  if (!lua_next(L, idx)) { put(L, e, "{}", 2); return; }
  lua_pop(L, 2);
  if (e->sort) { put_object_sorted(L, e, idx, self); return; }
  putc_(L, e, '{');
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    char num[40];
    size_t len;
    const char *key = key_text(L, -2, num, &len, self->parent);
    put_member(L, e, key, len, first, self);
    first = 0;
    enc_value(L, e, lua_gettop(L), self);
    lua_pop(L, 1);
  }
  if (e->pretty) newline(L, e, self->depth - 1);
  putc_(L, e, '}');
}

/* [-0, +0, v] */
static void put_table(lua_State *L, enc *e, int idx, const seg *at) {
  const void *t = lua_topointer(L, idx);
  int depth = at ? at->depth + 1 : 1;
  for (const seg *s = at; s; s = s->parent)
    if (s->table == t) enc_fail(L, at, "cannot encode a table that contains itself (cycle)");
  if (depth > JSON_MAX_DEPTH) enc_fail(L, at, "cannot encode nesting deeper than 1000 levels");
  luaL_checkstack(L, 4, "json.encode: nesting too deep");
  seg self = {at, t, NULL, 0, 0, depth};
  lua_Integer n = table_shape(L, idx, at);
  if (n >= 0) put_array(L, e, idx, n, &self);
  else put_object(L, e, idx, &self);
}

/* [-0, +0, v] */
static void enc_value(lua_State *L, enc *e, int idx, const seg *at) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      put(L, e, "null", 4);
      return;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx)) put(L, e, "true", 4);
      else put(L, e, "false", 5);
      return;
    case LUA_TNUMBER:
      put_number(L, e, idx, at);
      return;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      put_string(L, e, s, len, at);
      return;
    }
    case LUA_TTABLE:
      put_table(L, e, idx, at);
      return;
    case LUA_TUSERDATA:
      if (lua_rawequal(L, idx, NULL_VALUE)) { put(L, e, "null", 4); return; }
      if (opsh_is_secret(L, idx)) { put(L, e, "\"<redacted>\"", 12); return; }
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) { put(L, e, "null", 4); return; }   /* cjson.null */
      break;
  }
  char what[80];
  snprintf(what, sizeof what, "cannot encode a value of type %s", luaL_typename(L, idx));
  enc_fail(L, at, what);
}

/* encode(value, pretty, sort_keys, indent) -> string */
int json_l_encode(lua_State *L) {
  luaL_checkany(L, VALUE);
  int pretty = lua_toboolean(L, 2), sort = lua_toboolean(L, 3);
  lua_Integer indent = luaL_optinteger(L, 4, 2);
  luaL_argcheck(L, indent >= 0 && indent <= 16, 4, "indent must be between 0 and 16");
  lua_settop(L, 4);
  enc *e = lua_newuserdatauv(L, sizeof *e, 0);   /* STATE: frees the buffers if encoding raises */
  memset(e, 0, sizeof *e);
  if (luaL_newmetatable(L, ENCODER_META)) {
    lua_pushcfunction(L, enc_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  e->pretty = pretty;
  e->sort = sort;
  e->indent = (int)indent;
  luaL_getmetatable(L, JSON_ARRAY_META);
  luaL_getmetatable(L, JSON_EMPTY_META);
  lua_getfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY);
  enc_value(L, e, VALUE, NULL);
  lua_pushlstring(L, e->buf, e->len);
  lua_pushcfunction(L, enc_gc);
  lua_pushvalue(L, STATE);
  lua_call(L, 1, 0);
  return 1;
}
