/* test_cli.c — global flag parsing, script argument typing and declaration checks. */
#include "unit.h"

static const char *prelude =
  "cli = require('opsh.cli') script = require('opsh.script') "
  "decl = script.validate({description = 'd', categories = {'c'}, run = function() end, args = {"
  "  replicas = {help = 'n', type = 'integer', required = true},"
  "  wait = {help = 'w', type = 'duration', default = '5m'},"
  "  force = {help = 'f', type = 'boolean', default = false},"
  "  tier = {help = 't', choices = {'Basic', 'Premium'}, default = 'Basic'},"
  "  names = {help = 'l', type = 'list'}}}, 'test')"
  "function kind_of(f, ...) local ok, e = pcall(f, ...) return ok and 'ok' or (e.kind .. ': ' .. e.message) end ";

int main(void) {
  lua_State *L = opsh_runtime_new();
  CHECK(unit_lua(L, prelude));

  CHECK_LUA(L, "local o, rest = cli.parse({'--env', 'twin', 'run', 'scale', '-o', 'json', "
                          "'--replicas=3', '--dry-run', '-y'}) "
                          "return table.concat({o.env, o.output, tostring(o.dry_run), tostring(o.yes), "
                          "table.concat(rest, ' ')}, '|')",
            "twin|json|true|true|run scale --replicas=3");

  CHECK_LUA(L, "return kind_of(cli.parse, {'-o', 'xml'})",
            "usage: unknown output format 'xml' (use table, json, yaml or tsv)");

  CHECK_LUA(L, "return kind_of(cli.parse, {'--env'})",
            "usage: --env needs a value");

  CHECK_LUA(L, "local raw = cli.script_args({'--replicas', '4', '--force', '--wait=90s', "
                          "'--names=web,gateway'}, decl, 's') local a = script.parse_args(decl, raw, 's') "
                          "return string.format('%s %s %s %s %s %s', math.type(a.replicas), a.replicas, "
                          "tostring(a.force), a.wait, a.tier, table.concat(a.names, '+'))",
            "integer 4 true 90 Basic web+gateway");

  CHECK_LUA(L, "local a = script.parse_args(decl, cli.script_args({'--replicas=1', '--no-force'}, "
                          "decl, 's'), 's') return tostring(a.force) .. ' ' .. a.wait",
            "false 300");

  CHECK_LUA(L, "return kind_of(script.parse_args, decl, {}, 's')",
            "usage: s: missing required argument --replicas (see 'opsh help s')");

  CHECK_LUA(L, "return kind_of(script.parse_args, decl, {replicas = 'ten'}, 's')",
            "usage: s: --replicas expects an integer, got 'ten' (see 'opsh help s')");

  CHECK_LUA(L, "return kind_of(script.parse_args, decl, {replica = '1'}, 's')",
            "usage: s: unknown argument --replica; did you mean --replicas?");

  CHECK_LUA(L, "return kind_of(script.parse_args, decl, {replicas = '1', tier = 'Gold'}, 's')",
            "usage: s: --tier must be one of Basic, Premium, got 'Gold'");

  CHECK_LUA_HAS(L, "return kind_of(script.parse_args, decl, {replicas = '1', wait = '5 minutes'}, 's')",
                "--wait expects a duration like 90, 1.5s, 1h30m or 2d");

  CHECK_LUA(L, "return kind_of(cli.parse, {'--env', 'staging', 'run', 'x', '--env=production'})",
            "usage: --env given more than once");

  CHECK_LUA(L, "return kind_of(cli.parse, {'--env', '--dry-run', 'run', 'x'})",
            "usage: --env needs a value");

  CHECK_LUA(L, "return kind_of(script.validate, {description = 'd', categories = {'c'}, "
               "run = function() end, descripton = 'typo'}, 'x.lua')",
            "script: x.lua: unknown field 'descripton' in the declaration; did you mean 'description'?");

  CHECK_LUA(L, "return kind_of(script.validate, {description = 'd', categories = {'c'}, "
                          "run = function() end, args = {env = {help = 'h'}}}, 'x.lua')",
            "script: x.lua: argument 'env' clashes with a global flag");

  CHECK_LUA(L, "return kind_of(script.validate, {description = 'd', categories = {'c'}, "
                          "run = function() end, flags = {'destructiv'}}, 'x.lua')",
            "script: x.lua: unknown flag 'destructiv'; did you mean 'destructive'?");

  CHECK_LUA(L, "return script.nearest('helth-check', {'health-check', 'hello', 'backup'})",
            "health-check");
  CHECK_LUA(L, "return tostring(script.nearest('zzzzzz', {'health-check', 'hello'}))",
            "nil");

  opsh_runtime_close(L);
  return unit_report("test_cli");
}
