/*
 * vault-cache: the Vault client's read cache (vault.c; cache_seconds > 0).
 *
 * Vault holds only sealed text, so the cache holds only sealed text too
 * (SPEC forbids keeping decrypted values; those are opened by the caller,
 * per call, as before).  Entries are found by relpath in a hash table
 * with a random SipHash key (user uuids come from clients, who must not
 * be able to pick colliding paths), and kept in insertion order, which is
 * also expiry order since every entry lives cache_seconds: expired ones
 * are dropped from the front, and when VAULT_CACHE_ENTRIES are in use the
 * oldest makes room.  Freed entries are wiped like every other buffer
 * here.
 *
 * What the cache may answer is the question of staleness.  The broker's
 * own changes must show at once: vault_write_cas() and vault_destroy()
 * drop the path when they start and again when they end (whatever the
 * result: a check-and-set that lost means our copy was stale), a list
 * drops the folder, and new settings drop everything.  A read that was
 * sent before such a change may come back with what was there before it,
 * so an answer is cached only if nothing was dropped while it was under
 * way (cache_epoch counts the drops).  Changes made by another broker
 * sharing the path are seen once the entry expires; that is the trade-off
 * of turning the cache on.
 *
 * A hit is not delivered from inside vault_read().  Callers were written
 * against answers that come from the loop: substitute and cred.status
 * count one extra pending read so that an early answer cannot finish them
 * under their feet, but cred.delete would reply (and free its call) before
 * its handler returns "wait", and the key rotation would run its next step
 * inside the current one; both happen to survive that today, by the shape
 * of their code rather than by design.  So hits take the road answers
 * from Vault take: queued, and delivered by a 0 ms timer on the next loop
 * iteration, each with its own copy of the entry, so that a change in
 * between cannot pull the answer from under it.
 */
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cb_error.h"
#include "secbuf.h"
#include "vault.h"
#include "vault-int.h"

/*
 * SipHash-2-4 of the n bytes at p under key k: a keyed hash, so that no
 * client can choose user uuids whose paths share a bucket.
 */
#define VAULT_ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define VAULT_SIPROUND do {						\
	v0 += v1; v1 = VAULT_ROTL(v1, 13); v1 ^= v0;			\
	v0 = VAULT_ROTL(v0, 32);					\
	v2 += v3; v3 = VAULT_ROTL(v3, 16); v3 ^= v2;			\
	v0 += v3; v3 = VAULT_ROTL(v3, 21); v3 ^= v0;			\
	v2 += v1; v1 = VAULT_ROTL(v1, 17); v1 ^= v2;			\
	v2 = VAULT_ROTL(v2, 32);					\
} while (0)

/* Little-endian 64-bit load of 8 bytes. */
static uint64_t
vault_le64(const uint8_t *p)
{
	uint64_t	x = 0;
	int		i;

	for (i = 7; i >= 0; i--)
		x = (x << 8) | p[i];
	return x;
}

static uint64_t
vault_siphash(const uint8_t k[16], const void *p, size_t n)
{
	const uint8_t	*in = p;
	uint64_t	 k0 = vault_le64(k), k1 = vault_le64(k + 8), m;
	uint64_t	 v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t	 v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t	 v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t	 v3 = 0x7465646279746573ULL ^ k1;
	uint64_t	 b = (uint64_t)n << 56;
	size_t		 i;

	for (; n >= 8; n -= 8, in += 8) {
		m = vault_le64(in);
		v3 ^= m;
		VAULT_SIPROUND;
		VAULT_SIPROUND;
		v0 ^= m;
	}
	for (i = 0; i < n; i++)
		b |= (uint64_t)in[i] << (8 * i);
	v3 ^= b;
	VAULT_SIPROUND;
	VAULT_SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	for (i = 0; i < 4; i++)
		VAULT_SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}
#undef VAULT_SIPROUND
#undef VAULT_ROTL

/* The bucket of relpath (the table exists). */
static struct vcachebucket *
vault_cache_bucket(const struct vault *v, const char *relpath, size_t len)
{
	return &v->cache[vault_siphash(v->cache_key, relpath, len) &
	    (VAULT_CACHE_BUCKETS - 1)];
}

/* Unlink an entry, wipe it and free it. */
static void
vault_cache_remove(struct vault *v, struct vcache *e)
{
	LIST_REMOVE(e, bucket);
	TAILQ_REMOVE(&v->cache_order, e, order);
	v->ncache--;
	cb_strfree_wipe(e->value);
	cb_wipe(e, sizeof(*e) + e->len + 1);
	free(e);
}

/* Drop the entries that have expired: they are at the front. */
static void
vault_cache_expire(struct vault *v)
{
	struct vcache	*e;
	uint64_t	 now = uv_now(v->loop);

	while ((e = TAILQ_FIRST(&v->cache_order)) != NULL && e->expires <= now)
		vault_cache_remove(v, e);
}

/* The live entry of relpath, or NULL. */
struct vcache *
vault_cache_find(struct vault *v, const char *relpath)
{
	struct vcache	*e;
	size_t		 len = strlen(relpath);

	vault_cache_expire(v);
	if (v->cache == NULL)
		return NULL;
	LIST_FOREACH(e, vault_cache_bucket(v, relpath, len), bucket)
		if (e->len == len && memcmp(e->relpath, relpath, len) == 0)
			return e;
	return NULL;
}

/* Forget everything; the table goes too. */
void
vault_cache_flush(struct vault *v)
{
	struct vcache	*e;

	v->cache_epoch++;
	while ((e = TAILQ_FIRST(&v->cache_order)) != NULL)
		vault_cache_remove(v, e);
	free(v->cache);
	v->cache = NULL;
}

/* relpath is about to change, or has: forget it. */
void
vault_cache_drop(struct vault *v, const char *relpath)
{
	struct vcache	*e;

	v->cache_epoch++;
	if ((e = vault_cache_find(v, relpath)) != NULL)
		vault_cache_remove(v, e);
}

/* Forget everything under the folder prefix. */
void
vault_cache_drop_folder(struct vault *v, const char *prefix)
{
	struct vcache	*e, *next;
	size_t		 n = strlen(prefix);

	v->cache_epoch++;
	for (e = TAILQ_FIRST(&v->cache_order); e != NULL; e = next) {
		next = TAILQ_NEXT(e, order);
		if (e->len >= n && memcmp(e->relpath, prefix, n) == 0)
			vault_cache_remove(v, e);
	}
}

/*
 * Keep the answer (rc 0 with value, or -CB_ENOTFOUND) to a read of op's
 * path, unless the cache is off or something was dropped since the read
 * started: then the answer may predate a change.  Out of memory is not an
 * error here, the answer is just not kept.
 */
void
vault_cache_put(struct vault *v, const struct vop *op, int rc,
    const char *value, const struct vault_meta *meta)
{
	struct vcache	*e;
	size_t		 len = strlen(op->relpath);

	if (v->conf.cache_seconds == 0 || op->cache_epoch != v->cache_epoch ||
	    (rc != 0 && rc != -CB_ENOTFOUND) || (rc == 0 && value == NULL))
		return;
	if ((e = vault_cache_find(v, op->relpath)) != NULL)
		vault_cache_remove(v, e);
	if (v->ncache >= VAULT_CACHE_ENTRIES)
		vault_cache_remove(v, TAILQ_FIRST(&v->cache_order));
	if (v->cache == NULL && (v->cache = calloc(VAULT_CACHE_BUCKETS,
	    sizeof(*v->cache))) == NULL)
		return;
	if ((e = calloc(1, sizeof(*e) + len + 1)) == NULL)
		return;
	if (rc == 0 && (e->value = strdup(value)) == NULL) {
		free(e);
		return;
	}
	memcpy(e->relpath, op->relpath, len + 1);
	e->len = len;
	e->rc = rc;
	e->meta = *meta;
	e->expires = uv_now(v->loop) + (uint64_t)v->conf.cache_seconds * 1000;
	LIST_INSERT_HEAD(vault_cache_bucket(v, e->relpath, len), e, bucket);
	TAILQ_INSERT_TAIL(&v->cache_order, e, order);
	v->ncache++;
}

static void
vault_hit_free(struct vhit *h)
{
	cb_strfree_wipe(h->value);
	cb_wipe(h, sizeof(*h));
	free(h);
}

/*
 * Timer: deliver the hits queued so far.  They are taken off the vault
 * first, and v is not looked at after a callback, which may start calls
 * (their hits wait for the next round) or even close v.
 */
static void
vault_hits_run(uv_timer_t *t)
{
	struct vault	*v = t->data;
	struct vhitq	 q;
	struct vhit	*h;
	struct cb_error	 err;

	TAILQ_INIT(&q);
	TAILQ_CONCAT(&q, &v->hits, entry);
	while ((h = TAILQ_FIRST(&q)) != NULL) {
		TAILQ_REMOVE(&q, h, entry);
		cb_error_clear(&err);
		h->fn(h->arg, h->rc, h->value, &h->meta, &err);
		vault_hit_free(h);
	}
}

/* Answer a read from the cache entry e, from the loop. */
int
vault_hit(struct vault *v, const struct vcache *e, vault_read_fn done,
    void *arg, struct cb_error *err)
{
	struct vhit	*h;

	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (e->value != NULL && (h->value = strdup(e->value)) == NULL)) {
		free(h);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	h->fn = done;
	h->arg = arg;
	h->rc = e->rc;
	h->meta = e->meta;
	TAILQ_INSERT_TAIL(&v->hits, h, entry);
	if (!uv_is_active((uv_handle_t *)v->hit_timer))
		uv_timer_start(v->hit_timer, vault_hits_run, 0, 0);
	return 0;
}

/* Fail the hits not yet delivered, as vault_fail_all() does calls. */
void
vault_hits_fail(struct vault *v, int code, const char *msg)
{
	struct cb_error	 err;
	struct vhit	*h;

	cb_error_set(&err, code, "%s", msg);
	uv_timer_stop(v->hit_timer);
	while ((h = TAILQ_FIRST(&v->hits)) != NULL) {
		TAILQ_REMOVE(&v->hits, h, entry);
		h->fn(h->arg, -code, NULL, &vault_nometa, &err);
		vault_hit_free(h);
	}
}
