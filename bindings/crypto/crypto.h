/*
** crypto.h — what the parts of opsh._crypto share (crypto.c: random, digests, HMAC, base64;
** cipher.c: AES-256-GCM seal and open;
** keys.c: private and public keys; jwt.c: JWT; x509.c: certificates; crc64.c: Azure's CRC-64).
** Not a public header: only bindings/crypto*.c include it.
**
** OpenSSL objects are held in "boxes" (userdata with a __gc that frees them), created before
** the object, so that any Lua error raised later (a structured error, out of memory) frees it.
*/
#ifndef opsh_crypto_h
#define opsh_crypto_h

#include <openssl/evp.h>
#include <openssl/x509.h>
#include "opsh.h"

/* ---- boxes ---- */
typedef void (*opsh_crypto_free_fn)(void *p);
/* [-0, +1, m] push an empty box whose content is freed with fn; returns the slot to fill */
void **opsh_crypto_box(lua_State *L, opsh_crypto_free_fn fn);
/* [-0, +0, -] the content of the box at idx (NULL if it is not a box or empty) */
void *opsh_crypto_unbox(lua_State *L, int idx);
void opsh_crypto_free_pkey(void *p);
/* [-0, +1, m] push a buffer of n (+1) bytes for secret material; its __gc wipes it */
unsigned char *opsh_crypto_scratch(lua_State *L, size_t n);
/* [-0, +0, -] wipe the scratch buffer at idx now */
void opsh_crypto_wipe(lua_State *L, int idx);
void opsh_crypto_free_x509(void *p);

/* ---- errors ---- */
/* [-0, +0, v] raise {kind="crypto", code=code, message=...}; clears OpenSSL's error queue */
int opsh_crypto_error(lua_State *L, const char *code, const char *fmt, ...);
/* the same, as an expression of pointer type for functions returning an object */
#define OPSH_CRYPTO_FAIL(...) (opsh_crypto_error(__VA_ARGS__), NULL)

/* ---- base64 (RFC 4648; url=1: the URL-safe alphabet, no padding) ---- */
size_t opsh_crypto_b64_len(size_t n, int url);
/* writes opsh_crypto_b64_len(n, url) bytes (no terminator) */
void opsh_crypto_b64_encode(const unsigned char *in, size_t n, char *out, int url);
/* out needs n * 3 / 4 + 3 bytes; returns 0, or -1 with *bad = position (0-based) of the
** offending character (or n for a bad length). Padding is optional; whitespace is skipped
** in the standard alphabet only. */
int opsh_crypto_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen,
                           int url, size_t *bad);
/* [-0, +1, m] push the encoding of in as a Lua string */
void opsh_crypto_push_b64(lua_State *L, const unsigned char *in, size_t n, int url);

/* ---- keys (keys.c) ---- */
/* [-0, +1, v] load a private key (PEM or DER, PKCS#8 or traditional, optionally encrypted)
** from the secret or string at idx; passidx (0: none) holds a passphrase. Pushes its box. */
EVP_PKEY *opsh_crypto_load_private(lua_State *L, int idx, int passidx, const char *what);
/* [-0, +1, v] load a key to verify with: a certificate, a public key or a private key */
EVP_PKEY *opsh_crypto_load_public(lua_State *L, int idx, const char *what);
/* [-0, +1, v] a new key: type "ec" (bits 256/384/521) or "rsa" (bits 2048..16384) */
EVP_PKEY *opsh_crypto_generate(lua_State *L, const char *type, int bits);
/* [-0, +1, m] the private key as a PKCS#8 PEM opsh.secret */
void opsh_crypto_push_private_pem(lua_State *L, EVP_PKEY *pkey);
/* [-0, +1, m] {type=, bits=, curve=} of a key */
void opsh_crypto_push_key_info(lua_State *L, EVP_PKEY *pkey);
/* "rsa", "ec", "ed25519", ... */
const char *opsh_crypto_key_type(EVP_PKEY *pkey);

/* ---- certificates (x509.c) ---- */
/* [-0, +1, v] parse the first certificate of a PEM or DER string; pushes its box */
X509 *opsh_crypto_load_x509(lua_State *L, int idx, const char *what);

/* ---- registration of the parts ---- */
void opsh_crypto_keys_register(lua_State *L);   /* [-0, +0, m] into the table at the top */
void opsh_crypto_jwt_register(lua_State *L);
void opsh_crypto_x509_register(lua_State *L);
void opsh_crypto_cipher_register(lua_State *L);
void opsh_crypto_crc64_register(lua_State *L);

#endif
