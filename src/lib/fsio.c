/*
 * fsio.c - durable file writes, directory syncs, safe path joins.
 * Layer: lib. Owns no state. Reports through struct err, never logs.
 */
#include "lib/fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/mem.h"
#include "lib/str.h"

int
fsio_fsync_dir(const char *path, struct err *e)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1)
		return err_sys(e, "open directory %s", path);
	if (fsync(fd) == -1) {
		err_sys(e, "fsync directory %s", path);
		(void)close(fd);
		return -1;
	}
	if (close(fd) == -1)
		return err_sys(e, "close directory %s", path);
	return 0;
}

/*
 * Parents are made searchable by everyone (0755, whatever the umask), as
 * mkdir -p would: only the last directory gets the caller's mode, so that
 * a server that drops privileges can still reach its own directories.
 */
static int
fsio_mkdirs_parent(const char *path, struct err *e)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return fsio_mkdirs(path, 0755, e);
	if (fsio_mkdirs(path, 0755, e) == -1)
		return -1;
	if (chmod(path, 0755) == -1)
		return err_sys(e, "chmod %s", path);
	return 0;
}

int
fsio_mkdirs(const char *path, mode_t mode, struct err *e)
{
	char tmp[PATH_MAX];
	char *slash;
	struct stat st;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		return err_set(e, "mkdir %s: exists and is not a directory",
		    path);
	}
	if (str_copy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
		return err_set(e, "mkdir %s: path too long", path);
	/* Create the parent first, then this one, then sync the parent. */
	slash = strrchr(tmp, '/');
	while (slash && slash > tmp && slash[-1] == '/')
		slash--;
	if (slash && slash != tmp) {
		*slash = '\0';
		if (fsio_mkdirs_parent(tmp, e) == -1)
			return -1;
	}
	if (mkdir(path, mode) == -1) {
		if (errno == EEXIST)
			return 0;
		return err_sys(e, "mkdir %s", path);
	}
	return fsio_fsync_dir(slash ? (slash == tmp ? "/" : tmp) : ".", e);
}

int
fsio_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
fsio_write_atomic(const char *dir, const char *name, const void *data,
    size_t len, mode_t mode, struct err *e)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	int fd, n;

	n = snprintf(tmp, sizeof(tmp), "%s/.%s.tmpXXXXXX", dir, name);
	if (n < 0 || (size_t)n >= sizeof(tmp) ||
	    fsio_join(final, sizeof(final), dir, name) == -1)
		return err_set(e, "write %s/%s: bad or too long path", dir,
		    name);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd == -1)
		return err_sys(e, "create %s", tmp);
	if (fchmod(fd, mode) == -1 || fsio_write_all(fd, data, len) == -1 ||
	    fsync(fd) == -1) {
		err_sys(e, "write %s", tmp);
		(void)close(fd);
		(void)unlink(tmp);
		return -1;
	}
	if (close(fd) == -1) {
		err_sys(e, "close %s", tmp);
		(void)unlink(tmp);
		return -1;
	}
	if (rename(tmp, final) == -1) {
		err_sys(e, "rename %s -> %s", tmp, final);
		(void)unlink(tmp);
		return -1;
	}
	return fsio_fsync_dir(dir, e);
}

char *
fsio_read_file(const char *path, size_t max, size_t *lenp, struct err *e)
{
	struct stat st;
	char *data;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		err_sys(e, "open %s", path);
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		err_sys(e, "stat %s", path);
		(void)close(fd);
		return NULL;
	}
	if ((unsigned long long)st.st_size > max) {
		err_set(e, "%s: file too large (%lld bytes, limit %zu)", path,
		    (long long)st.st_size, max);
		(void)close(fd);
		return NULL;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, data + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err_sys(e, "read %s", path);
			free(data);
			(void)close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);	/* read-only: nothing to lose */
	data[len] = '\0';
	if (lenp)
		*lenp = len;
	return data;
}

int
fsio_join(char *out, size_t size, const char *dir, const char *name)
{
	int n;

	if (name[0] == '\0' || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strchr(name, '/') != NULL)
		return -1;
	n = snprintf(out, size, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return 0;
}

long long
fsio_free_bytes(const char *path)
{
	struct statvfs sv;

	if (statvfs(path, &sv) == -1)
		return -1;
	return (long long)sv.f_bavail * (long long)sv.f_frsize;
}
