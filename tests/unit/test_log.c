/*
 * Unit tests for daemon/log.c: the lines it writes to stderr, made by
 * hand for log_text() (the audit line of every call) and through printf
 * for the others; the level filter; line breaks in a message; a message
 * too long for one line is cut and still ends its line.  stderr is a
 * temporary file for the duration of each test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

#define LOG_OUT_MAX	8192

struct capture {
	FILE	*f;
	int	 saved;
	char	 out[LOG_OUT_MAX];
	size_t	 len;
};

static int
setup(void **state)
{
	struct capture	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->f = tmpfile()) == NULL)
		return -1;
	fflush(stderr);
	if ((c->saved = dup(STDERR_FILENO)) < 0 ||
	    dup2(fileno(c->f), STDERR_FILENO) < 0)
		return -1;
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct capture	*c = *state;

	log_set_buffered(0);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	fclose(c->f);
	free(c);
	return 0;
}

/* What was written to stderr so far, NUL-terminated. */
static const char *
captured(struct capture *c)
{
	ssize_t	n;

	log_flush();
	c->len = 0;
	if (lseek(fileno(c->f), 0, SEEK_SET) != 0)
		fail();
	while (c->len < sizeof(c->out) - 1 && (n = read(fileno(c->f),
	    c->out + c->len, sizeof(c->out) - 1 - c->len)) > 0)
		c->len += (size_t)n;
	c->out[c->len] = '\0';
	return c->out;
}

/* With journal prefixes: "<6>" and the message, line breaks as spaces. */
static void
test_log_text_journal_line(void **state)
{
	struct capture	*c = *state;
	char		 msg[] = "audit: method=substitute\nsubject=a\rb\r\nc";

	log_init(LOG_LVL_INFO, 1);
	log_text(LOG_LVL_INFO, msg, strlen(msg));
	log_warnx("count=%d name=%s", 42, "x");
	assert_string_equal(captured(c), "<6>audit: method=substitute "
	    "subject=a b  c\n<4>count=42 name=x\n");
}

/* Without: "YYYY-MM-DDTHH:MM:SS.mmmZ level: message". */
static void
test_log_text_timestamped_line(void **state)
{
	struct capture	*c = *state;
	const char	*out;
	char		 msg[] = "audit: method=hello ms=0";
	size_t		 i;

	log_init(LOG_LVL_INFO, 0);
	log_text(LOG_LVL_INFO, msg, strlen(msg));
	out = captured(c);
	assert_int_equal(strlen(out), 24 + strlen(" info: ") + strlen(msg) + 1);
	for (i = 0; i < 24; i++) {
		if (i == 4 || i == 7)
			assert_int_equal(out[i], '-');
		else if (i == 10)
			assert_int_equal(out[i], 'T');
		else if (i == 13 || i == 16)
			assert_int_equal(out[i], ':');
		else if (i == 19)
			assert_int_equal(out[i], '.');
		else if (i == 23)
			assert_int_equal(out[i], 'Z');
		else
			assert_true(out[i] >= '0' && out[i] <= '9');
	}
	assert_string_equal(out + 24, " info: audit: method=hello ms=0\n");
}

/* A level that is off writes nothing, and log_enabled says so. */
static void
test_log_text_respects_level(void **state)
{
	struct capture	*c = *state;
	char		 msg[] = "audit: method=substitute";

	log_init(LOG_LVL_WARN, 1);
	assert_false(log_enabled(LOG_LVL_INFO));
	assert_true(log_enabled(LOG_LVL_WARN));
	log_text(LOG_LVL_INFO, msg, strlen(msg));
	log_info("not %s", "either");
	assert_string_equal(captured(c), "");
	log_set_level(LOG_LVL_INFO);
	assert_true(log_enabled(LOG_LVL_INFO));
	log_text(LOG_LVL_INFO, msg, strlen(msg));
	assert_string_equal(captured(c), "<6>audit: method=substitute\n");
}

/* A message longer than a line is cut, and the line still ends. */
static void
test_log_text_long_message_is_one_line(void **state)
{
	struct capture	*c = *state;
	const char	*out;
	char		 msg[3000];
	size_t		 i;

	memset(msg, 'a', sizeof(msg));
	log_init(LOG_LVL_INFO, 1);
	log_text(LOG_LVL_INFO, msg, sizeof(msg));
	log_text(LOG_LVL_INFO, msg, 1);
	out = captured(c);
	assert_non_null(strchr(out, '\n'));
	i = (size_t)(strchr(out, '\n') - out);
	assert_true(i > 2000 && i < sizeof(msg));
	assert_string_equal(out + i, "\n<6>a\n");
}

/* Buffered lines come out in order at the flush, none before it. */
static void
test_log_buffered_lines_wait_for_flush(void **state)
{
	struct capture	*c = *state;
	char		 one[] = "one", two[] = "two";

	log_init(LOG_LVL_INFO, 1);
	log_set_buffered(1);
	log_text(LOG_LVL_INFO, one, 3);
	log_info("%s", two);
	assert_int_equal(lseek(fileno(c->f), 0, SEEK_END), 0);
	assert_string_equal(captured(c), "<6>one\n<6>two\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_log_text_journal_line,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_text_timestamped_line,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_text_respects_level,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_log_text_long_message_is_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_log_buffered_lines_wait_for_flush, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
