/*
 * values-vault: the values of vault-stored types, in Vault KV v2
 * (vault.h), at {path}/credentials/{type_uuid}/users/{user_uuid}, and
 * accounts' values (SPEC 10) at {path}/credentials/{type_uuid}/accounts/
 * {name}, under the same rules.
 *
 * Values are bound to their type's storage generation, which every
 * change of storage counts up (store_type_update_count): db values of the
 * old storage are deleted with the change, but Vault may be unreachable
 * then, so what an earlier generation left here is recognised instead
 * and never served.  The generation is both visible in the text kept in
 * Vault ("G<generation>:" before the sealed text, to tell a stale value
 * without opening it) and bound into the seal context (values_context:
 * editing the visible number makes the value fail to open).  Generation 0
 * keeps the text of values written before generations existed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "values.h"
#include "vault.h"

#define VV_RELPATH_LEN	(2 * STORE_UUID_LEN + STORE_IDENT_MAX + 32)

struct vv {
	struct values		 base;
	struct vault		**vault;
	struct store		*st;
	struct values_defer	 defer;
};

/* Where a value lives, relative to vault.path. */
static void
vv_relpath(char *buf, size_t sz, const char *type_uuid, const char *user_uuid)
{
	snprintf(buf, sz, "credentials/%s/users/%s", type_uuid, user_uuid);
}

/* Where an account's value lives, relative to vault.path. */
static void
vv_accpath(char *buf, size_t sz, const char *type_uuid, const char *name)
{
	snprintf(buf, sz, "credentials/%s/accounts/%s", type_uuid, name);
}

/* The folder of a type's values. */
static void
vv_dir(char *buf, size_t sz, const char *type_uuid)
{
	snprintf(buf, sz, "credentials/%s/users/", type_uuid);
}

/* The folder of a type's accounts' values. */
static void
vv_accdir(char *buf, size_t sz, const char *type_uuid)
{
	snprintf(buf, sz, "credentials/%s/accounts/", type_uuid);
}

/* The text kept in Vault for sealed text (*out malloc'd). */
static int
vv_wrap(const char *sealed, int64_t generation, char **out,
    struct cb_error *err)
{
	int	n;

	if (generation != 0)
		n = asprintf(out, "G%lld:%s", (long long)generation, sealed);
	else
		n = (*out = strdup(sealed)) != NULL ? 0 : -1;
	if (n < 0) {
		*out = NULL;
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	return 0;
}

/* The sealed text in text, or NULL when written by another generation. */
static const char *
vv_unwrap(const char *text, int64_t generation)
{
	long long	 g = 0;
	const char	*p = text;

	/* "G" and digits, then ':'; "GCM:" (no digits) is generation 0. */
	if (p[0] == 'G' && p[1] >= '1' && p[1] <= '9') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			if (g > (LLONG_MAX - 9) / 10)
				return NULL;
			g = g * 10 + (*p - '0');
		}
		if (*p != ':')
			return NULL;
		p++;
	}
	return g == generation ? p : NULL;
}

static bool
vv_usable(struct values *vv, struct cb_error *err)
{
	return vault_usable(*((struct vv *)vv)->vault, err);
}

/* One operation on one value, waiting on Vault. */
struct vv_op {
	struct vv		*v;
	char			 type_uuid[STORE_UUID_LEN + 1];
	char			 user_uuid[STORE_UUID_LEN + 1];
	char			 account[STORE_IDENT_MAX + 1];	/* or "" */
	int64_t			 generation;
	values_get_fn		 get;
	values_done_fn		 done;
	void			*arg;
};

static int
vv_op_new(struct values *vv, const struct values_ref *ref, void *arg,
    struct vv_op **out, struct cb_error *err)
{
	struct vv_op	*o;

	*out = NULL;
	/* The name goes into a path: only what the grammar allows. */
	if (ref->account != NULL && !ids_ident_valid(ref->account))
		return cb_error_set(err, CB_EBADREQ, "invalid account name "
		    "(must match [a-z][a-z0-9_]{0,63})");
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	o->v = (struct vv *)vv;
	snprintf(o->type_uuid, sizeof(o->type_uuid), "%s", ref->type_uuid);
	if (ref->account != NULL)
		snprintf(o->account, sizeof(o->account), "%s", ref->account);
	else
		snprintf(o->user_uuid, sizeof(o->user_uuid), "%s",
		    ref->user_uuid);
	o->generation = ref->generation;
	o->arg = arg;
	*out = o;
	return 0;
}

/* Where the value of an operation lives. */
static void
vv_op_path(const struct vv_op *o, char *buf, size_t sz)
{
	if (o->account[0] != '\0')
		vv_accpath(buf, sz, o->type_uuid, o->account);
	else
		vv_relpath(buf, sz, o->type_uuid, o->user_uuid);
}

static void
vv_got(void *arg, int rc, const char *value, const struct vault_meta *meta,
    const struct cb_error *err)
{
	struct vv_op	*o = arg;
	struct cb_error	 e;
	const char	*sealed = NULL;

	/* Left by an earlier storage generation: not this type's value. */
	if (rc == 0 && (sealed = vv_unwrap(value, o->generation)) == NULL)
		rc = -CB_ENOTFOUND;
	if (rc == -CB_ENOTFOUND) {
		cb_error_set(&e, CB_ENOTFOUND, "no value");
		err = &e;
	}
	o->get(o->arg, rc, sealed, rc == 0 ? (meta->created != 0 ?
	    meta->created : 1) : 0, err);
	free(o);
}

static int
vv_get(struct values *vv, const struct values_ref *ref, values_get_fn fn,
    void *arg, struct cb_error *err)
{
	struct vv_op	*o;
	char		 rel[VV_RELPATH_LEN];
	int		 rc;

	if ((rc = vv_op_new(vv, ref, arg, &o, err)) != 0)
		return rc;
	o->get = fn;
	vv_op_path(o, rel, sizeof(rel));
	if ((rc = vault_read(*o->v->vault, rel, vv_got, o, err)) != 0)
		free(o);
	return rc;
}

static void
vv_written(void *arg, int rc, const struct cb_error *err)
{
	struct vv_op	*o = arg;

	o->done(o->arg, rc, rc == 0 ? (int64_t)time(NULL) : 0, err);
	free(o);
}

static int
vv_set(struct values *vv, const struct values_ref *ref, const char *sealed,
    values_done_fn fn, void *arg, struct cb_error *err)
{
	struct vv_op	*o;
	char		 rel[VV_RELPATH_LEN], *text = NULL;
	int		 rc;

	if ((rc = vv_op_new(vv, ref, arg, &o, err)) != 0)
		return rc;
	o->done = fn;
	vv_op_path(o, rel, sizeof(rel));
	if ((rc = vv_wrap(sealed, ref->generation, &text, err)) != 0 ||
	    (rc = vault_write(*o->v->vault, rel, text, vv_written, o,
	    err)) != 0)
		free(o);
	free(text);
	return rc;
}

static void
vv_destroyed(void *arg, int rc, const struct cb_error *err)
{
	struct vv_op	*o = arg;

	o->done(o->arg, rc, 0, err);
	free(o);
}

/* The read of a delete: destroy what is there, if it is this type's. */
static void
vv_del_read(void *arg, int rc, const char *value,
    const struct vault_meta *meta, const struct cb_error *err)
{
	struct vv_op	*o = arg;
	struct cb_error	 e;
	char		 rel[VV_RELPATH_LEN];

	(void)meta;
	if (rc == 0 && vv_unwrap(value, o->generation) == NULL)
		rc = -CB_ENOTFOUND;
	if (rc == -CB_ENOTFOUND) {
		cb_error_set(&e, CB_ENOTFOUND, "no value");
		err = &e;
	}
	if (rc == 0) {
		vv_op_path(o, rel, sizeof(rel));
		if ((rc = vault_destroy(*o->v->vault, rel, vv_destroyed, o,
		    &e)) == 0)
			return;
		err = &e;
	}
	o->done(o->arg, rc, 0, err);
	free(o);
}

static int
vv_del(struct values *vv, const struct values_ref *ref, values_done_fn fn,
    void *arg, struct cb_error *err)
{
	struct vv_op	*o;
	char		 rel[VV_RELPATH_LEN];
	int		 rc;

	if ((rc = vv_op_new(vv, ref, arg, &o, err)) != 0)
		return rc;
	o->done = fn;
	vv_op_path(o, rel, sizeof(rel));
	if ((rc = vault_read(*o->v->vault, rel, vv_del_read, o, err)) != 0)
		free(o);
	return rc;
}

/* A LIST of a type's folder, for list-users or clear. */
struct vv_list {
	struct vv		*v;
	char			 type_uuid[STORE_UUID_LEN + 1];
	values_list_fn		 list;
	values_done_fn		 done;
	void			*arg;
	size_t			 pending;
	int64_t			 removed;
	int			 rc;
	struct cb_error		 err;
};

/* Only what this broker writes: a user uuid, no folder. */
static void
vv_listed(void *arg, int rc, char *const *keys, size_t nkeys,
    const struct cb_error *err)
{
	struct vv_list	*l = arg;
	char		**users = NULL;
	size_t		 i, n = 0;

	if (rc == 0 && (users = calloc(nkeys + 1, sizeof(*users))) == NULL)
		rc = cb_error_set(&l->err, CB_EINTERNAL, "out of memory");
	for (i = 0; rc == 0 && i < nkeys; i++)
		if (ids_uuid_valid(keys[i]))
			users[n++] = keys[i];
	l->list(l->arg, rc, users, n, rc == -CB_EINTERNAL ? &l->err : err);
	free(users);
	free(l);
}

static int
vv_list_users(struct values *vv, const char *type_uuid, values_list_fn fn,
    void *arg, struct cb_error *err)
{
	struct vv_list	*l;
	char		 dir[VV_RELPATH_LEN];
	int		 rc;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	l->v = (struct vv *)vv;
	l->list = fn;
	l->arg = arg;
	vv_dir(dir, sizeof(dir), type_uuid);
	if ((rc = vault_list(*l->v->vault, dir, vv_listed, l, err)) != 0)
		free(l);
	return rc;
}

/* Answer clear once every LIST and destroy has ended. */
static void
vv_clear_end(struct vv_list *l)
{
	if (--l->pending > 0)
		return;
	l->done(l->arg, l->rc, l->rc == 0 ? l->removed : 0, &l->err);
	free(l);
}

/* The first failure fails the answer. */
static void
vv_clear_fail(struct vv_list *l, int rc, const struct cb_error *err)
{
	if (l->rc == 0) {
		l->rc = rc;
		l->err = *err;
	}
}

static void
vv_clear_destroyed(void *arg, int rc, const struct cb_error *err)
{
	struct vv_list	*l = arg;

	if (rc == 0)
		l->removed++;
	else
		vv_clear_fail(l, rc, err);
	vv_clear_end(l);
}

/* Destroy each secret listed in one folder, all at once. */
static void
vv_clear_keys(struct vv_list *l, int rc, char *const *keys, size_t nkeys,
    const struct cb_error *err, bool accounts)
{
	struct cb_error	 e;
	char		 rel[VV_RELPATH_LEN];
	size_t		 i;

	if (rc != 0) {
		vv_clear_fail(l, rc, err);
		vv_clear_end(l);
		return;
	}
	for (i = 0; i < nkeys; i++) {
		if (accounts ? !ids_ident_valid(keys[i]) :
		    !ids_uuid_valid(keys[i]))
			continue;
		if (accounts)
			vv_accpath(rel, sizeof(rel), l->type_uuid, keys[i]);
		else
			vv_relpath(rel, sizeof(rel), l->type_uuid, keys[i]);
		l->pending++;
		if (vault_destroy(*l->v->vault, rel, vv_clear_destroyed, l,
		    &e) != 0)
			vv_clear_destroyed(l, -e.code, &e);
	}
	vv_clear_end(l);
}

static void
vv_clear_users(void *arg, int rc, char *const *keys, size_t nkeys,
    const struct cb_error *err)
{
	vv_clear_keys(arg, rc, keys, nkeys, err, false);
}

static void
vv_clear_accounts(void *arg, int rc, char *const *keys, size_t nkeys,
    const struct cb_error *err)
{
	vv_clear_keys(arg, rc, keys, nkeys, err, true);
}

/*
 * Clear: LIST the users and the accounts under the type, then delete
 * each secret with all its versions, all at once.  The first failure, if
 * any, fails the answer after every delete has ended, so a retry
 * finishes the job.
 */
static int
vv_clear(struct values *vv, const char *type_uuid, values_done_fn fn,
    void *arg, struct cb_error *err)
{
	struct vv_list	*l;
	struct cb_error	 e;
	char		 dir[VV_RELPATH_LEN];
	int		 rc;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	l->v = (struct vv *)vv;
	l->done = fn;
	l->arg = arg;
	l->pending = 2;		/* the users' LIST, and this call's */
	snprintf(l->type_uuid, sizeof(l->type_uuid), "%s", type_uuid);
	vv_dir(dir, sizeof(dir), type_uuid);
	if ((rc = vault_list(*l->v->vault, dir, vv_clear_users, l,
	    err)) != 0) {
		free(l);
		return rc;
	}
	/* The users' LIST is under way: from here on, answer through it. */
	l->pending++;
	vv_accdir(dir, sizeof(dir), type_uuid);
	if (vault_list(*l->v->vault, dir, vv_clear_accounts, l, &e) != 0) {
		vv_clear_fail(l, -e.code, &e);
		l->pending--;
	}
	vv_clear_end(l);
	return 0;
}

/*
 * list-accounts: LIST the type's accounts, then read each, all at once,
 * to keep those of the type's storage generation (what an earlier one
 * left is not the type's) with when each was written.
 */
struct vv_accts;
struct vv_acct_slot {
	struct vv_accts	*x;
	size_t		 i;
};
struct vv_accts {
	struct vv		*v;
	char			 type_uuid[STORE_UUID_LEN + 1];
	int64_t			 generation;
	values_accounts_fn	 fn;
	void			*arg;
	char			**names;	/* candidates, by name */
	int64_t			*updated;	/* 0: not the type's */
	struct vv_acct_slot	*slots;
	size_t			 n;
	size_t			 pending;
	int			 rc;
	struct cb_error		 err;
};

static void
vv_accts_free(struct vv_accts *x)
{
	size_t	i;

	for (i = 0; x->names != NULL && i < x->n; i++)
		free(x->names[i]);
	free(x->names);
	free(x->updated);
	free(x->slots);
	free(x);
}

/* Answer once every read has ended: the accounts found, in name order. */
static void
vv_accts_end(struct vv_accts *x)
{
	size_t	i, m = 0;

	if (--x->pending > 0)
		return;
	if (x->rc != 0) {
		x->fn(x->arg, x->rc, NULL, NULL, 0, &x->err);
		vv_accts_free(x);
		return;
	}
	for (i = 0; i < x->n; i++) {
		if (x->updated[i] == 0)
			continue;
		/* Compact in place: m <= i. */
		if (m != i) {
			char *t = x->names[m];

			x->names[m] = x->names[i];
			x->names[i] = t;
			x->updated[m] = x->updated[i];
		}
		m++;
	}
	x->fn(x->arg, 0, x->names, x->updated, m, NULL);
	vv_accts_free(x);
}

static void
vv_accts_read(void *arg, int rc, const char *value,
    const struct vault_meta *meta, const struct cb_error *err)
{
	struct vv_acct_slot	*s = arg;
	struct vv_accts		*x = s->x;

	if (rc == 0 && vv_unwrap(value, x->generation) != NULL)
		x->updated[s->i] = meta->created != 0 ? meta->created : 1;
	else if (rc != 0 && rc != -CB_ENOTFOUND && x->rc == 0) {
		x->rc = rc;
		x->err = *err;
	}
	vv_accts_end(x);
}

static int
vv_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
vv_accts_listed(void *arg, int rc, char *const *keys, size_t nkeys,
    const struct cb_error *err)
{
	struct vv_accts	*x = arg;
	struct cb_error	 e;
	char		 rel[VV_RELPATH_LEN];
	size_t		 i;

	if (rc != 0) {
		x->rc = rc;
		x->err = *err;
		vv_accts_end(x);
		return;
	}
	if ((x->names = calloc(nkeys + 1, sizeof(*x->names))) == NULL ||
	    (x->updated = calloc(nkeys + 1, sizeof(*x->updated))) == NULL ||
	    (x->slots = calloc(nkeys + 1, sizeof(*x->slots))) == NULL) {
		x->rc = cb_error_set(&x->err, CB_EINTERNAL, "out of memory");
		vv_accts_end(x);
		return;
	}
	for (i = 0; i < nkeys; i++) {
		if (!ids_ident_valid(keys[i]))
			continue;
		if ((x->names[x->n] = strdup(keys[i])) == NULL) {
			x->rc = cb_error_set(&x->err, CB_EINTERNAL,
			    "out of memory");
			vv_accts_end(x);
			return;
		}
		x->n++;
	}
	qsort(x->names, x->n, sizeof(*x->names), vv_strcmp);
	for (i = 0; i < x->n; i++) {
		x->slots[i].x = x;
		x->slots[i].i = i;
		vv_accpath(rel, sizeof(rel), x->type_uuid, x->names[i]);
		x->pending++;
		if (vault_read(*x->v->vault, rel, vv_accts_read, &x->slots[i],
		    &e) != 0) {
			if (x->rc == 0) {
				x->rc = -e.code;
				x->err = e;
			}
			x->pending--;
		}
	}
	vv_accts_end(x);
}

static int
vv_list_accounts(struct values *vv, const char *type_uuid,
    int64_t generation, values_accounts_fn fn, void *arg,
    struct cb_error *err)
{
	struct vv_accts	*x;
	char		 dir[VV_RELPATH_LEN];
	int		 rc;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	x->v = (struct vv *)vv;
	snprintf(x->type_uuid, sizeof(x->type_uuid), "%s", type_uuid);
	x->generation = generation;
	x->fn = fn;
	x->arg = arg;
	x->pending = 1;
	vv_accdir(dir, sizeof(dir), type_uuid);
	if ((rc = vault_list(*x->v->vault, dir, vv_accts_listed, x,
	    err)) != 0)
		free(x);
	return rc;
}

/* status: one read per type, all at once. */
struct vv_status;
struct vv_slot {
	struct vv_status	*x;
	size_t			 i;
	int64_t			 generation;
};
struct vv_status {
	struct values_job	 job;	/* answers reads that failed at once */
	values_status_fn	 fn;
	void			*arg;
	struct vv_slot		*slots;
	int			*rc;	/* a read that failed at once */
	struct cb_error		*err;
	size_t			 n;
	size_t			 pending;
};

static void
vv_status_end(struct vv_status *x)
{
	if (--x->pending > 0)
		return;
	free(x->slots);
	free(x->rc);
	free(x->err);
	free(x);
}

static void
vv_status_read(void *arg, int rc, const char *value,
    const struct vault_meta *meta, const struct cb_error *err)
{
	struct vv_slot		*s = arg;
	struct vv_status	*x = s->x;
	int64_t			 updated = 0;

	/* A value left by an earlier storage generation is not there. */
	if (rc == 0 && vv_unwrap(value, s->generation) != NULL)
		updated = meta->created != 0 ? meta->created : 1;
	if (rc == -CB_ENOTFOUND || rc == 0)
		x->fn(x->arg, s->i, 0, updated, NULL);
	else
		x->fn(x->arg, s->i, rc, 0, err);
	vv_status_end(x);
}

/* The deferred answers of the reads that failed at once. */
static void
vv_status_failed(struct values_job *job, bool cancelled)
{
	struct vv_status	*x = (struct vv_status *)job;
	size_t			 i;

	(void)cancelled;
	for (i = 0; i < x->n; i++)
		if (x->rc[i] != 0)
			x->fn(x->arg, i, x->rc[i], 0, &x->err[i]);
	vv_status_end(x);
}

static int
vv_status(struct values *vv, const char *user_uuid,
    const struct store_type *const *types, size_t n, values_status_fn fn,
    void *arg, struct cb_error *err)
{
	struct vv		*v = (struct vv *)vv;
	struct vv_status	*x;
	char			 rel[VV_RELPATH_LEN];
	size_t			 i;

	if ((x = calloc(1, sizeof(*x))) == NULL ||
	    (x->slots = calloc(n + 1, sizeof(*x->slots))) == NULL ||
	    (x->rc = calloc(n + 1, sizeof(*x->rc))) == NULL ||
	    (x->err = calloc(n + 1, sizeof(*x->err))) == NULL) {
		if (x != NULL) {
			free(x->slots);
			free(x->rc);
		}
		free(x);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	x->fn = fn;
	x->arg = arg;
	x->n = n;
	x->job.run = vv_status_failed;
	x->pending = 1;		/* the deferred job's */
	for (i = 0; i < n; i++) {
		x->slots[i].x = x;
		x->slots[i].i = i;
		x->slots[i].generation = types[i]->generation;
		vv_relpath(rel, sizeof(rel), types[i]->uuid, user_uuid);
		x->pending++;
		if (vault_read(*v->vault, rel, vv_status_read, &x->slots[i],
		    &x->err[i]) != 0) {
			x->pending--;
			x->rc[i] = -x->err[i].code;
		}
	}
	values_defer_push(&v->defer, &x->job);
	return 0;
}

/*
 * Key rotation: every value of every vault-stored type, read, re-sealed
 * and written back with check-and-set, so that a cred.set that lands
 * meanwhile wins (the value is then read again, and is new).  Vault has
 * no transactions: the walk is idempotent, answers once at its end, and
 * starts over after a restart (values already re-sealed are skipped).
 * Types and users are walked in uuid order after rs->cursor, which moves
 * past each value done, so a walk asked again after a failure goes on
 * where it stopped.  After a type's users come its accounts, all of them
 * each time (a name does not fit the cursor, and accounts are few): the
 * cursor stays on the type's last user meanwhile.
 */
struct vv_reseal {
	struct vv		*v;
	struct values_reseal	*rs;
	values_reseal_fn	 fn;
	void			*arg;
	char			**types;
	size_t			 ntypes, ti;
	char			**users;	/* or accounts' names */
	size_t			 nusers, ui;
	bool			 accounts;	/* walking the accounts */
	int64_t			 walked;
};

/* Where the value at the walk's position lives. */
static void
vv_reseal_path(const struct vv_reseal *r, char *buf, size_t sz)
{
	if (r->accounts)
		vv_accpath(buf, sz, r->types[r->ti], r->users[r->ui]);
	else
		vv_relpath(buf, sz, r->types[r->ti], r->users[r->ui]);
}

static void	vv_reseal_next(struct vv_reseal *);

static void
vv_strv_free(char **v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
vv_reseal_end(struct vv_reseal *r, int rc, const struct cb_error *err)
{
	r->fn(r->arg, rc, r->walked, rc == 0, err);
	vv_strv_free(r->types, r->ntypes);
	vv_strv_free(r->users, r->nusers);
	free(r);
}

/* The value at the cursor is done: go past it. */
static void
vv_reseal_past(struct vv_reseal *r)
{
	struct values_cursor	*c = &r->rs->cursor;

	if (!r->accounts) {
		snprintf(c->type_uuid, sizeof(c->type_uuid), "%s",
		    r->types[r->ti]);
		snprintf(c->user_uuid, sizeof(c->user_uuid), "%s",
		    r->users[r->ui]);
	}
	r->ui++;
	if (r->rs->progress != NULL)
		r->rs->progress(r->rs->arg, 0, 1);
	else
		r->walked++;
	vv_reseal_next(r);
}

static void
vv_reseal_written(void *arg, int rc, const struct cb_error *err)
{
	struct vv_reseal	*r = arg;

	if (rc == -CB_ECONFLICT) {
		/* Changed meanwhile: read it again (it is new, and skipped). */
		vv_reseal_next(r);
		return;
	}
	if (rc != 0) {
		vv_reseal_end(r, rc, err);
		return;
	}
	vv_reseal_past(r);
}

static void
vv_reseal_read(void *arg, int rc, const char *value,
    const struct vault_meta *meta, const struct cb_error *err)
{
	struct vv_reseal	*r = arg;
	struct store_type	 t;
	struct values_ref	 ref = { 0 };
	struct cb_error		 e;
	const char		*old = NULL;
	char			 rel[VV_RELPATH_LEN];
	char			 context[VALUES_CONTEXT_MAX];
	char			*sealed = NULL, *text = NULL;

	memset(&t, 0, sizeof(t));
	/*
	 * The type's storage generation now: a value left by an earlier one
	 * is never served, so it is not re-sealed either (nor is a value of
	 * a type deleted meanwhile).
	 */
	if (rc == 0 && store_type_get(r->v->st, r->types[r->ti], &t,
	    &e) != 0) {
		if (e.code != CB_ENOTFOUND) {
			vv_reseal_end(r, -e.code, &e);
			return;
		}
		rc = -CB_ENOTFOUND;
	}
	if (rc == 0 && (t.storage != STORE_VAULT ||
	    (old = vv_unwrap(value, t.generation)) == NULL))
		rc = -CB_ENOTFOUND;
	if (rc != 0 && rc != -CB_ENOTFOUND) {
		store_type_free(&t);
		vv_reseal_end(r, rc, err);
		return;
	}
	if (rc == 0) {
		ref.type_uuid = r->types[r->ti];
		if (r->accounts)
			ref.account = r->users[r->ui];
		else
			ref.user_uuid = r->users[r->ui];
		ref.generation = t.generation;
		values_context(&r->v->base, context, sizeof(context), &ref);
		if ((rc = r->rs->reseal(r->rs->arg, context, old, &sealed,
		    &e)) != 0 || (sealed != NULL && (rc = vv_wrap(sealed,
		    t.generation, &text, &e)) != 0)) {
			free(sealed);
			store_type_free(&t);
			vv_reseal_end(r, rc, &e);
			return;
		}
	}
	store_type_free(&t);
	if (text == NULL) {
		/* Not set, of another generation, or new already. */
		free(sealed);
		vv_reseal_past(r);
		return;
	}
	vv_reseal_path(r, rel, sizeof(rel));
	/* Check-and-set: a cred.set that lands meanwhile wins. */
	rc = vault_write_cas(*r->v->vault, rel, text, meta->version,
	    vv_reseal_written, r, &e);
	free(text);
	free(sealed);
	if (rc != 0)
		vv_reseal_end(r, rc, &e);
}

static void
vv_reseal_listed(void *arg, int rc, char *const *keys, size_t nkeys,
    const struct cb_error *err)
{
	struct vv_reseal	*r = arg;
	const char		*after = "";
	size_t			 i;

	if (rc != 0) {
		vv_reseal_end(r, rc, err);
		return;
	}
	if ((r->users = calloc(nkeys + 1, sizeof(char *))) == NULL) {
		struct cb_error e;

		cb_error_set(&e, CB_EINTERNAL, "out of memory");
		vv_reseal_end(r, -CB_EINTERNAL, &e);
		return;
	}
	if (!r->accounts && strcmp(r->types[r->ti],
	    r->rs->cursor.type_uuid) == 0)
		after = r->rs->cursor.user_uuid;
	for (i = 0; i < nkeys; i++)
		if ((r->accounts ? ids_ident_valid(keys[i]) :
		    ids_uuid_valid(keys[i]) && strcmp(keys[i], after) > 0) &&
		    (r->users[r->nusers] = strdup(keys[i])) != NULL)
			r->nusers++;
	qsort(r->users, r->nusers, sizeof(char *), vv_strcmp);
	r->ui = 0;
	if (r->rs->progress != NULL)
		r->rs->progress(r->rs->arg, (int64_t)r->nusers, 0);
	vv_reseal_next(r);
}

/* The next Vault request of the walk, or its end. */
static void
vv_reseal_next(struct vv_reseal *r)
{
	struct cb_error	 e;
	char		 rel[VV_RELPATH_LEN];
	int		 rc;

	if (r->users != NULL && r->ui >= r->nusers) {
		vv_strv_free(r->users, r->nusers);
		r->users = NULL;
		r->nusers = r->ui = 0;
		/* The type's users, then its accounts, then the next type. */
		if (!r->accounts)
			r->accounts = true;
		else {
			r->accounts = false;
			r->ti++;
		}
	}
	if (r->ti >= r->ntypes) {
		vv_reseal_end(r, 0, NULL);
		return;
	}
	if (r->users == NULL) {
		if (r->accounts)
			vv_accdir(rel, sizeof(rel), r->types[r->ti]);
		else
			vv_dir(rel, sizeof(rel), r->types[r->ti]);
		rc = vault_list(*r->v->vault, rel, vv_reseal_listed, r, &e);
	} else {
		vv_reseal_path(r, rel, sizeof(rel));
		rc = vault_read(*r->v->vault, rel, vv_reseal_read, r, &e);
	}
	if (rc != 0)
		vv_reseal_end(r, rc, &e);
}

/* Start the walk from the loop (answers are never synchronous). */
struct vv_reseal_start {
	struct values_job	 job;
	struct vv_reseal	*r;
};

static void
vv_reseal_run(struct values_job *job, bool cancelled)
{
	struct vv_reseal_start	*s = (struct vv_reseal_start *)job;
	struct vv_reseal	*r = s->r;
	struct cb_error		 e;

	free(s);
	if (cancelled) {
		cb_error_set(&e, CB_EUNAVAILABLE,
		    "the broker is shutting down");
		vv_reseal_end(r, -CB_EUNAVAILABLE, &e);
		return;
	}
	vv_reseal_next(r);
}

static int
vv_reseal(struct values *vv, struct values_reseal *rs, values_reseal_fn fn,
    void *arg, struct cb_error *err)
{
	struct vv		*v = (struct vv *)vv;
	struct vv_reseal	*r = NULL;
	struct vv_reseal_start	*s = NULL;
	struct store_type	*types = NULL;
	struct vault_status	 vs;
	struct cb_error		 e;
	size_t			 n = 0, i, nv = 0;
	int			 rc;

	if ((rc = store_type_list(v->st, &types, &n, err)) != 0)
		return rc;
	for (i = 0; i < n; i++)
		if (types[i].storage == STORE_VAULT)
			nv++;
	/*
	 * Never configured: no value can be in Vault.  Configured but
	 * disabled or failing: values may be there, and the rotation
	 * cannot finish without re-sealing them, so it waits.
	 */
	if (!vault_usable(*v->vault, &e)) {
		vault_get_status(*v->vault, &vs);
		if (vs.configured && nv > 0) {
			rc = cb_error_set(err, CB_EUNAVAILABLE, "waiting for "
			    "Vault, which holds values to re-seal: Vault is "
			    "disabled");
			goto done;
		}
		nv = 0;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (s = calloc(1, sizeof(*s))) == NULL ||
	    (r->types = calloc(nv + 1, sizeof(char *))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	for (i = 0; i < n && nv > 0; i++)
		if (types[i].storage == STORE_VAULT &&
		    strcmp(types[i].uuid, rs->cursor.type_uuid) >= 0 &&
		    (r->types[r->ntypes] = strdup(types[i].uuid)) != NULL)
			r->ntypes++;
	qsort(r->types, r->ntypes, sizeof(char *), vv_strcmp);
	r->v = v;
	r->rs = rs;
	r->fn = fn;
	r->arg = arg;
	s->job.run = vv_reseal_run;
	s->r = r;
	values_defer_push(&v->defer, &s->job);
	r = NULL;
	s = NULL;
done:
	if (r != NULL)
		vv_strv_free(r->types, r->ntypes);
	free(r);
	free(s);
	store_type_list_free(types, n);
	return rc;
}

static void
vv_close(struct values *vv)
{
	struct vv	*v = (struct vv *)vv;

	values_defer_close(&v->defer);
	free(v);
}

static const struct values_ops vv_ops = {
	.name = "vault",
	.where = "Vault",
	.generational = true,
	.usable = vv_usable,
	.get = vv_get,
	.set = vv_set,
	.del = vv_del,
	.list_users = vv_list_users,
	.list_accounts = vv_list_accounts,
	.clear = vv_clear,
	.status = vv_status,
	.reseal = vv_reseal,
	.close = vv_close,
};

int
values_vault_new(uv_loop_t *loop, struct vault **vault, struct store *st,
    struct values **out, struct cb_error *err)
{
	struct vv	*v;
	int		 rc;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	v->base.ops = &vv_ops;
	v->vault = vault;
	v->st = st;
	if ((rc = values_defer_init(&v->defer, loop, err)) != 0) {
		free(v);
		return rc;
	}
	*out = &v->base;
	return 0;
}
