/*
 * str.h - small string helpers that plain C lacks.
 */
#ifndef SMTPGATE_LIB_STR_H
#define SMTPGATE_LIB_STR_H

#include <stdbool.h>
#include <stddef.h>

/* Copies with truncation; dst always NUL-terminated. Returns strlen(src). */
size_t	 str_copy(char *dst, const char *src, size_t size);
/* Lowercases ASCII letters in place; returns s. */
char	*str_lower(char *s);
/* Removes leading and trailing blanks (space, tab, CR, LF) in place. */
char	*str_trim(char *s);
/* Case-insensitive ASCII prefix test. */
bool	 str_has_prefix_ci(const char *s, const char *prefix);
/* True when the len bytes contain no byte < 0x20 or 0x7f. */
bool	 str_is_printable(const char *s, size_t len);

#endif
