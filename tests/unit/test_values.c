/*
 * test_values: one contract for every values backend (storage/values.h).
 * The same tests run against an in-memory backend defined here, the
 * SQLite backend on a scratch database, and the Vault backend on the
 * Vault simulator (tests/vault/vaultsim.py, started once for the group).
 * Each backend gets its own loop and scratch store; every answer must
 * come from the loop, after the operation has returned.
 */
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "cb_error.h"
#include "http.h"
#include "secbuf.h"
#include "store.h"
#include "values.h"
#include "vault.h"

#define T_ROLE		"3f1c2b7e-5a9d-4e61-9c3a-0d2f6b8e1a47"
#define T_SECRET	"b8e04d1a-7c2f-4a93-8e56-19d3c7f0a2b4"
#define T_MAX_USERS	8

/* --- an in-memory backend, for the contract's own sake --- */

struct mem_row {
	char	 type_uuid[STORE_UUID_LEN + 1];
	char	 user_uuid[STORE_UUID_LEN + 1];	/* "" for an account */
	char	 account[STORE_IDENT_MAX + 1];	/* "" for a user */
	char	*sealed;
	int64_t	 generation;
	int64_t	 updated_at;
};

struct mem {
	struct values		 base;
	struct values_defer	 defer;
	struct mem_row		 rows[64];
	size_t			 nrows;
};

/* A deferred answer: the operation is done at once, answered later. */
struct mem_job {
	struct values_job	 job;
	int			 op;
	int			 rc;
	int64_t			 n;
	char			*sealed;
	char			*users[64];	/* or accounts */
	int64_t			 acc_updated[64];
	size_t			 nusers;
	int64_t			 updated[16];
	size_t			 ntypes;
	bool			 finished;
	values_get_fn		 get;
	values_done_fn		 done;
	values_list_fn		 list;
	values_accounts_fn	 accounts;
	values_status_fn	 status;
	values_reseal_fn	 reseal;
	void			*arg;
};

enum { M_GET, M_DONE, M_LIST, M_STATUS, M_RESEAL, M_ACCOUNTS };

static struct mem_row *
mem_find(struct mem *m, const struct values_ref *ref)
{
	size_t	i;

	for (i = 0; i < m->nrows; i++)
		if (strcmp(m->rows[i].type_uuid, ref->type_uuid) == 0 &&
		    (ref->account != NULL ?
		    strcmp(m->rows[i].account, ref->account) == 0 :
		    strcmp(m->rows[i].user_uuid, ref->user_uuid) == 0))
			return &m->rows[i];
	return NULL;
}

static void
mem_remove(struct mem *m, struct mem_row *r)
{
	free(r->sealed);
	*r = m->rows[--m->nrows];
}

static void
mem_run(struct values_job *job, bool cancelled)
{
	struct mem_job	*j = (struct mem_job *)job;
	struct cb_error	 e;
	size_t		 i;

	cb_error_clear(&e);
	if (cancelled)
		j->rc = cb_error_set(&e, CB_EUNAVAILABLE, "closed");
	else if (j->rc != 0)
		cb_error_set(&e, -j->rc, "no value");
	switch (j->op) {
	case M_GET:
		j->get(j->arg, j->rc, j->sealed, j->n, &e);
		break;
	case M_DONE:
		j->done(j->arg, j->rc, j->n, &e);
		break;
	case M_LIST:
		j->list(j->arg, j->rc, j->users, j->nusers, &e);
		break;
	case M_STATUS:
		for (i = 0; i < j->ntypes; i++)
			j->status(j->arg, i, j->rc, j->updated[i], &e);
		break;
	case M_RESEAL:
		j->reseal(j->arg, j->rc, j->n, j->finished, &e);
		break;
	case M_ACCOUNTS:
		j->accounts(j->arg, j->rc, j->users, j->acc_updated,
		    j->nusers, &e);
		break;
	}
	for (i = 0; i < j->nusers; i++)
		free(j->users[i]);
	free(j->sealed);
	free(j);
}

static struct mem_job *
mem_job(struct mem *m, int op, void *arg)
{
	struct mem_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->job.run = mem_run;
	j->op = op;
	j->arg = arg;
	values_defer_push(&m->defer, &j->job);
	return j;
}

static bool
mem_usable(struct values *v, struct cb_error *err)
{
	(void)v;
	(void)err;
	return true;
}

static int
mem_get(struct values *v, const struct values_ref *ref, values_get_fn fn,
    void *arg, struct cb_error *err)
{
	struct mem	*m = (struct mem *)v;
	struct mem_row	*r = mem_find(m, ref);
	struct mem_job	*j;

	if ((j = mem_job(m, M_GET, arg)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->get = fn;
	if (r == NULL || r->generation != ref->generation)
		j->rc = -CB_ENOTFOUND;
	else {
		j->sealed = strdup(r->sealed);
		j->n = r->updated_at;
	}
	return 0;
}

static int
mem_set(struct values *v, const struct values_ref *ref, const char *sealed,
    values_done_fn fn, void *arg, struct cb_error *err)
{
	struct mem	*m = (struct mem *)v;
	struct mem_row	*r = mem_find(m, ref);
	struct mem_job	*j;

	if (r == NULL) {
		r = &m->rows[m->nrows++];
		snprintf(r->type_uuid, sizeof(r->type_uuid), "%s",
		    ref->type_uuid);
		if (ref->account != NULL)
			snprintf(r->account, sizeof(r->account), "%s",
			    ref->account);
		else
			snprintf(r->user_uuid, sizeof(r->user_uuid), "%s",
			    ref->user_uuid);
	} else
		free(r->sealed);
	r->sealed = strdup(sealed);
	r->generation = ref->generation;
	r->updated_at = (int64_t)time(NULL);
	if ((j = mem_job(m, M_DONE, arg)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->done = fn;
	j->n = r->updated_at;
	return 0;
}

static int
mem_del(struct values *v, const struct values_ref *ref, values_done_fn fn,
    void *arg, struct cb_error *err)
{
	struct mem	*m = (struct mem *)v;
	struct mem_row	*r = mem_find(m, ref);
	struct mem_job	*j;

	if ((j = mem_job(m, M_DONE, arg)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->done = fn;
	if (r == NULL || r->generation != ref->generation)
		j->rc = -CB_ENOTFOUND;
	else
		mem_remove(m, r);
	return 0;
}

static int
mem_list(struct values *v, const char *type_uuid, values_list_fn fn,
    void *arg, struct cb_error *err)
{
	struct mem	*m = (struct mem *)v;
	struct mem_job	*j;
	size_t		 i;

	if ((j = mem_job(m, M_LIST, arg)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->list = fn;
	for (i = 0; i < m->nrows; i++)
		if (strcmp(m->rows[i].type_uuid, type_uuid) == 0 &&
		    m->rows[i].account[0] == '\0')
			j->users[j->nusers++] = strdup(m->rows[i].user_uuid);
	return 0;
}

static int
mem_list_accounts(struct values *v, const char *type_uuid,
    int64_t generation, values_accounts_fn fn, void *arg,
    struct cb_error *err)
{
	struct mem	*m = (struct mem *)v;
	struct mem_job	*j;
	char		*t;
	int64_t		 u;
	size_t		 i, k;

	if ((j = mem_job(m, M_ACCOUNTS, arg)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->accounts = fn;
	for (i = 0; i < m->nrows; i++) {
		if (strcmp(m->rows[i].type_uuid, type_uuid) != 0 ||
		    m->rows[i].account[0] == '\0' ||
		    m->rows[i].generation != generation)
			continue;
		j->users[j->nusers] = strdup(m->rows[i].account);
		j->acc_updated[j->nusers++] = m->rows[i].updated_at;
	}
	/* By name: insertion sort of a handful. */
	for (i = 1; i < j->nusers; i++)
		for (k = i; k > 0 && strcmp(j->users[k - 1], j->users[k]) > 0;
		    k--) {
			t = j->users[k];
			j->users[k] = j->users[k - 1];
			j->users[k - 1] = t;
			u = j->acc_updated[k];
			j->acc_updated[k] = j->acc_updated[k - 1];
			j->acc_updated[k - 1] = u;
		}
	return 0;
}

static int
mem_clear(struct values *v, const char *type_uuid, values_done_fn fn,
    void *arg, struct cb_error *err)
{
	struct mem	*m = (struct mem *)v;
	struct mem_job	*j;
	size_t		 i;

	if ((j = mem_job(m, M_DONE, arg)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->done = fn;
	for (i = m->nrows; i-- > 0;)
		if (strcmp(m->rows[i].type_uuid, type_uuid) == 0) {
			mem_remove(m, &m->rows[i]);
			j->n++;
		}
	return 0;
}

static int
mem_status(struct values *v, const char *user_uuid,
    const struct store_type *const *types, size_t n, values_status_fn fn,
    void *arg, struct cb_error *err)
{
	struct mem		*m = (struct mem *)v;
	struct mem_job		*j;
	struct mem_row		*r;
	struct values_ref	 ref = { 0 };
	size_t			 i;

	if ((j = mem_job(m, M_STATUS, arg)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->status = fn;
	j->ntypes = n;
	for (i = 0; i < n; i++) {
		ref.type_uuid = types[i]->uuid;
		ref.user_uuid = user_uuid;
		ref.generation = types[i]->generation;
		r = mem_find(m, &ref);
		j->updated[i] = r != NULL && r->generation ==
		    ref.generation ? r->updated_at : 0;
	}
	return 0;
}

/* Everything in one batch. */
static int
mem_reseal(struct values *v, struct values_reseal *rs, values_reseal_fn fn,
    void *arg, struct cb_error *err)
{
	struct mem		*m = (struct mem *)v;
	struct mem_job		*j;
	struct values_ref	 ref = { 0 };
	char			 context[VALUES_CONTEXT_MAX], *out;
	size_t			 i;
	int			 rc;

	for (i = 0; i < m->nrows; i++) {
		ref.type_uuid = m->rows[i].type_uuid;
		ref.user_uuid = m->rows[i].user_uuid;
		ref.account = m->rows[i].account[0] != '\0' ?
		    m->rows[i].account : NULL;
		ref.generation = m->rows[i].generation;
		values_context(v, context, sizeof(context), &ref);
		if ((rc = rs->reseal(rs->arg, context, m->rows[i].sealed, &out,
		    err)) != 0)
			return rc;
		if (out != NULL) {
			free(m->rows[i].sealed);
			m->rows[i].sealed = out;
		}
	}
	if ((j = mem_job(m, M_RESEAL, arg)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->reseal = fn;
	j->n = (int64_t)m->nrows;
	j->finished = true;
	return 0;
}

static void
mem_close(struct values *v)
{
	struct mem	*m = (struct mem *)v;

	values_defer_close(&m->defer);
	while (m->nrows > 0)
		mem_remove(m, &m->rows[0]);
	free(m);
}

static const struct values_ops mem_ops = {
	.name = "memory",
	.where = "memory",
	.generational = true,
	.usable = mem_usable,
	.get = mem_get,
	.set = mem_set,
	.del = mem_del,
	.list_users = mem_list,
	.list_accounts = mem_list_accounts,
	.clear = mem_clear,
	.status = mem_status,
	.reseal = mem_reseal,
	.close = mem_close,
};

static int
mem_new(uv_loop_t *loop, struct values **out, struct cb_error *err)
{
	struct mem	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	m->base.ops = &mem_ops;
	if (values_defer_init(&m->defer, loop, err) != 0) {
		free(m);
		return -CB_EINTERNAL;
	}
	*out = &m->base;
	return 0;
}

/* --- the Vault simulator, once for the whole program --- */

static struct {
	pid_t	 pid;
	int	 port;
} sim;

static bool
sim_start(void)
{
	const char	*src = getenv("CB_SOURCE_DIR");
	char		 path[PATH_MAX], line[512], *p;
	int		 fd[2], nul;
	FILE		*fp;
	bool		 ok;

	snprintf(path, sizeof(path), "%s/tests/vault/vaultsim.py",
	    src != NULL ? src : ".");
	if (pipe(fd) != 0 || (sim.pid = fork()) < 0)
		return false;
	if (sim.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		close(fd[0]);
		dup2(fd[1], 1);
		if ((nul = open("/dev/null", O_RDWR)) >= 0) {
			dup2(nul, 0);
			dup2(nul, 2);
		}
		execl("/usr/bin/python3", "python3", path, "--port", "0",
		    "--kv-mount", "secrets", "--role",
		    T_ROLE ":" T_SECRET ":ttl=300,max_ttl=3600", (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	if ((fp = fdopen(fd[0], "r")) == NULL)
		return false;
	ok = fgets(line, sizeof(line), fp) != NULL &&
	    (p = strstr(line, "\"port\":")) != NULL &&
	    sscanf(p + 7, "%d", &sim.port) == 1;
	fclose(fp);
	return ok;
}

static void
sim_stop(void)
{
	if (sim.pid > 0) {
		kill(sim.pid, SIGTERM);
		waitpid(sim.pid, NULL, 0);
		sim.pid = 0;
	}
}

/* --- one backend under test --- */

enum { B_MEMORY, B_SQLITE, B_VAULT };

struct fix {
	int		 kind;
	uv_loop_t	 loop;
	char		 dir[64];
	struct store	*st;
	struct http	*http;
	struct vault	*vault;
	struct values	*v;
	struct store_type types[3];	/* T, U, W */
	bool		 returned;	/* the operation has returned */
	int		 nanswers;	/* answers so far (struct answer.seq) */
};

static const char *const users[] = {
	"11111111-1111-4111-8111-111111111111",
	"22222222-2222-4222-8222-222222222222",
	"33333333-3333-4333-8333-333333333333",
};

static int
rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int
setup(void **state, int kind)
{
	struct fix	*f;
	struct cb_error	 err;
	char		 path[128];
	size_t		 i;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->kind = kind;
	assert_int_equal(uv_loop_init(&f->loop), 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cb-values-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/values.db", f->dir);
	assert_int_equal(store_open(path, &f->st, &err), 0);
	for (i = 0; i < 3; i++) {
		struct store_type *t = &f->types[i];

		assert_int_equal(store_uuid_new(t->uuid), 0);
		snprintf(t->ident, sizeof(t->ident), "type_%zu", i);
		t->name = strdup(t->ident);
		t->description = strdup("");
		t->destinations = calloc(1, sizeof(char *));
		t->storage = kind == B_VAULT ? STORE_VAULT : STORE_DB;
		t->created_at = t->updated_at = (int64_t)time(NULL);
		assert_int_equal(store_type_create(f->st, t, &err), 0);
	}
	switch (kind) {
	case B_MEMORY:
		assert_int_equal(mem_new(&f->loop, &f->v, &err), 0);
		break;
	case B_SQLITE:
		assert_int_equal(values_sqlite_new(&f->loop, f->st, &f->v,
		    &err), 0);
		break;
	case B_VAULT: {
		struct vault_conf c;
		char url[64];

		memset(&c, 0, sizeof(c));
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", sim.port);
		c.enabled = true;
		c.url = url;
		assert_int_equal(secbuf_set_str(&c.role_id, T_ROLE,
		    strlen(T_ROLE)), 0);
		assert_int_equal(secbuf_set_str(&c.secret_id, T_SECRET,
		    strlen(T_SECRET)), 0);
		/* A prefix of its own: the simulator is shared. */
		snprintf(path, sizeof(path), "secrets/data/%s",
		    f->dir + strlen("/tmp/cb-values-"));
		c.path = path;
		c.timeout_ms = 5000;
		vault_json_setup();	/* as main.c does */
		assert_int_equal(http_init(&f->loop, &f->http, &err), 0);
		assert_int_equal(vault_init(&f->loop, f->http, &f->vault,
		    &err), 0);
		assert_int_equal(vault_configure(f->vault, &c, &err), 0);
		secbuf_free(&c.role_id);
		secbuf_free(&c.secret_id);
		assert_int_equal(values_vault_new(&f->loop, &f->vault, f->st,
		    &f->v, &err), 0);
		break;
	}
	}
	*state = f;
	return 0;
}

static int setup_memory(void **s) { return setup(s, B_MEMORY); }
static int setup_sqlite(void **s) { return setup(s, B_SQLITE); }
static int setup_vault(void **s) { return setup(s, B_VAULT); }

static int
teardown(void **state)
{
	struct fix	*f = *state;
	size_t		 i;

	f->v->ops->close(f->v);
	if (f->vault != NULL) {
		struct vault *v = f->vault;

		f->vault = NULL;
		vault_close(v);
	}
	if (f->http != NULL)
		http_close(f->http);
	while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0)
		;
	/* Every handle closed: nothing leaked on the loop. */
	assert_int_equal(uv_loop_close(&f->loop), 0);
	for (i = 0; i < 3; i++)
		store_type_free(&f->types[i]);
	store_close(f->st);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* --- synchronous wrappers: start, check it returned, run to the answer --- */

struct answer {
	struct fix	*f;
	bool		 called;
	int		 rc;
	int64_t		 n;
	char		 sealed[256];
	char		 users[T_MAX_USERS][STORE_UUID_LEN + 1];
	size_t		 nusers;
	int64_t		 updated[3];
	char		 accounts[T_MAX_USERS][STORE_IDENT_MAX + 1];
	int64_t		 acc_updated[T_MAX_USERS];
	size_t		 naccounts;
	int		 status_rc[3];
	size_t		 nstatus;
	bool		 finished;
	int		 seq;		/* the how-manieth answer this was */
};

static void
wait_for(struct fix *f, struct answer *a, size_t calls)
{
	size_t	*n = &a->nstatus;

	while (calls > 1 ? *n < calls : !a->called)
		uv_run(&f->loop, UV_RUN_ONCE);
}

/* An answer came: the loop must not go on to wait in poll. */
static void
answered(struct answer *a)
{
	uv_stop(&a->f->loop);
}

static void
got(void *arg, int rc, const char *sealed, int64_t updated_at,
    const struct cb_error *err)
{
	struct answer	*a = arg;

	(void)err;
	/* Never answered before the operation returned. */
	assert_true(a->f->returned);
	assert_false(a->called);
	a->called = true;
	a->seq = ++a->f->nanswers;
	answered(a);
	a->rc = rc;
	a->n = updated_at;
	if (rc == 0)
		snprintf(a->sealed, sizeof(a->sealed), "%s", sealed);
}

static void
done(void *arg, int rc, int64_t n, const struct cb_error *err)
{
	struct answer	*a = arg;

	(void)err;
	assert_true(a->f->returned);
	assert_false(a->called);
	a->called = true;
	a->seq = ++a->f->nanswers;
	answered(a);
	a->rc = rc;
	a->n = n;
}

static void
listed(void *arg, int rc, char *const *u, size_t n,
    const struct cb_error *err)
{
	struct answer	*a = arg;
	size_t		 i;

	(void)err;
	assert_true(a->f->returned);
	assert_false(a->called);
	a->called = true;
	answered(a);
	a->rc = rc;
	for (i = 0; rc == 0 && i < n && i < T_MAX_USERS; i++)
		snprintf(a->users[i], sizeof(a->users[i]), "%s", u[i]);
	a->nusers = rc == 0 ? n : 0;
}

static void
accounts_listed(void *arg, int rc, char *const *names,
    const int64_t *updated_at, size_t n, const struct cb_error *err)
{
	struct answer	*a = arg;
	size_t		 i;

	(void)err;
	assert_true(a->f->returned);
	assert_false(a->called);
	a->called = true;
	answered(a);
	a->rc = rc;
	for (i = 0; rc == 0 && i < n && i < T_MAX_USERS; i++) {
		snprintf(a->accounts[i], sizeof(a->accounts[i]), "%s",
		    names[i]);
		a->acc_updated[i] = updated_at[i];
	}
	a->naccounts = rc == 0 ? n : 0;
}

static void
statused(void *arg, size_t i, int rc, int64_t updated_at,
    const struct cb_error *err)
{
	struct answer	*a = arg;

	(void)err;
	assert_true(a->f->returned);
	assert_true(i < 3);
	a->status_rc[i] = rc;
	a->updated[i] = updated_at;
	a->nstatus++;
	a->called = true;
	answered(a);
}

static void
resealed(void *arg, int rc, int64_t n, bool finished,
    const struct cb_error *err)
{
	struct answer	*a = arg;

	(void)err;
	assert_true(a->f->returned);
	assert_false(a->called);
	a->called = true;
	answered(a);
	a->rc = rc;
	a->n = n;
	a->finished = finished;
}

static struct values_ref
ref(struct fix *f, int type, int user, int64_t generation)
{
	struct values_ref	r = { 0 };

	r.type_uuid = f->types[type].uuid;
	r.user_uuid = users[user];
	r.generation = generation;
	return r;
}

static int
v_get(struct fix *f, int type, int user, int64_t gen, struct answer *a)
{
	struct values_ref	r = ref(f, type, user, gen);
	struct cb_error		e;

	memset(a, 0, sizeof(*a));
	a->f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->get(f->v, &r, got, a, &e), 0);
	f->returned = true;
	assert_false(a->called);
	wait_for(f, a, 1);
	return a->rc;
}

static int
v_set(struct fix *f, int type, int user, int64_t gen, const char *sealed)
{
	struct values_ref	r = ref(f, type, user, gen);
	struct cb_error		e;
	struct answer		a;

	memset(&a, 0, sizeof(a));
	a.f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->set(f->v, &r, sealed, done, &a, &e), 0);
	f->returned = true;
	assert_false(a.called);
	wait_for(f, &a, 1);
	if (a.rc == 0)
		assert_true(a.n > 0);
	return a.rc;
}

static int
v_del(struct fix *f, int type, int user, int64_t gen)
{
	struct values_ref	r = ref(f, type, user, gen);
	struct cb_error		e;
	struct answer		a;

	memset(&a, 0, sizeof(a));
	a.f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->del(f->v, &r, done, &a, &e), 0);
	f->returned = true;
	assert_false(a.called);
	wait_for(f, &a, 1);
	return a.rc;
}

static void
v_list(struct fix *f, int type, struct answer *a)
{
	struct cb_error	e;

	memset(a, 0, sizeof(*a));
	a->f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->list_users(f->v, f->types[type].uuid,
	    listed, a, &e), 0);
	f->returned = true;
	assert_false(a->called);
	wait_for(f, a, 1);
	assert_int_equal(a->rc, 0);
}

static int64_t
v_clear(struct fix *f, int type)
{
	struct cb_error	e;
	struct answer	a;

	memset(&a, 0, sizeof(a));
	a.f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->clear(f->v, f->types[type].uuid, done, &a,
	    &e), 0);
	f->returned = true;
	assert_false(a.called);
	wait_for(f, &a, 1);
	assert_int_equal(a.rc, 0);
	return a.n;
}

/* The same operations on an account's value. */
static struct values_ref
aref(struct fix *f, int type, const char *account, int64_t generation)
{
	struct values_ref	r = { 0 };

	r.type_uuid = f->types[type].uuid;
	r.account = account;
	r.generation = generation;
	return r;
}

static int
a_get(struct fix *f, int type, const char *account, int64_t gen,
    struct answer *a)
{
	struct values_ref	r = aref(f, type, account, gen);
	struct cb_error		e;

	memset(a, 0, sizeof(*a));
	a->f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->get(f->v, &r, got, a, &e), 0);
	f->returned = true;
	assert_false(a->called);
	wait_for(f, a, 1);
	return a->rc;
}

static int
a_set(struct fix *f, int type, const char *account, int64_t gen,
    const char *sealed)
{
	struct values_ref	r = aref(f, type, account, gen);
	struct cb_error		e;
	struct answer		a;

	memset(&a, 0, sizeof(a));
	a.f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->set(f->v, &r, sealed, done, &a, &e), 0);
	f->returned = true;
	assert_false(a.called);
	wait_for(f, &a, 1);
	if (a.rc == 0)
		assert_true(a.n > 0);
	return a.rc;
}

static int
a_del(struct fix *f, int type, const char *account, int64_t gen)
{
	struct values_ref	r = aref(f, type, account, gen);
	struct cb_error		e;
	struct answer		a;

	memset(&a, 0, sizeof(a));
	a.f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->del(f->v, &r, done, &a, &e), 0);
	f->returned = true;
	assert_false(a.called);
	wait_for(f, &a, 1);
	return a.rc;
}

static void
a_list(struct fix *f, int type, int64_t gen, struct answer *a)
{
	struct cb_error	e;

	memset(a, 0, sizeof(*a));
	a->f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->list_accounts(f->v, f->types[type].uuid,
	    gen, accounts_listed, a, &e), 0);
	f->returned = true;
	assert_false(a->called);
	wait_for(f, a, 1);
	assert_int_equal(a->rc, 0);
}

static bool
has_user(const struct answer *a, int user)
{
	size_t	i;

	for (i = 0; i < a->nusers; i++)
		if (strcmp(a->users[i], users[user]) == 0)
			return true;
	return false;
}

/* --- the contract --- */

static void
test_get_not_set_is_not_found(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(v_get(f, 0, 0, 0, &a), -CB_ENOTFOUND);
	assert_int_equal(v_del(f, 0, 0, 0), -CB_ENOTFOUND);
}

static void
test_set_then_get_returns_sealed_text(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(v_set(f, 0, 0, 0, "CB1:1:first"), 0);
	assert_int_equal(v_get(f, 0, 0, 0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:first");
	assert_true(a.n > 0);
	/* Another user, another type: still not set. */
	assert_int_equal(v_get(f, 0, 1, 0, &a), -CB_ENOTFOUND);
	assert_int_equal(v_get(f, 1, 0, 0, &a), -CB_ENOTFOUND);
}

static void
test_set_overwrites(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(v_set(f, 0, 0, 0, "CB1:1:first"), 0);
	assert_int_equal(v_set(f, 0, 0, 0, "CB1:1:second"), 0);
	assert_int_equal(v_get(f, 0, 0, 0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:second");
	v_list(f, 0, &a);
	assert_int_equal(a.nusers, 1);
}

static void
test_delete_removes_one_value(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(v_set(f, 0, 0, 0, "CB1:1:a"), 0);
	assert_int_equal(v_set(f, 0, 1, 0, "CB1:1:b"), 0);
	assert_int_equal(v_del(f, 0, 0, 0), 0);
	assert_int_equal(v_get(f, 0, 0, 0, &a), -CB_ENOTFOUND);
	assert_int_equal(v_del(f, 0, 0, 0), -CB_ENOTFOUND);
	assert_int_equal(v_get(f, 0, 1, 0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:b");
}

static void
test_list_users_of_a_type(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	v_list(f, 0, &a);
	assert_int_equal(a.nusers, 0);
	assert_int_equal(v_set(f, 0, 0, 0, "CB1:1:a"), 0);
	assert_int_equal(v_set(f, 0, 2, 0, "CB1:1:c"), 0);
	assert_int_equal(v_set(f, 1, 1, 0, "CB1:1:b"), 0);
	v_list(f, 0, &a);
	assert_int_equal(a.nusers, 2);
	assert_true(has_user(&a, 0));
	assert_true(has_user(&a, 2));
	assert_false(has_user(&a, 1));
}

static void
test_clear_removes_every_value_of_the_type(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(v_set(f, 0, 0, 0, "CB1:1:a"), 0);
	assert_int_equal(v_set(f, 0, 1, 0, "CB1:1:b"), 0);
	assert_int_equal(v_set(f, 0, 2, 0, "CB1:1:c"), 0);
	assert_int_equal(v_set(f, 1, 0, 0, "CB1:1:other"), 0);
	assert_int_equal(v_clear(f, 0), 3);
	v_list(f, 0, &a);
	assert_int_equal(a.nusers, 0);
	assert_int_equal(v_get(f, 0, 1, 0, &a), -CB_ENOTFOUND);
	assert_int_equal(v_get(f, 1, 0, 0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:other");
	assert_int_equal(v_clear(f, 0), 0);
}

static void
test_status_says_which_types_are_filled(void **state)
{
	struct fix		*f = *state;
	const struct store_type	*types[3];
	struct cb_error		 e;
	struct answer		 a;
	size_t			 i;

	assert_int_equal(v_set(f, 0, 0, 0, "CB1:1:a"), 0);
	assert_int_equal(v_set(f, 2, 0, 0, "CB1:1:c"), 0);
	assert_int_equal(v_set(f, 1, 1, 0, "CB1:1:b"), 0);
	for (i = 0; i < 3; i++)
		types[i] = &f->types[i];
	memset(&a, 0, sizeof(a));
	a.f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->status(f->v, users[0], types, 3, statused,
	    &a, &e), 0);
	f->returned = true;
	assert_int_equal(a.nstatus, 0);
	wait_for(f, &a, 3);
	assert_int_equal(a.nstatus, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(a.status_rc[i], 0);
	assert_true(a.updated[0] > 0);
	assert_int_equal(a.updated[1], 0);
	assert_true(a.updated[2] > 0);
}

/* The test's key change: "old:X" becomes "new:X"; "new:" is current. */
static int
t_reseal(void *arg, const char *context, const char *sealed, char **out,
    struct cb_error *err)
{
	struct fix	*f = arg;
	const char	*p;

	(void)err;
	*out = NULL;
	/*
	 * The context names the value: type/user, or type/account/name for
	 * an account's value (and no other).
	 */
	p = strrchr(context, '/') + 1;
	if (strstr(context, "/account/") != NULL)
		assert_int_equal(strlen(context), STORE_UUID_LEN +
		    strlen("/account/") + strlen(p));
	else
		assert_int_equal(strlen(context), 2 * STORE_UUID_LEN + 1);
	assert_true(strncmp(context, f->types[0].uuid, STORE_UUID_LEN) == 0 ||
	    strncmp(context, f->types[1].uuid, STORE_UUID_LEN) == 0);
	if (strncmp(sealed, "new:", 4) == 0)
		return 0;
	assert_true(strncmp(sealed, "old:", 4) == 0);
	/* Sealed text is bound to its own user or account. */
	assert_string_equal(sealed + 4, p);
	if (asprintf(out, "new:%s", sealed + 4) < 0)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	return 0;
}

/* Run reseal to its end; how many values it walked. */
static int64_t
v_reseal_all(struct fix *f)
{
	struct values_reseal	 rs;
	struct cb_error		 e;
	struct answer		 a;
	int64_t			 walked = 0;
	int			 rounds = 0;

	memset(&rs, 0, sizeof(rs));
	rs.reseal = t_reseal;
	rs.arg = f;
	do {
		memset(&a, 0, sizeof(a));
		a.f = f;
		f->returned = false;
		assert_int_equal(f->v->ops->reseal(f->v, &rs, resealed, &a,
		    &e), 0);
		f->returned = true;
		assert_false(a.called);
		wait_for(f, &a, 1);
		assert_int_equal(a.rc, 0);
		walked += a.n;
		assert_true(++rounds < 100);
	} while (!a.finished);
	return walked;
}

static void
test_reseal_rewrites_every_value_once(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;
	char		 want[64];
	int		 u;

	for (u = 0; u < 3; u++) {
		snprintf(want, sizeof(want), "old:%s", users[u]);
		assert_int_equal(v_set(f, 0, u, 0, want), 0);
	}
	snprintf(want, sizeof(want), "old:%s", users[1]);
	assert_int_equal(v_set(f, 1, 1, 0, want), 0);
	assert_true(v_reseal_all(f) >= 4);
	for (u = 0; u < 3; u++) {
		snprintf(want, sizeof(want), "new:%s", users[u]);
		assert_int_equal(v_get(f, 0, u, 0, &a), 0);
		assert_string_equal(a.sealed, want);
	}
	assert_int_equal(v_get(f, 1, 1, 0, &a), 0);
	snprintf(want, sizeof(want), "new:%s", users[1]);
	assert_string_equal(a.sealed, want);
	/* Again: nothing is old any more, and nothing changes. */
	v_reseal_all(f);
	assert_int_equal(v_get(f, 0, 2, 0, &a), 0);
	snprintf(want, sizeof(want), "new:%s", users[2]);
	assert_string_equal(a.sealed, want);
}

/*
 * A backend that binds values to the storage generation never serves a
 * value of another generation, and seals under a context that names it.
 */
static void
test_generation_binds_values(void **state)
{
	struct fix		*f = *state;
	struct values_ref	 r0 = ref(f, 0, 0, 0), r2 = ref(f, 0, 0, 2);
	char			 c0[VALUES_CONTEXT_MAX], c2[VALUES_CONTEXT_MAX];
	struct answer		 a;

	values_context(f->v, c0, sizeof(c0), &r0);
	values_context(f->v, c2, sizeof(c2), &r2);
	assert_int_equal(v_set(f, 0, 0, 2, "CB1:1:gen2"), 0);
	if (!f->v->ops->generational) {
		assert_string_equal(c0, c2);
		assert_int_equal(v_get(f, 0, 0, 3, &a), 0);
		return;
	}
	assert_string_not_equal(c0, c2);
	assert_int_equal(v_get(f, 0, 0, 2, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:gen2");
	assert_int_equal(v_get(f, 0, 0, 3, &a), -CB_ENOTFOUND);
	assert_int_equal(v_get(f, 0, 0, 0, &a), -CB_ENOTFOUND);
	assert_int_equal(v_del(f, 0, 0, 3), -CB_ENOTFOUND);
	/* Still listed, and cleared with the type. */
	v_list(f, 0, &a);
	assert_int_equal(a.nusers, 1);
	assert_int_equal(v_clear(f, 0), 1);
}

/* An account's value is a value of its own, apart from every user's. */
static void
test_account_value_is_apart_from_users_values(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(a_get(f, 0, "techno_reader", 0, &a), -CB_ENOTFOUND);
	assert_int_equal(a_set(f, 0, "techno_reader", 0, "CB1:1:shared"), 0);
	assert_int_equal(a_get(f, 0, "techno_reader", 0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:shared");
	assert_true(a.n > 0);
	/* Not a user's value, nor another type's, nor another account's. */
	assert_int_equal(v_get(f, 0, 0, 0, &a), -CB_ENOTFOUND);
	assert_int_equal(a_get(f, 1, "techno_reader", 0, &a), -CB_ENOTFOUND);
	assert_int_equal(a_get(f, 0, "techno_writer", 0, &a), -CB_ENOTFOUND);
	v_list(f, 0, &a);
	assert_int_equal(a.nusers, 0);
	/* A user's value does not touch the account's. */
	assert_int_equal(v_set(f, 0, 0, 0, "CB1:1:own"), 0);
	assert_int_equal(a_set(f, 0, "techno_reader", 0, "CB1:1:shared2"), 0);
	assert_int_equal(v_get(f, 0, 0, 0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:own");
	assert_int_equal(a_get(f, 0, "techno_reader", 0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:shared2");
	/* Deleting the account leaves the user's value. */
	assert_int_equal(a_del(f, 0, "techno_reader", 0), 0);
	assert_int_equal(a_get(f, 0, "techno_reader", 0, &a), -CB_ENOTFOUND);
	assert_int_equal(a_del(f, 0, "techno_reader", 0), -CB_ENOTFOUND);
	assert_int_equal(v_get(f, 0, 0, 0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:own");
}

static void
test_list_accounts_by_name_with_when_written(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	a_list(f, 0, 0, &a);
	assert_int_equal(a.naccounts, 0);
	assert_int_equal(a_set(f, 0, "zeta", 0, "CB1:1:z"), 0);
	assert_int_equal(a_set(f, 0, "alpha", 0, "CB1:1:a"), 0);
	assert_int_equal(a_set(f, 1, "other", 0, "CB1:1:o"), 0);
	assert_int_equal(v_set(f, 0, 1, 0, "CB1:1:user"), 0);
	a_list(f, 0, 0, &a);
	assert_int_equal(a.naccounts, 2);
	assert_string_equal(a.accounts[0], "alpha");
	assert_string_equal(a.accounts[1], "zeta");
	assert_true(a.acc_updated[0] > 0);
	assert_true(a.acc_updated[1] > 0);
	a_list(f, 1, 0, &a);
	assert_int_equal(a.naccounts, 1);
	assert_string_equal(a.accounts[0], "other");
	/* Users are not accounts, and accounts are not users. */
	v_list(f, 0, &a);
	assert_int_equal(a.nusers, 1);
	assert_true(has_user(&a, 1));
}

/* type.clear: users' and accounts' values of the type, and only those. */
static void
test_clear_removes_accounts_values_too(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(v_set(f, 0, 0, 0, "CB1:1:u"), 0);
	assert_int_equal(a_set(f, 0, "alpha", 0, "CB1:1:a"), 0);
	assert_int_equal(a_set(f, 0, "beta", 0, "CB1:1:b"), 0);
	assert_int_equal(a_set(f, 1, "alpha", 0, "CB1:1:keep"), 0);
	assert_int_equal(v_clear(f, 0), 3);
	a_list(f, 0, 0, &a);
	assert_int_equal(a.naccounts, 0);
	assert_int_equal(a_get(f, 0, "alpha", 0, &a), -CB_ENOTFOUND);
	assert_int_equal(v_get(f, 0, 0, 0, &a), -CB_ENOTFOUND);
	assert_int_equal(a_get(f, 1, "alpha", 0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:keep");
}

/* Key rotation re-seals accounts' values under their own context. */
static void
test_reseal_covers_accounts_values(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(a_set(f, 0, "alpha", 0, "old:alpha"), 0);
	assert_int_equal(a_set(f, 1, "beta", 0, "old:beta"), 0);
	assert_int_equal(v_set(f, 0, 2, 0, "old:" "33333333-3333-4333-8333-"
	    "333333333333"), 0);
	assert_true(v_reseal_all(f) >= 3);
	assert_int_equal(a_get(f, 0, "alpha", 0, &a), 0);
	assert_string_equal(a.sealed, "new:alpha");
	assert_int_equal(a_get(f, 1, "beta", 0, &a), 0);
	assert_string_equal(a.sealed, "new:beta");
	assert_int_equal(v_get(f, 0, 2, 0, &a), 0);
	assert_string_equal(a.sealed, "new:33333333-3333-4333-8333-"
	    "333333333333");
	/* Again: nothing changes. */
	v_reseal_all(f);
	assert_int_equal(a_get(f, 0, "alpha", 0, &a), 0);
	assert_string_equal(a.sealed, "new:alpha");
}

/* Accounts' values are bound to the storage generation like users'. */
static void
test_generation_binds_accounts_values(void **state)
{
	struct fix		*f = *state;
	struct values_ref	 r0 = aref(f, 0, "alpha", 0);
	struct values_ref	 r2 = aref(f, 0, "alpha", 2);
	struct values_ref	 u0 = ref(f, 0, 0, 0);
	char			 c0[VALUES_CONTEXT_MAX], c2[VALUES_CONTEXT_MAX];
	char			 cu[VALUES_CONTEXT_MAX];
	struct answer		 a;

	values_context(f->v, c0, sizeof(c0), &r0);
	values_context(f->v, c2, sizeof(c2), &r2);
	values_context(f->v, cu, sizeof(cu), &u0);
	assert_string_not_equal(c0, cu);
	assert_non_null(strstr(c0, "/account/alpha"));
	assert_int_equal(a_set(f, 0, "alpha", 2, "CB1:1:gen2"), 0);
	if (!f->v->ops->generational) {
		assert_string_equal(c0, c2);
		assert_int_equal(a_get(f, 0, "alpha", 3, &a), 0);
		a_list(f, 0, 3, &a);
		assert_int_equal(a.naccounts, 1);
		return;
	}
	assert_string_not_equal(c0, c2);
	assert_int_equal(a_get(f, 0, "alpha", 2, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:gen2");
	assert_int_equal(a_get(f, 0, "alpha", 3, &a), -CB_ENOTFOUND);
	assert_int_equal(a_del(f, 0, "alpha", 3), -CB_ENOTFOUND);
	a_list(f, 0, 3, &a);
	assert_int_equal(a.naccounts, 0);
	a_list(f, 0, 2, &a);
	assert_int_equal(a.naccounts, 1);
	/* Cleared with the type whatever its generation. */
	assert_int_equal(v_clear(f, 0), 1);
}

/* Closing cancels what is queued: every caller still gets its answer. */
static void
test_close_answers_what_is_queued(void **state)
{
	struct fix		*f = *state;
	struct values_ref	 r = ref(f, 0, 0, 0);
	struct cb_error		 e;
	struct answer		 a;
	struct values		*v;

	memset(&a, 0, sizeof(a));
	a.f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->get(f->v, &r, got, &a, &e), 0);
	f->returned = true;
	v = f->v;
	if (f->kind == B_VAULT) {
		/* Vault fails its waiting calls when it is closed. */
		struct vault *vt = f->vault;

		f->vault = NULL;
		vault_close(vt);
	}
	v->ops->close(v);
	wait_for(f, &a, 1);
	assert_true(a.called);
	assert_int_not_equal(a.rc, 0);
	assert_int_not_equal(a.rc, -CB_ENOTFOUND);
	/* The fixture's teardown closes a backend of its own. */
	if (f->kind == B_MEMORY)
		assert_int_equal(mem_new(&f->loop, &f->v, &e), 0);
	else if (f->kind == B_SQLITE)
		assert_int_equal(values_sqlite_new(&f->loop, f->st, &f->v,
		    &e), 0);
	else
		assert_int_equal(values_vault_new(&f->loop, &f->vault, f->st,
		    &f->v, &e), 0);
}

/*
 * SQLite only (its writes commit on the writer's thread): a read asked
 * after a write of the same value waits for it and sees it; a read of
 * another value asked after the write is answered before it.
 */
static void
test_sqlite_read_waits_only_for_writes_of_its_value(void **state)
{
	struct fix		*f = *state;
	struct values_ref	 same = ref(f, 0, 0, 0), other = ref(f, 0, 1, 0);
	struct cb_error		 e;
	struct answer		 set, get_same, get_other;

	assert_int_equal(v_set(f, 0, 0, 0, "old"), 0);
	assert_int_equal(v_set(f, 0, 1, 0, "other"), 0);
	memset(&set, 0, sizeof(set));
	memset(&get_same, 0, sizeof(get_same));
	memset(&get_other, 0, sizeof(get_other));
	set.f = get_same.f = get_other.f = f;
	f->returned = false;
	assert_int_equal(f->v->ops->set(f->v, &same, "new", done, &set, &e),
	    0);
	assert_int_equal(f->v->ops->get(f->v, &same, got, &get_same, &e), 0);
	assert_int_equal(f->v->ops->get(f->v, &other, got, &get_other, &e),
	    0);
	f->returned = true;
	while (!set.called || !get_same.called || !get_other.called)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(set.rc, 0);
	assert_int_equal(get_same.rc, 0);
	assert_string_equal(get_same.sealed, "new");
	assert_true(get_same.seq > set.seq);
	assert_int_equal(get_other.rc, 0);
	assert_string_equal(get_other.sealed, "other");
	assert_true(get_other.seq < set.seq);
}

#define CONTRACT(setup)							\
	cmocka_unit_test_setup_teardown(test_get_not_set_is_not_found,	\
	    setup, teardown),						\
	cmocka_unit_test_setup_teardown(				\
	    test_set_then_get_returns_sealed_text, setup, teardown),	\
	cmocka_unit_test_setup_teardown(test_set_overwrites, setup,	\
	    teardown),							\
	cmocka_unit_test_setup_teardown(test_delete_removes_one_value,	\
	    setup, teardown),						\
	cmocka_unit_test_setup_teardown(test_list_users_of_a_type,	\
	    setup, teardown),						\
	cmocka_unit_test_setup_teardown(				\
	    test_clear_removes_every_value_of_the_type, setup, teardown), \
	cmocka_unit_test_setup_teardown(				\
	    test_status_says_which_types_are_filled, setup, teardown),	\
	cmocka_unit_test_setup_teardown(				\
	    test_reseal_rewrites_every_value_once, setup, teardown),	\
	cmocka_unit_test_setup_teardown(test_generation_binds_values,	\
	    setup, teardown),						\
	cmocka_unit_test_setup_teardown(				\
	    test_close_answers_what_is_queued, setup, teardown),	\
	cmocka_unit_test_setup_teardown(				\
	    test_account_value_is_apart_from_users_values, setup,	\
	    teardown),							\
	cmocka_unit_test_setup_teardown(				\
	    test_list_accounts_by_name_with_when_written, setup,	\
	    teardown),							\
	cmocka_unit_test_setup_teardown(				\
	    test_clear_removes_accounts_values_too, setup, teardown),	\
	cmocka_unit_test_setup_teardown(				\
	    test_reseal_covers_accounts_values, setup, teardown),	\
	cmocka_unit_test_setup_teardown(				\
	    test_generation_binds_accounts_values, setup, teardown)

static int
group_setup(void **state)
{
	(void)state;
	if (!sim_start()) {
		fprintf(stderr, "cannot start the Vault simulator\n");
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	sim_stop();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest memory[] = { CONTRACT(setup_memory) };
	const struct CMUnitTest sqlite[] = { CONTRACT(setup_sqlite) };
	const struct CMUnitTest vault[] = { CONTRACT(setup_vault) };
	const struct CMUnitTest sqlite_order[] = {
		cmocka_unit_test_setup_teardown(
		    test_sqlite_read_waits_only_for_writes_of_its_value,
		    setup_sqlite, teardown),
	};
	int	fails = 0;

	signal(SIGPIPE, SIG_IGN);
	/* A hung loop fails the test instead of blocking ctest. */
	alarm(180);
	fails += cmocka_run_group_tests_name("memory", memory, NULL, NULL);
	fails += cmocka_run_group_tests_name("sqlite", sqlite, NULL, NULL);
	fails += cmocka_run_group_tests_name("sqlite order", sqlite_order,
	    NULL, NULL);
	fails += cmocka_run_group_tests_name("vault", vault, group_setup,
	    group_teardown);
	return fails;
}
