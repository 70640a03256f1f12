/*
** redis_cmd.c — commands and replies for opsh._redis: binary-safe argv (strings, numbers,
** secrets) through redisAsyncCommandArgv, replies turned into Lua values, pipelines sent in
** one go, and pub/sub messages queued for an iterator. Requests are answered in the order
** they were sent, so many tasks can share one connection.
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include "redis_int.h"

static char null_key;

static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "redis.null");
  return 1;
}

/* [-0, +1, m] the value nil replies become inside arrays and pipelines */
void rconn_push_null(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &null_key) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_newuserdatauv(L, 0, 0);
  if (luaL_newmetatable(L, "opsh.redis.null")) {
    lua_pushcfunction(L, null_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &null_key);
}

/* [-0, +0, -] use the value at idx (json.null) as the null of replies */
void rconn_set_null(lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &null_key);
}

/* [-0, +1, m] {kind="redis", message=<the server's text>, code="WRONGTYPE", command=} */
static void push_reply_error(lua_State *L, const redisReply *rep, const char *cmd) {
  opsh_error_push(L, "redis", "%s", rep->str ? rep->str : "error");
  size_t n = 0;
  while (rep->str && n < rep->len && n < 32 && (isupper((unsigned char)rep->str[n]) || rep->str[n] == '_'))
    n++;
  if (n > 0 && (n == rep->len || rep->str[n] == ' ')) {
    lua_pushlstring(L, rep->str, n);
    lua_setfield(L, -2, "code");
  }
  if (cmd && *cmd) opsh_error_setstr(L, "command", cmd);
}

/* [-0, +1, m] a reply as a Lua value: status and bulk strings as strings, integers, arrays as
** sequences; nil is nil at the top and the null value inside arrays; an error reply inside an
** array is an error object in place */
void rconn_push_reply(lua_State *L, const redisReply *rep, int nested, const char *cmd) {
  switch (rep->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    lua_pushlstring(L, rep->str, rep->len);
    break;
  case REDIS_REPLY_INTEGER:
    lua_pushinteger(L, (lua_Integer)rep->integer);
    break;
  case REDIS_REPLY_ERROR:
    push_reply_error(L, rep, cmd);
    break;
  case REDIS_REPLY_ARRAY:
    if (!lua_checkstack(L, 4)) {
      rconn_push_null(L);
      break;
    }
    lua_createtable(L, (int)rep->elements, 0);
    for (size_t i = 0; i < rep->elements; i++) {
      rconn_push_reply(L, rep->element[i], 1, cmd);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
#if HIREDIS_MAJOR >= 1
  case REDIS_REPLY_DOUBLE:
    lua_pushnumber(L, rep->dval);
    break;
  case REDIS_REPLY_BOOL:
    lua_pushboolean(L, rep->integer != 0);
    break;
#endif
  default:   /* REDIS_REPLY_NIL */
    if (nested) rconn_push_null(L);
    else lua_pushnil(L);
  }
}

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
      if (what) luaL_error(L, "bad argument to '%s' (string, number or secret expected, got %s)",
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
    lua_State *co = opsh_task_thread(r->task);
    if (!rep) {
      rreq_wake_lost(r, ac);
    } else if (rep->type == REDIS_REPLY_ERROR) {
      lua_pushnil(co);
      push_reply_error(co, rep, r->cmd);
      opsh_task_wake(r->task, 2);
    } else {
      rconn_push_reply(co, rep, 0, r->cmd);
      opsh_task_wake(r->task, 1);
    }
    rreq_unwait(r);
  }
  rreq_maybe_free(r);
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
  rreq *r = rreq_new(c, REQ_CALL, t);
  if (!r) return luaL_error(L, "out of memory");
  memcpy(r->cmd, cmd, sizeof cmd);
  if (redisAsyncCommandArgv(c->ac, on_reply, r, argc, argv, lens) != REDIS_OK) {
    free(r);
    return rconn_not_ready(L, c, cmd);
  }
  r->owed = 1;
  rreq_wait(r, c->timeout_ms);
  return opsh_yield(L, rreq_cancel, r, lua_gettop(L), rconn_results_k);
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

static void deliver(rconn *c, const redisReply *pat, const redisReply *chan, const redisReply *payload) {
  if (chan->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) return;
  if (c->msgwait) {
    rreq *r = c->msgwait;
    push_message(opsh_task_thread(r->task), pat ? pat->str : NULL, pat ? pat->len : 0,
                 chan->str, chan->len, payload->str, payload->len);
    opsh_task_wake(r->task, 1);
    rreq_unwait(r);
    rreq_maybe_free(r);
    return;
  }
  size_t patlen = pat ? pat->len : 0;
  rmsg *m = malloc(sizeof *m + patlen + chan->len + payload->len);
  if (!m) return;
  m->next = NULL;
  m->patlen = pat ? patlen : (size_t)-1;
  m->chanlen = chan->len;
  m->len = payload->len;
  if (pat) memcpy(m->data, pat->str, patlen);
  memcpy(m->data + patlen, chan->str, chan->len);
  memcpy(m->data + patlen + chan->len, payload->str, payload->len);
  if (c->mtail) c->mtail->next = m; else c->mhead = m;
  c->mtail = m;
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
      lua_pushboolean(opsh_task_thread(r->task), 1);
      opsh_task_wake(r->task, 1);
      rreq_unwait(r);
      rreq_maybe_free(r);
    }
  } else if (strcasecmp(type, "message") == 0) {
    deliver(c, NULL, rep->element[1], rep->element[2]);
  } else if (strcasecmp(type, "pmessage") == 0 && rep->elements >= 4) {
    deliver(c, rep->element[1], rep->element[2], rep->element[3]);
  }
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
  rreq *r = rreq_new(c, REQ_SUB, t);
  if (!r) return luaL_error(L, "out of memory");
  snprintf(r->cmd, sizeof r->cmd, "%s", kind);
  if (redisAsyncCommandArgv(c->ac, on_sub, c, argc, argv, lens) != REDIS_OK) {
    free(r);
    return rconn_not_ready(L, c, kind);
  }
  c->subscribed = 1;
  r->n = argc - 1;
  c->subwait = r;
  rreq_wait(r, c->timeout_ms);
  return opsh_yield(L, rreq_cancel, r, lua_gettop(L), rconn_results_k);
}

/* conn:message([timeout]) -> {channel=, payload=[, pattern=]} | nil (nothing within timeout)
** | nil, err (the connection is gone) */
static int conn_message(lua_State *L) {
  rconn *c = rconn_check(L, 1);
  lua_Number timeout = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, timeout >= 0, 2, "must not be negative");
  opsh_task *t = opsh_task_check(L, "redis message");
  if (!c->subscribed) return opsh_error(L, "usage", "this redis connection is not subscribed");
  if (c->mhead) {
    rmsg *m = c->mhead;
    c->mhead = m->next;
    if (!c->mhead) c->mtail = NULL;
    size_t patlen = m->patlen == (size_t)-1 ? 0 : m->patlen;
    push_message(L, m->patlen == (size_t)-1 ? NULL : m->data, patlen, m->data + patlen,
                 m->chanlen, m->data + patlen + m->chanlen, m->len);
    free(m);
    return 1;
  }
  if (c->state != C_READY) return rconn_not_ready(L, c, "message");
  if (c->msgwait) return opsh_error(L, "usage", "another task is already waiting for a message");
  rreq *r = rreq_new(c, REQ_MSG, t);
  if (!r) return luaL_error(L, "out of memory");
  c->msgwait = r;
  rreq_wait(r, (uint64_t)(timeout * 1000.0 + 0.5));
  return opsh_yield(L, rreq_cancel, r, lua_gettop(L), rconn_results_k);
}

const luaL_Reg rconn_cmd_methods[] = {
  {"call", conn_call},
  {"subscribe", conn_subscribe},
  {"message", conn_message},
  {NULL, NULL}
};
