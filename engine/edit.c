/* edit.c — the opsh_edit table and its loader (see edit.h). */
#define OPSH_EDIT_REAL_NAMES
#include "edit.h"

struct opsh_edit_api opsh_edit;

#define OPSH_EDIT_NAME(name) #name,

void opsh_edit_load(lua_State *L) {
  static const char *const sonames[] = {"libedit.so.2", NULL};
  static const char *const names[] = {OPSH_EDIT_SYMBOLS(OPSH_EDIT_NAME)};
  static int loaded;
  opsh_dynlib_load(L, sonames, names, (void **)&opsh_edit, (int)(sizeof names / sizeof *names), &loaded);
}
