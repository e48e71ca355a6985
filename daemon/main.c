/*
 * credbrokerd: start-up and shutdown.
 *
 * Order matters: harden the process first (no core dumps, not dumpable),
 * read the configuration, lock the store before anything touches it, open
 * it, load and check the master key against its key check value, and only
 * then listen.  Every failure
 * before the loop runs is fatal with a message that says what to fix.
 * After the loop returns, every handle is closed and uv_loop_close() must
 * succeed.
 */
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <systemd/sd-daemon.h>
#include <uv.h>

#include "cb_error.h"
#include "cb_version.h"
#include "credbrokerd.h"
#include "log.h"
#include "pkey.h"
#include "seal.h"
#include "store.h"
#include "substitute.h"
#include "http.h"
#include "vault.h"

#define CONF_DEFAULT_PATH	"/etc/credbroker/credbroker.conf"

/* Start-ups on PostgreSQL that lost a race, read again (main). */
#define MAIN_START_TRIES	8

static void usage(int) __attribute__((noreturn));

/* Print the synopsis and exit with status: 0 for --help, 2 for misuse. */
static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: credbrokerd [-f] [-c file] [-o section.key=value]...\n"
	    "                   [--check-config] [--init] [--version]\n"
	    "  -c, --config FILE     configuration (default %s)\n"
	    "  -f, --foreground      stay in the foreground\n"
	    "  -o section.key=value  override a configuration key\n"
	    "      --check-config    check configuration and key, then exit\n"
	    "      --init            start a new store in an empty database "
	    "file\n"
	    "      --version         print the version and exit\n",
	    CONF_DEFAULT_PATH);
	exit(status);
}

/*
 * Heap memory freed at the end of a loop iteration stays with the process
 * up to MALLOC_KEEP instead of glibc's threshold (128 KiB, raised as large
 * blocks are freed).  A pipelined burst (50 connections at depth 16 is 800
 * calls in one iteration) allocates and frees several MiB; when the free
 * top of the heap went back to the kernel after each burst, every page came
 * back as a page fault in the next one, two or three per call, and a call
 * cost three times its CPU time.  The peak RSS is what it was: only the
 * giving back is kept from happening.  Freed blocks that held secrets are
 * wiped before they are freed, as before.
 */
#define MALLOC_KEEP	(64 * 1024 * 1024)

static void
malloc_tune(void)
{
	/*
	 * Another allocator (the sanitizers' in test builds) may refuse it:
	 * that costs speed only, so it is not reported.
	 */
	(void)mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP);
}

/* No core dumps and no ptrace by other users: memory holds keys. */
static void
harden(void)
{
	struct rlimit	rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		log_warn("setrlimit(RLIMIT_CORE)");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		log_warn("prctl(PR_SET_DUMPABLE)");
	umask(0077);
	/* One descriptor per client: allow as many as the hard limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Load the master key from, in order: security.secret_key_file,
 * $CREDENTIALS_DIRECTORY/<security.secret_key_credential> (systemd's
 * LoadCredential=), or security.secret_key inline (with a warning).
 */
static struct seal_key *
load_key(const struct conf *c, uint32_t version)
{
	struct seal_key	*k;
	struct cb_error	 err;
	const char	*credsdir;
	char		*path = NULL;
	int		 rc;

	if ((k = seal_key_alloc()) == NULL)
		fatalx("cannot allocate memory for the master key");
	credsdir = getenv("CREDENTIALS_DIRECTORY");
	if (c->secret_key_file != NULL)
		rc = seal_key_load_file(k, c->secret_key_file, version,
		    &err);
	else if (credsdir != NULL && *credsdir != '\0') {
		if (asprintf(&path, "%s/%s", credsdir,
		    c->secret_key_credential) < 0)
			fatalx("out of memory");
		/* systemd controls who reads its credentials. */
		rc = seal_key_load_file_mode(k, path, version, false, &err);
		free(path);
	} else if (secbuf_str(&c->secret_key) != NULL) {
		log_warnx("the master key is written inline in the "
		    "configuration (security.secret_key); use "
		    "security.secret_key_file or a systemd credential");
		rc = seal_key_init(k, c->secret_key.data,
		    strlen(secbuf_str(&c->secret_key)), version, &err);
	} else
		fatalx("no master key: set security.secret_key_file, or run "
		    "with a systemd credential named '%s'",
		    c->secret_key_credential);
	if (rc != 0)
		fatalx("%s", err.msg);
	return k;
}

/*
 * (Re)load the legacy key (security.legacy_key_file), which only ever
 * opens GCM: values on import and adoption.  At start a bad key is fatal;
 * on reload it is logged and the key held so far is kept.  While one is
 * configured, every start and reload says so.
 */
static int
load_legacy_key(struct broker *b, const struct conf *c, bool starting)
{
	struct seal_key	*k;
	struct cb_error	 err;

	if (c->legacy_key_file == NULL) {
		seal_key_free(b->key_legacy);
		b->key_legacy = NULL;
		return 0;
	}
	if ((k = seal_key_alloc()) == NULL) {
		if (starting)
			fatalx("cannot allocate memory for the legacy key");
		log_warnx("reload: cannot allocate memory for the legacy key");
		return -1;
	}
	if (seal_key_load_legacy_file(k, c->legacy_key_file, &err) != 0) {
		seal_key_free(k);
		if (starting)
			fatalx("%s", err.msg);
		log_warnx("reload: %s; the legacy key held so far is kept",
		    err.msg);
		return -1;
	}
	seal_key_free(b->key_legacy);
	b->key_legacy = k;
	log_warnx("a legacy key is configured (security.legacy_key_file): "
	    "it opens GCM: values on import and adoption only; remove it "
	    "once the migration is done");
	return 0;
}

/*
 * One broker per store: an exclusive flock(2) on DATABASE.lock, taken
 * before anything else touches the store and held (inherited across
 * daemon(3)) until the process exits.  The file holds the holder's pid for
 * operators and for the refusal below; it is never removed, since removing
 * it would let two brokers lock two different files.  SQLite's own locks
 * are fcntl(2) locks on the database file itself and are not disturbed.
 */
static int
lock_store(const char *dbpath)
{
	char	*path = NULL, pid[32];
	ssize_t	 n;
	int	 fd;

	if (asprintf(&path, "%s.lock", dbpath) < 0)
		fatalx("out of memory");
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY |
	    O_NOFOLLOW, S_IRUSR | S_IWUSR)) == -1) {
		if (errno == ENOENT)
			fatalx("the directory of database %s does not exist "
			    "(it must exist; under systemd use "
			    "StateDirectory=)", dbpath);
		fatal("cannot open the lock file %s of database %s", path,
		    dbpath);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK)
			fatal("cannot lock %s", path);
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		fatalx("database %s is in use by another credbrokerd (pid %s, "
		    "lock file %s); stop it first: one broker per database",
		    dbpath, *pid != '\0' ? pid : "unknown", path);
	}
	free(path);
	return fd;
}

/* Write our pid into the held lock file (again after daemon(3)). */
static void
lock_store_pid(int fd)
{
	char	pid[32];
	int	len;

	len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)len, 0) != len)
		log_warn("cannot write the pid to the database lock file");
}

/*
 * An existing database file must be a store: a zero-length one (a restore
 * that failed half way) would otherwise be taken for a new store and all
 * data would seem gone.  --init allows it.  Group and other permission bits
 * on the database, -wal and -shm are logged and removed: they hold sealed
 * values and the key check value.  A missing file is a first start.
 */
static void
check_store_files(const char *dbpath, int init, int fix)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	struct stat	 sb;
	size_t		 i;
	char		*path;

	if (stat(dbpath, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0 &&
	    !init)
		fatalx("database %s exists but is empty (0 bytes), as after a "
		    "failed restore: restore it from a backup, or, to start a "
		    "new empty store in it, start once with --init", dbpath);
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		if (asprintf(&path, "%s%s", dbpath, sfx[i]) < 0)
			fatalx("out of memory");
		if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    (sb.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
			log_warnx("%s has mode %04o: group and other users "
			    "may not use it; %s", path,
			    (unsigned)(sb.st_mode & 07777),
			    fix ? "setting mode 0600" : "the broker will set "
			    "mode 0600 at start");
			if (fix && chmod(path, S_IRUSR | S_IWUSR) == -1)
				fatal("chmod 0600 %s", path);
		}
		free(path);
	}
}

/* Record the key check value in a new store, or compare it. */
static void
check_key(struct broker *b, const char *dbpath, int check_only)
{
	struct store		*st = b->store;
	const struct seal_key	*k = b->key;
	struct cb_error	 err;
	char		 kcv[SEAL_KCV_MAX], *stored = NULL;

	if (seal_kcv(k, kcv, &err) != 0)
		fatalx("%s", err.msg);
	if (store_kcv_get(st, &stored, &err) != 0)
		fatalx("%s", err.msg);
	if (stored == NULL && check_only)
		log_info("new store %s: the master key will be recorded at "
		    "the first start", dbpath);
	else if (stored == NULL) {
		if (store_kcv_set(st, kcv, &err) != 0)
			fatalx("%s", err.msg);
		log_info("new store %s: master key recorded", dbpath);
	} else if (strlen(stored) != strlen(kcv) ||
	    CRYPTO_memcmp(stored, kcv, strlen(kcv)) != 0) {
		if (keys_rotated_to(b) != NULL)
			fatalx("master key does not match this store (%s): its "
			    "key was rotated to the key in %s; configure that "
			    "key (security.secret_key_file)", dbpath,
			    keys_rotated_to(b));
		fatalx("master key does not match this store (%s): the "
		    "values in it were sealed with another key", dbpath);
	}
	free(stored);
}

/*
 * --check-config: read the store, if there is one, without creating or
 * changing any file (not the database, its -wal, -shm or lock file, nor
 * the audit file), so that it can run as root beside a running broker,
 * or before the first start, and leave nothing behind.  The key is
 * checked against the recorded key check value without recording it.
 * Every failure exits 1 with its message; success prints one line.
 */
/*
 * The mirror of the PostgreSQL store is a cache: whatever a previous run
 * left is removed, and the mirror is read again from PostgreSQL.
 */
static void
remove_mirror(const char *dbpath)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	size_t	 i;
	char	*path;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		if (asprintf(&path, "%s%s", dbpath, sfx[i]) < 0)
			fatalx("out of memory");
		if (unlink(path) == -1 && errno != ENOENT)
			fatal("cannot remove %s", path);
		free(path);
	}
}

static void
check_config_store(struct broker *b, int init)
{
	struct conf	*conf = b->conf;
	struct cb_error	 err;
	uint32_t	 key_version = 1;
	int		 version;

	cb_error_clear(&err);
	if (conf->backend == CONF_BACKEND_POSTGRESQL) {
		/*
		 * --check-config changes nothing and contacts nothing: the
		 * database, its schema and the key check value are checked
		 * at start.
		 */
		log_info("storage.backend is postgresql: the database is "
		    "checked at start, not by --check-config");
		b->key = load_key(conf, key_version);
	} else if (access(conf->database, F_OK) != 0) {
		/* store_check_dir() found the directory writable. */
		log_info("database %s does not exist: it will be created at "
		    "the first start", conf->database);
		b->key = load_key(conf, key_version);
	} else {
		check_store_files(conf->database, init, 0);
		if (store_open_readonly(conf->database, &b->store, &version,
		    &err) != 0)
			fatalx("%s", err.msg);
		if (b->store == NULL) {
			log_info("database %s has schema version %d: the next "
			    "start migrates it to version %d, and checks the "
			    "master key then", conf->database, version,
			    STORE_SCHEMA_VERSION);
			b->key = load_key(conf, key_version);
		} else {
			if (keys_load_state(b, &key_version, &err) != 0)
				fatalx("%s", err.msg);
			b->key = load_key(conf, key_version);
			check_key(b, conf->database, 1);
			if (keys_resume(b, &err) != 0)
				fatalx("%s", err.msg);
		}
	}
	(void)load_legacy_key(b, conf, true);
	secbuf_free(&conf->secret_key);
	if (conf->audit_file != NULL && audit_open(conf->audit_file,
	    conf->audit_sync, true, &b->audit, &err) != 0)
		fatalx("%s", err.msg);
	printf("configuration and master key OK\n");
	keys_free(b);
	audit_close(b->audit);
	store_close(b->store);
	seal_key_free(b->key);
	seal_key_free(b->key_legacy);
	free((char **)b->overrides);
	conf_free(conf);
	free(conf);
}

/* The HTTP client and Vault, configured from the stored settings. */
static void
start_vault(struct broker *b)
{
	struct vault_conf	 vc;
	struct cb_error		 err;
	bool			 found;

	if (http_init(b->loop, &b->http, &err) != 0 ||
	    http_set_limits(b->http, b->conf->vault_max_connections,
	    b->conf->vault_max_connections, &err) != 0 ||
	    vault_init(b->loop, b->http, &b->vault, &err) != 0)
		fatalx("%s", err.msg);
	vault_set_limits(b->vault, b->conf->vault_max_pending);
	/* The request method's own client (rpc-request.c), made now. */
	if (http_init(b->loop, &b->http_out, &err) != 0 ||
	    http_set_limits(b->http_out, 0, b->conf->request_max_inflight,
	    &err) != 0)
		fatalx("%s", err.msg);
	if (rpc_vault_load(b, &vc, &found, &err) != 0)
		fatalx("Vault settings: %s", err.msg);
	if (found && vault_configure(b->vault, &vc, &err) != 0)
		log_warnx("stored Vault settings refused: %s", err.msg);
	vault_conf_free(&vc);
}

/*
 * (Re)load the key of security.next_key_file, held for the next key
 * rotation: on the postgresql backend every broker publishes its key
 * check value, and a rotation to it starts only once every live broker
 * holds it.  At start a bad key is fatal; on reload it is logged and the
 * key held so far is kept.
 */
static void
load_staged_key(struct broker *b, const struct conf *c, bool starting)
{
	struct seal_key	*k;
	struct cb_error	 err;

	if (c->next_key_file == NULL) {
		if (b->key_staged != NULL && !starting)
			log_info("reload: security.next_key_file removed");
		seal_key_free(b->key_staged);
		b->key_staged = NULL;
		return;
	}
	if ((k = seal_key_alloc()) == NULL) {
		if (starting)
			fatalx("cannot allocate memory for the next key");
		log_warnx("reload: cannot allocate memory for the next key");
		return;
	}
	/* Its version (a label) is the rotation's, set when one starts. */
	if (seal_key_load_file(k, c->next_key_file, 1, &err) != 0) {
		seal_key_free(k);
		if (starting)
			fatalx("security.next_key_file: %s", err.msg);
		log_warnx("reload: security.next_key_file: %s; the next key "
		    "held so far is kept", err.msg);
		return;
	}
	seal_key_free(b->key_staged);
	b->key_staged = k;
	log_info("the next master key is held (security.next_key_file = "
	    "%s)", c->next_key_file);
}

/* SIGHUP (server.c): re-read the configuration, keep what cannot change. */
void
main_reload(struct broker *b)
{
	struct conf	*nc;
	struct cb_error	 err;

	if ((nc = calloc(1, sizeof(*nc))) == NULL) {
		log_warnx("reload: out of memory");
		return;
	}
	sd_notify(0, "RELOADING=1");
	if (conf_load(nc, b->conf_path, b->overrides, b->noverrides,
	    &err) != 0) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", err.msg);
		free(nc);
		sd_notify(0, "READY=1\nSTATUS=reload failed; running "
		    "configuration kept");
		return;
	}
	/* The master key is not reloaded: drop the inline copy at once. */
	secbuf_free(&nc->secret_key);
	if (strcmp(nc->socket, b->conf->socket) != 0 ||
	    strcmp(nc->database, b->conf->database) != 0)
		log_warnx("reload: server.socket and storage.database "
		    "changes take effect at the next start");
	if (nc->backend != b->conf->backend ||
	    (nc->pg_conninfo == NULL) != (b->conf->pg_conninfo == NULL) ||
	    (nc->pg_conninfo != NULL &&
	    strcmp(nc->pg_conninfo, b->conf->pg_conninfo) != 0))
		log_warnx("reload: storage.backend and storage.postgresql "
		    "changes take effect at the next start");
	if ((nc->audit_file == NULL) != (b->conf->audit_file == NULL) ||
	    (nc->audit_file != NULL &&
	    strcmp(nc->audit_file, b->conf->audit_file) != 0))
		log_warnx("reload: audit.file changes take effect at the next "
		    "start");
	/* Keep what cannot change while running. */
	free(nc->audit_file);
	nc->audit_file = b->conf->audit_file;
	b->conf->audit_file = NULL;
	free(nc->socket);
	nc->socket = b->conf->socket;
	b->conf->socket = NULL;
	free(nc->database);
	nc->database = b->conf->database;
	b->conf->database = NULL;
	conf_free(b->conf);
	free(b->conf);
	b->conf = nc;
	log_set_level(nc->log_level);
	(void)load_legacy_key(b, nc, false);
	load_staged_key(b, nc, false);
	keys_staged_changed(b);
	if (store_tune(b->store, nc->page_cache_mb, nc->mmap_mb, &err) != 0)
		log_warnx("reload: storage sizes: %s", err.msg);
	if (b->http != NULL && http_set_limits(b->http,
	    nc->vault_max_connections, nc->vault_max_connections, &err) != 0)
		log_warnx("reload: vault.max_connections: %s", err.msg);
	if (b->vault != NULL)
		vault_set_limits(b->vault, nc->vault_max_pending);
	if (b->http_out != NULL && http_set_limits(b->http_out, 0,
	    nc->request_max_inflight, &err) != 0)
		log_warnx("reload: request.max_in_flight: %s", err.msg);
	log_info("configuration reloaded (%zu grants)", nc->ngrants);
	sd_notifyf(0, "READY=1\nSTATUS=configuration reloaded (%zu grants)",
	    nc->ngrants);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config",	  required_argument, NULL, 'c' },
		{ "foreground",	  no_argument,	     NULL, 'f' },
		{ "check-config", no_argument,	     NULL, 'C' },
		{ "init",	  no_argument,	     NULL, 'I' },
		{ "version",	  no_argument,	     NULL, 'V' },
		{ "help",	  no_argument,	     NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct broker	 b;
	struct conf	*conf;
	struct cb_error	 err;
	uv_loop_t	 loop;
	const char	*conf_path = CONF_DEFAULT_PATH;
	char		**overrides = NULL;
	size_t		 noverrides = 0;
	uint32_t	 key_version;
	int		 ch, foreground = 0, check_only = 0, init = 0, rc;
	char		*dbpath = NULL;
	const char	*dbname;
	int		 tries;
	int		 lockfd = -1;

	log_init(LOG_LVL_INFO, getenv("JOURNAL_STREAM") != NULL);
	cb_error_clear(&err);
	if (pkey_wipe_frees(&err) != 0)
		fatalx("%s", err.msg);
	harden();
	malloc_tune();
	secmem_pool_enable();
	if (pkey_secure_heap_init(&err) != 0)
		fatalx("%s", err.msg);
	vault_json_setup();
	while ((ch = getopt_long(argc, argv, "c:fo:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'o':
			overrides = reallocarray(overrides, noverrides + 1,
			    sizeof(*overrides));
			if (overrides == NULL)
				fatalx("out of memory");
			overrides[noverrides++] = optarg;
			break;
		case 'C':
			check_only = 1;
			break;
		case 'I':
			init = 1;
			break;
		case 'V':
			printf("credbroker %s\n", CB_VERSION);
			return 0;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "credbrokerd: unexpected argument '%s'\n",
		    argv[optind]);
		usage(2);
	}

	if ((conf = calloc(1, sizeof(*conf))) == NULL)
		fatalx("out of memory");
	if (conf_load(conf, conf_path, overrides, noverrides, &err) != 0)
		fatalx("configuration: %s", err.msg);
	log_set_level(conf->log_level);

	memset(&b, 0, sizeof(b));
	b.conf = conf;
	b.conf_path = (char *)conf_path;
	b.overrides = overrides;
	b.noverrides = noverrides;
	/*
	 * A broker that cannot listen (a busy socket, a missing directory)
	 * is refused before it touches the store or the audit file.
	 */
	if (server_check_socket(conf, check_only, &err) != 0) {
		/*
		 * --check-config cannot know whether systemd will pass the
		 * socket (credbroker.socket), which makes server.socket moot.
		 */
		if (!check_only)
			fatalx("%s", err.msg);
		log_warnx("%s; a start would fail unless systemd passes the "
		    "socket", err.msg);
	}
	if (store_check_dir(conf->database, !check_only ||
	    access(conf->database, F_OK) != 0, &err) != 0)
		fatalx("%s", err.msg);
	if (check_only) {
		check_config_store(&b, init);
		return 0;
	}
	/*
	 * The key is read before the store is opened, so that a missing or
	 * malformed key file does not leave a new, empty store behind.  Its
	 * version is a label that the store's key state sets below.
	 */
	b.key = load_key(conf, 1);
	if (conf->backend == CONF_BACKEND_POSTGRESQL) {
		/*
		 * The store is the local mirror of the shared tables, made
		 * again from PostgreSQL at every start.
		 */
		if ((dbpath = pgstore_mirror_path(conf)) == NULL)
			fatalx("out of memory");
		lockfd = lock_store(dbpath);
		lock_store_pid(lockfd);
		remove_mirror(dbpath);
		dbname = "PostgreSQL";
	} else {
		if ((dbpath = strdup(conf->database)) == NULL)
			fatalx("out of memory");
		lockfd = lock_store(dbpath);
		lock_store_pid(lockfd);
		check_store_files(dbpath, init, 1);
		dbname = dbpath;
	}
	if (store_open(dbpath, &b.store, &err) != 0 ||
	    store_tune(b.store, conf->page_cache_mb, conf->mmap_mb, &err) != 0)
		fatalx("%s", err.msg);
	if (conf->backend == CONF_BACKEND_POSTGRESQL &&
	    (store_cache_only(b.store, &err) != 0 ||
	    pgstore_prepare(&b, &err) != 0))
		fatalx("%s", err.msg);
	(void)load_legacy_key(&b, conf, true);
	load_staged_key(&b, conf, true);
	/* The inline key, if any, is no longer needed in the clear. */
	secbuf_free(&conf->secret_key);
	/*
	 * On PostgreSQL, what start-up writes (the key check value of a
	 * new database) may lose a race with another broker starting at
	 * the same moment: read the database again and decide again.
	 */
	for (tries = 0;; tries++) {
		if (b.pgs != NULL && pgstore_begin(&b, &err) != 0)
			fatalx("%s", err.msg);
		if (keys_load_state(&b, &key_version, &err) != 0)
			fatalx("%s", err.msg);
		b.key->version = key_version;
		check_key(&b, dbname, 0);
		if (keys_resume(&b, &err) != 0)
			fatalx("%s", err.msg);
		if (b.pgs == NULL || (rc = pgstore_prepared(&b, &err)) == 0)
			break;
		if (rc != -CB_ECONFLICT || tries == MAIN_START_TRIES)
			fatalx("%s", err.msg);
		log_info("another broker wrote the database at the same time; "
		    "reading it again");
		keys_free(&b);
	}
	free(dbpath);
	if (conf->audit_file != NULL && audit_open(conf->audit_file,
	    conf->audit_sync, false, &b.audit, &err) != 0)
		fatalx("%s", err.msg);

	signal(SIGPIPE, SIG_IGN);
	if ((rc = uv_loop_init(&loop)) != 0)
		fatalx("uv_loop_init: %s", uv_strerror(rc));
	b.loop = &loop;
	b.started_ms = uv_now(&loop);
	b.started = time(NULL);
	start_vault(&b);
	if (backends_open(&b, &err) != 0)
		fatalx("%s", err.msg);
	/*
	 * Start-up is over: from here on every write goes to the store's
	 * writer thread (dbwrite, values-sqlite), and the loop's connection
	 * refuses to write, so that a write left on the loop fails loudly
	 * instead of stalling every connection behind an fsync.
	 */
	if (store_query_only(b.store, true, &err) != 0)
		fatalx("%s", err.msg);
	if (server_start(&b, &err) != 0)
		fatalx("%s", err.msg);
	/*
	 * Detached, the broker has no terminal and no stderr of its own:
	 * standard input, output and error become /dev/null (an inherited
	 * stderr, such as the pipe of whoever started it, is not kept open)
	 * and messages go to syslog(3).  Until here they went to stderr.
	 */
	if (!foreground) {
		if (daemon(1, 0) != 0)
			fatal("daemon");
		log_syslog_open("credbrokerd");
		if ((rc = uv_loop_fork(&loop)) != 0)
			fatalx("uv_loop_fork: %s", uv_strerror(rc));
		lock_store_pid(lockfd);
	}
	keys_start(&b);
	b.keys_changed = keys_changed;
	pgstore_serve(&b);
	log_info("credbroker %s started (pid %d)", CB_VERSION, (int)getpid());

	log_set_buffered(1);
	uv_run(&loop, UV_RUN_DEFAULT);
	log_set_buffered(0);

	if ((rc = uv_loop_close(&loop)) != 0)
		log_warnx("uv_loop_close: %s", uv_strerror(rc));
	rpc_release_kept();
	sub_release_kept();
	audit_close(b.audit);
	keys_free(&b);
	store_close(b.store);
	seal_key_free(b.key);
	seal_key_free(b.key_legacy);
	seal_key_free(b.key_staged);
	conf_free(b.conf);
	free(b.conf);
	free(overrides);
	/* The lock is released with the descriptor, as the process exits. */
	close(lockfd);
	log_info("stopped");
	return rc == 0 ? 0 : 1;
}
