/*
 * Unit tests for storage/http.c: the libcurl-multi client on a libuv loop,
 * against a real local server.
 *
 * The group setup makes a temporary directory, generates a test CA, a
 * server certificate for 127.0.0.1 and localhost signed by it, and an
 * unrelated CA with the openssl command, then starts a small Python
 * http.server (plain and TLS, one port each) whose paths answer, echo,
 * stall, send too much, fail or hang up.  Each test runs its requests in a
 * fresh loop and ends by closing the client and checking that
 * uv_loop_close() returns 0, i.e. that no handle was leaked.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "cb_error.h"
#include "http.h"
#include "secbuf.h"

/*
 * The server.  /ok answers 200 with JSON; /echo returns the method, the
 * headers of interest, the body and the client's port (the same port twice
 * means a kept-alive connection); /slow waits 2 s; /big sends 5 MiB
 * with a Content-Length, /bigstream 5 MiB without one; /status/N answers
 * N; /redirect answers 302 to /ok; /close hangs up without answering.
 */
static const char server_py[] =
"import http.server, json, ssl, sys, threading, time\n"
"d = sys.argv[1]\n"
"class H(http.server.BaseHTTPRequestHandler):\n"
"    protocol_version = 'HTTP/1.1'\n"
"    def log_message(self, *a):\n"
"        pass\n"
"    def send(self, code, data, extra=()):\n"
"        self.send_response(code)\n"
"        self.send_header('Content-Type', 'application/json')\n"
"        self.send_header('Content-Length', str(len(data)))\n"
"        for k, v in extra:\n"
"            self.send_header(k, v)\n"
"        self.end_headers()\n"
"        self.wfile.write(data)\n"
"    def route(self):\n"
"        n = int(self.headers.get('Content-Length') or 0)\n"
"        b = self.rfile.read(n) if n else b''\n"
"        p = self.path\n"
"        if p == '/ok':\n"
"            self.send(200, b'{\"ok\": true}')\n"
"        elif p == '/echo':\n"
"            h = self.headers\n"
"            self.send(200, json.dumps({'method': self.command,\n"
"                'body': b.decode('latin-1'), 'x_test': h.get('X-Test'),\n"
"                'x_token': h.get('X-Vault-Token'),\n"
"                'content_type': h.get('Content-Type'),\n"
"                'expect': h.get('Expect'),\n"
"                'port': self.client_address[1]}).encode())\n"
"        elif p == '/slow':\n"
"            time.sleep(2)\n"
"            self.send(200, b'{\"slow\": true}')\n"
"        elif p == '/big':\n"
"            self.send(200, b'x' * (5 << 20))\n"
"        elif p == '/bigstream':\n"
"            self.send_response(200)\n"
"            self.send_header('Connection', 'close')\n"
"            self.end_headers()\n"
"            for i in range(80):\n"
"                self.wfile.write(b'y' * 65536)\n"
"            self.close_connection = True\n"
"        elif p.startswith('/status/'):\n"
"            self.send(int(p[8:]), b'{\"errors\": [\"busy\"]}')\n"
"        elif p == '/redirect':\n"
"            self.send(302, b'{}', [('Location', '/ok')])\n"
"        elif p == '/close':\n"
"            self.close_connection = True\n"
"        else:\n"
"            self.send(404, b'{}')\n"
"    do_GET = do_POST = do_PUT = do_DELETE = do_LIST = route\n"
"class S(http.server.ThreadingHTTPServer):\n"
"    daemon_threads = True\n"
"    request_queue_size = 64\n"
"    def handle_error(self, request, address):\n"
"        pass\n"
"ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
"ctx.load_cert_chain(d + '/srv.pem', d + '/srv.key')\n"
"class T(S):\n"
"    def get_request(self):\n"
"        s, a = self.socket.accept()\n"
"        # Handshake in the handler thread, on first read.\n"
"        return ctx.wrap_socket(s, server_side=True,\n"
"            do_handshake_on_connect=False), a\n"
"plain = S(('127.0.0.1', 0), H)\n"
"tls = T(('127.0.0.1', 0), H)\n"
"threading.Thread(target=tls.serve_forever, daemon=True).start()\n"
"print(plain.server_address[1], tls.server_address[1], flush=True)\n"
"plain.serve_forever()\n";

static struct {
	char	 dir[PATH_MAX];
	pid_t	 pid;
	int	 port;
	int	 tls_port;
} srv = { .pid = -1 };

/* The fixture of one test: a loop and a client on it. */
struct fix {
	uv_loop_t	 loop;
	struct http	*h;
	bool		 closed;
};

/* What one completion saw. */
struct res {
	struct fix	*f;
	int		 called;
	long		 status;
	int		 code;
	char		 msg[CB_ERRMSG_MAX];
	char		*body;		/* NUL-terminated copy */
	size_t		 len;
	uint64_t	 at_ms;		/* uv_hrtime() at the callback */
	/* Actions of the re-entrancy tests, run inside the callback. */
	struct http_req	*cancel;	/* http_cancel() this one */
	struct http_req	*self;		/* our own handle, cancelled too */
	bool		 close;		/* http_close() */
	struct res	*chain;		/* start GET /echo into this one */
	int		 chain_rc;
};

/* dir/name into buf; false when it does not fit. */
static bool
join(char *buf, size_t sz, const char *name)
{
	int	 n;

	n = snprintf(buf, sz, "%s/%s", srv.dir, name);
	return n > 0 && (size_t)n < sz;
}

/* Run argv, its output discarded; true when it exits with 0. */
static bool
run(char *const argv[])
{
	pid_t	 pid;
	int	 st, fd;

	if ((pid = fork()) < 0)
		return false;
	if (pid == 0) {
		if ((fd = open("/dev/null", O_RDWR)) >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (chdir(srv.dir) != 0)
			_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid)
		return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Write s to dir/name. */
static bool
write_file(const char *name, const char *s)
{
	char	 path[PATH_MAX];
	FILE	*fp;
	bool	 ok;

	if (!join(path, sizeof(path), name) || (fp = fopen(path, "w")) == NULL)
		return false;
	ok = fputs(s, fp) >= 0;
	return fclose(fp) == 0 && ok;
}

/* Test CA, server certificate signed by it, and an unrelated CA. */
static bool
make_certs(void)
{
	char *ca[] = { "openssl", "req", "-x509", "-newkey", "ec",
	    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days",
	    "2", "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out",
	    "ca.pem", NULL };
	char *other[] = { "openssl", "req", "-x509", "-newkey", "ec",
	    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days",
	    "2", "-subj", "/CN=other-ca", "-keyout", "other.key", "-out",
	    "other.pem", NULL };
	char *csr[] = { "openssl", "req", "-newkey", "ec", "-pkeyopt",
	    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
	    "-keyout", "srv.key", "-out", "srv.csr", NULL };
	char *sign[] = { "openssl", "x509", "-req", "-in", "srv.csr", "-CA",
	    "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
	    "-extfile", "ext.cnf", "-out", "srv.pem", NULL };

	return write_file("ext.cnf",
	    "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
	    "basicConstraints=CA:FALSE\n"
	    "extendedKeyUsage=serverAuth\n") &&
	    run(ca) && run(other) && run(csr) && run(sign);
}

/* Start the Python server and read its two ports. */
static bool
start_server(void)
{
	char	 path[PATH_MAX], line[64];
	int	 p[2], fd;
	FILE	*fp;
	bool	 ok;

	if (!write_file("server.py", server_py) ||
	    !join(path, sizeof(path), "server.py") || pipe(p) != 0)
		return false;
	if ((srv.pid = fork()) < 0)
		return false;
	if (srv.pid == 0) {
		/* Never outlive the test, even when it crashes. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		close(p[0]);
		dup2(p[1], 1);
		if ((fd = open("/dev/null", O_RDWR)) >= 0) {
			dup2(fd, 0);
			dup2(fd, 2);
		}
		execl("/usr/bin/python3", "python3", path, srv.dir,
		    (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if ((fp = fdopen(p[0], "r")) == NULL)
		return false;
	ok = fgets(line, sizeof(line), fp) != NULL &&
	    sscanf(line, "%d %d", &srv.port, &srv.tls_port) == 2;
	fclose(fp);
	return ok;
}

/* Remove the temporary directory and what is in it. */
static void
remove_dir(void)
{
	char		 path[PATH_MAX];
	DIR		*d;
	struct dirent	*e;

	if (srv.dir[0] == '\0' || (d = opendir(srv.dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (join(path, sizeof(path), e->d_name))
			unlink(path);
	}
	closedir(d);
	rmdir(srv.dir);
}

static int
group_setup(void **state)
{
	const char	*tmp = getenv("TMPDIR");

	/* /close and aborted transfers may write to a closed socket. */
	signal(SIGPIPE, SIG_IGN);
	/* A hung loop fails the test instead of blocking ctest. */
	alarm(60);
	snprintf(srv.dir, sizeof(srv.dir), "%s/cb-http-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(srv.dir) == NULL) {
		srv.dir[0] = '\0';
		return -1;
	}
	if (!make_certs()) {
		fprintf(stderr, "cannot generate certificates with openssl\n");
		return -1;
	}
	if (!start_server()) {
		fprintf(stderr, "cannot start the python server\n");
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	if (srv.pid > 0) {
		kill(srv.pid, SIGTERM);
		waitpid(srv.pid, NULL, 0);
		srv.pid = -1;
	}
	remove_dir();
	return 0;
}

static int
setup(void **state)
{
	struct fix	*f;
	struct cb_error	 err;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	if (uv_loop_init(&f->loop) != 0 ||
	    http_init(&f->loop, &f->h, &err) != 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	free(*state);
	return 0;
}

/* Close the client (unless a test did), run the loop dry, check no leak. */
static void
finish(struct fix *f)
{
	if (!f->closed)
		http_close(f->h);
	f->closed = true;
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void
res_free(struct res *r)
{
	free(r->body);
	r->body = NULL;
}

static uint64_t
now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static void	 done_cb(void *, long, const struct secbuf *,
		    const struct cb_error *);

/* Start method url (path on the plain or TLS port) into r. */
static int
start_full(struct fix *f, const char *method, const char *url,
    const char *ca, const char *body, const char *const *hdrs,
    size_t nhdrs, unsigned timeout_ms, size_t max, struct res *r,
    struct http_req **req)
{
	struct http_opts o;
	struct cb_error	 err;
	size_t		 i;
	int		 rc;

	memset(&o, 0, sizeof(o));
	o.method = method;
	o.url = url;
	o.ca_file = ca;
	o.timeout_ms = timeout_ms;
	o.max_response = max;
	if (body != NULL) {
		o.body = body;
		o.body_len = strlen(body);
	}
	for (i = 0; i < nhdrs; i++)
		o.headers[i] = hdrs[i];
	o.nheaders = nhdrs;
	r->f = f;
	cb_error_clear(&err);
	rc = http_start(f->h, &o, done_cb, r, req, &err);
	if (rc != 0)
		snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
	return rc;
}

/* A URL on the plain server. */
static const char *
url_plain(char *buf, size_t sz, const char *path)
{
	snprintf(buf, sz, "http://127.0.0.1:%d%s", srv.port, path);
	return buf;
}

/* A URL on the TLS server, by IP or by name. */
static const char *
url_tls(char *buf, size_t sz, const char *host, const char *path)
{
	snprintf(buf, sz, "https://%s:%d%s", host, srv.tls_port, path);
	return buf;
}

/* A file in the temporary directory. */
static const char *
tmpfile_path(char *buf, size_t sz, const char *name)
{
	if (!join(buf, sz, name))
		buf[0] = '\0';
	return buf;
}

/* Plain GET of path with a 5 s timeout. */
static void
get(struct fix *f, const char *path, struct res *r, struct http_req **req)
{
	char	 url[256];

	assert_int_equal(start_full(f, "GET", url_plain(url, sizeof(url),
	    path), NULL, NULL, NULL, 0, 5000, 0, r, req), 0);
}

static void
done_cb(void *arg, long status, const struct secbuf *body,
    const struct cb_error *err)
{
	struct res	*r = arg;
	char		 url[256];

	r->called++;
	r->status = status;
	r->code = err->code;
	snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
	r->at_ms = now_ms();
	free(r->body);
	r->len = body->len;
	if ((r->body = malloc(body->len + 1)) != NULL) {
		if (body->len > 0)
			memcpy(r->body, body->data, body->len);
		r->body[body->len] = '\0';
	}
	if (r->cancel != NULL)
		http_cancel(r->cancel);
	if (r->self != NULL)
		http_cancel(r->self);	/* must be a no-op */
	if (r->chain != NULL) {
		r->chain_rc = start_full(r->f, "POST",
		    url_plain(url, sizeof(url), "/echo"), NULL, "chained",
		    NULL, 0, 5000, 0, r->chain, NULL);
	}
	if (r->close) {
		http_close(r->f->h);
		r->f->closed = true;
	}
}

static void
test_get_ok(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 };

	get(f, "/ok", &r, NULL);
	assert_int_equal(http_active(f->h), 1);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"ok\": true}");
	assert_int_equal(http_active(f->h), 0);
	res_free(&r);
	finish(f);
}

static void
test_post_echo(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 };
	const char	*hdrs[] = { "X-Test: hello", "X-Vault-Token: s.abc" };
	char		 url[256];

	assert_int_equal(start_full(f, "POST", url_plain(url, sizeof(url),
	    "/echo"), NULL, "{\"a\": 1}", hdrs, 2, 5000, 0, &r, NULL), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"method\": \"POST\""));
	assert_non_null(strstr(r.body, "\"body\": \"{\\\"a\\\": 1}\""));
	assert_non_null(strstr(r.body, "\"x_test\": \"hello\""));
	assert_non_null(strstr(r.body, "\"x_token\": \"s.abc\""));
	assert_non_null(strstr(r.body,
	    "\"content_type\": \"application/json\""));
	assert_non_null(strstr(r.body, "\"expect\": null"));
	res_free(&r);
	finish(f);
}

static void
test_list_method(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 }, d = { 0 };
	char		 url[256];

	assert_int_equal(start_full(f, "LIST", url_plain(url, sizeof(url),
	    "/echo"), NULL, NULL, NULL, 0, 5000, 0, &r, NULL), 0);
	assert_int_equal(start_full(f, "DELETE", url, NULL, NULL, NULL, 0,
	    5000, 0, &d, NULL), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"method\": \"LIST\""));
	assert_non_null(strstr(r.body, "\"content_type\": null"));
	assert_int_equal(d.status, 200);
	assert_non_null(strstr(d.body, "\"method\": \"DELETE\""));
	res_free(&r);
	res_free(&d);
	finish(f);
}

static void
test_status_503(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 };

	get(f, "/status/503", &r, NULL);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.status, 503);
	assert_non_null(strstr(r.body, "busy"));
	res_free(&r);
	finish(f);
}

static void
test_no_redirect(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 };

	get(f, "/redirect", &r, NULL);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.status, 302);
	res_free(&r);
	finish(f);
}

static void
test_refused(void **state)
{
	struct fix		*f = *state;
	struct res		 r = { 0 };
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	char			 url[256];
	int			 s;

	/* A port that was free a moment ago and has no listener now. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((s = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	close(s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok",
	    ntohs(sin.sin_port));

	assert_int_equal(start_full(f, "GET", url, NULL, NULL, NULL, 0, 5000,
	    0, &r, NULL), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	print_message("%s\n", r.msg);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, CB_EUNAVAILABLE);
	assert_int_equal(r.status, 0);
	assert_non_null(strcasestr(r.msg, "connect"));
	res_free(&r);
	finish(f);
}

static void
test_timeout(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 };
	char		 url[256];
	uint64_t	 t0;

	t0 = now_ms();
	assert_int_equal(start_full(f, "GET", url_plain(url, sizeof(url),
	    "/slow"), NULL, NULL, NULL, 0, 300, 0, &r, NULL), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	print_message("%s\n", r.msg);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, CB_EUNAVAILABLE);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.msg, "timed out after 300 ms"));
	assert_true(r.at_ms - t0 >= 250);
	assert_true(r.at_ms - t0 < 1000);
	res_free(&r);
	finish(f);
}

static void
test_too_large(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 }, s = { 0 };
	char		 url[256];

	/* With a Content-Length, and streamed until the connection closes. */
	assert_int_equal(start_full(f, "GET", url_plain(url, sizeof(url),
	    "/big"), NULL, NULL, NULL, 0, 5000, 1 << 20, &r, NULL), 0);
	assert_int_equal(start_full(f, "GET", url_plain(url, sizeof(url),
	    "/bigstream"), NULL, NULL, NULL, 0, 5000, 1 << 20, &s, NULL), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(r.code, CB_EUNAVAILABLE);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.len, 0);
	assert_string_equal(r.msg, "response larger than 1048576 bytes");
	assert_int_equal(s.code, CB_EUNAVAILABLE);
	assert_int_equal(s.status, 0);
	assert_int_equal(s.len, 0);
	assert_string_equal(s.msg, "response larger than 1048576 bytes");
	res_free(&r);
	res_free(&s);
	finish(f);
}

static void
test_server_closes(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 };

	get(f, "/close", &r, NULL);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	print_message("%s\n", r.msg);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, CB_EUNAVAILABLE);
	assert_int_equal(r.status, 0);
	assert_true(r.msg[0] != '\0');
	res_free(&r);
	finish(f);
}

static void
test_concurrent(void **state)
{
	struct fix	*f = *state;
	struct res	 r[20];
	char		 url[256], body[32], want[64];
	size_t		 i;

	memset(r, 0, sizeof(r));
	url_plain(url, sizeof(url), "/echo");
	for (i = 0; i < 20; i++) {
		snprintf(body, sizeof(body), "request %zu", i);
		assert_int_equal(start_full(f, "POST", url, NULL, body, NULL,
		    0, 5000, 0, &r[i], NULL), 0);
	}
	assert_int_equal(http_active(f->h), 20);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(http_active(f->h), 0);
	/* 20 handles were in use at once: only a bounded few are kept. */
	assert_int_equal(http_idle_handles(f->h), 16);
	for (i = 0; i < 20; i++) {
		snprintf(want, sizeof(want), "\"body\": \"request %zu\"", i);
		assert_int_equal(r[i].called, 1);
		assert_int_equal(r[i].code, 0);
		assert_int_equal(r[i].status, 200);
		assert_non_null(strstr(r[i].body, want));
		res_free(&r[i]);
	}
	finish(f);
}

static void
test_chain(void **state)
{
	struct fix	*f = *state;
	struct res	 first = { 0 }, second = { 0 };

	first.chain = &second;
	get(f, "/ok", &first, NULL);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(first.called, 1);
	assert_int_equal(first.status, 200);
	assert_int_equal(first.chain_rc, 0);
	assert_int_equal(second.called, 1);
	assert_int_equal(second.status, 200);
	assert_non_null(strstr(second.body, "\"body\": \"chained\""));
	res_free(&first);
	res_free(&second);
	finish(f);
}

/* Timer callback: cancel the request in t->data. */
static void
cancel_timer_cb(uv_timer_t *t)
{
	http_cancel(t->data);
	uv_close((uv_handle_t *)t, NULL);
}

static void
test_cancel(void **state)
{
	struct fix	*f = *state;
	struct res	 slow = { 0 }, early = { 0 }, ok = { 0 };
	struct http_req	*req_slow, *req_early;
	uv_timer_t	 t;
	uint64_t	 t0;

	/* Cancelled before the loop ever ran. */
	get(f, "/ok", &early, &req_early);
	assert_non_null(req_early);
	http_cancel(req_early);
	/* Cancelled in flight, 100 ms in, while another completes. */
	get(f, "/slow", &slow, &req_slow);
	get(f, "/ok", &ok, NULL);
	assert_int_equal(http_active(f->h), 2);
	uv_timer_init(&f->loop, &t);
	t.data = req_slow;
	uv_timer_start(&t, cancel_timer_cb, 100, 0);
	t0 = now_ms();
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_true(now_ms() - t0 < 1500);
	assert_int_equal(early.called, 0);
	assert_int_equal(slow.called, 0);
	assert_int_equal(ok.called, 1);
	assert_int_equal(ok.status, 200);
	assert_int_equal(http_active(f->h), 0);
	res_free(&ok);
	finish(f);
}

static void
test_cancel_from_callback(void **state)
{
	struct fix	*f = *state;
	struct res	 a = { 0 }, b = { 0 };
	struct http_req	*ra, *rb;
	uint64_t	 t0;

	t0 = now_ms();
	get(f, "/slow", &b, &rb);
	get(f, "/ok", &a, &ra);
	a.cancel = rb;
	a.self = ra;		/* cancelling itself in its callback: no-op */
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_true(now_ms() - t0 < 1500);
	assert_int_equal(a.called, 1);
	assert_int_equal(a.status, 200);
	assert_int_equal(b.called, 0);
	res_free(&a);
	finish(f);
}

/* A request ended by http_close(): one failure, no answer. */
static void
assert_closed_failure(struct res *r)
{
	assert_int_equal(r->called, 1);
	assert_int_equal(r->status, 0);
	assert_int_equal(r->code, CB_EUNAVAILABLE);
	assert_int_equal(r->len, 0);
	res_free(r);
}

static void
test_close_pending(void **state)
{
	struct fix	*f = *state;
	struct res	 r[3];
	int		 i;

	memset(r, 0, sizeof(r));
	get(f, "/slow", &r[0], NULL);
	get(f, "/ok", &r[1], NULL);
	get(f, "/echo", &r[2], NULL);
	http_close(f->h);
	f->closed = true;
	/* Not from inside http_close(): from the loop, once each. */
	assert_int_equal(r[0].called + r[1].called + r[2].called, 0);
	finish(f);
	for (i = 0; i < 3; i++)
		assert_closed_failure(&r[i]);
}

static void
test_close_then_owner_cancels(void **state)
{
	struct fix	*f = *state;
	struct res	 a = { 0 }, b = { 0 };
	struct http_req	*ra, *rb;

	/*
	 * The client is closed under requests whose owners still hold them:
	 * each owner may still cancel its own, which frees it, once.
	 */
	get(f, "/slow", &a, &ra);
	get(f, "/slow", &b, &rb);
	http_close(f->h);
	f->closed = true;
	http_cancel(ra);
	finish(f);
	assert_int_equal(a.called, 0);
	assert_closed_failure(&b);
	(void)rb;
}

/* Callback that cancels another request detached by the same close. */
static void
close_cancel_cb(void *arg, long status, const struct secbuf *body,
    const struct cb_error *err)
{
	struct res	*r = arg;

	r->called++;
	r->code = err->code;
	if (r->cancel != NULL)
		http_cancel(r->cancel);
}

static void
test_close_failure_callback_cancels_another(void **state)
{
	struct fix	*f = *state;
	struct res	 a = { 0 }, b = { 0 };
	struct http_req	*rb;
	struct http_opts o;
	char		 url[256];

	memset(&o, 0, sizeof(o));
	o.url = url_plain(url, sizeof(url), "/slow");
	o.timeout_ms = 5000;
	assert_int_equal(http_start(f->h, &o, close_cancel_cb, &a, NULL,
	    NULL), 0);
	assert_int_equal(http_start(f->h, &o, close_cancel_cb, &b, &rb,
	    NULL), 0);
	a.cancel = rb;
	http_close(f->h);
	f->closed = true;
	finish(f);
	assert_int_equal(a.called, 1);
	assert_int_equal(a.code, CB_EUNAVAILABLE);
	assert_int_equal(b.called, 0);
}

/* Timer callback: close the client of the fixture in t->data. */
static void
close_timer_cb(uv_timer_t *t)
{
	struct fix	*f = t->data;

	http_close(f->h);
	f->closed = true;
	uv_close((uv_handle_t *)t, NULL);
}

static void
test_close_in_flight(void **state)
{
	struct fix	*f = *state;
	struct res	 r[3];
	uv_timer_t	 t;
	uint64_t	 t0;

	/* Sockets are open and polled when the client goes away. */
	memset(r, 0, sizeof(r));
	get(f, "/slow", &r[0], NULL);
	get(f, "/slow", &r[1], NULL);
	get(f, "/ok", &r[2], NULL);
	uv_timer_init(&f->loop, &t);
	t.data = f;
	uv_timer_start(&t, close_timer_cb, 200, 0);
	t0 = now_ms();
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_true(f->closed);
	assert_true(now_ms() - t0 < 1500);
	/* The two cut short are answered with a failure, once each. */
	assert_closed_failure(&r[0]);
	assert_closed_failure(&r[1]);
	assert_int_equal(r[2].called, 1);
	assert_int_equal(r[2].status, 200);
	res_free(&r[2]);
	finish(f);
}

static void
test_close_from_callback(void **state)
{
	struct fix	*f = *state;
	struct res	 a = { 0 }, b = { 0 }, c = { 0 };

	get(f, "/slow", &b, NULL);
	get(f, "/ok", &a, NULL);
	a.close = true;
	a.chain = &c;		/* started, then dropped by the close */
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_true(f->closed);
	assert_int_equal(a.called, 1);
	assert_int_equal(a.status, 200);
	assert_int_equal(a.chain_rc, 0);
	/* Pending at the close (b), or started just before it (c). */
	assert_closed_failure(&b);
	assert_closed_failure(&c);
	res_free(&a);
	finish(f);
}

static void
test_tls_ok(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 }, n = { 0 };
	char		 url[256], url2[256], ca[PATH_MAX];

	tmpfile_path(ca, sizeof(ca), "ca.pem");
	assert_int_equal(start_full(f, "GET", url_tls(url, sizeof(url),
	    "127.0.0.1", "/ok"), ca, NULL, NULL, 0, 5000, 0, &r, NULL), 0);
	assert_int_equal(start_full(f, "POST", url_tls(url2, sizeof(url2),
	    "localhost", "/echo"), ca, "over tls", NULL, 0, 5000, 0, &n,
	    NULL), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	if (r.code != 0 || n.code != 0)
		print_error("tls: '%s' / '%s'\n", r.msg, n.msg);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"ok\": true}");
	assert_int_equal(n.code, 0);
	assert_int_equal(n.status, 200);
	assert_non_null(strstr(n.body, "\"body\": \"over tls\""));
	res_free(&r);
	res_free(&n);
	finish(f);
}

static void
test_tls_wrong_ca(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 };
	char		 url[256], ca[PATH_MAX];

	tmpfile_path(ca, sizeof(ca), "other.pem");
	assert_int_equal(start_full(f, "GET", url_tls(url, sizeof(url),
	    "127.0.0.1", "/ok"), ca, NULL, NULL, 0, 5000, 0, &r, NULL), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	print_message("%s\n", r.msg);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, CB_EUNAVAILABLE);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.msg, "certificate"));
	res_free(&r);
	finish(f);
}

static void
test_tls_system_store(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 };
	char		 url[256];

	/* The test CA is in no system store: verification must fail. */
	assert_int_equal(start_full(f, "GET", url_tls(url, sizeof(url),
	    "127.0.0.1", "/ok"), NULL, NULL, NULL, 0, 5000, 0, &r, NULL), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	print_message("%s\n", r.msg);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.code, CB_EUNAVAILABLE);
	assert_int_equal(r.status, 0);
	assert_null(strstr(r.body, "ok"));
	res_free(&r);
	finish(f);
}

static void
test_bad_requests(void **state)
{
	struct fix	*f = *state;
	struct res	 r = { 0 }, file = { 0 };
	struct http_req	*req = (struct http_req *)&r;
	const char	*inject[] = { "X-Test: a\r\nX-Evil: b" };
	char		 url[256];

	url_plain(url, sizeof(url), "/echo");
	assert_int_equal(start_full(f, "GET", url, NULL, NULL, inject, 1,
	    5000, 0, &r, &req), -CB_EBADREQ);
	assert_null(req);
	assert_int_equal(start_full(f, "GET /x", url, NULL, NULL, NULL, 0,
	    5000, 0, &r, NULL), -CB_EINTERNAL);
	assert_int_equal(start_full(f, "GET", "http://127.0.0.1/a\r\nb",
	    NULL, NULL, NULL, 0, 5000, 0, &r, NULL), -CB_EBADREQ);
	assert_int_equal(http_active(f->h), 0);
	/* Only http and https: file:// fails in the callback. */
	assert_int_equal(start_full(f, "GET", "file:///etc/hostname", NULL,
	    NULL, NULL, 0, 5000, 0, &file, NULL), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	print_message("%s\n", file.msg);
	assert_int_equal(r.called, 0);
	assert_int_equal(file.called, 1);
	assert_int_equal(file.code, CB_EUNAVAILABLE);
	assert_int_equal(file.len, 0);
	res_free(&file);
	finish(f);
}

/* The client port /echo saw, or -1. */
static int
echo_port(const struct res *r)
{
	const char	*p;

	if (r->body == NULL || (p = strstr(r->body, "\"port\": ")) == NULL)
		return -1;
	return atoi(p + 8);
}

/* One step of test_reuse: a request, then what /echo must have seen. */
struct reuse_step {
	const char	*method;
	const char	*path;
	bool		 tls;
	const char	*ca;		/* file in the temporary directory */
	const char	*body;
	const char	*hdrs[3];
	size_t		 nhdrs;
	unsigned	 timeout_ms;
	size_t		 max;
	int		 code;		/* expected err->code */
	long		 status;
	const char	*want[6];	/* substrings of the answer */
};

static void
test_reuse(void **state)
{
	/*
	 * One request at a time, so every request after the first runs on
	 * the one easy handle the client keeps: each must see only its own
	 * method, headers, body, CA and limits, nothing left over from the
	 * request before (curl_easy_reset() clears them all).
	 */
	static const struct reuse_step steps[] = {
		{ "POST", "/echo", false, NULL, "first",
		    { "X-Test: one", "X-Vault-Token: s.one" }, 2, 5000, 0,
		    0, 200, { "\"method\": \"POST\"", "\"body\": \"first\"",
		    "\"x_test\": \"one\"", "\"x_token\": \"s.one\"",
		    "\"content_type\": \"application/json\"",
		    "\"expect\": null" } },
		{ "GET", "/echo", false, NULL, NULL, { NULL }, 0, 5000, 0,
		    0, 200, { "\"method\": \"GET\"", "\"body\": \"\"",
		    "\"x_test\": null", "\"x_token\": null",
		    "\"content_type\": null" } },
		{ "LIST", "/echo", false, NULL, NULL, { "X-Test: three" }, 1,
		    5000, 0, 0, 200, { "\"method\": \"LIST\"",
		    "\"body\": \"\"", "\"x_test\": \"three\"",
		    "\"x_token\": null" } },
		{ "PUT", "/echo", false, NULL, "fourth",
		    { "Content-Type: text/plain" }, 1, 5000, 0, 0, 200,
		    { "\"method\": \"PUT\"", "\"body\": \"fourth\"",
		    "\"content_type\": \"text/plain\"", "\"x_test\": null" } },
		{ "POST", "/echo", false, NULL, NULL, { NULL }, 0, 5000, 0,
		    0, 200, { "\"method\": \"POST\"", "\"body\": \"\"" } },
		{ "DELETE", "/echo", false, NULL, NULL, { NULL }, 0, 5000, 0,
		    0, 200, { "\"method\": \"DELETE\"", "\"body\": \"\"",
		    "\"x_token\": null" } },
		/* A response cap, then none: the cap must not stay. */
		{ "GET", "/big", false, NULL, NULL, { NULL }, 0, 5000,
		    1 << 20, CB_EUNAVAILABLE, 0, { "" } },
		{ "GET", "/big", false, NULL, NULL, { NULL }, 0, 5000, 0,
		    CB_EUNAVAILABLE, 0, { "" } },
		{ "GET", "/big", false, NULL, NULL, { NULL }, 0, 5000,
		    8 << 20, 0, 200, { "xxxx" } },
		/* A timeout, then none: /slow must be waited for. */
		{ "GET", "/slow", false, NULL, NULL, { NULL }, 0, 300, 0,
		    CB_EUNAVAILABLE, 0, { "" } },
		{ "GET", "/slow", false, NULL, NULL, { NULL }, 0, 0, 0,
		    0, 200, { "\"slow\": true" } },
		/* A CA file, then the system store: verification fails. */
		{ "GET", "/ok", true, "ca.pem", NULL, { NULL }, 0, 5000, 0,
		    0, 200, { "\"ok\": true" } },
		{ "GET", "/ok", true, NULL, NULL, { NULL }, 0, 5000, 0,
		    CB_EUNAVAILABLE, 0, { "" } },
		{ "GET", "/ok", true, "other.pem", NULL, { NULL }, 0, 5000, 0,
		    CB_EUNAVAILABLE, 0, { "" } },
		{ "POST", "/echo", true, "ca.pem", "over tls",
		    { "X-Test: tls" }, 1, 5000, 0, 0, 200,
		    { "\"method\": \"POST\"", "\"body\": \"over tls\"",
		    "\"x_test\": \"tls\"" } },
	};
	struct fix		*f = *state;
	const struct reuse_step	*st;
	struct res		 r;
	char			 url[256], ca[PATH_MAX];
	size_t			 i, j;
	int			 port = -1;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		st = &steps[i];
		memset(&r, 0, sizeof(r));
		if (st->tls)
			url_tls(url, sizeof(url), "127.0.0.1", st->path);
		else
			url_plain(url, sizeof(url), st->path);
		if (st->ca != NULL)
			tmpfile_path(ca, sizeof(ca), st->ca);
		assert_int_equal(start_full(f, st->method, url,
		    st->ca != NULL ? ca : NULL, st->body, st->hdrs,
		    st->nhdrs, st->timeout_ms, st->max, &r, NULL), 0);
		/* The idle handle was taken, not a new one made. */
		assert_int_equal(http_idle_handles(f->h), 0);
		assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
		assert_int_equal(http_idle_handles(f->h), 1);
		if (r.code != st->code || r.status != st->status)
			print_error("step %zu: %s %s: %ld '%s'\n", i,
			    st->method, st->path, r.status, r.msg);
		assert_int_equal(r.called, 1);
		assert_int_equal(r.code, st->code);
		assert_int_equal(r.status, st->status);
		if (st->code != 0)
			assert_int_equal(r.len, 0);
		for (j = 0; j < 6 && st->want[j] != NULL; j++)
			if (strstr(r.body, st->want[j]) == NULL)
				fail_msg("step %zu: no '%s' in %.200s", i,
				    st->want[j], r.body);
		/* The first two share a kept-alive connection. */
		if (i == 0)
			port = echo_port(&r);
		if (i == 1) {
			assert_true(port > 0);
			assert_int_equal(echo_port(&r), port);
		}
		res_free(&r);
	}
	finish(f);
}

/* What a streamed (raw) request saw through its callbacks. */
struct sres {
	struct res	 r;		/* completion */
	int		 statuses;	/* status lines */
	long		 status;	/* from the last status line */
	char		 reason[64];
	char		 headers[1024];	/* "name=value;" in order */
	char		*body;
	size_t		 len;
	int		 chunks;
};

static int
s_header(void *arg, long status, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
	struct sres	*s = arg;
	size_t		 n = strlen(s->headers);

	if (name == NULL) {
		s->statuses++;
		s->status = status;
		snprintf(s->reason, sizeof(s->reason), "%.*s", (int)vlen,
		    value);
		s->headers[0] = '\0';
		return 0;
	}
	snprintf(s->headers + n, sizeof(s->headers) - n, "%.*s=%.*s;",
	    (int)nlen, name, (int)vlen, value);
	return 0;
}

static int
s_data(void *arg, const void *p, size_t n)
{
	struct sres	*s = arg;
	char		*b;

	if ((b = realloc(s->body, s->len + n + 1)) == NULL)
		return -CB_EINTERNAL;
	memcpy(b + s->len, p, n);
	s->len += n;
	b[s->len] = '\0';
	s->body = b;
	s->chunks++;
	return 0;
}

/* A raw, streamed request to url, pinned to 127.0.0.1 and port. */
static int
start_raw(struct fix *f, const char *method, const char *url, int port,
    const char *const *hlist, size_t n, const char *body,
    unsigned timeout_ms, size_t max, struct sres *s)
{
	struct http_opts	 o;
	struct cb_error		 err;
	char			 to[64];

	snprintf(to, sizeof(to), "::127.0.0.1:%d", port);
	memset(&o, 0, sizeof(o));
	o.method = method;
	o.url = url;
	o.raw = true;
	o.hlist = (char *const *)hlist;
	o.nhlist = n;
	o.body = body;
	o.body_len = body != NULL ? strlen(body) : 0;
	o.timeout_ms = timeout_ms;
	o.max_response = max;
	o.connect_to = to;
	o.label = "http://pinned.invalid";
	o.on_header = s_header;
	o.on_data = s_data;
	o.cb_arg = s;
	s->r.f = f;
	cb_error_clear(&err);
	return http_start(f->h, &o, done_cb, &s->r, NULL, &err);
}

static void
sres_free(struct sres *s)
{
	res_free(&s->r);
	free(s->body);
}

/*
 * A raw request goes to the pinned address whatever the URL's host (a
 * name that resolves nowhere), carries only the headers it is given
 * (no Content-Type or Accept of curl's own), and streams its response
 * through the callbacks: status line, headers in order, body.
 */
static void
test_raw_pinned_streamed(void **state)
{
	struct fix	*f = *state;
	struct sres	 s = { 0 };
	const char	*h[] = { "X-Test: raw", "X-Empty;" };
	char		 url[256];

	snprintf(url, sizeof(url), "http://pinned.invalid:%d/echo", srv.port);
	assert_int_equal(start_raw(f, "PUT", url, srv.port, h, 2, "data",
	    5000, 0, &s), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.r.called, 1);
	assert_int_equal(s.r.code, 0);
	assert_int_equal(s.r.status, 200);
	assert_int_equal(s.statuses, 1);
	assert_int_equal(s.status, 200);
	assert_string_equal(s.reason, "OK");
	assert_non_null(strstr(s.headers, "Content-Type=application/json;"));
	assert_non_null(s.body);
	assert_non_null(strstr(s.body, "\"method\": \"PUT\""));
	assert_non_null(strstr(s.body, "\"body\": \"data\""));
	assert_non_null(strstr(s.body, "\"x_test\": \"raw\""));
	assert_non_null(strstr(s.body, "\"content_type\": null"));
	/* Nothing was collected: the body went to the callback only. */
	assert_int_equal(s.r.len, 0);
	sres_free(&s);
	finish(f);
}

/* Content-Length over the cap, and a stream that grows over it. */
static void
test_raw_too_large(void **state)
{
	struct fix	*f = *state;
	struct sres	 s = { 0 }, t = { 0 };
	char		 url[256], url2[256];

	snprintf(url, sizeof(url), "http://pinned.invalid:%d/big", srv.port);
	snprintf(url2, sizeof(url2), "http://pinned.invalid:%d/bigstream",
	    srv.port);
	assert_int_equal(start_raw(f, "GET", url, srv.port, NULL, 0, NULL,
	    5000, 100000, &s), 0);
	assert_int_equal(start_raw(f, "GET", url2, srv.port, NULL, 0, NULL,
	    5000, 100000, &t), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.r.code, CB_ETOOLARGE);
	assert_int_equal(s.len, 0);	/* refused before the body */
	assert_string_equal(s.r.msg, "the response from "
	    "http://pinned.invalid is larger than 100000 bytes");
	assert_int_equal(t.r.code, CB_ETOOLARGE);
	assert_true(t.len <= 100000);
	sres_free(&s);
	sres_free(&t);
	finish(f);
}

/* A timeout says in which phase it struck. */
static void
test_raw_timeout_phase(void **state)
{
	struct fix	*f = *state;
	struct sres	 s = { 0 };
	char		 url[256];

	snprintf(url, sizeof(url), "http://pinned.invalid:%d/slow", srv.port);
	assert_int_equal(start_raw(f, "GET", url, srv.port, NULL, 0, NULL,
	    300, 0, &s), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.r.code, CB_EUNAVAILABLE);
	assert_string_equal(s.r.msg, "request timed out after 300 ms "
	    "waiting for the response headers from http://pinned.invalid");
	sres_free(&s);
	finish(f);
}

/* Raw requests never share a connection: each comes from a new port. */
static void
test_raw_no_reuse(void **state)
{
	struct fix	*f = *state;
	struct sres	 a = { 0 }, b = { 0 };
	char		 url[256], *pa, *pb;

	snprintf(url, sizeof(url), "http://pinned.invalid:%d/echo", srv.port);
	assert_int_equal(start_raw(f, "GET", url, srv.port, NULL, 0, NULL,
	    5000, 0, &a), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(start_raw(f, "GET", url, srv.port, NULL, 0, NULL,
	    5000, 0, &b), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(a.r.code, 0);
	assert_int_equal(b.r.code, 0);
	assert_non_null(pa = strstr(a.body, "\"port\": "));
	assert_non_null(pb = strstr(b.body, "\"port\": "));
	assert_int_not_equal(atoi(pa + 8), atoi(pb + 8));
	assert_int_equal(http_idle_handles(f->h), 0);
	sres_free(&a);
	sres_free(&b);
	finish(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_echo, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list_method, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_status_503, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_redirect, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_server_closes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_from_callback,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_pending, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_then_owner_cancels,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_close_failure_callback_cancels_another, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_from_callback,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_wrong_ca, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_system_store, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_pinned_streamed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_raw_too_large, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_raw_timeout_phase, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_raw_no_reuse, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
