/*
** emit.c — Lua values to YAML with libyaml's emitter: block style, keys sorted bytewise,
** a string quoted whenever Kubernetes' resolver (resolve.c) would read it as another type
** ("true", "on", "0777", "", timestamps), multi-line strings as literal blocks, [] and {} for
** empty collections, secrets as <redacted>. Tables follow opsh.json's array-or-object rule.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "libyaml.h"
#include "yaml.h"

#define EMITTER_META "opsh.yaml.emitter"
#define KIND "yaml"

/* absolute stack slots of dump() */
#define VALUE 1
#define STATE 4
#define ARRAY_MT 5
#define EMPTY_MT 6
#define NULL_VALUE 7

typedef struct emitter {
  yaml_emitter_t em;
  int has_em;
  byte_buf out;
  json_keys keys;
  int sort;
} emitter;

static int emitter_close(lua_State *L) {
  emitter *e = luaL_checkudata(L, 1, EMITTER_META);
  if (e->has_em) yaml_emitter_delete(&e->em);
  e->has_em = 0;
  byte_buf_free(&e->out);
  free(e->keys.v);
  e->keys.v = NULL;
  e->keys.n = e->keys.cap = 0;
  return 0;
}

static int write_out(void *data, unsigned char *bytes, size_t size) {
  emitter *e = data;
  return byte_buf_add(&e->out, bytes, size) == 0;
}

/* [-0, +0, v] */
__attribute__((noreturn)) static void fail_memory(lua_State *L, emitter *e) {
  opsh_error(L, KIND, "out of memory encoding YAML (output reached %I bytes)", (lua_Integer)e->out.len);
  __builtin_unreachable();
}

/* [-0, +0, v] hand ev to the emitter (which owns it from then on) */
static void emit(lua_State *L, emitter *e, yaml_event_t *ev, const json_seg *at) {
  if (!yaml_emitter_emit(&e->em, ev)) {
    if (e->em.error == YAML_WRITER_ERROR || e->em.error == YAML_MEMORY_ERROR) fail_memory(L, e);
    json_fail(L, KIND, at, e->em.problem ? e->em.problem : "cannot write YAML");
  }
}

/* 2024-01-31, 2024-1-5T10:00:00Z... : a YAML 1.1 timestamp, quoted as kubectl does */
static int looks_like_date(const char *s, size_t len) {
  if (len < 8) return 0;
  for (int i = 0; i < 4; i++)
    if (!(s[i] >= '0' && s[i] <= '9')) return 0;
  return s[4] == '-' && s[5] >= '0' && s[5] <= '9';
}

/* 12:30, 1:20:30.5 : YAML 1.1 base-60 numbers (PyYAML reads them; go-yaml does not) */
static int looks_sexagesimal(const char *s, size_t len) {
  size_t i = (len > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (i >= len || !(s[i] >= '0' && s[i] <= '9') || !memchr(s, ':', len)) return 0;
  for (; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || s[i] == ':' || s[i] == '_' || s[i] == '.')) return 0;
  return 1;
}

static yaml_scalar_style_t string_style(const char *s, size_t len, int is_key) {
  yaml_resolved r;
  if (yaml_resolve_plain(s, len, &r) != YAML_R_STR || looks_like_date(s, len) || looks_sexagesimal(s, len) ||
      (len == 2 && memcmp(s, "<<", 2) == 0) || (len == 1 && s[0] == '='))   /* YAML 1.1 merge and value keys */
    return YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  if (!is_key && memchr(s, '\n', len)) return YAML_LITERAL_SCALAR_STYLE;
  return YAML_PLAIN_SCALAR_STYLE;   /* the emitter quotes it if plain cannot hold it (": ", "#", ...) */
}

/* [-0, +0, v] */
static void emit_scalar(lua_State *L, emitter *e, const char *s, size_t len, yaml_scalar_style_t style,
                        const json_seg *at) {
  yaml_event_t ev;
  if (len > 0x7fffffff) json_fail(L, KIND, at, "cannot encode a string longer than 2 GB");
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style))
    json_fail(L, KIND, at, "cannot encode a string that is not valid UTF-8 (encode binary data, e.g. base64)");
  emit(L, e, &ev, at);
}

static void emit_plain(lua_State *L, emitter *e, const char *s, const json_seg *at) {
  emit_scalar(L, e, s, strlen(s), YAML_PLAIN_SCALAR_STYLE, at);
}

static void emit_value(lua_State *L, emitter *e, int idx, const json_seg *at);

/* json_member_fn: the key, then the value */
static void emit_member(lua_State *L, void *ud, const char *key, size_t len, size_t i, json_seg *self) {
  emitter *e = ud;
  emit_scalar(L, e, key, len, string_style(key, len, 1), self);
  emit_value(L, e, lua_gettop(L), self);
}

/* [-0, +0, v] */
static void emit_mapping(lua_State *L, emitter *e, int idx, json_seg *self) {
  yaml_event_t ev;
  lua_pushnil(L);
  int empty = !lua_next(L, idx);
  if (!empty) lua_pop(L, 2);
  yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, empty ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
  emit(L, e, &ev, self->parent);
  if (!empty) json_each_member(L, idx, e->sort ? &e->keys : NULL, KIND, self, emit_member, e);
  yaml_mapping_end_event_initialize(&ev);
  emit(L, e, &ev, self->parent);
}

/* [-0, +0, v] */
static void emit_table(lua_State *L, emitter *e, int idx, const json_seg *at) {
  json_seg self = json_enter(L, idx, at, KIND);
  lua_Integer n = json_table_shape(L, idx, ARRAY_MT, EMPTY_MT, KIND, at);
  if (n < 0) {
    emit_mapping(L, e, idx, &self);
    return;
  }
  yaml_event_t ev;
  yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, n == 0 ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
  emit(L, e, &ev, at);
  for (lua_Integer i = 1; i <= n; i++) {
    self.index = i;
    lua_rawgeti(L, idx, i);
    emit_value(L, e, lua_gettop(L), &self);
    lua_pop(L, 1);
  }
  yaml_sequence_end_event_initialize(&ev);
  emit(L, e, &ev, at);
}

/* [-0, +0, v] */
static void emit_value(lua_State *L, emitter *e, int idx, const json_seg *at) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      emit_plain(L, e, "null", at);
      return;
    case LUA_TBOOLEAN:
      emit_plain(L, e, lua_toboolean(L, idx) ? "true" : "false", at);
      return;
    case LUA_TNUMBER: {
      char num[40];
      if (lua_isinteger(L, idx)) {
        json_fmt_int(num, lua_tointeger(L, idx));
      } else {
        lua_Number f = lua_tonumber(L, idx);
        if (isnan(f)) strcpy(num, ".nan");
        else if (isinf(f)) strcpy(num, f > 0 ? ".inf" : "-.inf");
        else {
          size_t n = json_fmt_float(num, f);
          char *e = memchr(num, 'e', n);
          if (e && !memchr(num, '.', n)) {   /* 1e+300 -> 1.0e+300: YAML 1.1 floats need the dot */
            memmove(e + 2, e, (size_t)(num + n + 1 - e));
            e[0] = '.';
            e[1] = '0';
          }
        }
      }
      emit_plain(L, e, num, at);
      return;
    }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      emit_scalar(L, e, s, len, string_style(s, len, 0), at);
      return;
    }
    case LUA_TTABLE:
      emit_table(L, e, idx, at);
      return;
    case LUA_TUSERDATA:
    case LUA_TLIGHTUSERDATA:
      switch (json_special(L, idx, NULL_VALUE)) {
        case JSON_NULL: emit_plain(L, e, "null", at); return;
        case JSON_SECRET: emit_plain(L, e, "<redacted>", at); return;
      }
      break;
  }
  json_fail_type(L, KIND, at, idx);
}

/* [-0, +0, v] one document holding the value at idx */
static void emit_document(lua_State *L, emitter *e, int idx, const json_seg *at) {
  yaml_event_t ev;
  yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
  emit(L, e, &ev, NULL);
  emit_value(L, e, idx, at);
  yaml_document_end_event_initialize(&ev, 1);
  emit(L, e, &ev, NULL);
}

/* [-3, +1, v] (value|list, sort_keys, indent) -> the YAML text of one document, or one per item */
static int dump(lua_State *L, int all) {
  luaL_checkany(L, VALUE);
  if (all) luaL_checktype(L, VALUE, LUA_TTABLE);
  int sort = lua_toboolean(L, 2);
  lua_Integer indent = luaL_optinteger(L, 3, 2);
  luaL_argcheck(L, indent >= 2 && indent <= 9, 3, "indent must be between 2 and 9");
  lua_settop(L, 3);
  emitter *e = json_state_new(L, sizeof *e, EMITTER_META, emitter_close);   /* STATE */
  json_push_markers(L);
  e->sort = sort;
  if (!yaml_emitter_initialize(&e->em)) fail_memory(L, e);
  e->has_em = 1;
  yaml_emitter_set_output(&e->em, write_out, e);
  yaml_emitter_set_unicode(&e->em, 1);
  yaml_emitter_set_width(&e->em, -1);
  yaml_emitter_set_indent(&e->em, (int)indent);
  yaml_emitter_set_break(&e->em, YAML_LN_BREAK);

  yaml_event_t ev;
  yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
  emit(L, e, &ev, NULL);
  if (all) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, VALUE);
    for (lua_Integer i = 1; i <= n; i++) {
      json_seg doc = {NULL, NULL, NULL, 0, i, 0};
      lua_rawgeti(L, VALUE, i);
      emit_document(L, e, lua_gettop(L), &doc);
      lua_pop(L, 1);
    }
  } else {
    emit_document(L, e, VALUE, NULL);
  }
  yaml_stream_end_event_initialize(&ev);
  emit(L, e, &ev, NULL);
  if (!yaml_emitter_flush(&e->em)) fail_memory(L, e);
  lua_pushlstring(L, e->out.data ? e->out.data : "", e->out.len);
  lua_pushcfunction(L, emitter_close);
  lua_pushvalue(L, STATE);
  lua_call(L, 1, 0);
  return 1;
}

int yaml_l_encode(lua_State *L) { return dump(L, 0); }
int yaml_l_encode_all(lua_State *L) { return dump(L, 1); }
