/* libyaml.c — the opsh_libyaml table and its loader (see libyaml.h). */
#define OPSH_LIBYAML_REAL_NAMES
#include "libyaml.h"

struct opsh_libyaml_api opsh_libyaml;

#define OPSH_LIBYAML_NAME(name) #name,

void opsh_libyaml_load(lua_State *L) {
  static const char *const sonames[] = {"libyaml-0.so.2", NULL};
  static const char *const names[] = {OPSH_LIBYAML_FUNCS(OPSH_LIBYAML_NAME)};
  static int loaded;
  opsh_dynlib_load(L, sonames, names, (void **)&opsh_libyaml, (int)(sizeof names / sizeof *names),
                   &loaded);
}
