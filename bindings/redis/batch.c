/*
** batch.c — pipelines for opsh._redis. A batch records commands already in the wire
** format (p:set(k, v) is one C call that appends to a buffer), so a pipeline function that
** raises has sent nothing; conn:pipeline(batch) hands the commands to hiredis at once,
** writing while it goes so that the server works meanwhile, and collects the replies in order.
*/
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <hiredis/sds.h>
#include "buf.h"
#include "redis.h"

#define BATCH_META "opsh.redis.batch"
#define FLUSH_AT (64 * 1024)

typedef struct batch {
  byte_buf out;             /* the commands in the wire format */
  size_t *ends;             /* ends[i]: where command i ends in out */
  int n, ncap;
  int secret;               /* out holds the bytes of an opsh.secret: wiped before it is freed */
} batch;

/* room for `more` bytes; a buffer that held a secret is marked so engine/buf.h wipes its old copies */
static int reserve(batch *b, size_t more) {
  if (b->secret) b->out.wipe = 1;   /* growth and free wipe the old copies (buf.h) */
  return byte_buf_reserve(&b->out, more);
}

static void batch_free(batch *b) {
  if (b->secret && b->out.data) explicit_bzero(b->out.data, b->out.cap);
  byte_buf_free(&b->out);
  free(b->ends);
  memset(b, 0, sizeof *b);
}

static void put(batch *b, const char *s, size_t len) {
  memcpy(b->out.data + b->out.len, s, len);   /* after byte_buf_reserve */
  b->out.len += len;
}

/* "<prefix><n>\r\n" */
static void put_count(batch *b, char prefix, size_t n) {
  char tmp[24];
  int i = (int)sizeof tmp;
  tmp[--i] = '\n';
  tmp[--i] = '\r';
  do tmp[--i] = (char)('0' + n % 10); while ((n /= 10) > 0);
  tmp[--i] = prefix;
  put(b, tmp + i, sizeof tmp - (size_t)i);
}

/* [-0, +0, v] append one command: name, then the arguments at first..top (the slots of
** numbers are replaced by their text) */
static void add_command(lua_State *L, batch *b, const char *name, size_t namelen, int first) {
  int top = lua_gettop(L);
  int argc = top - first + 2;
  size_t need = 16 + 24 + namelen;
  int secret = 0;
  for (int i = first; i <= top; i++) {
    size_t len;
    if (!rconn_arg_bytes(L, i, &len))
      luaL_typeerror(L, i, "string, number or secret");
    if (len > SIZE_MAX / 2 - need) opsh_error(L, "memory", "out of memory");
    need += len + 26;
    secret |= opsh_is_secret(L, i);
  }
  if (b->n == b->ncap) {
    int ncap = b->ncap ? b->ncap * 2 : 256;
    size_t *ends = realloc(b->ends, (size_t)ncap * sizeof *ends);
    if (!ends) opsh_error(L, "memory", "out of memory");
    b->ends = ends;
    b->ncap = ncap;
  }
  if (reserve(b, need) != 0) opsh_error(L, "memory", "out of memory");
  b->secret |= secret;
  put_count(b, '*', (size_t)argc);
  put_count(b, '$', namelen);
  put(b, name, namelen);
  put(b, "\r\n", 2);
  for (int i = first; i <= top; i++) {
    size_t len;
    const char *s = rconn_arg_bytes(L, i, &len);
    put_count(b, '$', len);
    put(b, s, len);
    put(b, "\r\n", 2);
  }
  b->ends[b->n++] = b->out.len;
}

static void check_name(lua_State *L, const char *name, size_t len) {
  char cmd[32];
  rconn_command_name(cmd, name, len);
  if (rconn_refused(cmd)) opsh_error(L, "usage", "redis %s cannot be pipelined: use r:subscribe()", cmd);
}

/* p:call(name, args...) */
static int batch_call(lua_State *L) {
  batch *b = luaL_checkudata(L, 1, BATCH_META);
  size_t len;
  const char *name = luaL_checklstring(L, 2, &len);
  check_name(L, name, len);
  add_command(L, b, name, len, 3);
  return 0;
}

/* p:<command>(args...): the name is the closure's upvalue */
static int batch_named(lua_State *L) {
  batch *b = luaL_checkudata(L, 1, BATCH_META);
  size_t len;
  const char *name = lua_tolstring(L, lua_upvalueindex(1), &len);
  add_command(L, b, name, len, 2);
  return 0;
}

/* methods table __index: p.set -> a closure recording SET, made once */
static int batch_method(lua_State *L) {
  size_t len;
  const char *key = lua_tolstring(L, 2, &len);
  if (!key || lua_type(L, 2) != LUA_TSTRING || len == 0 || len > 64) return 0;
  luaL_Buffer buf;
  char *up = luaL_buffinitsize(L, &buf, len);
  for (size_t i = 0; i < len; i++) up[i] = (char)toupper((unsigned char)key[i]);
  luaL_pushresultsize(&buf, len);
  check_name(L, lua_tostring(L, -1), len);
  lua_pushcclosure(L, batch_named, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

static int batch_count(lua_State *L) {
  lua_pushinteger(L, ((batch *)luaL_checkudata(L, 1, BATCH_META))->n);
  return 1;
}

static int batch_gc(lua_State *L) {
  batch_free(luaL_checkudata(L, 1, BATCH_META));
  return 0;
}

/* batch() -> an empty pipeline recorder */
int rconn_batch_new(lua_State *L) {
  batch *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  if (luaL_newmetatable(L, BATCH_META)) {
    lua_pushcfunction(L, batch_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, batch_count);
    lua_setfield(L, -2, "__len");
    lua_createtable(L, 0, 32);   /* methods; commands are added on first use */
    lua_pushcfunction(L, batch_call);
    lua_setfield(L, -2, "call");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, batch_method);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
  return 1;
}

static void on_pipe_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  rreq *r = privdata;
  const redisReply *rep = reply;
  r->owed--;
  r->got++;
  if (!rep) r->lost = 1;
  else if (r->task && !r->lost && !r->oom && rreply_save(&r->out, rep) != 0) r->oom = 1;
  if (r->task && r->got == r->n) {
    if (r->lost) rreq_wake_lost(r, ac);
    else rreq_done(r);
  }
  rreq_maybe_free(r);
}

/* {replies..., n=} | nil, err from the pipeline boxed at ctx */
static int pipeline_k(lua_State *L, int status, lua_KContext ctx) {
  int box = (int)ctx;
  rreq *r = rreq_take(L, box);
  if (r->err || r->oom) return rreq_return_error(L, box, r);
  lua_createtable(L, r->n, 1);
  const char *p = r->out.data;
  for (int i = 1; i <= r->n; i++) {
    rreply_push(L, &p, 1, NULL);
    lua_rawseti(L, -2, i);
  }
  lua_pushinteger(L, r->n);
  lua_setfield(L, -2, "n");
  rreq_release(L, box);
  return 1;
}

/* conn:pipeline(batch) -> {replies..., n=} | nil, err. Every command is sent before any
** reply is read; error replies are error objects in place, nil replies the null value. */
static int conn_pipeline(lua_State *L) {
  rconn *c = rconn_check(L, 1);
  batch *b = luaL_checkudata(L, 2, BATCH_META);
  opsh_task *t = opsh_task_check(L, "redis pipeline");
  lua_settop(L, 2);
  if (c->subscribed) return opsh_error(L, "usage", "this redis connection is subscribed");
  if (b->n == 0) {
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "n");
    return 1;
  }
  if (c->state != C_READY) return rconn_not_ready(L, c, "pipeline");
  rreq *r = rreq_push(L, c, REQ_PIPE, t);
  snprintf(r->cmd, sizeof r->cmd, "pipeline");
  r->n = b->n;
  /* while queueing, only a failed write can call back (NULL replies): keep r, wake nobody */
  r->task = NULL;
  r->queueing = 1;
  size_t start = 0;
  for (int i = 0; i < b->n && !r->lost; i++) {
    if (redisAsyncFormattedCommand(c->ac, on_pipe_reply, r, b->out.data + start, b->ends[i] - start) != REDIS_OK)
      break;
    r->owed++;
    start = b->ends[i];
    if (sdslen(c->ac->c.obuf) >= FLUSH_AT) redisAsyncHandleWrite(c->ac);
  }
  r->queueing = 0;
  if (r->lost || r->owed == 0) {
    int sent = r->lost;
    rreq_release(L, -1);   /* a lost connection has answered everything it owed */
    lua_pushnil(L);
    rconn_push_error(L, c, "connect", "pipeline", "connection lost (%s)", c->why[0] ? c->why : "closed");
    lua_pushboolean(L, sent);
    lua_setfield(L, -2, "sent");
    return 2;
  }
  r->task = t;
  rreq_wait(r, c->timeout_ms);
  return opsh_yield(L, rreq_cancel, r, lua_gettop(L), pipeline_k);
}

const luaL_Reg rconn_batch_methods[] = {
  {"pipeline", conn_pipeline},
  {NULL, NULL}
};
