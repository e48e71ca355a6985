/*
 * libcredbroker: the C client library of credbroker.
 *
 * A program (an action runner, credctl, ...) opens a connection to
 * credbrokerd's UNIX socket with credbroker_connect(), makes blocking
 * calls with credbroker_call(), reads each result as a msgpack object,
 * frees the reply, and finally closes the connection.  The wire protocol
 * is msgpack-rpc (credbroker-protocol(7)); credbroker(3) describes this
 * library:
 *
 *	request   [0, msgid, method, [ {params} ]]
 *	response  [1, msgid, error, result]	error = nil | {code, message}
 *
 * Secrets.  Request and response bytes are held only in buffers that the
 * library wipes (OPENSSL_cleanse) once they are no longer needed: the
 * packed request right after it has been written to the socket, received
 * bytes when a reply is freed or discarded.  Strings and bins inside a
 * result point into the reply's buffer, so credbroker_reply_free() wipes
 * them too.  Params that carry a secret (cred.set's value) should be
 * packed by the caller into memory that the caller wipes as well.
 *
 * Errors.  Functions that can fail return
 *	 0			success;
 *	CREDBROKER_EBROKER (-1)	the broker answered with an error: err->code
 *				holds its wire name ("not_found", ...);
 *	CREDBROKER_ELOCAL (-2)	a local failure: err->code is one of the
 *				CREDBROKER_ERR_* names below.
 * and fill a caller-provided struct credbroker_error (which may be NULL).
 * Messages are for humans and never contain a secret value.
 *
 * Runners.  credbroker_substitute() wraps the "substitute" method in C
 * structures: it packs a component and a request template, and returns
 * the substituted request in one wiping allocation (see "Substitution"
 * below for the lifetime rules of its secrets).  credbroker_request()
 * wraps "request": the broker sends the request itself and returns the
 * response, scrubbed of the values it used (see "Broker-executed
 * requests" below).
 *
 * Threads.  A connection may be used by one thread at a time; different
 * connections are independent.  The library installs no signal handlers;
 * writes use MSG_NOSIGNAL, so a closed connection gives an error instead
 * of SIGPIPE.
 */
#ifndef CREDBROKER_H
#define CREDBROKER_H

#include <stddef.h>

#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol version this library speaks (hello's "protocol"). */
#define CREDBROKER_PROTOCOL_VERSION	1

/* Socket used when neither a path nor $CREDBROKER_SOCKET is given. */
#define CREDBROKER_DEFAULT_SOCKET	"/run/credbroker/credbroker.sock"
/* Environment variable naming the socket when path is NULL. */
#define CREDBROKER_SOCKET_ENV		"CREDBROKER_SOCKET"

/* Default cap on the size of one response, in bytes (16 MiB). */
#define CREDBROKER_DEFAULT_MAX_RESPONSE	((size_t)16 * 1024 * 1024)

/* Return values. */
#define CREDBROKER_OK			0
#define CREDBROKER_EBROKER		(-1)
#define CREDBROKER_ELOCAL		(-2)

/*
 * Local error codes (err->code when CREDBROKER_ELOCAL is returned).  The
 * broker's own codes are bad_request, forbidden, not_found, conflict,
 * not_configured, unavailable, too_large and internal.
 */
#define CREDBROKER_ERR_CONNECT	"connect"	/* cannot connect */
#define CREDBROKER_ERR_IO	"io"		/* read/write failed, EOF */
#define CREDBROKER_ERR_TIMEOUT	"timeout"	/* call took too long */
#define CREDBROKER_ERR_PROTOCOL	"protocol"	/* malformed/too big reply */
#define CREDBROKER_ERR_INVALID	"invalid"	/* bad argument */
#define CREDBROKER_ERR_NOMEM	"nomem"		/* out of memory */

/* One connection to the broker; opaque. */
struct credbroker;

/* The successful answer to one call; opaque. */
struct credbroker_reply;

/*
 * What went wrong.  Both fields are always NUL-terminated; long broker
 * messages are truncated.  On success, functions set code[0] to '\0'.
 */
struct credbroker_error {
	char	code[32];
	char	message[512];
};

/*
 * Connect to the broker.
 *
 *	path	the UNIX socket; NULL means $CREDBROKER_SOCKET when that is
 *		set and not empty, else CREDBROKER_DEFAULT_SOCKET.  The
 *		environment is read with secure_getenv(), so a set-id program
 *		ignores it.
 *	out	receives the new connection on success, NULL on failure.  The
 *		caller owns it and releases it with credbroker_close().
 *	err	may be NULL.
 *
 * Returns 0, or CREDBROKER_ELOCAL with code "connect" (no such socket,
 * permission denied, nobody listening, path too long), "invalid" (out is
 * NULL, empty path) or "nomem".  No bytes are exchanged: a connection that
 * succeeds here may still be refused on the first call.
 *
 * New connections have no call timeout and a response cap of
 * CREDBROKER_DEFAULT_MAX_RESPONSE.
 */
int	credbroker_connect(const char *path, struct credbroker **out,
	    struct credbroker_error *err);

/*
 * Limit how long one credbroker_call() may take, from the start of the
 * write to the end of the response, in milliseconds; a negative value
 * (the default) means no limit.  A call that runs out of time fails with
 * "timeout" and leaves the connection unusable (see credbroker_call()).
 * Calls that wait on Vault can legitimately take several seconds.
 */
void	credbroker_set_timeout(struct credbroker *c, int timeout_ms);

/*
 * Cap the size in bytes of one response; 0 restores the default
 * (CREDBROKER_DEFAULT_MAX_RESPONSE).  A response whose msgpack headers
 * announce more than this is refused with "protocol" as soon as the
 * header arrives, without reading the rest.
 */
void	credbroker_set_max_response(struct credbroker *c, size_t max);

/*
 * Call method with params and wait for its response.
 *
 *	c		the connection.
 *	method		the method name ("type.list", "cred.set", ...).
 *	params		exactly one packed msgpack map holding the named
 *			arguments, params_len bytes long; NULL (or a length
 *			of 0) sends an empty map.  The bytes are copied into
 *			a wiping buffer, so params may hold a secret; the
 *			caller keeps ownership of params and should wipe it
 *			when it does.
 *	out		receives the reply on success, NULL otherwise.  The
 *			caller owns it and releases it with
 *			credbroker_reply_free(); it stays valid after the
 *			connection is closed.
 *	err		may be NULL.
 *
 * Returns
 *	0			success; *out is set.
 *	CREDBROKER_EBROKER	the broker answered with an error; err->code
 *				is its wire name and err->message its text.
 *				The connection stays usable.
 *	CREDBROKER_ELOCAL	"invalid" (NULL/empty method, params not one
 *				map), "nomem", "io" (write or read failed, the
 *				broker closed the connection), "timeout", or
 *				"protocol" (the response is not msgpack, not a
 *				well-formed response, or larger than the cap).
 *				After "io", "timeout" and "protocol" the
 *				position in the byte stream is unknown: the
 *				connection refuses further calls with "io", and
 *				the caller should close it and connect again.
 *
 * Responses carrying another msgid (left over from an earlier call) and
 * msgpack-rpc notifications are read, wiped and skipped.  The library
 * never uses msgid 0: the broker answers a request it could not read far
 * enough to learn its msgid (larger than its limit, malformed) with an
 * error carrying msgid 0 and closes the connection, so such an error is
 * returned as this call's CREDBROKER_EBROKER (err->code "too_large", ...)
 * and the connection then refuses further calls like after "io".  This
 * holds even when the broker hangs up while the request is still being
 * written.
 */
int	credbroker_call(struct credbroker *c, const char *method,
	    const char *params, size_t params_len,
	    struct credbroker_reply **out, struct credbroker_error *err);

/*
 * The result of a successful call (the 4th element of the response).  The
 * object and everything it points to belong to the reply and are valid
 * until credbroker_reply_free().  Map keys are strings; which keys a
 * method returns is described in credbroker-protocol(7).  Returns NULL
 * when r is NULL.
 */
const msgpack_object *credbroker_reply_result(
	    const struct credbroker_reply *r);

/* Wipe and free a reply; NULL is allowed. */
void	credbroker_reply_free(struct credbroker_reply *r);

/* Close the connection and wipe and free its buffers; NULL is allowed. */
void	credbroker_close(struct credbroker *c);

/*
 * Substitution (SUBSTITUTION in credbroker-protocol(7)): the runner's API.
 *
 * A runner describes the component it runs and the HTTP request it is
 * about to make, with placeholders such as <<.credentials.github>> in the
 * URL, in header values and in the body.  The broker decides whose
 * credentials apply, fills the placeholders and returns the request,
 * which the runner sends at once (credbroker-example-runner, installed
 * with the library, does the whole cycle with libcurl; see credbroker(3)).
 *
 *	struct credbroker_cred_decl decl[] = { { "github", "github_token" } };
 *	struct credbroker_component comp = {
 *		.kind = "action", .initiator = user_uuid,
 *		.credentials = decl, .ncredentials = 1,
 *	};
 *	struct credbroker_header hdr[] = {
 *		{ "Authorization", "Bearer <<.credentials.github>>", 0 },
 *	};
 *	struct credbroker_request req = {
 *		.method = "GET", .url = "https://api.github.com/user",
 *		.headers = hdr, .nheaders = 1,
 *	};
 *	struct credbroker_substituted *s;
 *
 *	if (credbroker_substitute(c, &comp, &req, &s, &err) == 0) {
 *		if (!s->skipped)
 *			send_it(s->method, s->url, s->headers, s->nheaders,
 *			    s->body, s->body_len);
 *		credbroker_substituted_free(s);
 *	}
 *
 * Lifetime rules.  The strings of a substituted request ARE the secrets:
 * the URL, header values and body contain decrypted credential values.
 *  - Use them at once, for the one request they were made for, then call
 *    credbroker_substituted_free(), which wipes every byte (with
 *    OPENSSL_cleanse) before freeing.  Do not keep them, cache them or
 *    hand them to another thread that outlives the request.
 *  - Never log them, print them, put them in an error message or an
 *    exception, or pass them to a tracing or debug facility (libcurl's
 *    CURLOPT_VERBOSE prints request headers).  The library itself never
 *    logs anything.
 *  - Every copy the runner makes (a "Name: value" header line, an HTTP
 *    client's own buffers) is the runner's to wipe.
 *  - Do not follow redirects with these headers: a redirect to another
 *    origin would carry the credential past the broker's destination
 *    check.
 *  - Disable core dumps in the runner (setrlimit(RLIMIT_CORE) to 0,
 *    prctl(PR_SET_DUMPABLE, 0)) so that a crash does not write them to
 *    disk.
 * All of a result lives in one allocation that belongs to it; the reply
 * it was decoded from has already been wiped when the call returns.
 *
 * Dry runs.  credbroker_substitute_dry_run() asks the broker for the same
 * substitution with every value replaced by the mask "~masked-ID~" (passed
 * through the placeholder's filters), decrypting nothing.  A value that
 * is not set is not an error then; used[i].filled says which are.  A dry
 * run shows where values would go (credctl substitute --dry-run prints it)
 * and is safe to log.
 */

/* One credential a component declares: placeholder id and type. */
struct credbroker_cred_decl {
	const char	*id;		/* the ID of <<.credentials.ID>> */
	const char	*type;		/* a type ident or uuid */
};

/*
 * Who is calling and for whom ("Subject" in credbroker-protocol(7)).  kind is "action", "widget",
 * "data_source" or "status_check"; initiator, run_as and system_account
 * are user uuids in lower-case RFC 4122 text form, NULL when not given.
 * The broker applies the subject rules:
 *	action, widget	run_as when given, else initiator
 *	data_source	system_account (required; initiator never used)
 *	status_check	system_account; without one the check is skipped
 * service_credentials are those of the external service the component
 * uses (sent only when nservice_credentials > 0); they are inherited, and
 * a component's own declaration of the same id wins.
 */
struct credbroker_component {
	const char				*kind;
	const char				*initiator;
	const char				*run_as;
	const char				*system_account;
	const struct credbroker_cred_decl	*credentials;
	size_t					 ncredentials;
	const struct credbroker_cred_decl	*service_credentials;
	size_t					 nservice_credentials;
};

/*
 * One HTTP header.  In a request template, value is a template of
 * value_len bytes; a value_len of 0 means strlen(value).  In a result,
 * name and value are NUL-terminated and value_len is the length of value
 * without the NUL.  Placeholders are allowed in values only; a name must
 * be an HTTP token.
 */
struct credbroker_header {
	const char	*name;
	const char	*value;
	size_t		 value_len;
};

/*
 * The request template.  method is an HTTP method name ("GET", ...); url
 * is an absolute http or https URL whose scheme, host, port and userinfo
 * are literal text (placeholders may appear in the path, query and
 * fragment).  A body is sent only when has_body is set; it may be empty
 * and may hold any bytes (it goes out as a msgpack str when it is valid
 * UTF-8, as a bin otherwise).
 */
struct credbroker_request {
	const char			*method;
	const char			*url;
	const struct credbroker_header	*headers;
	size_t				 nheaders;
	const void			*body;
	size_t				 body_len;
	int				 has_body;
};

/* One credential the substitution used; filled is set in dry runs only. */
struct credbroker_used {
	const char	*id;		/* the placeholder id */
	const char	*type;		/* the type's ident */
	int		 filled;	/* dry run: 1 when the subject has it */
	/*
	 * Where the value came from (technical accounts): "own", "linked"
	 * or "default", and the account's name for the last two; NULL when
	 * the broker does not say (no value, or an older broker).
	 */
	const char	*source;
	const char	*account;
};

/*
 * The answer to a substitution.  Every pointer points into the same
 * allocation as the structure itself and stays valid until
 * credbroker_substituted_free().  All strings are NUL-terminated, and no
 * string but the body contains a NUL byte (an answer where one would is
 * refused), so each can be used as a C string; lengths are given where a
 * value may come from a credential.
 *
 * When skipped is set (a status check without a system account, see
 * "Subject" in credbroker-protocol(7)) only reason is meaningful: the check is not run, and that is not
 * an error.  Otherwise reason is NULL and the rest describes the request
 * to send: method, url (url_len bytes), headers in the order given, body
 * (body_len bytes plus a terminating NUL; NULL when the template had no
 * body, has_body 0), subject (the user whose values were used), and used,
 * the distinct credentials the templates referenced.  dry_run is set when
 * the broker masked the values.
 */
struct credbroker_substituted {
	int				 skipped;
	const char			*reason;
	int				 dry_run;
	const char			*method;
	const char			*url;
	size_t				 url_len;
	const struct credbroker_header	*headers;
	size_t				 nheaders;
	const char			*body;
	size_t				 body_len;
	int				 has_body;
	const char			*subject;
	const struct credbroker_used	*used;
	size_t				 nused;
};

/*
 * Substitute the credentials of comp's subject into req.
 *
 *	c	the connection (needs the use:credentials permission).
 *	comp	the component; see struct credbroker_component.
 *	req	the request template; see struct credbroker_request.
 *	out	receives the result on success, NULL otherwise; the caller
 *		owns it and must release it with credbroker_substituted_free()
 *		as soon as the request has been sent.
 *	err	may be NULL.
 *
 * Returns, like credbroker_call():
 *	0			success; *out is set (check (*out)->skipped).
 *	CREDBROKER_EBROKER	the broker refused; err->code is, for example,
 *				"not_found" (the subject has no value for a
 *				referenced credential), "forbidden" (the URL's
 *				origin is not among a type's destinations),
 *				"bad_request" (a template or component error:
 *				unknown filter, undeclared id, a value that
 *				would break the request's structure, ...) or
 *				"not_configured" (a Vault-stored type while
 *				Vault is off).  Messages name credential ids,
 *				types and users, never a value.
 *	CREDBROKER_ELOCAL	"invalid" (a NULL argument or field that is
 *				required, more than 2^32-1 elements), "nomem",
 *				"protocol" (the answer does not have the shape
 *				of a substitution result), or any local error
 *				of credbroker_call().
 * The packed request and the broker's reply are wiped before returning,
 * on every path.
 */
int	credbroker_substitute(struct credbroker *c,
	    const struct credbroker_component *comp,
	    const struct credbroker_request *req,
	    struct credbroker_substituted **out, struct credbroker_error *err);

/*
 * The same as credbroker_substitute() with dry_run set: values are masked
 * as "~masked-ID~" (after filters), nothing is decrypted, a value that is
 * not set is not an error, and used[i].filled says which are set.  An
 * answer that is not marked dry_run by the broker is refused ("protocol")
 * and wiped, so a dry-run caller never receives a value.
 */
int	credbroker_substitute_dry_run(struct credbroker *c,
	    const struct credbroker_component *comp,
	    const struct credbroker_request *req,
	    struct credbroker_substituted **out, struct credbroker_error *err);

/* Wipe every byte of a substitution result and free it; NULL is allowed. */
void	credbroker_substituted_free(struct credbroker_substituted *s);

/*
 * Broker-executed requests ("request" in credbroker-protocol(7)).
 *
 * Instead of handing the substituted request to the runner, the broker
 * sends it itself (libcurl on its own loop, the destination and address
 * checks applied, TLS always verified) and returns the response, in which
 * every echo of a value it used (raw or in any filter's encoding) has been
 * replaced with "[REDACTED:ID]".  The plaintext never leaves the broker:
 * the runner needs no HTTP client, and no secret is in its memory.
 *
 *	struct credbroker_request_options ro = { .timeout_ms = 10000 };
 *	struct credbroker_response *r;
 *
 *	if (credbroker_request(c, &comp, &req, &ro, &r, &err) == 0) {
 *		if (!r->skipped)
 *			use(r->status, r->headers, r->nheaders, r->body,
 *			    r->body_len);
 *		credbroker_response_free(r);
 *	}
 *
 * The connection's call timeout (credbroker_set_timeout()) must leave the
 * broker time to finish: make it longer than timeout_ms.  A response
 * larger than the connection's cap (credbroker_set_max_response()) is
 * refused as "protocol"; max_response_bytes should stay well below it.
 */

/*
 * Options of a broker-executed request; a NULL options pointer, or a
 * zero field, means the broker's default.
 *	timeout_ms		the whole exchange, in milliseconds
 *	max_response_bytes	largest response accepted (body and
 *				headers); a larger one fails with
 *				"too_large"
 *	follow_redirects	non-zero: follow redirects, each hop checked
 *				again, credentials never sent to another
 *				origin; zero: a redirect is returned as it
 *				is
 */
struct credbroker_request_options {
	unsigned long	timeout_ms;
	unsigned long	max_response_bytes;
	int		follow_redirects;
};

/*
 * The broker's answer to a request it sent.  Every pointer points into the
 * same allocation as the structure and stays valid until
 * credbroker_response_free().  When skipped is set (a status check
 * without a system account) only reason is meaningful, and no request was
 * sent.  Otherwise status is the HTTP status, reason its status text
 * ("OK"; empty over HTTP/2; NULL when the broker does not say; NUL-
 * terminated, without NUL bytes, not necessarily UTF-8), headers are
 * the response's headers in the order received (names NUL-terminated and
 * without NUL bytes; values NUL-terminated, value_len bytes, which may
 * include NUL bytes when the server sent them), body is body_len bytes plus
 * a terminating NUL (an empty body is "", never NULL), scrubbed counts the
 * echoes of used values that the broker replaced, and used lists the
 * credentials the request used, as for a substitution.
 *
 * The response is not a credential, but it comes from the service the
 * credential opens and may be sensitive too; credbroker_response_free()
 * wipes it.
 */
struct credbroker_response {
	int				 skipped;
	const char			*reason;
	int				 status;
	const struct credbroker_header	*headers;
	size_t				 nheaders;
	const char			*body;
	size_t				 body_len;
	unsigned long long		 scrubbed;
	const struct credbroker_used	*used;
	size_t				 nused;
};

/*
 * Have the broker substitute the credentials of comp's subject into req,
 * send the request and return the scrubbed response.
 *
 *	c	the connection (needs the use:credentials permission).
 *	comp	the component, as for credbroker_substitute().
 *	req	the request template, as for credbroker_substitute().
 *	opts	the options; NULL for the broker's defaults.
 *	out	receives the response on success, NULL otherwise; release it
 *		with credbroker_response_free().
 *	err	may be NULL.
 *
 * Returns, like credbroker_substitute():
 *	0			success; *out is set (check (*out)->skipped).
 *				Any HTTP status, 4xx and 5xx included, is a
 *				success: the request was made.
 *	CREDBROKER_EBROKER	the broker refused or could not send: the
 *				codes of credbroker_substitute(), plus
 *				"too_large" (the response exceeded
 *				max_response_bytes) and "unavailable" (the
 *				connection, TLS or the time limit failed; the
 *				message names the phase).
 *	CREDBROKER_ELOCAL	"invalid", "nomem", "protocol" (the answer
 *				does not have the shape of a response), or
 *				any local error of credbroker_call().
 * The packed request and the broker's reply are wiped before returning,
 * on every path.
 */
int	credbroker_request(struct credbroker *c,
	    const struct credbroker_component *comp,
	    const struct credbroker_request *req,
	    const struct credbroker_request_options *opts,
	    struct credbroker_response **out, struct credbroker_error *err);

/* Wipe every byte of a response and free it; NULL is allowed. */
void	credbroker_response_free(struct credbroker_response *r);

#ifdef __cplusplus
}
#endif

#endif /* CREDBROKER_H */
