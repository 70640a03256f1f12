/*
** proc.h — state shared by the parts of opsh._proc: proc.c (spawning, options, signals,
** the handle's Lua face) and io.c (exit, pipes, timers and the waits on them).
** A child is a malloc'ed `proc` owning its uv handles; the userdata only points at it.
** The proc is freed once the userdata let go of it (released) and every handle closed.
*/
#ifndef opsh_proc_h
#define opsh_proc_h

#include <stdint.h>
#include "opsh.h"
#include "buf.h"

#define PROC_META "opsh.proc.process"

enum { PROC_STDOUT, PROC_STDERR };
enum proc_out_mode { OUT_IGNORE, OUT_CAPTURE, OUT_PIPE };

typedef struct proc proc;

typedef struct proc_stream {
  proc *p;
  uv_pipe_t pipe;
  int mode;           /* enum proc_out_mode */
  int open;           /* pipe initialised, not yet closing */
  int eof;            /* nothing more will arrive */
  int stopped;        /* reading paused: the unread data reached the high-water mark */
  int truncated;      /* capture: bytes beyond max_output were dropped */
  int nomem;          /* out of memory while reading: the output is incomplete */
  size_t total;       /* bytes the child wrote */
  byte_buf b;         /* capture: the output; pipe: what the reader has not taken yet */
} proc_stream;

struct proc {
  proc *live_prev, *live_next;   /* every proc not yet freed */
  uv_process_t handle;
  uv_timer_t timer;          /* timeout, then the TERM->KILL grace */
  uv_pipe_t in;
  uv_write_t in_req;         /* the `input` string */
  proc_stream out[2];
  int handles;               /* uv handles initialised and not yet closed */
  int in_open;
  int exited, timed_out, overflowed, detached, overflow_kill, released, spawn_called;
  int kill_stage;            /* 0 none, 1 TERM sent, 2 KILL sent */
  int term_signal;
  int64_t exit_status;
  int pid;
  size_t max_output;
  uint64_t grace_ms, started, ended;
  opsh_task *waiter, *reader, *writer;
  int read_mask;             /* streams the reader waits on: 1 << PROC_STDOUT | 1 << PROC_STDERR */
  int write_status;
  char *input;
  size_t input_len;
  int input_secret;          /* input holds an opsh.secret's bytes: wiped before it is freed */
  char *argv0;
};

typedef struct proc_ud { proc *p; } proc_ud;

/* io.c */
proc *opsh_proc_alloc(uv_loop_t *loop);
void opsh_proc_arm_timeout(proc *p, uint64_t ms);
void opsh_proc_on_exit(uv_process_t *h, int64_t status, int sig);
void opsh_proc_start_stream(proc *p, int which, int fd);
void opsh_proc_start_input(proc *p);
void opsh_proc_escalate(proc *p);
void opsh_proc_release(lua_State *L, proc *p);
void opsh_proc_abandon(proc *p);
const char *opsh_proc_signame(int sig);
/* read what the output pipes hold now and close them: the child is gone, and a grandchild that
** still holds their other end is not waited for */
void opsh_proc_finish_streams(proc *p);
/* the input buffer (or another copy of sent data) wiped when it held a secret, then freed */
void opsh_proc_free_input(proc *p);

/* at exit, once the loop is gone: free what handles closed without their callback left behind */
void opsh_proc_free_all(void);

/* exit.c: children that must not outlive opsh (every one not detached) */
void opsh_proc_at_exit_init(void);
int opsh_proc_track_reserve(void);              /* room for one more; -1 when out of memory */
void opsh_proc_track(int pid, uint64_t grace_ms);
void opsh_proc_track_term(int pid, uint64_t grace_ms);   /* TERM went out now */
void opsh_proc_untrack(int pid);                /* it exited and was reaped */
extern const luaL_Reg opsh_proc_io_methods[];

#endif
