/*
 * rpc-stats: the stats method (SPEC section 6) and the counters behind
 * it: calls per method and outcome, latency percentiles per method,
 * requests refused before a call existed, connections, and the store's
 * and Vault's figures.  Only counts and times are ever reported: never a
 * value, a user or a type ident.
 *
 * Every call is recorded, substitute's included, so recording is a few
 * increments into fixed arrays: no allocation and no lock (only the
 * daemon's loop records them).  The counters live for the process; SIGHUP
 * does not reset them.
 */
#include <stdint.h>
#include <string.h>

#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "store.h"
#include "values.h"
#include "vault.h"
#include "writer.h"

struct rpc_stats {
	uint64_t		 calls[CB_M_COUNT][CB_ERR_MAX];	/* [0]: ok */
	struct rpc_stats_hist	 latency[CB_M_COUNT];
	uint64_t		 refused[CB_ERR_MAX];
	uint64_t		 conns_accepted;
	uint64_t		 conns_refused;
	uint64_t		 notifications;
};

static struct rpc_stats	rpc_stats_all;

/* The quantiles reported, in parts per 100000, and their names. */
static const struct {
	const char	*name;
	unsigned	 per100k;
} rpc_stats_quantiles[] = {
	{ "p50", 50000 },
	{ "p90", 90000 },
	{ "p99", 99000 },
	{ "p99_9", 99900 },
};

/* Bucket of v: exact below 2 * SUB, then SUB buckets per power of two. */
static size_t
rpc_stats_bucket(uint64_t v)
{
	unsigned	e, shift;

	if (v >= (UINT64_C(1) << RPC_STATS_MAX_BITS))
		v = (UINT64_C(1) << RPC_STATS_MAX_BITS) - 1;
	if (v < RPC_STATS_SUB)
		return (size_t)v;
	e = 63 - (unsigned)__builtin_clzll(v);	/* e >= SUB_BITS */
	shift = e - RPC_STATS_SUB_BITS;
	return (size_t)(shift + 1) * RPC_STATS_SUB +
	    (size_t)((v >> shift) - RPC_STATS_SUB);
}

/* The largest value that falls into bucket i. */
static uint64_t
rpc_stats_bucket_top(size_t i)
{
	unsigned	shift;
	uint64_t	low;

	if (i < RPC_STATS_SUB)
		return i;
	shift = (unsigned)(i / RPC_STATS_SUB) - 1;
	low = (uint64_t)(i % RPC_STATS_SUB + RPC_STATS_SUB) << shift;
	return low + (UINT64_C(1) << shift) - 1;
}

void
rpc_stats_hist_add(struct rpc_stats_hist *h, uint64_t v)
{
	h->count++;
	if (v > h->max)
		h->max = v;
	h->bucket[rpc_stats_bucket(v)]++;
}

uint64_t
rpc_stats_hist_value(const struct rpc_stats_hist *h, unsigned per100k)
{
	uint64_t	rank, seen = 0, top;
	size_t		i;

	if (h->count == 0)
		return 0;
	if (per100k > 100000)
		per100k = 100000;
	/* The rank-th smallest value, rank = ceil(count * q), at least 1. */
	rank = (h->count * per100k + 99999) / 100000;
	if (rank == 0)
		rank = 1;
	for (i = 0; i < RPC_STATS_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank)
			break;
	}
	top = i < RPC_STATS_BUCKETS ? rpc_stats_bucket_top(i) : h->max;
	return top < h->max ? top : h->max;
}

void
rpc_stats_call(int method, int code, uint64_t us)
{
	if (method < 0 || method >= CB_M_COUNT)
		return;
	if (code < 0 || code >= CB_ERR_MAX)
		code = CB_EINTERNAL;
	rpc_stats_all.calls[method][code]++;
	rpc_stats_hist_add(&rpc_stats_all.latency[method], us);
}

void
rpc_stats_refused(int code)
{
	if (code <= 0 || code >= CB_ERR_MAX)
		code = CB_EINTERNAL;
	rpc_stats_all.refused[code]++;
}

void
rpc_stats_conn(bool accepted)
{
	if (accepted)
		rpc_stats_all.conns_accepted++;
	else
		rpc_stats_all.conns_refused++;
}

void
rpc_stats_notification(void)
{
	rpc_stats_all.notifications++;
}

/* Pack {ok: n, bad_request: n, ...}: every outcome, zeros included. */
static void
rpc_stats_pack_outcomes(msgpack_packer *pk, const uint64_t *n, bool ok)
{
	int	code;

	msgpack_pack_map(pk, CB_ERR_MAX - (ok ? 0 : 1));
	if (ok)
		proto_pack_kv_int(pk, "ok", (int64_t)n[0]);
	for (code = 1; code < CB_ERR_MAX; code++)
		proto_pack_kv_int(pk, cb_error_name(code), (int64_t)n[code]);
}

/* Pack one entry of "methods". */
static void
rpc_stats_pack_method(msgpack_packer *pk, int m)
{
	const struct rpc_stats_hist *h = &rpc_stats_all.latency[m];
	size_t		 i, nq = sizeof(rpc_stats_quantiles) /
			    sizeof(rpc_stats_quantiles[0]);

	msgpack_pack_map(pk, 4);
	proto_pack_kv_str(pk, "method", cb_methods[m].name);
	proto_pack_kv_int(pk, "calls", (int64_t)h->count);
	proto_pack_cstr(pk, "outcomes");
	rpc_stats_pack_outcomes(pk, rpc_stats_all.calls[m], true);
	proto_pack_cstr(pk, "latency_us");
	msgpack_pack_map(pk, nq + 1);
	for (i = 0; i < nq; i++)
		proto_pack_kv_int(pk, rpc_stats_quantiles[i].name,
		    (int64_t)rpc_stats_hist_value(h,
		    rpc_stats_quantiles[i].per100k));
	proto_pack_kv_int(pk, "max", (int64_t)h->max);
}

/*
 * stats {} -> {uptime, connections, refused, notifications, audit,
 * methods, store, vault}
 * (credbroker-protocol(7) describes every field).  A stats call is
 * counted once it is answered, so a reply never includes itself.
 */
int
rpc_stats(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { NULL };
	msgpack_packer		*pk = &call->pk;
	struct broker		*b = call->broker;
	struct store_stats	 ss;
	struct vault_stats	 vs;
	struct vault_status	 vst;
	struct writer_stats	 ws;
	char			 head[AUDIT_HASH_HEX + 1];
	uint64_t		 seq, failures;
	int			 m, ret;

	if (proto_check_keys(params, keys, err) != 0)
		return -CB_EBADREQ;
	if ((ret = store_get_stats(b->store, &ss, err)) != 0)
		return ret;
	vault_get_stats(b->vault, &vs);
	backends_writer_stats(b, &ws);
	vault_get_status(b->vault, &vst);
	audit_head(b->audit, &seq, head, &failures);

	msgpack_pack_map(pk, 8);
	proto_pack_kv_int(pk, "uptime",
	    (int64_t)((uv_now(b->loop) - b->started_ms) / 1000));
	proto_pack_cstr(pk, "connections");
	msgpack_pack_map(pk, 3);
	proto_pack_kv_int(pk, "open", b->nconns);
	proto_pack_kv_int(pk, "accepted",
	    (int64_t)rpc_stats_all.conns_accepted);
	proto_pack_kv_int(pk, "refused", (int64_t)rpc_stats_all.conns_refused);
	/* Requests answered before a call existed: only errors. */
	proto_pack_cstr(pk, "refused");
	rpc_stats_pack_outcomes(pk, rpc_stats_all.refused, false);
	/* Notifications are never executed: counted, not answered. */
	proto_pack_kv_int(pk, "notifications",
	    (int64_t)rpc_stats_all.notifications);
	/* Audit records that did not make it whole, as in health. */
	proto_pack_cstr(pk, "audit");
	msgpack_pack_map(pk, 2);
	proto_pack_kv_int(pk, "failures", (int64_t)failures);
	proto_pack_kv_int(pk, "log_lines_lost", (int64_t)log_lines_lost());
	proto_pack_cstr(pk, "methods");
	msgpack_pack_array(pk, CB_M_COUNT);
	for (m = 0; m < CB_M_COUNT; m++)
		rpc_stats_pack_method(pk, m);

	proto_pack_cstr(pk, "store");
	msgpack_pack_map(pk, 7);
	proto_pack_kv_str(pk, "backend", b->pgs != NULL ? "postgresql" :
	    "sqlite");
	proto_pack_kv_int(pk, "page_size", ss.page_size);
	proto_pack_kv_int(pk, "pages", ss.pages);
	proto_pack_kv_int(pk, "free_pages", ss.free_pages);
	proto_pack_kv_int(pk, "bytes", ss.page_size * ss.pages);
	proto_pack_kv_int(pk, "types", ss.types);
	/* The writer's group commits (storage/writer.h). */
	proto_pack_cstr(pk, "writer");
	msgpack_pack_map(pk, 7);
	proto_pack_kv_int(pk, "commits", (int64_t)ws.commits);
	proto_pack_kv_int(pk, "committed", (int64_t)ws.committed);
	proto_pack_kv_int(pk, "failed_commits", (int64_t)ws.failed);
	proto_pack_kv_int(pk, "largest_group", (int64_t)ws.largest);
	proto_pack_kv_int(pk, "waiting", (int64_t)ws.waiting);
	proto_pack_kv_int(pk, "waiting_max", (int64_t)ws.waiting_max);
	proto_pack_kv_int(pk, "in_flight", (int64_t)ws.in_flight);

	proto_pack_cstr(pk, "vault");
	msgpack_pack_map(pk, 14);
	proto_pack_kv_bool(pk, "configured", vst.configured);
	proto_pack_kv_bool(pk, "enabled", vst.enabled);
	proto_pack_kv_bool(pk, "authenticated", vst.authenticated);
	proto_pack_kv_int(pk, "logins", (int64_t)vs.logins);
	proto_pack_kv_int(pk, "login_failures", (int64_t)vs.login_failures);
	proto_pack_kv_int(pk, "renewals", (int64_t)vs.renewals);
	proto_pack_kv_int(pk, "renewal_failures",
	    (int64_t)vs.renewal_failures);
	proto_pack_cstr(pk, "operations");
	rpc_stats_pack_outcomes(pk, vs.ops, true);
	proto_pack_kv_int(pk, "in_flight", (int64_t)vs.in_flight);
	proto_pack_kv_int(pk, "waiting", (int64_t)vs.waiting);
	proto_pack_kv_int(pk, "cache_hits", (int64_t)vs.cache_hits);
	proto_pack_kv_int(pk, "cache_misses", (int64_t)vs.cache_misses);
	proto_pack_kv_int(pk, "cache_entries", (int64_t)vs.cache_entries);
	proto_pack_kv_int(pk, "joined", (int64_t)vs.joined);
	return 0;
}
