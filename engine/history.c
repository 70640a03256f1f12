/*
** history.c — the REPL's private history file (opsh._repl.history_load/history_append).
** The file work (open, read, append, the compaction's fsync and rename) runs on libuv's thread
** pool while the REPL's task waits, so a slow disk never stalls the loop and the background
** tasks; outside a task it runs inline. One entry per line, \ and newlines escaped; the
** worker handles escaped lines only, the task turns them into Lua strings (the wake rule).
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "runtime.h"

enum { HIST_LOAD, HIST_APPEND };

typedef struct hist_req {
  uv_work_t req;
  opsh_task *task;
  int op;
  int abandoned;      /* the task was cancelled while the work ran: hist_after frees it */
  int done;           /* the results wait for hist_k (or hist_cancel frees them) */
  char *path;
  char *data;         /* HIST_APPEND: the escaped line, newline included */
  size_t len;
  long max;           /* HIST_LOAD: entries to keep */
  char **lines;       /* HIST_LOAD: a ring of the last max escaped lines */
  long total;         /* lines read */
  int err;            /* errno of what failed */
  const char *what;   /* "cannot open", ... */
} hist_req;

static void hist_free(hist_req *h) {
  if (h->lines)
    for (long i = 0; i < h->max; i++) free(h->lines[i]);
  free(h->lines);
  free(h->data);
  free(h->path);
  free(h);
}

/* ---- the file work (a worker thread, or inline) ---- */

/* mkdir -p for the directory part of path, new directories private (0700); 0 or errno */
static int make_parents(const char *path) {
  char *p = strdup(path);
  if (!p) return ENOMEM;
  int err = 0;
  for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = '\0';
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
      err = errno;
      break;
    }
    *s = '/';
  }
  free(p);
  return err;
}

/* the kept lines, oldest first */
static char *kept_line(hist_req *h, long i) {
  long kept = h->total < h->max ? h->total : h->max;
  return h->lines[(h->total - kept + i) % h->max];
}

/* rewrite the file with the kept lines (a private temporary, synced, renamed); best effort */
static void compact(hist_req *h) {
  size_t plen = strlen(h->path);
  char *tmp = malloc(plen + 8);
  if (!tmp) return;
  memcpy(tmp, h->path, plen);
  memcpy(tmp + plen, ".XXXXXX", 8);
  int fd = mkstemp(tmp);   /* mode 0600 */
  if (fd < 0) {
    free(tmp);
    return;
  }
  FILE *f = fdopen(fd, "w");
  int ok = f != NULL;
  long kept = h->total < h->max ? h->total : h->max;
  for (long i = 0; ok && i < kept; i++) ok = fputs(kept_line(h, i), f) >= 0 && fputc('\n', f) != EOF;
  ok = f && fflush(f) == 0 && fsync(fd) == 0 && ok;
  if (f) fclose(f); else close(fd);
  if (!ok || rename(tmp, h->path) != 0) unlink(tmp);
  free(tmp);
}

static void fail(hist_req *h, const char *what, int err) {
  h->what = what;
  h->err = err;
}

static void load(hist_req *h) {
  int err = make_parents(h->path);
  if (err) return fail(h, "cannot create the directory of", err);
  int fd = open(h->path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail(h, "cannot open", errno);
  struct stat st;
  if (fstat(fd, &st) == 0 && (st.st_mode & 077)) fchmod(fd, st.st_mode & 0700);
  FILE *f = fdopen(fd, "r");
  if (!f) {
    err = errno;
    close(fd);
    return fail(h, "cannot read", err);
  }
  h->lines = calloc((size_t)h->max, sizeof *h->lines);
  if (!h->lines) {
    fclose(f);
    return fail(h, "cannot read", ENOMEM);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) >= 0) {
    if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    if (n == 0) continue;
    char *copy = strdup(line);
    if (!copy) {
      err = ENOMEM;
      break;
    }
    char **slot = &h->lines[h->total % h->max];
    free(*slot);
    *slot = copy;
    h->total++;
  }
  free(line);
  fclose(f);
  if (err) return fail(h, "cannot read", err);
  if (h->total > 2 * h->max) compact(h);   /* the entries are loaded either way */
}

static void append(hist_req *h) {
  int fd = open(h->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail(h, "cannot open", errno);
  ssize_t w = write(fd, h->data, h->len);
  int err = errno;
  close(fd);
  if (w != (ssize_t)h->len) fail(h, "cannot write", w < 0 ? err : EIO);
}

static void hist_work(uv_work_t *req) {
  hist_req *h = req->data;
  if (h->op == HIST_LOAD) load(h);
  else append(h);
}

/* ---- back in the task ---- */

/* [-0, +1, m] the entry a file line holds */
static void push_unescaped(lua_State *L, const char *s, size_t len) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '\\' && i + 1 < len) {
      char c = s[++i];
      luaL_addchar(&b, c == 'n' ? '\n' : c == 'r' ? '\r' : c);
    } else {
      luaL_addchar(&b, s[i]);
    }
  }
  luaL_pushresult(&b);
}

/* [-0, +(1|2), m] {entries} | true | nil, err */
static int push_outcome(lua_State *L) {
  hist_req *h = lua_touserdata(L, 1);
  if (h->what) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", h->what, h->path, strerror(h->err));
    return 2;
  }
  if (h->op == HIST_APPEND) {
    lua_pushboolean(L, 1);
    return 1;
  }
  long kept = h->total < h->max ? h->total : h->max;
  lua_createtable(L, (int)kept, 0);
  for (long i = 0; i < kept; i++) {
    const char *s = kept_line(h, i);
    push_unescaped(L, s, strlen(s));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* [-0, +(1|2), e] the outcome of h as Lua values; h is freed whatever happens */
static int finish(lua_State *L, hist_req *h) {
  int base = lua_gettop(L);
  lua_pushcfunction(L, push_outcome);
  lua_pushlightuserdata(L, h);
  int st = lua_pcall(L, 1, LUA_MULTRET, 0);
  hist_free(h);
  if (st != LUA_OK) return lua_error(L);
  return lua_gettop(L) - base;
}

static void hist_after(uv_work_t *req, int status) {
  hist_req *h = req->data;
  if (h->abandoned) {
    hist_free(h);
    return;
  }
  h->done = 1;
  opsh_task_ready(h->task);
}

static void hist_cancel(void *ud) {
  hist_req *h = ud;
  if (h->done) {
    hist_free(h);
    return;
  }
  h->abandoned = 1;
  uv_cancel((uv_req_t *)&h->req);   /* running already: hist_after frees it */
}

static int hist_k(lua_State *L, int status, lua_KContext ctx) {
  return finish(L, (hist_req *)ctx);
}

/* [-0, +(1|2), e] run h: on the thread pool if L is a task that can wait, else inline */
static int run(lua_State *L, hist_req *h) {
  opsh_task *t = opsh_task_current(L);
  if (t && lua_isyieldable(L)) {
    h->task = t;
    h->req.data = h;
    if (uv_queue_work(opsh_loop(L), &h->req, hist_work, hist_after) == 0)
      return opsh_yield(L, hist_cancel, h, (lua_KContext)h, hist_k);
  }
  hist_work(&h->req);
  return finish(L, h);
}

/* [-0, +0, m] a request for path, or raises out of memory */
static hist_req *new_req(lua_State *L, int op, const char *path) {
  hist_req *h = calloc(1, sizeof *h);
  char *copy = strdup(path);
  if (!h || !copy) {
    free(h);
    free(copy);
    opsh_error(L, "memory", "out of memory");
  }
  h->op = op;
  h->path = copy;
  h->req.data = h;
  return h;
}

/* history_load(path, max) -> {entries} | nil, err
** Creates the directories (0700) and the file (0600; a wider mode is narrowed), returns the
** last `max` entries, and compacts the file once it holds more than twice that many. */
int opsh_history_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max > 0 && max <= 1000000, 2, "must be from 1 to 1000000");
  hist_req *h = new_req(L, HIST_LOAD, path);
  h->max = (long)max;
  lua_settop(L, 0);
  return run(L, h);
}

/* history_append(path, entry) -> true | nil, err: one line appended with one write */
int opsh_history_append(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *entry = luaL_checklstring(L, 2, &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i++) {
    if (entry[i] == '\\') luaL_addstring(&b, "\\\\");
    else if (entry[i] == '\n') luaL_addstring(&b, "\\n");
    else if (entry[i] == '\r') luaL_addstring(&b, "\\r");
    else luaL_addchar(&b, entry[i]);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t n;
  const char *line = lua_tolstring(L, -1, &n);
  hist_req *h = new_req(L, HIST_APPEND, path);
  h->data = malloc(n);
  if (!h->data) {
    hist_free(h);
    return opsh_error(L, "memory", "out of memory");
  }
  memcpy(h->data, line, n);
  h->len = n;
  lua_settop(L, 0);
  return run(L, h);
}
