/* test_sched.c — the scheduler and the yield helper, driven from C the way a binding uses them. */
#include <stdlib.h>
#include "unit.h"
#include "runtime.h"

/* ---- out of memory while a loop callback wakes a task (the wake rule) ---- */

static lua_Alloc real_alloc;
static void *real_ud;
static int oom_armed, oom_refused, oom_through_tasks;
static opsh_task *oom_waiter;
static uv_timer_t oom_timer;

static void *test_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  if (oom_armed && nsize > 0 && (ptr == NULL || nsize > osize)) {
    oom_refused++;
    return NULL;
  }
  return real_alloc(ud, ptr, osize, nsize);
}

static void oom_end(void) {
  oom_armed = 0;
  opsh_rt->before_turn = NULL;
  uv_timer_stop(&oom_timer);
  if (oom_waiter) opsh_task_ready(oom_waiter);
  oom_waiter = NULL;
}

/* before the ready tasks of a turn run: memory is back (unless tasks run without it too) */
static void oom_turn(void) {
  if (!oom_through_tasks) oom_end();
}

static void oom_timeout(uv_timer_t *h) {
  if (!oom_through_tasks) {
    fprintf(stderr, "test_sched: no task became ready while memory was short\n");
    unit_failures++;
  }
  oom_end();
}

static int oom_k(lua_State *L, int status, lua_KContext ctx) {
  lua_pushinteger(L, oom_refused);
  return 1;
}

/* without_memory([through_tasks]) -> allocations refused: the caller waits while every Lua
** allocation fails: through the loop callbacks until a task is ready to run, or for 100 ms
** (tasks included) with through_tasks */
static int l_without_memory(lua_State *L) {
  static int timer_ready;
  opsh_task *t = opsh_task_check(L, "without_memory");
  if (!timer_ready) {
    uv_timer_init(opsh_loop(L), &oom_timer);
    timer_ready = 1;
  }
  oom_through_tasks = lua_toboolean(L, 1);
  uv_timer_start(&oom_timer, oom_timeout, oom_through_tasks ? 100 : 5000, 0);
  oom_waiter = t;
  oom_refused = 0;
  opsh_rt->before_turn = oom_turn;
  oom_armed = 1;
  return opsh_yield(L, NULL, NULL, 0, oom_k);
}

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
  real_alloc = lua_getallocf(L, &real_ud);
  lua_setallocf(L, test_alloc, real_ud);
  lua_pushcfunction(L, l_wait_timer);
  lua_setglobal(L, "wait_timer");
  lua_pushcfunction(L, l_without_memory);
  lua_setglobal(L, "without_memory");
  CHECK(unit_lua(L, "opsh = require('opsh')"));

  /* I/O completing while Lua has no memory: the callbacks only ready the task (no allocation
  ** outside a protected call), the task makes its results once memory is back */
  CHECK(unit_lua(L, "fs = require('opsh.fs') net = require('opsh.net') crypto = require('opsh.crypto') "
                    "dir = fs.tmpdir('opsh-test-sched-') fs.write(dir .. '/f', 'contents of f 7d1e')"));
  CHECK_LUA(L, "local t = opsh.spawn(fs.read, dir .. '/f') opsh.yield() "
               "local refused = without_memory() assert(refused == 0, refused) return t:wait()",
            "contents of f 7d1e");
  CHECK_LUA(L, "local t = opsh.spawn(net.port_open, '127.0.0.1', net.free_port()) opsh.yield() "
               "local refused = without_memory() assert(refused == 0, refused) return select(2, t:wait())",
            "connection refused");
  CHECK_LUA_HAS(L, "local t = opsh.spawn(crypto.keys.generate, {type = 'ec'}) opsh.yield() "
                   "local refused = without_memory() assert(refused == 0, refused) "
                   "return require('opsh._core').reveal(t:wait())",
                "-----BEGIN PRIVATE KEY-----");
  CHECK_LUA(L, "local t = opsh.spawn(opsh.sleep, 0.001) opsh.yield() "
               "local refused = without_memory() assert(refused == 0, refused) t:wait() return 'slept'",
            "slept");
  /* ...and still none while the woken task runs: it fails with the memory error, no panic */
  CHECK_LUA(L, "local t = opsh.spawn(fs.read, dir .. '/f') opsh.yield() without_memory(true) "
               "local ok, e = pcall(t.wait, t) return tostring(ok) .. ' ' .. tostring(e)",
            "false not enough memory");
  CHECK(unit_lua(L, "fs.rmtree(dir)"));

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
