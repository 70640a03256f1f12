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

#endif
