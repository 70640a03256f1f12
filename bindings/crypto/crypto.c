/*
** crypto.c — opsh._crypto, OpenSSL 3 primitives: random bytes and passwords, digests, HMAC,
** base64/base64url, hex, constant-time comparison. Keys, JWT and certificates are in
** keys.c, jwt.c and x509.c; Azure Storage's CRC-64 in crc64.c. The public API is lua/opsh/crypto.lua.
** Secrets go in as opsh.secret or strings; whatever is derived from a secret without hashing
** (a password, a decoded key) comes back as an opsh.secret.
*/
#include <stdarg.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "crypto.h"

#define BOX_META "opsh.crypto.box"
#define SCRATCH_META "opsh.crypto.scratch"
#define MAX_RANDOM (1 << 24)   /* 16 MiB: more is a mistake, not a need */

/* ---- boxes ---- */

typedef struct box { void *p; opsh_crypto_free_fn free; } box;

static int box_gc(lua_State *L) {
  box *b = luaL_checkudata(L, 1, BOX_META);
  if (b->p) b->free(b->p);
  b->p = NULL;
  return 0;
}

void **opsh_crypto_box(lua_State *L, opsh_crypto_free_fn fn) {
  box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->free = fn;
  luaL_setmetatable(L, BOX_META);
  return &b->p;
}

/* scratch buffers for secret bytes: wiped when done, or by __gc if an error comes first */
typedef struct scratch { size_t n; unsigned char bytes[]; } scratch;

static int scratch_gc(lua_State *L) {
  scratch *s = luaL_checkudata(L, 1, SCRATCH_META);
  OPENSSL_cleanse(s->bytes, s->n);
  s->n = 0;
  return 0;
}

unsigned char *opsh_crypto_scratch(lua_State *L, size_t n) {
  scratch *s = lua_newuserdatauv(L, sizeof *s + n + 1, 0);
  s->n = n + 1;
  luaL_setmetatable(L, SCRATCH_META);
  return s->bytes;
}

void opsh_crypto_wipe(lua_State *L, int idx) {
  scratch *s = luaL_checkudata(L, idx, SCRATCH_META);
  OPENSSL_cleanse(s->bytes, s->n);
  s->n = 0;
}

void *opsh_crypto_unbox(lua_State *L, int idx) {
  box *b = luaL_testudata(L, idx, BOX_META);
  return b ? b->p : NULL;
}

void opsh_crypto_free_pkey(void *p) { EVP_PKEY_free(p); }
void opsh_crypto_free_x509(void *p) { X509_free(p); }

/* ---- errors ---- */

int opsh_crypto_error(lua_State *L, const char *code, const char *fmt, ...) {
  va_list ap;
  ERR_clear_error();
  lua_createtable(L, 0, 3);
  lua_pushliteral(L, "crypto");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, OPSH_ERROR_META);
  return lua_error(L);
}

/* ---- base64 ---- */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t opsh_crypto_b64_len(size_t n, int url) {
  return url ? (n / 3) * 4 + (n % 3 ? n % 3 + 1 : 0) : (n + 2) / 3 * 4;
}

void opsh_crypto_b64_encode(const unsigned char *in, size_t n, char *out, int url) {
  const char *a = url ? b64_url : b64_std;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    *out++ = a[v >> 18];
    *out++ = a[v >> 12 & 63];
    *out++ = a[v >> 6 & 63];
    *out++ = a[v & 63];
  }
  if (n - i == 1) {
    unsigned v = (unsigned)in[i] << 16;
    *out++ = a[v >> 18];
    *out++ = a[v >> 12 & 63];
    if (!url) { *out++ = '='; *out++ = '='; }
  } else if (n - i == 2) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
    *out++ = a[v >> 18];
    *out++ = a[v >> 12 & 63];
    *out++ = a[v >> 6 & 63];
    if (!url) *out++ = '=';
  }
}

/* decoding tables: 0..63, or 64 for anything else; built once from the alphabets */
static signed char b64_dec[2][256];

static void b64_tables(void) {
  for (int u = 0; u < 2; u++) {
    memset(b64_dec[u], 64, sizeof b64_dec[u]);
    for (int i = 0; i < 64; i++) b64_dec[u][(unsigned char)(u ? b64_url : b64_std)[i]] = (signed char)i;
  }
}

int opsh_crypto_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen,
                           int url, size_t *bad) {
  const signed char *dec = b64_dec[url ? 1 : 0];
  const unsigned char *s = (const unsigned char *)in;
  unsigned acc = 0;
  int bits = 0, pads = 0;
  size_t o = 0, chars = 0;
  for (size_t i = 0; i < n; i++) {
    /* fast path: four alphabet characters at a group boundary */
    while (bits == 0 && !pads && i + 4 <= n) {
      int a = dec[s[i]], b = dec[s[i + 1]], c = dec[s[i + 2]], d = dec[s[i + 3]];
      if ((a | b | c | d) & 64) break;
      unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
      out[o++] = (unsigned char)(v >> 16);
      out[o++] = (unsigned char)(v >> 8);
      out[o++] = (unsigned char)v;
      chars += 4;
      i += 4;
    }
    if (i >= n) break;
    unsigned char c = s[i];
    if (!url && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) continue;
    if (c == '=') {
      /* padding: only at the end, and only what the length needs */
      if (chars % 4 < 2 || pads >= 2 || (chars % 4 == 3 && pads >= 1)) { *bad = i; return -1; }
      pads++;
      if ((chars + pads) % 4 == 0) {
        for (size_t j = i + 1; j < n; j++) {
          unsigned char d = (unsigned char)in[j];
          if (url || !(d == ' ' || d == '\n' || d == '\r' || d == '\t')) { *bad = j; return -1; }
        }
        break;
      }
      continue;
    }
    int v = dec[c];
    if (v == 64 || pads) { *bad = i; return -1; }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    chars++;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  if (chars % 4 == 1 || (pads && (chars + pads) % 4 != 0)) { *bad = n; return -1; }
  *outlen = o;
  return 0;
}

void opsh_crypto_push_b64(lua_State *L, const unsigned char *in, size_t n, int url) {
  luaL_Buffer b;
  size_t len = opsh_crypto_b64_len(n, url);
  char *out = luaL_buffinitsize(L, &b, len);
  opsh_crypto_b64_encode(in, n, out, url);
  luaL_pushresultsize(&b, len);
}

/* base64_encode(data, url) -> string, or a secret when data is a secret */
static int crypto_b64_encode(lua_State *L) {
  size_t n;
  const char *in = opsh_secret_check(L, 1, &n);
  int url = lua_toboolean(L, 2);
  if (!opsh_is_secret(L, 1)) {
    opsh_crypto_push_b64(L, (const unsigned char *)in, n, url);
    return 1;
  }
  size_t len = opsh_crypto_b64_len(n, url);
  char *out = (char *)opsh_crypto_scratch(L, len);
  opsh_crypto_b64_encode((const unsigned char *)in, n, out, url);
  opsh_secret_push(L, out, len);
  opsh_crypto_wipe(L, -2);
  return 1;
}

/* base64_decode(text, url) -> string (a secret when text is a secret) | raises crypto/bad_base64 */
static int crypto_b64_decode(lua_State *L) {
  size_t n, outlen = 0, bad = 0;
  const char *in = opsh_secret_check(L, 1, &n);
  int url = lua_toboolean(L, 2), secret = opsh_is_secret(L, 1);
  unsigned char *out = secret ? opsh_crypto_scratch(L, n / 4 * 3 + 3)
                              : (unsigned char *)lua_newuserdatauv(L, n / 4 * 3 + 3, 0);
  if (opsh_crypto_b64_decode(in, n, out, &outlen, url, &bad) == 0) {
    if (secret) {
      opsh_secret_push(L, (const char *)out, outlen);
      opsh_crypto_wipe(L, -2);
    } else {
      lua_pushlstring(L, (const char *)out, outlen);
    }
    return 1;
  }
  if (secret) opsh_crypto_wipe(L, -1);
  const char *name = url ? "base64url" : "base64";
  opsh_error_push(L, "crypto", bad >= n ? "invalid %s: truncated input (%d characters)"
                  : "invalid %s: unexpected character at position %d", name, (int)(bad >= n ? n : bad + 1));
  opsh_error_setstr(L, "code", "bad_base64");
  if (bad < n) opsh_error_setint(L, "position", (lua_Integer)bad + 1);
  return lua_error(L);
}

/* ---- hex ---- */

/* hex_encode(data, upper) -> string */
static int crypto_hex_encode(lua_State *L) {
  size_t n;
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &n);
  const char *digits = lua_toboolean(L, 2) ? "0123456789ABCDEF" : "0123456789abcdef";
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n * 2);
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  luaL_pushresultsize(&b, n * 2);
  return 1;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* hex_decode(text) -> string | raises crypto/bad_hex (colons between bytes are allowed) */
static int crypto_hex_decode(lua_State *L) {
  size_t n;
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n / 2 + 1);
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (in[i] == ':' && o > 0 && i + 1 < n) i++;
    int hi = i < n ? hex_value(in[i]) : -1, lo = i + 1 < n ? hex_value(in[i + 1]) : -1;
    if (hi < 0 || lo < 0) {
      size_t at = hi < 0 ? i : i + 1;
      opsh_error_push(L, "crypto", "invalid hex at position %d", (int)at + 1);
      opsh_error_setstr(L, "code", "bad_hex");
      opsh_error_setint(L, "position", (lua_Integer)at + 1);
      return lua_error(L);
    }
    out[o++] = (char)(hi << 4 | lo);
    i += 2;
  }
  luaL_pushresultsize(&b, o);
  return 1;
}

/* ---- random ---- */

/* random_bytes(n) -> string of n bytes from the CSPRNG */
static int crypto_random_bytes(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= MAX_RANDOM, 1, "must be between 0 and 16777216");
  luaL_Buffer b;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)n);
  if (n > 0 && RAND_bytes(out, (int)n) != 1)
    return opsh_crypto_error(L, "random", "the random generator failed");
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* random_password(nbytes, url) -> secret: base64 of nbytes random bytes */
static int crypto_random_password(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 1, 32);
  int url = lua_toboolean(L, 2);
  luaL_argcheck(L, n >= 8 && n <= 4096, 1, "must be between 8 and 4096 bytes");
  size_t len = opsh_crypto_b64_len((size_t)n, url);
  unsigned char *raw = opsh_crypto_scratch(L, (size_t)n + len);
  char *text = (char *)raw + n;
  if (RAND_bytes(raw, (int)n) != 1) return opsh_crypto_error(L, "random", "the random generator failed");
  opsh_crypto_b64_encode(raw, (size_t)n, text, url);
  opsh_secret_push(L, text, len);
  opsh_crypto_wipe(L, -2);
  return 1;
}

/* ---- digests and HMAC ---- */

static const EVP_MD *check_md(lua_State *L, int idx) {
  static const char *const names[] = {"sha1", "sha256", "sha384", "sha512", NULL};
  switch (luaL_checkoption(L, idx, NULL, names)) {
    case 0: return EVP_sha1();
    case 1: return EVP_sha256();
    case 2: return EVP_sha384();
    default: return EVP_sha512();
  }
}

/* digest(alg, data) -> raw digest; data may be a secret */
static int crypto_digest(lua_State *L) {
  const EVP_MD *md = check_md(L, 1);
  size_t n;
  const char *data = opsh_secret_check(L, 2, &n);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outlen = 0;
  if (EVP_Digest(data, n, out, &outlen, md, NULL) != 1)
    return opsh_crypto_error(L, "digest", "digest failed");
  lua_pushlstring(L, (const char *)out, outlen);
  return 1;
}

/* hmac(alg, key, data) -> raw MAC; key and data may be secrets */
static int crypto_hmac(lua_State *L) {
  const EVP_MD *md = check_md(L, 1);
  size_t klen, n;
  const char *key = opsh_secret_check(L, 2, &klen);
  const char *data = opsh_secret_check(L, 3, &n);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outlen = 0;
  /* an empty key is legal HMAC; OpenSSL wants a non-NULL pointer for it */
  static const unsigned char empty[1] = {0};
  if (!HMAC(md, klen ? key : (const char *)empty, (int)klen, (const unsigned char *)data, n, out,
            &outlen))
    return opsh_crypto_error(L, "hmac", "HMAC failed");
  lua_pushlstring(L, (const char *)out, outlen);
  OPENSSL_cleanse(out, sizeof out);
  return 1;
}

/* constant_time_equal(a, b) -> boolean; only the lengths may leak through timing */
static int crypto_constant_time_equal(lua_State *L) {
  size_t la, lb;
  const char *a = opsh_secret_check(L, 1, &la), *b = opsh_secret_check(L, 2, &lb);
  lua_pushboolean(L, la == lb && CRYPTO_memcmp(a, b, la) == 0);
  return 1;
}

static const luaL_Reg crypto_funcs[] = {
  {"random_bytes", crypto_random_bytes},
  {"random_password", crypto_random_password},
  {"base64_encode", crypto_b64_encode},
  {"base64_decode", crypto_b64_decode},
  {"hex_encode", crypto_hex_encode},
  {"hex_decode", crypto_hex_decode},
  {"digest", crypto_digest},
  {"hmac", crypto_hmac},
  {"constant_time_equal", crypto_constant_time_equal},
  {NULL, NULL}
};

int luaopen_opsh_crypto(lua_State *L) {
  /* OpenSSL's one-time set-up (configuration, error state) on this thread, not on the first
  ** thread-pool worker that generates a key: that worker's state would outlive the process's
  ** cleanup (the library is loaded on first require, no longer at start-up) */
  OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
  if (luaL_newmetatable(L, BOX_META)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, SCRATCH_META)) {
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (b64_dec[0][0] == 0) b64_tables();
  luaL_newlib(L, crypto_funcs);
  opsh_crypto_keys_register(L);
  opsh_crypto_jwt_register(L);
  opsh_crypto_x509_register(L);
  opsh_crypto_cipher_register(L);
  opsh_crypto_crc64_register(L);
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -2, "openssl_version");
  return 1;
}
