/*
** loop.c — the loop's life around the tasks (sched.c): setup, running until a task ends,
** the shutdown that lets cleanups finish, and signals (SIGINT cancels the foreground task,
** SIGTERM and SIGHUP the whole run).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tasks.h"

#define DEFAULT_CLEANUP_MS 5000
#define HOLD_LIMIT_MS 5000   /* at shutdown, how long to wait for released holds */

/* ---- running until a task ends, and shutting down ---- */

static void deadlock_op(lua_State *L, opsh_task *t) {
  opsh_sched_push_task(L, t);
  if (t->in_yield && t->cancel) {
    opsh_cancel_fn cancel = t->cancel;
    t->cancel = NULL;
    cancel(t->cancel_ud);
  }
  lua_resetthread(t->co);
  opsh_error_push(L, "deadlock", "every task is waiting and nothing can wake them "
                  "(a mutex never unlocked, or a wait on a task that waits back)");
  opsh_sched_finish(L, t, OPSH_TASK_FAILED);
  lua_pop(L, 1);
}

void opsh_sched_run_until(lua_State *L, int idx) {
  opsh_runtime *R = opsh_rt;
  opsh_task *t = opsh_task_checkud(L, idx);
  while (!opsh_task_finished(t)) {
    int alive = uv_run(&R->loop, UV_RUN_ONCE);
    if (!alive && !opsh_task_finished(t) && !R->ready_head && !opsh_sched_protected(L, deadlock_op, t)) {
      fflush(NULL);   /* nothing can ever run again, not even to report it */
      _exit(70);
    }
  }
}

static void cancel_all_op(lua_State *L, opsh_task *t) { opsh_cancel_all(L); }
static void hard_cancel_op(lua_State *L, opsh_task *t) { opsh_sched_hard_cancel(L, t); }
static void on_drain_timer(uv_timer_t *h) {}

int opsh_sched_drain(lua_State *L) {
  opsh_runtime *R = opsh_rt;
  R->draining = 1;
  uv_timer_t tick;   /* wakes the loop while holds are waited for */
  uv_timer_init(&R->loop, &tick);
  uint64_t idle_since = 0;
  int settled = 0;
  for (;;) {
    opsh_sched_protected(L, cancel_all_op, NULL);
    if (!R->live && R->holds <= 0) {
      settled = 1;
      break;
    }
    if (!R->live) {
      if (!idle_since) {
        idle_since = opsh_sched_now();
        uv_timer_start(&tick, on_drain_timer, 50, 50);
      }
      if (opsh_sched_now() - idle_since > HOLD_LIMIT_MS) break;
    }
    int alive = uv_run(&R->loop, UV_RUN_ONCE);
    if (!alive && R->live && !R->ready_head) {
      /* cancelled tasks waiting for what can never come, with no deadline to cut them off */
      while (R->live) opsh_sched_protected(L, hard_cancel_op, R->live);
    }
  }
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&R->loop, UV_RUN_NOWAIT);
  if (!settled) fprintf(stderr, "opsh: exiting with I/O still in progress\n");
  return settled;
}

void opsh_hold_state(lua_State *L) { opsh_rt->holds++; }
void opsh_release_state(lua_State *L) { opsh_rt->holds--; }

/* ---- signals: SIGINT cancels the foreground task, SIGTERM and SIGHUP the whole run ---- */

/* a running task gets its interruption from this hook: a busy loop never waits */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  lua_sethook(L, NULL, 0, 0);
  opsh_task *t = task_current_of(L);
  if (!t) {
    opsh_error(L, "interrupted", "interrupted");
    return;
  }
  opsh_sched_request_cancel(L, t, OPSH_CANCEL_INTERRUPTED);
  if (t->shield || t->unwinding) return;   /* shielded: raised when the shield ends */
  opsh_sched_raise(L, t, INJECT_CANCEL);
}

static void on_signal(int sig) {
  opsh_runtime *R = opsh_rt;
  if (!R || R->draining) {
    static const char msg[] = "\nopsh: signal during shutdown, exiting at once\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(128 + sig);
  }
  if (sig == SIGINT && R->prompt_interrupt && !R->running) {
    R->prompt_interrupted = 1;
    uv_async_send(&R->interrupt);
    return;
  }
  R->interrupts++;
  if (R->interrupts >= 2) {
    static const char msg[] = "\nopsh: interrupted twice, exiting\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(128 + (R->terminate ? (int)R->terminate : sig));
  }
  R->signal = sig;
  R->signalled = 1;
  if (sig != SIGINT) R->terminate = sig;
  if (R->running && R->running->co)
    lua_sethook(R->running->co, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  uv_async_send(&R->interrupt);
}

static void interrupt_op(lua_State *L, opsh_task *unused) {
  opsh_runtime *R = opsh_rt;
  opsh_task *fg = R->foreground, *root = R->root;
  if (fg && !opsh_task_finished(fg)) opsh_task_cancel(L, fg, "interrupted");
  if (!R->terminate || !root || opsh_task_finished(root)) return;
  /* the whole run ends: the root task (the CLI, the REPL) too, but once the foreground task it
  ** waits for has run its cleanups, so that it reports and ends in order: its next wait raises */
  if (!fg || fg == root || opsh_task_finished(fg)) opsh_task_cancel(L, root, "interrupted");
  else opsh_sched_request_cancel(L, root, OPSH_CANCEL_INTERRUPTED);
}

static void on_interrupt(uv_async_t *h) {
  opsh_runtime *R = opsh_rt;
  if (R->prompt_interrupted) {
    R->prompt_interrupted = 0;
    if (R->prompt_interrupt) R->prompt_interrupt();
  }
  if (R->signalled) {
    R->signalled = 0;
    opsh_sched_protected(R->L, interrupt_op, NULL);
  }
}

/* ---- setup ---- */

static uint64_t cleanup_from_env(void) {
  const char *s = getenv("OPSH_CLEANUP_TIMEOUT");
  if (!s || !*s) return DEFAULT_CLEANUP_MS;
  char *end;
  double v = strtod(s, &end);
  if (*end || !(v >= 0)) {
    fprintf(stderr, "opsh: ignoring OPSH_CLEANUP_TIMEOUT=%s (seconds expected)\n", s);
    return DEFAULT_CLEANUP_MS;
  }
  if (v == HUGE_VAL) return OPSH_FOREVER;
  if (v > OPSH_DURATION_MAX) return OPSH_FOREVER;
  return (uint64_t)(v * 1000.0 + 0.5);
}

void opsh_sched_init(lua_State *L) {
  opsh_runtime *R = calloc(1, sizeof *R);
  if (!R) {
    fprintf(stderr, "opsh: out of memory\n");
    exit(1);
  }
  opsh_rt = R;
  R->L = L;
  R->cleanup_ms = cleanup_from_env();
  task_current_of(L) = NULL;
  uv_loop_init(&R->loop);
  uv_idle_init(&R->loop, &R->idle);
  uv_async_init(&R->loop, &R->interrupt, on_interrupt);
  uv_unref((uv_handle_t *)&R->interrupt);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void opsh_sched_close(lua_State *L) {
  opsh_runtime *R = opsh_rt;
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  uv_walk(&R->loop, close_walk, NULL);
  uv_run(&R->loop, UV_RUN_DEFAULT);
  uv_loop_close(&R->loop);
  free(R);
  opsh_rt = NULL;
}
