/*
** crc64.c — the CRC-64 Azure Storage sends as x-ms-content-crc64: CRC-64/NVME (reflected
** polynomial 0x9A6C9329AC4BC9B5, init and final xor all ones), the one the Azure SDKs compute.
** Slicing by 8: eight 256-entry tables, built once from the polynomial, fold 8 bytes a step.
*/
#include <stdint.h>
#include <string.h>
#include "crypto.h"

#define CRC64_POLY 0x9A6C9329AC4BC9B5ULL

static uint64_t crc_table[8][256];
static int crc_ready;

static void crc64_tables(void) {
  for (int i = 0; i < 256; i++) {
    uint64_t c = (uint64_t)i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC64_POLY : c >> 1;
    crc_table[0][i] = c;
  }
  for (int i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
  crc_ready = 1;
}

/* the CRC of p[0..n) continuing from crc (0 to start): crc64(b, crc64(a)) == crc64(a .. b) */
static uint64_t crc64_update(uint64_t crc, const unsigned char *p, size_t n) {
  uint64_t c = ~crc;
  while (n >= 8) {
    /* the 8 bytes as a little-endian word, whatever the host's order */
    uint64_t w = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
                 (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
    c ^= w;
    c = crc_table[7][c & 0xff] ^ crc_table[6][(c >> 8) & 0xff] ^ crc_table[5][(c >> 16) & 0xff] ^
        crc_table[4][(c >> 24) & 0xff] ^ crc_table[3][(c >> 32) & 0xff] ^ crc_table[2][(c >> 40) & 0xff] ^
        crc_table[1][(c >> 48) & 0xff] ^ crc_table[0][c >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
  return ~c;
}

/* crc64(data [, crc]) -> integer: the CRC-64 of data, continuing from crc (a previous result) */
static int crypto_crc64(lua_State *L) {
  size_t n;
  const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
  uint64_t crc = (uint64_t)luaL_optinteger(L, 2, 0);
  lua_pushinteger(L, (lua_Integer)crc64_update(crc, p, n));
  return 1;
}

static const luaL_Reg crc64_funcs[] = {
  {"crc64", crypto_crc64},
  {NULL, NULL}
};

void opsh_crypto_crc64_register(lua_State *L) {
  if (!crc_ready) crc64_tables();
  luaL_setfuncs(L, crc64_funcs, 0);
}
