/*
** jwt.c — opsh._crypto, part JWT: the JWS compact serialization with RS256/384/512,
** PS256/384/512 and ES256/384/512 (RFC 7515, 7518). JSON and claim checks are the Lua
** layer's; here: splitting a token, signing, and checking a signature, so that the token
** (a credential, possibly an opsh.secret) never has to be cut up in Lua.
** "none" and HMAC algorithms are not supported: a public key can never verify as a secret.
*/
#include <string.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include "crypto.h"

enum { RSA_PKCS1, RSA_PSS, ECDSA };

typedef struct alg {
  const char *name;
  int kind;
  const EVP_MD *(*md)(void);
  int ec_bits;   /* ECDSA: the curve's size; the signature is r||s, each (bits+7)/8 bytes */
} alg;

static const alg algs[] = {
  {"RS256", RSA_PKCS1, EVP_sha256, 0}, {"RS384", RSA_PKCS1, EVP_sha384, 0},
  {"RS512", RSA_PKCS1, EVP_sha512, 0}, {"PS256", RSA_PSS, EVP_sha256, 0},
  {"PS384", RSA_PSS, EVP_sha384, 0}, {"PS512", RSA_PSS, EVP_sha512, 0},
  {"ES256", ECDSA, EVP_sha256, 256}, {"ES384", ECDSA, EVP_sha384, 384},
  {"ES512", ECDSA, EVP_sha512, 521}, {NULL, 0, NULL, 0}
};

#define MIN_RSA_BITS 2048   /* RFC 7518 3.3 */

/* [-0, +0, v] raise {kind="jwt", code=, message=}; never with token or key bytes */
static int jwt_error(lua_State *L, const char *code, const char *fmt, const char *arg) {
  ERR_clear_error();
  opsh_error_push(L, "jwt", fmt, arg);
  opsh_error_setstr(L, "code", code);
  return lua_error(L);
}

static const alg *find_alg(lua_State *L, const char *name) {
  for (const alg *a = algs; a->name; a++)
    if (strcmp(a->name, name) == 0) return a;
  jwt_error(L, "unsupported_alg", "JWT algorithm %s is not supported", name);
  return NULL;
}

/* [-0, +0, v] the key must be of the kind the algorithm needs */
static void check_key(lua_State *L, const alg *a, EVP_PKEY *key) {
  int id = EVP_PKEY_get_base_id(key);
  if (a->kind == ECDSA) {
    if (id != EVP_PKEY_EC || EVP_PKEY_get_bits(key) != a->ec_bits)
      jwt_error(L, "wrong_key_type", "%s needs an EC key on its own curve", a->name);
  } else {
    if (id != EVP_PKEY_RSA && !(a->kind == RSA_PSS && id == EVP_PKEY_RSA_PSS))
      jwt_error(L, "wrong_key_type", "%s needs an RSA key", a->name);
    if (EVP_PKEY_get_bits(key) < MIN_RSA_BITS)
      jwt_error(L, "weak_key", "%s needs an RSA key of at least 2048 bits", a->name);
  }
}

static void free_mdctx(void *p) { EVP_MD_CTX_free(p); }

/* [-0, +1, v] a digest context initialised to sign (or verify) with alg and key */
static EVP_MD_CTX *init_ctx(lua_State *L, const alg *a, EVP_PKEY *key, int sign) {
  EVP_MD_CTX **slot = (EVP_MD_CTX **)opsh_crypto_box(L, free_mdctx);
  EVP_PKEY_CTX *pctx = NULL;
  *slot = EVP_MD_CTX_new();
  int ok = *slot && (sign ? EVP_DigestSignInit(*slot, &pctx, a->md(), NULL, key)
                          : EVP_DigestVerifyInit(*slot, &pctx, a->md(), NULL, key)) == 1;
  if (ok && a->kind == RSA_PSS)
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, a->md()) == 1;
  else if (ok && a->kind == RSA_PKCS1)
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
  if (!ok) jwt_error(L, "crypto", "cannot set up %s", a->name);
  return *slot;
}

/* the algorithm a key signs with when none is asked: RS256, or ES256/384/512 by curve */
static const char *default_alg(EVP_PKEY *key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return "RS256";
  int bits = EVP_PKEY_get_bits(key);
  return bits == 384 ? "ES384" : bits == 521 ? "ES512" : "ES256";
}

/* jwt_sign(alg|nil, key, passphrase, header_json_before_alg, payload_json) -> token, alg
** The header JSON is given without its alg member ("{" then members, or "{}"); alg goes first. */
static int jwt_sign(lua_State *L) {
  size_t hn, pn;
  const char *rest = luaL_checklstring(L, 4, &hn);
  const char *payload = luaL_checklstring(L, 5, &pn);
  luaL_argcheck(L, hn >= 2 && rest[0] == '{' && rest[hn - 1] == '}', 4, "a JSON object expected");
  EVP_PKEY *key = opsh_crypto_load_private(L, 2, 3, "jwt.sign key");
  const alg *a = find_alg(L, lua_isnil(L, 1) ? default_alg(key) : luaL_checkstring(L, 1));
  check_key(L, a, key);
  lua_pushfstring(L, "{\"alg\":\"%s\"%s%s", a->name, hn > 2 ? "," : "", rest + 1);
  const char *header = lua_tolstring(L, -1, &hn);
  EVP_MD_CTX *ctx = init_ctx(L, a, key, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char *p = luaL_prepbuffsize(&b, opsh_crypto_b64_len(hn, 1));
  opsh_crypto_b64_encode((const unsigned char *)header, hn, p, 1);
  luaL_addsize(&b, opsh_crypto_b64_len(hn, 1));
  luaL_addchar(&b, '.');
  p = luaL_prepbuffsize(&b, opsh_crypto_b64_len(pn, 1));
  opsh_crypto_b64_encode((const unsigned char *)payload, pn, p, 1);
  luaL_addsize(&b, opsh_crypto_b64_len(pn, 1));
  luaL_pushresult(&b);
  int input = lua_gettop(L);   /* the signing input: b64url(header) "." b64url(payload) */
  size_t inlen, siglen = 0;
  const unsigned char *in = (const unsigned char *)lua_tolstring(L, input, &inlen);
  if (EVP_DigestSign(ctx, NULL, &siglen, in, inlen) != 1) return jwt_error(L, "crypto", "%s signing failed", a->name);
  unsigned char *sig = lua_newuserdatauv(L, siglen, 0);
  if (EVP_DigestSign(ctx, sig, &siglen, in, inlen) != 1) return jwt_error(L, "crypto", "%s signing failed", a->name);
  if (a->kind == ECDSA) {
    /* DER ECDSA-Sig-Value -> the fixed-width r||s that JWS uses */
    int width = (a->ec_bits + 7) / 8;
    const unsigned char *d = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &d, (long)siglen);
    unsigned char *raw = lua_newuserdatauv(L, (size_t)width * 2, 0);
    int ok = es && BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, width) == width &&
             BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + width, width) == width;
    ECDSA_SIG_free(es);
    if (!ok) return jwt_error(L, "crypto", "%s signing failed", a->name);
    sig = raw;
    siglen = (size_t)width * 2;
  }
  lua_pushvalue(L, input);
  lua_pushliteral(L, ".");
  opsh_crypto_push_b64(L, sig, siglen, 1);
  lua_concat(L, 3);
  lua_pushstring(L, a->name);
  return 2;
}

/* The two dots of a compact JWS, or raises jwt/malformed. */
static void split(lua_State *L, const char *t, size_t n, size_t *dot1, size_t *dot2) {
  const char *a = memchr(t, '.', n);
  const char *b = a ? memchr(a + 1, '.', n - (size_t)(a + 1 - t)) : NULL;
  if (!a || !b || memchr(b + 1, '.', n - (size_t)(b + 1 - t)))
    jwt_error(L, "malformed", "malformed JWT: %s", "not three dot-separated parts");
  if (a == t || b == a + 1)
    jwt_error(L, "malformed", "malformed JWT: %s", "empty header or payload");
  *dot1 = (size_t)(a - t);
  *dot2 = (size_t)(b - t);
}

/* [-0, +1, v] push the base64url-decoded part [from, to) of the token; no padding allowed */
static unsigned char *push_part(lua_State *L, const char *t, size_t from, size_t to,
                                const char *what, size_t *outlen, int as_string) {
  size_t bad;
  unsigned char *out = lua_newuserdatauv(L, (to - from) / 4 * 3 + 3, 0);
  if (memchr(t + from, '=', to - from) ||
      opsh_crypto_b64_decode(t + from, to - from, out, outlen, 1, &bad) != 0)
    jwt_error(L, "malformed", "malformed JWT: the %s is not base64url", what);
  if (as_string) {
    lua_pushlstring(L, (const char *)out, *outlen);
    lua_remove(L, -2);
  }
  return out;
}

/* jwt_split(token) -> header_json, payload_json (not verified) */
static int jwt_split(lua_State *L) {
  size_t n, d1, d2, len;
  const char *t = opsh_secret_check(L, 1, &n);
  split(L, t, n, &d1, &d2);
  push_part(L, t, 0, d1, "header", &len, 1);
  push_part(L, t, d1 + 1, d2, "payload", &len, 1);
  return 2;
}

/* jwt_check(token, key, alg) -> boolean: is the signature the key's over the signing input */
static int jwt_check(lua_State *L) {
  size_t n, d1, d2, siglen;
  const char *t = opsh_secret_check(L, 1, &n);
  const alg *a = find_alg(L, luaL_checkstring(L, 3));
  split(L, t, n, &d1, &d2);
  EVP_PKEY *key = opsh_crypto_load_public(L, 2, "jwt.verify key");
  check_key(L, a, key);
  unsigned char *sig = push_part(L, t, d2 + 1, n, "signature", &siglen, 0);
  if (a->kind == ECDSA) {
    /* r||s -> DER; a wrong length is a bad signature, not a malformed token */
    int width = (a->ec_bits + 7) / 8;
    if (siglen != (size_t)width * 2) {
      lua_pushboolean(L, 0);
      return 1;
    }
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, width, NULL), *s = BN_bin2bn(sig + width, width, NULL);
    unsigned char *der = NULL;
    int derlen = -1;
    if (es && r && s && ECDSA_SIG_set0(es, r, s)) {
      r = s = NULL;
      derlen = i2d_ECDSA_SIG(es, &der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    if (derlen <= 0) return jwt_error(L, "crypto", "%s verification failed", a->name);
    sig = lua_newuserdatauv(L, (size_t)derlen, 0);
    memcpy(sig, der, (size_t)derlen);
    OPENSSL_free(der);
    siglen = (size_t)derlen;
  }
  EVP_MD_CTX *ctx = init_ctx(L, a, key, 0);
  int rc = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)t, d2);
  ERR_clear_error();
  lua_pushboolean(L, rc == 1);
  return 1;
}

static const luaL_Reg jwt_funcs[] = {
  {"jwt_sign", jwt_sign},
  {"jwt_split", jwt_split},
  {"jwt_check", jwt_check},
  {NULL, NULL}
};

void opsh_crypto_jwt_register(lua_State *L) {
  luaL_setfuncs(L, jwt_funcs, 0);
}
