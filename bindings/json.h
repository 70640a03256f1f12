/*
** json.h — internal to the opsh._json module (json.c, json_encode.c): the registry names of
** the null sentinel and the array markers, and the parts' shared entry points.
*/
#ifndef opsh_json_h
#define opsh_json_h

#include "opsh.h"

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

/* encode(value, pretty, sort_keys, indent) -> string (json_encode.c) */
JSON_HIDDEN int json_l_encode(lua_State *L);

#endif
