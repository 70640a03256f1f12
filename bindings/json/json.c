/*
** json.c — opsh._json: the JSON decoder, the json.null sentinel, the array markers and the
** module table (the encoder is encode.c). Decoded integers stay Lua integers, null is
** json.null, arrays carry the opsh.json.array metatable so that [] round-trips.
** Debian's lua-cjson 2.1.0 (linked in the binary) is not used here: it decodes every number as
** a float, encodes numbers with 14 significant digits and cannot tell [] from {} once decoded.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

/* absolute stack slots of json_l_decode */
#define ARRAY_MT 2
#define NULL_VALUE 3

typedef struct dec {
  lua_State *L;
  const char *start, *end;
  int depth;
} dec;

/* bytes that end the fast scan of a string: controls, quote, backslash and non-ASCII (checked) */
static const unsigned char str_stop[256] = {[0 ... 31] = 1, ['"'] = 1, ['\\'] = 1, [128 ... 255] = 1};

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
  return p;
}

/* [-0, +0, v] raise {kind="json", message="what at line L column C (byte N)", line, column, offset} */
__attribute__((noreturn)) static void dec_fail(dec *d, const char *at, const char *what) {
  lua_Integer line = 1, column = 1;   /* inputs of 2 GiB and more count past an int */
  const char *bol = d->start;
  for (const char *q = d->start; q < at; q++)
    if (*q == '\n') { line++; bol = q + 1; }
  for (const char *q = bol; q < at; q++)
    if (((unsigned char)*q & 0xC0) != 0x80) column++;
  lua_Integer offset = (lua_Integer)(at - d->start);
  opsh_error_push(d->L, "json", "%s at line %I column %I (byte %I)", what, line, column, offset);
  opsh_error_setint(d->L, "line", line);
  opsh_error_setint(d->L, "column", column);
  opsh_error_setint(d->L, "offset", offset);
  lua_error(d->L);
  __builtin_unreachable();
}

__attribute__((noreturn)) static void dec_unexpected(dec *d, const char *at, const char *expected) {
  char what[96];
  unsigned char c = (unsigned char)*at;
  if (at >= d->end)
    snprintf(what, sizeof what, "unexpected end of input, expected %s", expected);
  else if (c >= 0x20 && c < 0x7f)
    snprintf(what, sizeof what, "unexpected character '%c', expected %s", c, expected);
  else
    snprintf(what, sizeof what, "unexpected byte 0x%02x, expected %s", c, expected);
  dec_fail(d, at, what);
}

/* the end of the run of plain bytes and valid UTF-8 at p */
static const char *scan_plain(dec *d, const char *p) {
  for (;;) {
    while (!str_stop[(unsigned char)*p]) p++;
    if ((unsigned char)*p < 0x80) return p;
    int n = json_utf8_seq((const unsigned char *)p, (const unsigned char *)d->end);
    if (!n) dec_fail(d, p, "invalid UTF-8 in string");
    p += n;
  }
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = (unsigned char)p[i], x;
    if (c >= '0' && c <= '9') x = c - '0';
    else if (c >= 'a' && c <= 'f') x = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') x = c - 'A' + 10;
    else return -1;
    v = v << 4 | x;
  }
  return v;
}

static void add_utf8(luaL_Buffer *b, unsigned cp) {
  char u[4];
  int n;
  if (cp < 0x80) { u[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    u[2] = (char)(0x80 | (cp >> 6 & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
  }
  luaL_addlstring(b, u, n);
}

/* [-0, +1, e] a string with escapes; p is after the opening quote. Lone surrogates become
** U+FFFD, as Go's encoding/json (Kubernetes) does. */
static const char *dec_string_slow(dec *d, const char *p) {
  luaL_Buffer b;
  luaL_buffinit(d->L, &b);
  for (;;) {
    const char *run = p;
    p = scan_plain(d, p);
    luaL_addlstring(&b, run, p - run);
    unsigned char c = (unsigned char)*p;
    if (c == '"') break;
    if (c != '\\') {
      if (p >= d->end) dec_fail(d, p, "unterminated string");
      dec_fail(d, p, "control character in string");
    }
    const char *esc = p++;
    switch (*p++) {
      case '"': luaL_addchar(&b, '"'); break;
      case '\\': luaL_addchar(&b, '\\'); break;
      case '/': luaL_addchar(&b, '/'); break;
      case 'b': luaL_addchar(&b, '\b'); break;
      case 'f': luaL_addchar(&b, '\f'); break;
      case 'n': luaL_addchar(&b, '\n'); break;
      case 'r': luaL_addchar(&b, '\r'); break;
      case 't': luaL_addchar(&b, '\t'); break;
      case 'u': {
        int cp = hex4(p);
        if (cp < 0) dec_fail(d, esc, "invalid \\u escape in string");
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          int lo = (p[0] == '\\' && p[1] == 'u') ? hex4(p + 2) : -1;
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          } else {
            cp = 0xFFFD;
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          cp = 0xFFFD;
        }
        add_utf8(&b, (unsigned)cp);
        break;
      }
      default:
        if (esc + 1 >= d->end) dec_fail(d, esc, "unterminated string");
        dec_fail(d, esc, "invalid escape in string");
    }
  }
  luaL_pushresult(&b);
  return p + 1;
}

/* [-0, +1, e] p is after the opening quote; returns the position after the closing one */
static const char *dec_string(dec *d, const char *p) {
  const char *s = p;
  p = scan_plain(d, p);
  if (*p == '"') {
    lua_pushlstring(d->L, s, p - s);
    return p + 1;
  }
  return dec_string_slow(d, s);
}

/* [-0, +1, e] */
static const char *dec_number(dec *d, const char *p) {
  const char *s = p;
  int neg = 0, is_float = 0;
  if (*p == '-') { neg = 1; p++; }
  const char *digits = p;
  if (*p == '0') p++;
  else if (*p >= '1' && *p <= '9') while (*p >= '0' && *p <= '9') p++;
  else dec_unexpected(d, p, "a digit");
  const char *int_end = p;
  if (*p == '.') {
    p++;
    if (!(*p >= '0' && *p <= '9')) dec_unexpected(d, p, "a digit after '.'");
    while (*p >= '0' && *p <= '9') p++;
    is_float = 1;
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') p++;
    if (!(*p >= '0' && *p <= '9')) dec_unexpected(d, p, "a digit in the exponent");
    while (*p >= '0' && *p <= '9') p++;
    is_float = 1;
  }
  if (!is_float) {
    size_t n = (size_t)(int_end - digits);
    unsigned long long v = 0;
    int fits = n <= 19;
    for (const char *q = digits; fits && q < int_end; q++) v = v * 10 + (unsigned)(*q - '0');
    if (fits && n == 19) {
      /* 19 digits may have wrapped: compare against the limits as text */
      fits = memcmp(digits, neg ? "9223372036854775808" : "9223372036854775807", 19) <= 0;
    }
    if (fits) {
      lua_pushinteger(d->L, neg ? (lua_Integer)(0ULL - v) : (lua_Integer)v);
      return p;
    }
    /* beyond 64 bits: a float, as Lua itself reads such a literal */
  }
  double v = strtod(s, NULL);
  if (isinf(v)) dec_fail(d, s, "number out of range");   /* JSON has no infinity to read back */
  lua_pushnumber(d->L, v);
  return p;
}

static const char *dec_value(dec *d, const char *p);

/* [-0, +1, e] p is after '[' */
static const char *dec_array(dec *d, const char *p) {
  lua_State *L = d->L;
  lua_createtable(L, 0, 0);
  lua_pushvalue(L, ARRAY_MT);
  lua_setmetatable(L, -2);
  p = skip_ws(p);
  if (*p == ']') return p + 1;
  for (lua_Integer i = 1;; i++) {
    p = dec_value(d, p);
    lua_rawseti(L, -2, i);
    p = skip_ws(p);
    if (*p == ',') p = skip_ws(p + 1);
    else if (*p == ']') return p + 1;
    else dec_unexpected(d, p, "',' or ']' in array");
  }
}

/* [-0, +1, e] p is after '{' */
static const char *dec_object(dec *d, const char *p) {
  lua_State *L = d->L;
  lua_createtable(L, 0, 0);
  p = skip_ws(p);
  if (*p == '}') return p + 1;
  for (;;) {
    if (*p != '"') dec_unexpected(d, p, "a string key in object");
    p = dec_string(d, p + 1);
    p = skip_ws(p);
    if (*p != ':') dec_unexpected(d, p, "':' after object key");
    p = dec_value(d, skip_ws(p + 1));
    lua_rawset(L, -3);
    p = skip_ws(p);
    if (*p == ',') p = skip_ws(p + 1);
    else if (*p == '}') return p + 1;
    else dec_unexpected(d, p, "',' or '}' in object");
  }
}

/* [-0, +1, e] p is at the first byte of a value (after white space) */
static const char *dec_value(dec *d, const char *p) {
  lua_State *L = d->L;
  switch (*p) {
    case '"':
      return dec_string(d, p + 1);
    case '{': case '[':
      if (++d->depth > JSON_MAX_DEPTH) dec_fail(d, p, "nesting deeper than 1000 levels");
      luaL_checkstack(L, 4, "json.decode: nesting too deep");
      p = *p == '{' ? dec_object(d, p + 1) : dec_array(d, p + 1);
      d->depth--;
      return p;
    case 't':
      if (strncmp(p, "true", 4) == 0) { lua_pushboolean(L, 1); return p + 4; }
      break;
    case 'f':
      if (strncmp(p, "false", 5) == 0) { lua_pushboolean(L, 0); return p + 5; }
      break;
    case 'n':
      if (strncmp(p, "null", 4) == 0) { lua_pushvalue(L, NULL_VALUE); return p + 4; }
      break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
      return dec_number(d, p);
  }
  dec_unexpected(d, p, "a value");
}

/* decode(s) -> value */
static int json_l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_settop(L, 1);
  luaL_getmetatable(L, JSON_ARRAY_META);        /* ARRAY_MT */
  lua_getfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY); /* NULL_VALUE */
  dec d = {L, s, s + len, 0};
  const char *p = dec_value(&d, skip_ws(s));
  p = skip_ws(p);
  if (p != d.end) dec_unexpected(&d, p, "the end of input after the value");
  return 1;
}

/* ---- the sentinel and the markers ---- */

static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "null");
  return 1;
}

static int null_index(lua_State *L) {
  return opsh_error(L, "usage", "json.null has no fields (test `v == json.null`)");
}

static int empty_newindex(lua_State *L) {
  return opsh_error(L, "usage", "json.empty_array is shared and read-only; use json.array() for a new array");
}

/* array([t]) -> t marked as a JSON array (a new empty one without t) */
static int json_l_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, JSON_ARRAY_META);
    if (!lua_rawequal(L, -1, -2)) luaL_argerror(L, 1, "table already has a metatable");
    lua_pop(L, 2);
    return 1;
  }
  luaL_setmetatable(L, JSON_ARRAY_META);
  return 1;
}

/* is_array(v) -> true if v is marked as a JSON array (decoded, json.array, json.empty_array) */
static int json_l_is_array(lua_State *L) {
  int is = 0;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, JSON_ARRAY_META);
    luaL_getmetatable(L, JSON_EMPTY_META);
    is = lua_rawequal(L, -1, -3) || lua_rawequal(L, -2, -3);
  }
  lua_pushboolean(L, is);
  return 1;
}

static const luaL_Reg json_funcs[] = {
  {"decode", json_l_decode},
  {"encode", json_l_encode},
  {"array", json_l_array},
  {"is_array", json_l_is_array},
  {NULL, NULL}
};

int luaopen_opsh_json(lua_State *L) {
  luaL_newlib(L, json_funcs);

  if (luaL_newmetatable(L, JSON_ARRAY_META)) {
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
  }
  lua_setfield(L, -2, "array_mt");

  lua_getfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newuserdatauv(L, 0, 0);
    if (luaL_newmetatable(L, JSON_NULL_META)) {
      lua_pushcfunction(L, null_tostring);
      lua_setfield(L, -2, "__tostring");
      lua_pushcfunction(L, null_index);
      lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY);
  }
  lua_setfield(L, -2, "null");

  lua_getfield(L, LUA_REGISTRYINDEX, JSON_EMPTY_META);
  int fresh = lua_isnil(L, -1);
  lua_pop(L, 1);
  if (fresh) {
    luaL_newmetatable(L, JSON_EMPTY_META);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
    lua_pushcfunction(L, empty_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_newtable(L);
    lua_pushvalue(L, -2);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "value");   /* the one frozen empty array lives in its metatable */
    lua_pop(L, 1);
  }
  luaL_getmetatable(L, JSON_EMPTY_META);
  lua_getfield(L, -1, "value");
  lua_setfield(L, -3, "empty_array");
  lua_pop(L, 1);
  return 1;
}
