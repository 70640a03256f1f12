/*
** file.c — the opsh.fs.file handle: an fd read and written in chunks, so a large file never
** has to fit in memory. One operation at a time per handle; closing a handle with a request in
** flight (a cancelled task) defers the close(2) until the request is done.
*/
#include <stdlib.h>
#include <string.h>
#include "fs.h"

#define MAX_IO (1 << 30)   /* one read or write call moves at most 1 GiB */

static fs_file *check_open(lua_State *L) {
  fs_file_ud *ud = luaL_checkudata(L, 1, FS_FILE_META);
  if (!ud->f) opsh_error(L, "fs", "the file handle is closed");
  if (ud->f->pending > 0)
    opsh_error(L, "usage", "file '%s' is busy: another task is using it", ud->f->path);
  return ud->f;
}

/* file:read([n]) -> up to n bytes (default 64 KiB) | nil at the end of the file */
static int file_read(lua_State *L) {
  fs_file *f = check_open(L);
  lua_Integer n = luaL_optinteger(L, 2, 65536);
  luaL_argcheck(L, n > 0 && n <= MAX_IO, 2, "must be from 1 to 1 GiB");
  fs_req *r = opsh_fs_req(L, FS_READ, f);
  r->buf = malloc((size_t)n);
  if (!r->buf) return opsh_fs_finish(L, r, UV_ENOMEM);
  uv_buf_t b = uv_buf_init(r->buf, (unsigned)n);
  return opsh_fs_finish(L, r, uv_fs_read(opsh_loop(L), &r->req, f->fd, &b, 1, -1, opsh_fs_cb(r)));
}

/* file:_write(data [, from]) -> bytes written, starting at byte offset `from` (0) of data.
** data may be an opsh.secret. One call may write less than asked; fs.lua loops. */
static int file_write(lua_State *L) {
  fs_file *f = check_open(L);
  size_t len;
  const char *s = opsh_secret_check(L, 2, &len);
  lua_Integer from = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, from >= 0 && (size_t)from <= len, 3, "offset out of range");
  size_t n = len - (size_t)from;
  if (n > MAX_IO) n = MAX_IO;
  fs_req *r = opsh_fs_req(L, FS_WRITE, f);
  if (r->task) {   /* the bytes must outlive a cancelled task */
    lua_pushvalue(L, 2);
    r->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  uv_buf_t b = uv_buf_init((char *)s + from, (unsigned)n);
  return opsh_fs_finish(L, r, uv_fs_write(opsh_loop(L), &r->req, f->fd, &b, 1, -1, opsh_fs_cb(r)));
}

/* file:sync(): fsync(2) */
static int file_sync(lua_State *L) {
  fs_file *f = check_open(L);
  fs_req *r = opsh_fs_req(L, FS_FSYNC, f);
  return opsh_fs_finish(L, r, uv_fs_fsync(opsh_loop(L), &r->req, f->fd, opsh_fs_cb(r)));
}

/* file:stat() -> the table of fs.stat */
static int file_stat(lua_State *L) {
  fs_file *f = check_open(L);
  fs_req *r = opsh_fs_req(L, FS_FSTAT, f);
  return opsh_fs_finish(L, r, uv_fs_fstat(opsh_loop(L), &r->req, f->fd, opsh_fs_cb(r)));
}

/* file:chmod(mode) */
static int file_chmod(lua_State *L) {
  fs_file *f = check_open(L);
  int mode = (int)luaL_checkinteger(L, 2);
  fs_req *r = opsh_fs_req(L, FS_FCHMOD, f);
  return opsh_fs_finish(L, r, uv_fs_fchmod(opsh_loop(L), &r->req, f->fd, mode, opsh_fs_cb(r)));
}

static int file_path(lua_State *L) {
  fs_file_ud *ud = luaL_checkudata(L, 1, FS_FILE_META);
  if (!ud->f) return opsh_error(L, "fs", "the file handle is closed");
  lua_pushstring(L, ud->f->path);
  return 1;
}

/* close(), __close, __gc: idempotent; close(2) waits for a request still in flight */
static int file_close(lua_State *L) {
  fs_file_ud *ud = luaL_checkudata(L, 1, FS_FILE_META);
  fs_file *f = ud->f;
  if (f) {
    ud->f = NULL;
    f->released = 1;
    opsh_fs_file_unref(f);
  }
  return 0;
}

static int file_tostring(lua_State *L) {
  fs_file_ud *ud = luaL_checkudata(L, 1, FS_FILE_META);
  if (ud->f) lua_pushfstring(L, "file '%s'", ud->f->path);
  else lua_pushliteral(L, "file (closed)");
  return 1;
}

const luaL_Reg opsh_fs_file_methods[] = {
  {"read", file_read},
  {"_write", file_write},
  {"sync", file_sync},
  {"stat", file_stat},
  {"chmod", file_chmod},
  {"path", file_path},
  {"close", file_close},
  {NULL, NULL}
};

const luaL_Reg opsh_fs_file_meta[] = {
  {"__gc", file_close},
  {"__close", file_close},
  {"__tostring", file_tostring},
  {"__index", NULL},
  {NULL, NULL}
};
