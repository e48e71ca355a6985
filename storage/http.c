/*
 * http: libcurl's multi-socket interface driven by the daemon's libuv loop.
 *
 * One CURLM per struct http.  libcurl reports, through the socket callback,
 * which sockets it wants watched and for what; we keep one uv_poll per
 * such socket (found again through curl_multi_assign()).  Through the
 * timer callback it asks for one wake-up, kept in a single uv_timer.  Both
 * the poll and the timer callbacks call curl_multi_socket_action() and then
 * drain finished transfers with curl_multi_info_read(): each finished
 * request is taken out of the multi handle, its callback is called, and
 * everything it owned is wiped and freed.
 *
 * This follows the shape of curl's docs/examples/multi-uv.c, without its
 * known flaws: the timer's data pointer is set explicitly, completions are
 * drained after a timeout as well as after socket activity (a timed-out
 * transfer would otherwise never be reported), and a poll error is passed
 * on as CURL_CSELECT_ERR instead of being dropped.
 *
 * Re-entrancy.  Completion callbacks run from inside our poll or timer
 * callback, after libcurl has returned, with the request already removed
 * from the multi handle.  From there a callback may call http_start()
 * (login-then-retry chains do), http_cancel() on any other request, and
 * http_close().  The finished request is freed only after its callback
 * returns, http_cancel() on it is ignored meanwhile, and the drain loop
 * stops as soon as the client is closing.  The struct http itself is freed
 * once libuv has closed its last handle and no request is left, never
 * synchronously, so it outlives every frame that may still be looking at
 * it.
 *
 * Ownership.  A request has one owner, the caller of http_start(), and one
 * end: either its callback has run or its owner has called http_cancel().
 * Only that end frees it, so the owner's pointer is valid exactly until
 * then, whatever else happens.  In particular http_close() frees no
 * request: the client is shared (the Vault client and every vault.test
 * client use it), and one owner may still hold a request while the daemon
 * closes the client under it, then cancel it.  http_close() detaches
 * what is pending instead: out of the multi handle, easy handle destroyed,
 * headers and body wiped, onto the closed list.  An owner that cancels a
 * detached request frees it as usual; the others are answered with a
 * failure from the timer's close callback, on the loop, after http_close()
 * has returned.  Either way each request still ends exactly once.
 *
 * Secrets.  Request headers (X-Vault-Token) and bodies (AppRole secret_id)
 * are copied into memory we wipe before freeing: the body into a secbuf
 * handed to libcurl without a copy (CURLOPT_POSTFIELDS), the headers into
 * the curl_slist whose strings we wipe before curl_slist_free_all().  The
 * response is collected into a secbuf.  libcurl's own send buffers are not
 * ours to wipe; CURLOPT_VERBOSE stays off so nothing is ever traced.
 *
 * Easy handles.  A finished request's easy handle goes back to a short
 * free list of its client (HTTP_POOL_MAX) instead of being destroyed, so a
 * warm request does not pay curl_easy_init() and the buffers libcurl
 * allocates for every new handle.  Connections are not what is kept: they
 * live in the multi handle's connection cache, whichever easy handle
 * carried them, so keep-alive works the same either way.  A handle is
 * curl_easy_reset() before it goes into the list, never just before it is
 * taken out, because its options point into the request that used it
 * (CURLOPT_PRIVATE, ERRORBUFFER, WRITEDATA, the header list, the body
 * passed as POSTFIELDS): a handle at rest must not hold pointers into
 * freed, wiped memory.  After a reset a handle is as curl_easy_init() made
 * it, and http_setup() sets every option a request needs on it, as on a
 * new one.  The list is emptied by http_close(); while closing, finished
 * handles are destroyed instead of kept.
 *
 * Transport policy: http and https only, no redirects, peer and host
 * verification always on, TLS 1.2 or later, and no proxy (environment
 * variables such as https_proxy are ignored so that a token is never sent
 * anywhere but to the configured URL).  When a ca_file is given it is the
 * only trust anchor; otherwise the system store is used.
 */
#include <sys/queue.h>

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <uv.h>

#include "cb_error.h"
#include "http.h"
#include "secbuf.h"

#define HTTP_MAX_RESPONSE_DEFAULT	(1024 * 1024)
/*
 * Idle easy handles kept per client: enough for the Vault client's usual
 * concurrency; a burst beyond it pays curl_easy_init() again.
 */
#define HTTP_POOL_MAX			16

/* One socket libcurl asked us to watch. */
struct http_sock {
	uv_poll_t		 poll;		/* poll.data = this */
	struct http		*h;
	curl_socket_t		 fd;
	LIST_ENTRY(http_sock)	 entry;
};

/* One request, from http_start() until its callback or http_cancel(). */
struct http_req {
	TAILQ_ENTRY(http_req)	 entry;
	struct http		*h;
	CURL			*easy;
	struct curl_slist	*headers;	/* strings wiped before free */
	struct secbuf		 body;		/* request body */
	struct secbuf		 resp;		/* response body */
	size_t			 max_response;
	unsigned		 timeout_ms;
	http_done_fn		 done;
	void			*arg;
	int			 too_large;	/* write callback hit the cap */
	int			 nomem;		/* write callback out of memory */
	int			 in_callback;	/* done() is running */
	int			 detached;	/* on h->closed, no easy handle */
	int			 raw;		/* opts->raw: never pooled */
	char			 errbuf[CURL_ERROR_SIZE];
	/* Streamed requests (opts->on_data), see http.h. */
	struct curl_slist	*connect_to;
	http_header_fn		 on_header;
	http_data_fn		 on_data;
	void			*cb_arg;
	int			 cb_rc;		/* a callback's abort code */
	size_t			 received;	/* body bytes so far */
	unsigned		 connect_timeout_ms;
	int			 tls_started;	/* TCP is up, TLS begins */
	int			 connected;	/* TCP and TLS are up */
	char			 label[320];
};

/* The client: one multi handle, its timer, and the sockets it watches. */
struct http {
	uv_loop_t		*loop;
	CURLM			*multi;		/* NULL once closing */
	uv_timer_t		 timer;		/* timer.data = this */
	TAILQ_HEAD(, http_req)	 reqs;		/* in the multi handle */
	TAILQ_HEAD(, http_req)	 closed;	/* detached by http_close */
	LIST_HEAD(, http_sock)	 socks;		/* polls not yet closing */
	size_t			 nreqs;
	size_t			 nhandles;	/* libuv handles not yet closed */
	CURL			*pool[HTTP_POOL_MAX];	/* reset, idle */
	size_t			 npool;
	int			 closing;
};

static int	 http_global_ready;

/*
 * libcurl's own allocations hold what it sends and receives: the request
 * line with its URL, the header block, the receive buffer.  They are
 * wiped before they are freed, as OpenSSL's are (daemon/pkey.c).
 */
static void
http_free(void *p)
{
	if (p == NULL)
		return;
	cb_wipe(p, malloc_usable_size(p));
	free(p);
}

static void *
http_malloc(size_t n)
{
	return malloc(n);
}

static void *
http_calloc(size_t nmemb, size_t size)
{
	return calloc(nmemb, size);
}

static void *
http_realloc(void *p, size_t n)
{
	void	*q;
	size_t	 old;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		http_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if (n <= old)
		return p;
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, old);
	http_free(p);
	return q;
}

static char *
http_strdup(const char *s)
{
	size_t	 n = strlen(s) + 1;
	char	*p;

	if ((p = malloc(n)) != NULL)
		memcpy(p, s, n);
	return p;
}

static void	 http_drain(struct http *);

/*
 * Free h once it is closing, libuv has closed its last handle and no
 * detached request (which points back at h) is left.
 */
static void
http_maybe_free(struct http *h)
{
	if (h->closing && h->nhandles == 0 && TAILQ_EMPTY(&h->closed))
		free(h);
}

/* Close callback of a poll handle. */
static void
http_sock_closed(uv_handle_t *handle)
{
	struct http_sock	*s = handle->data;
	struct http		*h = s->h;

	free(s);
	h->nhandles--;
	http_maybe_free(h);
}

/* Stop watching a socket; the memory goes in the close callback. */
static void
http_sock_close(struct http_sock *s)
{
	LIST_REMOVE(s, entry);
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, http_sock_closed);
}

static void	 http_req_free(struct http_req *);

/*
 * Close callback of the timer: answer the requests http_close() detached
 * and nobody cancelled since.  A callback may cancel another of them (it
 * leaves the list) or start a request (refused: closing); the timer is
 * still counted in nhandles meanwhile, so h cannot go under us.
 */
static void
http_timer_closed(uv_handle_t *handle)
{
	struct http	*h = handle->data;
	struct http_req	*req;
	struct cb_error	 err;

	while ((req = TAILQ_FIRST(&h->closed)) != NULL) {
		TAILQ_REMOVE(&h->closed, req, entry);
		req->detached = 0;
		req->in_callback = 1;
		cb_error_set(&err, CB_EUNAVAILABLE, "the HTTP client is closed");
		req->done(req->arg, 0, &req->resp, &err);
		http_req_free(req);
	}
	h->nhandles--;
	http_maybe_free(h);
}

/* An easy handle: an idle one from the free list, or a new one. */
static CURL *
http_easy_get(struct http *h)
{
	if (h->npool > 0)
		return h->pool[--h->npool];
	return curl_easy_init();
}

/*
 * Give back an easy handle that is out of the multi handle.  Reset it
 * first: until then it points at its request's header list, body, error
 * buffer and response, which are about to be wiped and freed.
 */
static void
http_easy_put(struct http *h, CURL *e)
{
	if (e == NULL)
		return;
	if (h->closing || h->npool == HTTP_POOL_MAX) {
		curl_easy_cleanup(e);
		return;
	}
	curl_easy_reset(e);
	h->pool[h->npool++] = e;
}

/*
 * Give back the easy handle and wipe the headers and body of a request
 * that is out of the multi handle; the request itself stays.
 */
static void
http_req_release(struct http_req *req)
{
	struct curl_slist	*l;

	/*
	 * Before the header list and body it may still point at go.  A raw
	 * request's handle is not kept: its buffers held the response.
	 */
	if (req->raw && req->easy != NULL)
		curl_easy_cleanup(req->easy);
	else
		http_easy_put(req->h, req->easy);
	req->easy = NULL;
	for (l = req->headers; l != NULL; l = l->next)
		cb_wipe(l->data, strlen(l->data));
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	curl_slist_free_all(req->connect_to);
	req->connect_to = NULL;
	secbuf_free(&req->body);
}

/* Wipe and free everything a request owns; it is out of the multi handle. */
static void
http_req_free(struct http_req *req)
{
	http_req_release(req);
	secbuf_free(&req->resp);
	cb_wipe(req, sizeof(*req));
	free(req);
}

/* A socket is ready, or failed: let libcurl act on it, then drain. */
static void
http_poll_cb(uv_poll_t *p, int status, int events)
{
	struct http_sock	*s = p->data;
	struct http		*h = s->h;
	int			 flags = 0, running;

	if (h->closing)
		return;
	/*
	 * multi-uv.c ignores status; a poll error must reach libcurl as
	 * CURL_CSELECT_ERR or the transfer waits for its timeout (or forever
	 * without one).  libuv has stopped this poll in that case.
	 */
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	/* s may be closed (not freed) by socket_action; use only h below. */
	curl_multi_socket_action(h->multi, s->fd, flags, &running);
	http_drain(h);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching fd. */
static int
http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
	struct http		*h = userp;
	struct http_sock	*s = socketp;
	int			 events = 0;

	if (what == CURL_POLL_REMOVE) {
		/*
		 * libcurl calls this before it closes fd.  The handle is
		 * freed in its close callback, so a poll callback running
		 * for this very socket further up the stack stays valid.
		 * While closing, the multi handle may be mid-cleanup: leave
		 * its socket hash alone (libcurl drops the entry anyway).
		 */
		if (s != NULL) {
			http_sock_close(s);
			if (!h->closing)
				curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	if (h->closing)
		return 0;

	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		s->h = h;
		s->fd = fd;
		LIST_INSERT_HEAD(&h->socks, s, entry);
		h->nhandles++;
		curl_multi_assign(h->multi, fd, s);
	}
	switch (what) {
	case CURL_POLL_IN:
		events = UV_READABLE;
		break;
	case CURL_POLL_OUT:
		events = UV_WRITABLE;
		break;
	case CURL_POLL_INOUT:
		events = UV_READABLE | UV_WRITABLE;
		break;
	}
	if (uv_poll_start(&s->poll, events, http_poll_cb) != 0)
		return -1;
	return 0;
}

/* The timer fired: let libcurl handle timeouts, then drain. */
static void
http_timer_cb(uv_timer_t *t)
{
	struct http	*h = t->data;
	int		 running;

	if (h->closing)
		return;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	/*
	 * Always drain: a transfer that just hit CURLOPT_TIMEOUT_MS finishes
	 * here, with no socket activity to report it (multi-uv.c misses it).
	 */
	http_drain(h);
}

/* CURLMOPT_TIMERFUNCTION: arm or disarm the single timer. */
static int
http_timerfunc_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http	*h = userp;

	/* Called from curl_multi_cleanup() too: the timer is ours to close. */
	if (h->closing)
		return 0;
	if (timeout_ms < 0) {
		uv_timer_stop(&h->timer);
		return 0;
	}
	/*
	 * 0 means "as soon as possible".  Calling curl_multi_socket_action()
	 * from here would re-enter libcurl; a 0 ms timer runs it on the next
	 * loop iteration instead.
	 */
	if (uv_timer_start(&h->timer, http_timer_cb, (uint64_t)timeout_ms,
	    0) != 0)
		return -1;
	return 0;
}

/*
 * A streamed request failed: say which phase a timeout hit, from how far
 * the transfer got (a time of 0 means the step was not reached).
 */
static void
http_describe_stream(const struct http_req *req, CURLcode cc,
    struct cb_error *err)
{
	curl_off_t	 start = 0;
	const char	*detail = req->errbuf, *phase;
	unsigned	 ms = req->timeout_ms;

	if (req->cb_rc < 0) {
		cb_error_set(err, -req->cb_rc, "the response from %s was "
		    "refused while reading it", req->label);
		return;
	}
	if (req->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
		cb_error_set(err, CB_ETOOLARGE, "the response from %s is "
		    "larger than %zu bytes", req->label, req->max_response);
		return;
	}
	if (*detail == '\0')
		detail = curl_easy_strerror(cc);
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		cb_error_set(err, CB_EUNAVAILABLE, "TLS with %s failed: %s",
		    req->label, detail);
		return;
	default:
		cb_error_set(err, CB_EUNAVAILABLE, "request to %s failed: %s",
		    req->label, detail);
		return;
	}
	/*
	 * CURLINFO_CONNECT_TIME_T stays 0 when the TLS handshake fails on a
	 * connected socket, so the callbacks tell the phases apart instead.
	 */
	curl_easy_getinfo(req->easy, CURLINFO_STARTTRANSFER_TIME_T, &start);
	if (!req->connected) {
		/* CURLOPT_CONNECTTIMEOUT_MS covers the TLS handshake too. */
		phase = req->tls_started ? "during the TLS handshake with" :
		    "connecting to";
		if (req->connect_timeout_ms > 0 && req->connect_timeout_ms < ms)
			ms = req->connect_timeout_ms;
	} else if (start == 0)
		phase = "waiting for the response headers from";
	else
		phase = "reading the response body from";
	cb_error_set(err, CB_EUNAVAILABLE, "request timed out after %u ms %s "
	    "%s", ms, phase, req->label);
}

/* Describe a failed transfer in err, without any secret. */
static void
http_describe(const struct http_req *req, CURLcode cc, struct cb_error *err)
{
	const char	*detail = req->errbuf;
	long		 oserr = 0;
	char		 os[128] = "";

	if (req->nomem) {
		cb_error_set(err, CB_EINTERNAL,
		    "out of memory reading the response");
		return;
	}
	if (req->on_data != NULL) {
		http_describe_stream(req, cc, err);
		return;
	}
	if (req->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
		cb_error_set(err, CB_EUNAVAILABLE,
		    "response larger than %zu bytes", req->max_response);
		return;
	}
	/*
	 * CURLOPT_ERRORBUFFER says more than curl_easy_strerror() (host,
	 * port, TLS verification result); fall back on the latter.  A failed
	 * connect does not always carry errno's text ("refused", "no route
	 * to host") in either, so add it from CURLINFO_OS_ERRNO.
	 */
	if (*detail == '\0')
		detail = curl_easy_strerror(cc);
	if (cc == CURLE_COULDNT_CONNECT &&
	    curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &oserr) ==
	    CURLE_OK && oserr != 0 &&
	    strstr(detail, strerror((int)oserr)) == NULL)
		snprintf(os, sizeof(os), " (%s)", strerror((int)oserr));
	if (cc == CURLE_OPERATION_TIMEDOUT && req->timeout_ms > 0)
		cb_error_set(err, CB_EUNAVAILABLE, "timed out after %u ms: %s",
		    req->timeout_ms, detail);
	else
		cb_error_set(err, CB_EUNAVAILABLE, "%s%s", detail, os);
}

/* A transfer is done: report it, then free it. */
static void
http_finish(struct http *h, CURL *easy, CURLcode cc)
{
	struct http_req	*req = NULL;
	struct cb_error	 err;
	long		 status = 0;
	char		*p = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
	req = (struct http_req *)p;
	if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) !=
	    CURLE_OK)
		status = 0;
	cb_error_clear(&err);
	if (cc != CURLE_OK) {
		/* A partial response must not look like an answer. */
		http_describe(req, cc, &err);
		status = 0;
		secbuf_reset(&req->resp);
	}

	TAILQ_REMOVE(&h->reqs, req, entry);
	h->nreqs--;
	curl_multi_remove_handle(h->multi, easy);

	/*
	 * The callback may start requests, cancel others, or close h: it
	 * runs with req out of every list and marked, so http_cancel(req)
	 * is a no-op and http_close() does not see it; we free it after.
	 */
	req->in_callback = 1;
	req->done(req->arg, status, &req->resp, &err);
	http_req_free(req);
}

/* Report and free every finished transfer. */
static void
http_drain(struct http *h)
{
	CURLMsg	*m;
	CURL	*easy;
	CURLcode cc;
	int	 left;

	/* A callback may close h: h->multi is gone then, stop at once. */
	while (!h->closing &&
	    (m = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		/* m does not survive curl_multi_remove_handle(): copy. */
		easy = m->easy_handle;
		cc = m->data.result;
		http_finish(h, easy, cc);
	}
}

int
http_init(uv_loop_t *loop, struct http **out, struct cb_error *err)
{
	struct http	*h;

	*out = NULL;
	/*
	 * curl_global_init() is not thread-safe: http_init() must first be
	 * called from the main thread at start-up, before other threads.
	 */
	if (!http_global_ready) {
		if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, http_malloc,
		    http_free, http_realloc, http_strdup, http_calloc) !=
		    CURLE_OK)
			return cb_error_set(err, CB_EINTERNAL,
			    "curl_global_init failed");
		http_global_ready = 1;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	h->loop = loop;
	TAILQ_INIT(&h->reqs);
	TAILQ_INIT(&h->closed);
	LIST_INIT(&h->socks);
	if ((h->multi = curl_multi_init()) == NULL) {
		free(h);
		return cb_error_set(err, CB_EINTERNAL, "curl_multi_init failed");
	}
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION,
	    http_socket_cb) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION,
	    http_timerfunc_cb) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK) {
		curl_multi_cleanup(h->multi);
		free(h);
		return cb_error_set(err, CB_EINTERNAL,
		    "curl_multi_setopt failed");
	}
	/* uv_timer_init() cannot fail; from here h is freed on close. */
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;		/* multi-uv.c leaves it unset */
	h->nhandles = 1;
	*out = h;
	return 0;
}

void
http_close(struct http *h)
{
	struct http_req		*req;
	struct http_sock	*s;

	if (h == NULL || h->closing)
		return;
	/*
	 * From here the socket and timer callbacks only close polls, and
	 * a drain in progress (we may be inside a completion callback)
	 * stops after the callback returns.
	 */
	h->closing = 1;
	/*
	 * Detach, do not free: each request still belongs to whoever started
	 * it (see "Ownership" above).  What libcurl held of it goes now, the
	 * secrets in its headers and body with it; the rest ends in its
	 * owner's http_cancel() or in a failure answered once the timer is
	 * closed.
	 */
	while ((req = TAILQ_FIRST(&h->reqs)) != NULL) {
		TAILQ_REMOVE(&h->reqs, req, entry);
		curl_multi_remove_handle(h->multi, req->easy);
		http_req_release(req);
		secbuf_reset(&req->resp);
		req->detached = 1;
		TAILQ_INSERT_TAIL(&h->closed, req, entry);
	}
	h->nreqs = 0;
	/* Out of the multi handle already; closing, so none comes back. */
	while (h->npool > 0)
		curl_easy_cleanup(h->pool[--h->npool]);
	curl_multi_cleanup(h->multi);
	h->multi = NULL;
	/* Sockets libcurl did not REMOVE (e.g. cached connections). */
	while ((s = LIST_FIRST(&h->socks)) != NULL)
		http_sock_close(s);
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->timer, http_timer_closed);
}

/* CURLOPT_WRITEFUNCTION: collect the response, up to max_response. */
static size_t
http_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_req	*req = userdata;
	size_t		 n = size * nmemb;
	int		 rc;

	if (req->on_data != NULL) {
		if (n > req->max_response - req->received) {
			req->too_large = 1;
			return 0;
		}
		req->received += n;
		if ((rc = req->on_data(req->cb_arg, ptr, n)) < 0) {
			req->cb_rc = rc;
			return 0;
		}
		return n;
	}
	/* Returning less than n aborts the transfer (CURLE_WRITE_ERROR). */
	if (n > req->max_response - req->resp.len) {
		req->too_large = 1;
		return 0;
	}
	if (secbuf_append(&req->resp, ptr, n) != 0) {
		req->nomem = 1;
		return 0;
	}
	return n;
}

/* A method is an HTTP token: letters only, as all of ours are. */
static int
http_method_ok(const char *m)
{
	size_t	 i;

	for (i = 0; m[i] != '\0'; i++)
		if (!((m[i] >= 'A' && m[i] <= 'Z') || (m[i] >= 'a' &&
		    m[i] <= 'z')))
			return 0;
	return i > 0 && i <= 16;
}

/* Is c an HTTP token character (RFC 9110 tchar)? */
static int
http_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A raw request's method: any HTTP token of at most 32 bytes. */
static int
http_method_token(const char *m)
{
	size_t	 i;

	for (i = 0; m[i] != '\0'; i++)
		if (!http_tchar(m[i]))
			return 0;
	return i > 0 && i <= 32;
}

/* CURLOPT_SSL_CTX_FUNCTION: the socket is connected, TLS starts. */
static CURLcode
http_tls_start_cb(CURL *easy, void *ctx, void *userdata)
{
	struct http_req	*req = userdata;

	(void)easy;
	(void)ctx;
	req->tls_started = 1;
	return CURLE_OK;
}

/* CURLOPT_PREREQFUNCTION: connected (TLS included), about to send. */
static int
http_prereq_cb(void *userdata, char *primary_ip, char *local_ip,
    int primary_port, int local_port)
{
	struct http_req	*req = userdata;

	(void)primary_ip;
	(void)local_ip;
	(void)primary_port;
	(void)local_port;
	req->connected = 1;
	return CURL_PREREQFUNC_OK;
}

/*
 * CURLOPT_HEADERFUNCTION of a streamed request: split each line into
 * name and value and hand it on; a status line starts a response.
 */
static size_t
http_header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct http_req	*req = userdata;
	size_t		 n = size * nitems, len = n, nl, vs;
	long		 status = 0;
	int		 rc = 0;

	/* Headers count against the response's size too. */
	if (n > req->max_response - req->received) {
		req->too_large = 1;
		return 0;
	}
	req->received += n;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0)
		return n;			/* the end of a header block */
	if (len > 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* "HTTP/1.1 200 OK", "HTTP/2 200" */
		for (nl = 5; nl < len && buf[nl] != ' '; nl++)
			;
		for (vs = nl + 1; vs < len && vs < nl + 4; vs++)
			status = status * 10 + (buf[vs] >= '0' &&
			    buf[vs] <= '9' ? buf[vs] - '0' : 0);
		while (vs < len && buf[vs] == ' ')
			vs++;
		rc = req->on_header(req->cb_arg, status, NULL, 0, buf + vs,
		    len - vs);
	} else if (buf[0] == ' ' || buf[0] == '\t') {
		for (vs = 0; vs < len && (buf[vs] == ' ' || buf[vs] == '\t');
		    vs++)
			;
		rc = req->on_header(req->cb_arg, 0, buf, 0, buf + vs,
		    len - vs);
	} else {
		for (nl = 0; nl < len && buf[nl] != ':'; nl++)
			;
		if (nl == len || nl == 0)
			return n;		/* not a header: ignore it */
		for (vs = nl + 1; vs < len && (buf[vs] == ' ' ||
		    buf[vs] == '\t'); vs++)
			;
		while (len > vs && (buf[len - 1] == ' ' ||
		    buf[len - 1] == '\t'))
			len--;
		rc = req->on_header(req->cb_arg, 0, buf, nl, buf + vs,
		    len - vs);
	}
	if (rc < 0) {
		req->cb_rc = rc;
		return 0;
	}
	return n;
}

/* Append a copy of s to the request's header list. */
static int
http_add_header(struct http_req *req, const char *s)
{
	struct curl_slist	*l;

	/* On failure libcurl leaves the old list alone. */
	if ((l = curl_slist_append(req->headers, s)) == NULL)
		return -1;
	req->headers = l;
	return 0;
}

/*
 * Set every option of req's easy handle from opts.  The handle is new or
 * reset (all options at their defaults), so an option set here only for
 * some requests (CA file, timeouts, body, method) cannot leak into another.
 */
static int
http_setup(struct http_req *req, const struct http_opts *opts,
    const char *method, struct cb_error *err)
{
	CURL		*e = req->easy;
	CURLcode	 cc = CURLE_OK;
	size_t		 i;
	int		 has_ctype = 0, has_accept = 0;

#define HTTP_SETOPT(opt, val) do {					\
	if ((cc = curl_easy_setopt(e, opt, val)) != CURLE_OK)		\
		goto fail;						\
} while (0)

	for (i = 0; i < opts->nheaders; i++) {
		if (strncasecmp(opts->headers[i], "Content-Type:", 13) == 0)
			has_ctype = 1;
		if (http_add_header(req, opts->headers[i]) != 0)
			goto nomem;
	}
	for (i = 0; opts->raw && i < opts->nhlist; i++) {
		if (strncasecmp(opts->hlist[i], "Content-Type", 12) == 0 &&
		    (opts->hlist[i][12] == ':' || opts->hlist[i][12] == ';'))
			has_ctype = 1;
		if (strncasecmp(opts->hlist[i], "Accept", 6) == 0 &&
		    (opts->hlist[i][6] == ':' || opts->hlist[i][6] == ';'))
			has_accept = 1;
		if (http_add_header(req, opts->hlist[i]) != 0)
			goto nomem;
	}
	/*
	 * A raw request carries what it was given: "Name:" makes curl leave
	 * out the header it would have added on its own.
	 */
	if (opts->raw && ((!has_ctype && http_add_header(req,
	    "Content-Type:") != 0) || (!has_accept && http_add_header(req,
	    "Accept:") != 0)))
		goto nomem;
	if (!opts->raw && opts->body != NULL && !has_ctype &&
	    http_add_header(req, "Content-Type: application/json") != 0)
		goto nomem;
	/* An empty Expect: stops libcurl waiting for "100 Continue". */
	if (http_add_header(req, "Expect:") != 0)
		goto nomem;

	req->errbuf[0] = '\0';
	HTTP_SETOPT(CURLOPT_ERRORBUFFER, req->errbuf);
	HTTP_SETOPT(CURLOPT_PRIVATE, (void *)req);
	HTTP_SETOPT(CURLOPT_URL, opts->url);
	HTTP_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SETOPT(CURLOPT_PROXY, "");
	HTTP_SETOPT(CURLOPT_NOSIGNAL, 1L);
	HTTP_SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	HTTP_SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (opts->ca_file != NULL) {
		HTTP_SETOPT(CURLOPT_CAINFO, opts->ca_file);
		/* Only the configured CA: no built-in directory on top. */
		HTTP_SETOPT(CURLOPT_CAPATH, (char *)NULL);
	}
	if (opts->timeout_ms > 0) {
		HTTP_SETOPT(CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
		HTTP_SETOPT(CURLOPT_CONNECTTIMEOUT_MS,
		    (long)(opts->connect_timeout_ms > 0 &&
		    opts->connect_timeout_ms < opts->timeout_ms ?
		    opts->connect_timeout_ms : opts->timeout_ms));
	}
	if (opts->raw) {
		/* Belt and braces: http_start() checked these already. */
		HTTP_SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
		HTTP_SETOPT(CURLOPT_NOPROXY, "*");
		HTTP_SETOPT(CURLOPT_VERBOSE, 0L);
		HTTP_SETOPT(CURLOPT_MAXREDIRS, 0L);
		/*
		 * One connection per request, closed when it ends: a
		 * connection kept for reuse keeps its buffers, holding the
		 * last request and response (and, over TLS, the session's
		 * records), where nothing can wipe them until it goes.
		 */
		HTTP_SETOPT(CURLOPT_FORBID_REUSE, 1L);
		HTTP_SETOPT(CURLOPT_FRESH_CONNECT, 1L);
		if (req->connect_to != NULL)
			HTTP_SETOPT(CURLOPT_CONNECT_TO, req->connect_to);
	}
	if (opts->on_header != NULL) {
		HTTP_SETOPT(CURLOPT_HEADERFUNCTION, http_header_cb);
		HTTP_SETOPT(CURLOPT_HEADERDATA, (void *)req);
		/* Which phase a timeout strikes in (http_describe_stream). */
		HTTP_SETOPT(CURLOPT_PREREQFUNCTION, http_prereq_cb);
		HTTP_SETOPT(CURLOPT_PREREQDATA, (void *)req);
		if (strncasecmp(opts->url, "https:", 6) == 0 &&
		    curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION,
		    http_tls_start_cb) == CURLE_OK)
			HTTP_SETOPT(CURLOPT_SSL_CTX_DATA, (void *)req);
	}
	HTTP_SETOPT(CURLOPT_WRITEFUNCTION, http_write_cb);
	HTTP_SETOPT(CURLOPT_WRITEDATA, (void *)req);
	/* Refuse early when Content-Length already says it is too big. */
	HTTP_SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_response);
	HTTP_SETOPT(CURLOPT_HTTPHEADER, req->headers);

	if (opts->body != NULL) {
		/* Our wiping copy, not CURLOPT_COPYPOSTFIELDS' plain one. */
		HTTP_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)req->body.len);
		HTTP_SETOPT(CURLOPT_POSTFIELDS,
		    req->body.len > 0 ? (char *)req->body.data : "");
	} else if (strcasecmp(method, "POST") == 0) {
		HTTP_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		HTTP_SETOPT(CURLOPT_POSTFIELDS, "");
	}
	if (strcasecmp(method, "HEAD") == 0)
		HTTP_SETOPT(CURLOPT_NOBODY, 1L);
	else if (strcasecmp(method, "GET") == 0 && opts->body == NULL)
		HTTP_SETOPT(CURLOPT_HTTPGET, 1L);
	else if (strcasecmp(method, "POST") != 0)
		HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, method);
#undef HTTP_SETOPT
	return 0;
fail:
	return cb_error_set(err, CB_EINTERNAL, "cannot set up request: %s",
	    curl_easy_strerror(cc));
nomem:
	return cb_error_set(err, CB_EINTERNAL, "out of memory");
}

int
http_start(struct http *h, const struct http_opts *opts, http_done_fn done,
    void *arg, struct http_req **out, struct cb_error *err)
{
	struct http_req	*req;
	const char	*method;
	size_t		 i;
	int		 rc;

	if (out != NULL)
		*out = NULL;
	if (h->closing)
		return cb_error_set(err, CB_EINTERNAL, "http client closed");
	method = opts->method != NULL ? opts->method : "GET";
	if (opts->url == NULL || done == NULL ||
	    opts->nheaders > HTTP_HEADERS_MAX ||
	    (opts->body == NULL && opts->body_len > 0))
		return cb_error_set(err, CB_EINTERNAL, "bad http options");
	if (opts->raw ? !http_method_token(method) : !http_method_ok(method))
		return cb_error_set(err, CB_EINTERNAL, "bad http method");
	if ((opts->on_data == NULL) != (opts->on_header == NULL))
		return cb_error_set(err, CB_EINTERNAL, "bad http options");
	/* A line break would let a value forge headers or a request. */
	if (strpbrk(opts->url, "\r\n ") != NULL)
		return cb_error_set(err, CB_EBADREQ,
		    "URL contains a space or a line break");
	for (i = 0; i < opts->nheaders; i++)
		if (opts->headers[i] == NULL ||
		    strpbrk(opts->headers[i], "\r\n") != NULL)
			return cb_error_set(err, CB_EBADREQ,
			    "request header contains a line break");
	for (i = 0; opts->raw && i < opts->nhlist; i++)
		if (opts->hlist[i] == NULL ||
		    strpbrk(opts->hlist[i], "\r\n") != NULL)
			return cb_error_set(err, CB_EBADREQ,
			    "request header contains a line break");

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	req->h = h;
	req->done = done;
	req->arg = arg;
	req->timeout_ms = opts->timeout_ms;
	req->max_response = opts->max_response > 0 ? opts->max_response :
	    HTTP_MAX_RESPONSE_DEFAULT;
	req->raw = opts->raw;
	req->on_header = opts->on_header;
	req->on_data = opts->on_data;
	req->cb_arg = opts->cb_arg;
	req->connect_timeout_ms = opts->connect_timeout_ms;
	snprintf(req->label, sizeof(req->label), "%s",
	    opts->label != NULL ? opts->label : "the server");
	if (opts->raw && opts->connect_to != NULL &&
	    (req->connect_to = curl_slist_append(NULL,
	    opts->connect_to)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	if (opts->body != NULL &&
	    secbuf_append(&req->body, opts->body, opts->body_len) != 0) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	if ((req->easy = http_easy_get(h)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "curl_easy_init failed");
		goto fail;
	}
	if ((rc = http_setup(req, opts, method, err)) != 0)
		goto fail;
	/* Arms the timer at 0 ms: nothing happens before the loop runs. */
	if (curl_multi_add_handle(h->multi, req->easy) != CURLM_OK) {
		rc = cb_error_set(err, CB_EINTERNAL,
		    "curl_multi_add_handle failed");
		goto fail;
	}
	TAILQ_INSERT_TAIL(&h->reqs, req, entry);
	h->nreqs++;
	if (out != NULL)
		*out = req;
	return 0;
fail:
	http_req_free(req);
	return rc;
}

void
http_cancel(struct http_req *req)
{
	struct http	*h;

	/* Inside its own callback: it is freed when the callback returns. */
	if (req == NULL || req->in_callback)
		return;
	h = req->h;
	/* Detached by http_close(): only the owner's end is left to free. */
	if (req->detached) {
		TAILQ_REMOVE(&h->closed, req, entry);
		http_req_free(req);
		http_maybe_free(h);
		return;
	}
	TAILQ_REMOVE(&h->reqs, req, entry);
	h->nreqs--;
	/* Also drops a CURLMSG_DONE still queued for it. */
	curl_multi_remove_handle(h->multi, req->easy);
	http_req_free(req);
}

/*
 * Connections libcurl may open: at most max_host to one host, max_total in
 * all (0: no limit).  A transfer beyond them waits inside the multi handle
 * for a connection to come free instead of opening one more.  The cache
 * of idle connections is kept at the same size, so that what is allowed
 * open may also stay open for keep-alive.
 */
int
http_set_limits(struct http *h, unsigned max_host, unsigned max_total,
    struct cb_error *err)
{
	if (h->closing)
		return cb_error_set(err, CB_EINTERNAL, "http client closed");
	if (curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)max_host) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	    (long)max_total) != CURLM_OK ||
	    (max_total > 0 && curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
	    (long)max_total) != CURLM_OK))
		return cb_error_set(err, CB_EINTERNAL,
		    "curl_multi_setopt failed");
	return 0;
}

size_t
http_active(const struct http *h)
{
	return h->nreqs;
}

size_t
http_idle_handles(const struct http *h)
{
	return h->npool;
}
