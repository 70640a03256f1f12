/*
** walk.c — what an encoder of Lua values needs besides its output syntax, shared by
** opsh.json's encoder and opsh.yaml's emitter: error paths, cycle and depth checks, the
** array-or-object rule, sorted keys and exact number formatting.
*/
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"

/* A sparse array {[1]=a, [20]=b} is written with nulls in the holes up to this, as lua-cjson does */
#define SPARSE_RATIO 2
#define SPARSE_SAFE 10

size_t json_fmt_int(char *out, lua_Integer v) {
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

size_t json_fmt_float(char *out, lua_Number v) {
  int n = 0;
  /* subnormals carry fewer digits: 5e-324, not 4.94065645841247e-324 */
  for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
    n = snprintf(out, 32, "%.*g", prec, (double)v);
    if (strtod(out, NULL) == v) break;
  }
  if (!strpbrk(out, ".e")) { out[n++] = '.'; out[n++] = '0'; out[n] = '\0'; }
  return (size_t)n;
}

void json_push_path(lua_State *L, const json_seg *at) {
  const json_seg *chain[JSON_MAX_DEPTH + 2];
  int n = 0;
  for (const json_seg *s = at; s && n < JSON_MAX_DEPTH + 2; s = s->parent) chain[n++] = s;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = n - 1; i >= 0; i--) {
    const json_seg *s = chain[i];
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
        luaL_addchar(&b, (c < 0x20 || c == '"' || c == '\\') ? '?' : (char)c);
      }
      luaL_addstring(&b, len < s->keylen ? "...\"]" : "\"]");
    }
  }
  luaL_pushresult(&b);
}

void json_fail(lua_State *L, const char *kind, const json_seg *at, const char *what) {
  json_push_path(L, at);
  const char *path = lua_tostring(L, -1);
  if (*path) {
    opsh_error_push(L, kind, "%s at %s", what, path);
    opsh_error_setstr(L, "path", path);
  } else {
    opsh_error_push(L, kind, "%s", what);
  }
  lua_error(L);
  __builtin_unreachable();
}

json_seg json_enter(lua_State *L, int idx, const json_seg *at, const char *kind) {
  const void *t = lua_topointer(L, idx);
  int depth = at ? at->depth + 1 : 1;
  for (const json_seg *s = at; s; s = s->parent)
    if (s->table == t) json_fail(L, kind, at, "cannot encode a table that contains itself (cycle)");
  if (depth > JSON_MAX_DEPTH) json_fail(L, kind, at, "cannot encode nesting deeper than 1000 levels");
  luaL_checkstack(L, 4, "nesting too deep");
  json_seg self = {at, t, NULL, 0, 0, depth};
  return self;
}

lua_Integer json_table_shape(lua_State *L, int idx, int array_mt, int empty_mt, const char *kind,
                             const json_seg *at) {
  if (lua_getmetatable(L, idx)) {
    int marked = lua_rawequal(L, -1, array_mt) || lua_rawequal(L, -1, empty_mt);
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
    json_fail(L, kind, at, what);
  }
  return max;
}

const char *json_key_text(lua_State *L, int idx, char *num, size_t *len, const char *kind, const json_seg *at) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      return lua_tolstring(L, idx, len);
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        *len = json_fmt_int(num, lua_tointeger(L, idx));
      } else {
        lua_Number f = lua_tonumber(L, idx);
        if (isnan(f) || isinf(f)) json_fail(L, kind, at, "cannot encode a non-finite number as an object key");
        *len = json_fmt_float(num, f);
      }
      return num;
    default: {
      char what[80];
      snprintf(what, sizeof what, "cannot encode an object key of type %s", luaL_typename(L, idx));
      json_fail(L, kind, at, what);
    }
  }
}

static int key_cmp(const void *a, const void *b) {
  const json_key *x = a, *y = b;
  const char *xs = x->s ? x->s : x->num, *ys = y->s ? y->s : y->num;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(xs, ys, n);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

size_t json_keys_sorted(lua_State *L, json_keys *ks, int idx, const char *kind, const json_seg *at) {
  size_t base = ks->n;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (ks->n == ks->cap) {
      size_t cap = ks->cap ? ks->cap * 2 : 64;
      json_key *nk = realloc(ks->v, cap * sizeof *nk);
      if (!nk) opsh_error(L, kind, "out of memory sorting the keys of an object");
      ks->v = nk;
      ks->cap = cap;
    }
    json_key *k = &ks->v[ks->n];
    const char *text = json_key_text(L, -1, k->num, &k->len, kind, at);
    k->s = text == k->num ? NULL : text;
    k->is_int = lua_isinteger(L, -1);
    k->i = k->is_int ? lua_tointeger(L, -1) : 0;
    k->f = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
    ks->n++;
  }
  if (ks->n > base) qsort(ks->v + base, ks->n - base, sizeof *ks->v, key_cmp);
  return base;
}

void json_key_push(lua_State *L, const json_key *k) {
  if (k->s) lua_pushlstring(L, k->s, k->len);
  else if (k->is_int) lua_pushinteger(L, k->i);
  else lua_pushnumber(L, k->f);
}

void json_each_member(lua_State *L, int idx, json_keys *ks, const char *kind, json_seg *self, json_member_fn fn,
                      void *ud) {
  if (ks) {
    size_t base = json_keys_sorted(L, ks, idx, kind, self->parent);
    size_t n = ks->n - base;
    for (size_t i = 0; i < n; i++) {
      json_key *k = &ks->v[base + i];   /* ks->v moves when a nested object grows it */
      json_key_push(L, k);
      lua_rawget(L, idx);
      char num[40];
      const char *key = k->s ? k->s : memcpy(num, k->num, k->len + 1);
      self->key = key;
      self->keylen = k->len;
      fn(L, ud, key, k->len, i, self);
      lua_pop(L, 1);
    }
    ks->n = base;
    return;
  }
  size_t i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    char num[40];
    size_t len;
    const char *key = json_key_text(L, -2, num, &len, kind, self->parent);
    self->key = key;
    self->keylen = len;
    fn(L, ud, key, len, i++, self);
    lua_pop(L, 1);
  }
}

void *json_state_new(lua_State *L, size_t size, const char *meta, lua_CFunction gc) {
  void *st = lua_newuserdatauv(L, size, 0);
  memset(st, 0, size);
  if (luaL_newmetatable(L, meta)) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return st;
}

void json_push_markers(lua_State *L) {
  luaL_getmetatable(L, JSON_ARRAY_META);
  luaL_getmetatable(L, JSON_EMPTY_META);
  lua_getfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY);
}

int json_special(lua_State *L, int idx, int null_idx) {
  if (lua_type(L, idx) == LUA_TLIGHTUSERDATA) return lua_touserdata(L, idx) == NULL ? JSON_NULL : JSON_OTHER;
  if (lua_rawequal(L, idx, null_idx)) return JSON_NULL;
  return opsh_is_secret(L, idx) ? JSON_SECRET : JSON_OTHER;
}

void json_fail_type(lua_State *L, const char *kind, const json_seg *at, int idx) {
  char what[80];
  snprintf(what, sizeof what, "cannot encode a value of type %s", luaL_typename(L, idx));
  json_fail(L, kind, at, what);
}
