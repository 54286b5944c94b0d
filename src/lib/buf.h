/*
 * buf.h - growable byte buffers.
 *
 * A struct buf is embedded by its owner (buf_init/buf_clear). data is always
 * NUL-terminated after any buf_* call, so buf.data can be used as a string
 * when the content has no NUL bytes. _len is bytes used, _size capacity.
 */
#ifndef SMTPGATE_LIB_BUF_H
#define SMTPGATE_LIB_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 size;
};

void	buf_init(struct buf *b);
/* Frees the storage; the buf is empty and reusable afterwards. */
void	buf_clear(struct buf *b);
/* Forgets the content, keeps the storage. */
void	buf_reset(struct buf *b);
void	buf_reserve(struct buf *b, size_t extra);
void	buf_append(struct buf *b, const void *data, size_t len);
void	buf_puts(struct buf *b, const char *s);
void	buf_putc(struct buf *b, char c);
void	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Removes the first n bytes. */
void	buf_consume(struct buf *b, size_t n);
/* Hands the storage to the caller (free() it); the buf becomes empty. */
char	*buf_release(struct buf *b);

#endif
