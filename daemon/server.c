/*
 * server: the listening socket, admission, signals and shutdown.
 *
 * The listener accepts a client, identifies its peer (SO_PEERCRED) and
 * admits it or not; conn.c does the rest of the connection's life.
 * Limits that keep callers without permission from taking the daemon's
 * connection slots: each uid may hold at most
 * server.max_connections_per_uid connections, and the last
 * server.reserved_connections slots of server.max_connections are kept
 * for root and holders of an edit:* permission.
 *
 * Replies are collected per connection during a loop iteration and sent
 * at its end by a check handle, the way redis answers before it sleeps;
 * the log lines of the whole iteration go out first, in one write.  The
 * same check handle wipes the stack below the loop when a call of the
 * iteration handled a secret (one scrub covers every call of the
 * iteration), and first ends the SQLite read transaction the iteration's
 * reads shared (store_release).  A prepare handle does the same just
 * before the loop waits, for what timer callbacks produced.
 *
 * SIGTERM and SIGINT stop, SIGHUP reloads the configuration (main.c).
 * Shutdown stops the listener, lets queued replies drain, and force-closes
 * what is left after server.shutdown_timeout seconds; the loop then has
 * nothing left to run.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <uv.h>

#include "cb_error.h"
#include "conn.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "secbuf.h"
#include "http.h"
#include "store.h"
#include "vault.h"

#ifndef TAILQ_FOREACH_SAFE	/* glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

static uv_pipe_t	 server_listener;
static bool		 server_listening;
static bool		 server_created_socket;
static uv_signal_t	 server_sigs[3];
static uv_timer_t	 server_stop_timer;
static bool		 server_stop_timer_on;
static uint64_t		 server_next_id = 1;
static uv_timer_t	 server_watchdog;
static bool		 server_watchdog_on;
static uv_check_t	 server_check;
static uv_prepare_t	 server_prepare;
static bool		 server_check_on;
static struct broker	*server_broker;

/* Whether a peer may use the connection slots kept by reserved_connections. */
static bool
server_peer_privileged(const struct conf *conf, const struct peer *p)
{
	unsigned	edit = CB_PERM_BIT(CB_PERM_TYPES) |
			    CB_PERM_BIT(CB_PERM_CREDS) | CB_PERM_BIT(CB_PERM_KEYS);

	return p->uid == 0 ||
	    (access_perms(conf->grants, conf->ngrants, p) & edit) != 0;
}

/*
 * Whether the connection c, just accepted, may stay: within max_connections,
 * outside the reserved slots unless its peer is privileged, and within its
 * uid's share.  A refusal is logged and says which limit.
 */
static bool
server_admit(struct broker *b, struct conn *c)
{
	const struct conf	*conf = b->conf;
	struct conn		*o;
	unsigned		 others = b->nconns - 1, reserved, n = 0;

	/* At most half the table is reserved: see credbroker.conf(5). */
	reserved = conf->reserved_connections;
	if (reserved > conf->max_connections / 2)
		reserved = conf->max_connections / 2;
	if (others >= conf->max_connections) {
		log_warnx("refusing connection from uid %u: %u connections "
		    "open (server.max_connections)", (unsigned)c->peer.uid,
		    others);
		return false;
	}
	if (others >= conf->max_connections - reserved &&
	    !server_peer_privileged(conf, &c->peer)) {
		log_warnx("refusing connection from uid %u: the last %u "
		    "connections are reserved (server.reserved_connections)",
		    (unsigned)c->peer.uid, reserved);
		return false;
	}
	TAILQ_FOREACH(o, &conns, entry)
		if (o != c && !o->closed && o->peer.uid == c->peer.uid)
			n++;
	if (n >= conf->max_connections_per_uid) {
		log_warnx("refusing connection from uid %u: %u connections "
		    "open (server.max_connections_per_uid)",
		    (unsigned)c->peer.uid, n);
		return false;
	}
	return true;
}

/* A client is connecting. */
static void
server_accept(uv_stream_t *listener, int status)
{
	struct broker	*b = listener->data;
	struct conn	*c;
	struct cb_error	 err;
	uv_os_fd_t	 fd;
	int		 rc;

	if (status < 0) {
		log_warnx("accept: %s", uv_strerror(status));
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("accept: out of memory");
		return;
	}
	c->b = b;
	c->id = server_next_id++;
	proto_scan_reset(&c->scan);
	uv_pipe_init(b->loop, &c->pipe, 0);
	uv_timer_init(b->loop, &c->idle);
	c->pipe.data = c->idle.data = c;
	c->open_handles = 2;
	TAILQ_INSERT_TAIL(&conns, c, entry);
	b->nconns++;

	if ((rc = uv_accept(listener, (uv_stream_t *)&c->pipe)) != 0) {
		log_warnx("accept: %s", uv_strerror(rc));
		conn_really_close(c);
		return;
	}
	if (b->stopping) {
		conn_really_close(c);
		return;
	}
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
	    access_peer_get(fd, &c->peer, &err) != 0) {
		log_warnx("connection %llu: cannot identify peer",
		    (unsigned long long)c->id);
		conn_really_close(c);
		return;
	}
	if (!server_admit(b, c)) {
		rpc_stats_conn(false);
		conn_really_close(c);
		return;
	}
	rpc_stats_conn(true);
	log_debug("connection %llu from uid %u gid %u pid %d",
	    (unsigned long long)c->id, (unsigned)c->peer.uid,
	    (unsigned)c->peer.gid, (int)c->peer.pid);
	c->last_read = uv_now(b->loop);
	conn_read_start(c);
}

/*
 * Remove a socket file left by a daemon that is gone; refuse to start when
 * one is still answering on it, and never remove something that is not a
 * socket.
 */
static int
server_clear_stale(const char *path, struct cb_error *err)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd, rc;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : cb_error_set(err, CB_EINTERNAL,
		    "%s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return cb_error_set(err, CB_EINTERNAL,
		    "%s exists and is not a socket", path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return cb_error_set(err, CB_EINTERNAL, "socket path too long");
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return cb_error_set(err, CB_EINTERNAL, "socket: %s",
		    strerror(errno));
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (rc == 0)
		return cb_error_set(err, CB_EINTERNAL,
		    "another broker is listening on %s", path);
	if (unlink(path) != 0)
		return cb_error_set(err, CB_EINTERNAL, "unlink %s: %s", path,
		    strerror(errno));
	return 0;
}

/*
 * Called by main() before it locks or opens the store or the audit file, so
 * that a broker refused here has changed nothing.  bind(2) reports a
 * missing directory as EACCES through libuv, and a busy socket would be
 * noticed only after the store was opened: both are checked here, with
 * messages that name the path.  server_start() checks the socket again
 * (things may change in between) and removes a stale one.
 */
int
server_check_socket(const struct conf *conf, bool check_only,
    struct cb_error *err)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	const char		*path = conf->socket, *slash;
	char			*dir = NULL;
	int			 fd, rc = 0;

	/* Socket activation: systemd made the socket. */
	if (sd_listen_fds(0) > 0)
		return 0;
	slash = strrchr(path, '/');
	if ((dir = strndup(path, slash == path ? 1 :
	    (size_t)(slash - path))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	if (stat(dir, &st) != 0) {
		if (errno == ENOENT)
			rc = cb_error_set(err, CB_EINTERNAL, "server.socket "
			    "%s: directory %s does not exist; create it (under "
			    "systemd, RuntimeDirectory=) or choose another "
			    "path", path, dir);
		else if (errno == ENOTDIR)
			rc = cb_error_set(err, CB_EINTERNAL, "server.socket "
			    "%s: a component of %s is not a directory", path,
			    dir);
		else
			rc = cb_error_set(err, CB_EINTERNAL, "server.socket "
			    "%s: directory %s: %s", path, dir,
			    strerror(errno));
		goto done;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = cb_error_set(err, CB_EINTERNAL, "server.socket %s: %s is "
		    "not a directory", path, dir);
		goto done;
	}
	if (eaccess(dir, W_OK | X_OK) != 0) {
		rc = cb_error_set(err, CB_EINTERNAL, "server.socket %s: "
		    "directory %s is not writable and searchable by uid %u, "
		    "which must create the socket in it; change its owner or "
		    "mode, or choose another path", path, dir,
		    (unsigned)geteuid());
		goto done;
	}
	if (check_only || lstat(path, &st) != 0)
		goto done;
	if (!S_ISSOCK(st.st_mode)) {
		rc = cb_error_set(err, CB_EINTERNAL,
		    "%s exists and is not a socket", path);
		goto done;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));	/* checked by conf.c */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		rc = cb_error_set(err, CB_EINTERNAL, "socket: %s",
		    strerror(errno));
		goto done;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		rc = cb_error_set(err, CB_EINTERNAL,
		    "another broker is listening on %s", path);
	close(fd);
done:
	free(dir);
	return rc;
}

/*
 * Send what the callbacks have produced: the log lines, then the replies;
 * then wipe the stack the calls used if one of them handled a secret.
 * Runs after the I/O callbacks of each loop iteration (check) and again
 * just before the loop waits (prepare), for replies made by timer, pending
 * or close callbacks, which run outside the I/O phase.
 */
static void
server_send_queued(void)
{
	/* The iteration's reads shared one SQLite read transaction. */
	if (server_broker != NULL)
		store_release(server_broker->store);
	log_flush();
	conn_send_queued();
	if (conn_take_scrub())
		cb_stack_scrub();
}

static void
server_iteration_done(uv_check_t *h)
{
	server_send_queued();
}

static void
server_before_wait(uv_prepare_t *h)
{
	server_send_queued();
}

/* Tell systemd the loop is alive. */
static void
server_watchdog_pet(uv_timer_t *t)
{
	sd_notify(0, "WATCHDOG=1");
}

/* SIGTERM/SIGINT stop, SIGHUP reloads. */
static void
server_signal(uv_signal_t *h, int signum)
{
	struct broker	*b = h->data;

	if (signum == SIGHUP) {
		main_reload(b);
		return;
	}
	if (!b->stopping)
		log_info("signal %d: shutting down", signum);
	server_shutdown(b);
}

/* Logged once: secret buffers are never put in memory that may swap. */
static void
server_memlock_failed(size_t locked)
{
	log_warnx("cannot lock more memory for secrets (%zu bytes locked; "
	    "RLIMIT_MEMLOCK): connections and calls that need more are "
	    "refused", locked);
}

int
server_start(struct broker *b, struct cb_error *err)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	const char	*path = b->conf->socket;
	uint64_t	 wd_usec = 0;
	mode_t		 old;
	size_t		 i;
	int		 rc, nfds;

	server_broker = b;
	secmem_pool_on_lock_failure(server_memlock_failed);
	uv_pipe_init(b->loop, &server_listener, 0);
	server_listener.data = b;
	server_listening = true;
	/*
	 * Socket activation: systemd made the socket (path, owner and mode
	 * come from credbroker.socket), and server.socket is ignored.
	 */
	if ((nfds = sd_listen_fds(1)) < 0)
		return cb_error_set(err, CB_EINTERNAL, "sd_listen_fds: %s",
		    strerror(-nfds));
	if (nfds > 1)
		return cb_error_set(err, CB_EINTERNAL, "systemd passed %d "
		    "sockets; credbroker listens on one", nfds);
	if (nfds == 1) {
		if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1,
		    NULL, 0) <= 0)
			return cb_error_set(err, CB_EINTERNAL, "the socket "
			    "systemd passed is not a listening UNIX stream "
			    "socket");
		if ((rc = uv_pipe_open(&server_listener,
		    SD_LISTEN_FDS_START)) != 0)
			return cb_error_set(err, CB_EINTERNAL,
			    "socket from systemd: %s", uv_strerror(rc));
		path = "the socket passed by systemd";
	} else {
		if (server_clear_stale(path, err) != 0)
			return -CB_EINTERNAL;
		old = umask(0177);
		rc = uv_pipe_bind(&server_listener, path);
		umask(old);
		if (rc != 0)
			return cb_error_set(err, CB_EINTERNAL, "bind %s: %s",
			    path, uv_strerror(rc));
		server_created_socket = true;
		if (chmod(path, b->conf->socket_mode) != 0)
			return cb_error_set(err, CB_EINTERNAL, "chmod %s: %s",
			    path, strerror(errno));
	}
	if ((rc = uv_listen((uv_stream_t *)&server_listener, SOMAXCONN,
	    server_accept)) != 0)
		return cb_error_set(err, CB_EINTERNAL, "listen %s: %s", path,
		    uv_strerror(rc));
	for (i = 0; i < 3; i++) {
		uv_signal_init(b->loop, &server_sigs[i]);
		server_sigs[i].data = b;
		uv_signal_start(&server_sigs[i], server_signal, sigs[i]);
	}
	uv_timer_init(b->loop, &server_stop_timer);
	server_stop_timer.data = b;
	server_stop_timer_on = true;
	uv_check_init(b->loop, &server_check);
	uv_check_start(&server_check, server_iteration_done);
	uv_unref((uv_handle_t *)&server_check);	/* never keeps the loop up */
	uv_prepare_init(b->loop, &server_prepare);
	uv_prepare_start(&server_prepare, server_before_wait);
	uv_unref((uv_handle_t *)&server_prepare);
	server_check_on = true;
	conn_defer_writes(true);
	conn_on_drained(server_shutdown);
	/* The watchdog is petted at half its interval, from the loop itself. */
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec >= 2000) {
		uv_timer_init(b->loop, &server_watchdog);
		uv_timer_start(&server_watchdog, server_watchdog_pet,
		    wd_usec / 2000, wd_usec / 2000);
		server_watchdog_on = true;
	}
	log_info("listening on %s", path);
	sd_notifyf(0, "READY=1\nSTATUS=serving on %s", path);
	return 0;
}

/* The drain deadline passed: drop whatever is still open. */
static void
server_stop_deadline(uv_timer_t *t)
{
	struct conn	*c, *next;

	struct broker	*b = t->data;

	log_warnx("shutdown deadline reached; closing remaining connections");
	TAILQ_FOREACH_SAFE(c, &conns, entry, next)
		conn_really_close(c);
	/*
	 * Calls still waiting on Vault fail now, releasing their conns:
	 * those of the Vault client, then running vault.test calls, which
	 * have clients of their own on the same HTTP client.  The last
	 * conn freed brings server_shutdown() back, which closes the HTTP
	 * client.
	 */
	if (b->vault != NULL) {
		struct vault *v = b->vault;

		b->vault = NULL;
		vault_close(v);
	}
	if (b->http != NULL)
		vault_test_abort_all(b->http);
}

void
server_shutdown(struct broker *b)
{
	struct conn	*c, *next;
	size_t		 i;

	if (!b->stopping) {
		b->stopping = true;
		sd_notify(0, "STOPPING=1\nSTATUS=draining connections");
		if (server_listening) {
			uv_close((uv_handle_t *)&server_listener, NULL);
			server_listening = false;
			if (server_created_socket)
				unlink(b->conf->socket);
		}
		TAILQ_FOREACH_SAFE(c, &conns, entry, next)
			conn_close(c);
		if (server_stop_timer_on && !TAILQ_EMPTY(&conns))
			uv_timer_start(&server_stop_timer, server_stop_deadline,
			    (uint64_t)b->conf->shutdown_timeout * 1000, 0);
	}
	if (!TAILQ_EMPTY(&conns))
		return;
	/*
	 * Everything drained: close Vault (its waiting calls, if any, fail
	 * now) and the HTTP client, then the remaining handles.  The
	 * pointers are cleared first: closing can complete calls, which can
	 * bring us back here.
	 */
	if (b->vault != NULL) {
		struct vault *v = b->vault;

		b->vault = NULL;
		vault_close(v);
	}
	/* The fleet's row goes first, while the database answers. */
	if (fleet_leave(b, server_shutdown))
		return;
	backends_close(b);
	keys_close(b);
	/*
	 * No call waits any more, but a finished vault.test may still have
	 * a request out until its client is reaped.  Its requests stay its
	 * own (http.c, "Ownership"): http_close() detaches them, and the
	 * reaper's vault_close() cancels and frees them.
	 */
	if (b->http != NULL) {
		struct http *h = b->http;

		b->http = NULL;
		vault_test_abort_all(h);
		http_close(h);
	}
	/* Every request ended with its connection. */
	if (b->http_out != NULL) {
		struct http *h = b->http_out;

		b->http_out = NULL;
		http_close(h);
	}
	if (server_watchdog_on) {
		uv_close((uv_handle_t *)&server_watchdog, NULL);
		server_watchdog_on = false;
	}
	if (server_check_on) {
		/* The last replies and secrets: now, not never. */
		server_send_queued();
		uv_close((uv_handle_t *)&server_check, NULL);
		uv_close((uv_handle_t *)&server_prepare, NULL);
		server_check_on = false;
		conn_defer_writes(false);
	}
	if (server_stop_timer_on) {
		uv_close((uv_handle_t *)&server_stop_timer, NULL);
		server_stop_timer_on = false;
		for (i = 0; i < 3; i++)
			uv_close((uv_handle_t *)&server_sigs[i], NULL);
	}
}
