/*
** dynlib.c — shared libraries loaded when a module first needs them. libcurl and libpq bring 30
** more libraries (Kerberos, LDAP, GnuTLS, SSH...) whose loading and relocation cost ~4 ms and
** ~5 MB at every start; `opsh -e ''` and scripts that use neither should not pay for them.
*/
#include <dlfcn.h>
#include <string.h>
#include "opsh.h"

int opsh_dynlib_load(lua_State *L, const char *const *sonames, const char *const *names, void **slots,
                     int n, int *loaded) {
  if (*loaded) return 1;
  void *lib = NULL;
  const char *why = NULL;
  for (const char *const *so = sonames; *so && !lib; so++) {
    lib = dlopen(*so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) why = dlerror();
  }
  if (!lib) return opsh_error(L, "dependency", "cannot load %s: %s", sonames[0], why ? why : "not found");
  for (int i = 0; i < n; i++) {
    void *sym = dlsym(lib, names[i]);
    if (!sym) {
      dlclose(lib);
      return opsh_error(L, "dependency", "%s has no %s (a version older than opsh was built for?)",
                        sonames[0], names[i]);
    }
    slots[i] = sym;
  }
  *loaded = 1;   /* the library stays loaded for the life of the process */
  return 1;
}
