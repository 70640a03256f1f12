/*
** repl.c — opsh._repl, the REPL's terminal side: libedit (loaded on first require, edit.h) through its
** readline-compatible callback interface, fed by a uv_poll on stdin, so the loop (and every background task)
** keeps running while the prompt waits; the task asking for a line is suspended until libedit
** delivers it. Also: Ctrl-C at the prompt, redrawing the prompt around output of background
** tasks, and tab completion through a Lua function. The history file is history.c's.
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
#include "edit.h"
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
  int kind;              /* what the waiter gets (readline_k): 1 line, 0 end of input, -1 Ctrl-C */
  char *line;            /* the edited line, until readline_k pushes it */
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

/* a complete line (or the end of input) is buffered */
static int plain_has_line(void) {
  return S.eof || (S.len && memchr(S.buf, '\n', S.len));
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

/* hand the waiting task its result (kept here: the wake rule, opsh.h): kind 1 the line
** (owned from now on), 0 end of input, -1 Ctrl-C at the prompt */
static void deliver(int kind, char *line) {
  opsh_task *t = S.waiter;
  if (!t) {
    free(line);
    return;
  }
  stop_reading();
  free(S.line);
  S.kind = kind;
  S.line = line;
  opsh_task_ready(t);
}

static void on_line(char *line) {
  S.visible = 0;
  if (line) {
    deliver(1, line);
  } else {
    fputs("\n", stdout);   /* Ctrl-D: end the prompt's line */
    fflush(stdout);
    deliver(0, NULL);
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
    if (plain_has_line()) deliver(1, NULL);   /* readline_k takes it from the buffer */
    return;
  }
  int avail = 0;
  if (status < 0 || (events & UV_DISCONNECT) || ioctl(0, FIONREAD, &avail) < 0 || avail == 0) {
    /* readable with nothing to read: the terminal hung up */
    deliver(0, NULL);
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
  deliver(-1, NULL);
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
  free(S.line);
  S.line = NULL;
  if (was_visible) {
    fputs("\n", stdout);
    fflush(stdout);
  }
}

static int push_line(lua_State *L) {
  lua_pushstring(L, lua_touserdata(L, 1));
  return 1;
}

static int readline_k(lua_State *L, int status, lua_KContext ctx) {
  char *line = S.line;
  S.line = NULL;
  if (S.kind < 0) lua_pushboolean(L, 0);
  else if (S.kind == 0) lua_pushnil(L);
  else if (!line) {   /* plain mode: the line is in the buffer */
    if (!plain_take(L)) lua_pushnil(L);
  } else {
    lua_pushcfunction(L, push_line);
    lua_pushlightuserdata(L, line);
    int st = lua_pcall(L, 1, 1, 0);   /* the line is freed even if this fails */
    free(line);
    if (st != LUA_OK) return lua_error(L);
  }
  return 1;
}

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
/* [-3, +1, e] the completer's answer for (text, line, length of the line before the word) */
static int call_completer(lua_State *L) {
  const char *text = lua_touserdata(L, 1);
  const char *line = lua_touserdata(L, 2);
  size_t len = (size_t)lua_tointeger(L, 3);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S.completer);
  lua_pushstring(L, text);
  lua_pushlstring(L, line, len);
  lua_call(L, 2, 1);
  return 1;
}

/* called by libedit from the loop's stdin callback: everything that allocates runs protected */
static char **complete(const char *text, int start, int end) {
  rl_attempted_completion_over = 1;   /* never fall back to file names */
  if (S.completer == LUA_NOREF) return NULL;
  lua_State *L = opsh_rt->L;
  int top = lua_gettop(L);
  char **matches = NULL;
  lua_pushcfunction(L, call_completer);
  lua_pushlightuserdata(L, (void *)text);
  lua_pushlightuserdata(L, (void *)(rl_line_buffer ? rl_line_buffer : ""));
  lua_pushinteger(L, rl_line_buffer ? start : 0);
  if (lua_pcall(L, 3, 1, 0) != LUA_OK || !lua_istable(L, -1)) goto out;
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
  {"history_load", opsh_history_load},
  {"history_append", opsh_history_append},
  {"close", repl_close},
  {NULL, NULL}
};

int luaopen_opsh_repl(lua_State *L) {
  opsh_edit_load(L);
  luaL_newlib(L, repl_funcs);
  return 1;
}
