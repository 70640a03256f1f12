/*
** io.c — the running child of opsh._proc: its exit, the output pipes (captured up to
** max_output, or handed to one reader with back-pressure), the `input` write, the timeout and
** the TERM -> KILL escalation, and the handle methods that wait on them (wait, read, write).
** Callbacks never call Lua: they record state and wake the waiting task; the continuations
** turn that state into results.
*/
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "proc.h"

#define READ_CHUNK 65536
#define PIPE_HIGH_WATER (256 * 1024)   /* unread pipe data at which the child is paused */
#define WRITE_PIECE ((size_t)1 << 30)  /* uv_buf_t lengths are unsigned int: larger data goes in pieces */

static char scratch[READ_CHUNK];        /* output beyond max_output is read here and dropped */

#define stream_of(h) ((proc_stream *)((char *)(h) - offsetof(proc_stream, pipe)))

static const char *const stream_names[] = {"stdout", "stderr"};

static proc *live;

proc *opsh_proc_alloc(uv_loop_t *loop) {
  proc *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->live_next = live;
  if (live) live->live_prev = p;
  live = p;
  uv_timer_init(loop, &p->timer);
  p->handles = 1;
  p->handle.data = p->timer.data = p->in.data = p;
  return p;
}

static void on_timer(uv_timer_t *h);

/* ---- lifecycle ---- */

void opsh_proc_free_input(proc *p) {
  if (p->input && p->input_secret) explicit_bzero(p->input, p->input_len);
  free(p->input);
  p->input = NULL;
}

static void free_proc(proc *p) {
  if (p->live_prev) p->live_prev->live_next = p->live_next; else live = p->live_next;
  if (p->live_next) p->live_next->live_prev = p->live_prev;
  free(p->out[0].b.data);
  free(p->out[1].b.data);
  opsh_proc_free_input(p);
  free(p->argv0);
  free(p);
}

static void maybe_free(proc *p) {
  if (p->released && p->handles == 0) free_proc(p);
}

void opsh_proc_free_all(void) {
  while (live) free_proc(live);
}

static void on_closed(uv_handle_t *h) {
  proc *p = h->data;
  p->handles--;
  maybe_free(p);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, on_closed);
}

static void close_stream(proc_stream *s) {
  s->eof = 1;
  if (!s->open) return;
  s->open = 0;
  close_handle((uv_handle_t *)&s->pipe);
}

static void close_in(proc *p) {
  if (!p->in_open) return;
  p->in_open = 0;
  close_handle((uv_handle_t *)&p->in);
}

/* the spawn failed: the handles go away (uv_spawn initialises the process handle even then) */
void opsh_proc_abandon(proc *p) {
  p->released = 1;
  close_in(p);
  close_handle((uv_handle_t *)&p->timer);
  if (p->spawn_called) close_handle((uv_handle_t *)&p->handle);
}

void opsh_proc_arm_timeout(proc *p, uint64_t ms) {
  uv_timer_start(&p->timer, on_timer, ms, 0);
}

/* ---- waking the tasks that wait on the child ---- */

static int read_ready(proc *p, int mask) {
  int all_eof = 1;
  for (int i = 0; i < 2; i++) {
    if (!(mask & (1 << i))) continue;
    if (p->out[i].b.len > 0) return 1;
    if (!p->out[i].eof) all_eof = 0;
  }
  return all_eof;
}

static int wait_done(proc *p) {
  if (!p->exited) return 0;
  for (int i = 0; i < 2; i++)
    if (p->out[i].mode == OUT_CAPTURE && !p->out[i].eof) return 0;
  return 1;
}

static void notify(proc *p) {
  opsh_task *t;
  if (p->reader && read_ready(p, p->read_mask)) {
    t = p->reader;
    p->reader = NULL;
    opsh_task_wake(t, 0);
  }
  if (p->waiter && wait_done(p)) {
    t = p->waiter;
    p->waiter = NULL;
    opsh_task_wake(t, 0);
  }
}

/* the handle was closed under the tasks waiting on it: their continuations raise "closed" */
static void wake_all(proc *p) {
  opsh_task *ts[3] = {p->reader, p->waiter, p->writer};
  p->reader = p->waiter = p->writer = NULL;
  for (int i = 0; i < 3; i++)
    if (ts[i]) opsh_task_wake(ts[i], 0);
}

/* ---- signals ---- */

void opsh_proc_escalate(proc *p) {
  if (p->exited || p->kill_stage) return;
  uv_process_kill(&p->handle, SIGTERM);
  p->kill_stage = 1;
  opsh_proc_track_term(p->pid, p->grace_ms);
  if (p->grace_ms == 0) {
    uv_process_kill(&p->handle, SIGKILL);
    p->kill_stage = 2;
    return;
  }
  if (!uv_is_closing((uv_handle_t *)&p->timer))
    uv_timer_start(&p->timer, on_timer, p->grace_ms, 0);
}

static void on_timer(uv_timer_t *h) {
  proc *p = h->data;
  if (p->exited) return;
  if (p->kill_stage == 0) {   /* the timeout */
    p->timed_out = 1;
    opsh_proc_escalate(p);
  } else if (p->kill_stage == 1) {
    uv_process_kill(&p->handle, SIGKILL);
    p->kill_stage = 2;
  }
}

void opsh_proc_on_exit(uv_process_t *h, int64_t status, int sig) {
  proc *p = h->data;
  p->exited = 1;
  p->exit_status = status;
  p->term_signal = sig;
  p->ended = uv_hrtime();
  if (!p->detached) opsh_proc_untrack(p->pid);
  if (!uv_is_closing((uv_handle_t *)&p->timer)) uv_timer_stop(&p->timer);
  if (p->released) {
    close_handle((uv_handle_t *)&p->timer);
    close_handle((uv_handle_t *)h);
    return;
  }
  /* a child we stopped (stop, close, timeout, too much output) may leave grandchildren holding
  ** the pipes: take what is there and stop waiting for them */
  if (p->kill_stage) opsh_proc_finish_streams(p);
  notify(p);
}

/* The userdata lets go: the waiting tasks fail, the pipes close, and a child still running
** gets TERM (then KILL after the grace) unless it is detached. The proc lives until every
** handle has closed. */
void opsh_proc_release(lua_State *L, proc *p) {
  (void)L;
  p->released = 1;
  wake_all(p);
  close_in(p);
  close_stream(&p->out[0]);
  close_stream(&p->out[1]);
  if (p->exited) {
    close_handle((uv_handle_t *)&p->timer);
    close_handle((uv_handle_t *)&p->handle);
  } else if (p->detached) {
    /* let it go entirely: it runs on after opsh, and a handle kept only to reap it would be
    ** closed at exit without its memory. If it exits while this opsh still runs, it stays a
    ** zombie until opsh exits (then init reaps it). */
    close_handle((uv_handle_t *)&p->timer);
    close_handle((uv_handle_t *)&p->handle);
  } else {
    opsh_proc_escalate(p);
  }
}

/* ---- output ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out) {
  proc_stream *s = stream_of(h);
  size_t want = READ_CHUNK;
  if (s->mode == OUT_CAPTURE) {
    size_t room = s->p->max_output > s->b.len ? s->p->max_output - s->b.len : 0;
    if (room == 0) {
      *out = uv_buf_init(scratch, sizeof scratch);
      return;
    }
    if (want > room) want = room;
  }
  if (byte_buf_reserve(&s->b, want) != 0) {
    *out = uv_buf_init(NULL, 0);   /* libuv reports UV_ENOBUFS */
    return;
  }
  *out = uv_buf_init(s->b.data + s->b.len, (unsigned)want);
}

/* n bytes arrived in buf (from on_alloc) */
static void took(proc_stream *s, const char *base, size_t n) {
  proc *p = s->p;
  s->total += n;
  if (base == scratch) {
    s->truncated = 1;
    if (p->overflow_kill && !p->overflowed) {
      p->overflowed = 1;
      opsh_proc_escalate(p);
    }
  } else {
    s->b.len += n;
  }
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  proc_stream *s = stream_of(st);
  proc *p = s->p;
  if (n > 0) {
    took(s, buf->base, (size_t)n);
    if (s->mode == OUT_PIPE && s->b.len >= PIPE_HIGH_WATER) {
      uv_read_stop(st);
      s->stopped = 1;
    }
  } else if (n < 0) {   /* UV_EOF, or an error that ends the stream just the same */
    if (n == UV_ENOBUFS) s->nomem = 1;
    close_stream(s);
  }
  notify(p);
}

/* what the pipe holds now (FIONREAD), not what a grandchild may keep writing */
static void drain(proc_stream *s) {
  uv_os_fd_t fd;
  int avail = 0;
  if (uv_fileno((uv_handle_t *)&s->pipe, &fd) != 0 || ioctl(fd, FIONREAD, &avail) != 0) return;
  size_t left = avail > 0 ? (size_t)avail : 0;
  while (left > 0) {
    uv_buf_t b;
    on_alloc((uv_handle_t *)&s->pipe, left, &b);
    if (!b.base) {
      s->nomem = 1;
      return;
    }
    ssize_t n = read(fd, b.base, b.len < left ? b.len : left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    took(s, b.base, (size_t)n);
    left -= (size_t)n;
  }
}

void opsh_proc_finish_streams(proc *p) {
  for (int i = 0; i < 2; i++) {
    proc_stream *s = &p->out[i];
    if (!s->open) continue;
    drain(s);
    close_stream(s);
  }
  notify(p);
}

/* our end of an output pipe, from now on owned by the stream */
void opsh_proc_start_stream(proc *p, int which, int fd) {
  proc_stream *s = &p->out[which];
  s->p = p;
  uv_pipe_init(p->timer.loop, &s->pipe, 0);
  s->pipe.data = p;
  p->handles++;
  s->open = 1;
  if (uv_pipe_open(&s->pipe, fd) != 0) {
    close(fd);
    close_stream(s);
  } else if (uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read) != 0) {
    close_stream(s);
  }
}

/* ---- input ---- */

static void on_input_written(uv_write_t *req, int status) {
  proc *p = req->data;
  opsh_proc_free_input(p);
  close_in(p);   /* EOF for the child; a child that exited early (EPIPE) is not an error */
}

/* uv_write of len bytes at data, in pieces a uv_buf_t can describe; 0 or a libuv error */
static int write_all(uv_write_t *req, uv_stream_t *s, char *data, size_t len, uv_write_cb cb) {
  uv_buf_t small[8];
  size_t n = (len + WRITE_PIECE - 1) / WRITE_PIECE;
  uv_buf_t *bufs = n <= 8 ? small : malloc(n * sizeof *bufs);
  if (!bufs) return UV_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    size_t piece = len - i * WRITE_PIECE < WRITE_PIECE ? len - i * WRITE_PIECE : WRITE_PIECE;
    bufs[i] = uv_buf_init(data + i * WRITE_PIECE, (unsigned)piece);
  }
  int rc = n > UINT32_MAX ? UV_E2BIG : uv_write(req, s, bufs, (unsigned)n, cb);   /* libuv copies bufs */
  if (bufs != small) free(bufs);
  return rc;
}

void opsh_proc_start_input(proc *p) {
  if (!p->input) return;
  p->in_req.data = p;
  if (p->input_len == 0 || write_all(&p->in_req, (uv_stream_t *)&p->in, p->input, p->input_len, on_input_written) != 0) {
    opsh_proc_free_input(p);
    close_in(p);
  }
}

/* ---- methods that wait ---- */

static proc *check_open(lua_State *L, int idx) {
  proc_ud *ud = luaL_checkudata(L, idx, PROC_META);
  if (!ud->p) opsh_error(L, "proc", "the process handle is closed");
  return ud->p;
}

static int busy(lua_State *L, proc *p, const char *what) {
  return opsh_error(L, "usage", "process %d is busy: another task is already in %s", p->pid, what);
}

/* [-0, +1, m] the outcome: {code, signal, stdout, stderr, elapsed, timed_out, ...} */
/* [-0, +0, v] a stream that lost output to out of memory is an error, not a short result */
static void check_nomem(lua_State *L, proc *p, int mask) {
  for (int i = 0; i < 2; i++)
    if ((mask & (1 << i)) && p->out[i].nomem)
      opsh_error(L, "proc", "out of memory reading the %s of '%s' (pid %d): its output is incomplete",
                 stream_names[i], p->argv0, p->pid);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  proc *p = check_open(L, 1);
  check_nomem(L, p, 3);
  lua_createtable(L, 0, 10);
  if (p->term_signal) {
    lua_pushinteger(L, p->term_signal);
    lua_setfield(L, -2, "signal");
  } else {
    lua_pushinteger(L, (lua_Integer)p->exit_status);
    lua_setfield(L, -2, "code");
  }
  for (int i = 0; i < 2; i++) {
    proc_stream *s = &p->out[i];
    if (s->mode != OUT_CAPTURE) continue;
    lua_pushlstring(L, s->b.data ? s->b.data : "", s->b.len);
    lua_setfield(L, -2, stream_names[i]);
    if (s->truncated) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, i == PROC_STDOUT ? "stdout_truncated" : "stderr_truncated");
    }
  }
  lua_pushnumber(L, (lua_Number)(p->ended - p->started) / 1e9);
  lua_setfield(L, -2, "elapsed");
  lua_pushboolean(L, p->timed_out);
  lua_setfield(L, -2, "timed_out");
  if (p->overflowed) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "overflowed");
  }
  lua_pushinteger(L, p->pid);
  lua_setfield(L, -2, "pid");
  return 1;
}

static void cancel_wait(void *ud) { ((proc *)ud)->waiter = NULL; }

/* process:_wait() -> outcome; waits for the exit and the end of the captured output */
static int proc_wait(lua_State *L) {
  proc *p = check_open(L, 1);
  lua_settop(L, 1);
  if (wait_done(p)) return wait_k(L, LUA_OK, 0);
  if (p->waiter) return busy(L, p, "wait");
  p->waiter = opsh_task_check(L, "process:wait");
  return opsh_yield(L, cancel_wait, p, 0, wait_k);
}

/* [-0, +(0|2), m] name, chunk of the first stream in the mask with unread data; nothing at EOF */
static int read_k(lua_State *L, int status, lua_KContext ctx) {
  proc *p = check_open(L, 1);
  int mask = (int)ctx;
  check_nomem(L, p, mask);
  for (int i = 0; i < 2; i++) {
    proc_stream *s = &p->out[i];
    if (!(mask & (1 << i)) || s->b.len == 0) continue;
    lua_pushstring(L, stream_names[i]);
    lua_pushlstring(L, s->b.data, s->b.len);
    s->b.len = 0;
    if (s->stopped && s->open) {
      s->stopped = 0;
      uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read);
    }
    return 2;
  }
  return 0;
}

static void cancel_read(void *ud) { ((proc *)ud)->reader = NULL; }

/* process:read(["stdout"|"stderr"]) -> name, chunk | nil when the stream(s) ended */
static int proc_read(lua_State *L) {
  proc *p = check_open(L, 1);
  static const char *const opts[] = {"stdout", "stderr", NULL};
  int mask = 0;
  if (lua_isnoneornil(L, 2)) {
    for (int i = 0; i < 2; i++)
      if (p->out[i].mode == OUT_PIPE) mask |= 1 << i;
    if (!mask) return opsh_error(L, "usage", "neither stdout nor stderr is a pipe (spawn with stdout='pipe')");
  } else {
    int i = luaL_checkoption(L, 2, NULL, opts);
    if (p->out[i].mode != OUT_PIPE)
      return opsh_error(L, "usage", "%s is not a pipe (spawn with %s='pipe')", opts[i], opts[i]);
    mask = 1 << i;
  }
  lua_settop(L, 1);
  if (read_ready(p, mask)) return read_k(L, LUA_OK, mask);
  if (p->reader) return busy(L, p, "read");
  p->reader = opsh_task_check(L, "process:read");
  p->read_mask = mask;
  return opsh_yield(L, cancel_read, p, mask, read_k);
}

typedef struct write_req {
  uv_write_t req;
  proc *p;
  unsigned seq;
  char data[];
} write_req;

static unsigned write_seq;   /* tells the current writer from one that was cancelled */
static unsigned writer_seq;

static void on_written(uv_write_t *req, int status) {
  write_req *w = req->data;
  proc *p = w->p;
  unsigned seq = w->seq;
  free(w);
  if (p->writer && writer_seq == seq) {
    opsh_task *t = p->writer;
    p->writer = NULL;
    p->write_status = status;
    opsh_task_wake(t, 0);
  }
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  proc *p = check_open(L, 1);
  if (p->write_status < 0)
    return opsh_error(L, "proc", "cannot write to the stdin of '%s' (pid %d): %s", p->argv0, p->pid,
                      uv_strerror(p->write_status));
  return 0;
}

static void cancel_write(void *ud) { ((proc *)ud)->writer = NULL; }

/* process:write(data): waits until the pipe took it */
static int proc_write(lua_State *L) {
  proc *p = check_open(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  if (!p->in_open || p->input)
    return opsh_error(L, "usage", "the stdin of '%s' is not an open pipe (spawn with stdin_pipe=true; "
                      "close_stdin() ends it)", p->argv0);
  if (p->writer) return busy(L, p, "write");
  opsh_task *t = opsh_task_check(L, "process:write");
  write_req *w = malloc(sizeof *w + len);
  if (!w) return opsh_error(L, "memory", "out of memory");
  memcpy(w->data, s, len);
  w->p = p;
  w->seq = ++write_seq;
  w->req.data = w;
  int rc = write_all(&w->req, (uv_stream_t *)&p->in, w->data, len, on_written);
  if (rc != 0) {
    free(w);
    return opsh_error(L, "proc", "cannot write to the stdin of '%s' (pid %d): %s", p->argv0, p->pid,
                      uv_strerror(rc));
  }
  p->writer = t;
  p->write_status = 0;
  writer_seq = w->seq;
  lua_settop(L, 1);
  return opsh_yield(L, cancel_write, p, 0, write_k);
}

/* process:close_stdin(): the child reads EOF */
static int proc_close_stdin(lua_State *L) {
  proc *p = check_open(L, 1);
  if (!p->input) close_in(p);
  return 0;
}

const luaL_Reg opsh_proc_io_methods[] = {
  {"_wait", proc_wait},
  {"read", proc_read},
  {"write", proc_write},
  {"close_stdin", proc_close_stdin},
  {NULL, NULL}
};
