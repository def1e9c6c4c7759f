/* glibc 2.38's C23 entry points, for LLVM built against it and linked on an older glibc. They
   differ from the C99 functions in one way: with base 0 or 2 the integer parsers accept a "0b"
   prefix. (The scanf family is forwarded as is: no C23 `%b` conversion.) */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

_Static_assert(sizeof(long) == sizeof(long long), "x86-64: long is long long");

/* The binary digits after a "0b" prefix C23 accepts here, or NULL; *negative gets the sign. */
static const char *binary_digits(const char *s, int base, int *negative) {
  if (base != 0 && base != 2)
    return NULL;
  while (isspace((unsigned char)*s))
    s++;
  *negative = *s == '-';
  if (*s == '+' || *s == '-')
    s++;
  if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B') && (s[2] == '0' || s[2] == '1'))
    return s + 2;
  return NULL;
}

unsigned long long __isoc23_strtoull(const char *s, char **end, int base) {
  int negative;
  const char *digits = binary_digits(s, base, &negative);
  if (!digits)
    return strtoull(s, end, base);
  unsigned long long magnitude = strtoull(digits, end, 2);
  return negative ? -magnitude : magnitude;
}

long long __isoc23_strtoll(const char *s, char **end, int base) {
  int negative;
  const char *digits = binary_digits(s, base, &negative);
  if (!digits)
    return strtoll(s, end, base);
  int saved = errno;
  errno = 0;
  unsigned long long magnitude = strtoull(digits, end, 2);
  int overflow = errno == ERANGE;
  errno = saved;
  if (negative) {
    if (overflow || magnitude > (unsigned long long)LLONG_MAX + 1) {
      errno = ERANGE;
      return LLONG_MIN;
    }
    return magnitude == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)magnitude;
  }
  if (overflow || magnitude > LLONG_MAX) {
    errno = ERANGE;
    return LLONG_MAX;
  }
  return (long long)magnitude;
}

unsigned long __isoc23_strtoul(const char *s, char **end, int base) {
  return __isoc23_strtoull(s, end, base);
}

long __isoc23_strtol(const char *s, char **end, int base) {
  return __isoc23_strtoll(s, end, base);
}

int __isoc23_sscanf(const char *s, const char *format, ...) {
  va_list args;
  va_start(args, format);
  int n = vsscanf(s, format, args);
  va_end(args);
  return n;
}

int __isoc23_scanf(const char *format, ...) {
  va_list args;
  va_start(args, format);
  int n = vscanf(format, args);
  va_end(args);
  return n;
}
