/*
 * credbroker-bench-httpd: the HTTP service that the "request" and
 * "sub+curl" workloads of credbroker-bench call (docs/performance.md).
 *
 *	credbroker-bench-httpd [-p PORT]
 *
 * Listens on 127.0.0.1:PORT (0, the default: a free port), prints the
 * port on standard output, and answers every request with "200 OK" and a
 * 16-byte body, keeping the connection alive (HTTP/1.1, pipelining
 * allowed).  A request body announced by Content-Length is read and
 * dropped; chunked request bodies are not supported.  One thread, one
 * libuv loop, so that it costs little next to the broker it serves.  It
 * runs until SIGINT or SIGTERM.  Not installed.
 */
#include <arpa/inet.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <uv.h>

#define HTTPD_HEAD_MAX	(64 * 1024)

static const char httpd_answer[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 16\r\n"
    "\r\n"
    "credbroker-bench";

/* One client connection. */
struct hconn {
	uv_tcp_t	 tcp;
	char		*buf;		/* unparsed bytes */
	size_t		 len, cap;
	size_t		 skip;		/* body bytes still to drop */
};

/* One queued answer (n copies of httpd_answer, one write). */
struct hwrite {
	uv_write_t	 req;
	char		*data;
};

static uv_loop_t	*loop;

/* Close and free a connection. */
static void
hconn_closed(uv_handle_t *h)
{
	struct hconn	*c = h->data;

	free(c->buf);
	free(c);
}

/* Free a written answer. */
static void
hwrite_done(uv_write_t *req, int status)
{
	struct hwrite	*w = req->data;

	(void)status;
	free(w->data);
	free(w);
}

/* The value of Content-Length in the header block head[0..n), or 0. */
static size_t
content_length(const char *head, size_t n)
{
	const char	*p = head, *end = head + n, *nl;
	static const char name[] = "content-length:";

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if ((size_t)(nl - p) > sizeof(name) - 1 &&
		    strncasecmp(p, name, sizeof(name) - 1) == 0)
			return strtoul(p + sizeof(name) - 1, NULL, 10);
		p = nl + 1;
	}
	return 0;
}

/* Allocate room for a read. */
static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct hconn	*c = h->data;
	size_t		 want = hint < 16384 ? 16384 : hint;

	if (c->cap - c->len < want) {
		c->cap = c->len + want;
		if ((c->buf = realloc(c->buf, c->cap)) == NULL) {
			fprintf(stderr, "credbroker-bench-httpd: out of "
			    "memory\n");
			exit(1);
		}
	}
	b->base = c->buf + c->len;
	b->len = c->cap - c->len;
}

/* Parse what has arrived: answer each complete request. */
static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct hconn	*c = s->data;
	struct hwrite	*w;
	size_t		 off = 0, nans = 0, hl, i;
	char		*hend;
	uv_buf_t	 out;

	(void)b;
	if (n < 0) {
		uv_close((uv_handle_t *)s, hconn_closed);
		return;
	}
	c->len += (size_t)n;
	for (;;) {
		if (c->skip > 0) {
			hl = c->len - off < c->skip ? c->len - off : c->skip;
			off += hl;
			c->skip -= hl;
			if (c->skip > 0)
				break;
		}
		hend = memmem(c->buf + off, c->len - off, "\r\n\r\n", 4);
		if (hend == NULL)
			break;
		hl = (size_t)(hend - (c->buf + off)) + 4;
		c->skip = content_length(c->buf + off, hl);
		off += hl;
		nans++;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	if (c->len > HTTPD_HEAD_MAX) {
		uv_close((uv_handle_t *)s, hconn_closed);
		return;
	}
	if (nans == 0)
		return;
	if ((w = malloc(sizeof(*w))) == NULL ||
	    (w->data = malloc(nans * (sizeof(httpd_answer) - 1))) == NULL) {
		fprintf(stderr, "credbroker-bench-httpd: out of memory\n");
		exit(1);
	}
	for (i = 0; i < nans; i++)
		memcpy(w->data + i * (sizeof(httpd_answer) - 1), httpd_answer,
		    sizeof(httpd_answer) - 1);
	w->req.data = w;
	out = uv_buf_init(w->data,
	    (unsigned)(nans * (sizeof(httpd_answer) - 1)));
	if (uv_write(&w->req, s, &out, 1, hwrite_done) != 0) {
		free(w->data);
		free(w);
		uv_close((uv_handle_t *)s, hconn_closed);
	}
}

/* Accept a connection. */
static void
on_connection(uv_stream_t *server, int status)
{
	struct hconn	*c;

	if (status < 0)
		return;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return;
	uv_tcp_init(loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		uv_close((uv_handle_t *)&c->tcp, hconn_closed);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* SIGINT, SIGTERM: stop. */
static void
on_signal(uv_signal_t *h, int sig)
{
	(void)sig;
	uv_stop(h->loop);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in	 sin;
	struct sockaddr_storage	 ss;
	uv_signal_t		 sint, sterm;
	uv_tcp_t		 server;
	int			 ch, port = 0, len = sizeof(ss);
	char			*end;

	while ((ch = getopt(argc, argv, "p:h")) != -1) {
		switch (ch) {
		case 'p':
			port = (int)strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || port < 0 ||
			    port > 65535) {
				fprintf(stderr, "credbroker-bench-httpd: bad "
				    "port\n");
				return 2;
			}
			break;
		default:
			fprintf(stderr, "usage: credbroker-bench-httpd "
			    "[-p PORT]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	loop = uv_default_loop();
	uv_tcp_init(loop, &server);
	uv_ip4_addr("127.0.0.1", port, &sin);
	if (uv_tcp_bind(&server, (const struct sockaddr *)&sin, 0) != 0 ||
	    uv_listen((uv_stream_t *)&server, 1024, on_connection) != 0 ||
	    uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len) != 0) {
		fprintf(stderr, "credbroker-bench-httpd: cannot listen on "
		    "127.0.0.1:%d\n", port);
		return 1;
	}
	printf("%d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);
	uv_signal_init(loop, &sint);
	uv_signal_start(&sint, on_signal, SIGINT);
	uv_signal_init(loop, &sterm);
	uv_signal_start(&sterm, on_signal, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}
