/*
** fs.c — opsh._fs: files and directories through libuv fs requests (see fs.h for the model),
** plus glob(3). This part has the request machinery and the operations on paths; file.c
** has the file handle. The public API (read, write, atomic writes, mkdir -p, rmtree...) is
** lua/opsh/fs.lua.
*/
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fs.h"

static const char *const op_verbs[] = {
  [FS_OPEN] = "open", [FS_MKSTEMP] = "create a temporary file", [FS_MKDTEMP] = "create a temporary directory",
  [FS_READ] = "read", [FS_WRITE] = "write", [FS_FSYNC] = "sync", [FS_STAT] = "stat", [FS_LSTAT] = "stat",
  [FS_FSTAT] = "stat", [FS_MKDIR] = "create directory", [FS_RMDIR] = "remove directory",
  [FS_UNLINK] = "remove", [FS_RENAME] = "rename", [FS_CHMOD] = "chmod", [FS_FCHMOD] = "chmod",
  [FS_SCANDIR] = "list",
};

const char *opsh_fs_checkpath(lua_State *L, int idx) {
  size_t len;
  const char *p = luaL_checklstring(L, idx, &len);
  if (strlen(p) != len) luaL_argerror(L, idx, "path contains a NUL byte");
  if (len == 0) luaL_argerror(L, idx, "path is empty");
  return p;
}

/* ---- files ---- */

void opsh_fs_file_unref(fs_file *f) {
  if (!f->released || f->pending > 0) return;
  if (f->fd >= 0) close(f->fd);
  free(f->path);
  free(f);
}

void opsh_fs_push_file(lua_State *L, uv_file fd, const char *path) {
  fs_file_ud *ud = lua_newuserdatauv(L, sizeof *ud, 0);
  ud->f = NULL;
  luaL_setmetatable(L, FS_FILE_META);
  fs_file *f = malloc(sizeof *f);
  char *copy = strdup(path);
  if (!f || !copy) {
    free(f);
    free(copy);
    close(fd);
    opsh_error(L, "memory", "out of memory");
  }
  f->fd = fd;
  f->pending = 0;
  f->released = 0;
  f->path = copy;
  ud->f = f;
}

/* ---- requests ---- */

fs_req *opsh_fs_req(lua_State *L, int op, fs_file *file) {
  fs_req *r = calloc(1, sizeof *r);
  if (!r) opsh_error(L, "memory", "out of memory");
  r->op = op;
  r->anchor = LUA_NOREF;
  r->req.data = r;
  opsh_task *t = opsh_task_current(L);
  if (t && lua_isyieldable(L)) r->task = t;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  r->main = lua_tothread(L, -1);
  lua_pop(L, 1);
  r->file = file;
  if (file) file->pending++;
  return r;
}

static void req_free(fs_req *r) {
  uv_fs_req_cleanup(&r->req);
  if (r->anchor != LUA_NOREF) luaL_unref(r->main, LUA_REGISTRYINDEX, r->anchor);
  free(r->buf);
  if (r->file) {
    r->file->pending--;
    opsh_fs_file_unref(r->file);
  }
  free(r);
}

static const char *type_name(uint64_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "dir";
  if (S_ISLNK(mode)) return "link";
  if (S_ISFIFO(mode)) return "fifo";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISCHR(mode)) return "char";
  if (S_ISBLK(mode)) return "block";
  return "unknown";
}

/* [-0, +1, m] {type, size, mode, mtime, atime, ctime, uid, gid, nlink, ino} */
static void push_stat(lua_State *L, const uv_stat_t *s) {
  lua_createtable(L, 0, 10);
  lua_pushstring(L, type_name(s->st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)s->st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(s->st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushnumber(L, (lua_Number)s->st_mtim.tv_sec + (lua_Number)s->st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  lua_pushnumber(L, (lua_Number)s->st_atim.tv_sec + (lua_Number)s->st_atim.tv_nsec / 1e9);
  lua_setfield(L, -2, "atime");
  lua_pushnumber(L, (lua_Number)s->st_ctim.tv_sec + (lua_Number)s->st_ctim.tv_nsec / 1e9);
  lua_setfield(L, -2, "ctime");
  lua_pushinteger(L, (lua_Integer)s->st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)s->st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)s->st_nlink);
  lua_setfield(L, -2, "nlink");
  lua_pushinteger(L, (lua_Integer)s->st_ino);
  lua_setfield(L, -2, "ino");
}

static const char *dirent_type(uv_dirent_type_t t) {
  switch (t) {
    case UV_DIRENT_FILE: return "file";
    case UV_DIRENT_DIR: return "dir";
    case UV_DIRENT_LINK: return "link";
    case UV_DIRENT_FIFO: return "fifo";
    case UV_DIRENT_SOCKET: return "socket";
    case UV_DIRENT_CHAR: return "char";
    case UV_DIRENT_BLOCK: return "block";
    default: return "unknown";
  }
}

/* [-0, +2, m] false, {kind="fs", code=, path=, message="cannot <verb> '<path>': <why>"} */
static int push_error(lua_State *L, fs_req *r, int rc) {
  const char *path = r->file ? r->file->path : r->req.path;
  lua_pushboolean(L, 0);
  if (r->op == FS_RENAME)
    opsh_error_push(L, "fs", "cannot rename '%s' to '%s': %s", path, r->req.new_path, uv_strerror(rc));
  else
    opsh_error_push(L, "fs", "cannot %s '%s': %s", op_verbs[r->op], path ? path : "?", uv_strerror(rc));
  opsh_error_setstr(L, "code", uv_err_name(rc));
  opsh_error_setstr(L, "path", path);
  return 2;
}

/* [-0, +n, m] true, results... | false, err (stat of something absent: true, nil) */
static int push_result(lua_State *L, fs_req *r) {
  int rc = (int)r->req.result;
  lua_checkstack(L, 4);
  if (rc < 0) {
    if ((r->op == FS_STAT || r->op == FS_LSTAT) && (rc == UV_ENOENT || rc == UV_ENOTDIR)) {
      lua_pushboolean(L, 1);
      lua_pushnil(L);
      return 2;
    }
    return push_error(L, r, rc);
  }
  lua_pushboolean(L, 1);
  switch (r->op) {
    case FS_OPEN:
      opsh_fs_push_file(L, rc, r->req.path);
      return 2;
    case FS_MKSTEMP:
      opsh_fs_push_file(L, rc, r->req.path);
      lua_pushstring(L, r->req.path);
      return 3;
    case FS_MKDTEMP:
      lua_pushstring(L, r->req.path);
      return 2;
    case FS_READ:
      if (rc == 0) lua_pushnil(L);
      else lua_pushlstring(L, r->buf, (size_t)rc);
      return 2;
    case FS_WRITE:
      lua_pushinteger(L, rc);
      return 2;
    case FS_STAT: case FS_LSTAT: case FS_FSTAT:
      push_stat(L, &r->req.statbuf);
      return 2;
    case FS_SCANDIR: {
      uv_dirent_t ent;
      lua_newtable(L);
      lua_newtable(L);
      for (int i = 1; uv_fs_scandir_next(&r->req, &ent) != UV_EOF; i++) {
        lua_pushstring(L, ent.name);
        lua_rawseti(L, -3, i);
        lua_pushstring(L, dirent_type(ent.type));
        lua_rawseti(L, -2, i);
      }
      return 3;
    }
    default:
      return 1;
  }
}

/* a cancelled task's request finished anyway: undo what it created */
static void orphan_cleanup(fs_req *r) {
  if (r->req.result < 0) return;
  if (r->op == FS_OPEN || r->op == FS_MKSTEMP) close((int)r->req.result);
  if (r->op == FS_MKSTEMP) unlink(r->req.path);
  if (r->op == FS_MKDTEMP) rmdir(r->req.path);
}

/* the request is done; results stay in it until the task's fs_k (or fs_cancel) takes them */
static void on_fs(uv_fs_t *req) {
  fs_req *r = req->data;
  opsh_release_state(r->main);
  if (r->task) {
    r->done = 1;
    opsh_task_ready(r->task);
    return;
  }
  orphan_cleanup(r);
  req_free(r);
}

uv_fs_cb opsh_fs_cb(fs_req *r) { return r->task ? on_fs : NULL; }

static void fs_cancel(void *ud) {
  fs_req *r = ud;
  r->task = NULL;
  if (r->done) {   /* done, but the task was cancelled before it took the results */
    orphan_cleanup(r);
    req_free(r);
    return;
  }
  uv_cancel((uv_req_t *)&r->req);   /* the completion cleans up */
}

static int push_result_p(lua_State *L) {
  return push_result(L, lua_touserdata(L, 1));
}

static int fs_k(lua_State *L, int status, lua_KContext ctx) {
  fs_req *r = (fs_req *)ctx;
  int base = lua_gettop(L);
  lua_pushcfunction(L, push_result_p);
  lua_pushlightuserdata(L, r);
  int st = lua_pcall(L, 1, LUA_MULTRET, 0);   /* so that r is freed whatever happens */
  req_free(r);
  if (st != LUA_OK) return lua_error(L);
  if (!lua_toboolean(L, base + 1)) return lua_error(L);
  return lua_gettop(L) - base - 1;
}

int opsh_fs_finish(lua_State *L, fs_req *r, int rc) {
  int base = lua_gettop(L);
  if (r->task && rc >= 0) {
    opsh_hold_state(L);   /* the completion may read a Lua string and unref it */
    return opsh_yield(L, fs_cancel, r, (lua_KContext)r, fs_k);
  }
  if (rc < 0) r->req.result = rc;
  push_result(L, r);
  req_free(r);
  if (!lua_toboolean(L, base + 1)) return lua_error(L);
  return lua_gettop(L) - base - 1;
}

/* ---- operations on paths ---- */

static uv_loop_t *loop_of(lua_State *L) { return opsh_loop(L); }

static int open_flags(lua_State *L, int idx) {
  static const char *const names[] = {"r", "w", "a", "r+", "wx", "w+", "a+", NULL};
  static const int flags[] = {O_RDONLY, O_WRONLY | O_CREAT | O_TRUNC, O_WRONLY | O_CREAT | O_APPEND, O_RDWR,
                              O_WRONLY | O_CREAT | O_EXCL, O_RDWR | O_CREAT | O_TRUNC, O_RDWR | O_CREAT | O_APPEND};
  return flags[luaL_checkoption(L, idx, "r", names)] | O_CLOEXEC;
}

/* open(path [, "r"|"w"|"a"|"r+"|"wx"|"w+"|"a+" [, mode]]) -> file */
static int fs_open(lua_State *L) {
  const char *path = opsh_fs_checkpath(L, 1);
  int flags = open_flags(L, 2);
  int mode = (int)luaL_optinteger(L, 3, 0666);
  fs_req *r = opsh_fs_req(L, FS_OPEN, NULL);
  return opsh_fs_finish(L, r, uv_fs_open(loop_of(L), &r->req, path, flags, mode, opsh_fs_cb(r)));
}

/* mkstemp(template ending in XXXXXX) -> file, path (mode 0600) */
static int fs_mkstemp(lua_State *L) {
  const char *tpl = opsh_fs_checkpath(L, 1);
  fs_req *r = opsh_fs_req(L, FS_MKSTEMP, NULL);
  return opsh_fs_finish(L, r, uv_fs_mkstemp(loop_of(L), &r->req, tpl, opsh_fs_cb(r)));
}

/* mkdtemp(template ending in XXXXXX) -> path (mode 0700) */
static int fs_mkdtemp(lua_State *L) {
  const char *tpl = opsh_fs_checkpath(L, 1);
  fs_req *r = opsh_fs_req(L, FS_MKDTEMP, NULL);
  return opsh_fs_finish(L, r, uv_fs_mkdtemp(loop_of(L), &r->req, tpl, opsh_fs_cb(r)));
}

/* stat(path) -> table | nil when absent (follows symlinks) */
static int fs_stat(lua_State *L) {
  const char *path = opsh_fs_checkpath(L, 1);
  fs_req *r = opsh_fs_req(L, FS_STAT, NULL);
  return opsh_fs_finish(L, r, uv_fs_stat(loop_of(L), &r->req, path, opsh_fs_cb(r)));
}

/* lstat(path) -> table | nil when absent (a symlink is "link") */
static int fs_lstat(lua_State *L) {
  const char *path = opsh_fs_checkpath(L, 1);
  fs_req *r = opsh_fs_req(L, FS_LSTAT, NULL);
  return opsh_fs_finish(L, r, uv_fs_lstat(loop_of(L), &r->req, path, opsh_fs_cb(r)));
}

/* mkdir(path [, mode]) -> true */
static int fs_mkdir(lua_State *L) {
  const char *path = opsh_fs_checkpath(L, 1);
  int mode = (int)luaL_optinteger(L, 2, 0777);
  fs_req *r = opsh_fs_req(L, FS_MKDIR, NULL);
  return opsh_fs_finish(L, r, uv_fs_mkdir(loop_of(L), &r->req, path, mode, opsh_fs_cb(r)));
}

static int fs_rmdir(lua_State *L) {
  const char *path = opsh_fs_checkpath(L, 1);
  fs_req *r = opsh_fs_req(L, FS_RMDIR, NULL);
  return opsh_fs_finish(L, r, uv_fs_rmdir(loop_of(L), &r->req, path, opsh_fs_cb(r)));
}

static int fs_unlink(lua_State *L) {
  const char *path = opsh_fs_checkpath(L, 1);
  fs_req *r = opsh_fs_req(L, FS_UNLINK, NULL);
  return opsh_fs_finish(L, r, uv_fs_unlink(loop_of(L), &r->req, path, opsh_fs_cb(r)));
}

static int fs_rename(lua_State *L) {
  const char *from = opsh_fs_checkpath(L, 1);
  const char *to = opsh_fs_checkpath(L, 2);
  fs_req *r = opsh_fs_req(L, FS_RENAME, NULL);
  return opsh_fs_finish(L, r, uv_fs_rename(loop_of(L), &r->req, from, to, opsh_fs_cb(r)));
}

static int fs_chmod(lua_State *L) {
  const char *path = opsh_fs_checkpath(L, 1);
  int mode = (int)luaL_checkinteger(L, 2);
  fs_req *r = opsh_fs_req(L, FS_CHMOD, NULL);
  return opsh_fs_finish(L, r, uv_fs_chmod(loop_of(L), &r->req, path, mode, opsh_fs_cb(r)));
}

/* scandir(path) -> names, types (in directory order) */
static int fs_scandir(lua_State *L) {
  const char *path = opsh_fs_checkpath(L, 1);
  fs_req *r = opsh_fs_req(L, FS_SCANDIR, NULL);
  return opsh_fs_finish(L, r, uv_fs_scandir(loop_of(L), &r->req, path, 0, opsh_fs_cb(r)));
}

/* glob(pattern) -> sorted list of paths (glob(3) with brace expansion; runs on the loop thread) */
static int fs_glob(lua_State *L) {
  const char *pattern = opsh_fs_checkpath(L, 1);
  glob_t g;
  memset(&g, 0, sizeof g);
  int rc = glob(pattern, GLOB_BRACE, NULL, &g);
  if (rc == GLOB_NOSPACE) {
    globfree(&g);
    return opsh_error(L, "memory", "out of memory");
  }
  if (rc == GLOB_ABORTED) {
    globfree(&g);
    return opsh_error(L, "fs", "cannot glob '%s': a directory could not be read", pattern);
  }
  lua_createtable(L, rc == 0 ? (int)g.gl_pathc : 0, 0);
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) {
      lua_pushstring(L, g.gl_pathv[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  }
  globfree(&g);
  return 1;
}

/* cwd() -> the process's working directory (getcwd; $PWD may be missing or stale) */
static int fs_cwd(lua_State *L) {
  char buf[4096];
  size_t len = sizeof buf;
  int rc = uv_cwd(buf, &len);
  if (rc != 0) return opsh_error(L, "fs", "cannot read the working directory: %s", uv_strerror(rc));
  lua_pushlstring(L, buf, len);
  return 1;
}

static const luaL_Reg fs_funcs[] = {
  {"cwd", fs_cwd},
  {"open", fs_open},
  {"mkstemp", fs_mkstemp},
  {"mkdtemp", fs_mkdtemp},
  {"stat", fs_stat},
  {"lstat", fs_lstat},
  {"mkdir", fs_mkdir},
  {"rmdir", fs_rmdir},
  {"unlink", fs_unlink},
  {"rename", fs_rename},
  {"chmod", fs_chmod},
  {"scandir", fs_scandir},
  {"glob", fs_glob},
  {NULL, NULL}
};

int luaopen_opsh_fs(lua_State *L) {
  luaL_newlib(L, fs_funcs);
  if (luaL_newmetatable(L, FS_FILE_META)) {
    luaL_setfuncs(L, opsh_fs_file_meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, opsh_fs_file_methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "file_methods");   /* the Lua layer adds lines */
  lua_pop(L, 1);
  return 1;
}
