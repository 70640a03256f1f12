/*
** runtime.c — the one lua_State: standard libraries, engine metatables, preloaded C modules
** and the module searchers. `require "opsh.x"` looks in each root's lua/ folder
** ($OPSH_PATH entries, then ~/.config/opsh), then in the copy embedded at build time;
** nothing is ever loaded from the current directory.
*/
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include "runtime.h"

extern const luaL_Reg opsh_preloaded[];

/* [-0, +1, m] the roots table: {dir, ...}; OPSH_PATH entries first, then ~/.config/opsh */
static void push_roots(lua_State *L) {
  lua_newtable(L);
  int n = 0;
  const char *path = getenv("OPSH_PATH");
  if (path && *path) {
    const char *p = path;
    while (*p) {
      const char *end = strchr(p, ':');
      size_t len = end ? (size_t)(end - p) : strlen(p);
      if (len > 0) {
        lua_pushlstring(L, p, len);
        lua_rawseti(L, -2, ++n);
      }
      p += len + (end ? 1 : 0);
    }
  }
  const char *xdg = getenv("XDG_CONFIG_HOME");
  const char *home = getenv("HOME");
  if (xdg && *xdg) lua_pushfstring(L, "%s/opsh", xdg);
  else if (home && *home) lua_pushfstring(L, "%s/.config/opsh", home);
  else lua_pushnil(L);
  if (!lua_isnil(L, -1)) lua_rawseti(L, -2, ++n);
  else lua_pop(L, 1);
}

static int file_readable(const char *path) { return access(path, R_OK) == 0; }

/* [-0, +1, m] load an embedded chunk by name, or push nil */
static int load_embedded(lua_State *L, const char *name) {
  const opsh_embedded *e = opsh_embedded_find(name);
  if (!e) return 0;
  char chunkname[512];
  snprintf(chunkname, sizeof chunkname, "@%s", e->path);
  if (luaL_loadbufferx(L, (const char *)e->code, e->size, chunkname, "b") != LUA_OK)
    lua_error(L);
  lua_pushfstring(L, "embedded:%s", e->path);
  return 2;
}

/* [-0, +0, v] an opsh.* name nothing provides: one line with the nearest module's name, instead of
** require's list of every path it tried (opsh.* modules come only from the roots and the binary) */
static int unknown_opsh_module(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "opsh.script");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "nearest");
  lua_pushstring(L, name);
  lua_newtable(L);
  int i = 0;
  for (const opsh_embedded *e = opsh_embedded_files; e->name; e++)
    if (strncmp(e->name, "opsh.", 5) == 0 && !strstr(e->name, "._")) {
      lua_pushstring(L, e->name);
      lua_rawseti(L, -2, ++i);
    }
  lua_call(L, 2, 1);
  const char *nearest = lua_tostring(L, -1);
  if (nearest)
    return opsh_error(L, "usage", "module '%s' not found; did you mean '%s'?", name, nearest);
  return opsh_error(L, "usage", "module '%s' not found (opsh's modules are listed in docs/README.md)", name);
}

/* package.searchers entry: user roots first, then the embedded copy */
static int search_opsh(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "opsh.roots");
  int roots = lua_gettop(L);
  const char *rel = luaL_gsub(L, name, ".", "/");
  int n = (int)luaL_len(L, roots);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, roots, i);
    const char *root = lua_tostring(L, -1);
    const char *cand[2];
    cand[0] = lua_pushfstring(L, "%s/lua/%s.lua", root, rel);
    cand[1] = lua_pushfstring(L, "%s/lua/%s/init.lua", root, rel);
    for (int c = 0; c < 2; c++) {
      if (file_readable(cand[c])) {
        if (luaL_loadfilex(L, cand[c], "t") != LUA_OK) return lua_error(L);
        lua_pushstring(L, cand[c]);
        return 2;
      }
    }
    lua_pop(L, 3);
  }
  if (load_embedded(L, name)) return 2;
  if (strncmp(name, "opsh.", 5) == 0) return unknown_opsh_module(L, name);
  lua_pushfstring(L, "no opsh module '%s' in the embedded library or any root", name);
  return 1;
}

/* opsh.runtime.embedded(prefix) -> sorted list of embedded names starting with prefix */
static int rt_embedded(lua_State *L) {
  const char *prefix = luaL_optstring(L, 1, "");
  size_t plen = strlen(prefix);
  lua_newtable(L);
  int n = 0;
  for (const opsh_embedded *e = opsh_embedded_files; e->name; e++) {
    if (strncmp(e->name, prefix, plen) == 0) {
      lua_pushstring(L, e->name + plen);
      lua_rawseti(L, -2, ++n);
    }
  }
  return 1;
}

/* opsh.runtime.load_embedded(name) -> chunk, origin | nil */
static int rt_load_embedded(lua_State *L) {
  return load_embedded(L, luaL_checkstring(L, 1)) ? 2 : 0;
}

/* opsh.runtime.embedded_source(name) -> source text, path | nil */
static int rt_embedded_source(lua_State *L) {
  const opsh_embedded *e = opsh_embedded_find(luaL_checkstring(L, 1));
  if (!e) return 0;
  lua_pushlstring(L, e->source, e->source_size);
  lua_pushstring(L, e->path);
  return 2;
}

/* opsh.runtime.embedded_path(name) -> the repository path an embedded chunk came from | nil */
static int rt_embedded_path(lua_State *L) {
  const opsh_embedded *e = opsh_embedded_find(luaL_checkstring(L, 1));
  if (!e) return 0;
  lua_pushstring(L, e->path);
  return 1;
}

/* opsh.runtime.exe() -> the absolute path of the running opsh binary */
static int rt_exe(lua_State *L) {
  char path[4096];
  size_t len = sizeof path;
  if (uv_exepath(path, &len) != 0) return 0;
  lua_pushlstring(L, path, len);
  return 1;
}

static int rt_roots(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "opsh.roots");
  return 1;
}

static int rt_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* os.exit replacement: never closes the state from inside a running task */
static int rt_exit(lua_State *L) {
  int code = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE)
                                 : (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  fflush(NULL);
  exit(code);
  return 0;
}

static const luaL_Reg runtime_funcs[] = {
  {"embedded", rt_embedded},
  {"load_embedded", rt_load_embedded},
  {"embedded_path", rt_embedded_path},
  {"embedded_source", rt_embedded_source},
  {"roots", rt_roots},
  {"exe", rt_exe},
  {"isatty", rt_isatty},
  {NULL, NULL}
};

/* runtime.openssl_version: asked of opsh._crypto, so that OpenSSL is loaded only when needed */
static int runtime_index(lua_State *L) {
  if (strcmp(luaL_checkstring(L, 2), "openssl_version") != 0) return 0;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "opsh._crypto");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "openssl_version");
  return 1;
}

static int luaopen_opsh_runtime(lua_State *L) {
  luaL_newlib(L, runtime_funcs);
  lua_pushliteral(L, OPSH_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushliteral(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua_version");
  lua_pushstring(L, uv_version_string());
  lua_setfield(L, -2, "libuv_version");
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, runtime_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  return 1;
}

static const char *const path_setup =
  "local function strip(p) local keep = {}\n"
  "  for item in p:gmatch('[^;]+') do if not item:match('^%./') then keep[#keep+1] = item end end\n"
  "  return table.concat(keep, ';') end\n"
  "package.path = strip(package.path)\n"
  "package.cpath = strip(package.cpath)\n";

lua_State *opsh_runtime_new(void) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  luaL_openlibs(L);
  opsh_sched_init(L);
  opsh_install_pcall(L);
  opsh_error_meta(L);
  opsh_secret_meta(L);
  push_roots(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "opsh.roots");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const luaL_Reg *m = opsh_preloaded; m->name; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  lua_pushcfunction(L, luaopen_opsh_runtime);
  lua_setfield(L, -2, "opsh.runtime");
  lua_pushcfunction(L, luaopen_opsh_repl);
  lua_setfield(L, -2, "opsh._repl");
  lua_pop(L, 1);
  /* searchers: preload, opsh roots + embedded, then the system Lua and C paths */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_rawgeti(L, -1, 2);
  lua_rawgeti(L, -2, 3);
  lua_pushcfunction(L, search_opsh);
  lua_rawseti(L, -4, 2);
  lua_rawseti(L, -3, 4);
  lua_rawseti(L, -2, 3);
  lua_pushnil(L);
  lua_rawseti(L, -2, 5);
  lua_pop(L, 2);
  if (luaL_dostring(L, path_setup) != LUA_OK) lua_pop(L, 1);
  /* the core module defines the task metatable every spawn needs */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "opsh._core");
  lua_call(L, 1, 0);
  lua_getglobal(L, "os");
  lua_pushcfunction(L, rt_exit);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  return L;
}

int opsh_runtime_run(lua_State *L, int nargs) {
  opsh_task *t = opsh_task_spawn(L, nargs);
  int idx = lua_gettop(L);
  opsh_task *previous = opsh_rt->foreground, *previous_root = opsh_rt->root;
  opsh_set_foreground(t);
  if (!previous_root) opsh_rt->root = t;
  opsh_sched_run_until(L, idx);
  opsh_set_foreground(previous);
  opsh_rt->root = previous_root;
  opsh_rt->interrupts = 0;
  int status = t->status;
  opsh_task_push_outcome(L, idx);
  lua_remove(L, idx);
  return status;
}

/* Cancel what still runs and let the cleanups finish (under their deadline) before the state
** closes; requests that read Lua memory (opsh_hold_state) end first. If they do not end in
** time the state is left open: the process is exiting, and a worker thread may still read it. */
void opsh_runtime_close(lua_State *L) {
  if (!opsh_sched_drain(L)) return;
  lua_close(L);
  opsh_sched_close(L);
}
