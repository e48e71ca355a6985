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

/* Format one line; errnum >= 0 appends strerror. */
static void	log_vmsg(int, int, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

static void
log_vmsg(int level, int errnum, const char *fmt, va_list ap)
{
	char		 msg[2048], line[2400];
	struct timespec	 now;
	struct tm	 tm;
	size_t		 i;
	int		 n;

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* Keep one message on one line whatever the caller passed. */
	for (i = 0; msg[i] != '\0'; i++)
		if (msg[i] == '\n' || msg[i] == '\r')
			msg[i] = ' ';
	if (log_to_syslog) {
		if (errnum >= 0)
			syslog(log_syslog[level], "%s: %s", msg,
			    strerror(errnum));
		else
			syslog(log_syslog[level], "%s", msg);
		return;
	}
	if (log_journal) {
		if (errnum >= 0)
			n = snprintf(line, sizeof(line), "<%d>%s: %s\n",
			    log_syslog[level], msg, strerror(errnum));
		else
			n = snprintf(line, sizeof(line), "<%d>%s\n",
			    log_syslog[level], msg);
	} else {
		clock_gettime(CLOCK_REALTIME, &now);
		/* One strftime per second, not per line. */
		if (now.tv_sec != log_ts_sec) {
			gmtime_r(&now.tv_sec, &tm);
			strftime(log_ts, sizeof(log_ts), "%Y-%m-%dT%H:%M:%S",
			    &tm);
			log_ts_sec = now.tv_sec;
		}
		if (errnum >= 0)
			n = snprintf(line, sizeof(line), "%s.%03ldZ %s: %s: %s\n",
			    log_ts, now.tv_nsec / 1000000, log_names[level],
			    msg, strerror(errnum));
		else
			n = snprintf(line, sizeof(line), "%s.%03ldZ %s: %s\n",
			    log_ts, now.tv_nsec / 1000000, log_names[level],
			    msg);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {	/* cut, but still one line */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	log_emit(line, (size_t)n);
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
