/*
 * log: leveled logging to stderr (journald under systemd picks up the
 * "<N>" priority prefixes when log.format is journal).  log_warn() appends
 * strerror(errno); log_warnx() does not.  fatal()/fatalx() exit(1) and are
 * only for start-up failures and broken invariants.  Never pass a secret.
 */
#ifndef CB_LOG_H
#define CB_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void	log_init(int level, int journal_prefix);
void	log_set_level(int level);
/* Detached: log to syslog(3) from now on (openlog LOG_PID, LOG_DAEMON). */
void	log_syslog_open(const char *ident);
int	log_level_from_name(const char *name);	/* -1 if unknown */
/* Collect lines until log_flush() (on while the loop runs), or not. */
void	log_set_buffered(int on);
/* Write the collected lines. */
void	log_flush(void);
/* Lines that stderr did not take whole (EAGAIN, EPIPE, ...) so far. */
uint64_t log_lines_lost(void);
/* Would a line of this level be logged? */
bool	log_enabled(int level);
/*
 * Log msg (len bytes, no format) at level; line breaks in it are turned
 * into spaces in place.
 */
void	log_text(int level, char *msg, size_t len);
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
