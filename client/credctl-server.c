/*
 * credctl commands about the broker itself: hello (who is the broker,
 * what may I do), health (store and Vault state, uptime) and stats
 * (calls, latencies, store and Vault figures).
 */
#include <stdio.h>
#include <stdlib.h>

#include "credbroker.h"
#include "credctl.h"
#include "proto.h"

/* credctl hello */
int
credctl_hello(struct credctl *ctx, struct credctl_args *args)
{
	static const char *const order[] = {
		"server", "protocol", "uid", "permissions", NULL
	};
	struct credbroker_reply	*reply;
	const msgpack_object	*res, *proto;
	int			 rc;

	if ((rc = credctl_call(ctx, "hello", NULL, &reply)) != 0)
		return rc;
	res = credbroker_reply_result(reply);
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else
		credctl_print_fields(stdout, res, order, NULL);
	proto = proto_map_get(res, "protocol");
	if (proto != NULL && (proto->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    proto->via.u64 != CREDBROKER_PROTOCOL_VERSION))
		fprintf(stderr, "credctl: warning: the broker does not speak "
		    "protocol %d\n", CREDBROKER_PROTOCOL_VERSION);
	credbroker_reply_free(reply);
	return rc;
}

/* credctl health */
int
credctl_health(struct credctl *ctx, struct credctl_args *args)
{
	struct credbroker_reply	*reply;
	int			 rc;

	if ((rc = credctl_call(ctx, "health", NULL, &reply)) != 0)
		return rc;
	if (ctx->json)
		rc = credctl_output(ctx, credbroker_reply_result(reply));
	else
		credctl_print_kv(stdout, credbroker_reply_result(reply), 0);
	credbroker_reply_free(reply);
	return rc;
}

/* credctl stats */
int
credctl_stats(struct credctl *ctx, struct credctl_args *args)
{
	struct credbroker_reply	*reply;
	int			 rc;

	if ((rc = credctl_call(ctx, "stats", NULL, &reply)) != 0)
		return rc;
	if (ctx->json)
		rc = credctl_output(ctx, credbroker_reply_result(reply));
	else
		credctl_print_stats(stdout, credbroker_reply_result(reply));
	credbroker_reply_free(reply);
	return rc;
}
