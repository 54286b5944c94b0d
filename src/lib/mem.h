/*
 * mem.h - allocation that never returns NULL.
 *
 * Out of memory ends the process (STYLE §3): acknowledged mail is already on
 * disk, clients retry the rest, and per-session limits keep a client from
 * causing it.
 */
#ifndef SMTPGATE_LIB_MEM_H
#define SMTPGATE_LIB_MEM_H

#include <stddef.h>

void	*xmalloc(size_t size);
void	*xcalloc(size_t nmemb, size_t size);
void	*xrealloc(void *ptr, size_t size);
/* Grows an array of nmemb elements of size bytes, checking for overflow. */
void	*xreallocarray(void *ptr, size_t nmemb, size_t size);
char	*xstrdup(const char *s);
char	*xstrndup(const char *s, size_t n);
/* Formats into a new string; caller frees with free(). */
char	*xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Overwrites len bytes in a way the compiler cannot drop (secrets). */
void	 mem_wipe(void *p, size_t len);

#endif
