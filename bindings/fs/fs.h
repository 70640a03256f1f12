/*
** fs.h — state shared by the parts of opsh._fs: fs.c (the request machinery, path operations,
** glob) and file.c (the file handle). Every operation is one libuv fs request: in a task it
** runs on libuv's thread pool with the task suspended; elsewhere (the CLI before a task, __gc)
** it runs synchronously. The completion only marks the request done and readies the task
** (the wake rule, opsh.h); the continuation pushes the results and frees the request, or the
** cancel function frees it (closing what it opened) if the task was cancelled first.
*/
#ifndef opsh_fs_h
#define opsh_fs_h

#include "opsh.h"

#define FS_FILE_META "opsh.fs.file"

typedef struct fs_file {
  uv_file fd;        /* -1 once closed */
  int pending;       /* requests in flight on fd */
  int released;      /* the userdata let go: close fd and free once nothing is pending */
  char *path;
} fs_file;

typedef struct fs_file_ud { fs_file *f; } fs_file_ud;

enum fs_op {
  FS_OPEN, FS_MKSTEMP, FS_MKDTEMP, FS_READ, FS_WRITE, FS_FSYNC, FS_STAT, FS_LSTAT, FS_FSTAT,
  FS_MKDIR, FS_RMDIR, FS_UNLINK, FS_RENAME, FS_CHMOD, FS_FCHMOD, FS_SCANDIR
};

typedef struct fs_req {
  uv_fs_t req;
  opsh_task *task;   /* the suspended task; NULL when synchronous or after a cancel */
  int op;
  int done;          /* completed: the results wait here for the task's continuation */
  int anchor;        /* registry ref keeping the bytes being written alive */
  lua_State *main;
  char *buf;         /* read buffer */
  fs_file *file;     /* the file an fd operation works on */
} fs_req;

/* fs.c */
/* [-0, +0, v] a path argument without NUL bytes */
const char *opsh_fs_checkpath(lua_State *L, int idx);
/* [-0, +0, m] a request for op: asynchronous when L is a task that can yield */
fs_req *opsh_fs_req(lua_State *L, int op, fs_file *file);
uv_fs_cb opsh_fs_cb(fs_req *r);
/* [-0, +n, e] after submitting r with return code rc: suspend, or push the results at once */
int opsh_fs_finish(lua_State *L, fs_req *r, int rc);
/* [-0, +1, m] a new file handle for fd */
void opsh_fs_push_file(lua_State *L, uv_file fd, const char *path);
void opsh_fs_file_unref(fs_file *f);

/* file.c */
extern const luaL_Reg opsh_fs_file_methods[];
extern const luaL_Reg opsh_fs_file_meta[];

#endif
