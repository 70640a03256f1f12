/* unit.h — the C unit tests' few helpers: checks that count, and running Lua inside a task. */
#ifndef opsh_unit_h
#define opsh_unit_h

#include <stdio.h>
#include <string.h>
#include "opsh.h"

extern int unit_failures, unit_checks;

#define CHECK(cond) do { unit_checks++; if (!(cond)) { unit_failures++; \
  fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_STR(got, want) do { const char *g_ = (got), *w_ = (want); unit_checks++; \
  if (!g_ || strcmp(g_, w_) != 0) { unit_failures++; \
  fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, g_ ? g_ : "(null)", w_); } } while (0)

/* Run Lua source as a task to completion; returns 1 if it succeeded, else prints the error. */
int unit_lua(lua_State *L, const char *source);
/* The same, and leaves the chunk's first result (or the error) on the stack. */
int unit_lua_value(lua_State *L, const char *source);
int unit_report(const char *name);
/* Check that Lua source, run as a task, returns the string `want`. */
#define CHECK_LUA(L, src, want) do { CHECK(unit_lua_value((L), (src))); \
  CHECK_STR(lua_tostring((L), -1), (want)); lua_pop((L), 1); } while (0)
/* ... or a string containing `part`. */
#define CHECK_LUA_HAS(L, src, part) do { CHECK(unit_lua_value((L), (src))); \
  const char *s_ = lua_tostring((L), -1); unit_checks++; \
  if (!s_ || !strstr(s_, (part))) { unit_failures++; \
  fprintf(stderr, "%s:%d: \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, s_ ? s_ : "(null)", (part)); } \
  lua_pop((L), 1); } while (0)

#endif
