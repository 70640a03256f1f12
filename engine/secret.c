/*
** secret.c — opsh.secret values: userdata holding bytes that print, concatenate and encode
** as <redacted>. Only C primitives read the bytes (opsh_secret_check); the memory is wiped
** when the value is collected.
*/
#include <string.h>
#include <openssl/crypto.h>
#include "opsh.h"
#include "runtime.h"

typedef struct secret { size_t len; char bytes[]; } secret;

void opsh_secret_push(lua_State *L, const char *s, size_t len) {
  secret *sec = lua_newuserdatauv(L, sizeof(secret) + len + 1, 0);
  sec->len = len;
  memcpy(sec->bytes, s, len);
  sec->bytes[len] = '\0';
  luaL_setmetatable(L, OPSH_SECRET_META);
}

int opsh_is_secret(lua_State *L, int idx) {
  return luaL_testudata(L, idx, OPSH_SECRET_META) != NULL;
}

const char *opsh_secret_check(lua_State *L, int idx, size_t *len) {
  secret *sec = luaL_testudata(L, idx, OPSH_SECRET_META);
  if (sec) {
    if (len) *len = sec->len;
    return sec->bytes;
  }
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tolstring(L, idx, len);
  luaL_typeerror(L, idx, "secret or string");
  return NULL;
}

static int secret_tostring(lua_State *L) {
  lua_pushliteral(L, "<redacted>");
  return 1;
}

static int secret_concat(lua_State *L) {
  return opsh_error(L, "usage", "a secret cannot be concatenated into a string (it would leak)");
}

static int secret_eq(lua_State *L) {
  size_t la, lb;
  const char *a = opsh_secret_check(L, 1, &la), *b = opsh_secret_check(L, 2, &lb);
  lua_pushboolean(L, la == lb && CRYPTO_memcmp(a, b, la) == 0);
  return 1;
}

static int secret_len(lua_State *L) {
  secret *sec = luaL_checkudata(L, 1, OPSH_SECRET_META);
  lua_pushinteger(L, (lua_Integer)sec->len);
  return 1;
}

static int secret_gc(lua_State *L) {
  secret *sec = luaL_checkudata(L, 1, OPSH_SECRET_META);
  OPENSSL_cleanse(sec->bytes, sec->len);
  sec->len = 0;
  return 0;
}

static int secret_index(lua_State *L) {
  return opsh_error(L, "usage", "a secret has no fields; pass it to the primitive that needs it");
}

static const luaL_Reg secret_meta[] = {
  {"__tostring", secret_tostring},
  {"__concat", secret_concat},
  {"__eq", secret_eq},
  {"__len", secret_len},
  {"__gc", secret_gc},
  {"__index", secret_index},
  {NULL, NULL}
};

void opsh_secret_meta(lua_State *L) {
  luaL_newmetatable(L, OPSH_SECRET_META);
  luaL_setfuncs(L, secret_meta, 0);
  lua_pushliteral(L, "opsh.secret");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}
