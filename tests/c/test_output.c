/* test_output.c — table and TSV rendering, secret redaction in every place a value shows, and
** secret bytes wiped from memory once they are no longer needed. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "unit.h"
#include "buf.h"

/* Needles are kept XOR-masked, so that only the secret bytes themselves match the unmasked form;
** the mask is volatile so that the compiler cannot keep an unmasked copy on the stack. */
#define MASK 0x5A
static volatile unsigned char mask = MASK;

/* 1 if this process's readable memory holds the bytes masked[i] ^ MASK (freed memory included) */
static int memory_holds(const unsigned char *masked, size_t n) {
  FILE *maps = fopen("/proc/self/maps", "r");
  int mem = open("/proc/self/mem", O_RDONLY);
  size_t chunk = 1 << 20;
  unsigned char *buf = malloc(chunk + n);
  char line[512];
  int found = 0;
  while (maps && mem >= 0 && buf && !found && fgets(line, sizeof line, maps)) {
    unsigned long lo, hi;
    char perms[5];
    if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3 || perms[0] != 'r') continue;
    /* kernel pages, and the terabytes AddressSanitizer reserves for its shadow */
    if (strstr(line, "[vvar]") || strstr(line, "[vsyscall]") || hi - lo > (1ul << 32)) continue;
    for (unsigned long at = lo; !found && at < hi; at += chunk) {
      size_t want = hi - at < chunk + n ? hi - at : chunk + n;
      ssize_t got = pread(mem, buf, want, (off_t)at);
      for (ssize_t i = 0; i + (ssize_t)n <= got && !found; i++) {
        size_t j = 0;
        while (j < n && (buf[i + j] ^ MASK) == masked[j]) j++;
        found = j == n;
      }
    }
  }
  if (buf) explicit_bzero(buf, chunk + n);
  free(buf);
  if (mem >= 0) close(mem);
  if (maps) fclose(maps);
  return found;
}

/* Dead stack below the caller may hold bytes that were in vector registers (memcpy moves them
** there; the dynamic linker saves those registers when it resolves a symbol): out of a binding's
** reach, so scrubbed before a scan, as libgcrypt's burn_stack does. */
static __attribute__((noinline)) void scrub_stack(void) {
  char pad[64 * 1024];
  explicit_bzero(pad, sizeof pad);
  __asm__ volatile("" : : "r"(pad) : "memory");
}

/* the buffers bindings share wipe what growing and freeing leave behind */
static void test_buf_wipes(void) {
  static const unsigned char masked[24] = {0x13, 0x7f, 0x2e, 0x55, 0x91, 0xc4, 0x08, 0x3a, 0xe6, 0x4d, 0x77, 0x1b,
                                           0xa9, 0x62, 0x35, 0xd0, 0x0c, 0xbb, 0x48, 0x9e, 0x21, 0xf3, 0x6a, 0x84};
  for (int marked = 0; marked <= 1; marked++) {
    byte_buf b = {0};
    b.wipe = marked;
    int copies = marked ? 20000 : 500, added = 0;   /* 12 KiB, always wiped; 480 KiB, wiped because marked */
    for (int k = 0; k < copies; k++) {
      for (size_t i = 0; i < sizeof masked; i++) {   /* byte by byte into the buffer: no copy elsewhere */
        if (byte_buf_reserve(&b, 1) != 0) break;
        b.data[b.len++] = (char)(masked[i] ^ mask);
        added++;
      }
    }
    CHECK(added == copies * (int)sizeof masked);
    CHECK(memory_holds(masked, sizeof masked));   /* the scan does find them while they are held */
    byte_buf_free(&b);
    scrub_stack();
    CHECK(!memory_holds(masked, sizeof masked));
  }
}

/* a TLS key given as a file path never becomes a Lua string, and the bytes read are wiped */
static void test_tls_key_file_wiped(lua_State *L) {
  char dir[] = "/tmp/opsh-test-output-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char cmd[1024], key[100], cert[100];
  snprintf(key, sizeof key, "%s/server.key", dir);
  snprintf(cert, sizeof cert, "%s/server.crt", dir);
  snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 -subj /CN=localhost "
           ">/dev/null 2>&1", key, cert);
  CHECK(system(cmd) == 0);
  unsigned char masked[48];
  char text[1024];
  int fd = open(key, O_RDONLY);
  ssize_t got = fd >= 0 ? read(fd, text, sizeof text) : -1;   /* not stdio: its buffer would keep a copy */
  if (fd >= 0) close(fd);
  CHECK(got > 200);
  for (size_t i = 0; i < sizeof masked; i++) masked[i] = (unsigned char)text[100 + i] ^ MASK;
  explicit_bzero(text, sizeof text);

  char src[512];
  snprintf(src, sizeof src, "local s = require('opsh.server').listen({port = 0, tls = {cert = '%s', key = '%s'}}) "
           "s:close() collectgarbage() collectgarbage()", cert, key);
  CHECK(unit_lua(L, src));
  lua_gc(L, LUA_GCCOLLECT);
  scrub_stack();
  CHECK(!memory_holds(masked, sizeof masked));
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
}

int main(void) {
  lua_State *L = opsh_runtime_new();
  CHECK(unit_lua(L, "out = require('opsh.out') opsh = require('opsh')"));

  CHECK_LUA(L, "return out.render({{name = 'web', ready = 3, up = true}, "
                          "{name = 'document-service', ready = 10, up = false}}, "
                          "{columns = {'name', {'ready', 'READY PODS'}, 'up'}})",
            "NAME               READY PODS   UP\n"
            "web                3            true\n"
            "document-service   10           false\n");

  CHECK_LUA(L, "return out.render({{a = 'x\\ty', b = 'two\\nlines'}}, {format = 'tsv'})",
            "x\\ty\ttwo\\nlines\n");

  CHECK_LUA(L, "return out.render({}, {})",
            "(none)\n");

  CHECK_LUA(L, "return out.render({{spec = {replicas = 2}}}, {columns = {'spec.replicas'}})",
            "SPEC REPLICAS\n2\n");

  /* secrets: table, TSV, nested values, error messages and tostring never show the bytes */
  CHECK(unit_lua_value(L, "local s = opsh.secret('p@ssw0rd-123') "
                          "return out.render({{user = 'admin', password = s}}, {}) .. "
                          "out.render({{password = s}}, {format = 'tsv'}) .. "
                          "out.render({{conn = {password = s}}}, {format = 'tsv'}) .. tostring(s)"));
  CHECK(strstr(lua_tostring(L, -1), "p@ssw0rd") == NULL);
  CHECK(strstr(lua_tostring(L, -1), "<redacted>") != NULL);
  lua_pop(L, 1);

  CHECK(!unit_lua_value(L, "local s = opsh.secret('p@ssw0rd-123') return 'password=' .. s"));
  CHECK(strstr(luaL_tolstring(L, -1, NULL), "p@ssw0rd") == NULL);
  lua_pop(L, 2);

  /* the C side reads the bytes; Lua sees only <redacted> and the length */
  opsh_secret_push(L, "k3y", 3);
  size_t len;
  const char *raw = opsh_secret_check(L, -1, &len);
  CHECK(len == 3 && memcmp(raw, "k3y", 3) == 0);
  CHECK_STR(luaL_tolstring(L, -1, NULL), "<redacted>");
  lua_pop(L, 2);

  test_buf_wipes();
  test_tls_key_file_wiped(L);

  opsh_runtime_close(L);
  return unit_report("test_output");
}
