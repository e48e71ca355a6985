/*
 * pgserver: a private PostgreSQL cluster for the unit tests that need a
 * real server (test_pgschema, test_values_pg), and the loop helpers they
 * share.
 *
 * pgserver_start() runs "tests/integration/pgtest.py serve" (a throw-away
 * cluster: initdb and pg_ctl as an unprivileged user, its own socket
 * directory, a role with a scram-sha-256 password), which then takes
 * commands on a pipe (pgserver_ctl: stop, start, restart).  The child
 * dies with the test program (PR_SET_PDEATHSIG), and pgtest.py's
 * watchdog stops the cluster and removes its directory when the pipe
 * closes, however the program ends.
 *
 * Each test uses a schema of its own: pgserver_open() connects with
 * search_path set to it, and pgserver_schema() drops and creates it;
 * pgserver_schema_migrated() also applies the migrations, once for a
 * group.
 */
#ifndef CB_TEST_PGSERVER_H
#define CB_TEST_PGSERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include <libpq-fe.h>
#include <uv.h>

#include "cb_error.h"
#include "pg.h"

struct pgserver {
	pid_t	 pid;
	FILE	*in;		/* commands */
	FILE	*out;		/* answers */
	char	 host[PATH_MAX];
	int	 port;
	char	 user[64];
	char	 dbname[64];
	char	 password[128];
};

extern struct pgserver pgsrv;

/* What one connection reported (pg_event_fn). */
struct pgconn {
	struct pg	*pg;
	int		 connected;
	int		 reconnected;
	int		 down;
	char		 down_msg[CB_ERRMSG_MAX];
};

/* A query's answer (pgserver_exec). */
struct pgres {
	int	 done;
	int	 rc;
	int	 ntuples;
	char	 val[256];	/* first column of the first row */
	char	 tuples[16];	/* PQcmdTuples() */
	char	 msg[CB_ERRMSG_MAX];
	char	 sqlstate[8];
};

/* Group setup and teardown: start and stop the cluster; 0 or -1. */
int	 pgserver_start(void);
void	 pgserver_stop(void);
/* Send a command to pgtest.py serve; true when it answers "ok". */
bool	 pgserver_ctl(const char *cmd);

/* Run loop until *flag >= want or ms pass; true when reached. */
bool	 pgserver_run_until(uv_loop_t *loop, const int *flag, int want,
	    unsigned ms);
/* Connect c on loop with search_path schema, and wait until up. */
void	 pgserver_open(uv_loop_t *loop, const char *schema,
	    struct pgconn *c);
/* The same as another role (NULL: the cluster's). */
void	 pgserver_open_as(uv_loop_t *loop, const char *schema,
	    const char *user, const char *password, struct pgconn *c);
/* Run sql on pg and wait for its answer; returns its rc. */
int	 pgserver_exec(uv_loop_t *loop, struct pg *pg, const char *sql,
	    struct pgres *r);
/* pgserver_exec() that must succeed; the first value. */
const char *pgserver_ok(uv_loop_t *loop, struct pg *pg, const char *sql,
	    struct pgres *r);
/* Drop and create schema on pg (connected with its search_path). */
void	 pgserver_schema(uv_loop_t *loop, struct pg *pg, const char *schema);
/*
 * Group setup: start the cluster and make schema with the broker's tables
 * (pgschema_apply); 0 or -1.
 */
int	 pgserver_schema_migrated(const char *schema);
/* Close c (when open) and wait for it. */
void	 pgserver_close(uv_loop_t *loop, struct pgconn *c);

#endif
