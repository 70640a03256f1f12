/*
** yaml.h — internal to the opsh._yaml module (yaml.c, emit.c): the plain-scalar resolver
** both directions share, and the emitter's entry points.
*/
#ifndef opsh_yaml_h
#define opsh_yaml_h

#include "../json/json.h"

/* what a plain (unquoted) scalar means */
enum { YAML_R_STR, YAML_R_NULL, YAML_R_BOOL, YAML_R_INT, YAML_R_FLOAT };

typedef struct yaml_resolved {
  int kind;
  int b;
  lua_Integer i;
  double f;
} yaml_resolved;

/* Resolve plain text as Kubernetes' sigs.k8s.io/yaml (go-yaml v2) does; returns r->kind */
JSON_HIDDEN int yaml_resolve_plain(const char *s, size_t len, yaml_resolved *r);

/* encode(value, sort_keys, indent) -> string; encode_all(list, sort_keys, indent) -> string */
JSON_HIDDEN int yaml_l_encode(lua_State *L);
JSON_HIDDEN int yaml_l_encode_all(lua_State *L);

#endif
