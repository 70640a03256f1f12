/*
** pg.c — opsh._pg connections: non-blocking connect (PQconnectStartParams + PQconnectPoll with
** the socket on the loop, re-armed when libpq changes socket), the poll callback that drives
** every operation, cancellation (PQcancel in the thread pool, then draining until the
** connection is idle again), and close. Queries are in query.c, COPY in copy.c.
** The public API is lua/opsh/pg.lua.
*/
#include <stdlib.h>
#include <string.h>
#include "pg.h"

struct pg_cancel_req {
  uv_work_t work;
  PGcancel *cancel;
  pgconn *c;           /* NULL once the connection is closed */
};

static void on_poll(uv_poll_t *h, int status, int events);
static void connect_step(pgconn *c);

/* ---- messages ---- */

/* A malloc'ed copy of msg, trimmed, with the connection's password replaced by <redacted>. */
char *pg_scrub(PGconn *pg, const char *msg) {
  const char *pw = pg ? PQpass(pg) : NULL;
  size_t pwlen = pw ? strlen(pw) : 0;
  size_t len = strlen(msg);
  while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) len--;
  size_t cap = len + 1;
  if (pwlen > 0) cap = len * 10 + 1;   /* "<redacted>" is 10 bytes, at most one per byte */
  char *out = malloc(cap);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    if (pwlen > 0 && i + pwlen <= len && memcmp(msg + i, pw, pwlen) == 0) {
      memcpy(out + o, "<redacted>", 10);
      o += 10;
      i += pwlen;
    } else {
      out[o++] = msg[i++];
    }
  }
  out[o] = '\0';
  return out;
}

void pg_clear_notices(pgconn *c) {
  for (int i = 0; i < c->nnotices; i++) free(c->notices[i]);
  c->nnotices = 0;
}

static void notice_receiver(void *arg, const PGresult *r) {
  pgconn *c = arg;
  if (c->nnotices >= (int)(sizeof c->notices / sizeof c->notices[0])) return;
  const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  char *copy = strdup(m ? m : PQresultErrorMessage(r));
  if (copy) c->notices[c->nnotices++] = copy;
}

/* ---- operations ---- */

pgop *pg_newop(lua_State *L, pgconn *c, int type) {
  pgop *op = lua_newuserdatauv(L, sizeof *op, 0);
  memset(op, 0, sizeof *op);
  luaL_setmetatable(L, PG_OP_META);
  op->task = opsh_task_current(L);
  op->type = type;
  c->op = op;
  return op;
}

static int op_gc(lua_State *L) {
  pgop *op = luaL_checkudata(L, 1, PG_OP_META);
  if (op->result) PQclear(op->result);
  if (op->notify) PQfreemem(op->notify);
  free(op->err);
  byte_buf_free(&op->copy);
  op->result = NULL;
  op->notify = NULL;
  op->err = NULL;
  return 0;
}

/* the operation failed at the connection level: msg (malloc'ed, scrubbed; NULL when it could not
** be allocated, then fallback says it) is kept unless an earlier error is */
void pg_op_error(pgop *op, char *msg, const char *fallback) {
  op->failed = 1;
  if (!op->err && !op->why_static) {
    op->err = msg;
    op->why_static = fallback;
    return;
  }
  free(msg);
}

void pg_op_finish(pgconn *c) {
  pgop *op = c->op;
  if (!op) return;
  c->op = NULL;
  op->done = 1;
  if (c->timer) uv_timer_stop(c->timer);
  if (op->task) opsh_task_wake(op->task, 0);
  op->task = NULL;
  pg_update_poll(c);
}

/* ---- the socket on the loop ---- */

void pg_update_poll(pgconn *c) {
  if (!c->poll || c->state == PG_CONNECTING) return;
  int want = 0;
  switch (c->state) {
    case PG_IDLE: case PG_BUSY: case PG_DRAIN: want = UV_READABLE; break;
    case PG_COPY_OUT: case PG_COPY_IN: want = c->op ? UV_READABLE : 0; break;
    default: want = 0;
  }
  if (c->flushing && want) want |= UV_WRITABLE;
  if (want != c->events) {
    if (want) uv_poll_start(c->poll, want, on_poll);
    else uv_poll_stop(c->poll);
    c->events = want;
  }
  /* an idle connection watches its socket (notifications, a server gone) without keeping
  ** the loop alive; one that a task waits on, or that is draining, does */
  int ref = c->op != NULL || c->state == PG_DRAIN;
  if (ref != c->refd) {
    if (ref) uv_ref((uv_handle_t *)c->poll);
    else uv_unref((uv_handle_t *)c->poll);
    c->refd = ref;
  }
}

void pg_fail(pgconn *c, const char *msg) {
  char *m = pg_scrub(c->pg, msg && *msg ? msg : "connection lost");
  c->state = PG_BROKEN;
  c->flushing = 0;
  if (c->op) pg_op_error(c->op, m, "connection lost");
  else free(m);
  pg_op_finish(c);
  pg_update_poll(c);
}

void pg_flush(pgconn *c) {
  int r = PQflush(c->pg);
  if (r < 0) {
    pg_fail(c, PQerrorMessage(c->pg));
    return;
  }
  c->flushing = r == 1;
  pg_update_poll(c);
}

/* ---- cancel and drain ---- */

static void drain_done(pgconn *c) {
  c->state = PG_IDLE;
  c->drain_results_done = 0;
  if (c->op && c->op->type == OP_READY) pg_op_finish(c);
  pg_update_poll(c);
}

static void cancel_work(uv_work_t *w) {
  struct pg_cancel_req *r = w->data;
  char err[256];
  PQcancel(r->cancel, err, sizeof err);   /* best effort: the drain ends the query either way */
}

static void cancel_after(uv_work_t *w, int status) {
  struct pg_cancel_req *r = w->data;
  pgconn *c = r->c;
  PQfreeCancel(r->cancel);
  free(r);
  if (!c) return;
  c->cancel_req = NULL;
  if (c->state == PG_DRAIN && c->drain_results_done) drain_done(c);
}

/* PQcancel opens a connection to the server and waits for it to close: it runs in the thread
** pool so that the loop never waits for it. */
static void send_cancel(pgconn *c) {
  if (c->cancel_req || !c->pg) return;
  struct pg_cancel_req *r = calloc(1, sizeof *r);
  if (!r) return;
  r->cancel = PQgetCancel(c->pg);
  if (!r->cancel) {
    free(r);
    return;
  }
  r->c = c;
  r->work.data = r;
  if (uv_queue_work(c->loop, &r->work, cancel_work, cancel_after) != 0) {
    PQfreeCancel(r->cancel);
    free(r);
    return;
  }
  c->cancel_req = r;
}

static void drain_step(pgconn *c) {
  for (;;) {
    if (c->drain_copy) {
      char *buf;
      int n;
      while ((n = PQgetCopyData(c->pg, &buf, 1)) > 0) PQfreemem(buf);
      if (n == 0) return;
      c->drain_copy = 0;
    }
    if (PQisBusy(c->pg)) return;
    PGresult *r = PQgetResult(c->pg);
    if (!r) break;
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st == PGRES_COPY_OUT) {
      c->drain_copy = 1;
    } else if (st == PGRES_COPY_IN) {
      if (PQputCopyEnd(c->pg, "cancelled by the client") != 1) {
        pg_fail(c, PQerrorMessage(c->pg));
        return;
      }
      pg_flush(c);
      if (c->state == PG_BROKEN) return;
    }
  }
  if (c->rollback_after_drain && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
    c->rollback_after_drain = 0;
    if (!PQsendQuery(c->pg, "ROLLBACK")) {
      pg_fail(c, PQerrorMessage(c->pg));
      return;
    }
    pg_flush(c);
    return;
  }
  c->rollback_after_drain = 0;
  c->drain_results_done = 1;
  if (!c->cancel_req) drain_done(c);   /* else: once the cancel request was delivered */
}

void pg_start_drain(pgconn *c, int cancel) {
  int was = c->state;
  if (was == PG_CLOSED || was == PG_BROKEN || was == PG_CONNECTING) return;
  c->state = PG_DRAIN;
  c->drain_results_done = 0;
  if (was == PG_COPY_OUT) c->drain_copy = 1;
  if (cancel && (was == PG_BUSY || was == PG_COPY_OUT)) send_cancel(c);
  drain_step(c);
  pg_update_poll(c);
}

/* ---- closing ---- */

static void conn_shutdown(pgconn *c) {
  if (c->state == PG_CLOSED) return;
  int busy = c->state == PG_BUSY || c->state == PG_COPY_OUT || c->state == PG_COPY_IN ||
             c->state == PG_DRAIN;
  if (busy && !c->cancel_req) send_cancel(c);   /* the server stops the query too */
  if (c->cancel_req) {
    c->cancel_req->c = NULL;
    c->cancel_req = NULL;
  }
  if (c->poll) {
    opsh_close_free((uv_handle_t *)c->poll, c->poll);
    c->poll = NULL;
  }
  if (c->timer) {
    opsh_close_free((uv_handle_t *)c->timer, c->timer);
    c->timer = NULL;
  }
  if (c->pg) {
    PQfinish(c->pg);
    c->pg = NULL;
  }
  pg_clear_notices(c);
  c->state = PG_CLOSED;
}

void pg_op_cancel(void *ud) {
  pgconn *c = ud;
  pgop *op = c->op;
  c->op = NULL;
  if (op) op->task = NULL;
  if (c->timer) uv_timer_stop(c->timer);
  switch (c->state) {
    case PG_CONNECTING: conn_shutdown(c); return;
    case PG_BUSY: case PG_COPY_OUT: case PG_COPY_IN: pg_start_drain(c, 1); break;
    default: break;
  }
  if (c->state != PG_CLOSED) pg_update_poll(c);
}

/* close a connection userdata; wakes a task waiting on it */
static void close_ud(pgud *u) {
  pgconn *c = u->c;
  if (!c) return;
  u->c = NULL;
  if (c->op) {
    pgop *op = c->op;
    c->op = NULL;
    op->closed = 1;
    op->done = 1;
    if (op->task) opsh_task_wake(op->task, 0);
    op->task = NULL;
  }
  conn_shutdown(c);
  free(c);
}

static int conn_close(lua_State *L) {
  close_ud(luaL_checkudata(L, 1, PG_CONN_META));
  return 0;
}

/* ---- checks shared by the methods ---- */

pgconn *pg_checkconn(lua_State *L, int idx) {
  pgud *u = luaL_checkudata(L, idx, PG_CONN_META);
  pgconn *c = u->c;
  if (!c || c->state == PG_CLOSED) opsh_error(L, "pg", "the connection is closed");
  if (c->state == PG_BROKEN) {
    opsh_error_push(L, "pg", "the connection is broken (%s:%s); close it and connect again",
                    c->pg ? PQhost(c->pg) : "?", c->pg ? PQport(c->pg) : "?");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "broken");
    lua_error(L);
  }
  return c;
}

static int busy_error(lua_State *L) {
  return opsh_error(L, "usage", "the pg connection is busy with another operation (one at a time per "
                    "connection: use another connection or a pool for concurrent queries)");
}

int pg_wait_ready(lua_State *L, pgconn *c, lua_KContext ctx, lua_KFunction k) {
  if (c->op) return busy_error(L);
  if (c->state == PG_DRAIN) {
    pg_newop(L, c, OP_READY);
    pg_update_poll(c);
    return opsh_yield(L, pg_op_cancel, c, ctx, k);
  }
  if (c->state != PG_IDLE) {
    if (c->state == PG_COPY_OUT || c->state == PG_COPY_IN)
      return opsh_error(L, "usage", "a COPY is in progress on this pg connection");
    return busy_error(L);
  }
  return 0;
}

/* ---- connect ---- */

static void on_timer(uv_timer_t *t) {
  pgconn *c = t->data;
  if (!c->op) return;
  c->op->timed_out = 1;
  if (c->state == PG_CONNECTING) {
    if (c->poll && c->events) uv_poll_stop(c->poll);
    c->events = 0;
    c->state = PG_BROKEN;
  }
  pg_op_finish(c);
}

/* ms from opsh_duration_ms; OPSH_FOREVER starts none */
void pg_start_timer(pgconn *c, uint64_t ms) {
  if (ms != OPSH_FOREVER) uv_timer_start(c->timer, on_timer, ms, 0);
}

/* start watching libpq's current socket for events; a new socket gets a new poll handle */
static int arm(pgconn *c, int events) {
  int fd = PQsocket(c->pg);
  if (fd < 0) return -1;
  if (!c->poll || fd != c->fd) {
    if (c->poll) opsh_close_free((uv_handle_t *)c->poll, c->poll);
    c->poll = malloc(sizeof *c->poll);
    if (!c->poll || uv_poll_init(c->loop, c->poll, fd) != 0) {
      free(c->poll);
      c->poll = NULL;
      return -1;
    }
    c->poll->data = c;
    c->fd = fd;
    c->refd = 1;
  }
  uv_poll_start(c->poll, events, on_poll);
  c->events = events;
  return 0;
}

static void connect_failed(pgconn *c, const char *msg) {
  if (c->poll && c->events) uv_poll_stop(c->poll);
  c->events = 0;
  c->state = PG_BROKEN;
  if (c->op) pg_op_error(c->op, pg_scrub(c->pg, msg), "connecting failed (out of memory)");
  pg_op_finish(c);
}

static void connect_step(pgconn *c) {
  /* the registration is dropped before each step: libpq may close the socket and open
  ** another one with the same number (next host, or a retry without SSL) */
  if (c->poll && c->events) uv_poll_stop(c->poll);
  c->events = 0;
  switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK: {
      c->state = PG_IDLE;
      if (PQsetnonblocking(c->pg, 1) != 0) {
        connect_failed(c, PQerrorMessage(c->pg));
        return;
      }
      if (c->fd != PQsocket(c->pg) && arm(c, UV_READABLE) != 0) {
        connect_failed(c, "cannot watch the connection's socket");
        return;
      }
      pg_op_finish(c);
      return;
    }
    case PGRES_POLLING_READING:
      if (arm(c, UV_READABLE) != 0) connect_failed(c, PQerrorMessage(c->pg));
      return;
    case PGRES_POLLING_WRITING:
      if (arm(c, UV_WRITABLE) != 0) connect_failed(c, PQerrorMessage(c->pg));
      return;
    default:
      connect_failed(c, PQerrorMessage(c->pg));
      return;
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  pgconn *c = h->data;
  if (c->state == PG_CONNECTING) {
    connect_step(c);
    return;
  }
  if (status < 0) {
    pg_fail(c, uv_strerror(status));
    return;
  }
  if ((events & UV_READABLE) && !PQconsumeInput(c->pg)) {
    pg_fail(c, PQerrorMessage(c->pg));
    return;
  }
  if (c->flushing) {
    pg_flush(c);
    if (c->state == PG_BROKEN) return;
  }
  switch (c->state) {
    case PG_BUSY:
      if (!c->flushing) pg_result_step(c);
      break;
    case PG_DRAIN:
      drain_step(c);
      break;
    case PG_COPY_OUT:
      if (c->op && c->op->type == OP_COPY_READ) pg_copy_step(c);
      break;
    case PG_COPY_IN:
      if (c->op && c->op->type == OP_FLUSH && !c->flushing) pg_op_finish(c);
      break;
    case PG_IDLE:
      if (c->op && c->op->type == OP_NOTIFY) pg_notify_step(c);
      break;
  }
  if (c->state != PG_CLOSED) pg_update_poll(c);
}

/* [-0, +1, m] {kind="pg_connect", message, host, port, dbname, user}; never the password */
static void push_connect_error(lua_State *L, pgconn *c, const char *msg) {
  opsh_error_push(L, "pg_connect", "%s", msg);
  if (c && c->pg) {
    const char *host = PQhost(c->pg), *port = PQport(c->pg);
    if (host && *host) opsh_error_setstr(L, "host", host);
    if (port && *port) {
      char *end;
      long p = strtol(port, &end, 10);
      if (*end == '\0') opsh_error_setint(L, "port", p);
      else opsh_error_setstr(L, "port", port);
    }
    opsh_error_setstr(L, "dbname", PQdb(c->pg));
    opsh_error_setstr(L, "user", PQuser(c->pg));
  }
}

/* [-1, +0, v] raise the error on top, scrubbed of the password of the connection at ud_idx */
static int raise_scrubbed(lua_State *L, int ud_idx) {
  pg_push_secrets(L, ud_idx, 0, 0);
  pg_scrub_fields(L, -2, -1);
  lua_pop(L, 1);
  return lua_error(L);
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  pgud *u = lua_touserdata(L, 4);
  pgop *op = lua_touserdata(L, 5);
  pgconn *c = u->c;
  if (!c || op->closed) {
    push_connect_error(L, NULL, "the connection was closed while connecting");
    return lua_error(L);
  }
  if (op->failed || op->timed_out) {
    if (op->timed_out) {
      const char *m = lua_pushfstring(L, "timed out after %f s connecting to %s:%s", (lua_Number)c->timeout,
                                      PQhost(c->pg), PQport(c->pg));
      push_connect_error(L, c, m);
      lua_remove(L, -2);
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "timeout");
    } else {
      push_connect_error(L, c, op->err ? op->err : op->why_static);
    }
    close_ud(u);
    return raise_scrubbed(L, 4);
  }
  lua_settop(L, 4);
  return 1;
}

/* connect(conninfo|nil, {keyword = string|secret}|nil, timeout_seconds|nil, reported_timeout|nil) -> conn
** (the Lua layer has resolved host names into hostaddr: libpq never resolves on the loop) */
static int pg_connect(lua_State *L) {
  const char *conninfo = luaL_optstring(L, 1, NULL);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  double timeout = luaL_optnumber(L, 3, 0);
  uint64_t timeout_ms = opsh_duration_ms(L, timeout, "pg.connect");   /* 0: none */
  double reported = luaL_optnumber(L, 4, timeout);   /* the whole connect_timeout, for the message */
  opsh_task_check(L, "pg.connect");
  lua_settop(L, 3);
  enum { MAXKW = 48 };
  const char *kw[MAXKW + 2], *val[MAXKW + 2];
  int n = 0;
  if (conninfo) {
    kw[n] = "dbname";
    val[n++] = conninfo;
  }
  if (lua_istable(L, 2)) {
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 2, "keys must be strings");
      if (n >= MAXKW) luaL_argerror(L, 2, "too many connection parameters");
      const char *k = lua_tostring(L, -2);
      kw[n] = k;
      if (opsh_is_secret(L, -1)) val[n] = opsh_secret_check(L, -1, NULL);
      else if (lua_type(L, -1) == LUA_TSTRING) val[n] = lua_tostring(L, -1);
      else return opsh_error(L, "usage", "bad argument #2 to 'connect' (value of '%s' must be a string)", k);
      n++;
      lua_pop(L, 1);   /* the table keeps the strings alive */
    }
  }
  kw[n] = val[n] = NULL;
  pgud *u = lua_newuserdatauv(L, sizeof *u, 1);   /* 4 */
  u->c = NULL;
  luaL_setmetatable(L, PG_CONN_META);
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "password");
    lua_setiuservalue(L, 4, 1);
  }
  pgconn *c = calloc(1, sizeof *c);
  if (!c) return opsh_error(L, "memory", "out of memory");
  c->loop = opsh_loop(L);
  c->fd = -1;
  c->timeout = reported;
  c->state = PG_CONNECTING;
  u->c = c;
  c->timer = malloc(sizeof *c->timer);
  if (!c->timer) return opsh_error(L, "memory", "out of memory");
  uv_timer_init(c->loop, c->timer);
  c->timer->data = c;
  c->pg = PQconnectStartParams(kw, val, conninfo ? 1 : 0);
  if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
    char *m = pg_scrub(c->pg, c->pg ? PQerrorMessage(c->pg) : "out of memory");
    push_connect_error(L, c, m ? m : "out of memory");
    free(m);
    close_ud(u);
    return raise_scrubbed(L, 4);
  }
  PQsetNoticeReceiver(c->pg, notice_receiver, c);
  opsh_task_hold(L, 4);
  pg_newop(L, c, OP_CONNECT);   /* 5 */
  if (timeout_ms > 0) pg_start_timer(c, timeout_ms);
  if (arm(c, UV_WRITABLE) != 0) connect_step(c);
  return opsh_yield(L, pg_op_cancel, c, 0, connect_k);
}

/* parse_conninfo(s) -> {keyword = value} without the password, has_password | nil, err */
static int pg_parse_conninfo(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse(s, &err);
  if (!opts) {
    lua_pushnil(L);
    /* libpq quotes pieces of the string in its message: they may hold a password */
    lua_pushstring(L, strstr(s, "password") || strchr(s, '@') ? "invalid connection string"
                                                                : (err ? err : "invalid connection string"));
    PQfreemem(err);
    return 2;
  }
  lua_newtable(L);
  int has_password = 0;
  for (PQconninfoOption *o = opts; o->keyword; o++) {
    if (!o->val) continue;
    if (strcmp(o->keyword, "password") == 0) {
      has_password = 1;
      continue;
    }
    lua_pushstring(L, o->val);
    lua_setfield(L, -2, o->keyword);
  }
  PQconninfoFree(opts);
  lua_pushboolean(L, has_password);
  return 2;
}

/* ---- methods ---- */

static const char *state_name(int s) {
  static const char *const names[] = {"closed", "connecting", "idle", "busy", "copy_out", "copy_in",
                                      "draining", "broken"};
  return names[s];
}

/* conn:info() -> {host, port, dbname, user, backend_pid, server_version, ssl, state, transaction} */
static int conn_info(lua_State *L) {
  pgud *u = luaL_checkudata(L, 1, PG_CONN_META);
  pgconn *c = u->c;
  lua_createtable(L, 0, 9);
  lua_pushstring(L, state_name(c ? c->state : PG_CLOSED));
  lua_setfield(L, -2, "state");
  if (!c || !c->pg) return 1;
  lua_pushstring(L, PQhost(c->pg));
  lua_setfield(L, -2, "host");
  const char *addr = PQhostaddr(c->pg);
  if (addr && *addr) {
    lua_pushstring(L, addr);
    lua_setfield(L, -2, "hostaddr");
  }
  lua_pushinteger(L, atoi(PQport(c->pg)));
  lua_setfield(L, -2, "port");
  lua_pushstring(L, PQdb(c->pg));
  lua_setfield(L, -2, "dbname");
  lua_pushstring(L, PQuser(c->pg));
  lua_setfield(L, -2, "user");
  lua_pushinteger(L, PQbackendPID(c->pg));
  lua_setfield(L, -2, "backend_pid");
  lua_pushinteger(L, PQserverVersion(c->pg));
  lua_setfield(L, -2, "server_version");
  lua_pushboolean(L, PQsslInUse(c->pg));
  lua_setfield(L, -2, "ssl");
  static const char *const tx[] = {"idle", "active", "intrans", "inerror", "unknown"};
  lua_pushstring(L, tx[PQtransactionStatus(c->pg)]);
  lua_setfield(L, -2, "transaction");
  return 1;
}

/* conn:_ready() -> true if idle, outside a transaction and the server has not gone away */
static int conn_ready(lua_State *L) {
  pgud *u = luaL_checkudata(L, 1, PG_CONN_META);
  pgconn *c = u->c;
  int ok = c && c->state == PG_IDLE && !c->op && PQstatus(c->pg) == CONNECTION_OK &&
           PQtransactionStatus(c->pg) == PQTRANS_IDLE;
  if (ok && !PQconsumeInput(c->pg)) {   /* reads what the server sent while idle (EOF, FATAL) */
    pg_fail(c, PQerrorMessage(c->pg));
    ok = 0;
  }
  lua_pushboolean(L, ok && PQstatus(c->pg) == CONNECTION_OK);
  return 1;
}

/* conn:_abort(rollback) -> nil: after an error or a cancelled task, end what the connection is
** doing without waiting (cancel request, drain, and a ROLLBACK if asked); the next operation
** waits for that to finish */
static int conn_abort(lua_State *L) {
  pgud *u = luaL_checkudata(L, 1, PG_CONN_META);
  int rollback = lua_toboolean(L, 2);
  pgconn *c = u->c;
  if (!c || c->op) return 0;
  switch (c->state) {
    case PG_IDLE:
      if (rollback && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        c->rollback_after_drain = 1;
        pg_start_drain(c, 0);
      }
      break;
    case PG_BUSY: case PG_COPY_OUT: case PG_COPY_IN:
      c->rollback_after_drain = rollback;
      pg_start_drain(c, 1);
      break;
    case PG_DRAIN:
      if (rollback) c->rollback_after_drain = 1;
      break;
  }
  return 0;
}

/* conn:escape_identifier(name) -> "quoted" (for LISTEN, which takes no parameters) */
static int conn_escape_identifier(lua_State *L) {
  pgconn *c = pg_checkconn(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  char *q = PQescapeIdentifier(c->pg, s, len);
  if (!q) return opsh_error(L, "pg", "%s", PQerrorMessage(c->pg));
  lua_pushstring(L, q);
  PQfreemem(q);
  return 1;
}

static int conn_tostring(lua_State *L) {
  pgud *u = luaL_checkudata(L, 1, PG_CONN_META);
  pgconn *c = u->c;
  if (!c || !c->pg) lua_pushliteral(L, "pg.conn (closed)");
  else lua_pushfstring(L, "pg.conn (%s@%s:%s/%s, %s)", PQuser(c->pg), PQhost(c->pg), PQport(c->pg),
                       PQdb(c->pg), state_name(c->state));
  return 1;
}

static const luaL_Reg conn_methods[] = {
  {"close", conn_close},
  {"info", conn_info},
  {"escape_identifier", conn_escape_identifier},
  {"_ready", conn_ready},
  {"_abort", conn_abort},
  {NULL, NULL}
};

static const luaL_Reg conn_meta[] = {
  {"__gc", conn_close},
  {"__close", conn_close},
  {"__tostring", conn_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* configure(json_decode, json_encode, null): how json columns, table parameters and NULL map */
static int pg_configure(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checkany(L, 3);
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "opsh.pg.decode");
  lua_pushvalue(L, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, "opsh.pg.encode");
  lua_pushvalue(L, 3);
  lua_setfield(L, LUA_REGISTRYINDEX, "opsh.pg.null");
  return 0;
}

static const luaL_Reg pg_funcs[] = {
  {"connect", pg_connect},
  {"parse_conninfo", pg_parse_conninfo},
  {"configure", pg_configure},
  {NULL, NULL}
};

int luaopen_opsh_pg(lua_State *L) {
  opsh_pq_load(L);
  if (luaL_newmetatable(L, PG_OP_META)) {
    lua_pushcfunction(L, op_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, pg_funcs);
  luaL_newmetatable(L, PG_CONN_META);
  luaL_setfuncs(L, conn_meta, 0);
  luaL_newlib(L, conn_methods);
  pg_query_register(L);
  pg_copy_register(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_setfield(L, -3, "conn_methods");   /* the Lua layer adds its methods to this table */
  lua_pop(L, 1);
  lua_pushinteger(L, PQlibVersion());
  lua_setfield(L, -2, "libpq_version");
  pg_resolve_register(L);
  return 1;
}
