/*
** keys.c — opsh._crypto, part keys: loading private keys (PEM or DER, PKCS#8 or
** traditional, encrypted with a passphrase), keys to verify with (certificate, public or
** private key), generating RSA and EC keys, PEM and JWK output.
** Key bytes are read in place from the caller's string or secret; what is written out (a
** private PEM) goes through BIO_s_secmem, which clears its memory when freed, into a secret.
** Error messages say what was wrong with the input, never what it contained.
*/
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include "crypto.h"

/* ---- finding the PEM block to read ---- */

/* The first PEM block whose label ends with one of `labels` (a combined file holds a
** certificate chain and its key); NULL when the input has no PEM block at all. */
static const char *find_block(const char *s, size_t n, const char *const *labels, int *found) {
  const char *end = s + n, *p = s;
  int any = 0;
  while ((p = memmem(p, (size_t)(end - p), "-----BEGIN ", 11)) != NULL) {
    any = 1;
    const char *lab = p + 11;
    const char *close = memmem(lab, (size_t)(end - lab), "-----", 5);
    if (!close) break;
    for (int i = 0; labels[i]; i++) {
      size_t ll = strlen(labels[i]);
      if ((size_t)(close - lab) >= ll && memcmp(close - ll, labels[i], ll) == 0) {
        *found = 1;
        return p;
      }
    }
    p = close;
  }
  *found = 0;
  return any ? end : NULL;
}

/* ---- passphrases ---- */

typedef struct pass { const char *p; size_t len; int asked; } pass;

static int pass_cb(char *buf, int size, int rwflag, void *u) {
  pass *ps = u;
  ps->asked = 1;
  if (!ps->p || ps->len > (size_t)size) return -1;
  memcpy(buf, ps->p, ps->len);
  return (int)ps->len;
}

/* decode with OpenSSL's decoders (PEM or DER, any structure); 1 on success */
static int decode_pkey(EVP_PKEY **slot, const char *data, size_t len, int selection, pass *ps) {
  OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(slot, NULL, NULL, NULL, selection,
                                                         NULL, NULL);
  if (!dctx) return 0;
  if (ps) OSSL_DECODER_CTX_set_pem_password_cb(dctx, pass_cb, ps);
  const unsigned char *p = (const unsigned char *)data;
  size_t left = len;
  int ok = OSSL_DECODER_from_data(dctx, &p, &left) == 1 && *slot != NULL;
  OSSL_DECODER_CTX_free(dctx);
  ERR_clear_error();
  return ok;
}

/* ---- key objects: a parsed key kept for repeated use (OpenSSL 3 takes ~0.5 ms to parse one) ---- */

#define KEY_META "opsh.crypto.key"

typedef struct keyobj { EVP_PKEY *pkey; int private; } keyobj;

/* [-0, +1, m] push a box holding another reference to the object's key, or NULL if idx is no key */
static EVP_PKEY *from_keyobj(lua_State *L, int idx, int need_private, const char *what) {
  keyobj *k = luaL_testudata(L, idx, KEY_META);
  if (!k) return NULL;
  if (!k->pkey) return OPSH_CRYPTO_FAIL(L, "usage", "%s: the key object is closed", what);
  if (need_private && !k->private)
    return OPSH_CRYPTO_FAIL(L, "bad_key", "%s: needs a private key, this key object is public", what);
  EVP_PKEY **slot = (EVP_PKEY **)opsh_crypto_box(L, opsh_crypto_free_pkey);
  if (EVP_PKEY_up_ref(k->pkey)) *slot = k->pkey;
  if (!*slot) return OPSH_CRYPTO_FAIL(L, "bad_key", "%s: cannot use the key object", what);
  return *slot;
}

EVP_PKEY *opsh_crypto_load_private(lua_State *L, int idx, int passidx, const char *what) {
  static const char *const labels[] = {"PRIVATE KEY", NULL};
  EVP_PKEY *obj = from_keyobj(L, idx, 1, what);
  if (obj) return obj;
  size_t n;
  const char *s = opsh_secret_check(L, idx, &n);
  pass ps = {NULL, 0, 0};
  if (passidx && !lua_isnoneornil(L, passidx)) ps.p = opsh_secret_check(L, passidx, &ps.len);
  EVP_PKEY **slot = (EVP_PKEY **)opsh_crypto_box(L, opsh_crypto_free_pkey);
  int found = 0;
  const char *block = find_block(s, n, labels, &found);
  if (block && !found)
    return OPSH_CRYPTO_FAIL(L, "bad_key", "%s: no PRIVATE KEY block in the PEM text", what);
  if (!block) block = s;
  if (decode_pkey(slot, block, n - (size_t)(block - s), EVP_PKEY_KEYPAIR, &ps)) return *slot;
  if (ps.asked && !ps.p)
    return OPSH_CRYPTO_FAIL(L, "encrypted_key", "%s: the private key is encrypted; give its passphrase", what);
  if (ps.asked)
    return OPSH_CRYPTO_FAIL(L, "bad_passphrase", "%s: cannot decrypt the private key (wrong passphrase?)", what);
  return OPSH_CRYPTO_FAIL(L, "bad_key", "%s: not a private key OpenSSL can read (PEM or DER)", what);
}

EVP_PKEY *opsh_crypto_load_public(lua_State *L, int idx, const char *what) {
  static const char *const labels[] = {"CERTIFICATE", "PUBLIC KEY", "PRIVATE KEY", NULL};
  EVP_PKEY *obj = from_keyobj(L, idx, 0, what);
  if (obj) return obj;
  size_t n;
  const char *s = opsh_secret_check(L, idx, &n);
  int found = 0;
  const char *block = find_block(s, n, labels, &found);
  if (block && !found)
    return OPSH_CRYPTO_FAIL(L, "bad_key", "%s: no certificate or key block in the PEM text", what);
  size_t left = block ? n - (size_t)(block - s) : n;
  if (!block) block = s;
  int is_der = !found, is_cert = 0;
  if (found) {
    const char *lab = block + 11, *close = memmem(lab, left - 11, "-----", 5);
    size_t ll = (size_t)(close - lab);
    is_cert = ll >= 11 && memcmp(close - 11, "CERTIFICATE", 11) == 0;
  }
  if (is_cert || is_der) {
    const unsigned char *p = (const unsigned char *)block;
    X509 *x = NULL;
    if (is_der) {
      x = d2i_X509(NULL, &p, (long)left);
    } else {
      BIO *bio = BIO_new_mem_buf(block, (int)left);
      if (bio) x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
      BIO_free(bio);
    }
    ERR_clear_error();
    if (x) {
      EVP_PKEY *pk = X509_get_pubkey(x);
      X509_free(x);
      if (!pk) return OPSH_CRYPTO_FAIL(L, "bad_key", "%s: the certificate's key type is not supported", what);
      EVP_PKEY **slot = (EVP_PKEY **)opsh_crypto_box(L, opsh_crypto_free_pkey);
      *slot = pk;
      return pk;
    }
    if (is_cert) return OPSH_CRYPTO_FAIL(L, "bad_certificate", "%s: cannot parse the certificate", what);
  }
  EVP_PKEY **slot = (EVP_PKEY **)opsh_crypto_box(L, opsh_crypto_free_pkey);
  pass ps = {NULL, 0, 0};
  if (decode_pkey(slot, block, left, EVP_PKEY_PUBLIC_KEY, NULL)) return *slot;
  if (decode_pkey(slot, block, left, EVP_PKEY_KEYPAIR, &ps)) return *slot;
  if (ps.asked)
    return OPSH_CRYPTO_FAIL(L, "encrypted_key", "%s: the private key is encrypted; give its certificate or public key", what);
  return OPSH_CRYPTO_FAIL(L, "bad_key", "%s: not a certificate, public key or private key (PEM or DER)", what);
}

/* [-0, +0, v] check a key type and size; returns the EC curve name, or NULL for RSA */
static const char *keygen_params(lua_State *L, const char *type, int *bits) {
  if (strcmp(type, "rsa") == 0) {
    if (*bits == 0) *bits = 2048;
    if (*bits < 2048 || *bits > 16384 || *bits % 8)
      opsh_crypto_error(L, "usage", "rsa keys are 2048 to 16384 bits (got %d)", *bits);
    return NULL;
  }
  if (strcmp(type, "ec") != 0)
    opsh_crypto_error(L, "usage", "key type must be \"ec\" or \"rsa\" (got \"%s\")", type);
  if (*bits == 0) *bits = 256;
  const char *curve = *bits == 256 ? "P-256" : *bits == 384 ? "P-384" : *bits == 521 ? "P-521" : NULL;
  if (!curve) opsh_crypto_error(L, "usage", "ec keys are 256, 384 or 521 bits (got %d)", *bits);
  return curve;
}

static EVP_PKEY *keygen_run(const char *curve, int bits) {
  return curve ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve) : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

EVP_PKEY *opsh_crypto_generate(lua_State *L, const char *type, int bits) {
  const char *curve = keygen_params(L, type, &bits);
  EVP_PKEY **slot = (EVP_PKEY **)opsh_crypto_box(L, opsh_crypto_free_pkey);
  *slot = keygen_run(curve, bits);
  if (!*slot) return OPSH_CRYPTO_FAIL(L, "keygen", "key generation failed");
  return *slot;
}

static void free_bio(void *p) { BIO_free(p); }

void opsh_crypto_push_private_pem(lua_State *L, EVP_PKEY *pkey) {
  BIO **slot = (BIO **)opsh_crypto_box(L, free_bio);
  *slot = BIO_new(BIO_s_secmem());
  if (!*slot || !PEM_write_bio_PrivateKey(*slot, pkey, NULL, NULL, 0, NULL, NULL))
    opsh_crypto_error(L, "encode", "cannot write the private key as PEM");
  char *data;
  long len = BIO_get_mem_data(*slot, &data);
  opsh_secret_push(L, data, (size_t)len);
  BIO_free(*slot);   /* clears its memory */
  *slot = NULL;
  lua_remove(L, -2);
}

const char *opsh_crypto_key_type(EVP_PKEY *pkey) {
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA: return "rsa";
    case EVP_PKEY_RSA_PSS: return "rsa-pss";
    case EVP_PKEY_EC: return "ec";
    case EVP_PKEY_ED25519: return "ed25519";
    case EVP_PKEY_ED448: return "ed448";
    default: return "unknown";
  }
}

/* [-0, +0, m] set t.curve to the NIST name of an EC key's curve (or OpenSSL's name) */
static void set_curve(lua_State *L, EVP_PKEY *pkey) {
  char group[64];
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
      !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL))
    return;
  const char *nist = EC_curve_nid2nist(OBJ_sn2nid(group));
  lua_pushstring(L, nist ? nist : group);
  lua_setfield(L, -2, "curve");
}

void opsh_crypto_push_key_info(lua_State *L, EVP_PKEY *pkey) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, opsh_crypto_key_type(pkey));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, EVP_PKEY_get_bits(pkey));
  lua_setfield(L, -2, "bits");
  set_curve(L, pkey);
}

/* key_read(pem_or_der, passphrase) -> {type=, bits=, curve=} */
static int keys_read(lua_State *L) {
  EVP_PKEY *pkey = opsh_crypto_load_private(L, 1, 2, "keys.read");
  opsh_crypto_push_key_info(L, pkey);
  return 1;
}

/* key_info(cert_or_key) -> {type=, bits=, curve=} of the public part */
static int keys_info(lua_State *L) {
  EVP_PKEY *pkey = opsh_crypto_load_public(L, 1, "keys.info");
  opsh_crypto_push_key_info(L, pkey);
  return 1;
}

/* ---- key generation on libuv's thread pool ----
** RSA key generation takes from a tenth of a second to seconds: inside a task it runs on a
** worker thread and suspends only the task. The key's box is pushed on the task's stack
** before it suspends; the completion only fills it (the wake rule, opsh.h), so a task
** cancelled after the wake-up still frees the key with its stack. */

typedef struct keygen {
  uv_work_t req;
  opsh_task *task;
  int abandoned;   /* the task was cancelled while the work ran: after_work frees everything */
  int done;        /* the key is in the box: keygen_k or keygen_cancel frees kg */
  const char *curve;   /* static string; NULL for RSA */
  int bits;
  EVP_PKEY *pkey;
  EVP_PKEY **slot;     /* the box on the task's stack */
} keygen;

static int keygen_pending;   /* work items not yet completed, for the specs */

static void keygen_work(uv_work_t *req) {
  keygen *kg = req->data;
  kg->pkey = keygen_run(kg->curve, kg->bits);
}

static void keygen_after(uv_work_t *req, int status) {
  keygen *kg = req->data;
  keygen_pending--;
  if (kg->abandoned) {
    EVP_PKEY_free(kg->pkey);
    free(kg);
    return;
  }
  *kg->slot = kg->pkey;
  kg->done = 1;
  opsh_task_ready(kg->task);
}

static void keygen_cancel(void *ud) {
  keygen *kg = ud;
  if (kg->done) {   /* the key is in the box, collected with the task's stack */
    free(kg);
    return;
  }
  kg->abandoned = 1;
  uv_cancel((uv_req_t *)&kg->req);   /* if it already runs, keygen_after frees the result */
}

static int keygen_k(lua_State *L, int status, lua_KContext ctx) {
  free((keygen *)ctx);
  EVP_PKEY *pkey = opsh_crypto_unbox(L, -1);
  if (!pkey) return opsh_crypto_error(L, "keygen", "key generation failed");
  opsh_crypto_push_private_pem(L, pkey);
  return 1;
}

/* key_generate(type, bits) -> secret PEM (PKCS#8) */
static int keys_generate(lua_State *L) {
  const char *type = luaL_optstring(L, 1, "ec");
  int bits = (int)luaL_optinteger(L, 2, 0);
  opsh_task *t = opsh_task_current(L);
  if (!t || !lua_isyieldable(L)) {
    EVP_PKEY *pkey = opsh_crypto_generate(L, type, bits);
    opsh_crypto_push_private_pem(L, pkey);
    return 1;
  }
  const char *curve = keygen_params(L, type, &bits);
  EVP_PKEY **slot = (EVP_PKEY **)opsh_crypto_box(L, opsh_crypto_free_pkey);
  keygen *kg = calloc(1, sizeof *kg);
  if (!kg) return opsh_error(L, "memory", "out of memory");
  kg->req.data = kg;
  kg->task = t;
  kg->curve = curve;
  kg->bits = bits;
  kg->slot = slot;
  if (uv_queue_work(opsh_loop(L), &kg->req, keygen_work, keygen_after) != 0) {
    free(kg);
    return opsh_crypto_error(L, "keygen", "cannot queue key generation");
  }
  keygen_pending++;
  return opsh_yield(L, keygen_cancel, kg, (lua_KContext)kg, keygen_k);
}

/* keygen_pending() -> number of key generations still on the thread pool */
static int keys_pending(lua_State *L) {
  lua_pushinteger(L, keygen_pending);
  return 1;
}

/* key_public_pem(cert_or_key) -> "-----BEGIN PUBLIC KEY-----..." */
static int keys_public_pem(lua_State *L) {
  EVP_PKEY *pkey = opsh_crypto_load_public(L, 1, "keys.public_pem");
  BIO **slot = (BIO **)opsh_crypto_box(L, free_bio);
  *slot = BIO_new(BIO_s_mem());
  if (!*slot || !PEM_write_bio_PUBKEY(*slot, pkey))
    return opsh_crypto_error(L, "encode", "cannot write the public key as PEM");
  char *data;
  long len = BIO_get_mem_data(*slot, &data);
  lua_pushlstring(L, data, (size_t)len);
  return 1;
}

/* key_matches(cert_or_key, cert_or_key) -> boolean: same public key */
static int keys_matches(lua_State *L) {
  EVP_PKEY *a = opsh_crypto_load_public(L, 1, "keys.matches #1");
  EVP_PKEY *b = opsh_crypto_load_public(L, 2, "keys.matches #2");
  lua_pushboolean(L, EVP_PKEY_eq(a, b) == 1);
  ERR_clear_error();
  return 1;
}

/* [-0, +0, m] t[field] = base64url of a BIGNUM parameter, left-padded to `width` bytes */
static int set_bn_field(lua_State *L, EVP_PKEY *pkey, const char *param, const char *field, int width) {
  BIGNUM *bn = NULL;
  if (!EVP_PKEY_get_bn_param(pkey, param, &bn)) return 0;
  int n = BN_num_bytes(bn);
  if (width < n) width = n;
  unsigned char buf[1024];
  int ok = width <= (int)sizeof buf && BN_bn2binpad(bn, buf, width) == width;
  BN_free(bn);
  if (!ok) return 0;
  opsh_crypto_push_b64(L, buf, (size_t)width, 1);
  lua_setfield(L, -2, field);
  return 1;
}

/* key_jwk(cert_or_key) -> {kty="RSA", n=, e=} | {kty="EC", crv=, x=, y=}: public members only */
static int keys_jwk(lua_State *L) {
  EVP_PKEY *pkey = opsh_crypto_load_public(L, 1, "keys.jwk");
  lua_createtable(L, 0, 4);
  int ok = 0;
  if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
    lua_pushliteral(L, "RSA");
    lua_setfield(L, -2, "kty");
    ok = set_bn_field(L, pkey, OSSL_PKEY_PARAM_RSA_N, "n", 0) &&
         set_bn_field(L, pkey, OSSL_PKEY_PARAM_RSA_E, "e", 0);
  } else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
    lua_pushliteral(L, "EC");
    lua_setfield(L, -2, "kty");
    set_curve(L, pkey);
    lua_getfield(L, -1, "curve");
    lua_setfield(L, -2, "crv");
    lua_pushnil(L);
    lua_setfield(L, -2, "curve");
    int width = (EVP_PKEY_get_bits(pkey) + 7) / 8;
    ok = set_bn_field(L, pkey, OSSL_PKEY_PARAM_EC_PUB_X, "x", width) &&
         set_bn_field(L, pkey, OSSL_PKEY_PARAM_EC_PUB_Y, "y", width);
  }
  if (!ok) return opsh_crypto_error(L, "unsupported", "keys.jwk: only RSA and EC keys have a JWK form here");
  return 1;
}

/* key_load(key, passphrase, private) -> key object; private=false: what verifies (cert too) */
static int keys_load(lua_State *L) {
  int private = lua_toboolean(L, 3);
  EVP_PKEY *pkey = private ? opsh_crypto_load_private(L, 1, 2, "keys.load")
                           : opsh_crypto_load_public(L, 1, "keys.load");
  keyobj *k = lua_newuserdatauv(L, sizeof *k, 0);
  k->pkey = NULL;
  k->private = private;
  luaL_setmetatable(L, KEY_META);
  if (!EVP_PKEY_up_ref(pkey)) return opsh_crypto_error(L, "bad_key", "keys.load: cannot keep the key");
  k->pkey = pkey;
  return 1;
}

static int key_close(lua_State *L) {
  keyobj *k = luaL_checkudata(L, 1, KEY_META);
  EVP_PKEY_free(k->pkey);   /* clears the key's numbers */
  k->pkey = NULL;
  return 0;
}

static int key_info(lua_State *L) {
  EVP_PKEY *pkey = from_keyobj(L, 1, 0, "key:info");
  if (!pkey) luaL_checkudata(L, 1, KEY_META);
  opsh_crypto_push_key_info(L, pkey);
  keyobj *k = lua_touserdata(L, 1);
  lua_pushboolean(L, k->private);
  lua_setfield(L, -2, "private");
  return 1;
}

static int key_tostring(lua_State *L) {
  keyobj *k = luaL_checkudata(L, 1, KEY_META);
  if (!k->pkey) lua_pushliteral(L, "opsh.crypto.key (closed)");
  else lua_pushfstring(L, "opsh.crypto.key (%s %d, %s)", opsh_crypto_key_type(k->pkey),
                       EVP_PKEY_get_bits(k->pkey), k->private ? "private" : "public");
  return 1;
}

/* is_key(v) -> boolean */
static int keys_is_key(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, KEY_META) != NULL);
  return 1;
}

static const luaL_Reg key_methods[] = {
  {"info", key_info},
  {"close", key_close},
  {NULL, NULL}
};

static const luaL_Reg key_meta[] = {
  {"__gc", key_close},
  {"__close", key_close},
  {"__tostring", key_tostring},
  {NULL, NULL}
};

static const luaL_Reg keys_funcs[] = {
  {"key_load", keys_load},
  {"is_key", keys_is_key},
  {"key_read", keys_read},
  {"key_info", keys_info},
  {"key_generate", keys_generate},
  {"key_public_pem", keys_public_pem},
  {"key_matches", keys_matches},
  {"key_jwk", keys_jwk},
  {"keygen_pending", keys_pending},
  {NULL, NULL}
};

void opsh_crypto_keys_register(lua_State *L) {
  if (luaL_newmetatable(L, KEY_META)) {
    luaL_setfuncs(L, key_meta, 0);
    luaL_newlib(L, key_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, keys_funcs, 0);
}
