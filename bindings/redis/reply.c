/*
** reply.c — replies of opsh._redis between hiredis and Lua. A loop callback must not
** create Lua values (out of memory there has no protected call to land in), so it copies the
** reply hiredis is about to free into a byte buffer; the continuation, running in the task,
** turns that into Lua values, where running out of memory is an ordinary error.
** Format, one node after another: a type byte, then
**   's' status/bulk string, 'e' error: size_t length, bytes · 'i' int64 · 'd' double ·
**   'b' one byte · 'a' array: size_t count, then the elements · 'n' nil.
*/
#include <string.h>
#include <ctype.h>
#include "redis.h"

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

static int put_sized(byte_buf *b, char type, const char *s, size_t len) {
  if (byte_buf_reserve(b, 1 + sizeof len + len) != 0) return -1;
  b->data[b->len++] = type;
  memcpy(b->data + b->len, &len, sizeof len);
  b->len += sizeof len;
  if (len) memcpy(b->data + b->len, s, len);
  b->len += len;
  return 0;
}

int rreply_save(byte_buf *b, const redisReply *rep) {
  switch (rep->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    return put_sized(b, 's', rep->str, rep->len);
  case REDIS_REPLY_ERROR:
    return put_sized(b, 'e', rep->str ? rep->str : "error", rep->str ? rep->len : 5);
  case REDIS_REPLY_INTEGER: {
    int64_t v = (int64_t)rep->integer;
    if (byte_buf_reserve(b, 1 + sizeof v) != 0) return -1;
    b->data[b->len++] = 'i';
    memcpy(b->data + b->len, &v, sizeof v);
    b->len += sizeof v;
    return 0;
  }
  case REDIS_REPLY_ARRAY: {
    size_t n = rep->elements;
    if (byte_buf_reserve(b, 1 + sizeof n) != 0) return -1;
    b->data[b->len++] = 'a';
    memcpy(b->data + b->len, &n, sizeof n);
    b->len += sizeof n;
    for (size_t i = 0; i < n; i++)
      if (rreply_save(b, rep->element[i]) != 0) return -1;
    return 0;
  }
#if HIREDIS_MAJOR >= 1
  case REDIS_REPLY_DOUBLE:
    if (byte_buf_reserve(b, 1 + sizeof rep->dval) != 0) return -1;
    b->data[b->len++] = 'd';
    memcpy(b->data + b->len, &rep->dval, sizeof rep->dval);
    b->len += sizeof rep->dval;
    return 0;
  case REDIS_REPLY_BOOL:
    if (byte_buf_reserve(b, 2) != 0) return -1;
    b->data[b->len++] = 'b';
    b->data[b->len++] = rep->integer != 0;
    return 0;
#endif
  default:   /* REDIS_REPLY_NIL */
    return byte_buf_add(b, "n", 1);
  }
}

int rreply_is_error(const char *p) { return *p == 'e'; }

/* [-0, +1, m] {kind="redis", message=<the server's text>, code="WRONGTYPE", command=} */
static void push_reply_error(lua_State *L, const char *s, size_t len, const char *cmd) {
  lua_pushlstring(L, s, len);
  opsh_error_push(L, "redis", "%s", lua_tostring(L, -1));
  lua_remove(L, -2);
  size_t n = 0;
  while (n < len && n < 32 && (isupper((unsigned char)s[n]) || s[n] == '_')) n++;
  if (n > 0 && (n == len || s[n] == ' ')) {
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, "code");
  }
  if (cmd && *cmd) opsh_error_setstr(L, "command", cmd);
}

static size_t get_size(const char **p) {
  size_t n;
  memcpy(&n, *p, sizeof n);
  *p += sizeof n;
  return n;
}

/* status and bulk strings as strings, integers, arrays as sequences; nil is nil at the top and
** the null value inside arrays; an error reply inside an array is an error object in place */
void rreply_push(lua_State *L, const char **p, int nested, const char *cmd) {
  char type = *(*p)++;
  switch (type) {
  case 's': {
    size_t len = get_size(p);
    lua_pushlstring(L, *p, len);
    *p += len;
    break;
  }
  case 'e': {
    size_t len = get_size(p);
    push_reply_error(L, *p, len, cmd);
    *p += len;
    break;
  }
  case 'i': {
    int64_t v;
    memcpy(&v, *p, sizeof v);
    *p += sizeof v;
    lua_pushinteger(L, (lua_Integer)v);
    break;
  }
  case 'd': {
    double d;
    memcpy(&d, *p, sizeof d);
    *p += sizeof d;
    lua_pushnumber(L, d);
    break;
  }
  case 'b':
    lua_pushboolean(L, *(*p)++ != 0);
    break;
  case 'a': {
    size_t n = get_size(p);
    luaL_checkstack(L, 4, "redis reply nested too deeply");
    lua_createtable(L, n <= 0x7fffffff ? (int)n : 0, 0);
    for (size_t i = 0; i < n; i++) {
      rreply_push(L, p, 1, cmd);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  }
  default:   /* 'n' */
    if (nested) rconn_push_null(L);
    else lua_pushnil(L);
  }
}
