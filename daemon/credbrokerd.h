/*
 * credbrokerd: the daemon's central header.  One prototype section per
 * source file, in the order a request travels: configuration and access
 * (conf.c, access.c), the listener (server.c, with the configuration
 * reload in main.c), the connections (conn.c), dispatch (rpc.c), and the
 * method families (rpc-*.c).
 */
#ifndef CREDBROKERD_H
#define CREDBROKERD_H

#include <sys/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <openssl/types.h>
#include <uv.h>

#include "cb_error.h"
#include "proto.h"
#include "sealctx.h"
#include "secbuf.h"
#include "store.h"
#include "writer.h"

struct audit;
struct dbwrite;
struct pgstore;
struct fleet;
struct pg;
struct pg_status;
struct writer;
struct writer_stats;
struct http;
struct rotation;
struct seal_key;
struct values;
struct vault;
struct vault_conf;

/* conf.c */

enum grant_kind { GRANT_UID, GRANT_GID };

struct grant {
	int		 kind;		/* enum grant_kind */
	uint32_t	 id;
	unsigned	 perms;		/* CB_PERM_BIT mask */
	char		*text;		/* as written, for messages */
};

struct conf {
	char		*path;		/* the file, NULL if none */

	char		*socket;
	unsigned	 socket_mode;
	size_t		 max_message;
	size_t		 max_reply;	/* substituted request */
	size_t		 max_message_noperm;	/* caller without permission */
	unsigned	 max_connections;
	unsigned	 max_connections_per_uid;
	unsigned	 reserved_connections;	/* for root and edit:* holders */
	unsigned	 max_inflight;
	unsigned	 idle_timeout;		/* seconds, 0 = none */
	unsigned	 message_timeout;	/* seconds for a whole message */
	unsigned	 shutdown_timeout;	/* seconds */

	int		 substitute_syntax;	/* enum tpl_syntax */

	bool		 request_enabled;	/* the request method */
	unsigned	 request_timeout;	/* seconds, whole request */
	unsigned	 request_connect_timeout;	/* seconds */
	size_t		 request_max_response;	/* bytes */
	unsigned	 request_max_inflight;	/* in all */
	unsigned	 request_max_inflight_caller;	/* per uid */
	unsigned	 request_max_redirects;
	char		*request_ca_file;	/* NULL: the system store */

	int		 backend;		/* enum conf_backend */
	char		*pg_conninfo;		/* storage.postgresql */
	char		*pg_password_file;
	char		*pg_password_credential;
	unsigned	 pg_timeout;		/* seconds */
	char		*database;
	unsigned	 page_cache_mb;		/* SQLite page cache */
	unsigned	 mmap_mb;		/* SQLite memory map, 0 = none */

	unsigned	 vault_max_connections;	/* TCP connections to Vault */
	unsigned	 vault_max_pending;	/* requests to Vault at once */

	char		*secret_key_file;
	char		*secret_key_credential;
	char		*legacy_key_file;	/* opens GCM: on import only */
	char		*next_key_file;		/* the next rotation's key */
	struct secbuf	 secret_key;		/* inline: secbuf_str, or NULL */

	struct grant	*grants;
	size_t		 ngrants;

	int		 log_level;

	char		*audit_file;		/* NULL: stderr only */
	bool		 audit_sync;		/* fdatasync each line */
};

enum conf_backend {
	CONF_BACKEND_SQLITE = 0,
	CONF_BACKEND_POSTGRESQL = 1
};

/* Defaults, then the file (may be NULL), then -o overrides in order. */
int	 conf_load(struct conf *c, const char *path, char *const *overrides,
	    size_t noverrides, struct cb_error *err);
void	 conf_free(struct conf *c);
/* Parse "PRINCIPAL PERM[,PERM...]" into g. */
int	 conf_parse_grant(const char *text, struct grant *g,
	    struct cb_error *err);

/* access.c */

struct peer {
	uid_t		 uid;
	gid_t		 gid;
	pid_t		 pid;
	gid_t		*groups;	/* supplementary, from SO_PEERGROUPS */
	int		 ngroups;
};

/* Read the kernel's view of the peer on fd. */
int	 access_peer_get(int fd, struct peer *p, struct cb_error *err);
void	 access_peer_free(struct peer *p);
/* Union of the permissions that grants give this peer. */
unsigned access_perms(const struct grant *grants, size_t n,
	    const struct peer *p);

/* server.c */

struct broker {
	uv_loop_t	*loop;
	struct conf	*conf;
	char		*conf_path;
	char *const	*overrides;
	size_t		 noverrides;
	struct store	*store;
	struct seal_key	*key;		/* the key in use */
	struct seal_key	*key_next;	/* during a rotation: the new key */
	struct seal_key	*key_legacy;	/* opens GCM: on import, or NULL */
	struct seal_key	*key_staged;	/* security.next_key_file, or NULL */
	struct rotation	*rot;		/* keys.c, rotate.c */
	bool		 rot_starting;	/* a fleet's key.rotate between steps */
	struct http	*http;		/* Vault's HTTP client */
	struct http	*http_out;	/* request's, made on first use */
	struct vault	*vault;
	struct values	*values[STORE_KINDS];	/* backends.c */
	struct pgstore	*pgs;		/* storage.backend postgresql */
	/*
	 * Another broker saved the key state (pgstore.c reports it, the
	 * rotation follows it: keys_changed).
	 */
	void		(*keys_changed)(struct broker *);
	struct fleet	*fleet;		/* fleet.c, on postgresql */
	struct audit	*audit;		/* NULL without [audit] file */
	uint64_t	 started_ms;	/* uv_now at start */
	time_t		 started;
	unsigned	 nconns;
	bool		 stopping;
	int		 exit_status;
};

/*
 * Before anything else is touched: the socket's directory exists and can
 * be used, and no broker listens on the socket (not when only checking).
 */
int	 server_check_socket(const struct conf *conf, bool check_only,
	    struct cb_error *err);
int	 server_start(struct broker *b, struct cb_error *err);
/* Stop accepting, drain, and close every handle. */
void	 server_shutdown(struct broker *b);

/* main.c */
/* Re-read the configuration (SIGHUP, from server.c). */
void	 main_reload(struct broker *b);

/* conn.c: what server.c uses of a connection is in conn.h. */

/* rpc.c */

/*
 * Where the answers to a caller's requests go: conn.c fills one in for
 * each connection; a test or the fuzz target fills in its own.  ctx is
 * the sink's (a connection), passed back to every operation.
 */
struct rpc_sink_ops {
	/* Queue bytes for writing; takes ownership of buf (wiped after). */
	void	 (*write)(void *ctx, struct secbuf *buf);
	/* Close after pending writes and waiting calls. */
	void	 (*close)(void *ctx);
	/* A waiting call holds the sink (and counts as in flight). */
	void	 (*ref)(void *ctx);
	void	 (*unref)(void *ctx);
	/* Whether it has gone (a late reply is then wiped and dropped). */
	bool	 (*is_closed)(const void *ctx);
	/* The caller; valid while the sink is held. */
	const struct peer *(*peer)(const void *ctx);
	/* A call that handled a secret ended: wipe the stack soon. */
	void	 (*scrub)(void *ctx);
	/*
	 * A notification arrived: whether it is the first on this sink
	 * (only that one is logged).  Optional: without it, each is.
	 */
	bool	 (*notified)(void *ctx);
	/*
	 * A call's write is in flight (on) or answered (off): the requests
	 * after it wait until it is answered (rpc_write).  Optional.
	 */
	void	 (*hold)(void *ctx, bool on);
};

struct rpc_sink {
	const struct rpc_sink_ops *ops;
	void			*ctx;
};

struct rpc_call {
	struct broker	*broker;
	struct rpc_sink	 sink;		/* where the answer goes */
	const struct peer *peer;	/* the caller */
	int		 method;	/* enum cb_method */
	uint32_t	 msgid;
	unsigned	 perms;
	uint64_t	 start_ms;
	uint64_t	 start_ns;	/* uv_hrtime, for the latency figures */
	struct secbuf	 req;		/* the request's bytes, the call's own */
	msgpack_unpacked up;		/* unpacked from req */
	struct secbuf	 reply;
	msgpack_packer	 pk;		/* writes into reply */
	char		 audit_subject[40];	/* user the call is about */
	char		 audit_types[256];	/* type idents, comma-separated */
	char		 audit_keys[256];	/* class/ident/version, ... */
	char		 audit_sources[512];	/* ident/source/account, ... */
	bool		 audit_dry_run;		/* a substitute dry run */
	char		 audit_origins[512];	/* request: origins contacted */
	int		 audit_status;		/* request: HTTP status, 0 none */
	bool		 held;			/* rpc_write holds the sink */
};

/*
 * A handler packs exactly one result object into call->pk and returns 0,
 * or returns a negative CB_E* code with err filled, or returns RPC_WAIT
 * after arranging for rpc_finish() to be called later (the call then holds
 * its sink until it finishes).  params, and every object and byte under
 * it, belong to the call: they stay valid until rpc_finish(), which wipes
 * the request's bytes.
 */
#define RPC_WAIT	1
typedef int (*rpc_handler)(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err);

/*
 * Finish a call that returned RPC_WAIT: rc 0 sends what the handler packed
 * into call->pk, a negative rc sends err.  Frees call.
 */
void	 rpc_finish(struct rpc_call *call, int rc, const struct cb_error *err);
/*
 * Handle one whole message from the caller behind sink.  Takes the bytes
 * of msg (left empty): a call made from them owns them until it ends, and
 * they are wiped then, or at once when no call is made.
 */
void	 rpc_dispatch(struct broker *b, const struct rpc_sink *sink,
	    struct secbuf *msg);
/* Free the calls kept for reuse (at shutdown, the loop closed). */
void	 rpc_release_kept(void);
/*
 * Submit the call's write (dbwrite_submit), whose done() finishes the
 * call.  Until then the caller's later requests wait, unread: a client
 * that pipelines a write and a call that reads what it wrote (a type
 * and a value of it) is answered as when writes were made at once.
 */
int	 rpc_write(struct rpc_call *call, struct dbwrite *w,
	    struct cb_error *err);
/* Record a type ident (or ref) and the subject for the audit line. */
void	 rpc_audit(struct rpc_call *call, const char *type, const char *user);
/*
 * Record where a type's value came from for the audit line (SPEC 10):
 * source "own", "linked" or "default", account NULL for "own".
 */
void	 rpc_audit_source(struct rpc_call *call, const char *ident,
	    const char *source, const char *account);
/*
 * Record an origin a request contacted (normal form) for the audit line,
 * once however many hops went there.
 */
void	 rpc_audit_origin(struct rpc_call *call, const char *origin);
/* RFC 3339 UTC text of a unix time into buf (at least 32 bytes). */
const char *rpc_time(int64_t t, char buf[32]);
/* Pack key then RFC 3339 time (nil when t is 0). */
void	 rpc_pack_kv_time(msgpack_packer *pk, const char *k, int64_t t);

/* audit.c */

#define AUDIT_HASH_HEX	64	/* lowercase hex SHA-256 of a line */
#define AUDIT_LINE_MAX	4096	/* bytes in one line, without newline */

/* One audit record; the strings are broker-controlled or sanitised. */
struct audit_rec {
	int64_t		 time_ms;	/* unix time in milliseconds */
	const char	*method;
	uint32_t	 uid;
	int32_t		 pid;
	const char	*subject;	/* NULL or "": none */
	const char	*types;		/* idents, comma-separated, maybe "" */
	const char	*keys;		/* class/ident/version, comma-separated */
	const char	*sources;	/* ident/source/account, ... */
	bool		 dry_run;	/* "dry_run":true, else no field */
	const char	*origins;	/* request: origins contacted, or "" */
	int		 status;	/* request: HTTP status, 0: no field */
	const char	*outcome;	/* "ok" or an error code */
	uint64_t	 ms;		/* duration of the call */
};

/*
 * Open the audit file (O_APPEND, created 0600, flock'd) and continue the
 * chain from its last line; a partial or unparsable last line is refused.
 * check_only (--check-config): read-only, unlocked, a missing file is
 * fine.
 */
int	 audit_open(const char *path, bool sync, bool check_only,
	    struct audit **out, struct cb_error *err);
void	 audit_close(struct audit *a);
/* Append one line for r: one write(2), then fdatasync when sync. */
int	 audit_append(struct audit *a, const struct audit_rec *r,
	    struct cb_error *err);
/* The line of a finished call (rpc.c); a failure is logged and counted. */
void	 audit_write(struct broker *b, const struct rpc_call *call,
	    const struct peer *peer, const char *outcome);
/* seq and hash of the last line (0 and zeros when none), failures. */
void	 audit_head(const struct audit *a, uint64_t *seq,
	    char hash[AUDIT_HASH_HEX + 1], uint64_t *failures);

/* rpc-misc.c */
int	 rpc_hello(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_health(struct rpc_call *, const msgpack_object *, struct cb_error *);

/* rpc-stats.c */

/*
 * A latency histogram with log-linear buckets: values (microseconds)
 * below 2 * RPC_STATS_SUB are exact; above, each power of two is cut into
 * RPC_STATS_SUB buckets, so a bucket is at most 1/RPC_STATS_SUB (6.25%)
 * of its values wide.  Values from 2^RPC_STATS_MAX_BITS up share the top
 * bucket.  Fixed size: recording is O(1) and never allocates.
 */
#define RPC_STATS_SUB_BITS	4
#define RPC_STATS_SUB		(1u << RPC_STATS_SUB_BITS)
#define RPC_STATS_MAX_BITS	40	/* 2^40 us: about 12.7 days */
#define RPC_STATS_BUCKETS	\
	((RPC_STATS_MAX_BITS - RPC_STATS_SUB_BITS + 1) * RPC_STATS_SUB)

struct rpc_stats_hist {
	uint64_t	 count;
	uint64_t	 max;		/* largest value recorded, exact */
	uint64_t	 bucket[RPC_STATS_BUCKETS];
};

void	 rpc_stats_hist_add(struct rpc_stats_hist *h, uint64_t v);
/*
 * The value at quantile per100k / 100000 (50000: the median): the upper
 * bound of the bucket that holds it, but never more than the maximum;
 * 0 when h is empty.
 */
uint64_t rpc_stats_hist_value(const struct rpc_stats_hist *h,
	    unsigned per100k);
/* A call was answered: its method, 0 or its error code, microseconds. */
void	 rpc_stats_call(int method, int code, uint64_t us);
/* A request refused before a call existed (envelope, unknown method). */
void	 rpc_stats_refused(int code);
/* A connection was accepted (peer identified) or refused at once. */
void	 rpc_stats_conn(bool accepted);
/* A notification was received (and ignored). */
void	 rpc_stats_notification(void);
int	 rpc_stats(struct rpc_call *, const msgpack_object *, struct cb_error *);

/* rpc-type.c */
int	 rpc_type_create(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_type_get(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_type_list(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_type_update(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_type_delete(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_type_clear(struct rpc_call *, const msgpack_object *, struct cb_error *);

/* rpc-cred.c */
int	 rpc_cred_set(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_cred_import(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_cred_status(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_cred_list(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_cred_delete(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_cred_link(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_cred_unlink(struct rpc_call *, const msgpack_object *, struct cb_error *);
/*
 * Where a user without an own value of type t gets one (SPEC 10): the
 * user's link, else the type's default account.  Sets *source to
 * CRED_SOURCE_LINKED or CRED_SOURCE_DEFAULT and account to the name,
 * once its sealed text has been opened and names the same account (a
 * mismatch is an internal error, logged as tampering); -CB_ENOTFOUND
 * when the user has no link and the type no default.
 */
enum cred_source {
	CRED_SOURCE_NONE = 0,
	CRED_SOURCE_OWN,
	CRED_SOURCE_LINKED,
	CRED_SOURCE_DEFAULT
};
const char *rpc_cred_source_name(int source);	/* NULL for none */
int	 rpc_cred_bound(struct broker *b, const struct store_type *t,
	    const char *user, int *source, char account[STORE_IDENT_MAX + 1],
	    struct cb_error *err);

/* rpc-vault.c */
int	 rpc_vault_get(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_vault_set(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_vault_test(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_vault_adopt(struct rpc_call *, const msgpack_object *, struct cb_error *);
/* The stored Vault settings; *found false when there are none. */
int	 rpc_vault_load(struct broker *b, struct vault_conf *c, bool *found,
	    struct cb_error *err);

/* keys-seal.c */
/* Seal with the newest key; open with the key the text names. */
int	 keys_seal(struct broker *b, const char *context, const uint8_t *pt,
	    size_t n, char **out, struct cb_error *err);
int	 keys_open(struct broker *b, const char *context, const char *text,
	    struct secbuf *out, struct cb_error *err);
/*
 * Version named by sealed text (seal.c's parser): 0 for the legacy GCM:
 * format and for a malformed version, which no key opens.
 */
uint32_t keys_text_version(const char *text);
/*
 * Open a value sealed by the platform being moved from (GCM: text only)
 * with the key in use, the new key of a rotation, or the legacy key
 * (security.legacy_key_file), in that order.  *legacy tells whether the
 * legacy key opened it.  Failure says only that no key opens the value.
 */
int	 keys_open_import(struct broker *b, const char *text,
	    struct secbuf *out, bool *legacy, struct cb_error *err);

/* keys.c */
/* Read the key version and any rotation state from the store. */
int	 keys_load_state(struct broker *b, uint32_t *version,
	    struct cb_error *err);
/* The key file a finished rotation moved to, or NULL. */
const char *keys_rotated_to(const struct broker *b);
/* Load the new key of an interrupted rotation. */
int	 keys_resume(struct broker *b, struct cb_error *err);
/*
 * The key of security.next_key_file changed (reload): published, and
 * taken as the new key of a running rotation when it is that key.
 */
void	 keys_staged_changed(struct broker *b);
/*
 * The "key" setting or the key check value changed in the store (another
 * broker of the fleet): follow a rotation started elsewhere, switch to
 * the new key once it is done.
 */
void	 keys_changed(struct broker *b);
/* Free the rotation's state and the new key (after the loop). */
void	 keys_free(struct broker *b);

/* rotate.c */
/* Schedule the rotation's work on the loop (if one is running). */
void	 keys_start(struct broker *b);
/* Close the rotation's timer (shutdown). */
void	 keys_close(struct broker *b);

/* rpc-key.c */
int	 rpc_key_status(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_key_rotate(struct rpc_call *, const msgpack_object *, struct cb_error *);

/*
 * rpc-vault.c: the stored Vault settings with their secrets sealed again
 * under the newest key (*text NULL when none are stored; free it with
 * vault_json_release), and the write of such a text, on the writer's
 * connection.
 */
int	 rpc_vault_reseal(struct broker *b, char **text,
	    struct cb_error *err);
int	 rpc_vault_setting_write(struct store *wst, const char *text,
	    struct cb_error *err);

/* backends.c */
/* One values backend per storage kind (b->values); close them all. */
int	 backends_open(struct broker *b, struct cb_error *err);
void	 backends_close(struct broker *b);
/* The backend holding the values of type t. */
struct values *values_for(const struct broker *b,
	    const struct store_type *t);
/*
 * A write of the broker's own (types, links, defaults, settings, keys,
 * key rotation's steps: what the values backends do not write), committed
 * by the store's writer thread (storage/writer.h) in its group commits,
 * as the values' writes are: the loop's connection never writes after
 * start-up.  run() makes the write on the writer's connection, on its
 * thread, inside the job's savepoint: it uses the job's own copies and
 * nothing of the loop's (no broker, no call, no key).  done() is called
 * on the loop once the write is durable, or has failed; before it, the
 * loop's type cache reads type_uuid again (when set), or is dropped
 * (types).  Whatever holds the job lives until done().
 */
struct dbwrite {
	struct writer_job	 wj;
	struct broker		*b;
	int	(*run)(struct dbwrite *, struct store *, struct cb_error *);
	void	(*done)(struct dbwrite *, int, const struct cb_error *);
	char			 type_uuid[STORE_UUID_LEN + 1];
	bool			 types;
};
/* 0: done() is called later; or an error, and done() never is. */
int	 dbwrite_submit(struct broker *b, struct dbwrite *w,
	    struct cb_error *err);

/* The counters of the writer thread (rpc-stats). */
void	 backends_writer_stats(const struct broker *b,
	    struct writer_stats *out);

/*
 * pgstore.c: the PostgreSQL store (storage.backend = postgresql).
 * Start-up opens the mirror (pgstore_mirror_path) as the store, calls
 * pgstore_prepare (the password, the schema), then pgstore_begin (the
 * mirror read, recording on), makes its own writes, and calls
 * pgstore_prepared (replayed and committed on PostgreSQL; conflict when
 * another broker wrote the same rows first: begin again).  pgstore_open on the loop starts serving:
 * the values backend of db-stored types, the writer with its replay,
 * the notifications; pgstore_serve once the loop serves.  pgstore_close
 * at shutdown, after backends_close.
 */
char	*pgstore_mirror_path(const struct conf *c);
int	 pgstore_prepare(struct broker *b, struct cb_error *err);
/* Read the mirror from PostgreSQL and record start-up's writes. */
int	 pgstore_begin(struct broker *b, struct cb_error *err);
int	 pgstore_prepared(struct broker *b, struct cb_error *err);
int	 pgstore_open(struct broker *b, struct cb_error *err);
/*
 * The loop serves (after the fork of a detached broker): the writer's
 * thread may start, and the mirror is read again if notifications were
 * missed until now.
 */
void	 pgstore_serve(struct broker *b);
struct writer *pgstore_writer(const struct broker *b);
/*
 * Read the whole mirror again from PostgreSQL, on the writer (after every
 * write submitted before); then(b, rc, err, arg) on the loop once done.
 */
typedef void (*pgstore_reload_fn)(struct broker *b, int rc,
    const struct cb_error *err, void *arg);
int	 pgstore_reload(struct broker *b, pgstore_reload_fn then, void *arg,
	    struct cb_error *err);
/*
 * How many values (users' and accounts') a type has on PostgreSQL, or
 * every type when type_uuid is NULL: fn is called later, on the loop, or
 * an error now.
 */
typedef void (*pgstore_count_fn)(void *arg, int rc, int64_t n,
    const struct cb_error *err);
int	 pgstore_count_values(struct broker *b, const char *type_uuid,
	    pgstore_count_fn fn, void *arg, struct cb_error *err);
/* The loop's connection (NULL when closed). */
struct pg *pgstore_pg(const struct broker *b);
/* The loop connection's health (zeroed when closed). */
void	 pgstore_status(const struct broker *b, struct pg_status *s);
void	 pgstore_close(struct broker *b);

/* rpc-substitute.c */
int	 rpc_substitute(struct rpc_call *, const msgpack_object *, struct cb_error *);

/* rpc-request.c */
int	 rpc_request(struct rpc_call *, const msgpack_object *, struct cb_error *);
/*
 * The caller behind sink ctx has gone: end its requests now, cancelling
 * their transfers (conn.c).
 */
void	 rpc_request_sink_closed(void *ctx);
/* Requests in flight. */
unsigned rpc_request_count(void);

/*
 * fleet.c: the brokers sharing a PostgreSQL store (SPEC 12): this
 * broker's row in brokers, its heartbeat on the loop's connection, and
 * the other brokers' rows as the last heartbeat read them.  A broker is
 * live while its heartbeat is less than FLEET_LIVE_S seconds old.
 */
#define FLEET_HEARTBEAT_MS	2000
#define FLEET_LIVE_S		10
int	 fleet_open(struct broker *b, struct pg *pg, struct cb_error *err);
/* Renew the heartbeat now (the keys held changed). */
void	 fleet_publish(struct broker *b);
/*
 * Renew the heartbeat and read the other brokers again; then(b, rc, arg)
 * runs on the loop once done (rc 0) or failed.
 */
int	 fleet_refresh(struct broker *b, void (*then)(struct broker *, int,
	    void *), void *arg, struct cb_error *err);
/*
 * Clean shutdown: delete the row.  True when then(b) will be called once
 * it is done; false when there is nothing to do (fleet closed already).
 */
bool	 fleet_leave(struct broker *b, void (*then)(struct broker *));
void	 fleet_close(struct broker *b);
/* Is the i-th other broker live? */
bool	 fleet_live(const struct broker *b, size_t i);
/*
 * The live other brokers that do not hold the key with check value kcv
 * ("host (pid N), ..." into buf), or that do not seal with version
 * sealing (when not 0): their number.
 */
int	 fleet_lacking(const struct broker *b, const char *kcv, int sealing,
	    char *buf, size_t sz);
/* health's and key.status's lists and the database's state. */
void	 fleet_pack_brokers(msgpack_packer *pk, const struct broker *b,
	    bool self, bool live_only);
void	 fleet_pack_database(msgpack_packer *pk, const struct broker *b,
	    const struct pg_status *s);

/* rpc-keypair.c */
int	 rpc_keypair_generate(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_keypair_import(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_keypair_get(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_keypair_list(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_keypair_delete(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_peerkey_set(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_peerkey_get(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_peerkey_list(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_peerkey_delete(struct rpc_call *, const msgpack_object *, struct cb_error *);
/*
 * Open a stored key for one call (keyclass STORE_KEYPAIR: the private
 * key; STORE_PEERKEY: the public key); version 0 is the current one, *got
 * the version opened.  The caller frees *out with EVP_PKEY_free.
 */
int	 rpc_key_load(struct broker *b, int keyclass, const char *ident,
	    uint32_t version, uint32_t *got, EVP_PKEY **out,
	    struct cb_error *err);
/*
 * A required parameter naming a key pair or peer key (key: the
 * parameter's name), with the narrow ident grammar; *out malloc'd.
 */
int	 rpc_key_ident(const msgpack_object *params, const char *key,
	    char **out, struct cb_error *err);
/* An optional (or required) key version parameter; 0 when absent. */
int	 rpc_key_version(const msgpack_object *params, const char *key,
	    bool required, uint32_t *out, struct cb_error *err);
/* Key generations running on the thread pool now. */
unsigned rpc_keygen_count(void);
/* Name a key and version in the call's audit line (version 0: current). */
void	 rpc_audit_key(struct rpc_call *call, int keyclass, const char *ident,
	    uint32_t version);

/* rpc-token.c */
int	 rpc_token_partner(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_token_embed(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_token_sso(struct rpc_call *, const msgpack_object *, struct cb_error *);
int	 rpc_token_verify(struct rpc_call *, const msgpack_object *, struct cb_error *);

#endif
