/*
 * slowsync: a fault-injection library for tests only, LD_PRELOAD'ed into
 * the daemon.  fsync(2) and fdatasync(2) of the database and of its -wal
 * file sleep before they sync, so that a test can hold a commit in
 * flight for as long as it likes and watch what the daemon does
 * meanwhile.
 *
 *   CB_SLOWSYNC_DB	the database's absolute path (required: without it
 *			nothing is slowed)
 *   CB_SLOWSYNC_MS	the delay, in milliseconds
 *   CB_SLOWSYNC_FLAG	optional: a file; the delay applies only while it
 *			exists, so that a test can set up at full speed
 *
 * The descriptor's file is told by its /proc/self/fd link.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/stat.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int
slowsync_match(int fd)
{
	const char	*db = getenv("CB_SLOWSYNC_DB");
	char		 link[64], path[PATH_MAX];
	ssize_t		 n;
	size_t		 dblen;

	if (db == NULL || *db == '\0')
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) <= 0)
		return 0;
	path[n] = '\0';
	dblen = strlen(db);
	if (strncmp(path, db, dblen) != 0)
		return 0;
	return path[dblen] == '\0' || strcmp(path + dblen, "-wal") == 0;
}

static void
slowsync_delay(int fd)
{
	const char	*ms = getenv("CB_SLOWSYNC_MS");
	const char	*flag = getenv("CB_SLOWSYNC_FLAG");
	struct stat	 sb;
	struct timespec	 ts;
	long		 v;

	if (ms == NULL || (v = strtol(ms, NULL, 10)) <= 0 ||
	    !slowsync_match(fd))
		return;
	if (flag != NULL && *flag != '\0' && stat(flag, &sb) == -1)
		return;
	ts.tv_sec = v / 1000;
	ts.tv_nsec = (v % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1)
		;
}

int
fsync(int fd)
{
	static int	(*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	slowsync_delay(fd);
	return real(fd);
}

int
fdatasync(int fd)
{
	static int	(*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	slowsync_delay(fd);
	return real(fd);
}
