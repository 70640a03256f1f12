/*
** json.h — internal to the opsh._json module (json.c, encode.c, walk.c) and opsh._yaml's
** emitter: the registry names of the null sentinel and the array markers, and the shared entry points.
*/
#ifndef opsh_json_h
#define opsh_json_h

#include "opsh.h"
#include "buf.h"

#define JSON_ARRAY_META "opsh.json.array"       /* metatable of arrays (decoded or json.array) */
#define JSON_EMPTY_META "opsh.json.empty_array" /* metatable of the frozen json.empty_array */
#define JSON_NULL_META "opsh.json.null"         /* metatable of the json.null sentinel */
#define JSON_NULL_KEY "opsh.json.null.value"    /* registry field holding json.null */
#define JSON_MAX_DEPTH 1000

#define JSON_HIDDEN __attribute__((visibility("hidden")))

/* length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates), or 0 */
static inline int json_utf8_seq(const unsigned char *s, const unsigned char *end) {
  unsigned char c = s[0];
  int n;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else return 0;
  if (end - s < n) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (int i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return n;
}

/* encode(value, pretty, sort_keys, indent) -> string (encode.c) */
JSON_HIDDEN int json_l_encode(lua_State *L);

/* ---- walking Lua values for an encoder (walk.c; used by opsh.yaml's emitter too) ---- */

/* where an encoder is: one per open container, linked to its parent on the C stack */
typedef struct json_seg {
  const struct json_seg *parent;
  const void *table;
  const char *key;        /* the current member's key, or NULL inside an array */
  size_t keylen;
  lua_Integer index;
  int depth;
} json_seg;

typedef struct json_key {
  const char *s;          /* a string key (anchored by its table), or NULL for a number key */
  size_t len;
  int is_int;
  lua_Integer i;
  lua_Number f;
  char num[40];           /* a number key as text */
} json_key;

/* a stack of the sorted key sets of the objects being written */
typedef struct json_keys {
  json_key *v;
  size_t n, cap;
} json_keys;

JSON_HIDDEN size_t json_fmt_int(char *out, lua_Integer v);
/* the shortest text that reads back as the finite v; integral values get ".0" */
JSON_HIDDEN size_t json_fmt_float(char *out, lua_Number v);
/* [-0, +1, m] the path of the value being written: .metadata.labels["app.kubernetes.io/name"][3] */
JSON_HIDDEN void json_push_path(lua_State *L, const json_seg *at);
/* [-0, +0, v] raise {kind=kind, message="what at <path>", path=} */
__attribute__((noreturn)) JSON_HIDDEN void json_fail(lua_State *L, const char *kind, const json_seg *at,
                                                    const char *what);
/* [-0, +0, v] the seg of the table at idx, entered below `at`; raises on cycles and depth */
JSON_HIDDEN json_seg json_enter(lua_State *L, int idx, const json_seg *at, const char *kind);
/* [-0, +0, v] -1 for an object, else the length of the array the table at idx is; raises for
** excessively sparse arrays. array_mt/empty_mt: stack slots of the array metatables */
JSON_HIDDEN lua_Integer json_table_shape(lua_State *L, int idx, int array_mt, int empty_mt, const char *kind,
                                         const json_seg *at);
/* [-0, +0, v] the key at idx as text (a number as JSON writes it); raises for other types */
JSON_HIDDEN const char *json_key_text(lua_State *L, int idx, char *num, size_t *len, const char *kind,
                                      const json_seg *at);
/* [-0, +0, v] push the keys of the table at idx on ks, sorted bytewise; returns their first index */
JSON_HIDDEN size_t json_keys_sorted(lua_State *L, json_keys *ks, int idx, const char *kind, const json_seg *at);
/* [-0, +1, -] the original key */
JSON_HIDDEN void json_key_push(lua_State *L, const json_key *k);

/* called with a member's value on top of the stack; self->key and self->keylen name the member */
typedef void (*json_member_fn)(lua_State *L, void *ud, const char *key, size_t len, size_t i, json_seg *self);
/* [-0, +0, v] fn for each member of the non-empty object at idx: bytewise by key when ks is
** given (its entries are pushed while the object is written, so objects nest), else in
** lua_next order */
JSON_HIDDEN void json_each_member(lua_State *L, int idx, json_keys *ks, const char *kind, json_seg *self,
                                  json_member_fn fn, void *ud);

/* [-0, +1, m] a zeroed userdata of size bytes with metatable `meta` (made on first use) whose __gc
** is gc: an encoder's state, freed by gc if encoding raises */
JSON_HIDDEN void *json_state_new(lua_State *L, size_t size, const char *meta, lua_CFunction gc);
/* [-0, +3, -] the array metatable, the empty-array metatable and json.null: an encoder's
** ARRAY_MT, EMPTY_MT and NULL_VALUE slots */
JSON_HIDDEN void json_push_markers(lua_State *L);
/* what a (light) userdata stands for in output */
enum { JSON_OTHER, JSON_NULL, JSON_SECRET };
/* [-0, +0, -] JSON_NULL for json.null (the value at null_idx) or a NULL lightuserdata (cjson.null),
** JSON_SECRET for an opsh.secret, else JSON_OTHER */
JSON_HIDDEN int json_special(lua_State *L, int idx, int null_idx);
/* [-0, +0, v] raise "cannot encode a value of type <type of idx>" */
__attribute__((noreturn)) JSON_HIDDEN void json_fail_type(lua_State *L, const char *kind, const json_seg *at,
                                                         int idx);

#endif
