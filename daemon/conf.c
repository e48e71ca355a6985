/*
 * conf: the configuration file (credbroker.conf(5)) and -o overrides.
 *
 * The file is INI, parsed by inih.  Every key is known here, with its
 * default and its validation; an unknown section or key is an error, so a
 * typo cannot silently leave a setting at its default.  -o section.key=value
 * is applied after the file and overrides it.  For the repeatable key
 * access.grant, the first -o replaces the file's grants and later ones add.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "pg.h"
#include "secbuf.h"
#include "template.h"

#define CONF_DEFAULT_SOCKET	"/run/credbroker/credbroker.sock"
#define CONF_DEFAULT_DATABASE	"/var/lib/credbroker/credbroker.db"
#define CONF_DEFAULT_CREDENTIAL	"master-key"
#define CONF_DEFAULT_PG_CREDENTIAL	"pg-password"
/* The longest socket path: sun_path less its terminating NUL. */
#define CONF_SOCKET_MAX	(sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)
/* Enough for hello and a few small calls; see conn.c. */
#define CONF_DEFAULT_MAX_MESSAGE_NOPERM	4096

struct conf_parse {
	struct conf	*conf;
	struct cb_error	*err;
	const char	*where;		/* file name or "-o" */
	FILE		*f;
	int		 lineno;	/* of the line inih is working on */
	int		 readerr;	/* errno of a failed read, or -1: too long */
	bool		 overriding;	/* applying -o */
	bool		 grants_replaced;
	int		 failed;
	unsigned long long lo, hi;	/* range of the key being checked */
	const char	*valid;		/* its valid values, in words */
	struct conf_seen *seen;		/* single-valued keys of the file */
	size_t		 nseen;
};

/* Where a single-valued key was first given in the file. */
struct conf_seen {
	char	*name;			/* "section.key" */
	int	 line;
};

/*
 * The sections and their keys, for the messages about a key written
 * outside any section and about a key given twice: conf_apply() below is
 * where each key is parsed.  Only access.grant may be given more than once.
 */
static const struct {
	const char	*section;
	const char	*key;
	bool		 multi;
} conf_keys[] = {
	{ "server", "socket", false },
	{ "server", "socket_mode", false },
	{ "server", "max_message_size", false },
	{ "server", "max_reply_size", false },
	{ "server", "max_message_size_no_permission", false },
	{ "server", "max_connections", false },
	{ "server", "max_connections_per_uid", false },
	{ "server", "reserved_connections", false },
	{ "server", "max_inflight", false },
	{ "server", "idle_timeout", false },
	{ "server", "message_timeout", false },
	{ "server", "shutdown_timeout", false },
	{ "substitute", "syntax", false },
	{ "request", "enabled", false },
	{ "request", "timeout", false },
	{ "request", "connect_timeout", false },
	{ "request", "max_response_size", false },
	{ "request", "max_in_flight", false },
	{ "request", "max_in_flight_per_caller", false },
	{ "request", "max_redirects", false },
	{ "request", "ca_file", false },
	{ "storage", "backend", false },
	{ "storage", "postgresql", false },
	{ "storage", "postgresql_password_file", false },
	{ "storage", "postgresql_password_credential", false },
	{ "storage", "postgresql_timeout", false },
	{ "storage", "database", false },
	{ "storage", "page_cache_mb", false },
	{ "storage", "mmap_mb", false },
	{ "vault", "max_connections", false },
	{ "vault", "max_pending", false },
	{ "security", "secret_key_file", false },
	{ "security", "legacy_key_file", false },
	{ "security", "next_key_file", false },
	{ "security", "secret_key_credential", false },
	{ "security", "secret_key", false },
	{ "access", "grant", true },
	{ "audit", "file", false },
	{ "audit", "sync", false },
	{ "log", "level", false },
};

/* Replace a string setting. */
static int
conf_set_str(char **slot, const char *value)
{
	char	*s;

	if ((s = strdup(value)) == NULL)
		return -CB_EINTERNAL;
	free(*slot);
	*slot = s;
	return 0;
}

/* Parse an unsigned decimal in [min, max]. */
static int
conf_parse_uint(const char *value, unsigned long long min,
    unsigned long long max, unsigned long long *out)
{
	char			*end;
	unsigned long long	 v;

	if (*value == '\0' || *value == '-' || *value == '+')
		return -1;
	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* conf_parse_uint for a key, remembering the range for the message. */
static int
conf_uint(struct conf_parse *cp, const char *value, unsigned long long min,
    unsigned long long max, unsigned long long *out)
{
	cp->lo = min;
	cp->hi = max;
	return conf_parse_uint(value, min, max, out);
}

/* Permission names separated by commas, or "*". */
static int
conf_parse_perms(const char *list, unsigned *out, struct cb_error *err)
{
	const char	*p = list, *e;
	int		 perm;

	*out = 0;
	while (*p != '\0') {
		e = strchr(p, ',');
		if (e == NULL)
			e = p + strlen(p);
		if (e - p == 1 && *p == '*')
			*out |= CB_PERM_ALL;
		else if ((perm = proto_perm_lookup(p, (size_t)(e - p))) >= 0)
			*out |= CB_PERM_BIT(perm);
		else
			return cb_error_set(err, CB_EBADREQ,
			    "unknown permission '%.*s'", (int)(e - p), p);
		if (*e == ',' && e[1] == '\0')
			return cb_error_set(err, CB_EBADREQ,
			    "unknown permission ''");
		p = *e == ',' ? e + 1 : e;
	}
	if (*out == 0)
		return cb_error_set(err, CB_EBADREQ, "no permission given");
	return 0;
}

int
conf_parse_grant(const char *text, struct grant *g, struct cb_error *err)
{
	char			*copy, *principal, *perms, *extra, *save;
	const char		*name;
	unsigned long long	 id;
	struct passwd		*pw;
	struct group		*gr;
	int			 rc = -CB_EBADREQ;

	memset(g, 0, sizeof(*g));
	if ((copy = strdup(text)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	principal = strtok_r(copy, " \t", &save);
	perms = strtok_r(NULL, " \t", &save);
	extra = strtok_r(NULL, " \t", &save);
	if (principal == NULL || perms == NULL || extra != NULL) {
		cb_error_set(err, CB_EBADREQ,
		    "grant must be 'PRINCIPAL PERM[,PERM...]'");
		goto done;
	}
	name = strchr(principal, ':');
	name = name != NULL ? name + 1 : "";
	if (strncmp(principal, "uid:", 4) == 0 ||
	    strncmp(principal, "gid:", 4) == 0) {
		if (conf_parse_uint(name, 0, UINT32_MAX - 1, &id) != 0) {
			cb_error_set(err, CB_EBADREQ, "bad numeric id in '%s'",
			    principal);
			goto done;
		}
		g->kind = principal[0] == 'u' ? GRANT_UID : GRANT_GID;
		g->id = (uint32_t)id;
	} else if (strncmp(principal, "user:", 5) == 0 && *name != '\0') {
		if ((pw = getpwnam(name)) == NULL) {
			cb_error_set(err, CB_EBADREQ, "unknown user '%s'", name);
			goto done;
		}
		g->kind = GRANT_UID;
		g->id = pw->pw_uid;
	} else if (strncmp(principal, "group:", 6) == 0 && *name != '\0') {
		if ((gr = getgrnam(name)) == NULL) {
			cb_error_set(err, CB_EBADREQ, "unknown group '%s'", name);
			goto done;
		}
		g->kind = GRANT_GID;
		g->id = gr->gr_gid;
	} else {
		cb_error_set(err, CB_EBADREQ, "principal '%s' must be uid:N, "
		    "user:NAME, gid:N or group:NAME", principal);
		goto done;
	}
	if (conf_parse_perms(perms, &g->perms, err) != 0)
		goto done;
	if ((g->text = strdup(text)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	rc = 0;
done:
	free(copy);
	return rc;
}

/* Free the grant list. */
static void
conf_grants_free(struct conf *c)
{
	size_t	i;

	for (i = 0; i < c->ngrants; i++)
		free(c->grants[i].text);
	free(c->grants);
	c->grants = NULL;
	c->ngrants = 0;
}

/* A yes/no value; -1 (cp->valid set) when it is neither. */
static int
conf_bool(struct conf_parse *cp, const char *value, bool *out)
{
	cp->valid = "yes or no (or true/false, on/off, 1/0)";
	if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 ||
	    strcmp(value, "on") == 0 || strcmp(value, "1") == 0)
		*out = true;
	else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 ||
	    strcmp(value, "off") == 0 || strcmp(value, "0") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

/* Apply one section/key/value; 0 or -CB_EBADREQ with err filled. */
static int
conf_apply(struct conf_parse *cp, const char *section, const char *key,
    const char *value)
{
	struct conf		*c = cp->conf;
	struct cb_error		 gerr, perr;
	struct grant		 g, *ng;
	unsigned long long	 v;
	int			 lvl;

#define KEY(s, k) (strcmp(section, s) == 0 && strcmp(key, k) == 0)
	if (KEY("server", "socket")) {
		if (*value != '/')
			goto bad_abs;
		/* sun_path holds the path and its NUL; bind would cut it. */
		if (strlen(value) > CONF_SOCKET_MAX)
			return cb_error_set(cp->err, CB_EBADREQ,
			    "%s:%d: server.socket is %zu bytes long, but a UNIX "
			    "socket path holds at most %zu bytes: choose a "
			    "shorter path", cp->where, cp->lineno, strlen(value),
			    CONF_SOCKET_MAX);
		return conf_set_str(&c->socket, value);
	} else if (KEY("server", "socket_mode")) {
		char *end;
		unsigned long m;

		cp->valid = "an octal mode from 0 to 0777";
		if (*value < '0' || *value > '7')
			goto bad;
		m = strtoul(value, &end, 8);
		if (*end != '\0' || m > 0777)
			goto bad;
		c->socket_mode = (unsigned)m;
	} else if (KEY("server", "max_message_size")) {
		if (conf_uint(cp, value, 1024, 64ULL * 1024 * 1024, &v) != 0)
			goto bad_range;
		c->max_message = (size_t)v;
	} else if (KEY("server", "max_reply_size")) {
		if (conf_uint(cp, value, 1024, 256ULL * 1024 * 1024, &v) != 0)
			goto bad_range;
		c->max_reply = (size_t)v;
	} else if (KEY("server", "max_message_size_no_permission")) {
		if (conf_uint(cp, value, 256, 64ULL * 1024 * 1024, &v) != 0)
			goto bad_range;
		c->max_message_noperm = (size_t)v;
	} else if (KEY("server", "max_connections")) {
		if (conf_uint(cp, value, 1, 1000000, &v) != 0)
			goto bad_range;
		c->max_connections = (unsigned)v;
	} else if (KEY("server", "max_connections_per_uid")) {
		if (conf_uint(cp, value, 1, 1000000, &v) != 0)
			goto bad_range;
		c->max_connections_per_uid = (unsigned)v;
	} else if (KEY("server", "reserved_connections")) {
		if (conf_uint(cp, value, 0, 1000000, &v) != 0)
			goto bad_range;
		c->reserved_connections = (unsigned)v;
	} else if (KEY("server", "max_inflight")) {
		if (conf_uint(cp, value, 1, 100000, &v) != 0)
			goto bad_range;
		c->max_inflight = (unsigned)v;
	} else if (KEY("server", "idle_timeout")) {
		if (conf_uint(cp, value, 0, 86400 * 7, &v) != 0)
			goto bad_range;
		c->idle_timeout = (unsigned)v;
	} else if (KEY("server", "message_timeout")) {
		if (conf_uint(cp, value, 1, 3600, &v) != 0)
			goto bad_range;
		c->message_timeout = (unsigned)v;
	} else if (KEY("server", "shutdown_timeout")) {
		if (conf_uint(cp, value, 0, 3600, &v) != 0)
			goto bad_range;
		c->shutdown_timeout = (unsigned)v;
	} else if (KEY("substitute", "syntax")) {
		cp->valid = "one of both, angle, brace";
		if ((lvl = tpl_syntax_from_name(value)) < 0)
			goto bad;
		c->substitute_syntax = lvl;
	} else if (KEY("request", "enabled")) {
		if (conf_bool(cp, value, &c->request_enabled) != 0)
			goto bad;
	} else if (KEY("request", "timeout")) {
		if (conf_uint(cp, value, 1, 300, &v) != 0)
			goto bad_range;
		c->request_timeout = (unsigned)v;
	} else if (KEY("request", "connect_timeout")) {
		if (conf_uint(cp, value, 1, 300, &v) != 0)
			goto bad_range;
		c->request_connect_timeout = (unsigned)v;
	} else if (KEY("request", "max_response_size")) {
		if (conf_uint(cp, value, 1024, 64ULL * 1024 * 1024, &v) != 0)
			goto bad_range;
		c->request_max_response = (size_t)v;
	} else if (KEY("request", "max_in_flight")) {
		if (conf_uint(cp, value, 1, 100000, &v) != 0)
			goto bad_range;
		c->request_max_inflight = (unsigned)v;
	} else if (KEY("request", "max_in_flight_per_caller")) {
		if (conf_uint(cp, value, 1, 100000, &v) != 0)
			goto bad_range;
		c->request_max_inflight_caller = (unsigned)v;
	} else if (KEY("request", "max_redirects")) {
		if (conf_uint(cp, value, 0, 20, &v) != 0)
			goto bad_range;
		c->request_max_redirects = (unsigned)v;
	} else if (KEY("request", "ca_file")) {
		if (*value != '/')
			goto bad_abs;
		return conf_set_str(&c->request_ca_file, value);
	} else if (KEY("storage", "backend")) {
		cp->valid = "sqlite or postgresql";
		if (strcmp(value, "sqlite") == 0)
			c->backend = CONF_BACKEND_SQLITE;
		else if (strcmp(value, "postgresql") == 0)
			c->backend = CONF_BACKEND_POSTGRESQL;
		else
			goto bad;
	} else if (KEY("storage", "postgresql")) {
		cp->valid = "a libpq connection string";
		if (*value == '\0')
			goto bad;
		/*
		 * Never quoted back: a connection string refused here may
		 * hold a password.
		 */
		if (pg_conninfo_check(value, &perr) != 0)
			return cb_error_set(cp->err, CB_EBADREQ, "%s:%d: "
			    "storage.postgresql: %s; use "
			    "storage.postgresql_password_file or the systemd "
			    "credential '%s' for the password", cp->where,
			    cp->lineno, perr.msg, CONF_DEFAULT_PG_CREDENTIAL);
		return conf_set_str(&c->pg_conninfo, value);
	} else if (KEY("storage", "postgresql_password_file")) {
		if (*value != '/')
			goto bad_abs;
		return conf_set_str(&c->pg_password_file, value);
	} else if (KEY("storage", "postgresql_password_credential")) {
		cp->valid = "a file name without '/'";
		if (*value == '\0' || strchr(value, '/') != NULL)
			goto bad;
		return conf_set_str(&c->pg_password_credential, value);
	} else if (KEY("storage", "postgresql_timeout")) {
		if (conf_uint(cp, value, 1, 300, &v) != 0)
			goto bad_range;
		c->pg_timeout = (unsigned)v;
	} else if (KEY("storage", "database")) {
		if (*value != '/')
			goto bad_abs;
		return conf_set_str(&c->database, value);
	} else if (KEY("storage", "page_cache_mb")) {
		if (conf_uint(cp, value, 1, 4096, &v) != 0)
			goto bad_range;
		c->page_cache_mb = (unsigned)v;
	} else if (KEY("storage", "mmap_mb")) {
		if (conf_uint(cp, value, 0, 65536, &v) != 0)
			goto bad_range;
		c->mmap_mb = (unsigned)v;
	} else if (KEY("vault", "max_connections")) {
		if (conf_uint(cp, value, 1, 1024, &v) != 0)
			goto bad_range;
		c->vault_max_connections = (unsigned)v;
	} else if (KEY("vault", "max_pending")) {
		if (conf_uint(cp, value, 1, 100000, &v) != 0)
			goto bad_range;
		c->vault_max_pending = (unsigned)v;
	} else if (KEY("security", "secret_key_file")) {
		if (*value != '/')
			goto bad_abs;
		return conf_set_str(&c->secret_key_file, value);
	} else if (KEY("security", "legacy_key_file")) {
		if (*value != '/')
			goto bad_abs;
		return conf_set_str(&c->legacy_key_file, value);
	} else if (KEY("security", "next_key_file")) {
		if (*value != '/')
			goto bad_abs;
		return conf_set_str(&c->next_key_file, value);
	} else if (KEY("security", "secret_key_credential")) {
		cp->valid = "a file name without '/'";
		if (*value == '\0' || strchr(value, '/') != NULL)
			goto bad;
		return conf_set_str(&c->secret_key_credential, value);
	} else if (KEY("security", "secret_key")) {
		if (cp->overriding)
			return cb_error_set(cp->err, CB_EBADREQ,
			    "the master key is never accepted on the command "
			    "line; use security.secret_key_file");
		if (secbuf_set_str(&c->secret_key, value, strlen(value)) != 0)
			return -CB_EINTERNAL;
	} else if (KEY("access", "grant")) {
		if (conf_parse_grant(value, &g, &gerr) != 0)
			return cb_error_set(cp->err, CB_EBADREQ,
			    "%s:%d: access.grant: %s", cp->where, cp->lineno,
			    gerr.msg);
		if (cp->overriding && !cp->grants_replaced) {
			conf_grants_free(c);
			cp->grants_replaced = true;
		}
		ng = reallocarray(c->grants, c->ngrants + 1, sizeof(*ng));
		if (ng == NULL) {
			free(g.text);
			return -CB_EINTERNAL;
		}
		c->grants = ng;
		c->grants[c->ngrants++] = g;
	} else if (KEY("audit", "file")) {
		if (*value != '/')
			goto bad_abs;
		return conf_set_str(&c->audit_file, value);
	} else if (KEY("audit", "sync")) {
		if (conf_bool(cp, value, &c->audit_sync) != 0)
			goto bad;
	} else if (KEY("log", "level")) {
		cp->valid = "one of error, warning, info, debug";
		if ((lvl = log_level_from_name(value)) < 0)
			goto bad;
		c->log_level = lvl;
	} else
		return cb_error_set(cp->err, CB_EBADREQ,
		    "%s:%d: unknown key '%s.%s'", cp->where, cp->lineno,
		    section, key);
#undef KEY
	return 0;
bad_range:
	return cb_error_set(cp->err, CB_EBADREQ,
	    "%s:%d: %s.%s must be %llu..%llu, got '%s'", cp->where, cp->lineno,
	    section, key, cp->lo, cp->hi, value);
bad:
	return cb_error_set(cp->err, CB_EBADREQ,
	    "%s:%d: %s.%s must be %s, got '%s'", cp->where, cp->lineno,
	    section, key, cp->valid, value);
bad_abs:
	return cb_error_set(cp->err, CB_EBADREQ,
	    "%s:%d: %s.%s must be an absolute path", cp->where, cp->lineno,
	    section, key);
}

/*
 * inih line reader.  It counts lines, so that messages name the right one
 * (Debian's inih does not pass line numbers to the handler), and stops on
 * a read error or a line longer than inih's buffer instead of letting inih
 * split the line or take the error for the end of the file.
 */
static char *
conf_ini_reader(char *str, int num, void *arg)
{
	struct conf_parse	*cp = arg;
	char			*p;
	size_t			 n;
	int			 ch;

	/*
	 * inih's line buffer held every line, the inline master key too, and
	 * is released without being wiped: wipe it on the last call.
	 */
	if (fgets(str, num, cp->f) == NULL) {
		if (ferror(cp->f))
			cp->readerr = errno ? errno : EIO;
		cb_wipe(str, (size_t)num);
		return NULL;
	}
	cp->lineno++;
	n = strlen(str);
	if (n > 0 && str[n - 1] != '\n' && !feof(cp->f)) {
		/*
		 * A long comment is harmless: inih sees its beginning, a
		 * comment still, and the rest of the line is skipped here.
		 */
		p = str + strspn(str, " \t");
		if (*p == '#' || *p == ';') {
			while ((ch = getc(cp->f)) != EOF && ch != '\n')
				;
			if (ch == EOF && ferror(cp->f)) {
				cp->readerr = errno ? errno : EIO;
				cb_wipe(str, (size_t)num);
				return NULL;
			}
			return str;
		}
		cp->readerr = -1;
		cb_wipe(str, (size_t)num);
		return NULL;
	}
	return str;
}

/*
 * A key written before any section header: name the section it belongs
 * in, so the message says what to write.
 */
static int
conf_no_section(struct conf_parse *cp, const char *key)
{
	char	sections[64];
	size_t	i, n = 0;

	sections[0] = '\0';
	for (i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++) {
		if (strcmp(conf_keys[i].key, key) != 0)
			continue;
		snprintf(sections + strlen(sections),
		    sizeof(sections) - strlen(sections), "%s[%s]",
		    n++ == 0 ? "" : " or ", conf_keys[i].section);
	}
	if (n == 0)
		return cb_error_set(cp->err, CB_EBADREQ, "%s:%d: key '%s' is "
		    "outside any section, and no section has such a key; see "
		    "credbroker.conf(5)", cp->where, cp->lineno, key);
	return cb_error_set(cp->err, CB_EBADREQ, "%s:%d: key '%s' is outside "
	    "any section; put it under %s", cp->where, cp->lineno, key,
	    sections);
}

/*
 * A single-valued key given twice in the file is an error naming both
 * lines: otherwise the second silently wins and the first misleads
 * whoever reads the file.  -o overrides are not counted: they are meant
 * to replace the file's value.
 */
static int
conf_check_twice(struct conf_parse *cp, const char *section, const char *key)
{
	struct conf_seen	*ns;
	char			*name = NULL;
	size_t			 i;

	for (i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++)
		if (strcmp(conf_keys[i].section, section) == 0 &&
		    strcmp(conf_keys[i].key, key) == 0)
			break;
	if (i == sizeof(conf_keys) / sizeof(conf_keys[0]) ||
	    conf_keys[i].multi)
		return 0;		/* unknown keys are refused later */
	if (asprintf(&name, "%s.%s", section, key) < 0)
		return -CB_EINTERNAL;
	for (i = 0; i < cp->nseen; i++) {
		if (strcmp(cp->seen[i].name, name) != 0)
			continue;
		free(name);
		return cb_error_set(cp->err, CB_EBADREQ, "%s:%d: %s.%s is "
		    "given twice, on lines %d and %d; keep one of them",
		    cp->where, cp->lineno, section, key, cp->seen[i].line,
		    cp->lineno);
	}
	if ((ns = reallocarray(cp->seen, cp->nseen + 1, sizeof(*ns))) ==
	    NULL) {
		free(name);
		return -CB_EINTERNAL;
	}
	cp->seen = ns;
	cp->seen[cp->nseen].name = name;
	cp->seen[cp->nseen++].line = cp->lineno;
	return 0;
}

/* Forget the keys seen in the file. */
static void
conf_seen_free(struct conf_parse *cp)
{
	size_t	i;

	for (i = 0; i < cp->nseen; i++)
		free(cp->seen[i].name);
	free(cp->seen);
	cp->seen = NULL;
	cp->nseen = 0;
}

/* inih callback: returns 1 to go on, 0 to stop. */
static int
conf_ini_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct conf_parse	*cp = user;

	if (cp->failed)
		return 0;
	if ((*section == '\0' ? conf_no_section(cp, name) :
	    conf_check_twice(cp, section, name)) != 0 ||
	    conf_apply(cp, section, name, value) != 0) {
		if (cp->err != NULL && cp->err->code == 0)
			cb_error_set(cp->err, CB_EINTERNAL, "out of memory");
		cp->failed = 1;
		return 0;
	}
	return 1;
}

int
conf_load(struct conf *c, const char *path, char *const *overrides,
    size_t noverrides, struct cb_error *err)
{
	struct conf_parse	 cp;
	FILE			*f;
	char			 iobuf[BUFSIZ];
	char			*dot, *eq, *sec = NULL;
	size_t			 i, seclen = 0;
	int			 rc;

	memset(c, 0, sizeof(*c));
	c->socket_mode = 0660;
	c->max_message = CB_DEFAULT_MAX_MESSAGE;
	c->max_message_noperm = CONF_DEFAULT_MAX_MESSAGE_NOPERM;
	c->max_connections = 1024;
	c->max_connections_per_uid = 128;
	c->reserved_connections = 16;
	c->max_inflight = 64;
	c->idle_timeout = 300;
	c->message_timeout = 30;
	c->shutdown_timeout = 10;
	c->page_cache_mb = 16;
	c->pg_timeout = 5;
	c->vault_max_connections = 16;
	c->vault_max_pending = 16;
	c->substitute_syntax = TPL_SYNTAX_BOTH;
	c->request_enabled = true;
	c->request_timeout = 30;
	c->request_connect_timeout = 10;
	c->request_max_response = 1024 * 1024;
	c->request_max_inflight = 256;
	c->request_max_inflight_caller = 32;
	c->request_max_redirects = 5;
	c->log_level = LOG_LVL_INFO;
	c->audit_sync = true;
	if (conf_set_str(&c->socket, CONF_DEFAULT_SOCKET) != 0 ||
	    conf_set_str(&c->database, CONF_DEFAULT_DATABASE) != 0 ||
	    conf_set_str(&c->pg_password_credential,
	    CONF_DEFAULT_PG_CREDENTIAL) != 0 ||
	    conf_set_str(&c->secret_key_credential,
	    CONF_DEFAULT_CREDENTIAL) != 0)
		goto oom;

	memset(&cp, 0, sizeof(cp));
	cp.conf = c;
	cp.err = err;
	cb_error_clear(err);
	if (path != NULL) {
		if (conf_set_str(&c->path, path) != 0)
			goto oom;
		if ((f = fopen(path, "re")) == NULL) {
			rc = cb_error_set(err, CB_EBADREQ,
			    "cannot open configuration %s: %s", path,
			    strerror(errno));
			goto fail;
		}
		/*
		 * stdio's own buffer would be freed unwiped by fclose(): read
		 * through one of ours, wiped after.
		 */
		setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
		cp.where = path;
		cp.f = f;
		errno = 0;
		rc = ini_parse_stream(conf_ini_reader, &cp, conf_ini_handler,
		    &cp);
		fclose(f);
		cb_wipe(iobuf, sizeof(iobuf));
		cp.f = NULL;
		conf_seen_free(&cp);
		if (cp.failed) {
			rc = -CB_EBADREQ;
			goto fail;
		}
		if (cp.readerr == -1) {
			rc = cb_error_set(err, CB_EBADREQ, "%s:%d: line longer "
			    "than %d bytes; only a comment line may be longer",
			    path, cp.lineno, INI_MAX_LINE - 2);
			goto fail;
		}
		if (cp.readerr != 0) {
			rc = cb_error_set(err, CB_EBADREQ, "cannot read "
			    "configuration %s: %s", path,
			    strerror(cp.readerr));
			goto fail;
		}
		if (rc != 0) {
			rc = cb_error_set(err, CB_EBADREQ,
			    "%s:%d: syntax error: a line is a [section] header, "
			    "a 'key = value' line, a comment starting with # or "
			    ";, or blank", path, rc);
			goto fail;
		}
	}

	cp.where = "-o";
	cp.overriding = true;
	for (i = 0; i < noverrides; i++) {
		cp.lineno = (int)i + 1;
		seclen = strlen(overrides[i]);
		if ((sec = strdup(overrides[i])) == NULL)
			goto oom;
		dot = strchr(sec, '.');
		eq = strchr(sec, '=');
		if (dot == NULL || eq == NULL || dot > eq || dot == sec ||
		    dot + 1 == eq) {
			rc = cb_error_set(err, CB_EBADREQ,
			    "-o takes section.key=value");
			goto fail;
		}
		*dot = *eq = '\0';
		if ((rc = conf_apply(&cp, sec, dot + 1, eq + 1)) != 0) {
			if (err != NULL && err->code == 0)
				goto oom;
			goto fail;
		}
		cb_wipe(sec, seclen);
		free(sec);
		sec = NULL;
	}
	if (c->backend == CONF_BACKEND_POSTGRESQL && c->pg_conninfo == NULL) {
		rc = cb_error_set(err, CB_EBADREQ, "storage.backend is "
		    "postgresql but storage.postgresql (the connection "
		    "string) is not set");
		goto fail;
	}
	/* Unset, the reply cap follows the request cap. */
	if (c->max_reply == 0)
		c->max_reply = CB_REPLY_FACTOR * c->max_message;
	return 0;
oom:
	rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
fail:
	if (sec != NULL) {
		cb_wipe(sec, seclen);
		free(sec);
	}
	conf_free(c);
	return rc;
}

void
conf_free(struct conf *c)
{
	free(c->path);
	free(c->socket);
	free(c->database);
	free(c->pg_conninfo);
	free(c->pg_password_file);
	free(c->pg_password_credential);
	free(c->secret_key_file);
	free(c->secret_key_credential);
	free(c->legacy_key_file);
	free(c->next_key_file);
	secbuf_free(&c->secret_key);
	free(c->audit_file);
	free(c->request_ca_file);
	conf_grants_free(c);
	memset(c, 0, sizeof(*c));
}
