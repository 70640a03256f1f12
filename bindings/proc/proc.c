/*
** proc.c — opsh._proc: child processes on libuv (uv_spawn). This part validates the spawn
** options, builds argv/env/stdio, starts the child and gives the process handle its Lua face
** (pid, kill, terminate, close). io.c drives the running child. The public API, with
** run/shell/spawn and their defaults, is lua/opsh/proc.lua.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "proc.h"

extern char **environ;

static const struct { const char *name; int sig; } signals[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ABRT", SIGABRT}, {"KILL", SIGKILL},
  {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
  {"TERM", SIGTERM}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
  {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"WINCH", SIGWINCH}, {"BUS", SIGBUS}, {"FPE", SIGFPE},
  {"ILL", SIGILL}, {"TRAP", SIGTRAP}, {"SYS", SIGSYS}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
  {NULL, 0}
};

const char *opsh_proc_signame(int sig) {
  for (int i = 0; signals[i].name; i++)
    if (signals[i].sig == sig) return signals[i].name;
  return NULL;
}

/* [-0, +0, v] a signal given as a number, "TERM" or "SIGTERM" */
static int check_signal(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, idx);
    luaL_argcheck(L, n > 0 && n < 65, idx, "not a signal number");
    return (int)n;
  }
  const char *s = luaL_checkstring(L, idx);
  if (strncasecmp(s, "SIG", 3) == 0) s += 3;
  for (int i = 0; signals[i].name; i++)
    if (strcasecmp(signals[i].name, s) == 0) return signals[i].sig;
  return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", lua_tostring(L, idx)));
}

/* ---- option checks (phase 1: may raise; nothing is allocated yet) ---- */

#define SPAWN "proc.spawn"

static int opt_bool(lua_State *L, int opts, const char *name) {
  lua_getfield(L, opts, name);
  int b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}

/* [-0, +0, v] argv is a non-empty list of strings; secrets never go there */
static int check_argv(lua_State *L, int opts) {
  if (lua_getfield(L, opts, "argv") != LUA_TTABLE)
    opsh_error(L, "usage", "proc option 'argv' must be a list of strings (the program, then its arguments)");
  lua_Unsigned len = lua_rawlen(L, -1);
  if (len < 1) opsh_error(L, "usage", "proc option 'argv' is empty: give at least the program to run");
  if (len > 1000000) opsh_error(L, "usage", "proc option 'argv' has more than a million arguments");
  int n = (int)len;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (opsh_is_secret(L, -1))
      opsh_error(L, "usage", "argv[%d] is an opsh.secret: secrets never go in argv, where any user "
                 "can read them with ps; pass it in env (or on stdin)", i);
    if (lua_type(L, -1) != LUA_TSTRING)
      opsh_error(L, "usage", "argv[%d] must be a string, not %s", i, luaL_typename(L, -1));
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len) opsh_error(L, "usage", "argv[%d] contains a NUL byte", i);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return n;
}

/* [-0, +0, v] env tables map names to strings or secrets (false removes, in env_add) */
static int check_env(lua_State *L, int opts, const char *field) {
  int t = lua_getfield(L, opts, field);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (t != LUA_TTABLE) opsh_error(L, "usage", "proc option '%s' must be a table of NAME = value", field);
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      opsh_error(L, "usage", "%s keys must be variable names (strings)", field);
    size_t klen;
    const char *k = lua_tolstring(L, -2, &klen);
    if (klen == 0 || strchr(k, '=') || strlen(k) != klen)
      opsh_error(L, "usage", "%s: '%s' is not a valid variable name", field, k);
    int vt = lua_type(L, -1);
    int ok = vt == LUA_TSTRING || opsh_is_secret(L, -1) || (vt == LUA_TBOOLEAN && !lua_toboolean(L, -1));
    if (!ok)
      opsh_error(L, "usage", "%s.%s must be a string or an opsh.secret%s, not %s", field, k,
                 strcmp(field, "env_add") == 0 ? " (or false to unset it)" : "", luaL_typename(L, -1));
    if (vt != LUA_TBOOLEAN) {
      size_t vlen;
      const char *v = opsh_secret_check(L, -1, &vlen);
      if (strlen(v) != vlen) opsh_error(L, "usage", "%s.%s contains a NUL byte", field, k);
    }
    n++;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return n;
}

static int check_mode(lua_State *L, int opts, const char *name, const char *const modes[]) {
  lua_getfield(L, opts, name);
  int m = luaL_checkoption(L, -1, modes[0], modes);
  lua_pop(L, 1);
  return m;
}

/* ---- building the child's environment (phase 2: no Lua errors) ---- */

typedef struct envlist { char **v; int n, cap; } envlist;

static void env_free(envlist *e) {
  if (!e->v) return;
  for (int i = 0; i < e->n; i++) {
    explicit_bzero(e->v[i], strlen(e->v[i]));   /* secret values were copied here */
    free(e->v[i]);
  }
  free(e->v);
  e->v = NULL;
}

static void env_unset(envlist *e, const char *k, size_t klen) {
  for (int i = 0; i < e->n; i++) {
    if (strncmp(e->v[i], k, klen) == 0 && e->v[i][klen] == '=') {
      explicit_bzero(e->v[i], strlen(e->v[i]));
      free(e->v[i]);
      e->v[i] = e->v[--e->n];
      e->v[e->n] = NULL;
      i--;
    }
  }
}

static int env_put(envlist *e, const char *k, size_t klen, const char *v, size_t vlen) {
  env_unset(e, k, klen);
  char *s = malloc(klen + vlen + 2);
  if (!s) return -1;
  memcpy(s, k, klen);
  s[klen] = '=';
  memcpy(s + klen + 1, v, vlen);
  s[klen + vlen + 1] = '\0';
  e->v[e->n++] = s;
  e->v[e->n] = NULL;
  return 0;
}

/* the table at the top of L applied to e; the table stays */
static int env_apply(lua_State *L, envlist *e) {
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t klen, vlen;
    const char *k = lua_tolstring(L, -2, &klen);
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
      env_unset(e, k, klen);
    } else {
      const char *v = opsh_secret_check(L, -1, &vlen);
      if (env_put(e, k, klen, v, vlen) != 0) {
        lua_pop(L, 2);
        return -1;
      }
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* env replaces the environment, env_add edits it (or the current one) */
static int build_env(lua_State *L, int opts, int nenv, int nadd, envlist *e) {
  int has_env = (lua_getfield(L, opts, "env") == LUA_TTABLE);
  lua_pop(L, 1);
  int has_add = (lua_getfield(L, opts, "env_add") == LUA_TTABLE);
  lua_pop(L, 1);
  if (!has_env && !has_add) return 0;
  int base = 0;
  if (!has_env) while (environ[base]) base++;
  e->cap = (has_env ? nenv : base) + nadd + 1;
  e->v = calloc((size_t)e->cap, sizeof *e->v);
  if (!e->v) return -1;
  if (has_env) {
    lua_getfield(L, opts, "env");
    int rc = env_apply(L, e);
    lua_pop(L, 1);
    if (rc) return -1;
  } else {
    for (int i = 0; i < base; i++) {
      if (!(e->v[e->n] = strdup(environ[i]))) return -1;
      e->n++;
    }
  }
  if (has_add) {
    lua_getfield(L, opts, "env_add");
    int rc = env_apply(L, e);
    lua_pop(L, 1);
    if (rc) return -1;
  }
  return 0;
}

/* ---- spawning ---- */

static const char *const in_modes[] = {"null", "inherit", "pipe", NULL};
static const char *const out_modes[] = {"capture", "pipe", "inherit", "null", NULL};
static const char *const err_modes[] = {"capture", "pipe", "inherit", "null", "stdout", NULL};
enum { MODE_CAPTURE, MODE_PIPE, MODE_INHERIT, MODE_NULL, MODE_STDOUT };

typedef struct spawn_fds { int in_file, out[2], child[2]; } spawn_fds;

static void close_fds(spawn_fds *f) {
  int *all[] = {&f->in_file, &f->out[0], &f->out[1], &f->child[0], &f->child[1]};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    if (*all[i] >= 0) {
      close(*all[i]);
      *all[i] = -1;
    }
}

/* [-0, +0, v] after cleaning up: "cannot run 'x': <why>" */
static int spawn_fail(lua_State *L, proc *p, spawn_fds *f, envlist *e, const char *argv0,
                      const char *what, int uverr) {
  close_fds(f);
  env_free(e);
  if (p) opsh_proc_abandon(p);
  opsh_error_push(L, "proc", "cannot run '%s': %s%s", argv0, what ? what : "", uv_strerror(uverr));
  opsh_error_setstr(L, "argv0", argv0);
  return lua_error(L);
}

/* [-0, +0, -] an output: our end of a fresh pipe (capture/pipe), a log file, ours, or nothing */
static int setup_output(int mode, const char *file, int fd, uv_stdio_container_t *c, int *ours, int *child) {
  if (file) {
    int f = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f < 0) return uv_translate_sys_error(errno);
    *child = f;
    c->flags = UV_INHERIT_FD;
    c->data.fd = f;
  } else if (mode == MODE_CAPTURE || mode == MODE_PIPE) {
    int fds[2];
    int rc = uv_pipe(fds, 0, 0);
    if (rc) return rc;
    *ours = fds[0];
    *child = fds[1];
    c->flags = UV_INHERIT_FD;
    c->data.fd = fds[1];
  } else if (mode == MODE_INHERIT) {
    c->flags = UV_INHERIT_FD;
    c->data.fd = fd;
  } else {
    c->flags = UV_IGNORE;   /* libuv gives the child /dev/null */
  }
  return 0;
}

/* spawn{argv=, env=, env_add=, cwd=, input=, stdin=, stdin_file=, stdout=, stdout_file=,
**       stderr=, stderr_file=, max_output=, overflow_kill=, timeout=, kill_grace=, detach=}
** -> process */
static int proc_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  int argc = check_argv(L, 1);
  int nenv = check_env(L, 1, "env"), nadd = check_env(L, 1, "env_add");
  const char *cwd = opsh_opt_string(L, 1, "cwd", NULL, SPAWN);
  const char *in_file = opsh_opt_string(L, 1, "stdin_file", NULL, SPAWN);
  const char *files[2] = {opsh_opt_string(L, 1, "stdout_file", NULL, SPAWN),
                          opsh_opt_string(L, 1, "stderr_file", NULL, SPAWN)};
  size_t input_len = 0;
  const char *input = opsh_opt_secret(L, 1, "input", &input_len, SPAWN);   /* the table keeps it */
  lua_getfield(L, 1, "input");
  int input_secret = opsh_is_secret(L, -1);
  lua_pop(L, 1);
  int in_mode = check_mode(L, 1, "stdin", in_modes);
  int modes[2] = {check_mode(L, 1, "stdout", out_modes), check_mode(L, 1, "stderr", err_modes)};
  uint64_t timeout_ms = opsh_opt_duration(L, 1, "timeout", 0, SPAWN);   /* 0: none */
  uint64_t grace_ms = opsh_opt_duration(L, 1, "kill_grace", 5, SPAWN);
  lua_Number max_output = opsh_opt_number(L, 1, "max_output", 16.0 * 1024 * 1024, SPAWN);
  if (!(max_output >= 0 && max_output <= 4503599627370496.0))   /* 2^52: exact as a size */
    opsh_error(L, "usage", SPAWN ": option 'max_output' must be 0 to 2^52 bytes");
  int detach = opt_bool(L, 1, "detach");
  if (cwd) {
    struct stat st;
    const char *why = stat(cwd, &st) != 0 ? uv_strerror(uv_translate_sys_error(errno))
                      : !S_ISDIR(st.st_mode) ? "not a directory" : NULL;
    if (why) {
      lua_getfield(L, 1, "argv");
      lua_rawgeti(L, -1, 1);
      opsh_error(L, "proc", "cannot run '%s' in '%s': %s", lua_tostring(L, -1), cwd, why);
    }
  }

  /* argv: pointers into the Lua strings, which the options table keeps alive */
  const char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(argc + 1), 0);
  lua_getfield(L, 1, "argv");
  for (int i = 1; i <= argc; i++) {
    lua_rawgeti(L, -1, i);
    argv[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  argv[argc] = NULL;
  lua_pop(L, 1);
  proc_ud *ud = lua_newuserdatauv(L, sizeof *ud, 0);   /* created closed */
  ud->p = NULL;
  luaL_setmetatable(L, PROC_META);

  /* phase 2: resources; every failure goes through spawn_fail */
  spawn_fds f = {-1, {-1, -1}, {-1, -1}};
  envlist env = {NULL, 0, 0};
  uv_loop_t *loop = opsh_loop(L);
  proc *p = opsh_proc_alloc(loop);
  if (!p || !(p->argv0 = strdup(argv[0]))) return spawn_fail(L, p, &f, &env, argv[0], NULL, UV_ENOMEM);
  if (input && !(p->input = malloc(input_len ? input_len : 1)))
    return spawn_fail(L, p, &f, &env, argv[0], NULL, UV_ENOMEM);
  if (input) memcpy(p->input, input, input_len);
  p->input_len = input_len;
  p->input_secret = input_secret;
  if (!detach && opsh_proc_track_reserve() != 0) return spawn_fail(L, p, &f, &env, argv[0], NULL, UV_ENOMEM);
  if (build_env(L, 1, nenv, nadd, &env) != 0) return spawn_fail(L, p, &f, &env, argv[0], NULL, UV_ENOMEM);

  uv_stdio_container_t stdio[3];
  memset(stdio, 0, sizeof stdio);
  int rc;
  if (in_file) {
    f.in_file = open(in_file, O_RDONLY | O_CLOEXEC);
    if (f.in_file < 0) {
      rc = uv_translate_sys_error(errno);
      lua_pushfstring(L, "stdin_file '%s': ", in_file);
      return spawn_fail(L, p, &f, &env, argv[0], lua_tostring(L, -1), rc);
    }
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = f.in_file;
  } else if (input || in_mode == 2) {
    uv_pipe_init(loop, &p->in, 0);
    p->in.data = p;
    p->handles++;
    p->in_open = 1;
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&p->in;
  } else if (in_mode == 1) {
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = 0;
  } else {
    stdio[0].flags = UV_IGNORE;
  }
  for (int i = 0; i < 2; i++) {
    if (i == 1 && modes[1] == MODE_STDOUT && !files[1]) {
      stdio[2] = stdio[1];
      continue;
    }
    rc = setup_output(modes[i], files[i], i + 1, &stdio[i + 1], &f.out[i], &f.child[i]);
    if (rc) {
      lua_pushfstring(L, "%s '%s': ", i ? "stderr_file" : "stdout_file", files[i] ? files[i] : "");
      return spawn_fail(L, p, &f, &env, argv[0], files[i] ? lua_tostring(L, -1) : NULL, rc);
    }
    if (f.out[i] >= 0) p->out[i].mode = modes[i] == MODE_CAPTURE ? OUT_CAPTURE : OUT_PIPE;
  }

  p->max_output = (size_t)max_output;
  p->grace_ms = grace_ms;
  p->detached = detach;
  p->overflow_kill = opt_bool(L, 1, "overflow_kill");
  uv_process_options_t o;
  memset(&o, 0, sizeof o);
  o.exit_cb = opsh_proc_on_exit;
  o.file = argv[0];
  o.args = (char **)argv;
  o.env = env.v;
  o.cwd = cwd;
  o.stdio = stdio;
  o.stdio_count = 3;
  o.flags = detach ? UV_PROCESS_DETACHED : 0;
  p->started = uv_hrtime();
  p->handles++;   /* uv_spawn initialises the process handle even when it fails */
  p->spawn_called = 1;
  rc = uv_spawn(loop, &p->handle, &o);
  p->handle.data = p;
  if (rc) return spawn_fail(L, p, &f, &env, argv[0], NULL, rc);
  env_free(&env);
  p->pid = p->handle.pid;
  if (!detach) opsh_proc_track(p->pid, p->grace_ms);
  /* the child has its ends: close ours of them */
  int child_fds[] = {f.in_file, f.child[0], f.child[1]};
  for (int i = 0; i < 3; i++)
    if (child_fds[i] >= 0) close(child_fds[i]);
  ud->p = p;
  for (int i = 0; i < 2; i++)
    if (f.out[i] >= 0) opsh_proc_start_stream(p, i, f.out[i]);
  opsh_proc_start_input(p);
  if (timeout_ms > 0) opsh_proc_arm_timeout(p, timeout_ms);
  if (detach) uv_unref((uv_handle_t *)&p->handle);
  else opsh_task_hold(L, -1);
  return 1;
}

/* ---- the handle ---- */

static proc_ud *check_ud(lua_State *L) { return luaL_checkudata(L, 1, PROC_META); }

static proc *check_open(lua_State *L) {
  proc_ud *ud = check_ud(L);
  if (!ud->p) opsh_error(L, "proc", "the process handle is closed");
  return ud->p;
}

static int proc_pid(lua_State *L) {
  lua_pushinteger(L, check_open(L)->pid);
  return 1;
}

/* process:kill([signal]) -> true, or false when the child had already exited */
static int proc_kill(lua_State *L) {
  proc *p = check_open(L);
  int sig = lua_isnoneornil(L, 2) ? SIGTERM : check_signal(L, 2);
  if (p->exited) {
    lua_pushboolean(L, 0);
    return 1;
  }
  int rc = uv_process_kill(&p->handle, sig);
  if (rc == UV_ESRCH) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc) return opsh_error(L, "proc", "cannot signal '%s' (pid %d): %s", p->argv0, p->pid, uv_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* process:_terminate([grace]): TERM now, KILL after the grace unless it exits; the output pipes
** close once it is gone (already gone: now), whoever else holds them */
static int proc_terminate(lua_State *L) {
  proc *p = check_open(L);
  if (!lua_isnoneornil(L, 2)) p->grace_ms = opsh_checkduration(L, 2, "process:terminate");
  if (p->exited) opsh_proc_finish_streams(p);
  else opsh_proc_escalate(p);
  return 0;
}

static int proc_argv0(lua_State *L) {
  lua_pushstring(L, check_open(L)->argv0);
  return 1;
}

/* process:_pipe("stdout"|"stderr") -> whether that stream can be read */
static int proc_is_pipe(lua_State *L) {
  static const char *const names[] = {"stdout", "stderr", NULL};
  proc *p = check_open(L);
  lua_pushboolean(L, p->out[luaL_checkoption(L, 2, NULL, names)].mode == OUT_PIPE);
  return 1;
}

static int proc_running(lua_State *L) {
  proc_ud *ud = check_ud(L);
  lua_pushboolean(L, ud->p && !ud->p->exited);
  return 1;
}

/* __close, __gc, close(): idempotent */
static int proc_close(lua_State *L) {
  proc_ud *ud = check_ud(L);
  if (ud->p) {
    proc *p = ud->p;
    ud->p = NULL;
    opsh_proc_release(L, p);
  }
  return 0;
}

static int proc_tostring(lua_State *L) {
  proc_ud *ud = check_ud(L);
  proc *p = ud->p;
  if (!p) lua_pushliteral(L, "process (closed)");
  else if (!p->exited) lua_pushfstring(L, "process %d '%s' (running)", p->pid, p->argv0);
  else if (p->term_signal) lua_pushfstring(L, "process %d '%s' (killed by SIG%s)", p->pid, p->argv0,
                                           opsh_proc_signame(p->term_signal) ? opsh_proc_signame(p->term_signal) : "?");
  else lua_pushfstring(L, "process %d '%s' (exited %d)", p->pid, p->argv0, (int)p->exit_status);
  return 1;
}

/* signame(n) -> "TERM" | nil */
static int proc_signame(lua_State *L) {
  lua_Integer sig = luaL_checkinteger(L, 1);
  const char *n = sig > 0 && sig < 65 ? opsh_proc_signame((int)sig) : NULL;
  if (!n) return 0;
  lua_pushstring(L, n);
  return 1;
}

/* signal_pid(pid, [signal]) -> true | false, reason: for processes opsh did not spawn in this run
** (the twin's daemons, found by pid in its state); signal 0 asks whether the pid exists */
static int proc_signal_pid(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  luaL_argcheck(L, pid > 0, 1, "not a process id");
  int sig = lua_isnoneornil(L, 2) ? SIGTERM
          : (lua_type(L, 2) == LUA_TNUMBER && lua_tointeger(L, 2) == 0) ? 0 : check_signal(L, 2);
  if (kill((pid_t)pid, sig) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, strerror(errno));
  return 2;
}

static const luaL_Reg process_methods[] = {
  {"pid", proc_pid},
  {"kill", proc_kill},
  {"_terminate", proc_terminate},
  {"running", proc_running},
  {"_argv0", proc_argv0},
  {"_pipe", proc_is_pipe},
  {"close", proc_close},
  {NULL, NULL}
};

static const luaL_Reg process_meta[] = {
  {"__gc", proc_close},
  {"__close", proc_close},
  {"__tostring", proc_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg proc_funcs[] = {
  {"spawn", proc_spawn},
  {"signame", proc_signame},
  {"signal_pid", proc_signal_pid},
  {NULL, NULL}
};

int luaopen_opsh_proc(lua_State *L) {
  opsh_proc_at_exit_init();
  luaL_newlib(L, proc_funcs);
  if (luaL_newmetatable(L, PROC_META)) {
    luaL_setfuncs(L, process_meta, 0);
    luaL_newlib(L, process_methods);
    luaL_setfuncs(L, opsh_proc_io_methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "process_methods");   /* the Lua layer adds wait, lines, stop */
  lua_pop(L, 1);
  return 1;
}
