/*
 * fuzz_util.h - helpers shared by the fuzz targets (each target is built
 * on its own, so they are static here).
 */
#ifndef SMTPGATE_FUZZ_UTIL_H
#define SMTPGATE_FUZZ_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* An enhanced status code, class "." 1*3digit "." 1*3digit, of class cls
 * (2, 4 or 5; 0: any of them). */
static inline bool
fuzz_is_status(const char *s, int cls)
{
	size_t i = 1;

	if (cls == 0 ? (s[0] != '2' && s[0] != '4' && s[0] != '5') :
	    s[0] != '0' + cls)
		return false;
	for (int part = 0; part < 2; part++) {
		size_t n = 0;

		if (s[i++] != '.')
			return false;
		while (s[i] >= '0' && s[i] <= '9')
			i++, n++;
		if (n < 1 || n > 3)
			return false;
	}
	return s[i] == '\0';
}

/* Next NUL-terminated field of [*p, end), or NULL at the end; its value
 * repeated `repeat` times (long fields without long inputs). */
static inline char *
fuzz_next_field(const uint8_t **p, const uint8_t *end, size_t repeat)
{
	const uint8_t *nul;
	size_t n;
	char *s;

	if (*p >= end)
		return NULL;
	nul = memchr(*p, '\0', (size_t)(end - *p));
	if (nul == NULL)
		nul = end;
	n = (size_t)(nul - *p);
	if ((s = malloc(n * repeat + 1)) == NULL)
		abort();
	for (size_t i = 0; i < repeat; i++)
		memcpy(s + i * n, *p, n);
	s[n * repeat] = '\0';
	*p = nul < end ? nul + 1 : end;
	return s;
}

#endif
