/*
** modules.c — bindings built as shared objects, loaded on their first require. Those whose
** libraries cost start-up time (OpenSSL, hiredis, libyaml, http-parser: loading and relocating
** them was most of `opsh -e ''`) are not linked into the binary; opsh._<name> is then
** <name>.so in the modules directory next to the binary: lib/opsh/ beside it (the build tree),
** or ../lib/opsh/ (installed as <prefix>/bin/opsh). A module only links against the engine's C
** API, which the binary exports (engine/exports.list), and exports only its luaopen_opsh_<name>.
*/
#include <dlfcn.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include "runtime.h"

static const char *const module_dirs[] = {"lib/opsh", "../lib/opsh"};

/* [-0, +1, m] the directory the running binary is in, or nil */
static void push_exe_dir(lua_State *L) {
  char path[PATH_MAX];
  size_t len = sizeof path;
  if (uv_exepath(path, &len) != 0) { lua_pushnil(L); return; }
  char *slash = strrchr(path, '/');
  lua_pushlstring(L, path, slash ? (size_t)(slash - path) : 0);
}

/* package.preload loader of a shared module: loader("opsh._<name>") -> the module */
int opsh_module_load(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *svc = strncmp(name, "opsh._", 6) == 0 ? name + 6 : name;
  push_exe_dir(L);
  const char *dir = lua_tostring(L, -1);
  if (!dir) return opsh_error(L, "dependency", "cannot load %s: the path of the opsh binary is unknown", name);
  for (size_t i = 0; i < sizeof module_dirs / sizeof *module_dirs; i++) {
    const char *path = lua_pushfstring(L, "%s/%s/%s.so", dir, module_dirs[i], svc);
    if (access(path, F_OK) != 0) { lua_pop(L, 1); continue; }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char *why = dlerror();
      return opsh_error(L, "dependency", "cannot load %s: %s", name, why ? why : path);
    }
    const char *sym = lua_pushfstring(L, "luaopen_opsh_%s", svc);
    lua_CFunction open = (lua_CFunction)dlsym(lib, sym);   /* the library stays loaded */
    if (!open) return opsh_error(L, "dependency", "cannot load %s: %s has no %s", name, path, sym);
    lua_pushcfunction(L, open);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
  }
  return opsh_error(L, "dependency", "cannot load %s: no %s.so in %s/lib/opsh or %s/../lib/opsh",
                    name, svc, dir, dir);
}
