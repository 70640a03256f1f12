/*
** cipher.c — authenticated encryption for opsh._crypto: AES-256-GCM, one call each way.
** seal(key, plaintext [, aad]) -> nonce (12 bytes) .. ciphertext .. tag (16 bytes), a fresh random
** nonce each call; open(key, sealed [, aad]) -> the plaintext as an opsh.secret, or raises
** crypto/bad_tag when the key, the aad or a byte of the sealed text is not the one sealed.
*/
#include <stdint.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "crypto.h"

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16

static void free_cipher_ctx(void *p) { EVP_CIPHER_CTX_free(p); }

/* [-0, +1, m] a boxed cipher context set up for AES-256-GCM with key and nonce */
static EVP_CIPHER_CTX *gcm_ctx(lua_State *L, const unsigned char *key, const unsigned char *nonce, int enc) {
  EVP_CIPHER_CTX **slot = (EVP_CIPHER_CTX **)opsh_crypto_box(L, free_cipher_ctx);
  *slot = EVP_CIPHER_CTX_new();
  if (*slot == NULL) return OPSH_CRYPTO_FAIL(L, "cipher", "out of memory for a cipher context");
  if (EVP_CipherInit_ex(*slot, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1
      || EVP_CIPHER_CTX_ctrl(*slot, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1
      || EVP_CipherInit_ex(*slot, NULL, NULL, key, nonce, enc) != 1)
    return OPSH_CRYPTO_FAIL(L, "cipher", "AES-256-GCM set-up failed");
  return *slot;
}

/* [-0, +0, v] the 32-byte key at idx (an opsh.secret or a string) */
static const unsigned char *check_key(lua_State *L, int idx) {
  size_t n;
  const char *key = opsh_secret_check(L, idx, &n);
  if (n != KEY_LEN) {
    opsh_crypto_error(L, "bad_key", "an AES-256-GCM key is %d bytes, not %d", KEY_LEN, (int)n);
    return NULL;
  }
  return (const unsigned char *)key;
}

/* [-0, +0, v] feed the additional authenticated data at idx (optional) */
static void add_aad(lua_State *L, EVP_CIPHER_CTX *ctx, int idx) {
  size_t n = 0;
  const char *aad = lua_isnoneornil(L, idx) ? NULL : luaL_checklstring(L, idx, &n);
  int outl;
  if (aad && n > 0 && EVP_CipherUpdate(ctx, NULL, &outl, (const unsigned char *)aad, (int)n) != 1)
    opsh_crypto_error(L, "cipher", "AES-256-GCM: the additional data was refused");
}

/* seal(key, plaintext [, aad]) -> sealed string */
static int cipher_seal(lua_State *L) {
  const unsigned char *key = check_key(L, 1);
  size_t n;
  const char *plain = opsh_secret_check(L, 2, &n);
  if (n > (size_t)INT32_MAX - NONCE_LEN - TAG_LEN) return opsh_crypto_error(L, "cipher", "plaintext too large (2 GiB at most)");
  luaL_Buffer b;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, NONCE_LEN + n + TAG_LEN);
  if (RAND_bytes(out, NONCE_LEN) != 1) return opsh_crypto_error(L, "random", "no random bytes for the nonce");
  EVP_CIPHER_CTX *ctx = gcm_ctx(L, key, out, 1);
  add_aad(L, ctx, 3);
  int len = 0, fin = 0;
  if (EVP_EncryptUpdate(ctx, out + NONCE_LEN, &len, (const unsigned char *)plain, (int)n) != 1
      || EVP_EncryptFinal_ex(ctx, out + NONCE_LEN + len, &fin) != 1
      || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + NONCE_LEN + len + fin) != 1)
    return opsh_crypto_error(L, "cipher", "AES-256-GCM encryption failed");
  lua_pop(L, 1);   /* the context's box: freed by __gc */
  luaL_pushresultsize(&b, NONCE_LEN + (size_t)len + (size_t)fin + TAG_LEN);
  return 1;
}

/* open(key, sealed [, aad]) -> plaintext (opsh.secret) | raises crypto/bad_tag */
static int cipher_open(lua_State *L) {
  const unsigned char *key = check_key(L, 1);
  size_t n;
  const unsigned char *sealed = (const unsigned char *)luaL_checklstring(L, 2, &n);
  if (n < NONCE_LEN + TAG_LEN)
    return opsh_crypto_error(L, "bad_tag", "not sealed text: %d bytes, shorter than a nonce and a tag", (int)n);
  size_t clen = n - NONCE_LEN - TAG_LEN;
  if (clen > (size_t)INT32_MAX) return opsh_crypto_error(L, "cipher", "sealed text too large (2 GiB at most)");
  EVP_CIPHER_CTX *ctx = gcm_ctx(L, key, sealed, 0);
  add_aad(L, ctx, 3);
  unsigned char *plain = opsh_crypto_scratch(L, clen);
  int len = 0, fin = 0;
  if (EVP_DecryptUpdate(ctx, plain, &len, sealed + NONCE_LEN, (int)clen) != 1
      || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(sealed + n - TAG_LEN)) != 1)
    return opsh_crypto_error(L, "cipher", "AES-256-GCM decryption failed");
  if (EVP_DecryptFinal_ex(ctx, plain + len, &fin) != 1) {
    opsh_crypto_wipe(L, -1);
    return opsh_crypto_error(L, "bad_tag", "the sealed text does not open with this key and data: "
                             "a wrong key, or the text was changed");
  }
  opsh_secret_push(L, (const char *)plain, (size_t)len + (size_t)fin);
  opsh_crypto_wipe(L, -2);
  return 1;
}

static const luaL_Reg cipher_funcs[] = {
  {"seal", cipher_seal},
  {"open", cipher_open},
  {NULL, NULL}
};

void opsh_crypto_cipher_register(lua_State *L) {
  luaL_setfuncs(L, cipher_funcs, 0);
}
