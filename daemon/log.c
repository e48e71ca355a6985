/*
 * log: leveled messages to stderr.  Under systemd, stderr goes to the
 * journal; with journal prefixes on, each line starts with "<N>" so
 * journald records the right priority.  Callers never pass secrets.
 *
 * While the event loop runs, lines are collected in a buffer and written
 * with one write(2) by log_flush(), which the server calls before it sends
 * any reply and once per loop iteration: a call's audit line is out before
 * its caller can see the answer, and a burst of pipelined calls costs one
 * system call, not one per line.  Outside the loop (start-up, shutdown,
 * fatal) every line is written at once.
 *
 * A daemon that detached (credbrokerd without -f) has no stderr: from
 * then on each line goes to syslog(3) instead, as it is made.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_BUF_SIZE	(32 * 1024)

static int	log_level = LOG_LVL_INFO;
static int	log_journal;
static int	log_buffered;
static int	log_to_syslog;
static char	log_buf[LOG_BUF_SIZE];
static size_t	log_buf_len;
static time_t	log_ts_sec = (time_t)-1;	/* second formatted in log_ts */
static char	log_ts[32];
static uint64_t	log_lost;		/* lines not written whole */
static int	log_midline;		/* a write stopped inside a line */

static const char *const log_names[] = { "error", "warning", "info", "debug" };
static const int log_syslog[] = { 3, 4, 6, 7 };

/* Set the level and whether to emit journald "<N>" prefixes. */
void
log_init(int level, int journal_prefix)
{
	log_level = level;
	log_journal = journal_prefix;
}

/* From now on, log to syslog(3) (facility daemon) under ident. */
void
log_syslog_open(const char *ident)
{
	log_flush();
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_to_syslog = 1;
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

/* Count the lines (newlines) in n bytes at p. */
static uint64_t
log_count_lines(const char *p, size_t n)
{
	uint64_t	 lines = 0;
	const char	*e;

	while (n > 0 && (e = memchr(p, '\n', n)) != NULL) {
		lines++;
		n -= (size_t)(e + 1 - p);
		p = e + 1;
	}
	return lines;
}

/*
 * Write all of p to stderr.  A line that cannot be written whole (a full
 * non-blocking pipe: EAGAIN; a reader gone: EPIPE; ...) is lost, and
 * counted for health; waiting for the reader would stop the loop.  A
 * line cut short is ended with a newline before the next write, so that
 * the lines after it are read as what they are.
 */
static void
log_write(const char *p, size_t n)
{
	const char	*start = p;
	ssize_t		 w;

	if (log_midline) {
		while ((w = write(STDERR_FILENO, "\n", 1)) < 0 &&
		    errno == EINTR)
			;
		if (w != 1) {
			log_lost += log_count_lines(p, n);
			return;
		}
		log_midline = 0;
	}
	while (n > 0) {
		if ((w = write(STDERR_FILENO, p, n)) <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			break;
		}
		p += w;
		n -= (size_t)w;
	}
	if (n == 0)
		return;
	log_lost += log_count_lines(p, n);
	log_midline = p > start && p[-1] != '\n';
}

uint64_t
log_lines_lost(void)
{
	return log_lost;
}

void
log_flush(void)
{
	int	saved = errno;

	if (log_buf_len > 0)
		log_write(log_buf, log_buf_len);
	log_buf_len = 0;
	errno = saved;
}

void
log_set_buffered(int on)
{
	log_flush();
	log_buffered = on;
}

/* Queue (or write) one formatted line. */
static void
log_emit(const char *line, size_t n)
{
	if (!log_buffered) {
		log_write(line, n);
		return;
	}
	if (n > sizeof(log_buf) - log_buf_len)
		log_flush();
	if (n > sizeof(log_buf)) {
		log_write(line, n);
		return;
	}
	memcpy(log_buf + log_buf_len, line, n);
	log_buf_len += n;
}

/* Append n bytes of p to the line being made at *at, within sz. */
static void
log_put(char *line, size_t sz, size_t *at, const char *p, size_t n)
{
	if (n > sz - *at)
		n = sz - *at;
	memcpy(line + *at, p, n);
	*at += n;
}

/*
 * Queue (or write) one message msg (len bytes, no newline needed) as a
 * line; errnum >= 0 appends strerror.  Lines are put together by hand:
 * this runs for the audit line of every call.
 */
static void
log_line(int level, int errnum, char *msg, size_t len)
{
	char		 line[2400], ms[8], *p;
	struct timespec	 now;
	struct tm	 tm;
	size_t		 at = 0;
	long		 milli;

	/* Keep one message on one line whatever the caller passed. */
	for (p = msg; len > 0 &&
	    (p = memchr(p, '\n', len - (size_t)(p - msg))) != NULL;)
		*p = ' ';
	for (p = msg; len > 0 &&
	    (p = memchr(p, '\r', len - (size_t)(p - msg))) != NULL;)
		*p = ' ';
	if (log_to_syslog) {
		if (errnum >= 0)
			syslog(log_syslog[level], "%.*s: %s", (int)len, msg,
			    strerror(errnum));
		else
			syslog(log_syslog[level], "%.*s", (int)len, msg);
		return;
	}
	if (log_journal) {
		ms[0] = '<';
		ms[1] = (char)('0' + log_syslog[level]);
		ms[2] = '>';
		log_put(line, sizeof(line) - 1, &at, ms, 3);
	} else {
		clock_gettime(CLOCK_REALTIME, &now);
		/* One strftime per second, not per line. */
		if (now.tv_sec != log_ts_sec) {
			gmtime_r(&now.tv_sec, &tm);
			strftime(log_ts, sizeof(log_ts), "%Y-%m-%dT%H:%M:%S",
			    &tm);
			log_ts_sec = now.tv_sec;
		}
		milli = now.tv_nsec / 1000000;
		ms[0] = '.';
		ms[1] = (char)('0' + milli / 100);
		ms[2] = (char)('0' + milli / 10 % 10);
		ms[3] = (char)('0' + milli % 10);
		ms[4] = 'Z';
		ms[5] = ' ';
		log_put(line, sizeof(line) - 1, &at, log_ts, strlen(log_ts));
		log_put(line, sizeof(line) - 1, &at, ms, 6);
		log_put(line, sizeof(line) - 1, &at, log_names[level],
		    strlen(log_names[level]));
		log_put(line, sizeof(line) - 1, &at, ": ", 2);
	}
	/* One byte stays for the newline: a cut line is still one line. */
	log_put(line, sizeof(line) - 1, &at, msg, len);
	if (errnum >= 0) {
		log_put(line, sizeof(line) - 1, &at, ": ", 2);
		log_put(line, sizeof(line) - 1, &at, strerror(errnum),
		    strlen(strerror(errnum)));
	}
	line[at++] = '\n';
	log_emit(line, at);
}

/* Format one line; errnum >= 0 appends strerror. */
static void	log_vmsg(int, int, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

static void
log_vmsg(int level, int errnum, const char *fmt, va_list ap)
{
	char	msg[2048];

	if (level > log_level)
		return;
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		return;
	/* Up to a NUL the arguments put in, as before. */
	log_line(level, errnum, msg, strlen(msg));
}

bool
log_enabled(int level)
{
	return level <= log_level;
}

void
log_text(int level, char *msg, size_t len)
{
	int	saved = errno;

	if (level <= log_level)
		log_line(level, -1, msg, len);
	errno = saved;
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
	log_flush();
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
	log_flush();
	exit(1);
}
