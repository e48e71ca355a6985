/*
 * Unit tests for daemon/conf.c: the defaults, every key of
 * credbroker.conf(5) with its valid range and its refusals, error
 * messages that name the key and where it was written, unknown sections
 * and keys, -o section.key=value overrides (which beat the file; the first
 * -o access.grant replaces the file's grants; the master key is never
 * taken from the command line), and conf_parse_grant's grammar
 * "PRINCIPAL PERM[,PERM...]".  Configuration files are written into a
 * private temporary directory per test.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "template.h"

#define DEF_SOCKET	"/run/credbroker/credbroker.sock"
#define DEF_DATABASE	"/var/lib/credbroker/credbroker.db"
#define MSG_O_SYNTAX	"-o takes section.key=value"
#define MSG_O_KEY	"the master key is never accepted on the command " \
			"line; use security.secret_key_file"
#define MSG_GRANT	"grant must be 'PRINCIPAL PERM[,PERM...]'"
#define MSG_SYNTAX	"syntax error: a line is a [section] header, a " \
			"'key = value' line, a comment starting with # or ;, " \
			"or blank"

#define MAXFILES	64

struct fixture {
	char	dir[64];
	char	*files[MAXFILES];
	int	nfiles;
};

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cbconf.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	int		 i;

	for (i = 0; i < f->nfiles; i++) {
		unlink(f->files[i]);
		free(f->files[i]);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Write text to dir/name and return the path (owned by the fixture). */
static const char *
write_conf(struct fixture *f, const char *name, const char *text)
{
	FILE	*fp;
	char	*path;

	assert_true(f->nfiles < MAXFILES);
	assert_true(asprintf(&path, "%s/%s", f->dir, name) > 0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	f->files[f->nfiles++] = path;
	return path;
}

/* A conf after a failed load is all zeroes (conf_load freed it). */
static void
assert_conf_zeroed(const struct conf *c)
{
	static const struct conf zero;

	assert_memory_equal(c, &zero, sizeof(zero));
}

/*
 * Check "PATH:N: SUFFIX".  line < 0 accepts any N >= 1 (most tests are not
 * about line numbers; test_error_line_numbers is).  Returns N.
 */
static int
assert_file_error(const char *msg, const char *path, int line,
    const char *suffix)
{
	size_t		 plen = strlen(path);
	const char	*p;
	char		*end;
	long		 n;

	if (strncmp(msg, path, plen) != 0 || msg[plen] != ':')
		fail_msg("'%s' does not start with '%s:'", msg, path);
	p = msg + plen + 1;
	if (!isdigit((unsigned char)*p))
		fail_msg("'%s': no line number after the path", msg);
	n = strtol(p, &end, 10);
	if (strncmp(end, ": ", 2) != 0 || strcmp(end + 2, suffix) != 0)
		fail_msg("'%s' does not end with ': %s'", msg, suffix);
	if (line >= 0 && n != line)
		fail_msg("'%s': line %ld, expected %d", msg, n, line);
	assert_true(n >= 1);
	return (int)n;
}

/* Load with overrides given as a NULL-terminated list. */
static int
load(struct conf *c, const char *path, const char *const *ov,
    struct cb_error *err)
{
	size_t	n = 0;

	while (ov != NULL && ov[n] != NULL)
		n++;
	return conf_load(c, path, (char *const *)ov, n, err);
}

#define OV(...)	((const char *const[]){ __VA_ARGS__, NULL })

static void
assert_defaults(const struct conf *c)
{
	assert_string_equal(c->socket, DEF_SOCKET);
	assert_int_equal(c->socket_mode, 0660);
	assert_int_equal(c->max_message, 1048576);
	assert_int_equal(c->max_message, CB_DEFAULT_MAX_MESSAGE);
	assert_int_equal(c->max_message_noperm, 4096);
	assert_int_equal(c->max_connections, 1024);
	assert_int_equal(c->max_connections_per_uid, 128);
	assert_int_equal(c->reserved_connections, 16);
	assert_int_equal(c->max_inflight, 64);
	assert_int_equal(c->idle_timeout, 300);
	assert_int_equal(c->message_timeout, 30);
	assert_int_equal(c->shutdown_timeout, 10);
	assert_int_equal(c->substitute_syntax, TPL_SYNTAX_BOTH);
	assert_string_equal(c->database, DEF_DATABASE);
	assert_int_equal(c->page_cache_mb, 16);
	assert_int_equal(c->mmap_mb, 0);
	assert_int_equal(c->vault_max_connections, 16);
	assert_int_equal(c->vault_max_pending, 16);
	assert_null(c->secret_key_file);
	assert_string_equal(c->secret_key_credential, "master-key");
	assert_null(secbuf_str(&c->secret_key));
	assert_null(c->grants);
	assert_int_equal(c->ngrants, 0);
	assert_int_equal(c->log_level, LOG_LVL_INFO);
}

static void
test_defaults_without_file(void **state)
{
	struct conf	c;
	struct cb_error	err;

	(void)state;
	err.code = 99;
	assert_int_equal(conf_load(&c, NULL, NULL, 0, &err), 0);
	assert_int_equal(err.code, 0);
	assert_null(c.path);
	assert_defaults(&c);
	conf_free(&c);
	assert_conf_zeroed(&c);
	conf_free(&c);			/* twice is harmless */

	/* err may be NULL. */
	assert_int_equal(conf_load(&c, NULL, NULL, 0, NULL), 0);
	assert_defaults(&c);
	conf_free(&c);
}

/* An empty file, or one with only comments and headers: defaults. */
static void
test_defaults_with_empty_file(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	const char	*p;

	p = write_conf(f, "empty.conf", "");
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), 0);
	assert_string_equal(c.path, p);
	assert_defaults(&c);
	conf_free(&c);

	p = write_conf(f, "comments.conf",
	    "; credbroker.conf\n"
	    "# nothing set here\n"
	    "\n"
	    "[server]\n"
	    "   ; indented comment\n"
	    "[storage]\n"
	    "[security]\n"
	    "[access]\n"
	    "[log]\n");
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), 0);
	assert_defaults(&c);
	conf_free(&c);
}

static void
test_every_key(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	const char	*p;

	p = write_conf(f, "full.conf",
	    "# every key\n"
	    "[server]\n"
	    "socket = /run/cb/test.sock\n"
	    "socket_mode=0600\n"
	    "max_message_size   =   65536   \n"
	    "max_connections = 17 ; inline comment\n"
	    "max_inflight = 3\n"
	    "idle_timeout = 0\n"
	    "shutdown_timeout = 42\n"
	    "\n"
	    "[substitute]\n"
	    "syntax = angle\n"
	    "[storage]\n"
	    "database = /srv/cb/store.db\n"
	    "[security]\n"
	    "secret_key_file = /etc/credbroker/master.key\n"
	    "secret_key_credential = cb-master\n"
	    "secret_key = Xq7#mP2$vL9!rT4w\n"
	    "[access]\n"
	    "grant = uid:1000 read:health\n"
	    "grant = gid:2000\tuse:credentials,read:health\n"
	    "grant = user:root *\n"
	    "grant = group:root edit:user-credentials\n"
	    "[log]\n"
	    "level = debug\n");
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), 0);
	assert_string_equal(c.path, p);
	assert_string_equal(c.socket, "/run/cb/test.sock");
	assert_int_equal(c.socket_mode, 0600);
	assert_int_equal(c.max_message, 65536);
	assert_int_equal(c.max_connections, 17);
	assert_int_equal(c.max_inflight, 3);
	assert_int_equal(c.idle_timeout, 0);
	assert_int_equal(c.shutdown_timeout, 42);
	assert_int_equal(c.substitute_syntax, TPL_SYNTAX_ANGLE);
	assert_string_equal(c.database, "/srv/cb/store.db");
	assert_string_equal(c.secret_key_file, "/etc/credbroker/master.key");
	assert_string_equal(c.secret_key_credential, "cb-master");
	assert_string_equal(secbuf_str(&c.secret_key), "Xq7#mP2$vL9!rT4w");
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);

	assert_int_equal(c.ngrants, 4);
	assert_int_equal(c.grants[0].kind, GRANT_UID);
	assert_int_equal(c.grants[0].id, 1000);
	assert_int_equal(c.grants[0].perms, CB_PERM_BIT(CB_PERM_HEALTH));
	assert_string_equal(c.grants[0].text, "uid:1000 read:health");
	assert_int_equal(c.grants[1].kind, GRANT_GID);
	assert_int_equal(c.grants[1].id, 2000);
	assert_int_equal(c.grants[1].perms, CB_PERM_BIT(CB_PERM_USE) |
	    CB_PERM_BIT(CB_PERM_HEALTH));
	assert_string_equal(c.grants[1].text,
	    "gid:2000\tuse:credentials,read:health");
	assert_int_equal(c.grants[2].kind, GRANT_UID);
	assert_int_equal(c.grants[2].id, 0);
	assert_int_equal(c.grants[2].perms, CB_PERM_ALL);
	assert_int_equal(c.grants[3].kind, GRANT_GID);
	assert_int_equal(c.grants[3].id, 0);
	assert_int_equal(c.grants[3].perms, CB_PERM_BIT(CB_PERM_CREDS));
	conf_free(&c);
	assert_conf_zeroed(&c);
}

/*
 * server.max_reply_size defaults to four times server.max_message_size,
 * whichever order or source sets the latter, and an explicit value wins.
 */
static void
test_max_reply_size_follows_max_message_size(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	const char	*p;

	assert_int_equal(load(&c, NULL, NULL, &err), 0);
	assert_int_equal(c.max_reply, 4 * CB_DEFAULT_MAX_MESSAGE);
	conf_free(&c);
	assert_int_equal(load(&c, NULL, OV("server.max_message_size=65536"),
	    &err), 0);
	assert_int_equal(c.max_reply, 4 * 65536);
	conf_free(&c);
	p = write_conf(f, "reply.conf", "[server]\nmax_reply_size = 5000\n"
	    "max_message_size = 65536\n");
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), 0);
	assert_int_equal(c.max_reply, 5000);
	assert_int_equal(c.max_message, 65536);
	conf_free(&c);
	assert_int_equal(load(&c, p, OV("server.max_message_size=2048"), &err),
	    0);
	assert_int_equal(c.max_reply, 5000);
	conf_free(&c);
}

/* The numeric value of a numeric setting, by its key name. */
static unsigned long long
conf_num(const struct conf *c, const char *key)
{
	if (strcmp(key, "server.socket_mode") == 0)
		return c->socket_mode;
	if (strcmp(key, "server.max_message_size") == 0)
		return c->max_message;
	if (strcmp(key, "server.max_reply_size") == 0)
		return c->max_reply;
	if (strcmp(key, "server.max_message_size_no_permission") == 0)
		return c->max_message_noperm;
	if (strcmp(key, "server.max_connections") == 0)
		return c->max_connections;
	if (strcmp(key, "server.max_connections_per_uid") == 0)
		return c->max_connections_per_uid;
	if (strcmp(key, "server.reserved_connections") == 0)
		return c->reserved_connections;
	if (strcmp(key, "server.message_timeout") == 0)
		return c->message_timeout;
	if (strcmp(key, "server.max_inflight") == 0)
		return c->max_inflight;
	if (strcmp(key, "server.idle_timeout") == 0)
		return c->idle_timeout;
	if (strcmp(key, "server.shutdown_timeout") == 0)
		return c->shutdown_timeout;
	if (strcmp(key, "substitute.syntax") == 0)
		return (unsigned long long)c->substitute_syntax;
	if (strcmp(key, "storage.page_cache_mb") == 0)
		return c->page_cache_mb;
	if (strcmp(key, "storage.mmap_mb") == 0)
		return c->mmap_mb;
	if (strcmp(key, "vault.max_connections") == 0)
		return c->vault_max_connections;
	if (strcmp(key, "vault.max_pending") == 0)
		return c->vault_max_pending;
	if (strcmp(key, "log.level") == 0)
		return (unsigned long long)c->log_level;
	fail_msg("no numeric key %s", key);
	return 0;
}

/* Write "[section]\nkey = value\n" for "section.key". */
static const char *
write_one(struct fixture *f, const char *name, const char *skey,
    const char *value)
{
	char	text[512];
	const char *dot = strchr(skey, '.');

	assert_non_null(dot);
	snprintf(text, sizeof(text), "[%.*s]\n%s = %s\n", (int)(dot - skey),
	    skey, dot + 1, value);
	return write_conf(f, name, text);
}

/* Accepted values at the edges of every range, from -o and from a file. */
static void
test_numeric_ranges_valid(void **state)
{
	static const struct {
		const char		*key;
		const char		*value;
		unsigned long long	 want;
	} cases[] = {
		{ "server.socket_mode", "0", 0 },
		{ "server.socket_mode", "777", 0777 },
		{ "server.socket_mode", "0777", 0777 },
		{ "server.socket_mode", "600", 0600 },
		{ "server.socket_mode", "0660", 0660 },
		{ "server.max_message_size", "1024", 1024 },
		{ "server.max_message_size", "67108864", 67108864 },
		{ "server.max_reply_size", "1024", 1024 },
		{ "server.max_reply_size", "268435456", 268435456 },
		{ "server.max_connections", "1", 1 },
		{ "server.max_connections", "1000000", 1000000 },
		{ "server.max_message_size_no_permission", "256", 256 },
		{ "server.max_message_size_no_permission", "67108864",
		    67108864 },
		{ "server.max_connections_per_uid", "1", 1 },
		{ "server.max_connections_per_uid", "1000000", 1000000 },
		{ "server.reserved_connections", "0", 0 },
		{ "server.reserved_connections", "1000000", 1000000 },
		{ "server.message_timeout", "1", 1 },
		{ "server.message_timeout", "3600", 3600 },
		{ "server.max_inflight", "1", 1 },
		{ "server.max_inflight", "100000", 100000 },
		{ "server.idle_timeout", "0", 0 },
		{ "server.idle_timeout", "604800", 604800 },
		{ "server.shutdown_timeout", "0", 0 },
		{ "server.shutdown_timeout", "3600", 3600 },
		{ "substitute.syntax", "both", TPL_SYNTAX_BOTH },
		{ "substitute.syntax", "angle", TPL_SYNTAX_ANGLE },
		{ "substitute.syntax", "brace", TPL_SYNTAX_BRACE },
		{ "storage.page_cache_mb", "1", 1 },
		{ "storage.page_cache_mb", "4096", 4096 },
		{ "storage.mmap_mb", "0", 0 },
		{ "storage.mmap_mb", "65536", 65536 },
		{ "vault.max_connections", "1", 1 },
		{ "vault.max_connections", "1024", 1024 },
		{ "vault.max_pending", "1", 1 },
		{ "vault.max_pending", "100000", 100000 },
		{ "log.level", "error", LOG_LVL_ERROR },
		{ "log.level", "warning", LOG_LVL_WARN },
		{ "log.level", "warn", LOG_LVL_WARN },
		{ "log.level", "info", LOG_LVL_INFO },
		{ "log.level", "debug", LOG_LVL_DEBUG },
	};
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	char		 ov[128], name[32];
	const char	*p;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(ov, sizeof(ov), "%s=%s", cases[i].key, cases[i].value);
		if (load(&c, NULL, OV(ov), &err) != 0)
			fail_msg("-o %s: %s", ov, err.msg);
		assert_int_equal(conf_num(&c, cases[i].key), cases[i].want);
		conf_free(&c);

		snprintf(name, sizeof(name), "ok%zu.conf", i);
		p = write_one(f, name, cases[i].key, cases[i].value);
		if (conf_load(&c, p, NULL, 0, &err) != 0)
			fail_msg("file %s: %s", ov, err.msg);
		assert_int_equal(conf_num(&c, cases[i].key), cases[i].want);
		conf_free(&c);
	}
}

struct badcase {
	const char	*key;
	const char	*value;
	int		 abs;		/* "must be an absolute path" */
};

static const struct badcase bad_values[] = {
	{ "server.socket", "relative/credbroker.sock", 1 },
	{ "server.socket", "", 1 },
	{ "server.socket_mode", "888", 0 },
	{ "server.socket_mode", "1000", 0 },
	{ "server.socket_mode", "abc", 0 },
	{ "server.socket_mode", "", 0 },
	{ "server.socket_mode", "0x1ff", 0 },
	{ "server.socket_mode", "-1", 0 },
	{ "server.max_message_size", "1023", 0 },
	{ "server.max_message_size", "67108865", 0 },
	{ "server.max_message_size", "-1", 0 },
	{ "server.max_message_size", "+2048", 0 },
	{ "server.max_message_size", "1k", 0 },
	{ "server.max_message_size", "0x400", 0 },
	{ "server.max_message_size", "", 0 },
	{ "server.max_message_size", "18446744073709551616", 0 },
	{ "server.max_reply_size", "1023", 0 },
	{ "server.max_reply_size", "268435457", 0 },
	{ "server.max_reply_size", "4M", 0 },
	{ "server.max_connections", "0", 0 },
	{ "server.max_connections", "1000001", 0 },
	{ "server.max_connections", "1.5", 0 },
	{ "server.max_message_size_no_permission", "255", 0 },
	{ "server.max_message_size_no_permission", "67108865", 0 },
	{ "server.max_connections_per_uid", "0", 0 },
	{ "server.max_connections_per_uid", "1000001", 0 },
	{ "server.reserved_connections", "1000001", 0 },
	{ "server.reserved_connections", "-1", 0 },
	{ "server.message_timeout", "0", 0 },
	{ "server.message_timeout", "3601", 0 },
	{ "server.max_inflight", "0", 0 },
	{ "server.max_inflight", "100001", 0 },
	{ "server.idle_timeout", "604801", 0 },
	{ "server.idle_timeout", "-1", 0 },
	{ "server.shutdown_timeout", "3601", 0 },
	{ "server.shutdown_timeout", "ten", 0 },
	{ "substitute.syntax", "", 0 },
	{ "substitute.syntax", "Brace", 0 },
	{ "substitute.syntax", "curly", 0 },
	{ "substitute.syntax", "angle,brace", 0 },
	{ "storage.page_cache_mb", "0", 0 },
	{ "storage.page_cache_mb", "4097", 0 },
	{ "storage.page_cache_mb", "8M", 0 },
	{ "storage.mmap_mb", "65537", 0 },
	{ "storage.mmap_mb", "-1", 0 },
	{ "vault.max_connections", "0", 0 },
	{ "vault.max_connections", "1025", 0 },
	{ "vault.max_pending", "0", 0 },
	{ "vault.max_pending", "100001", 0 },
	{ "storage.database", "credbroker.db", 1 },
	{ "storage.database", "./credbroker.db", 1 },
	{ "storage.database", "", 1 },
	{ "security.secret_key_file", "master.key", 1 },
	{ "security.secret_key_file", "~/master.key", 1 },
	{ "security.secret_key_credential", "", 0 },
	{ "security.secret_key_credential", "a/b", 0 },
	{ "security.secret_key_credential", "/abs", 0 },
	{ "audit.sync", "maybe", 0 },
	{ "log.level", "verbose", 0 },
	{ "log.level", "INFO", 0 },
	{ "log.level", "", 0 },
};

/* What credbroker.conf(5) says each key accepts, as the messages say it. */
static const struct {
	const char	*key;
	const char	*valid;
} valid_values[] = {
	{ "server.socket_mode", "an octal mode from 0 to 0777" },
	{ "server.max_message_size", "1024..67108864" },
	{ "server.max_reply_size", "1024..268435456" },
	{ "server.max_message_size_no_permission", "256..67108864" },
	{ "server.max_connections", "1..1000000" },
	{ "server.max_connections_per_uid", "1..1000000" },
	{ "server.reserved_connections", "0..1000000" },
	{ "server.message_timeout", "1..3600" },
	{ "server.max_inflight", "1..100000" },
	{ "server.idle_timeout", "0..604800" },
	{ "server.shutdown_timeout", "0..3600" },
	{ "substitute.syntax", "one of both, angle, brace" },
	{ "storage.page_cache_mb", "1..4096" },
	{ "storage.mmap_mb", "0..65536" },
	{ "vault.max_connections", "1..1024" },
	{ "vault.max_pending", "1..100000" },
	{ "security.secret_key_credential", "a file name without '/'" },
	{ "audit.sync", "yes or no (or true/false, on/off, 1/0)" },
	{ "log.level", "one of error, warning, info, debug" },
};

/* "KEY must be VALID, got 'VALUE'", or the absolute path message. */
static void
expect_suffix(char *buf, size_t n, const struct badcase *b)
{
	size_t	i;

	if (b->abs) {
		snprintf(buf, n, "%s must be an absolute path", b->key);
		return;
	}
	for (i = 0; i < sizeof(valid_values) / sizeof(valid_values[0]); i++)
		if (strcmp(valid_values[i].key, b->key) == 0)
			break;
	if (i == sizeof(valid_values) / sizeof(valid_values[0]))
		fail_msg("no valid values listed for %s", b->key);
	snprintf(buf, n, "%s must be %s, got '%s'", b->key,
	    valid_values[i].valid, b->value);
}

static void
test_invalid_values_override(void **state)
{
	struct conf	c;
	struct cb_error	err;
	char		ov[128], want[256], suffix[200];
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
		snprintf(ov, sizeof(ov), "%s=%s", bad_values[i].key,
		    bad_values[i].value);
		if (load(&c, NULL, OV(ov), &err) != -CB_EBADREQ)
			fail_msg("-o %s accepted", ov);
		assert_int_equal(err.code, CB_EBADREQ);
		expect_suffix(suffix, sizeof(suffix), &bad_values[i]);
		snprintf(want, sizeof(want), "-o:1: %s", suffix);
		assert_string_equal(err.msg, want);
		assert_conf_zeroed(&c);
		conf_free(&c);		/* harmless after a failed load */
	}
	/* The position of the bad -o is named. */
	assert_int_equal(load(&c, NULL, OV("server.max_inflight=2",
	    "log.level=info", "server.max_inflight=0"), &err), -CB_EBADREQ);
	assert_string_equal(err.msg,
	    "-o:3: server.max_inflight must be 1..100000, got '0'");
	/* The example of credbroker.conf(5). */
	assert_int_equal(load(&c, NULL, OV("server.max_connections=lots"),
	    &err), -CB_EBADREQ);
	assert_string_equal(err.msg,
	    "-o:1: server.max_connections must be 1..1000000, got 'lots'");
	assert_int_equal(load(&c, NULL, OV("audit.sync=maybe"), &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "-o:1: audit.sync must be yes or no (or "
	    "true/false, on/off, 1/0), got 'maybe'");
	/* err may be NULL. */
	assert_int_equal(load(&c, NULL, OV("server.max_inflight=0"), NULL),
	    -CB_EBADREQ);
	assert_conf_zeroed(&c);
}

static void
test_invalid_values_file(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	char		 suffix[200], name[32];
	const char	*p;
	size_t		 i;

	for (i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
		snprintf(name, sizeof(name), "bad%zu.conf", i);
		p = write_one(f, name, bad_values[i].key, bad_values[i].value);
		if (conf_load(&c, p, NULL, 0, &err) != -CB_EBADREQ)
			fail_msg("%s = '%s' accepted", bad_values[i].key,
			    bad_values[i].value);
		assert_int_equal(err.code, CB_EBADREQ);
		expect_suffix(suffix, sizeof(suffix), &bad_values[i]);
		assert_file_error(err.msg, p, -1, suffix);
		assert_conf_zeroed(&c);
	}
}

/*
 * Error messages say "FILE:LINE:".  The line must be the line of the file
 * on which the offending key is written, counting comments, blank lines
 * and section headers.
 */
static void
test_error_line_numbers(void **state)
{
	static const struct {
		const char	*text;
		int		 line;
		const char	*suffix;
	} cases[] = {
		{ "# credbroker\n\n[server]\nsocket = /x.sock\n"
		  "max_connections = 0\n", 5,
		  "server.max_connections must be 1..1000000, got '0'" },
		{ "[server]\n; comment\nsocket = /x\n[storage]\n"
		  "databse = /db\n", 5, "unknown key 'storage.databse'" },
		{ "[access]\n\n\ngrant = uid:1 bogus\n", 4,
		  "access.grant: unknown permission 'bogus'" },
		{ "[storage]\n\ndatabase = rel.db\n", 3,
		  "storage.database must be an absolute path" },
	};
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	char		 name[32];
	const char	*p;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "line%zu.conf", i);
		p = write_conf(f, name, cases[i].text);
		assert_int_equal(conf_load(&c, p, NULL, 0, &err), -CB_EBADREQ);
		assert_file_error(err.msg, p, cases[i].line, cases[i].suffix);
	}
}

static void
test_unknown_sections_and_keys(void **state)
{
	static const struct {
		const char	*text;
		const char	*suffix;
	} cases[] = {
		{ "[bogus]\nkey = 1\n", "unknown key 'bogus.key'" },
		{ "[server]\nsockets = /x\n", "unknown key 'server.sockets'" },
		{ "[Server]\nsocket = /x\n", "unknown key 'Server.socket'" },
		{ "[server]\nSocket = /x\n", "unknown key 'server.Socket'" },
		{ "socket = /x\n",
		  "key 'socket' is outside any section; put it under [server]" },
		{ "# x\nlevel = debug\n[log]\n",
		  "key 'level' is outside any section; put it under [log]" },
		{ "max_connections = 5\n", "key 'max_connections' is outside "
		  "any section; put it under [server] or [vault]" },
		{ "bogus = 1\n[server]\n", "key 'bogus' is outside any section, "
		  "and no section has such a key; see credbroker.conf(5)" },
		{ "[storage]\nsocket = /x\n", "unknown key 'storage.socket'" },
		{ "[security]\nmaster_key = abc\n",
		  "unknown key 'security.master_key'" },
		{ "[access]\ngrants = uid:1 *\n",
		  "unknown key 'access.grants'" },
		{ "[log]\nformat = journal\n", "unknown key 'log.format'" },
	};
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	char		 name[32];
	const char	*p;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "unk%zu.conf", i);
		p = write_conf(f, name, cases[i].text);
		assert_int_equal(conf_load(&c, p, NULL, 0, &err), -CB_EBADREQ);
		assert_int_equal(err.code, CB_EBADREQ);
		assert_file_error(err.msg, p, -1, cases[i].suffix);
		assert_conf_zeroed(&c);
	}
	/* The same through -o. */
	assert_int_equal(load(&c, NULL, OV("bogus.key=1"), &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "-o:1: unknown key 'bogus.key'");
	assert_int_equal(load(&c, NULL, OV("server.socket.x=/a"), &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "-o:1: unknown key 'server.socket.x'");
	assert_int_equal(load(&c, NULL, OV("log.level=info", "Server.socket=/a"),
	    &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "-o:2: unknown key 'Server.socket'");
}

/* inih syntax errors: the line inih reports. */
static void
test_syntax_errors(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	const char	*p;

	p = write_conf(f, "syn1.conf", "[server]\nsocket /x.sock\n");
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_file_error(err.msg, p, 2, MSG_SYNTAX);
	assert_conf_zeroed(&c);

	p = write_conf(f, "syn2.conf", "# x\n[server\n");
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), -CB_EBADREQ);
	assert_file_error(err.msg, p, 2, MSG_SYNTAX);
}

static void
test_missing_file(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	char		 path[128], want[256];

	snprintf(path, sizeof(path), "%s/nope.conf", f->dir);
	assert_int_equal(conf_load(&c, path, NULL, 0, &err), -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	snprintf(want, sizeof(want),
	    "cannot open configuration %s: No such file or directory", path);
	assert_string_equal(err.msg, want);
	assert_conf_zeroed(&c);
	/* Overrides are not applied, and nothing leaks. */
	assert_int_equal(load(&c, path, OV("server.socket=/a"), &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, want);
	assert_conf_zeroed(&c);
}

/*
 * A configuration path that is a directory can be opened but not read;
 * it must be refused, not treated as an empty file (which would start the
 * daemon with every default, including no grants).
 */
static void
test_directory_is_not_a_file(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	int		 rc;

	rc = conf_load(&c, f->dir, NULL, 0, &err);
	if (rc == 0)
		conf_free(&c);
	assert_int_equal(rc, -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_non_null(strstr(err.msg, f->dir));
	assert_conf_zeroed(&c);
}

/*
 * A line longer than inih's fixed buffer (INI_MAX_LINE, 200 bytes with
 * the newline and NUL) is refused with a message naming the line, instead
 * of being split by inih into a cut value and a stray line.
 */
static void
test_long_value_read_whole(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	char		 path[400], text[512];
	const char	*p;
	int		 rc;

	/* "database = " is 11 bytes: '#' lands on byte 200 of the line. */
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	snprintf(path + 188, sizeof(path) - 188, "#tail/store.db");
	snprintf(text, sizeof(text), "[storage]\ndatabase = %s\n", path);
	p = write_conf(f, "long1.conf", text);
	rc = conf_load(&c, p, NULL, 0, &err);
	assert_int_equal(rc, -CB_EBADREQ);
	assert_file_error(err.msg, p, 2, "line longer than 198 bytes; only a "
	    "comment line may be longer");
	assert_conf_zeroed(&c);

	/* 198 bytes of line are still read whole. */
	memset(path, 'b', sizeof(path));
	path[0] = '/';
	path[198 - 11] = '\0';
	snprintf(text, sizeof(text), "[storage]\ndatabase = %s\n", path);
	p = write_conf(f, "long2.conf", text);
	rc = conf_load(&c, p, NULL, 0, &err);
	if (rc != 0)
		fail_msg("198-byte line refused: %s", err.msg);
	assert_string_equal(c.database, path);
	conf_free(&c);
}

/*
 * A comment line longer than inih's buffer is skipped whole, wherever it
 * is and however it is indented, and the lines after it keep their
 * numbers.
 */
static void
test_long_comment_line_is_not_fatal(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	char		 text[4096], comment[1001];
	const char	*p;

	memset(comment, 'c', sizeof(comment) - 1);
	comment[sizeof(comment) - 1] = '\0';
	snprintf(text, sizeof(text), "#%s\n[server]\n; %s\n"
	    "max_inflight = 3\n\t# %s\n[storage]\ndatabase = /c.db\n;%s",
	    comment, comment, comment, comment);
	p = write_conf(f, "longc.conf", text);
	if (conf_load(&c, p, NULL, 0, &err) != 0)
		fail_msg("long comments refused: %s", err.msg);
	assert_int_equal(c.max_inflight, 3);
	assert_string_equal(c.database, "/c.db");
	conf_free(&c);

	/* An error after a long comment names its own line. */
	snprintf(text, sizeof(text), "[server]\n# %s\nmax_inflight = 0\n",
	    comment);
	p = write_conf(f, "longc2.conf", text);
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), -CB_EBADREQ);
	assert_file_error(err.msg, p, 3,
	    "server.max_inflight must be 1..100000, got '0'");
}

/*
 * A key that takes one value, given twice in the file, is refused with
 * both lines named, wherever the second one is; access.grant repeats.
 */
static void
test_single_valued_key_given_twice_names_both_lines(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	const char	*p;

	p = write_conf(f, "rep.conf",
	    "[server]\nsocket = /a.sock\nmax_inflight = 2\n"
	    "[storage]\ndatabase = /a.db\n"
	    "[server]\nsocket = /b.sock\n");
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), -CB_EBADREQ);
	assert_file_error(err.msg, p, 7, "server.socket is given twice, on "
	    "lines 2 and 7; keep one of them");
	assert_conf_zeroed(&c);

	p = write_conf(f, "rep2.conf",
	    "[security]\nsecret_key = first\nsecret_key = second\n");
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), -CB_EBADREQ);
	assert_file_error(err.msg, p, 3, "security.secret_key is given twice, "
	    "on lines 2 and 3; keep one of them");
	assert_null(strstr(err.msg, "first"));
	assert_null(strstr(err.msg, "second"));

	/* The same key name in two sections is two keys. */
	p = write_conf(f, "rep3.conf",
	    "[server]\nmax_connections = 9\n[vault]\nmax_connections = 4\n"
	    "[access]\ngrant = uid:1 *\ngrant = uid:2 read:health\n");
	if (conf_load(&c, p, NULL, 0, &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_int_equal(c.max_connections, 9);
	assert_int_equal(c.vault_max_connections, 4);
	assert_int_equal(c.ngrants, 2);
	conf_free(&c);

	/* -o replaces the file's value: not a second one. */
	p = write_conf(f, "rep4.conf", "[server]\nsocket = /a.sock\n");
	assert_int_equal(load(&c, p, OV("server.socket=/o.sock",
	    "server.socket=/p.sock"), &err), 0);
	assert_string_equal(c.socket, "/p.sock");
	conf_free(&c);
}

/*
 * server.socket must fit sun_path (107 bytes and the NUL): a longer path
 * is refused when the configuration is read, not cut by bind(2).
 */
static void
test_socket_path_longer_than_sun_path_is_refused(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	char		 path[200], ov[256], text[300];
	const char	*p;

	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[107] = '\0';
	snprintf(ov, sizeof(ov), "server.socket=%s", path);
	if (load(&c, NULL, OV(ov), &err) != 0)
		fail_msg("107 bytes refused: %s", err.msg);
	assert_string_equal(c.socket, path);
	conf_free(&c);

	path[107] = 'a';
	path[108] = '\0';
	snprintf(ov, sizeof(ov), "server.socket=%s", path);
	assert_int_equal(load(&c, NULL, OV(ov), &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "-o:1: server.socket is 108 bytes long, "
	    "but a UNIX socket path holds at most 107 bytes: choose a shorter "
	    "path");
	assert_conf_zeroed(&c);

	path[150] = '\0';
	memset(path + 108, 'b', 42);
	snprintf(text, sizeof(text), "[server]\nsocket = %s\n", path);
	p = write_conf(f, "longsock.conf", text);
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), -CB_EBADREQ);
	assert_file_error(err.msg, p, 2, "server.socket is 150 bytes long, "
	    "but a UNIX socket path holds at most 107 bytes: choose a shorter "
	    "path");
}

static void
test_overrides_beat_file(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	const char	*p;

	p = write_conf(f, "ov.conf",
	    "[server]\nsocket = /file.sock\nmax_connections = 5\n"
	    "idle_timeout = 9\n"
	    "[storage]\ndatabase = /file.db\n"
	    "[log]\nlevel = error\n");
	assert_int_equal(load(&c, p, OV("server.socket=/cli.sock",
	    "server.max_connections=7", "server.max_connections=8",
	    "log.level=debug", "security.secret_key_file=/k=v",
	    "server.socket_mode=640"), &err), 0);
	assert_string_equal(c.path, p);
	assert_string_equal(c.socket, "/cli.sock");
	assert_int_equal(c.max_connections, 8);	/* later -o wins */
	assert_int_equal(c.idle_timeout, 9);		/* file, untouched */
	assert_string_equal(c.database, "/file.db");
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_string_equal(c.secret_key_file, "/k=v");	/* first '=' splits */
	assert_int_equal(c.socket_mode, 0640);
	conf_free(&c);

	/* Overrides without a file apply on top of the defaults. */
	assert_int_equal(load(&c, NULL, OV("storage.database=/o.db"), &err),
	    0);
	assert_string_equal(c.database, "/o.db");
	assert_string_equal(c.socket, DEF_SOCKET);
	conf_free(&c);

	/* An invalid file is refused even when -o would fix it. */
	p = write_conf(f, "ovbad.conf", "[server]\nmax_connections = 0\n");
	assert_int_equal(load(&c, p, OV("server.max_connections=5"), &err),
	    -CB_EBADREQ);
	assert_file_error(err.msg, p, -1,
	    "server.max_connections must be 1..1000000, got '0'");
}

static void
test_override_grants(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	const char	*p;

	p = write_conf(f, "grants.conf",
	    "[access]\ngrant = uid:1 read:health\n"
	    "grant = gid:2 use:credentials\n");

	/* The file's grants, in order. */
	assert_int_equal(conf_load(&c, p, NULL, 0, &err), 0);
	assert_int_equal(c.ngrants, 2);
	assert_int_equal(c.grants[0].id, 1);
	assert_int_equal(c.grants[1].kind, GRANT_GID);
	assert_int_equal(c.grants[1].id, 2);
	conf_free(&c);

	/* Other -o keys leave them alone. */
	assert_int_equal(load(&c, p, OV("log.level=warn"), &err), 0);
	assert_int_equal(c.ngrants, 2);
	conf_free(&c);

	/* The first -o access.grant replaces the file's grants. */
	assert_int_equal(load(&c, p, OV("access.grant=uid:3 *"), &err), 0);
	assert_int_equal(c.ngrants, 1);
	assert_int_equal(c.grants[0].kind, GRANT_UID);
	assert_int_equal(c.grants[0].id, 3);
	assert_int_equal(c.grants[0].perms, CB_PERM_ALL);
	assert_string_equal(c.grants[0].text, "uid:3 *");
	conf_free(&c);

	/* Later ones add. */
	assert_int_equal(load(&c, p, OV("access.grant=uid:3 *",
	    "log.level=info", "access.grant=group:root read:health",
	    "access.grant=uid:4 use:credentials"), &err), 0);
	assert_int_equal(c.ngrants, 3);
	assert_int_equal(c.grants[0].id, 3);
	assert_int_equal(c.grants[1].kind, GRANT_GID);
	assert_int_equal(c.grants[1].id, 0);
	assert_int_equal(c.grants[1].perms, CB_PERM_BIT(CB_PERM_HEALTH));
	assert_int_equal(c.grants[2].id, 4);
	conf_free(&c);

	/* Without a file. */
	assert_int_equal(load(&c, NULL, OV("access.grant=gid:7 read:health",
	    "access.grant=gid:8 read:health"), &err), 0);
	assert_int_equal(c.ngrants, 2);
	assert_int_equal(c.grants[0].id, 7);
	assert_int_equal(c.grants[1].id, 8);
	conf_free(&c);

	/* A bad one is named by its position. */
	assert_int_equal(load(&c, p, OV("access.grant=uid:3 *",
	    "access.grant=uid:4 nope"), &err), -CB_EBADREQ);
	assert_string_equal(err.msg,
	    "-o:2: access.grant: unknown permission 'nope'");
	assert_conf_zeroed(&c);
	assert_int_equal(load(&c, p, OV("access.grant=uid:4"), &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "-o:1: access.grant: " MSG_GRANT);
}

/* The master key is never accepted on the command line. */
static void
test_override_secret_key_refused(void **state)
{
	struct fixture	*f = *state;
	struct conf	 c;
	struct cb_error	 err;
	const char	*p;

	assert_int_equal(load(&c, NULL,
	    OV("security.secret_key=Xq7#mP2$vL9!rT4w"), &err), -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_string_equal(err.msg, MSG_O_KEY);
	assert_null(strstr(err.msg, "Xq7#"));
	assert_conf_zeroed(&c);

	/* Not even when the file has one, nor to clear it. */
	p = write_conf(f, "key.conf", "[security]\nsecret_key = abc\n");
	assert_int_equal(load(&c, p, OV("log.level=info",
	    "security.secret_key=u3+Fh9/kQz2LmX8v"), &err), -CB_EBADREQ);
	assert_string_equal(err.msg, MSG_O_KEY);
	assert_conf_zeroed(&c);
	assert_int_equal(load(&c, p, OV("security.secret_key="), &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, MSG_O_KEY);

	/* The other key sources are fine on the command line. */
	assert_int_equal(load(&c, p, OV("security.secret_key_file=/k",
	    "security.secret_key_credential=other"), &err), 0);
	assert_string_equal(c.secret_key_file, "/k");
	assert_string_equal(c.secret_key_credential, "other");
	assert_string_equal(secbuf_str(&c.secret_key), "abc");
	conf_free(&c);
}

static void
test_override_malformed(void **state)
{
	static const char *const bad[] = {
		"nodot=1", "a.b", ".k=v", "s.=v", "=v", "", "s.k", "a=b.c",
		".=", "server", "=",
	};
	struct conf	c;
	struct cb_error	err;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (load(&c, NULL, OV(bad[i]), &err) != -CB_EBADREQ)
			fail_msg("-o '%s' accepted", bad[i]);
		assert_int_equal(err.code, CB_EBADREQ);
		assert_string_equal(err.msg, MSG_O_SYNTAX);
		assert_conf_zeroed(&c);
	}
	/* After good ones too. */
	assert_int_equal(load(&c, NULL, OV("log.level=info", "nodot=1"), &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, MSG_O_SYNTAX);
}

/* socket_mode is octal digits only, like the other numbers (no signs). */
static void
test_socket_mode_signs(void **state)
{
	static const char *const bad[] = {
		"server.socket_mode=+660", "server.socket_mode=-0",
	};
	struct conf	c;
	struct cb_error	err;
	char		want[128];
	size_t		i;
	int		rc;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = load(&c, NULL, OV(bad[i]), &err);
		if (rc == 0) {
			unsigned m = c.socket_mode;

			conf_free(&c);
			fail_msg("-o '%s' accepted as %04o", bad[i], m);
		}
		snprintf(want, sizeof(want), "-o:1: server.socket_mode must "
		    "be an octal mode from 0 to 0777, got '%s'",
		    strchr(bad[i], '=') + 1);
		assert_string_equal(err.msg, want);
	}
}

/* Parse a grant that must succeed. */
static void
grant_ok(const char *text, int kind, uint32_t id, unsigned perms)
{
	struct grant	g;
	struct cb_error	err;

	cb_error_clear(&err);
	if (conf_parse_grant(text, &g, &err) != 0)
		fail_msg("'%s' refused: %s", text, err.msg);
	assert_int_equal(g.kind, kind);
	assert_int_equal(g.id, id);
	assert_int_equal(g.perms, perms);
	assert_non_null(g.text);
	assert_string_equal(g.text, text);
	assert_int_equal(err.code, 0);
	free(g.text);
}

/* Parse a grant that must fail with message msg. */
static void
grant_bad(const char *text, const char *msg)
{
	struct grant	g;
	struct cb_error	err;

	memset(&g, 0xa5, sizeof(g));
	if (conf_parse_grant(text, &g, &err) == 0) {
		free(g.text);
		fail_msg("'%s' accepted", text);
	}
	assert_int_equal(conf_parse_grant(text, &g, &err), -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_string_equal(err.msg, msg);
	assert_null(g.text);
}

#define P(x)	CB_PERM_BIT(CB_PERM_##x)

static void
test_parse_grant_principals(void **state)
{
	(void)state;
	grant_ok("uid:1000 read:health", GRANT_UID, 1000, P(HEALTH));
	grant_ok("uid:0 *", GRANT_UID, 0, CB_PERM_ALL);
	grant_ok("uid:4294967294 *", GRANT_UID, 4294967294u, CB_PERM_ALL);
	grant_ok("gid:0 use:credentials", GRANT_GID, 0, P(USE));
	grant_ok("gid:65534 read:health", GRANT_GID, 65534, P(HEALTH));
	grant_ok("user:root edit:user-credentials", GRANT_UID, 0, P(CREDS));
	grant_ok("group:root edit:user-access-credentials-types", GRANT_GID,
	    0, P(TYPES));
	/* Whitespace: tabs, runs, leading and trailing. */
	grant_ok("uid:5\tread:health", GRANT_UID, 5, P(HEALTH));
	grant_ok("  uid:5    read:health  ", GRANT_UID, 5, P(HEALTH));
	grant_ok("uid:007 read:health", GRANT_UID, 7, P(HEALTH));

	grant_bad("user:no-such-user-cbtest *",
	    "unknown user 'no-such-user-cbtest'");
	grant_bad("group:no-such-group-cbtest *",
	    "unknown group 'no-such-group-cbtest'");
	grant_bad("uid: *", "bad numeric id in 'uid:'");
	grant_bad("uid:abc *", "bad numeric id in 'uid:abc'");
	grant_bad("uid:-1 *", "bad numeric id in 'uid:-1'");
	grant_bad("uid:+1 *", "bad numeric id in 'uid:+1'");
	grant_bad("uid:1x *", "bad numeric id in 'uid:1x'");
	grant_bad("uid:4294967295 *", "bad numeric id in 'uid:4294967295'");
	grant_bad("gid:99999999999999999999 *",
	    "bad numeric id in 'gid:99999999999999999999'");
	grant_bad("user: *", "principal 'user:' must be uid:N, user:NAME, "
	    "gid:N or group:NAME");
	grant_bad("group: *", "principal 'group:' must be uid:N, user:NAME, "
	    "gid:N or group:NAME");
	grant_bad("bob:1 *", "principal 'bob:1' must be uid:N, user:NAME, "
	    "gid:N or group:NAME");
	grant_bad("1000 *", "principal '1000' must be uid:N, user:NAME, "
	    "gid:N or group:NAME");
	grant_bad("UID:1 *", "principal 'UID:1' must be uid:N, user:NAME, "
	    "gid:N or group:NAME");
	grant_bad("root *", "principal 'root' must be uid:N, user:NAME, "
	    "gid:N or group:NAME");
}

static void
test_parse_grant_perms(void **state)
{
	(void)state;
	grant_ok("uid:1 use:credentials,read:health", GRANT_UID, 1,
	    P(USE) | P(HEALTH));
	grant_ok("uid:1 edit:user-access-credentials-types,"
	    "edit:user-credentials,use:credentials,read:health", GRANT_UID, 1,
	    P(TYPES) | P(CREDS) | P(USE) | P(HEALTH));
	grant_ok("uid:1 edit:user-access-credentials-types,"
	    "edit:user-credentials,use:credentials,read:health,edit:keys,"
	    "use:keys", GRANT_UID, 1, CB_PERM_ALL);
	grant_ok("uid:1 use:keys", GRANT_UID, 1, P(TOKENS));
	grant_ok("uid:1 edit:keys", GRANT_UID, 1, P(KEYS));
	grant_ok("uid:1 read:health,read:health", GRANT_UID, 1, P(HEALTH));
	grant_ok("uid:1 read:health,*", GRANT_UID, 1, CB_PERM_ALL);
	grant_ok("uid:1 *", GRANT_UID, 1, CB_PERM_ALL);

	grant_bad("uid:1 read:everything",
	    "unknown permission 'read:everything'");
	grant_bad("uid:1 read:health,nope", "unknown permission 'nope'");
	grant_bad("uid:1 READ:HEALTH", "unknown permission 'READ:HEALTH'");
	grant_bad("uid:1 **", "unknown permission '**'");
	grant_bad("uid:1 read:health,,use:credentials",
	    "unknown permission ''");
	grant_bad("uid:1 ,read:health", "unknown permission ''");
	grant_bad("uid:1 read:health, use:credentials", MSG_GRANT);
	grant_bad("uid:1 read:health extra", MSG_GRANT);
	grant_bad("uid:1", MSG_GRANT);
	grant_bad("", MSG_GRANT);
	grant_bad("   ", MSG_GRANT);
	grant_bad("uid:1 * *", MSG_GRANT);
}

/* PERM[,PERM...] has no empty last element, as it has no empty first. */
static void
test_parse_grant_trailing_comma(void **state)
{
	(void)state;
	grant_bad("uid:1 read:health,", "unknown permission ''");
}

int
main(void)
{
#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_max_reply_size_follows_max_message_size),
		T(test_defaults_without_file),
		T(test_defaults_with_empty_file),
		T(test_every_key),
		T(test_numeric_ranges_valid),
		T(test_invalid_values_override),
		T(test_invalid_values_file),
		T(test_error_line_numbers),
		T(test_unknown_sections_and_keys),
		T(test_syntax_errors),
		T(test_missing_file),
		T(test_directory_is_not_a_file),
		T(test_long_value_read_whole),
		T(test_long_comment_line_is_not_fatal),
		T(test_single_valued_key_given_twice_names_both_lines),
		T(test_socket_path_longer_than_sun_path_is_refused),
		T(test_overrides_beat_file),
		T(test_override_grants),
		T(test_override_secret_key_refused),
		T(test_override_malformed),
		T(test_socket_mode_signs),
		T(test_parse_grant_principals),
		T(test_parse_grant_perms),
		T(test_parse_grant_trailing_comma),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
