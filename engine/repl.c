/*
** repl.c — opsh._repl, the REPL's terminal side: libedit through its readline-compatible
** callback interface, fed by a uv_poll on stdin, so the loop (and every background task)
** keeps running while the prompt waits; the task asking for a line is suspended until libedit
** delivers it. Also: Ctrl-C at the prompt, redrawing the prompt around output of background
** tasks, tab completion through a Lua function, and the private history file.
** Without a terminal, lines are read from stdin as they are (no editing, no prompt).
** libedit keeps global state, so there is one REPL per process.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <editline/readline.h>
#include "runtime.h"

static struct {
  uv_loop_t *loop;       /* the loop the handles below belong to */
  int editing;           /* libedit on a terminal; otherwise plain reads */
  int editor_ready;      /* rl_initialize done */
  int installed;         /* a callback handler is installed */
  uv_poll_t poll;        /* stdin readable */
  int pollable;          /* stdin can be polled (a regular file cannot, and never blocks) */
  uv_prepare_t redraw;   /* after tasks ran under the prompt: draw it again */
  uv_signal_t winch, cont;
  opsh_task *waiter;     /* the task suspended in readline() */
  int visible;           /* the prompt is on screen */
  int erased;            /* ...but was erased so that tasks could print */
  size_t prompt_width;
  int completer;         /* registry reference of the Lua completion function */
  char *buf;             /* plain mode: bytes read but not yet returned */
  size_t len, cap;
  int eof;
} S = { .completer = LUA_NOREF };

/* ---- plain mode (stdin is not a terminal) ---- */

static void plain_fill(void) {
  if (S.cap - S.len < 4096) {
    size_t cap = S.cap ? S.cap * 2 : 8192;
    char *b = realloc(S.buf, cap);
    if (!b) { S.eof = 1; return; }
    S.buf = b;
    S.cap = cap;
  }
  ssize_t n = read(0, S.buf + S.len, S.cap - S.len);
  if (n > 0) S.len += (size_t)n;
  else if (n == 0 || (errno != EINTR && errno != EAGAIN)) S.eof = 1;
}

/* [-0, +(0|1), m] push the next complete line (or nil at the end) onto L; 0 if none yet */
static int plain_take(lua_State *L) {
  char *nl = S.len ? memchr(S.buf, '\n', S.len) : NULL;
  if (!nl && !S.eof) return 0;
  if (!nl && S.len == 0) {
    lua_pushnil(L);
    return 1;
  }
  size_t n = nl ? (size_t)(nl - S.buf) : S.len;
  size_t used = nl ? n + 1 : n;
  if (n > 0 && S.buf[n - 1] == '\r') n--;
  lua_pushlstring(L, S.buf, n);
  memmove(S.buf, S.buf + used, S.len - used);
  S.len -= used;
  return 1;
}

/* ---- the editor ---- */

static char **complete(const char *text, int start, int end);

static void editor_init(void) {
  if (S.editor_ready) return;
  rl_catch_signals = 0;      /* SIGINT belongs to the scheduler; SIGWINCH/SIGCONT are ours */
  rl_catch_sigwinch = 0;
  rl_readline_name = "opsh";
  rl_instream = stdin;
  rl_outstream = stdout;
  /* '.' and ':' are not word breaks, so `opsh.sp` and `s:up` complete as one path */
  rl_basic_word_break_characters = " \t\n\"'`@$><=;|&{}()[],+-*/%^#~";
  rl_completion_append_character = '\0';
  rl_attempted_completion_function = complete;
  rl_completion_query_items = 200;
  rl_initialize();
  S.editor_ready = 1;
}

static void stop_reading(void) {
  S.waiter = NULL;
  uv_poll_stop(&S.poll);
  uv_prepare_stop(&S.redraw);
  opsh_rt->prompt_interrupt = NULL;
  opsh_rt->before_turn = NULL;
  if (S.installed) {
    rl_callback_handler_remove();   /* leaves the terminal in its normal (cooked) mode */
    S.installed = 0;
  }
  S.visible = S.erased = 0;
}

/* hand the waiting task its result: kind 1 a line, 0 end of input, -1 Ctrl-C at the prompt */
static void deliver(int kind, const char *line, size_t len) {
  opsh_task *t = S.waiter;
  if (!t) return;
  stop_reading();
  lua_State *co = opsh_task_thread(t);
  if (kind > 0) lua_pushlstring(co, line, len);
  else if (kind == 0) lua_pushnil(co);
  else lua_pushboolean(co, 0);
  opsh_task_wake(t, 1);
}

static void on_line(char *line) {
  S.visible = 0;
  if (line) {
    deliver(1, line, strlen(line));
    free(line);
  } else {
    fputs("\n", stdout);   /* Ctrl-D: end the prompt's line */
    fflush(stdout);
    deliver(0, NULL, 0);
  }
}

static void on_prompt_interrupt(void);

static void on_readable(uv_poll_t *h, int status, int events) {
  if (!S.waiter) return;
  if (opsh_rt->prompt_interrupted) {
    /* a Ctrl-C typed before these keys, its async callback not run yet: it goes first */
    opsh_rt->prompt_interrupted = 0;
    on_prompt_interrupt();
    return;
  }
  if (!S.editing) {
    if (status == 0) plain_fill(); else S.eof = 1;
    lua_State *co = opsh_task_thread(S.waiter);
    if (plain_take(co)) {
      opsh_task *t = S.waiter;
      stop_reading();
      opsh_task_wake(t, 1);
    }
    return;
  }
  int avail = 0;
  if (status < 0 || (events & UV_DISCONNECT) || ioctl(0, FIONREAD, &avail) < 0 || avail == 0) {
    /* readable with nothing to read: the terminal hung up */
    deliver(0, NULL, 0);
    return;
  }
  rl_callback_read_char();
}

/* Ctrl-C while the prompt waits (from the scheduler's interrupt handler, on the loop) */
static void on_prompt_interrupt(void) {
  if (!S.waiter) return;
  if (S.editing) {
    fputs("^C\n", stdout);
    fflush(stdout);
  }
  deliver(-1, NULL, 0);
}

/* before tasks run under the prompt: erase it, so that what they print starts on a clean line */
static void erase_prompt(void) {
  if (!S.visible || S.erased) return;
  int cols = 0;
  rl_get_screen_size(NULL, &cols);
  size_t pos = S.prompt_width + (size_t)(rl_point > 0 ? rl_point : 0);
  size_t up = cols > 0 ? pos / (size_t)cols : 0;
  fflush(stdout);
  if (up > 0) fprintf(stdout, "\r\033[%zuA\033[J", up);
  else fputs("\r\033[J", stdout);
  fflush(stdout);
  S.erased = 1;
}

static void on_redraw(uv_prepare_t *h) {
  if (!S.visible || !S.erased) return;
  S.erased = 0;
  fflush(stdout);
  fflush(stderr);
  rl_forced_update_display();
}

static void on_winch(uv_signal_t *h, int signum) {
  if (S.editor_ready) rl_resize_terminal();
}

/* back from Ctrl-Z: the shell may have changed the terminal modes under us */
static void on_cont(uv_signal_t *h, int signum) {
  if (!S.visible) return;
  rl_deprep_terminal();
  rl_prep_terminal(0);
  rl_forced_update_display();
}

/* [-0, +0, -] the loop handles, once per loop; stdin stays in blocking mode */
static void start_handles(lua_State *L) {
  uv_loop_t *loop = opsh_loop(L);
  if (S.loop == loop) return;
  S.loop = loop;
  S.editing = isatty(0) && isatty(1);
  int flags = fcntl(0, F_GETFL);
  S.pollable = uv_poll_init(loop, &S.poll, 0) == 0;
  if (flags != -1) fcntl(0, F_SETFL, flags);   /* uv_poll_init made it non-blocking */
  if (!S.pollable) memset(&S.poll, 0, sizeof S.poll);
  uv_prepare_init(loop, &S.redraw);
  uv_unref((uv_handle_t *)&S.redraw);
  uv_signal_init(loop, &S.winch);
  uv_signal_init(loop, &S.cont);
}

static void readline_cancel(void *ud) {
  int was_visible = S.visible;
  stop_reading();
  if (was_visible) {
    fputs("\n", stdout);
    fflush(stdout);
  }
}

static int readline_k(lua_State *L, int status, lua_KContext ctx) { return 1; }

/* the width of the prompt on screen: UTF-8 characters outside escape sequences */
static size_t prompt_width(const char *p) {
  size_t w = 0;
  for (; *p; p++) {
    if (*p == '\033') {
      while (p[1] && !((p[1] >= 'A' && p[1] <= 'Z') || (p[1] >= 'a' && p[1] <= 'z'))) p++;
      if (p[1]) p++;
    } else if (*p == RL_PROMPT_START_IGNORE || *p == RL_PROMPT_END_IGNORE) {
      continue;
    } else if (((unsigned char)*p & 0xC0) != 0x80) {
      w++;
    }
  }
  return w;
}

/* readline([prompt]) -> line | nil at the end of input | false after Ctrl-C at the prompt */
static int repl_readline(lua_State *L) {
  const char *prompt = luaL_optstring(L, 1, "> ");
  opsh_task *t = opsh_task_check(L, "repl.readline");
  if (S.waiter) return opsh_error(L, "usage", "the REPL is already waiting for a line");
  start_handles(L);
  opsh_rt->interrupts = 0;   /* back at the prompt: the previous line's Ctrl-C is spent */
  if (!S.editing) {
    if (plain_take(L)) return 1;
    if (!S.pollable) {
      while (!plain_take(L)) plain_fill();
      return 1;
    }
  } else {
    editor_init();
    if (!uv_is_active((uv_handle_t *)&S.winch)) {
      uv_signal_start(&S.winch, on_winch, SIGWINCH);
      uv_signal_start(&S.cont, on_cont, SIGCONT);
      uv_unref((uv_handle_t *)&S.winch);
      uv_unref((uv_handle_t *)&S.cont);
    }
    rl_callback_handler_install(prompt, on_line);   /* draws the prompt */
    S.installed = S.visible = 1;
    S.erased = 0;
    S.prompt_width = prompt_width(prompt);
    uv_prepare_start(&S.redraw, on_redraw);
    opsh_rt->before_turn = erase_prompt;
  }
  S.waiter = t;
  if (S.pollable) uv_poll_start(&S.poll, UV_READABLE | UV_DISCONNECT, on_readable);
  opsh_rt->prompt_interrupt = on_prompt_interrupt;
  lua_settop(L, 0);
  return opsh_yield(L, readline_cancel, NULL, 0, readline_k);
}

/* editing() -> true when lines are edited with libedit (stdin and stdout are terminals) */
static int repl_editing(lua_State *L) {
  start_handles(L);
  lua_pushboolean(L, S.editing);
  return 1;
}

/* ---- completion ---- */

/* libedit asks for the words completing `text`; the Lua completer answers with a list */
static char **complete(const char *text, int start, int end) {
  rl_attempted_completion_over = 1;   /* never fall back to file names */
  if (S.completer == LUA_NOREF) return NULL;
  lua_State *L = opsh_rt->L;
  int top = lua_gettop(L);
  char **matches = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S.completer);
  lua_pushstring(L, text);
  lua_pushlstring(L, rl_line_buffer ? rl_line_buffer : "", rl_line_buffer ? (size_t)start : 0);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_istable(L, -1)) goto out;
  size_t n = lua_rawlen(L, -1);
  if (n == 0) goto out;
  matches = calloc(n + 2, sizeof *matches);
  if (!matches) goto out;
  size_t k = 0, common = 0;
  for (size_t i = 1; i <= n; i++) {
    if (lua_rawgeti(L, -1, (lua_Integer)i) == LUA_TSTRING) {
      const char *s = lua_tostring(L, -1);
      char *dup = strdup(s);
      if (dup) {
        if (k == 0) common = strlen(dup);
        else {
          size_t j = 0;
          while (j < common && matches[1][j] == dup[j]) j++;
          common = j;
        }
        matches[++k] = dup;
      }
    }
    lua_pop(L, 1);
  }
  if (k == 0) {
    free(matches);
    matches = NULL;
    goto out;
  }
  matches[0] = strndup(matches[1], common);
  if (!matches[0]) {
    for (size_t i = 1; i <= k; i++) free(matches[i]);
    free(matches);
    matches = NULL;
  }
out:
  lua_settop(L, top);
  return matches;
}

/* set_completer(fn): fn(word, line_before_word) -> {completions...} */
static int repl_set_completer(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, S.completer);
  S.completer = LUA_NOREF;
  if (!lua_isnoneornil(L, 1)) {
    lua_settop(L, 1);
    S.completer = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

/* ---- history ---- */

/* history_add(entry): the in-memory history (up arrow); the file is history_append's */
static int repl_history_add(lua_State *L) {
  const char *line = luaL_checkstring(L, 1);
  start_handles(L);
  if (S.editing) {
    editor_init();
    add_history(line);
  }
  return 0;
}

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

/* [-0, +0, m] one history entry as one line: \ and newlines escaped */
static void add_escaped(luaL_Buffer *b, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '\\') luaL_addstring(b, "\\\\");
    else if (s[i] == '\n') luaL_addstring(b, "\\n");
    else if (s[i] == '\r') luaL_addstring(b, "\\r");
    else luaL_addchar(b, s[i]);
  }
}

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

static int fail_errno(lua_State *L, const char *what, const char *path, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
  return 2;
}

/* rewrite the history file with the entries in the list at idx (a private temporary, renamed) */
static int compact(lua_State *L, const char *path, int idx) {
  lua_pushfstring(L, "%s.XXXXXX", path);
  char *tmp = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  if (!tmp) return ENOMEM;
  int fd = mkstemp(tmp);   /* mode 0600 */
  if (fd < 0) {
    int err = errno;
    free(tmp);
    return err;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t n = lua_rawlen(L, idx);
  for (size_t i = 1; i <= n; i++) {
    size_t len;
    lua_rawgeti(L, idx, (lua_Integer)i);
    const char *s = lua_tolstring(L, -1, &len);
    lua_pop(L, 1);   /* still referenced by the list */
    add_escaped(&b, s, len);
    luaL_addchar(&b, '\n');
  }
  luaL_pushresult(&b);
  size_t len;
  const char *data = lua_tolstring(L, -1, &len);
  int err = 0;
  if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) err = errno ? errno : EIO;
  lua_pop(L, 1);
  close(fd);
  if (!err && rename(tmp, path) != 0) err = errno;
  if (err) unlink(tmp);
  free(tmp);
  return err;
}

/* history_load(path, max) -> {entries} | nil, err
** Creates the directories (0700) and the file (0600; a wider mode is narrowed), returns the
** last `max` entries, and compacts the file once it holds more than twice that many. */
static int repl_history_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max > 0, 2, "must be positive");
  int err = make_parents(path);
  if (err) return fail_errno(L, "cannot create the directory of", path, err);
  int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail_errno(L, "cannot open", path, errno);
  struct stat st;
  if (fstat(fd, &st) == 0 && (st.st_mode & 077)) fchmod(fd, st.st_mode & 0700);
  FILE *f = fdopen(fd, "r");
  if (!f) {
    err = errno;
    close(fd);
    return fail_errno(L, "cannot read", path, err);
  }
  /* a ring of the last max entries */
  lua_createtable(L, (int)(max < 1024 ? max : 1024), 0);
  int ring = lua_gettop(L);
  lua_Integer total = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) >= 0) {
    if (n > 0 && line[n - 1] == '\n') n--;
    if (n == 0) continue;
    push_unescaped(L, line, (size_t)n);
    lua_rawseti(L, ring, total % max + 1);
    total++;
  }
  free(line);
  fclose(f);
  /* in order, oldest first */
  lua_Integer kept = total < max ? total : max;
  lua_createtable(L, (int)kept, 0);
  for (lua_Integer i = 0; i < kept; i++) {
    lua_rawgeti(L, ring, (total - kept + i) % max + 1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_remove(L, ring);
  if (total > 2 * max) compact(L, path, lua_gettop(L));   /* best effort: the entries are loaded */
  return 1;
}

/* history_append(path, entry) -> true | nil, err: one line appended with one write */
static int repl_history_append(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *entry = luaL_checklstring(L, 2, &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  add_escaped(&b, entry, len);
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t n;
  const char *data = lua_tolstring(L, -1, &n);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail_errno(L, "cannot open", path, errno);
  ssize_t w = write(fd, data, n);
  int err = errno;
  close(fd);
  if (w != (ssize_t)n) return fail_errno(L, "cannot write", path, w < 0 ? err : EIO);
  lua_pushboolean(L, 1);
  return 1;
}

/* close(): the REPL ends; the terminal is back in its normal mode */
static int repl_close(lua_State *L) {
  if (S.waiter) stop_reading();
  luaL_unref(L, LUA_REGISTRYINDEX, S.completer);
  S.completer = LUA_NOREF;
  if (S.loop) {
    uv_signal_stop(&S.winch);
    uv_signal_stop(&S.cont);
  }
  free(S.buf);
  S.buf = NULL;
  S.len = S.cap = 0;
  S.eof = 0;
  fflush(stdout);
  return 0;
}

static const luaL_Reg repl_funcs[] = {
  {"readline", repl_readline},
  {"editing", repl_editing},
  {"set_completer", repl_set_completer},
  {"history_add", repl_history_add},
  {"history_load", repl_history_load},
  {"history_append", repl_history_append},
  {"close", repl_close},
  {NULL, NULL}
};

int luaopen_opsh_repl(lua_State *L) {
  luaL_newlib(L, repl_funcs);
  return 1;
}
