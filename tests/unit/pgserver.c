/*
 * pgserver: the private PostgreSQL cluster of the unit tests that need a
 * real server, and their loop helpers (pgserver.h).
 */
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgschema.h"
#include "pgserver.h"
#include "secbuf.h"

struct pgserver pgsrv = { .pid = -1 };

bool
pgserver_ctl(const char *cmd)
{
	char	 line[1024];

	if (fprintf(pgsrv.in, "%s\n", cmd) < 0 || fflush(pgsrv.in) != 0)
		return false;
	if (fgets(line, sizeof(line), pgsrv.out) == NULL)
		return false;
	if (strncmp(line, "ok", 2) != 0) {
		fprintf(stderr, "pgtest %s: %s", cmd, line);
		return false;
	}
	return true;
}

/* value of "key=value" in the words of line. */
static bool
pgserver_field(const char *line, const char *key, char *buf, size_t sz)
{
	const char	*p;
	size_t		 n, k = strlen(key);

	for (p = line; (p = strstr(p, key)) != NULL; p += k) {
		if ((p != line && p[-1] != ' ') || p[k] != '=')
			continue;
		p += k + 1;
		n = strcspn(p, " \n");
		if (n >= sz)
			return false;
		memcpy(buf, p, n);
		buf[n] = '\0';
		return true;
	}
	return false;
}

/* tests/integration/pgtest.py, from CB_SOURCE_DIR or this file's path. */
static bool
pgserver_path(char *buf, size_t sz)
{
	const char	*src = getenv("CB_SOURCE_DIR");
	const char	*f = __FILE__, *cut;
	int		 n;

	if (src != NULL && *src != '\0')
		n = snprintf(buf, sz, "%s/tests/integration/pgtest.py", src);
	else if ((cut = strstr(f, "tests/unit/")) != NULL)
		n = snprintf(buf, sz, "%.*stests/integration/pgtest.py",
		    (int)(cut - f), f);
	else
		return false;
	return n > 0 && (size_t)n < sz && access(buf, R_OK) == 0;
}

int
pgserver_start(void)
{
	char	 path[PATH_MAX], line[2048], port[16], passfile[PATH_MAX];
	int	 in[2], out[2];
	FILE	*fp;

	/* A server that goes away may leave us writing to its socket. */
	signal(SIGPIPE, SIG_IGN);
	/* A hung loop fails the test instead of blocking ctest. */
	alarm(280);
	if (!pgserver_path(path, sizeof(path))) {
		fprintf(stderr, "tests/integration/pgtest.py not found: set "
		    "CB_SOURCE_DIR\n");
		return -1;
	}
	if (pipe(in) != 0 || pipe(out) != 0)
		return -1;
	if ((pgsrv.pid = fork()) < 0)
		return -1;
	if (pgsrv.pid == 0) {
		/* Never outlive the test: end of input stops the cluster. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl("/usr/bin/python3", "python3", path, "serve",
		    (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	pgsrv.in = fdopen(in[1], "w");
	pgsrv.out = fdopen(out[0], "r");
	if (pgsrv.in == NULL || pgsrv.out == NULL ||
	    fgets(line, sizeof(line), pgsrv.out) == NULL) {
		fprintf(stderr, "pgtest.py serve did not start\n");
		return -1;
	}
	if (!pgserver_field(line, "host", pgsrv.host, sizeof(pgsrv.host)) ||
	    !pgserver_field(line, "port", port, sizeof(port)) ||
	    !pgserver_field(line, "user", pgsrv.user, sizeof(pgsrv.user)) ||
	    !pgserver_field(line, "dbname", pgsrv.dbname,
	    sizeof(pgsrv.dbname)) ||
	    !pgserver_field(line, "passfile", passfile, sizeof(passfile))) {
		fprintf(stderr, "pgtest.py serve: %s", line);
		return -1;
	}
	pgsrv.port = atoi(port);
	if ((fp = fopen(passfile, "r")) == NULL ||
	    fgets(pgsrv.password, sizeof(pgsrv.password), fp) == NULL) {
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	fclose(fp);
	pgsrv.password[strcspn(pgsrv.password, "\n")] = '\0';
	return 0;
}

void
pgserver_stop(void)
{
	cb_wipe(pgsrv.password, sizeof(pgsrv.password));
	if (pgsrv.in != NULL)
		fclose(pgsrv.in);		/* pgtest stops the cluster */
	if (pgsrv.out != NULL)
		fclose(pgsrv.out);
	if (pgsrv.pid > 0)
		waitpid(pgsrv.pid, NULL, 0);
	pgsrv.in = pgsrv.out = NULL;
	pgsrv.pid = -1;
}

static void
pgserver_tick(uv_timer_t *t)
{
}

bool
pgserver_run_until(uv_loop_t *loop, const int *flag, int want, unsigned ms)
{
	uv_timer_t	 tick;
	uint64_t	 end = uv_hrtime() / 1000000 + ms;

	/* The timer wakes the loop up to look at the clock. */
	uv_timer_init(loop, &tick);
	uv_timer_start(&tick, pgserver_tick, 20, 20);
	while (*flag < want && uv_hrtime() / 1000000 < end)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *flag >= want;
}

static void
pgserver_event(void *arg, enum pg_event ev, const struct cb_error *err)
{
	struct pgconn	*c = arg;

	switch (ev) {
	case PG_EVENT_CONNECTED:
		c->connected++;
		break;
	case PG_EVENT_RECONNECTED:
		c->reconnected++;
		break;
	case PG_EVENT_DOWN:
		c->down++;
		snprintf(c->down_msg, sizeof(c->down_msg), "%s", err->msg);
		break;
	}
}

void
pgserver_open(uv_loop_t *loop, const char *schema, struct pgconn *c)
{
	pgserver_open_as(loop, schema, NULL, NULL, c);
}

void
pgserver_open_as(uv_loop_t *loop, const char *schema, const char *user,
    const char *password, struct pgconn *c)
{
	struct pg_opts	 o;
	struct cb_error	 err;
	char		 ci[PATH_MAX + 256];

	memset(c, 0, sizeof(*c));
	snprintf(ci, sizeof(ci), "host=%s port=%d user=%s dbname=%s "
	    "options='-c search_path=%s'", pgsrv.host, pgsrv.port,
	    user != NULL ? user : pgsrv.user, pgsrv.dbname, schema);
	memset(&o, 0, sizeof(o));
	o.conninfo = ci;
	o.password = password != NULL ? password : pgsrv.password;
	o.connect_timeout_ms = 10000;
	o.query_timeout_ms = 20000;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 400;
	o.on_event = pgserver_event;
	o.arg = c;
	cb_error_clear(&err);
	if (pg_open(loop, &o, &c->pg, &err) != 0)
		fail_msg("pg_open: %s", err.msg);
	if (!pgserver_run_until(loop, &c->connected, 1, 20000))
		fail_msg("no connection to PostgreSQL: %s", c->down_msg);
}

static void
pgserver_result(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct pgres	*r = arg;
	const char	*s;

	r->done++;
	r->rc = rc;
	snprintf(r->msg, sizeof(r->msg), "%s", rc != 0 ? err->msg : "");
	if (res == NULL)
		return;
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		r->ntuples = PQntuples(res);
		if (r->ntuples > 0 && PQnfields(res) > 0)
			snprintf(r->val, sizeof(r->val), "%s",
			    PQgetvalue(res, 0, 0));
	}
	snprintf(r->tuples, sizeof(r->tuples), "%s", PQcmdTuples(res));
	if ((s = PQresultErrorField(res, PG_DIAG_SQLSTATE)) != NULL)
		snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", s);
}

int
pgserver_exec(uv_loop_t *loop, struct pg *pg, const char *sql,
    struct pgres *r)
{
	struct cb_error	 err;
	int		 rc;

	memset(r, 0, sizeof(*r));
	cb_error_clear(&err);
	if ((rc = pg_query(pg, sql, 0, NULL, NULL, NULL, pgserver_result, r,
	    &err)) != 0) {
		snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
		r->rc = rc;
		return rc;
	}
	if (!pgserver_run_until(loop, &r->done, 1, 30000))
		fail_msg("no answer to %s", sql);
	return r->rc;
}

const char *
pgserver_ok(uv_loop_t *loop, struct pg *pg, const char *sql, struct pgres *r)
{
	if (pgserver_exec(loop, pg, sql, r) != 0)
		fail_msg("%s: %s", sql, r->msg);
	return r->val;
}

void
pgserver_schema(uv_loop_t *loop, struct pg *pg, const char *schema)
{
	struct pgres	 r;
	char		 sql[256];

	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE",
	    schema);
	pgserver_ok(loop, pg, sql, &r);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	pgserver_ok(loop, pg, sql, &r);
}

static void
pgserver_migrated(void *arg, int rc, int version, const struct cb_error *err)
{
	int	*done = arg;

	(void)version;
	if (rc != 0)
		fail_msg("pgschema_apply: %s", err->msg);
	*done = 1;
}

int
pgserver_schema_migrated(const char *schema)
{
	uv_loop_t	 loop;
	struct pgconn	 c;
	struct cb_error	 err;
	int		 done = 0;

	if (pgserver_start() != 0 || uv_loop_init(&loop) != 0)
		return -1;
	pgserver_open(&loop, schema, &c);
	pgserver_schema(&loop, c.pg, schema);
	if (pgschema_apply(c.pg, pgserver_migrated, &done, &err) != 0 ||
	    !pgserver_run_until(&loop, &done, 1, 30000))
		return -1;
	pgserver_close(&loop, &c);
	uv_run(&loop, UV_RUN_DEFAULT);
	return uv_loop_close(&loop) == 0 ? 0 : -1;
}

static void
pgserver_closed(void *arg)
{
	int	*closed = arg;

	(*closed)++;
}

void
pgserver_close(uv_loop_t *loop, struct pgconn *c)
{
	int	 closed = 0;

	if (c->pg == NULL)
		return;
	pg_close(c->pg, pgserver_closed, &closed);
	c->pg = NULL;
	if (!pgserver_run_until(loop, &closed, 1, 10000))
		fail_msg("the PostgreSQL connection did not close");
}
