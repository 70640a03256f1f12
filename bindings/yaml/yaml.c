/*
** yaml.c — opsh._yaml: YAML streams (kubeconfigs, manifests) into Lua values with libyaml's
** parser. Anchors and aliases resolve to the same Lua value, `<<` merge keys apply, quoted and
** block scalars are strings, plain scalars follow resolve.c (Kubernetes' rules). Null is
** opsh.json's json.null and sequences carry its array metatable, so YAML round-trips through
** JSON. Mapping keys are strings (their text). The emitter is emit.c.
** Aliases share one Lua value, but whoever walks the result (an encoder, a loop over it) sees
** every alias expanded: like go-yaml v3, the loader counts the expanded size and refuses a
** stream whose aliases would blow it up ("billion laughs").
*/
#include <stdio.h>
#include <string.h>
#include "libyaml.h"
#include "yaml.h"

#define LOADER_META "opsh.yaml.loader"

/* absolute stack slots of load() */
#define INPUT 1
#define LOADER 2
#define ARRAY_MT 3
#define NULL_VALUE 4
#define ANCHORS 5
#define ANCHOR_SIZES 6

/* Sizes count a node as 1 plus a scalar's bytes. What aliases add to a stream may reach
** YAML_ALIAS_BASE plus the stream's own size: a few times what real manifests reuse, and
** bounded work for whoever walks the result. */
#define YAML_ALIAS_BASE 1000000

typedef struct loader {
  yaml_parser_t parser;
  yaml_event_t ev;
  int has_parser, has_ev;
  size_t own;       /* size of the nodes the text holds */
  size_t aliased;   /* size the aliases add */
} loader;

static int loader_close(lua_State *L) {
  loader *ld = luaL_checkudata(L, 1, LOADER_META);
  if (ld->has_ev) yaml_event_delete(&ld->ev);
  if (ld->has_parser) yaml_parser_delete(&ld->parser);
  ld->has_ev = ld->has_parser = 0;
  return 0;
}

/* [-0, +0, v] raise {kind="yaml", message="what at line L column C", line=, column=} */
__attribute__((noreturn)) static void fail_at(lua_State *L, yaml_mark_t mark, const char *what) {
  lua_Integer line = (lua_Integer)mark.line + 1, column = (lua_Integer)mark.column + 1;
  opsh_error_push(L, "yaml", "%s at line %I column %I", what, line, column);
  opsh_error_setint(L, "line", line);
  opsh_error_setint(L, "column", column);
  lua_error(L);
  __builtin_unreachable();
}

__attribute__((noreturn)) static void fail_parser(lua_State *L, loader *ld) {
  yaml_parser_t *p = &ld->parser;
  const char *problem = p->problem ? p->problem : "cannot parse the YAML";
  if (p->error == YAML_READER_ERROR) {   /* encoding errors: no line yet, a byte offset */
    opsh_error_push(L, "yaml", "%s at byte %I", problem, (lua_Integer)p->problem_offset);
    opsh_error_setint(L, "offset", (lua_Integer)p->problem_offset);
    lua_error(L);
  }
  lua_Integer line = (lua_Integer)p->problem_mark.line + 1, column = (lua_Integer)p->problem_mark.column + 1;
  if (p->context)
    opsh_error_push(L, "yaml", "%s at line %I column %I, %s at line %I column %I", problem, line, column,
                    p->context, (lua_Integer)p->context_mark.line + 1, (lua_Integer)p->context_mark.column + 1);
  else
    opsh_error_push(L, "yaml", "%s at line %I column %I", problem, line, column);
  opsh_error_setint(L, "line", line);
  opsh_error_setint(L, "column", column);
  lua_error(L);
  __builtin_unreachable();
}

/* [-0, +0, v] the next event in ld->ev */
static yaml_event_t *next_event(lua_State *L, loader *ld) {
  if (ld->has_ev) yaml_event_delete(&ld->ev);
  ld->has_ev = 0;
  if (!yaml_parser_parse(&ld->parser, &ld->ev)) fail_parser(L, ld);
  ld->has_ev = 1;
  return &ld->ev;
}

static int tag_is(const yaml_char_t *tag, const char *name) {
  static const char prefix[] = "tag:yaml.org,2002:";
  return strncmp((const char *)tag, prefix, sizeof prefix - 1) == 0 &&
         strcmp((const char *)tag + sizeof prefix - 1, name) == 0;
}

/* [-0, +1, v] a scalar event as a Lua value */
static void push_scalar(lua_State *L, yaml_event_t *ev) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  const yaml_char_t *tag = ev->data.scalar.tag;
  int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  int want = -1;   /* the kind an explicit tag asks for */
  if (tag) {
    if (strcmp((const char *)tag, "!") == 0 || tag_is(tag, "str") || tag_is(tag, "binary")) plain = 0;
    else if (tag_is(tag, "null")) { lua_pushvalue(L, NULL_VALUE); return; }
    else if (tag_is(tag, "bool")) want = YAML_R_BOOL;
    else if (tag_is(tag, "int")) want = YAML_R_INT;
    else if (tag_is(tag, "float")) want = YAML_R_FLOAT;
    if (want >= 0) plain = 1;
  }
  if (!plain) {
    lua_pushlstring(L, s, len);
    return;
  }
  yaml_resolved r;
  int kind = yaml_resolve_plain(s, len, &r);
  if (want == YAML_R_FLOAT && kind == YAML_R_INT) {
    kind = YAML_R_FLOAT;
    r.f = (double)r.i;
  }
  if (want >= 0 && kind != want) {
    char what[128];
    snprintf(what, sizeof what, "'%.40s' is not a valid !!%s", s,
             want == YAML_R_BOOL ? "bool" : want == YAML_R_INT ? "int" : "float");
    fail_at(L, ev->start_mark, what);
  }
  switch (kind) {
    case YAML_R_NULL: lua_pushvalue(L, NULL_VALUE); break;
    case YAML_R_BOOL: lua_pushboolean(L, r.b); break;
    case YAML_R_INT: lua_pushinteger(L, r.i); break;
    case YAML_R_FLOAT: lua_pushnumber(L, r.f); break;
    default: lua_pushlstring(L, s, len);
  }
}

/* [-0, +0, -] anchors[name] = the value at the top, whose expanded size is size */
static void set_anchor(lua_State *L, const char *name, size_t size) {
  lua_pushvalue(L, -1);
  lua_setfield(L, ANCHORS, name);
  lua_pushinteger(L, (lua_Integer)size);
  lua_setfield(L, ANCHOR_SIZES, name);
}

/* [-0, +0, v] an alias at mark repeats `size` more: raise once aliases add more than allowed */
static void add_aliased(lua_State *L, loader *ld, size_t size, yaml_mark_t mark) {
  ld->aliased += size;
  if (ld->aliased > YAML_ALIAS_BASE + ld->own) {
    char what[160];
    snprintf(what, sizeof what, "aliases expand the document past the limit (%d plus its own size: an alias bomb?)",
             YAML_ALIAS_BASE);
    fail_at(L, mark, what);
  }
}

/* [-0, +0, -] the expanded size of the anchor `name` */
static size_t anchor_size(lua_State *L, const char *name) {
  lua_getfield(L, ANCHOR_SIZES, name);
  size_t n = (size_t)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
}

static size_t load_node(lua_State *L, loader *ld, int depth);

/* [-0, +0, v] merge the mapping(s) at the top (a `<<` value) into the list at merges */
static void add_merge(lua_State *L, int merges, yaml_mark_t mark) {
  int top = lua_gettop(L);
  int is_seq = 0;
  if (lua_type(L, top) == LUA_TTABLE && lua_getmetatable(L, top)) {
    is_seq = lua_rawequal(L, -1, ARRAY_MT);
    lua_pop(L, 1);
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, merges);
  if (lua_type(L, top) == LUA_TTABLE && !is_seq) {
    lua_pushvalue(L, top);
    lua_rawseti(L, merges, n + 1);
    return;
  }
  if (is_seq) {
    lua_Integer m = (lua_Integer)lua_rawlen(L, top);
    for (lua_Integer i = 1; i <= m; i++) {
      lua_rawgeti(L, top, i);
      int ok = lua_type(L, -1) == LUA_TTABLE;
      if (ok && lua_getmetatable(L, -1)) {
        ok = !lua_rawequal(L, -1, ARRAY_MT);
        lua_pop(L, 1);
      }
      if (!ok) fail_at(L, mark, "a '<<' merge list must hold only mappings");
      lua_rawseti(L, merges, ++n);
    }
    return;
  }
  fail_at(L, mark, "a '<<' merge key needs a mapping or a list of mappings");
}

/* [-0, +0, -] apply the merges at `merges` to the map at `map`: its own keys win, then earlier sources */
static void apply_merges(lua_State *L, int map, int merges) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, merges);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, merges, i);
    int src = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, src)) {
      lua_pushvalue(L, -2);
      lua_rawget(L, map);
      int absent = lua_isnil(L, -1);
      lua_pop(L, 1);
      if (absent) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, map);
      } else {
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
}

/* [-0, +1, v] the key of a mapping entry: the scalar's text, or an aliased string or number;
** returns its size */
static size_t push_key(lua_State *L, loader *ld, yaml_event_t *ev) {
  if (ev->type == YAML_SCALAR_EVENT) {
    size_t size = 1 + ev->data.scalar.length;
    ld->own += size;
    lua_pushlstring(L, (const char *)ev->data.scalar.value, ev->data.scalar.length);
    return size;
  }
  if (ev->type == YAML_ALIAS_EVENT) {
    const char *name = (const char *)ev->data.alias.anchor;
    lua_getfield(L, ANCHORS, name);
    int t = lua_type(L, -1);
    size_t size = anchor_size(L, name);
    if (t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN) add_aliased(L, ld, size, ev->start_mark);
    if (t == LUA_TSTRING) return size;
    if (t == LUA_TNUMBER || t == LUA_TBOOLEAN) {
      luaL_tolstring(L, -1, NULL);
      lua_remove(L, -2);
      return size;
    }
    fail_at(L, ev->start_mark, t == LUA_TNIL ? "unknown alias" : "an alias used as a mapping key must name a scalar");
  }
  fail_at(L, ev->start_mark, "a mapping key must be a scalar (complex keys are not supported)");
}

/* [-0, +1, v] p is after MAPPING-START; reads to MAPPING-END; returns the members' size */
static size_t load_mapping(lua_State *L, loader *ld, int depth) {
  lua_newtable(L);
  int map = lua_gettop(L), merges = 0;
  size_t size = 0;
  for (;;) {
    yaml_event_t *ev = next_event(L, ld);
    if (ev->type == YAML_MAPPING_END_EVENT) break;
    yaml_mark_t mark = ev->start_mark;
    int merge = ev->type == YAML_SCALAR_EVENT && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                !ev->data.scalar.tag && ev->data.scalar.length == 2 &&
                memcmp(ev->data.scalar.value, "<<", 2) == 0;
    size_t key_size = push_key(L, ld, ev);
    size += key_size;
    if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.anchor)
      set_anchor(L, (const char *)ev->data.scalar.anchor, key_size);
    next_event(L, ld);
    size += load_node(L, ld, depth);
    if (merge) {
      if (!merges) {
        lua_newtable(L);
        lua_insert(L, map + 1);
        merges = map + 1;
      }
      add_merge(L, merges, mark);
      lua_pop(L, 2);
      continue;
    }
    lua_pushvalue(L, -2);
    if (lua_rawget(L, map) != LUA_TNIL) {
      char what[128];
      snprintf(what, sizeof what, "duplicate key '%.60s'", lua_tostring(L, -3));
      fail_at(L, mark, what);
    }
    lua_pop(L, 1);
    lua_rawset(L, map);
  }
  if (merges) {
    apply_merges(L, map, merges);
    lua_remove(L, merges);
  }
  return size;
}

/* [-0, +1, v] the node whose first event is ld->ev, inside `depth` collections; returns its
** size with aliases expanded */
static size_t load_node(lua_State *L, loader *ld, int depth) {
  yaml_event_t *ev = &ld->ev;
  luaL_checkstack(L, 8, "yaml: nesting too deep");
  switch (ev->type) {
    case YAML_ALIAS_EVENT: {
      const char *name = (const char *)ev->data.alias.anchor;
      if (lua_getfield(L, ANCHORS, name) == LUA_TNIL) {
        char what[192];
        snprintf(what, sizeof what, "unknown alias '*%.60s' (anchors must be defined before, and outside, their aliases)",
                 name);
        fail_at(L, ev->start_mark, what);
      }
      size_t size = anchor_size(L, name);
      add_aliased(L, ld, size, ev->start_mark);
      return size;
    }
    case YAML_SCALAR_EVENT: {
      size_t size = 1 + ev->data.scalar.length;
      ld->own += size;
      push_scalar(L, ev);
      if (ev->data.scalar.anchor) set_anchor(L, (const char *)ev->data.scalar.anchor, size);
      return size;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
      if (depth >= JSON_MAX_DEPTH) fail_at(L, ev->start_mark, "nesting deeper than 1000 levels");
      int seq = ev->type == YAML_SEQUENCE_START_EVENT;
      yaml_char_t *anchor = seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
      int name = 0;
      if (anchor) {
        lua_pushstring(L, (const char *)anchor);
        name = lua_gettop(L);
      }
      size_t size = 1;
      ld->own += 1;
      if (seq) {
        lua_newtable(L);
        lua_pushvalue(L, ARRAY_MT);
        lua_setmetatable(L, -2);
        for (lua_Integer i = 1;; i++) {
          if (next_event(L, ld)->type == YAML_SEQUENCE_END_EVENT) break;
          size += load_node(L, ld, depth + 1);
          lua_rawseti(L, -2, i);
        }
      } else {
        size += load_mapping(L, ld, depth + 1);
      }
      if (name) {
        /* registered once complete, so a collection cannot contain itself */
        set_anchor(L, lua_tostring(L, name), size);
        lua_remove(L, name);
      }
      return size;
    }
    default:
      fail_at(L, ev->start_mark, "unexpected YAML event");
  }
}

/* [-1, +1, v] decode(s) -> first document (nil for an empty stream); decode_all(s) -> list */
static int load(lua_State *L, int all) {
  size_t len;
  const char *s = luaL_checklstring(L, INPUT, &len);
  lua_settop(L, INPUT);
  loader *ld = lua_newuserdatauv(L, sizeof *ld, 0);   /* LOADER */
  memset(ld, 0, sizeof *ld);
  luaL_setmetatable(L, LOADER_META);
  if (!yaml_parser_initialize(&ld->parser)) return opsh_error(L, "yaml", "out of memory starting the YAML parser");
  ld->has_parser = 1;
  yaml_parser_set_input_string(&ld->parser, (const unsigned char *)s, len);
  luaL_getmetatable(L, JSON_ARRAY_META);               /* ARRAY_MT */
  lua_getfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY);   /* NULL_VALUE */
  lua_pushnil(L);                                      /* ANCHORS */
  lua_pushnil(L);                                      /* ANCHOR_SIZES */
  if (all) {
    lua_newtable(L);
    lua_pushvalue(L, ARRAY_MT);
    lua_setmetatable(L, -2);
  }
  int docs = lua_gettop(L);
  lua_Integer n = 0;
  next_event(L, ld);   /* STREAM-START */
  for (;;) {
    if (next_event(L, ld)->type == YAML_STREAM_END_EVENT) break;
    lua_newtable(L);   /* anchors are per document; the alias budget is the stream's */
    lua_replace(L, ANCHORS);
    lua_newtable(L);
    lua_replace(L, ANCHOR_SIZES);
    next_event(L, ld);
    load_node(L, ld, 0);
    next_event(L, ld);   /* DOCUMENT-END */
    if (!all) break;
    if (lua_rawequal(L, -1, NULL_VALUE)) lua_pop(L, 1);   /* empty documents, as kubectl skips them */
    else lua_rawseti(L, docs, ++n);
  }
  if (!all && lua_gettop(L) == docs) lua_pushnil(L);
  lua_pushcfunction(L, loader_close);
  lua_pushvalue(L, LOADER);
  lua_call(L, 1, 0);
  return 1;
}

static int yaml_l_decode(lua_State *L) { return load(L, 0); }
static int yaml_l_decode_all(lua_State *L) { return load(L, 1); }

/* resolve(s) -> what the plain scalar s means (for tests and the Lua layer) */
static int yaml_l_resolve(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  yaml_resolved r;
  switch (yaml_resolve_plain(s, len, &r)) {
    case YAML_R_NULL: lua_getfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY); break;
    case YAML_R_BOOL: lua_pushboolean(L, r.b); break;
    case YAML_R_INT: lua_pushinteger(L, r.i); break;
    case YAML_R_FLOAT: lua_pushnumber(L, r.f); break;
    default: lua_pushvalue(L, 1);
  }
  return 1;
}

static const luaL_Reg yaml_funcs[] = {
  {"decode", yaml_l_decode},
  {"decode_all", yaml_l_decode_all},
  {"encode", yaml_l_encode},
  {"encode_all", yaml_l_encode_all},
  {"resolve", yaml_l_resolve},
  {NULL, NULL}
};

int luaopen_opsh_yaml(lua_State *L) {
  opsh_libyaml_load(L);
  /* json.null and the array metatable are opsh._json's */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "opsh._json");
  lua_call(L, 1, 0);
  if (luaL_newmetatable(L, LOADER_META)) {
    lua_pushcfunction(L, loader_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, yaml_funcs);
  lua_pushstring(L, yaml_get_version_string());
  lua_setfield(L, -2, "libyaml_version");
  return 1;
}
