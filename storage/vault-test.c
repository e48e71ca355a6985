/*
 * vault-test: the vault.test method's steps (vault.h, vault_test): a
 * temporary client with the settings under test logs in, writes a probe
 * secret, reads it back, lists its folder and destroys it, one step each;
 * its client is closed outside of its own callbacks.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <uv.h>

#include "cb_error.h"
#include "vault.h"
#include "vault-int.h"

#define VAULT_TEST_DIR		"credbroker-test"

/* vault.test: log in, write, read, list, clean up; one step each. */
struct vtest {
	TAILQ_ENTRY(vtest)	 entry;		/* on vault_tests */
	bool			 finished;	/* reported; reaper started */
	struct vault		*v;
	vault_test_fn		 done;
	void			*arg;
	struct vault_test_step	 steps[4];
	size_t			 nsteps;
	char			 rel[80];
	char			 marker[40];
	uv_timer_t		 reaper;
};

/* Record a step. */
static void
vtest_step(struct vtest *t, const char *step, bool ok, const char *msg)
{
	struct vault_test_step *s = &t->steps[t->nsteps++];

	s->step = step;
	s->ok = ok;
	snprintf(s->message, sizeof(s->message), "%.*s",
	    (int)sizeof(s->message) - 1, msg);
}

/* Tests running or waiting for their reaper, for vault_test_abort_all(). */
static TAILQ_HEAD(, vtest) vault_tests = TAILQ_HEAD_INITIALIZER(vault_tests);

static void
vtest_reaped(uv_handle_t *h)
{
	free(h->data);
}

/* Close the temporary client outside of its own callbacks. */
static void
vtest_reap(uv_timer_t *timer)
{
	struct vtest	*t = timer->data;

	TAILQ_REMOVE(&vault_tests, t, entry);
	vault_close(t->v);
	uv_close((uv_handle_t *)&t->reaper, vtest_reaped);
}

/* Report and schedule the clean-up. */
static void
vtest_finish(struct vtest *t)
{
	t->finished = true;
	t->done(t->arg, t->steps, t->nsteps);
	uv_timer_start(&t->reaper, vtest_reap, 0, 0);
}

static void
vtest_destroyed(void *arg, int rc, const struct cb_error *err)
{
	vtest_finish(arg);
}

static void
vtest_listed(void *arg, int rc, char *const *keys, size_t nkeys,
    const struct cb_error *err)
{
	struct vtest	*t = arg;
	struct cb_error	 e;
	size_t		 i;
	bool		 found = false;

	for (i = 0; rc == 0 && i < nkeys; i++)
		if (strcmp(keys[i], t->marker) == 0)
			found = true;
	if (rc != 0)
		vtest_step(t, "list", false, err->msg);
	else
		vtest_step(t, "list", found, found ? "the test secret is "
		    "listed" : "the test secret is missing from the list");
	if (vault_destroy(t->v, t->rel, vtest_destroyed, t, &e) != 0)
		vtest_finish(t);
}

static void
vtest_read(void *arg, int rc, const char *value, const struct vault_meta *meta,
    const struct cb_error *err)
{
	struct vtest	*t = arg;
	struct cb_error	 e;
	char		 dir[40];
	bool		 ok = rc == 0 && strcmp(value, t->marker) == 0;

	vtest_step(t, "read", ok, rc == 0 ? (ok ? "read back what was "
	    "written" : "read back something else") : err->msg);
	snprintf(dir, sizeof(dir), "%s/", VAULT_TEST_DIR);
	if (vault_list(t->v, dir, vtest_listed, t, &e) != 0) {
		vtest_step(t, "list", false, e.msg);
		vtest_finish(t);
	}
}

static void
vtest_written(void *arg, int rc, const struct cb_error *err)
{
	struct vtest	*t = arg;
	struct cb_error	 e;

	vtest_step(t, "write", rc == 0, rc == 0 ? "wrote a test secret" :
	    err->msg);
	if (rc != 0) {
		vtest_finish(t);
		return;
	}
	if (vault_read(t->v, t->rel, vtest_read, t, &e) != 0) {
		vtest_step(t, "read", false, e.msg);
		vtest_finish(t);
	}
}

static void
vtest_logged_in(void *arg, bool ok, const char *msg)
{
	struct vtest	*t = arg;
	struct cb_error	 e;

	t->v->login_hook = NULL;
	vtest_step(t, "login", ok, msg);
	if (!ok) {
		vtest_finish(t);
		return;
	}
	if (vault_write(t->v, t->rel, t->marker, vtest_written, t, &e) != 0) {
		vtest_step(t, "write", false, e.msg);
		vtest_finish(t);
	}
}

int
vault_test(uv_loop_t *loop, struct http *http, const struct vault_conf *c,
    vault_test_fn done, void *arg, struct cb_error *err)
{
	struct vault_conf	 tc;
	struct vtest		*t;
	unsigned char		 rnd[8];
	size_t			 i;

	if (vault_conf_copy(&tc, c) != 0)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	tc.enabled = true;
	tc.cache_seconds = 0;	/* the read step must reach Vault */
	if (vault_conf_check(&tc, err) != 0) {
		vault_conf_free(&tc);
		return -CB_EBADREQ;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		vault_conf_free(&tc);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	RAND_bytes(rnd, sizeof(rnd));
	memcpy(t->marker, "probe-", 6);
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(t->marker + 6 + 2 * i, 3, "%02x", rnd[i]);
	snprintf(t->rel, sizeof(t->rel), "%s/%s", VAULT_TEST_DIR, t->marker);
	t->done = done;
	t->arg = arg;
	uv_timer_init(loop, &t->reaper);
	t->reaper.data = t;
	if (vault_init(loop, http, &t->v, err) != 0) {
		vault_conf_free(&tc);
		uv_close((uv_handle_t *)&t->reaper, vtest_reaped);
		return -CB_EINTERNAL;
	}
	t->v->login_hook = vtest_logged_in;
	t->v->login_hook_arg = t;
	if (vault_configure(t->v, &tc, err) != 0) {
		vault_conf_free(&tc);
		vault_close(t->v);
		uv_close((uv_handle_t *)&t->reaper, vtest_reaped);
		return -CB_EBADREQ;
	}
	vault_conf_free(&tc);
	/* A login that failed at once has finished the test already. */
	TAILQ_INSERT_TAIL(&vault_tests, t, entry);
	return 0;
}

void
vault_test_abort_all(struct http *http)
{
	static const char	*msg = "the broker is shutting down";
	struct vtest		*t;

	TAILQ_FOREACH(t, &vault_tests, entry) {
		if (t->finished || t->v->http != http)
			continue;
		/*
		 * Closing first: the step that fails below cannot start the
		 * next one, so the test finishes at once, once.  Its client
		 * is freed by the reaper as usual.
		 */
		t->v->closing = true;
		vault_reset(t->v, CB_EUNAVAILABLE, msg);
		/* A login in flight ends without an answer: report it. */
		if (!t->finished && t->v->login_hook != NULL)
			vtest_logged_in(t, false, msg);
		if (!t->finished)
			vtest_finish(t);
	}
}
