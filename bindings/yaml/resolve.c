/*
** resolve.c — what a plain (unquoted) YAML scalar means, as Kubernetes reads manifests:
** sigs.k8s.io/yaml decodes with go-yaml v2, i.e. YAML 1.1 resolution. So `0644` is the octal
** 420 (the usual `defaultMode: 0644`), `yes/no/on/off/y/n` are booleans, `~`/`null`/empty are
** null, `1_000` is 1000, `08` is the float 8.0, timestamps stay strings. The emitter quotes
** every string this resolver would read as something else.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "yaml.h"

static int one_of(const char *s, size_t len, const char *const *words) {
  for (; *words; words++)
    if (strlen(*words) == len && memcmp(*words, s, len) == 0) return 1;
  return 0;
}

static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
static const char *const trues[] = {"true", "True", "TRUE", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", NULL};
static const char *const falses[] = {"false", "False", "FALSE", "n", "N", "no", "No", "NO", "off", "Off", "OFF", NULL};
static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};

static int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 99;
}

/* Go's strconv.ParseInt(s, 0, 64): sign, then 0x / 0o / 0b / leading-0 octal / decimal */
static int parse_int(const char *p, lua_Integer *out) {
  int neg = 0, base = 10;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) { base = 16; p += 2; }
  else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) { base = 8; p += 2; }
  else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) { base = 2; p += 2; }
  else if (p[0] == '0' && p[1]) { base = 8; p += 1; }
  if (!*p) return 0;
  unsigned long long v = 0, limit = neg ? (1ULL << 63) : (1ULL << 63) - 1;
  for (; *p; p++) {
    int d = digit_value(*p);
    if (d >= base) return 0;
    if (v > (limit - (unsigned)d) / (unsigned)base) return 0;
    v = v * (unsigned)base + (unsigned)d;
  }
  *out = neg ? (lua_Integer)(0ULL - v) : (lua_Integer)v;
  return 1;
}

/* go-yaml's yamlStyleFloat: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int float_syntax(const char *p) {
  if (*p == '+' || *p == '-') p++;
  if (*p == '.') {
    p++;
    if (!(*p >= '0' && *p <= '9')) return 0;
    while (*p >= '0' && *p <= '9') p++;
  } else {
    if (!(*p >= '0' && *p <= '9')) return 0;
    while (*p >= '0' && *p <= '9') p++;
    if (*p == '.') { p++; while (*p >= '0' && *p <= '9') p++; }
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') p++;
    if (!(*p >= '0' && *p <= '9')) return 0;
    while (*p >= '0' && *p <= '9') p++;
  }
  return *p == '\0';
}

int yaml_resolve_plain(const char *s, size_t len, yaml_resolved *r) {
  r->kind = YAML_R_STR;
  if (len == 0) return r->kind = YAML_R_NULL;
  switch (s[0]) {
    case '~': case 'n': case 'N': case 'y': case 'Y': case 't': case 'T':
    case 'f': case 'F': case 'o': case 'O':
      if (one_of(s, len, nulls)) return r->kind = YAML_R_NULL;
      if (one_of(s, len, trues)) { r->b = 1; return r->kind = YAML_R_BOOL; }
      if (one_of(s, len, falses)) { r->b = 0; return r->kind = YAML_R_BOOL; }
      return r->kind;
    case '.': case '+': case '-':
      if (one_of(s, len, infs)) { r->f = HUGE_VAL; return r->kind = YAML_R_FLOAT; }
      if (one_of(s, len, ninfs)) { r->f = -HUGE_VAL; return r->kind = YAML_R_FLOAT; }
      if (one_of(s, len, nans)) { r->f = NAN; return r->kind = YAML_R_FLOAT; }
      break;
    default:
      if (!(s[0] >= '0' && s[0] <= '9')) return r->kind;
  }
  char buf[128];
  size_t n = 0;
  for (size_t k = 0; k < len; k++) {
    if (s[k] == '_') continue;
    if (n == sizeof buf - 1 || s[k] == '\0') return r->kind;
    buf[n++] = s[k];
  }
  buf[n] = '\0';
  if (parse_int(buf, &r->i)) return r->kind = YAML_R_INT;
  if (float_syntax(buf)) {
    double f = strtod(buf, NULL);
    if (isinf(f)) return r->kind;   /* out of range: go-yaml's ParseFloat fails and the text stays a string */
    r->f = f;
    return r->kind = YAML_R_FLOAT;
  }
  return r->kind;
}
