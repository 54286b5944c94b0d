/*
 * fsio.h - the one place that makes files durable.
 *
 * Every durable write in smtpgate goes through these helpers (STYLE §6):
 * temp file in the same directory, write, fsync, checked close, rename or
 * link, then fsync of the directory. Errors are reported in a struct err
 * naming the operation and the path.
 */
#ifndef SMTPGATE_LIB_FSIO_H
#define SMTPGATE_LIB_FSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct err;

/* fsyncs the directory at path. */
int	fsio_fsync_dir(const char *path, struct err *e);
/*
 * Creates path with mode, and missing parents with 0755 (like mkdir -p);
 * fsyncs each parent in which a directory was created, so that the new
 * directory survives a crash.
 */
int	fsio_mkdirs(const char *path, mode_t mode, struct err *e);
/* write(2) all of len bytes, retrying on EINTR and short writes. */
int	fsio_write_all(int fd, const void *data, size_t len);
/*
 * Replaces dir/name with data atomically and durably: dir/.name.tmpXXXXXX,
 * write, fsync, close, rename, fsync(dir). The file gets mode.
 */
int	fsio_write_atomic(const char *dir, const char *name, const void *data,
	    size_t len, mode_t mode, struct err *e);
/*
 * Reads a whole file (at most max bytes) into a new NUL-terminated buffer;
 * caller frees with free(). *lenp gets the length. NULL on error (e filled,
 * "too large" when the file exceeds max).
 */
char	*fsio_read_file(const char *path, size_t max, size_t *lenp,
	    struct err *e);
/*
 * Joins dir and name into out (size bytes). Fails when the result does not
 * fit or name is not a plain file name (empty, ".", "..", contains '/').
 */
int	fsio_join(char *out, size_t size, const char *dir, const char *name);
/* Free bytes for an unprivileged writer on the file system of path, or -1. */
long long fsio_free_bytes(const char *path);

#endif
