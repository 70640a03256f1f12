/*
** cmd.c — commands and replies for opsh._redis: binary-safe argv (strings, numbers,
** secrets) through redisAsyncCommandArgv, replies turned into Lua values, pipelines sent in
** one go, and pub/sub messages queued for an iterator. Requests are answered in the order
** they were sent, so many tasks can share one connection.
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include "redis.h"

/* [-0, +0, m] the bytes of argument idx: a string, a number (the slot is replaced by its
** text, integers exactly, floats in the shortest form that reads back the same) or a secret;
** NULL for anything else */
const char *rconn_arg_bytes(lua_State *L, int idx, size_t *len) {
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    return lua_tolstring(L, idx, len);
  case LUA_TNUMBER:
    if (!lua_isinteger(L, idx)) {
      char buf[40];
      double d = lua_tonumber(L, idx);
      snprintf(buf, sizeof buf, "%.15g", d);
      if (strtod(buf, NULL) != d) snprintf(buf, sizeof buf, "%.17g", d);
      lua_pushstring(L, buf);
      lua_replace(L, idx);
    }
    return lua_tolstring(L, idx, len);
  case LUA_TUSERDATA:
    if (opsh_is_secret(L, idx)) return opsh_secret_check(L, idx, len);
  }
  return NULL;
}

void rconn_command_name(char *out, const char *s, size_t len) {
  size_t n = len < 31 ? len : 31;
  for (size_t i = 0; i < n; i++) out[i] = (char)toupper((unsigned char)s[i]);
  out[n] = '\0';
}

/* commands that change how replies flow: only through subscribe */
int rconn_refused(const char *name) {
  static const char *const names[] = {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE",
                                      "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR", NULL};
  for (int i = 0; names[i]; i++)
    if (strcmp(name, names[i]) == 0) return 1;
  return 0;
}

/* [-0, +0, v] the argv of a command at stack positions first..first+argc-1 */
static void collect_args(lua_State *L, int first, int argc, const char **argv, size_t *lens,
                         const char *what) {
  for (int i = 0; i < argc; i++) {
    argv[i] = rconn_arg_bytes(L, first + i, &lens[i]);
    if (!argv[i]) {
      if (what) opsh_error(L, "usage", "bad argument to '%s' (string, number or secret expected, got %s)",
                           what, luaL_typename(L, first + i));
      luaL_typeerror(L, first + i, "string, number or secret");
    }
  }
}

/* [-0, +2, m] nil, {kind="connect"} for a connection that cannot take commands now */
int rconn_not_ready(lua_State *L, rconn *c, const char *cmd) {
  lua_pushnil(L);
  rconn_push_error(L, c, "connect", cmd, "not connected (%s)", c->why[0] ? c->why : "connecting");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "sent");
  return 2;
}

/* ---- single commands ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  rreq *r = privdata;
  const redisReply *rep = reply;
  r->owed--;
  if (r->task) {
    if (!rep) {
      rreq_wake_lost(r, ac);
    } else {
      if (rreply_save(&r->out, rep) != 0) r->oom = 1;
      rreq_done(r);
    }
  }
  rreq_maybe_free(r);
}

/* reply | nil, err from the request boxed at ctx */
static int call_k(lua_State *L, int status, lua_KContext ctx) {
  int box = (int)ctx;
  rreq *r = rreq_take(L, box);
  if (r->err || r->oom) return rreq_return_error(L, box, r);
  const char *p = r->out.data;
  int n = 1;
  if (rreply_is_error(p)) {
    lua_pushnil(L);
    n = 2;
  }
  rreply_push(L, &p, 0, r->cmd);
  rreq_release(L, box);
  return n;
}

/* conn:call(name, args...) -> reply | nil, err (never raises for the server's errors) */
static int conn_call(lua_State *L) {
  rconn *c = rconn_check(L, 1);
  int argc = lua_gettop(L) - 1;
  luaL_argcheck(L, argc >= 1, 2, "command name expected");
  luaL_checktype(L, 2, LUA_TSTRING);
  opsh_task *t = opsh_task_check(L, "redis call");
  const char *sv[16];
  size_t sl[16];
  const char **argv = sv;
  size_t *lens = sl;
  if (argc > 16) {
    argv = lua_newuserdatauv(L, (size_t)argc * (sizeof *argv + sizeof *lens), 0);
    lens = (size_t *)(argv + argc);
  }
  collect_args(L, 2, argc, argv, lens, NULL);
  char cmd[32];
  rconn_command_name(cmd, argv[0], lens[0]);
  if (rconn_refused(cmd)) return opsh_error(L, "usage", "redis %s is not a plain command: use r:subscribe()", cmd);
  if (c->subscribed) return opsh_error(L, "usage", "this redis connection is subscribed");
  if (c->state != C_READY) return rconn_not_ready(L, c, cmd);
  rreq *r = rreq_push(L, c, REQ_CALL, t);
  memcpy(r->cmd, cmd, sizeof cmd);
  if (redisAsyncCommandArgv(c->ac, on_reply, r, argc, argv, lens) != REDIS_OK) {
    rreq_release(L, -1);
    return rconn_not_ready(L, c, cmd);
  }
  r->owed = 1;
  rreq_wait(r, c->timeout_ms);
  return opsh_yield(L, rreq_cancel, r, lua_gettop(L), call_k);
}

/* ---- pub/sub ---- */

/* [-0, +1, m] {channel=, payload=[, pattern=]} */
static void push_message(lua_State *L, const char *pat, size_t patlen, const char *chan,
                         size_t chanlen, const char *payload, size_t len) {
  lua_createtable(L, 0, 3);
  lua_pushlstring(L, chan, chanlen);
  lua_setfield(L, -2, "channel");
  lua_pushlstring(L, payload, len);
  lua_setfield(L, -2, "payload");
  if (pat) {
    lua_pushlstring(L, pat, patlen);
    lua_setfield(L, -2, "pattern");
  }
}

/* a message or pattern message: queued, and the reader (if one waits) woken to take it */
static void deliver(rconn *c, const redisReply *pat, const redisReply *chan, const redisReply *payload) {
  if (chan->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) return;
  size_t patlen = pat ? pat->len : 0;
  rmsg *m = malloc(sizeof *m + patlen + chan->len + payload->len);
  if (m) {
    m->next = NULL;
    m->patlen = pat ? patlen : (size_t)-1;
    m->chanlen = chan->len;
    m->len = payload->len;
    if (pat) memcpy(m->data, pat->str, patlen);
    memcpy(m->data + patlen, chan->str, chan->len);
    memcpy(m->data + patlen + chan->len, payload->str, payload->len);
    if (c->mtail) c->mtail->next = m; else c->mhead = m;
    c->mtail = m;
  } else {
    c->dropped++;
  }
  if (c->msgwait) {
    rreq *r = c->msgwait;
    rreq_done(r);
    rreq_maybe_free(r);
  }
}

void rconn_drop_messages(rconn *c) {
  while (c->mhead) {
    rmsg *m = c->mhead;
    c->mhead = m->next;
    free(m);
  }
  c->mtail = NULL;
}

/* hiredis calls this for each confirmation and message on the subscribed channels */
static void on_sub(redisAsyncContext *ac, void *reply, void *privdata) {
  rconn *c = privdata;
  const redisReply *rep = reply;
  if (!rep || c->ac != ac || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
      rep->element[0]->type != REDIS_REPLY_STRING)
    return;
  const char *type = rep->element[0]->str;
  if (strcasecmp(type, "subscribe") == 0 || strcasecmp(type, "psubscribe") == 0) {
    rreq *r = c->subwait;
    if (r && --r->n == 0) {
      rreq_done(r);
      rreq_maybe_free(r);
    }
  } else if (strcasecmp(type, "message") == 0) {
    deliver(c, NULL, rep->element[1], rep->element[2]);
  } else if (strcasecmp(type, "pmessage") == 0 && rep->elements >= 4) {
    deliver(c, rep->element[1], rep->element[2], rep->element[3]);
  }
}

/* true | nil, err from the request boxed at ctx */
static int subscribe_k(lua_State *L, int status, lua_KContext ctx) {
  int box = (int)ctx;
  rreq *r = rreq_take(L, box);
  if (r->err || r->oom) return rreq_return_error(L, box, r);
  rreq_release(L, box);
  lua_pushboolean(L, 1);
  return 1;
}

/* conn:subscribe("SUBSCRIBE"|"PSUBSCRIBE", names...) -> true | nil, err, once the server
** confirmed every name; from then on the connection only receives messages */
static int conn_subscribe(lua_State *L) {
  rconn *c = rconn_check(L, 1);
  int argc = lua_gettop(L) - 1;
  const char *kind = luaL_checkstring(L, 2);
  luaL_argcheck(L, strcmp(kind, "SUBSCRIBE") == 0 || strcmp(kind, "PSUBSCRIBE") == 0, 2,
                "SUBSCRIBE or PSUBSCRIBE expected");
  luaL_argcheck(L, argc >= 2, 3, "channel expected");
  opsh_task *t = opsh_task_check(L, "redis subscribe");
  if (c->subwait) return opsh_error(L, "usage", "a subscribe is already in progress on this connection");
  if (c->state != C_READY) return rconn_not_ready(L, c, kind);
  const char **argv = lua_newuserdatauv(L, (size_t)argc * (sizeof *argv + sizeof(size_t)), 0);
  size_t *lens = (size_t *)(argv + argc);
  collect_args(L, 2, argc, argv, lens, NULL);
  rreq *r = rreq_push(L, c, REQ_SUB, t);
  snprintf(r->cmd, sizeof r->cmd, "%s", kind);
  if (redisAsyncCommandArgv(c->ac, on_sub, c, argc, argv, lens) != REDIS_OK) {
    rreq_release(L, -1);
    return rconn_not_ready(L, c, kind);
  }
  c->subscribed = 1;
  r->n = argc - 1;
  c->subwait = r;
  rreq_wait(r, c->timeout_ms);
  return opsh_yield(L, rreq_cancel, r, lua_gettop(L), subscribe_k);
}

/* [-0, +(0|1), m] the first queued message, taken off the queue once it is a Lua value */
static int pop_message(lua_State *L, rconn *c) {
  if (c->dropped) {
    size_t n = c->dropped;
    c->dropped = 0;
    opsh_error_push(L, "memory", "redis %s:%d: %zu message(s) were dropped: out of memory", c->host, c->port, n);
    return lua_error(L);
  }
  rmsg *m = c->mhead;
  if (!m) return 0;
  size_t patlen = m->patlen == (size_t)-1 ? 0 : m->patlen;
  push_message(L, m->patlen == (size_t)-1 ? NULL : m->data, patlen, m->data + patlen,
               m->chanlen, m->data + patlen + m->chanlen, m->len);
  c->mhead = m->next;
  if (!c->mhead) c->mtail = NULL;
  free(m);
  return 1;
}

/* message | nil | nil, err for the wait boxed at ctx; the connection is at 1 */
static int message_k(lua_State *L, int status, lua_KContext ctx) {
  int box = (int)ctx;
  rreq *r = rreq_take(L, box);
  rconn *c = rconn_get(L, 1);
  if (c && pop_message(L, c)) {
    rreq_release(L, box);
    return 1;
  }
  if (r->err || r->oom) return rreq_return_error(L, box, r);
  rreq_release(L, box);
  return 0;
}

/* conn:message([timeout]) -> {channel=, payload=[, pattern=]} | nil (nothing within timeout)
** | nil, err (the connection is gone) */
static int conn_message(lua_State *L) {
  rconn *c = rconn_check(L, 1);
  uint64_t timeout_ms = opsh_optduration(L, 2, 0, "conn:message");   /* 0 or math.huge: none */
  opsh_task *t = opsh_task_check(L, "redis message");
  if (!c->subscribed) return opsh_error(L, "usage", "this redis connection is not subscribed");
  if (pop_message(L, c)) return 1;
  if (c->state != C_READY) return rconn_not_ready(L, c, "message");
  if (c->msgwait) return opsh_error(L, "usage", "another task is already waiting for a message");
  lua_settop(L, 2);
  rreq *r = rreq_push(L, c, REQ_MSG, t);
  c->msgwait = r;
  rreq_wait(r, timeout_ms);
  return opsh_yield(L, rreq_cancel, r, lua_gettop(L), message_k);
}

const luaL_Reg rconn_cmd_methods[] = {
  {"call", conn_call},
  {"subscribe", conn_subscribe},
  {"message", conn_message},
  {NULL, NULL}
};
