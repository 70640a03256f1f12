/* test_sched.c — the scheduler and the yield helper, driven from C the way a binding uses them. */
#include <stdlib.h>
#include "unit.h"

static int timer_fired, timer_closed;

typedef struct timer_req { uv_timer_t timer; opsh_task *task; } timer_req;

static void on_close(uv_handle_t *h) { timer_closed++; free(h); }

static void on_fire(uv_timer_t *h) {
  timer_req *r = (timer_req *)h;
  timer_fired++;
  lua_State *co = opsh_task_thread(r->task);
  lua_pushinteger(co, 42);
  lua_pushliteral(co, "done");
  opsh_task_wake(r->task, 2);
  uv_close((uv_handle_t *)h, on_close);
}

static void cancel_timer(void *ud) {
  uv_close((uv_handle_t *)ud, on_close);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  return 2;
}

/* test.wait_timer(ms) -> 42, "done" after ms, like a binding's I/O */
static int l_wait_timer(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  opsh_task *t = opsh_task_check(L, "test.wait_timer");
  timer_req *r = malloc(sizeof *r);
  r->task = t;
  uv_timer_init(opsh_loop(L), &r->timer);
  uv_timer_start(&r->timer, on_fire, (uint64_t)ms, 0);
  return opsh_yield(L, cancel_timer, r, 0, wait_k);
}

int main(void) {
  lua_State *L = opsh_runtime_new();
  lua_pushcfunction(L, l_wait_timer);
  lua_setglobal(L, "wait_timer");
  CHECK(unit_lua(L, "opsh = require('opsh')"));

  /* a binding's wait resumes the task with the values its callback pushed */
  CHECK_LUA(L, "local a, b = wait_timer(5) return a .. b", "42done");
  CHECK(timer_fired == 1 && timer_closed == 1);

  /* cancelling a task stops its pending I/O: the callback never runs */
  CHECK(unit_lua(L, "local t = opsh.spawn(wait_timer, 60000) opsh.sleep(0.005) assert(t:cancel()) "
                    "assert(t:status() == 'cancelled') opsh.sleep(0.01)"));
  CHECK(timer_fired == 1 && timer_closed == 2);

  /* outside a task, a blocking call is a clear usage error, not a hang */
  CHECK_LUA_HAS(L, "local ok, e = pcall(coroutine.wrap(function() return wait_timer(1) end)) "
                   "return e.kind .. ': ' .. e.message",
                "usage: test.wait_timer must run inside an opsh task");

  /* tasks run in the order they became ready */
  CHECK_LUA(L, "local order = {} local ts = {} "
               "for i = 1, 5 do ts[i] = opsh.spawn(function() order[#order+1] = i end) end "
               "for i = 1, 5 do ts[i]:wait() end return table.concat(order, ',')",
            "1,2,3,4,5");

  /* a task waiting for something that can never happen is reported as a deadlock */
  CHECK(!unit_lua_value(L, "require('opsh._core').suspend()"));
  CHECK(opsh_error_is(L, -1, "deadlock"));
  lua_pop(L, 1);

  /* a failed task keeps its error and traceback for whoever waits */
  CHECK_LUA(L, "local t = opsh.spawn(function() error(opsh.error('x', 'bad', {code = 'E1'})) end) "
               "local ok, e, tb = (function() pcall(t.wait, t) return t:result() end)() "
               "assert(not ok and e.code == 'E1' and tb:find('stack traceback')) return tostring(e)",
            "bad (code E1)");

  /* 10,000 tasks each sleeping 10 ms: all finish; only the checking task itself is alive */
  CHECK(unit_lua_value(L, "local core = require('opsh._core') local ts = {} "
                          "for i = 1, 10000 do ts[i] = opsh.spawn(opsh.sleep, 0.01) end "
                          "for i = 1, 10000 do ts[i]:wait() end ts = nil collectgarbage() "
                          "return core.stats().tasks"));
  CHECK(lua_tointeger(L, -1) == 1);
  lua_pop(L, 1);

  /* a task cannot wait for itself */
  CHECK_LUA(L, "local ok, e = pcall(function() local me = opsh.current() return me:wait() end) "
               "return e.kind", "usage");

  opsh_runtime_close(L);
  return unit_report("test_sched");
}
