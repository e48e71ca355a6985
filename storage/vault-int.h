/*
 * vault-int: the Vault client's internals, shared by vault.c (the client),
 * vault-cache.c (the read cache) and vault-test.c (vault.test).  Not for
 * the rest of the broker, which uses vault.h.
 */
#ifndef CB_VAULT_INT_H
#define CB_VAULT_INT_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "http.h"
#include "secbuf.h"
#include "vault.h"

#define VAULT_BACKOFF_MIN	500		/* ms */
#define VAULT_BACKOFF_MAX	60000		/* ms */
#define VAULT_CACHE_ENTRIES	65536		/* then the oldest goes */
#define VAULT_CACHE_BUCKETS	16384		/* a power of two */

enum vault_state { VS_IDLE, VS_LOGIN, VS_READY, VS_BACKOFF };
enum vop_kind { VOP_READ, VOP_WRITE, VOP_DESTROY, VOP_LIST };

struct vwaiter {
	vault_read_fn		 fn;
	void			*arg;
	struct vwaiter		*next;
};

struct vop {
	TAILQ_ENTRY(vop)	 entry;
	struct vault		*v;
	int			 kind;
	char			*relpath;
	char			*sealed;	/* write */
	bool			 retried;
	bool			 inflight;
	bool			 slot;		/* counted in v->nslots */
	bool			 nojoin;	/* read: older than a write */
	bool			 meta_done;	/* write: max_versions is set */
	uint64_t		 cache_epoch;	/* read: v->cache_epoch then */
	uint64_t		 token_gen;	/* the token it was sent with */
	int64_t			 cas;		/* write: check-and-set, or -1 */
	struct http_req		*req;
	uint64_t		 gen;
	vault_done_fn		 done;
	vault_list_fn		 list_done;
	struct vwaiter		*readers;	/* read: coalesced callers */
	void			*arg;
};
TAILQ_HEAD(vopq, vop);

/* A cached read answer: sealed text or "not set", never plaintext. */
struct vcache {
	TAILQ_ENTRY(vcache)	 order;		/* oldest first */
	LIST_ENTRY(vcache)	 bucket;
	uint64_t		 expires;	/* loop ms */
	int			 rc;		/* 0 or -CB_ENOTFOUND */
	struct vault_meta	 meta;
	char			*value;		/* NULL when not set */
	size_t			 len;		/* of relpath */
	char			 relpath[];
};
TAILQ_HEAD(vcacheq, vcache);
LIST_HEAD(vcachebucket, vcache);

/* A cache hit waiting for the loop to deliver it. */
struct vhit {
	TAILQ_ENTRY(vhit)	 entry;
	vault_read_fn		 fn;
	void			*arg;
	int			 rc;
	struct vault_meta	 meta;
	char			*value;		/* a copy; NULL when not set */
};
TAILQ_HEAD(vhitq, vhit);

struct vault {
	uv_loop_t		*loop;
	struct http		*http;
	struct vault_conf	 conf;
	bool			 configured;
	uint64_t		 gen;
	int			 state;
	struct secbuf		 token;		/* NUL-terminated */
	bool			 renewable;
	int64_t			 lease;		/* seconds, last granted */
	uint64_t		 expiry;	/* loop ms */
	unsigned		 backoff;	/* ms of the next backoff */
	uv_timer_t		*timer;
	struct http_req		*auth_req;
	struct vopq		 ops;		/* waiting and in flight */
	uint64_t		 logins;
	uint64_t		 renewals;
	uint64_t		 token_gen;	/* bumped by every new token */
	struct vault_stats	 stats;		/* counters (vault_get_stats) */
	unsigned		 max_pending;	/* requests at once; 0: no cap */
	unsigned		 nslots;	/* operations holding a slot */
	bool			 pumping;	/* vault_pump() is running */
	bool			 resetting;	/* vault_reset() is failing ops */
	bool			 closing;	/* vault_close() has begun */
	int			 nhandles;	/* timers not yet closed */
	struct vcachebucket	*cache;		/* buckets; NULL when empty */
	struct vcacheq		 cache_order;
	size_t			 ncache;
	uint64_t		 cache_epoch;	/* bumped by every drop */
	uint8_t			 cache_key[16];	/* SipHash key */
	struct vhitq		 hits;		/* to deliver */
	uv_timer_t		*hit_timer;	/* 0 ms: delivers hits */
	char			 last_error[256];
	/* vault.test: called when a login attempt ends. */
	void			(*login_hook)(void *, bool, const char *);
	void			*login_hook_arg;
};

/* vault.c */
/* No metadata: what a failed read answers with. */
extern const struct vault_meta vault_nometa;
/* Stop the token machinery and fail everything with code/msg. */
void	 vault_reset(struct vault *v, int code, const char *msg);

/* vault-cache.c */
/* The live entry of relpath, or NULL. */
struct vcache *vault_cache_find(struct vault *v, const char *relpath);
/* Forget everything; the table goes too. */
void	 vault_cache_flush(struct vault *v);
/* relpath is about to change, or has: forget it. */
void	 vault_cache_drop(struct vault *v, const char *relpath);
/* Forget everything under the folder prefix. */
void	 vault_cache_drop_folder(struct vault *v, const char *prefix);
/* Keep the answer to a read of op's path, when it may be kept. */
void	 vault_cache_put(struct vault *v, const struct vop *op, int rc,
	    const char *value, const struct vault_meta *meta);
/* Answer a read from the cache entry e, from the loop. */
int	 vault_hit(struct vault *v, const struct vcache *e, vault_read_fn done,
	    void *arg, struct cb_error *err);
/* Fail the hits not yet delivered, as vault_fail_all() does calls. */
void	 vault_hits_fail(struct vault *v, int code, const char *msg);

#endif
