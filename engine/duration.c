/*
** duration.c — seconds from Lua to timer milliseconds, the one conversion every wait uses:
** math.huge is "no timer", and what a uv timer cannot hold is a usage error, never a wrap.
*/
#include <math.h>
#include "opsh.h"

uint64_t opsh_duration_ms(lua_State *L, lua_Number seconds, const char *what) {
  if (isnan(seconds))
    opsh_error(L, "usage", "%s: the duration is not a number (NaN)", what);
  if (seconds < 0)
    opsh_error(L, "usage", "%s: the duration must not be negative (got %f s)", what, seconds);
  if (isinf(seconds)) return OPSH_FOREVER;
  if (seconds > OPSH_DURATION_MAX)
    opsh_error(L, "usage", "%s: %f s is too long for a timer (math.huge waits forever)", what, seconds);
  return (uint64_t)(seconds * 1000.0 + 0.5);
}

uint64_t opsh_checkduration(lua_State *L, int arg, const char *what) {
  if (lua_type(L, arg) != LUA_TNUMBER) {
    luaL_checknumber(L, arg);   /* the usual "number expected" for a string or a table */
  }
  return opsh_duration_ms(L, lua_tonumber(L, arg), what);
}

uint64_t opsh_optduration(lua_State *L, int arg, lua_Number def, const char *what) {
  return lua_isnoneornil(L, arg) ? opsh_duration_ms(L, def, what) : opsh_checkduration(L, arg, what);
}
