/*
** x509.c — opsh._crypto, part certificates: parsing PEM/DER certificates, thumbprints,
** and issuing a CA and certificates signed by it that strict verifiers accept (OpenSSL's
** -x509_strict, Python 3.13's VERIFY_X509_STRICT): v3, critical basicConstraints, keyUsage,
** Subject and Authority Key Identifiers, typed SANs.
*/
#include <arpa/inet.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include "crypto.h"

#define MAX_DAYS 36500
#define BACKDATE_SECONDS 300   /* tolerate clocks a few minutes behind ours */

static void free_bio(void *p) { BIO_free(p); }
static void free_names(void *p) { GENERAL_NAMES_free(p); }

X509 *opsh_crypto_load_x509(lua_State *L, int idx, const char *what) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  X509 **slot = (X509 **)opsh_crypto_box(L, opsh_crypto_free_x509);
  const char *pem = memmem(s, n, "-----BEGIN", 10);
  if (pem) {
    BIO *bio = BIO_new_mem_buf(pem, (int)(n - (size_t)(pem - s)));
    if (bio) *slot = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
  } else {
    const unsigned char *p = (const unsigned char *)s;
    *slot = d2i_X509(NULL, &p, (long)n);
  }
  if (!*slot)
    return OPSH_CRYPTO_FAIL(L, "bad_certificate", "%s: not a certificate (PEM or DER)", what);
  ERR_clear_error();
  return *slot;
}

/* ---- parsing ---- */

/* [-0, +1, m] push the bytes of a memory BIO (consumed: freed by the caller's box) */
static void push_bio(lua_State *L, BIO *bio) {
  char *data;
  long len = BIO_get_mem_data(bio, &data);
  lua_pushlstring(L, data, (size_t)len);
}

/* [-0, +0, m] t[field] = the name as RFC 4514-style text (most specific RDN first, UTF-8) */
static void set_name(lua_State *L, const X509_NAME *name, const char *field, const char *cnfield) {
  BIO **slot = (BIO **)opsh_crypto_box(L, free_bio);
  *slot = BIO_new(BIO_s_mem());
  unsigned long flags = (XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) | ASN1_STRFLGS_UTF8_CONVERT;
  if (!*slot || X509_NAME_print_ex(*slot, name, 0, flags) < 0)
    opsh_crypto_error(L, "bad_certificate", "cannot print a certificate name");
  push_bio(L, *slot);
  lua_setfield(L, -3, field);
  lua_pop(L, 1);
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i >= 0) {
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    if (len >= 0) {
      lua_pushlstring(L, (const char *)utf8, (size_t)len);   /* may raise: free first */
      OPENSSL_free(utf8);
      lua_setfield(L, -2, cnfield);
    }
  }
}

/* [-0, +0, m] t[field] = "2024-01-31T12:00:00Z", t[field.."_epoch"] = seconds */
static void set_time(lua_State *L, const ASN1_TIME *t, const char *field) {
  struct tm tm;
  if (!ASN1_TIME_to_tm(t, &tm)) return;
  char buf[32], key[40];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  lua_pushstring(L, buf);
  lua_setfield(L, -2, field);
  snprintf(key, sizeof key, "%s_epoch", field);
  lua_pushinteger(L, (lua_Integer)timegm(&tm));
  lua_setfield(L, -2, key);
}

/* [-0, +0, m] t[field] = hex (upper, no colons) of bytes */
static void set_hex(lua_State *L, const unsigned char *b, size_t n, const char *field) {
  luaL_Buffer buf;
  char *out = luaL_buffinitsize(L, &buf, n * 2);
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = "0123456789ABCDEF"[b[i] >> 4];
    out[2 * i + 1] = "0123456789ABCDEF"[b[i] & 15];
  }
  luaL_pushresultsize(&buf, n * 2);
  lua_setfield(L, -2, field);
}

static void set_digest(lua_State *L, X509 *x, const EVP_MD *md, const char *field) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(x, md, d, &len)) set_hex(L, d, len, field);
}

/* [-0, +0, m] t.sans = {dns={}, ip={}, email={}, uri={}} */
static void set_sans(lua_State *L, X509 *x) {
  lua_createtable(L, 0, 4);
  static const char *const kinds[] = {"dns", "ip", "email", "uri"};
  for (int k = 0; k < 4; k++) {
    lua_newtable(L);
    lua_setfield(L, -2, kinds[k]);
  }
  GENERAL_NAMES **slot = (GENERAL_NAMES **)opsh_crypto_box(L, free_names);
  *slot = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; *slot && i < sk_GENERAL_NAME_num(*slot); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(*slot, i);
    const char *kind = NULL;
    if (g->type == GEN_DNS) kind = "dns";
    else if (g->type == GEN_IPADD) kind = "ip";
    else if (g->type == GEN_EMAIL) kind = "email";
    else if (g->type == GEN_URI) kind = "uri";
    if (!kind) continue;
    lua_getfield(L, -2, kind);
    if (g->type == GEN_IPADD) {
      char text[INET6_ADDRSTRLEN];
      int len = ASN1_STRING_length(g->d.ip);
      const unsigned char *b = ASN1_STRING_get0_data(g->d.ip);
      if ((len == 4 && inet_ntop(AF_INET, b, text, sizeof text)) ||
          (len == 16 && inet_ntop(AF_INET6, b, text, sizeof text)))
        lua_pushstring(L, text);
      else
        lua_pushliteral(L, "invalid");
    } else {
      const ASN1_IA5STRING *s = g->d.ia5;
      lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    }
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_setfield(L, -2, "sans");
}

static void set_list(lua_State *L, const char *field, uint32_t bits,
                     const uint32_t *flags, const char *const *names) {
  lua_newtable(L);
  for (int i = 0; names[i]; i++) {
    if (!(bits & flags[i])) continue;
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  }
  lua_setfield(L, -2, field);
}

static void set_usages(lua_State *L, X509 *x) {
  static const uint32_t ku[] = {KU_DIGITAL_SIGNATURE, KU_NON_REPUDIATION, KU_KEY_ENCIPHERMENT,
    KU_DATA_ENCIPHERMENT, KU_KEY_AGREEMENT, KU_KEY_CERT_SIGN, KU_CRL_SIGN};
  static const char *const ku_names[] = {"digital_signature", "non_repudiation", "key_encipherment",
    "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign", NULL};
  static const uint32_t xku[] = {XKU_SSL_SERVER, XKU_SSL_CLIENT, XKU_CODE_SIGN, XKU_SMIME,
    XKU_TIMESTAMP, XKU_OCSP_SIGN};
  static const char *const xku_names[] = {"server_auth", "client_auth", "code_signing",
    "email_protection", "time_stamping", "ocsp_signing", NULL};
  uint32_t flags = X509_get_extension_flags(x);
  set_list(L, "key_usage", flags & EXFLAG_KUSAGE ? X509_get_key_usage(x) : 0, ku, ku_names);
  set_list(L, "ext_key_usage", flags & EXFLAG_XKUSAGE ? X509_get_extended_key_usage(x) : 0, xku, xku_names);
}

/* [-0, +1, m] the table describing a certificate */
static void push_cert(lua_State *L, X509 *x) {
  lua_createtable(L, 0, 24);
  set_name(L, X509_get_subject_name(x), "subject", "subject_cn");
  set_name(L, X509_get_issuer_name(x), "issuer", "issuer_cn");
  lua_pushinteger(L, X509_get_version(x) + 1);
  lua_setfield(L, -2, "version");
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  BN_free(bn);
  if (hex) {
    lua_pushstring(L, hex);   /* may raise: free first */
    OPENSSL_free(hex);
    lua_setfield(L, -2, "serial");
  }
  set_time(L, X509_get0_notBefore(x), "not_before");
  set_time(L, X509_get0_notAfter(x), "not_after");
  set_sans(L, x);
  uint32_t flags = X509_get_extension_flags(x);
  lua_pushboolean(L, (flags & EXFLAG_CA) != 0);
  lua_setfield(L, -2, "is_ca");
  lua_pushboolean(L, X509_self_signed(x, 0) == 1);
  lua_setfield(L, -2, "self_signed");
  set_usages(L, x);
  const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
  if (ski) set_hex(L, ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski), "subject_key_id");
  const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
  if (aki) set_hex(L, ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki), "authority_key_id");
  set_digest(L, x, EVP_sha1(), "sha1_thumbprint");
  set_digest(L, x, EVP_sha256(), "sha256_thumbprint");
  lua_pushstring(L, OBJ_nid2ln(X509_get_signature_nid(x)));
  lua_setfield(L, -2, "signature_algorithm");
  EVP_PKEY *pk = X509_get0_pubkey(x);
  if (pk) {
    opsh_crypto_push_key_info(L, pk);
    lua_setfield(L, -2, "key");
  }
  ERR_clear_error();
  BIO **slot = (BIO **)opsh_crypto_box(L, free_bio);
  *slot = BIO_new(BIO_s_mem());
  if (*slot && PEM_write_bio_X509(*slot, x)) {
    push_bio(L, *slot);
    lua_setfield(L, -3, "pem");
  }
  lua_pop(L, 1);
}

/* x509_parse(pem_or_der) -> {subject=, issuer=, ...} of the first certificate */
static int x509_parse(lua_State *L) {
  X509 *x = opsh_crypto_load_x509(L, 1, "x509.parse");
  push_cert(L, x);
  return 1;
}

/* x509_parse_all(pem) -> {cert, ...}: every certificate of a bundle, in order */
static int x509_parse_all(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  if (!memmem(s, n, "-----BEGIN", 10)) {
    X509 *x = opsh_crypto_load_x509(L, 1, "x509.parse_all");
    lua_createtable(L, 1, 0);
    push_cert(L, x);
    lua_rawseti(L, -2, 1);
    return 1;
  }
  BIO **bio = (BIO **)opsh_crypto_box(L, free_bio);
  *bio = BIO_new_mem_buf(s, (int)n);
  lua_newtable(L);
  X509 **slot = (X509 **)opsh_crypto_box(L, opsh_crypto_free_x509);
  for (int i = 1; *bio; i++) {
    *slot = PEM_read_bio_X509(*bio, NULL, NULL, NULL);
    if (!*slot) break;
    push_cert(L, *slot);
    lua_rawseti(L, -3, i);
    X509_free(*slot);
    *slot = NULL;
  }
  ERR_clear_error();
  lua_pop(L, 1);
  if (lua_rawlen(L, -1) == 0)
    return opsh_crypto_error(L, "bad_certificate", "x509.parse_all: no certificate in the PEM text");
  return 1;
}

/* x509_thumbprint(cert, alg) -> raw digest of the DER certificate ("sha1" | "sha256") */
static int x509_thumbprint(lua_State *L) {
  X509 *x = opsh_crypto_load_x509(L, 1, "x509.thumbprint");
  const char *alg = luaL_optstring(L, 2, "sha1");
  const EVP_MD *md = strcmp(alg, "sha256") == 0 ? EVP_sha256() : strcmp(alg, "sha1") == 0 ? EVP_sha1() : NULL;
  luaL_argcheck(L, md != NULL, 2, "\"sha1\" or \"sha256\" expected");
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!X509_digest(x, md, d, &len)) return opsh_crypto_error(L, "digest", "thumbprint failed");
  lua_pushlstring(L, (const char *)d, len);
  return 1;
}

/* ---- issuing ---- */

/* the digest a key signs certificates with */
static const EVP_MD *sign_md(EVP_PKEY *key) {
  int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) return NULL;
  if (id == EVP_PKEY_EC) {
    int bits = EVP_PKEY_get_bits(key);
    return bits > 384 ? EVP_sha512() : bits > 256 ? EVP_sha384() : EVP_sha256();
  }
  return EVP_sha256();
}

static int field_int(lua_State *L, int opts, const char *name, int dflt) {
  lua_getfield(L, opts, name);
  int v = lua_isnil(L, -1) ? dflt : (int)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

static const char *field_str(lua_State *L, int opts, const char *name, const char *dflt) {
  lua_getfield(L, opts, name);
  const char *v = lua_isnil(L, -1) ? dflt : luaL_checkstring(L, -1);
  lua_pop(L, 1);   /* the string stays referenced by the options table */
  return v;
}

/* [-0, +1, v] a new v3 certificate for key: random serial, subject CN (and O), validity */
static X509 *new_cert(lua_State *L, int opts, EVP_PKEY *key, const char *cn) {
  int days = field_int(L, opts, "days", 365);
  if (days < 1 || days > MAX_DAYS) opsh_crypto_error(L, "usage", "days must be between 1 and %d", MAX_DAYS);
  const char *org = field_str(L, opts, "org", NULL);
  X509 **slot = (X509 **)opsh_crypto_box(L, opsh_crypto_free_x509);
  X509 *x = *slot = X509_new();
  unsigned char serial[16];
  BIGNUM *bn = NULL;
  int ok = x && RAND_bytes(serial, sizeof serial) == 1;
  serial[0] = (serial[0] & 0x7f) | 0x40;   /* positive, and 16 bytes long in DER */
  ok = ok && (bn = BN_bin2bn(serial, sizeof serial, NULL)) != NULL
       && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL
       && X509_set_version(x, X509_VERSION_3)
       && X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS)
       && X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL)
       && X509_set_pubkey(x, key);
  BN_free(bn);
  if (!ok) opsh_crypto_error(L, "x509", "cannot create the certificate");
  X509_NAME *name = X509_get_subject_name(x);
  if (strlen(cn) > 64 || (org && strlen(org) > 64))
    opsh_crypto_error(L, "usage", "cn and org are at most 64 characters");
  if ((org && !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0))
      || !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0))
    opsh_crypto_error(L, "usage", "invalid subject name");
  return x;
}

/* add an extension from its OpenSSL config text; 0 on failure */
static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value) {
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
  int ok = ext && X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

/* [-0, +1, v] sign x with signer, then push {cert_pem=, key_pem=secret of key} */
static void finish(lua_State *L, X509 *x, EVP_PKEY *signer, EVP_PKEY *key) {
  if (!X509_sign(x, signer, sign_md(signer))) opsh_crypto_error(L, "x509", "cannot sign the certificate");
  lua_createtable(L, 0, 2);
  BIO **slot = (BIO **)opsh_crypto_box(L, free_bio);
  *slot = BIO_new(BIO_s_mem());
  if (!*slot || !PEM_write_bio_X509(*slot, x)) opsh_crypto_error(L, "x509", "cannot write the certificate");
  push_bio(L, *slot);
  lua_setfield(L, -3, "cert_pem");
  lua_pop(L, 1);
  opsh_crypto_push_private_pem(L, key);
  lua_setfield(L, -2, "key_pem");
}

/* create_ca{cn=, org=, days=, key=, key_type=, bits=} -> {cert_pem=, key_pem=secret} */
static int x509_create_ca(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *cn = field_str(L, 1, "cn", NULL);
  luaL_argcheck(L, cn && *cn, 1, "cn is required");
  lua_settop(L, 1);
  lua_getfield(L, 1, "key");   /* 2 */
  EVP_PKEY *key = lua_isnil(L, 2)
    ? opsh_crypto_generate(L, field_str(L, 1, "key_type", "ec"), field_int(L, 1, "bits", 0))
    : opsh_crypto_load_private(L, 2, 0, "x509.create_ca key");
  X509 *x = new_cert(L, 1, key, cn);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  if (!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE")
      || !add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign")
      || !add_ext(x, &ctx, NID_subject_key_identifier, "hash")
      || !add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"))
    return opsh_crypto_error(L, "x509", "cannot add the CA extensions");
  finish(L, x, key, key);
  return 1;
}

/* a DNS name we put in a SAN: letters, digits, '-', '_', dots, and '*' as a whole first label */
static int valid_dns(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '*') {
      if (i != 0 || s[1] != '.') return 0;
    } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                 || c == '-' || c == '_' || (c == '.' && s[i + 1] != '.'))) {
      return 0;
    }
  }
  return 1;
}

/* [-0, +1, v] GENERAL_NAMES from the list at opts.sans: IP addresses typed as IP, others DNS */
static GENERAL_NAMES *build_sans(lua_State *L, int opts) {
  GENERAL_NAMES **slot = (GENERAL_NAMES **)opsh_crypto_box(L, free_names);
  *slot = sk_GENERAL_NAME_new_null();
  if (!*slot) opsh_crypto_error(L, "x509", "out of memory");
  lua_getfield(L, opts, "sans");
  int n = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    const char *san = lua_tostring(L, -1);
    if (!san || lua_type(L, -1) != LUA_TSTRING) opsh_crypto_error(L, "usage", "sans[%d] is not a string", i);
    unsigned char ip[16];
    int iplen = inet_pton(AF_INET, san, ip) == 1 ? 4 : inet_pton(AF_INET6, san, ip) == 1 ? 16 : 0;
    if (!iplen && !valid_dns(san))
      opsh_crypto_error(L, "usage", "sans[%d] is neither an IP address nor a DNS name: %s", i, san);
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *v = iplen ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    int ok = g && v && ASN1_STRING_set(v, iplen ? (const void *)ip : san, iplen ? iplen : -1);
    if (ok) {
      GENERAL_NAME_set0_value(g, iplen ? GEN_IPADD : GEN_DNS, v);
      v = NULL;
      ok = sk_GENERAL_NAME_push(*slot, g) > 0;
      if (ok) g = NULL;
    }
    ASN1_STRING_free(v);
    GENERAL_NAME_free(g);
    if (!ok) opsh_crypto_error(L, "x509", "out of memory");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return *slot;
}

/* create_cert{ca_cert=, ca_key=, ca_passphrase=, cn=, sans=, days=, server=, client=,
**   key=, key_type=, bits=} -> {cert_pem=, key_pem=secret}. The Lua layer fills defaults. */
static int x509_create_cert(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "ca_cert");   /* 2 */
  lua_getfield(L, 1, "ca_key");    /* 3 */
  lua_getfield(L, 1, "ca_passphrase");   /* 4 */
  lua_getfield(L, 1, "key");       /* 5 */
  X509 *ca = opsh_crypto_load_x509(L, 2, "x509.create_cert ca_cert");
  EVP_PKEY *cakey = opsh_crypto_load_private(L, 3, 4, "x509.create_cert ca_key");
  if (X509_check_private_key(ca, cakey) != 1)
    return opsh_crypto_error(L, "key_mismatch", "x509.create_cert: ca_key is not the key of ca_cert");
  if (!(X509_get_extension_flags(ca) & EXFLAG_CA))
    return opsh_crypto_error(L, "not_ca", "x509.create_cert: ca_cert is not a CA (basicConstraints CA:TRUE)");
  EVP_PKEY *key = lua_isnil(L, 5)
    ? opsh_crypto_generate(L, field_str(L, 1, "key_type", "ec"), field_int(L, 1, "bits", 0))
    : opsh_crypto_load_private(L, 5, 0, "x509.create_cert key");
  const char *cn = field_str(L, 1, "cn", NULL);
  luaL_argcheck(L, cn && *cn, 1, "cn is required");
  GENERAL_NAMES *sans = build_sans(L, 1);
  X509 *x = new_cert(L, 1, key, cn);
  if (!X509_set_issuer_name(x, X509_get_subject_name(ca))) return opsh_crypto_error(L, "x509", "out of memory");
  if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) > 0 &&
      !X509_set1_notAfter(x, X509_get0_notAfter(ca)))
    return opsh_crypto_error(L, "x509", "out of memory");
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
  lua_getfield(L, 1, "server");
  int server = lua_toboolean(L, -1);
  lua_getfield(L, 1, "client");
  int client = lua_toboolean(L, -1);
  lua_pop(L, 2);
  const char *eku = server && client ? "serverAuth,clientAuth" : server ? "serverAuth" : client ? "clientAuth" : NULL;
  int rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
  int ok = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")
    && add_ext(x, &ctx, NID_key_usage, rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature")
    && (!eku || add_ext(x, &ctx, NID_ext_key_usage, eku))
    && add_ext(x, &ctx, NID_subject_key_identifier, "hash");
  ok = ok && (add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")
              || add_ext(x, &ctx, NID_authority_key_identifier, "issuer:always"));
  ok = ok && (sk_GENERAL_NAME_num(sans) == 0
              || X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) == 1);
  if (!ok) return opsh_crypto_error(L, "x509", "cannot add the certificate extensions");
  finish(L, x, cakey, key);
  return 1;
}

static const luaL_Reg x509_funcs[] = {
  {"x509_parse", x509_parse},
  {"x509_parse_all", x509_parse_all},
  {"x509_thumbprint", x509_thumbprint},
  {"x509_create_ca", x509_create_ca},
  {"x509_create_cert", x509_create_cert},
  {NULL, NULL}
};

void opsh_crypto_x509_register(lua_State *L) {
  luaL_setfuncs(L, x509_funcs, 0);
}
