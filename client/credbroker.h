/*
 * libcredbroker: the C client library of credbroker.
 *
 * A program (an action runner, credctl, ...) opens a connection to
 * credbrokerd's UNIX socket with credbroker_connect(), makes blocking
 * calls with credbroker_call(), reads each result as a msgpack object,
 * frees the reply, and finally closes the connection.  The wire protocol
 * is msgpack-rpc (credbroker-protocol(7)):
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

#ifdef __cplusplus
}
#endif

#endif /* CREDBROKER_H */
