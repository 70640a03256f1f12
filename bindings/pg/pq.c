/* pq.c — the opsh_pq table and its loader (see pq.h). */
#define OPSH_PQ_REAL_NAMES
#include "pq.h"

struct opsh_pq_api opsh_pq;

#define OPSH_PQ_NAME(name) #name,

void opsh_pq_load(lua_State *L) {
  static const char *const sonames[] = {"libpq.so.5", NULL};
  static const char *const names[] = {OPSH_PQ_FUNCS(OPSH_PQ_NAME)};
  static int loaded;
  opsh_dynlib_load(L, sonames, names, (void **)&opsh_pq, (int)(sizeof names / sizeof *names), &loaded);
}
