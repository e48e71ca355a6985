/*
 * credctl: internal declarations shared by the credctl-*.c files.
 *
 * credctl.c holds main(), the command table and its parser, the help
 * text, and the helpers every command uses to talk to the broker and to
 * report errors; each credctl-<family>.c file implements one family of
 * commands (credctl-substitute.c: the dry run that shows where values
 * would go, and requests the broker sends; credctl-vault.c: the Vault
 * settings); credctl-print.c turns results into tables, key: value lines
 * or JSON.
 */
#ifndef CREDCTL_H
#define CREDCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <msgpack.h>

#include "credbroker.h"
#include "secbuf.h"

/*
 * Exit status (documented in credctl --help and credctl(1)):
 *	0  success
 *	1  the broker answered with an error ("vault test": or a step of
 *	   the connection test failed)
 *	2  usage error or invalid input (bad arguments, empty value, ...)
 *	3  cannot connect, or a protocol or I/O failure
 */
#define CREDCTL_EXIT_OK		0
#define CREDCTL_EXIT_BROKER	1
#define CREDCTL_EXIT_USAGE	2
#define CREDCTL_EXIT_LOCAL	3

/* Command options; a command accepts those in its .opts mask. */
#define CREDCTL_OPT_NAME		0x0001
#define CREDCTL_OPT_DESCRIPTION		0x0002
#define CREDCTL_OPT_STORAGE		0x0004
#define CREDCTL_OPT_DESTINATION		0x0008
#define CREDCTL_OPT_NO_DESTINATIONS	0x0010
#define CREDCTL_OPT_FORCE		0x0020
#define CREDCTL_OPT_RAW			0x0040
#define CREDCTL_OPT_DRY_RUN		0x0080
#define CREDCTL_OPT_FILE		0x0100
#define CREDCTL_OPT_VAULT		0x0200	/* --url ... --timeout-ms */
#define CREDCTL_OPT_ENABLE		0x0400	/* --enable, --disable */
#define CREDCTL_OPT_HEAD		0x0800	/* --head HASH */
#define CREDCTL_OPT_WAIT		0x1000	/* --wait */
#define CREDCTL_OPT_CACHE		0x2000	/* --cache-seconds */
#define CREDCTL_OPT_PEM			0x4000	/* --pem */
#define CREDCTL_OPT_BASE64		0x8000	/* --base64 */
#define CREDCTL_OPT_KEY_VERSION		0x10000	/* --version N */
#define CREDCTL_OPT_ACCOUNT		0x20000	/* --account NAME */
#define CREDCTL_OPT_DEFAULT_ACCOUNT	0x40000	/* --[no-]default-account */
#define CREDCTL_OPT_TYPE		0x80000	/* --type TYPE */
#define CREDCTL_OPT_UUID		0x100000	/* --uuid UUID */
#define CREDCTL_OPT_REQUEST		0x200000	/* --timeout ... */
#define CREDCTL_OPT_CA_FILE		0x400000	/* --ca-file PATH */

/* Parsed arguments of one command. */
struct credctl_args {
	int		  argc;		/* positional arguments */
	char		**argv;
	const char	 *name;		/* NULL when not given */
	const char	 *description;
	const char	 *storage;
	const char	**destinations;
	size_t		  ndestinations;
	bool		  no_destinations;
	bool		  force;
	bool		  raw;
	bool		  dry_run;
	const char	 *file;		/* NULL or "-": standard input */
	/* vault set / vault test; the secret_id never comes from argv */
	const char	 *url;
	const char	 *path;
	const char	 *role_id;	/* an identifier, not a secret */
	const char	 *ca_file;	/* "": clear */
	const char	 *namespace;	/* "": clear */
	const char	 *timeout_ms;	/* checked by the command */
	const char	 *cache_seconds;	/* vault set; checked there */
	bool		  enable;
	bool		  disable;
	bool		  role_id_stdin;
	bool		  secret_id_stdin;
	bool		  secret_id_prompt;
	const char	 *head;		/* audit verify: recorded head */
	bool		  wait;		/* key rotate: until done */
	bool		  pem;		/* keypair/peerkey show */
	bool		  base64;	/* keypair show */
	const char	 *key_version;	/* --version N; checked there */
	const char	 *account;	/* cred set/rm: an account, not a user */
	const char	 *default_account;	/* type edit */
	bool		  no_default_account;
	const char	 *type;		/* cred status --type */
	const char	 *uuid;		/* type add: keep this type uuid */
	const char	 *timeout;	/* request: checked there */
	const char	 *max_response_bytes;	/* request: checked there */
	bool		  follow_redirects;	/* request */
};

struct credctl;

/* One entry of the command table. */
struct credctl_cmd {
	const char	*name;		/* "type add" */
	const char	*args;		/* usage after the name */
	const char	*about;		/* one line for help */
	int		 min_args;
	int		 max_args;
	int		 opts;		/* CREDCTL_OPT_* */
	int		(*exec)(struct credctl *, struct credctl_args *);
};

/* State of one credctl run. */
struct credctl {
	const char		*socket;	/* NULL: library default */
	bool			 json;
	const struct credctl_cmd *cmd;		/* the command being run */
	struct credbroker	*conn;		/* opened on first use */
};

/*
 * A msgpack packer writing into a wiping buffer; secbuf_failed(&buf) says
 * whether it ran out of memory.
 */
struct credctl_pack {
	struct secbuf	buf;
	msgpack_packer	pk;
};

/* credctl.c */
void	credctl_pack_init(struct credctl_pack *);
void	credctl_pack_free(struct credctl_pack *);
int	credctl_connect(struct credctl *);
int	credctl_call(struct credctl *, const char *,
	    struct credctl_pack *, struct credbroker_reply **);
int	credctl_usage(struct credctl *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	credctl_invalid(struct credctl *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	credctl_local_error(struct credctl *, const char *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
int	credctl_broker_error(struct credctl *, const char *, const char *,
	    ...) __attribute__((format(printf, 3, 4)));
int	credctl_output(struct credctl *, const msgpack_object *);

/* credctl-print.c */
bool	credctl_utf8_valid(const unsigned char *, size_t);
char   *credctl_sanitize(const char *, size_t);
char   *credctl_text(const msgpack_object *);
void	credctl_print_kv(FILE *, const msgpack_object *, int);
void	credctl_print_fields(FILE *, const msgpack_object *,
	    const char *const *, const char *const *);
struct credctl_table;
struct credctl_table *credctl_table_new(const char *const *);
int	credctl_table_add(struct credctl_table *, const msgpack_object *,
	    const char *const *);
void	credctl_table_print(FILE *, struct credctl_table *);
void	credctl_table_free(struct credctl_table *);
int	credctl_table_add_cells(struct credctl_table *, char **);
void	credctl_print_stats(FILE *, const msgpack_object *);
int	credctl_json_print(FILE *, const msgpack_object *);
void	credctl_json_error(FILE *, const char *, const char *);

/* credctl-server.c */
int	credctl_hello(struct credctl *, struct credctl_args *);
int	credctl_health(struct credctl *, struct credctl_args *);
int	credctl_stats(struct credctl *, struct credctl_args *);

/* credctl-type.c */
int	credctl_type_add(struct credctl *, struct credctl_args *);
int	credctl_type_list(struct credctl *, struct credctl_args *);
int	credctl_type_show(struct credctl *, struct credctl_args *);
int	credctl_type_edit(struct credctl *, struct credctl_args *);
int	credctl_type_rm(struct credctl *, struct credctl_args *);
int	credctl_type_clear(struct credctl *, struct credctl_args *);

/* credctl-cred.c */
int	credctl_cred_set(struct credctl *, struct credctl_args *);
int	credctl_cred_status(struct credctl *, struct credctl_args *);
int	credctl_cred_list(struct credctl *, struct credctl_args *);
int	credctl_cred_rm(struct credctl *, struct credctl_args *);
int	credctl_cred_link(struct credctl *, struct credctl_args *);
int	credctl_cred_unlink(struct credctl *, struct credctl_args *);
/* Secret input, shared with credctl-vault.c (values go into secbufs). */
void	credctl_harden(void);
int	credctl_read_tty(struct credctl *, struct secbuf *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
int	credctl_read_stdin(struct credctl *, bool, struct secbuf *);

/* credctl-substitute.c */
int	credctl_substitute(struct credctl *, struct credctl_args *);
int	credctl_request(struct credctl *, struct credctl_args *);

/* credctl-audit.c (local: no broker) */
int	credctl_audit_verify(struct credctl *, struct credctl_args *);

/* credctl-vault.c */
int	credctl_vault_adopt(struct credctl *, struct credctl_args *);
int	credctl_vault_show(struct credctl *, struct credctl_args *);
int	credctl_vault_set(struct credctl *, struct credctl_args *);
int	credctl_vault_test(struct credctl *, struct credctl_args *);

/* credctl-key.c */
int	credctl_key_check(struct credctl *, struct credctl_args *);
int	credctl_key_rotate(struct credctl *, struct credctl_args *);

/* credctl-import.c */
int	credctl_import(struct credctl *, struct credctl_args *);

/* credctl-keypair.c */
int	credctl_keypair_generate(struct credctl *, struct credctl_args *);
int	credctl_keypair_import(struct credctl *, struct credctl_args *);
int	credctl_keypair_show(struct credctl *, struct credctl_args *);
int	credctl_keypair_list(struct credctl *, struct credctl_args *);
int	credctl_keypair_rm(struct credctl *, struct credctl_args *);
int	credctl_peerkey_set(struct credctl *, struct credctl_args *);
int	credctl_peerkey_show(struct credctl *, struct credctl_args *);
int	credctl_peerkey_list(struct credctl *, struct credctl_args *);
int	credctl_peerkey_rm(struct credctl *, struct credctl_args *);

#endif
