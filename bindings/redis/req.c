/*
** req.c — what tasks wait for on an opsh._redis connection: requests owned by a box on the
** waiting task's stack, the waiting list with one deadline timer per connection, and waking. A
** request keeps its outcome (replies, or an error with copies of its fields) in C; the task's
** continuation turns it into Lua values.
*/
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "redis.h"

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

/* ---- requests ---- */

#define REQ_META "opsh.redis.request"

/* The userdata that owns a request's outcome while the task waits: collected with the task's
** stack if the task never resumes (cancelled after being woken), so nothing leaks. */
typedef struct rbox { rreq *r; } rbox;

static int box_gc(lua_State *L) {
  rbox *b = lua_touserdata(L, 1);
  rreq *r = b->r;
  if (!r) return 0;
  b->r = NULL;
  r->box = NULL;
  rreq_unwait(r);
  rreq_maybe_free(r);
  return 0;
}

rreq *rreq_push(lua_State *L, rconn *c, int kind, opsh_task *t) {
  rbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->r = NULL;
  if (luaL_newmetatable(L, REQ_META)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  rreq *r = calloc(1, sizeof *r);
  if (!r) {
    opsh_error(L, "memory", "out of memory");
    return NULL;
  }
  r->c = c;
  r->kind = kind;
  r->task = t;
  r->box = b;
  b->r = r;
  return r;
}

rreq *rreq_take(lua_State *L, int idx) {
  rbox *b = luaL_checkudata(L, idx, REQ_META);
  if (!b->r) opsh_error(L, "cancelled", "the redis request was cancelled");
  return b->r;
}

void rreq_release(lua_State *L, int idx) {
  rbox *b = luaL_checkudata(L, idx, REQ_META);
  rreq *r = b->r;
  if (!r) return;
  b->r = NULL;
  r->box = NULL;
  rreq_maybe_free(r);
}

static void on_deadline(uv_timer_t *h);

/* the task waits for r, for at most ms (0 or OPSH_FOREVER: no limit) */
void rreq_wait(rreq *r, uint64_t ms) {
  rconn *c = r->c;
  r->waiting = 1;
  r->prev = c->tail;
  if (c->tail) c->tail->next = r; else c->head = r;
  c->tail = r;
  if (ms == 0 || ms == OPSH_FOREVER) return;
  r->deadline = now_ms() + ms;
  if (!uv_is_active((uv_handle_t *)&c->timer) || r->deadline < c->due) {
    c->due = r->deadline;
    uv_timer_start(&c->timer, on_deadline, ms, 0);
  }
}

void rreq_unwait(rreq *r) {
  r->task = NULL;
  if (!r->waiting) return;
  rconn *c = r->c;
  r->waiting = 0;
  if (r->prev) r->prev->next = r->next; else c->head = r->next;
  if (r->next) r->next->prev = r->prev; else c->tail = r->prev;
  r->prev = r->next = NULL;
  if (c->subwait == r) c->subwait = NULL;
  if (c->msgwait == r) c->msgwait = NULL;
  if (c->connecting == r) c->connecting = NULL;
}

void rreq_maybe_free(rreq *r) {
  if (r->waiting || r->queueing || r->owed > 0 || r->box) return;
  byte_buf_free(&r->out);
  free(r->err);
  free(r);
}

/* opsh cancel callback: the task stops waiting; a reply still owed is dropped when it comes */
void rreq_cancel(void *ud) {
  rreq *r = ud;
  rconn *c = r->c;
  int connecting = r->kind == REQ_CONNECT;
  rreq_unwait(r);
  if (r->box) {
    r->box->r = NULL;
    r->box = NULL;
  }
  rreq_maybe_free(r);
  if (connecting) {
    snprintf(c->why, sizeof c->why, "connecting was cancelled");
    rconn_teardown(c);
  }
}

void rreq_done(rreq *r) {
  opsh_task *t = r->task;
  rreq_unwait(r);
  if (t) opsh_task_wake(t, 0);
}

void rreq_fail(rreq *r, const char *kind, const char *fmt, ...) {
  if (!r->task) return;
  rconn *c = r->c;
  rerr *e = r->err ? r->err : malloc(sizeof *e);
  if (!e) {
    r->oom = 1;
    rreq_done(r);
    return;
  }
  r->err = e;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(e->kind, sizeof e->kind, "%s", kind);
  snprintf(e->host, sizeof e->host, "%s", c->host);
  snprintf(e->cmd, sizeof e->cmd, "%s", r->cmd);
  e->port = c->port;
  e->sent = r->kind == REQ_CALL || r->kind == REQ_PIPE ? 1 : -1;
  if (r->cmd[0]) snprintf(e->message, sizeof e->message, "redis %s:%d: %s: %s", c->host, c->port, r->cmd, msg);
  else snprintf(e->message, sizeof e->message, "redis %s:%d: %s", c->host, c->port, msg);
  rreq_done(r);
}

void rreq_push_error(lua_State *L, const rreq *r) {
  const rerr *e = r->err;
  if (!e) {
    opsh_error_push(L, "memory", "redis: out of memory keeping the reply of %s", r->cmd[0] ? r->cmd : "a request");
    return;
  }
  opsh_error_push(L, e->kind, "%s", e->message);
  opsh_error_setstr(L, "host", e->host);
  opsh_error_setint(L, "port", e->port);
  if (e->cmd[0]) opsh_error_setstr(L, "command", e->cmd);
  if (e->sent >= 0) {
    lua_pushboolean(L, e->sent);
    lua_setfield(L, -2, "sent");
  }
}

int rreq_return_error(lua_State *L, int box, const rreq *r) {
  lua_pushnil(L);
  rreq_push_error(L, r);
  rreq_release(L, box);
  return 2;
}

/* [-0, +1, m] */
void rconn_push_error(lua_State *L, rconn *c, const char *kind, const char *cmd, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (cmd && *cmd) opsh_error_push(L, kind, "redis %s:%d: %s: %s", c->host, c->port, cmd, msg);
  else opsh_error_push(L, kind, "redis %s:%d: %s", c->host, c->port, msg);
  opsh_error_setstr(L, "host", c->host);
  opsh_error_setint(L, "port", c->port);
  if (cmd && *cmd) opsh_error_setstr(L, "command", cmd);
}

/* a command's reply will not come: the connection went away after it was sent */
void rreq_wake_lost(rreq *r, const redisAsyncContext *ac) {
  rconn *c = r->c;
  const char *why = c->why[0] ? c->why : ac && ac->err ? ac->errstr : "connection closed";
  rreq_fail(r, "connect", "connection lost (%s)", why);
}

static void expire(rreq *r) {
  rconn *c = r->c;
  char secs[32];
  snprintf(secs, sizeof secs, "%g s", (double)(r->kind == REQ_CONNECT ? c->connect_timeout_ms
                                                                       : c->timeout_ms) / 1000.0);
  int connecting = r->kind == REQ_CONNECT;
  switch (r->kind) {
  case REQ_MSG:
    r->nomsg = 1;   /* no message in time: nil */
    rreq_done(r);
    break;
  case REQ_CONNECT:
    rreq_fail(r, "timeout", "not connected within %s", secs);
    break;
  default:
    rreq_fail(r, "timeout", "no reply within %s", secs);
  }
  rreq_unwait(r);
  rreq_maybe_free(r);
  if (connecting) {
    snprintf(c->why, sizeof c->why, "connect timed out");
    rconn_teardown(c);
  }
}

static void on_deadline(uv_timer_t *h) {
  rconn *c = h->data;
  uint64_t now = now_ms(), due = 0;
  rreq *r = c->head;
  while (r) {
    rreq *next = r->next;
    if (r->deadline && r->deadline <= now) {
      expire(r);
      r = c->head;   /* expiring a connect tears down: start over */
      continue;
    }
    if (r->deadline && (!due || r->deadline < due)) due = r->deadline;
    r = next;
  }
  if (due) {
    c->due = due;
    uv_timer_start(&c->timer, on_deadline, due > now ? due - now : 0, 0);
  }
}

