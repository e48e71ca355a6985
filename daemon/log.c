/*
 * log: leveled messages to stderr.  Under systemd, stderr goes to the
 * journal; with journal prefixes on, each line starts with "<N>" so
 * journald records the right priority.  Callers never pass secrets.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int	log_level = LOG_LVL_INFO;
static int	log_journal;

static const char *const log_names[] = { "error", "warning", "info", "debug" };
static const int log_syslog[] = { 3, 4, 6, 7 };

/* Set the level and whether to emit journald "<N>" prefixes. */
void
log_init(int level, int journal_prefix)
{
	log_level = level;
	log_journal = journal_prefix;
}

/* Change the level (SIGHUP reload). */
void
log_set_level(int level)
{
	log_level = level;
}

/* Level for a name such as "info", or -1. */
int
log_level_from_name(const char *name)
{
	size_t	i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(name, log_names[i]) == 0)
			return (int)i;
	if (strcmp(name, "warn") == 0)
		return LOG_LVL_WARN;
	return -1;
}

/* Format one line; errnum >= 0 appends strerror. */
static void	log_vmsg(int, int, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

static void
log_vmsg(int level, int errnum, const char *fmt, va_list ap)
{
	char		 msg[2048], ts[32];
	struct timespec	 now;
	struct tm	 tm;
	size_t		 i;

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* Keep one message on one line whatever the caller passed. */
	for (i = 0; msg[i] != '\0'; i++)
		if (msg[i] == '\n' || msg[i] == '\r')
			msg[i] = ' ';
	if (log_journal) {
		if (errnum >= 0)
			fprintf(stderr, "<%d>%s: %s\n", log_syslog[level], msg,
			    strerror(errnum));
		else
			fprintf(stderr, "<%d>%s\n", log_syslog[level], msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	if (errnum >= 0)
		fprintf(stderr, "%s.%03ldZ %s: %s: %s\n", ts,
		    now.tv_nsec / 1000000, log_names[level], msg,
		    strerror(errnum));
	else
		fprintf(stderr, "%s.%03ldZ %s: %s\n", ts, now.tv_nsec / 1000000,
		    log_names[level], msg);
}

#define LOG_FN(fn, level, witherr)			\
void							\
fn(const char *fmt, ...)				\
{							\
	va_list	ap;					\
	int	saved = errno;				\
							\
	va_start(ap, fmt);				\
	log_vmsg(level, (witherr) ? saved : -1, fmt, ap);	\
	va_end(ap);					\
	errno = saved;					\
}

LOG_FN(log_error, LOG_LVL_ERROR, 0)
LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)

/* Log an error with strerror(errno) and exit 1. */
void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

/* Log an error and exit 1. */
void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, -1, fmt, ap);
	va_end(ap);
	exit(1);
}
