/*
 * substitute: the path that substitute and request share (SPEC sections 5
 * and 13): find the subject, parse and check the templates, resolve the
 * types and their destinations, fetch and open the values, and render.
 * What happens to the rendered request then is the method's: substitute
 * packs it into the reply (rpc-substitute.c), request sends it itself
 * (rpc-request.c).  Both are audited and report "used" the same way.
 */
#ifndef CB_SUBSTITUTE_H
#define CB_SUBSTITUTE_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "origin.h"
#include "secbuf.h"
#include "store.h"
#include "subject.h"
#include "template.h"

struct sub;

/* One credential the templates use. */
struct sub_cred {
	struct sub		*sub;		/* for backend callbacks */
	const struct comp_cred	*decl;
	const struct store_type	*type;		/* borrowed till sub_free */
	int			 source;	/* enum cred_source */
	char			 account[STORE_IDENT_MAX + 1];
	char			*sealed;	/* NULL when not set (dry run) */
	struct secbuf		 plain;		/* decrypted, or the mask */
};

struct sub_header {
	const char	*name;
	size_t		 namelen;
	struct tpl	 value;
	struct secbuf	 out;
};

/*
 * What the method does with the rendered request (s->url_out,
 * s->headers[].out, s->body_out, the opened values in s->creds): 0 once
 * it has packed its result into s->call->pk, a negative CB_E* code with
 * err filled, or RPC_WAIT when it has taken s over and will end the call
 * itself (rpc_finish, then sub_free).
 */
typedef int (*sub_then_fn)(struct sub *s, struct cb_error *err);

struct sub {
	struct rpc_call		*call;
	sub_then_fn		 then;
	void			*arg;		/* the method's own state */
	void			(*arg_free)(void *);	/* by sub_free */
	size_t			 pending;	/* value reads in flight + 1 */
	int			 rc;		/* first failure of a read */
	struct cb_error		 err;
	struct component	 comp;
	const char		*subject;
	bool			 dry_run;
	const msgpack_object	*method;
	const msgpack_object	*url;
	struct tpl		 url_tpl;
	struct secbuf		 url_out;
	struct sub_header	*headers;
	size_t			 nheaders;
	const msgpack_object	*body;		/* NULL when absent */
	struct tpl		 body_tpl;
	struct secbuf		 body_out;
	struct sub_cred		*creds;
	size_t			 ncreds;
	struct origin		 url_origin;	/* the URL's, parsed */
};

/* A new substitution for call, whose rendered request goes to then. */
struct sub *sub_new(struct rpc_call *call, sub_then_fn then, void *arg);
/*
 * Run the substitution of params' component and request (their other
 * keys are the method's, checked by it).  Takes s: it is freed here
 * unless RPC_WAIT is returned, and then by whoever ends the call.  A
 * skipped status check packs {skipped, reason} and returns 0 without
 * calling then.
 */
int	 sub_run(struct sub *s, const msgpack_object *params,
	    struct cb_error *err);
/* Wipe and free everything s holds. */
void	 sub_free(struct sub *s);
/* Free the substitutions kept for reuse (at shutdown). */
void	 sub_release_kept(void);
/* Pack "used": [{id, type, source, account?}, ...] (key and array). */
void	 sub_pack_used(msgpack_packer *pk, const struct sub *s);

#endif
