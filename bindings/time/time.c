/*
** time.c — opsh._time: the clock readings Lua cannot make itself (sub-second wall time, the
** monotonic clock) and the local UTC offset at an instant. Parsing and formatting are in
** lua/opsh/time.lua.
*/
#include <math.h>
#include <time.h>
#include "opsh.h"

/* now() -> seconds since the epoch, with microseconds */
static int time_now(lua_State *L) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0) return opsh_error(L, "time", "gettimeofday failed");
  lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
  return 1;
}

/* monotonic() -> seconds from an arbitrary origin; never goes back */
static int time_monotonic(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

/* utc_offset(t) -> seconds east of UTC of the local time zone at epoch time t */
static int time_utc_offset(lua_State *L) {
  lua_Number t = luaL_checknumber(L, 1);
  time_t s = (time_t)floor(t);
  struct tm tm;
  if (!localtime_r(&s, &tm)) return opsh_error(L, "time", "no local time for %f", t);
  lua_pushinteger(L, tm.tm_gmtoff);
  return 1;
}

static const luaL_Reg time_funcs[] = {
  {"now", time_now},
  {"monotonic", time_monotonic},
  {"utc_offset", time_utc_offset},
  {NULL, NULL}
};

int luaopen_opsh_time(lua_State *L) {
  luaL_newlib(L, time_funcs);
  return 1;
}
