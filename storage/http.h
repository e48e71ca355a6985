/*
 * http: asynchronous HTTP(S) requests on the daemon's libuv loop, through
 * libcurl's multi-socket interface.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when to wake up (CURLMOPT_TIMERFUNCTION); one uv_poll per socket and one
 * uv_timer drive curl_multi_socket_action(), and completed transfers are
 * drained with curl_multi_info_read() after every action.  Nothing ever
 * blocks the loop.  Request and response bodies live in wiping buffers:
 * they carry Vault tokens, AppRole secrets and sealed values.
 */
#ifndef CB_HTTP_H
#define CB_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "cb_error.h"
#include "secbuf.h"

struct http;
struct http_req;

#define HTTP_HEADERS_MAX	8

/*
 * Streaming a response (broker-executed requests): each header line as it
 * arrives, name and value split, the value without surrounding blanks.
 * name NULL: a status line, value its reason phrase, status the code;
 * a new response begins (an interim 1xx one came before).  nlen 0 with a
 * name: a folded continuation of the previous header's value.  Return 0,
 * or a negative CB_E* code to abort the transfer with it.
 */
typedef int (*http_header_fn)(void *arg, long status, const char *name,
    size_t nlen, const char *value, size_t vlen);
/* A piece of the response body; 0, or a negative CB_E* code to abort. */
typedef int (*http_data_fn)(void *arg, const void *p, size_t n);

struct http_opts {
	const char	*method;	/* "GET" (NULL), "POST", "LIST"... */
	const char	*url;
	/* Extra request headers, "Name: value"; they may hold secrets. */
	const char	*headers[HTTP_HEADERS_MAX];
	size_t		 nheaders;
	const void	*body;		/* copied into a wiping buffer */
	size_t		 body_len;
	const char	*ca_file;	/* NULL: system store; else the only CA */
	unsigned	 timeout_ms;	/* whole transfer; 0 = none */
	size_t		 max_response;	/* bytes; 0 = 1 MiB */

	/*
	 * Broker-executed requests only (rpc-request.c); zero for Vault.
	 * raw: the request is sent as given: any number of headers (hlist,
	 * after headers[]), any token as method, no Content-Type or Accept
	 * of curl's own, and curl never resolves a name (connect_to).
	 */
	bool		 raw;
	char *const	*hlist;		/* "Name: value" (or "Name;": empty) */
	size_t		 nhlist;
	/* "::ADDR:PORT": connect to this address, whatever the URL's host. */
	const char	*connect_to;
	unsigned	 connect_timeout_ms;	/* 0: timeout_ms */
	const char	*label;		/* "https://host:port" for messages */
	/* Stream the response to these instead of collecting the body. */
	http_header_fn	 on_header;
	http_data_fn	 on_data;
	void		*cb_arg;
};

/*
 * Completion.  status is the HTTP status (0 when no response was
 * received); body holds the response (wiped and freed by http after the
 * callback returns: copy what you need).  On a transport failure (refused,
 * timeout, TLS, oversized response) err->code is CB_EUNAVAILABLE and the
 * message says why; err->code is 0 otherwise, whatever the status.  Not
 * called for a cancelled request.  err is never NULL; on a failure status
 * is 0 and body is empty, so a partial answer never looks like one.
 *
 * The callback runs on the loop, outside libcurl, with its request already
 * finished.  It may call http_start() (chains such as login-then-retry),
 * http_cancel() on any other request, and http_close(); calling
 * http_cancel() on its own request is a harmless no-op.
 *
 * Each request ends exactly once: its callback runs, or its owner (the
 * caller of http_start) cancels it.  A request still pending when
 * http_close() is called is not freed there: it stays valid for its owner
 * to cancel, and otherwise is answered with a failure (status 0,
 * CB_EUNAVAILABLE) from the loop after http_close() has returned.
 */
/*
 * A streamed (on_data) request reports a response over max_response,
 * by Content-Length or as it arrives, as CB_ETOOLARGE, a callback's abort
 * with the callback's code, and a timeout with the phase it hit:
 * "timed out after N ms connecting to LABEL" (or "during the TLS
 * handshake with", "waiting for the response headers from", "reading the
 * response body from").
 */
typedef void (*http_done_fn)(void *arg, long status, const struct secbuf *body,
    const struct cb_error *err);

/*
 * Create the client on loop.  The first call initialises libcurl
 * (curl_global_init, not thread-safe): make it from the main thread at
 * start-up.  Requests go to http and https URLs only, never through a
 * proxy, never follow redirects, and always verify TLS peers.
 */
int	 http_init(uv_loop_t *loop, struct http **out, struct cb_error *err);
/*
 * Stop every transfer and close every handle; the client is freed once
 * libuv has closed them and every pending request has ended (see above:
 * cancelled by its owner, or answered with a failure from the loop).
 * New requests are refused from here.
 */
void	 http_close(struct http *h);
/*
 * Start a request.  Every string in opts is copied; the request owns its
 * own copies (headers and body wiped on completion).  *req, if not NULL,
 * receives a handle valid until the callback runs or http_cancel().
 */
int	 http_start(struct http *h, const struct http_opts *opts,
	    http_done_fn done, void *arg, struct http_req **req,
	    struct cb_error *err);
/*
 * Abandon a request; its callback will not be called.  req must still be
 * valid: its callback has not run (http_close() does not end it).
 */
void	 http_cancel(struct http_req *req);
/*
 * Limit the connections: max_host to one host, max_total in all (0: no
 * limit).  Transfers beyond them wait for a free connection.
 */
int	 http_set_limits(struct http *h, unsigned max_host, unsigned max_total,
	    struct cb_error *err);
/* Number of transfers in progress. */
size_t	 http_active(const struct http *h);
/*
 * Number of idle easy handles kept for reuse (at most 16): finished
 * requests give theirs back, reset, and new requests take them first.
 */
size_t	 http_idle_handles(const struct http *h);

#endif
