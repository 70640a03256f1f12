/*
** encode.c — the encoder of opsh._json. Integers are written exactly, floats with the
** fewest digits that read back to the same double (and a ".0" when integral, so they read back
** as floats), secrets as "<redacted>" (or, for a primitive building a request body, as their
** bytes: reveal_secrets), json.null as null. A table is an array when marked
** (opsh.json.array / empty_array) or when its keys are 1..n; an empty unmarked table is {}.
** Errors name the path of the offending value.
*/
#include <math.h>
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

typedef struct enc {
  byte_buf out;
  json_keys keys;         /* sort_keys */
  int pretty, sort, indent;
  int reveal;             /* secrets written as their bytes; the output wiped when let go */
  lua_Integer nsecrets;   /* how many were */
} enc;

static int enc_gc(lua_State *L) {
  enc *e = luaL_checkudata(L, 1, ENCODER_META);
  if (e->reveal && e->out.data) explicit_bzero(e->out.data, e->out.cap);
  byte_buf_free(&e->out);
  free(e->keys.v);
  e->keys.v = NULL;
  e->keys.n = e->keys.cap = 0;
  return 0;
}

static void reserve(lua_State *L, enc *e, size_t n) {
  if (e->reveal) e->out.wipe = 1;   /* output holding secrets: growth wipes the old copy (buf.h) */
  if (byte_buf_reserve(&e->out, n) != 0)
    opsh_error(L, "json", "out of memory encoding JSON (output reached %I bytes)", (lua_Integer)e->out.len);
}

static void put(lua_State *L, enc *e, const char *s, size_t n) {
  reserve(L, e, n);
  memcpy(e->out.data + e->out.len, s, n);
  e->out.len += n;
}

static void putc_(lua_State *L, enc *e, char c) {
  reserve(L, e, 1);
  e->out.data[e->out.len++] = c;
}

static void newline(lua_State *L, enc *e, int depth) {
  size_t n = 1 + (size_t)e->indent * (size_t)depth;
  reserve(L, e, n);
  e->out.data[e->out.len] = '\n';
  memset(e->out.data + e->out.len + 1, ' ', n - 1);
  e->out.len += n;
}

#define KIND "json"

/* [-0, +0, v] */
static void put_number(lua_State *L, enc *e, int idx, const json_seg *at) {
  char num[40];
  size_t n;
  if (lua_isinteger(L, idx)) {
    n = json_fmt_int(num, lua_tointeger(L, idx));
  } else {
    lua_Number v = lua_tonumber(L, idx);
    if (isnan(v)) json_fail(L, KIND, at, "cannot encode NaN (JSON has no NaN)");
    if (isinf(v)) json_fail(L, KIND, at, "cannot encode an infinite number (JSON has no infinity)");
    n = json_fmt_float(num, v);
  }
  put(L, e, num, n);
}

/* 0: copied as is; 1: escaped; 2: first byte of a UTF-8 sequence to check */
static const unsigned char esc_class[256] = {[0 ... 31] = 1, ['"'] = 1, ['\\'] = 1, [128 ... 255] = 2};

/* [-0, +0, v] */
static void put_string(lua_State *L, enc *e, const char *str, size_t len, const json_seg *at) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str, *end = s + len;
  reserve(L, e, len + 2);
  e->out.data[e->out.len++] = '"';
  while (s < end) {
    const unsigned char *run = s;
    while (s < end && esc_class[*s] == 0) s++;
    put(L, e, (const char *)run, (size_t)(s - run));
    if (s == end) break;
    if (esc_class[*s] == 2) {
      int n = json_utf8_seq(s, end);
      if (!n) json_fail(L, KIND, at, "cannot encode a string that is not valid UTF-8 (encode binary data, e.g. base64)");
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

static void enc_value(lua_State *L, enc *e, int idx, const json_seg *at);

/* [-0, +0, v] */
static void put_array(lua_State *L, enc *e, int idx, lua_Integer n, json_seg *self) {
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

/* json_member_fn: "key": value */
static void put_member(lua_State *L, void *ud, const char *key, size_t len, size_t i, json_seg *self) {
  enc *e = ud;
  if (i > 0) putc_(L, e, ',');
  if (e->pretty) newline(L, e, self->depth);
  put_string(L, e, key, len, self);
  if (e->pretty) put(L, e, ": ", 2);
  else putc_(L, e, ':');
  enc_value(L, e, lua_gettop(L), self);
}

/* [-0, +0, v] */
static void put_object(lua_State *L, enc *e, int idx, json_seg *self) {
  lua_pushnil(L);
  if (!lua_next(L, idx)) { put(L, e, "{}", 2); return; }
  lua_pop(L, 2);
  putc_(L, e, '{');
  json_each_member(L, idx, e->sort ? &e->keys : NULL, KIND, self, put_member, e);
  if (e->pretty) newline(L, e, self->depth - 1);
  putc_(L, e, '}');
}

/* [-0, +0, v] */
static void put_table(lua_State *L, enc *e, int idx, const json_seg *at) {
  json_seg self = json_enter(L, idx, at, KIND);
  lua_Integer n = json_table_shape(L, idx, ARRAY_MT, EMPTY_MT, KIND, at);
  if (n >= 0) put_array(L, e, idx, n, &self);
  else put_object(L, e, idx, &self);
}

/* [-0, +0, v] */
static void enc_value(lua_State *L, enc *e, int idx, const json_seg *at) {
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
    case LUA_TLIGHTUSERDATA:
      switch (json_special(L, idx, NULL_VALUE)) {
        case JSON_NULL: put(L, e, "null", 4); return;
        case JSON_SECRET:
          if (e->reveal) {
            size_t len;
            const char *s = opsh_secret_check(L, idx, &len);
            put_string(L, e, s, len, at);
            e->nsecrets++;
          } else {
            put(L, e, "\"<redacted>\"", 12);
          }
          return;
      }
      break;
  }
  json_fail_type(L, KIND, at, idx);
}

/* encode(value, pretty, sort_keys, indent [, reveal]) -> string; with reveal: the text, an
** opsh.secret when it holds any, and how many secrets it holds */
int json_l_encode(lua_State *L) {
  luaL_checkany(L, VALUE);
  int pretty = lua_toboolean(L, 2), sort = lua_toboolean(L, 3);
  lua_Integer indent = luaL_optinteger(L, 4, 2);
  luaL_argcheck(L, indent >= 0 && indent <= 16, 4, "indent must be between 0 and 16");
  int reveal = lua_toboolean(L, 5);
  lua_settop(L, 4);
  enc *e = json_state_new(L, sizeof *e, ENCODER_META, enc_gc);   /* STATE */
  e->pretty = pretty;
  e->sort = sort;
  e->indent = (int)indent;
  e->reveal = reveal;
  json_push_markers(L);
  enc_value(L, e, VALUE, NULL);
  if (e->nsecrets > 0) opsh_secret_push(L, e->out.data, e->out.len);
  else lua_pushlstring(L, e->out.data, e->out.len);
  lua_Integer nsecrets = e->nsecrets;
  lua_pushcfunction(L, enc_gc);
  lua_pushvalue(L, STATE);
  lua_call(L, 1, 0);
  if (!reveal) return 1;
  lua_pushinteger(L, nsecrets);
  return 2;
}
