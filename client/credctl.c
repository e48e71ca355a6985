/*
 * credctl: the administrator's command-line client of credbroker.
 *
 *	credctl [-s SOCKET] [--json] [-h] [--version] COMMAND [ARG...]
 *
 * This file holds main(), the command table (one designated-initialiser
 * entry per command: name, usage, argument counts, accepted options,
 * handler), the per-command option parser, the help text, and the
 * helpers that every command uses to pack parameters, call the broker and
 * report errors.  The commands themselves live in credctl-<family>.c.
 *
 * Exit status (also in credctl --help and credctl(1)):
 *	0  success
 *	1  the broker answered with an error (its code and message are shown),
 *	   or a step of "vault test" failed
 *	2  usage error or invalid input: unknown command or option, wrong
 *	   number of arguments, an empty or oversized credential value or
 *	   PEM key, a --file that cannot be read, "substitute" without
 *	   --dry-run, an invalid JSON document, a bad "request" option
 *	3  cannot connect to the broker, or a protocol or I/O failure
 *
 * Errors with status 1 and 3 go to stderr as "credctl: CODE: MESSAGE",
 * or with --json to stdout as {"error": {"code": ..., "message": ...}};
 * usage errors always go to stderr.  No message ever contains a
 * credential value, and argv is never echoed past an option's name, but
 * for a word given where a command was expected (its first 64
 * characters), which an unknown command's error names.
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cb_version.h"
#include "credbroker.h"
#include "credctl.h"
#include "proto.h"
#include "secbuf.h"

static int	credctl_help(struct credctl *, struct credctl_args *);

static void	credctl_print_word(FILE *, const char *);

static char	credctl_rm_word[] = "rm";

static const struct credctl_cmd credctl_cmds[] = {
	{
		.name = "hello",
		.args = "",
		.about = "show the broker's version, the protocol and your "
		    "permissions",
		.exec = credctl_hello,
	},
	{
		.name = "health",
		.args = "",
		.about = "show the state of the store and of Vault, and the "
		    "uptime",
		.exec = credctl_health,
	},
	{
		.name = "stats",
		.args = "",
		.about = "show calls per method and outcome, latency "
		    "percentiles, and store and Vault figures",
		.exec = credctl_stats,
	},
	{
		.name = "type add",
		.args = "IDENT --name NAME [--description TEXT] "
		    "[--storage db|vault] [--destination ORIGIN]... "
		    "[--ca-file FILE] [--uuid UUID]",
		.about = "create a credential type (storage defaults to db; "
		    "--uuid keeps an existing type uuid)",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_NAME | CREDCTL_OPT_DESCRIPTION |
		    CREDCTL_OPT_STORAGE | CREDCTL_OPT_DESTINATION |
		    CREDCTL_OPT_CA_FILE | CREDCTL_OPT_UUID,
		.exec = credctl_type_add,
	},
	{
		.name = "type list",
		.args = "",
		.about = "list the credential types",
		.exec = credctl_type_list,
	},
	{
		.name = "type show",
		.args = "TYPE",
		.about = "show one credential type (TYPE: an ident or a uuid)",
		.min_args = 1, .max_args = 1,
		.exec = credctl_type_show,
	},
	{
		.name = "type edit",
		.args = "TYPE [--name NAME] [--description TEXT] "
		    "[--storage db|vault] [--destination ORIGIN]... "
		    "[--no-destinations] [--ca-file FILE] "
		    "[--default-account NAME|--no-default-account]",
		.about = "change a credential type (--ca-file '' clears its CA "
		    "file); values kept in the old storage are not moved",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_NAME | CREDCTL_OPT_DESCRIPTION |
		    CREDCTL_OPT_STORAGE | CREDCTL_OPT_DESTINATION |
		    CREDCTL_OPT_NO_DESTINATIONS | CREDCTL_OPT_CA_FILE |
		    CREDCTL_OPT_DEFAULT_ACCOUNT,
		.exec = credctl_type_edit,
	},
	{
		.name = "type rm",
		.args = "TYPE [--force]",
		.about = "delete a credential type; --force also deletes its "
		    "values",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_FORCE,
		.exec = credctl_type_rm,
	},
	{
		.name = "type clear",
		.args = "TYPE",
		.about = "delete every value of a type from its storage",
		.min_args = 1, .max_args = 1,
		.exec = credctl_type_clear,
	},
	{
		.name = "cred set",
		.args = "TYPE USER|--account NAME [--raw]",
		.about = "set a user's or a technical account's value, read "
		    "from standard input or a no-echo prompt",
		.min_args = 1, .max_args = 2,
		.opts = CREDCTL_OPT_RAW | CREDCTL_OPT_ACCOUNT,
		.exec = credctl_cred_set,
	},
	{
		.name = "cred status",
		.args = "USER|--type TYPE",
		.about = "show which value each type uses for a user (own, "
		    "linked or default), or a type's accounts",
		.min_args = 0, .max_args = 1,
		.opts = CREDCTL_OPT_TYPE,
		.exec = credctl_cred_status,
	},
	{
		.name = "cred list",
		.args = "--type TYPE",
		.about = "list the users, then the technical accounts, that "
		    "have a value of a type (never the values)",
		.opts = CREDCTL_OPT_TYPE,
		.exec = credctl_cred_list,
	},
	{
		.name = "cred rm",
		.args = "TYPE USER|--account NAME [--force]",
		.about = "delete a user's value, or an account's value "
		    "(--force: even if it is linked or the default)",
		.min_args = 1, .max_args = 2,
		.opts = CREDCTL_OPT_ACCOUNT | CREDCTL_OPT_FORCE,
		.exec = credctl_cred_rm,
	},
	{
		.name = "cred link",
		.args = "TYPE USER ACCOUNT",
		.about = "point a user at a technical account, whose value "
		    "it gets when it has none of its own",
		.min_args = 3, .max_args = 3,
		.exec = credctl_cred_link,
	},
	{
		.name = "cred unlink",
		.args = "TYPE USER",
		.about = "remove a user's link to a technical account",
		.min_args = 2, .max_args = 2,
		.exec = credctl_cred_unlink,
	},
	{
		.name = "import",
		.args = "FILE|- [--dry-run]",
		.about = "import the existing platform's GCM: values from "
		    "JSON Lines, re-sealed in the broker's format",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_DRY_RUN,
		.exec = credctl_import,
	},
	{
		.name = "substitute",
		.args = "--dry-run [--file FILE]",
		.about = "show where a request template's values would go, "
		    "masked (never the values)",
		.opts = CREDCTL_OPT_DRY_RUN | CREDCTL_OPT_FILE,
		.exec = credctl_substitute,
	},
	{
		.name = "request",
		.args = "[--file FILE] [--timeout MS] [--max-response-bytes N] "
		    "[--follow-redirects] [--dry-run]",
		.about = "have the broker send a request template and show "
		    "the response, echoes of the values redacted",
		.opts = CREDCTL_OPT_DRY_RUN | CREDCTL_OPT_FILE |
		    CREDCTL_OPT_REQUEST,
		.exec = credctl_request,
	},
	{
		.name = "vault show",
		.args = "",
		.about = "show the Vault settings (role_id and secret_id only "
		    "as set or not set)",
		.exec = credctl_vault_show,
	},
	{
		.name = "vault adopt",
		.args = "TYPE",
		.about = "re-seal in place the existing platform's GCM: "
		    "values of a Vault-stored type",
		.min_args = 1, .max_args = 1,
		.exec = credctl_vault_adopt,
	},
	{
		.name = "vault set",
		.args = "--url URL --path PATH [--enable|--disable] "
		    "[--role-id ID|--role-id-stdin] "
		    "[--secret-id-stdin|--secret-id-prompt] [--ca-file FILE] "
		    "[--namespace NS] [--timeout-ms N] [--cache-seconds N]",
		.about = "change the Vault settings; role_id and secret_id "
		    "are kept unless given",
		.opts = CREDCTL_OPT_VAULT | CREDCTL_OPT_ENABLE |
		    CREDCTL_OPT_CACHE,
		.exec = credctl_vault_set,
	},
	{
		.name = "vault test",
		.args = "[--url URL] [--path PATH] "
		    "[--role-id ID|--role-id-stdin] "
		    "[--secret-id-stdin|--secret-id-prompt] [--ca-file FILE] "
		    "[--namespace NS] [--timeout-ms N]",
		.about = "log in to Vault, write, read and list a test secret "
		    "(stored settings, or these); exit 1 if a step fails",
		.opts = CREDCTL_OPT_VAULT,
		.exec = credctl_vault_test,
	},
	{
		.name = "audit verify",
		.args = "FILE [--head HASH]",
		.about = "check the hash chain of an audit file (locally); "
		    "exit 1 if it was changed or cut",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_HEAD,
		.exec = credctl_audit_verify,
	},
	{
		.name = "key check",
		.args = "",
		.about = "show the master key version and the state and "
		    "progress of a key rotation",
		.exec = credctl_key_check,
	},
	{
		.name = "key rotate",
		.args = "NEW_KEY_FILE [--wait]",
		.about = "re-seal every value under the key in NEW_KEY_FILE (a "
		    "file on the broker's host), or resume; --wait: until done",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_WAIT,
		.exec = credctl_key_rotate,
	},
	{
		.name = "keypair generate",
		.args = "IDENT",
		.about = "make a new RSA-2048 key pair version in the broker "
		    "(the private key never leaves it)",
		.min_args = 1, .max_args = 1,
		.exec = credctl_keypair_generate,
	},
	{
		.name = "keypair import",
		.args = "IDENT [--file FILE]",
		.about = "add a key pair version from an RSA private key PEM "
		    "read from FILE or standard input",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_FILE,
		.exec = credctl_keypair_import,
	},
	{
		.name = "keypair show",
		.args = "IDENT [--pem | --base64] [--version N]",
		.about = "show a key pair's versions, or only the public PEM "
		    "(or its base64) of the current version or of N",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_PEM | CREDCTL_OPT_BASE64 |
		    CREDCTL_OPT_KEY_VERSION,
		.exec = credctl_keypair_show,
	},
	{
		.name = "keypair list",
		.args = "",
		.about = "list the key pairs",
		.exec = credctl_keypair_list,
	},
	{
		.name = "keypair rm",
		.args = "IDENT [--version N]",
		.about = "delete one version of a key pair, or all of them",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_KEY_VERSION,
		.exec = credctl_keypair_rm,
	},
	{
		.name = "peerkey set",
		.args = "IDENT VERSION [--file FILE]",
		.about = "store a counterpart's RSA public key PEM, read from "
		    "FILE or standard input, as version VERSION",
		.min_args = 2, .max_args = 2,
		.opts = CREDCTL_OPT_FILE,
		.exec = credctl_peerkey_set,
	},
	{
		.name = "peerkey show",
		.args = "IDENT [--pem] [--version N]",
		.about = "show a peer key's versions, or only the PEM of the "
		    "current version or of N",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_PEM | CREDCTL_OPT_KEY_VERSION,
		.exec = credctl_peerkey_show,
	},
	{
		.name = "peerkey list",
		.args = "",
		.about = "list the peer keys",
		.exec = credctl_peerkey_list,
	},
	{
		.name = "peerkey rm",
		.args = "IDENT [--version N]",
		.about = "delete one version of a peer key, or all of them",
		.min_args = 1, .max_args = 1,
		.opts = CREDCTL_OPT_KEY_VERSION,
		.exec = credctl_peerkey_rm,
	},
	{
		.name = "help",
		.args = "[COMMAND...]",
		.about = "show this help, or the commands matching COMMAND",
		.min_args = 0, .max_args = 2,
		.exec = credctl_help,
	},
};
#define CREDCTL_NCMDS	(sizeof(credctl_cmds) / sizeof(credctl_cmds[0]))

/* Option values returned by getopt_long for the per-command options. */
enum {
	OPTV_NAME = 256,
	OPTV_DESCRIPTION,
	OPTV_STORAGE,
	OPTV_DESTINATION,
	OPTV_NO_DESTINATIONS,
	OPTV_FORCE,
	OPTV_RAW,
	OPTV_DRY_RUN,
	OPTV_FILE,
	OPTV_URL,
	OPTV_PATH,
	OPTV_ENABLE,
	OPTV_DISABLE,
	OPTV_ROLE_ID,
	OPTV_ROLE_ID_STDIN,
	OPTV_SECRET_ID_STDIN,
	OPTV_SECRET_ID_PROMPT,
	OPTV_CA_FILE,
	OPTV_NAMESPACE,
	OPTV_TIMEOUT_MS,
	OPTV_CACHE_SECONDS,
	OPTV_HEAD,
	OPTV_WAIT,
	OPTV_PEM,
	OPTV_BASE64,
	OPTV_KEY_VERSION,
	OPTV_ACCOUNT,
	OPTV_DEFAULT_ACCOUNT,
	OPTV_NO_DEFAULT_ACCOUNT,
	OPTV_TYPE,
	OPTV_UUID,
	OPTV_TIMEOUT,
	OPTV_MAX_RESPONSE_BYTES,
	OPTV_FOLLOW_REDIRECTS,
	OPTV_JSON,
	OPTV_VERSION
};

/* The per-command options and the CREDCTL_OPT_* bit enabling each. */
static const struct {
	int		bit;
	struct option	opt;
} credctl_cmd_opts[] = {
	{ CREDCTL_OPT_NAME, { "name", required_argument, NULL, OPTV_NAME } },
	{ CREDCTL_OPT_DESCRIPTION,
	    { "description", required_argument, NULL, OPTV_DESCRIPTION } },
	{ CREDCTL_OPT_STORAGE,
	    { "storage", required_argument, NULL, OPTV_STORAGE } },
	{ CREDCTL_OPT_DESTINATION,
	    { "destination", required_argument, NULL, OPTV_DESTINATION } },
	{ CREDCTL_OPT_NO_DESTINATIONS,
	    { "no-destinations", no_argument, NULL, OPTV_NO_DESTINATIONS } },
	{ CREDCTL_OPT_CA_FILE,
	    { "ca-file", required_argument, NULL, OPTV_CA_FILE } },
	{ CREDCTL_OPT_FORCE, { "force", no_argument, NULL, OPTV_FORCE } },
	{ CREDCTL_OPT_RAW, { "raw", no_argument, NULL, OPTV_RAW } },
	{ CREDCTL_OPT_DRY_RUN,
	    { "dry-run", no_argument, NULL, OPTV_DRY_RUN } },
	{ CREDCTL_OPT_FILE, { "file", required_argument, NULL, OPTV_FILE } },
	{ CREDCTL_OPT_VAULT, { "url", required_argument, NULL, OPTV_URL } },
	{ CREDCTL_OPT_VAULT, { "path", required_argument, NULL, OPTV_PATH } },
	{ CREDCTL_OPT_ENABLE, { "enable", no_argument, NULL, OPTV_ENABLE } },
	{ CREDCTL_OPT_ENABLE,
	    { "disable", no_argument, NULL, OPTV_DISABLE } },
	{ CREDCTL_OPT_VAULT,
	    { "role-id", required_argument, NULL, OPTV_ROLE_ID } },
	{ CREDCTL_OPT_VAULT,
	    { "role-id-stdin", no_argument, NULL, OPTV_ROLE_ID_STDIN } },
	{ CREDCTL_OPT_VAULT,
	    { "secret-id-stdin", no_argument, NULL, OPTV_SECRET_ID_STDIN } },
	{ CREDCTL_OPT_VAULT,
	    { "secret-id-prompt", no_argument, NULL, OPTV_SECRET_ID_PROMPT } },
	{ CREDCTL_OPT_VAULT,
	    { "ca-file", required_argument, NULL, OPTV_CA_FILE } },
	{ CREDCTL_OPT_VAULT,
	    { "namespace", required_argument, NULL, OPTV_NAMESPACE } },
	{ CREDCTL_OPT_VAULT,
	    { "timeout-ms", required_argument, NULL, OPTV_TIMEOUT_MS } },
	{ CREDCTL_OPT_CACHE,
	    { "cache-seconds", required_argument, NULL, OPTV_CACHE_SECONDS } },
	{ CREDCTL_OPT_HEAD, { "head", required_argument, NULL, OPTV_HEAD } },
	{ CREDCTL_OPT_WAIT, { "wait", no_argument, NULL, OPTV_WAIT } },
	{ CREDCTL_OPT_PEM, { "pem", no_argument, NULL, OPTV_PEM } },
	{ CREDCTL_OPT_BASE64, { "base64", no_argument, NULL, OPTV_BASE64 } },
	{ CREDCTL_OPT_KEY_VERSION,
	    { "version", required_argument, NULL, OPTV_KEY_VERSION } },
	{ CREDCTL_OPT_ACCOUNT,
	    { "account", required_argument, NULL, OPTV_ACCOUNT } },
	{ CREDCTL_OPT_DEFAULT_ACCOUNT,
	    { "default-account", required_argument, NULL,
	    OPTV_DEFAULT_ACCOUNT } },
	{ CREDCTL_OPT_DEFAULT_ACCOUNT,
	    { "no-default-account", no_argument, NULL,
	    OPTV_NO_DEFAULT_ACCOUNT } },
	{ CREDCTL_OPT_TYPE, { "type", required_argument, NULL, OPTV_TYPE } },
	{ CREDCTL_OPT_UUID, { "uuid", required_argument, NULL, OPTV_UUID } },
	{ CREDCTL_OPT_REQUEST,
	    { "timeout", required_argument, NULL, OPTV_TIMEOUT } },
	{ CREDCTL_OPT_REQUEST,
	    { "max-response-bytes", required_argument, NULL,
	    OPTV_MAX_RESPONSE_BYTES } },
	{ CREDCTL_OPT_REQUEST,
	    { "follow-redirects", no_argument, NULL, OPTV_FOLLOW_REDIRECTS } },
};
#define CREDCTL_NCMDOPTS \
	(sizeof(credctl_cmd_opts) / sizeof(credctl_cmd_opts[0]))

/* Options accepted before the command and after it alike. */
static const struct option credctl_common_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "json", no_argument, NULL, OPTV_JSON },
	{ "help", no_argument, NULL, 'h' },
};
#define CREDCTL_NCOMMON \
	(sizeof(credctl_common_opts) / sizeof(credctl_common_opts[0]))

/* Print the top-level usage line. */
static void
credctl_usage_line(FILE *f)
{
	fprintf(f, "usage: credctl [-s SOCKET] [--json] [-h] [--version] "
	    "COMMAND [ARG...]\n");
}

/* Print one command's usage, and its description when verbose. */
static void
credctl_cmd_usage(FILE *f, const struct credctl_cmd *cmd, bool verbose)
{
	fprintf(f, "%s %s%s%s\n", verbose ? " " : "usage: credctl", cmd->name,
	    *cmd->args != '\0' ? " " : "", cmd->args);
	if (verbose)
		fprintf(f, "\t%s\n", cmd->about);
}

/* The full help: usage, commands, options, environment, exit status. */
static void
credctl_full_help(FILE *f)
{
	size_t	i;

	credctl_usage_line(f);
	fprintf(f, "\nCommands:\n");
	for (i = 0; i < CREDCTL_NCMDS; i++)
		credctl_cmd_usage(f, &credctl_cmds[i], true);
	fprintf(f,
	    "\nOptions (before or after the command):\n"
	    "  -s, --socket SOCKET  the broker's socket (default: "
	    "$" CREDBROKER_SOCKET_ENV ",\n"
	    "                       else " CREDBROKER_DEFAULT_SOCKET ")\n"
	    "      --json           print results (and errors) as JSON on "
	    "standard output\n"
	    "  -h, --help           show help (for a command: its usage; "
	    "for a group such\n"
	    "                       as 'credctl type --help': its "
	    "commands)\n"
	    "      --version        show credctl's version\n"
	    "\n'delete' is another name of 'rm' in every group that has "
	    "'rm'.\n"
	    "\nThe value of 'cred set' is never taken from the command line: "
	    "it is read\nfrom standard input (at most 1 MiB; one trailing "
	    "newline is removed unless\n--raw) or, when standard input is a "
	    "terminal, from a prompt without echo.\n"
	    "\n'cred set' and 'cred rm' with --account NAME work on a type's "
	    "technical account:\na value shared by the users linked to it "
	    "('cred link') and, when it is the\ntype's default ('type edit "
	    "--default-account'), by every user with neither a\nvalue of "
	    "their own nor a link.\n"
	    "\n'substitute --dry-run' reads the params of the substitute "
	    "method as JSON,\n{\"component\": {...}, \"request\": {...}}, "
	    "from FILE or standard input, and\nshows the request with every "
	    "value masked as ~masked-ID~, the subject, and\nwhich values are "
	    "set.  credctl never prints a credential value: --dry-run is\n"
	    "required.\n"
	    "\n'request' reads the same document and has the broker "
	    "substitute the values,\nsend the request itself and answer "
	    "with the response, every echo of a\nvalue replaced by "
	    "[REDACTED:ID]; it prints HTTP STATUS, the headers, a blank\n"
	    "line and the body as it is (--json: the result, the body in "
	    "base64 when\nbinary).  'request --dry-run' shows the masked "
	    "substitution instead and\nsends nothing.\n"
	    "\n'vault set' and 'vault test' never take the secret_id from "
	    "the command line:\n--secret-id-stdin reads it from standard "
	    "input (one line), --secret-id-prompt\nasks for it on the "
	    "terminal without echo.  --role-id-stdin reads the role_id\n"
	    "from standard input (with --secret-id-stdin too: the role_id "
	    "on the first line,\nthe secret_id on the second).  Without "
	    "them the stored role_id and secret_id\nare kept; without "
	    "--enable or --disable 'vault set' keeps the stored state.\n"
	    "--ca-file '' and --namespace '' clear those settings.\n"
	    "\n'keypair import' reads an unencrypted RSA private key, PKCS#1 "
	    "or PKCS#8 PEM\nof at most 16384 bytes, from FILE or standard "
	    "input (not a terminal), never\nfrom the command line; "
	    "'peerkey set' reads a public key PEM the same way.\n"
	    "'show --pem' prints only the public PEM, to hand to a "
	    "counterpart; 'keypair\nshow --base64' prints base64(PEM), the "
	    "form of a login service's\nSignaturePublicKey setting.  No "
	    "command prints a private key or a token:\ncomponents get "
	    "tokens through libcredbroker or any msgpack-rpc client.\n"
	    "\nExit status:\n"
	    "  0  success\n"
	    "  1  the broker answered with an error, or a step of 'vault "
	    "test' failed\n"
	    "  2  usage error or invalid input\n"
	    "  3  cannot connect to the broker, or a protocol or I/O "
	    "failure\n");
}

/* Does cmd's name start with the nwords words in words? */
static bool
credctl_cmd_matches(const struct credctl_cmd *cmd, char **words, int nwords,
    bool whole)
{
	const char	*p = cmd->name;
	size_t		 n;
	int		 i;

	for (i = 0; i < nwords; i++) {
		n = strlen(words[i]);
		if (strncmp(p, words[i], n) != 0 || (p[n] != ' ' &&
		    p[n] != '\0'))
			return false;
		p += n;
		if (*p == ' ')
			p++;
		else if (i + 1 < nwords)
			return false;
	}
	return !whole || *p == '\0';
}

/*
 * Find the command named by the first words of argv (one or two words);
 * *nwords receives how many words it took.
 */
static const struct credctl_cmd *
credctl_find(int argc, char **argv, int *nwords)
{
	size_t	i;
	int	n;

	for (n = argc < 2 ? argc : 2; n > 0; n--)
		for (i = 0; i < CREDCTL_NCMDS; i++)
			if (credctl_cmd_matches(&credctl_cmds[i], argv, n,
			    true)) {
				*nwords = n;
				return &credctl_cmds[i];
			}
	return NULL;
}

/* Is there a "GROUP rm" command, which "GROUP delete" also names? */
static bool
credctl_alias_rm(const char *group)
{
	size_t	i, n = strlen(group);

	for (i = 0; i < CREDCTL_NCMDS; i++)
		if (strncmp(credctl_cmds[i].name, group, n) == 0 &&
		    strcmp(credctl_cmds[i].name + n, " rm") == 0)
			return true;
	return false;
}

/* List (f NULL: count) the commands whose names start with words. */
static int
credctl_list_matching(FILE *f, char **words, int nwords)
{
	size_t	i;
	int	found = 0;

	for (i = 0; i < CREDCTL_NCMDS; i++)
		if (credctl_cmd_matches(&credctl_cmds[i], words, nwords,
		    false)) {
			if (f != NULL)
				credctl_cmd_usage(f, &credctl_cmds[i], true);
			found++;
		}
	return found;
}

/* credctl help [COMMAND...] */
static int
credctl_help(struct credctl *ctx, struct credctl_args *args)
{
	if (args->argc == 0) {
		credctl_full_help(stdout);
		return CREDCTL_EXIT_OK;
	}
	if (credctl_list_matching(stdout, args->argv, args->argc) == 0) {
		fprintf(stderr, "credctl help: unknown command ");
		credctl_print_word(stderr, args->argc > 1 &&
		    credctl_list_matching(NULL, args->argv, 1) > 0 ?
		    args->argv[1] : args->argv[0]);
		fprintf(stderr, "\nsee 'credctl help' for the commands\n");
		return CREDCTL_EXIT_USAGE;
	}
	return CREDCTL_EXIT_OK;
}

/* Report a usage error for the current command; returns exit status 2. */
int
credctl_usage(struct credctl *ctx, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "credctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (ctx->cmd != NULL)
		credctl_cmd_usage(stderr, ctx->cmd, false);
	else
		credctl_usage_line(stderr);
	return CREDCTL_EXIT_USAGE;
}

/* Report invalid input (no usage line); returns exit status 2. */
int
credctl_invalid(struct credctl *ctx, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "credctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CREDCTL_EXIT_USAGE;
}

/* Print an error with a code, as JSON or for humans. */
static void
credctl_print_error(struct credctl *ctx, const char *code, const char *msg)
{
	char	*safe;

	if (ctx->json) {
		credctl_json_error(stdout, code, msg);
		return;
	}
	safe = credctl_sanitize(msg, strlen(msg));
	fprintf(stderr, "credctl: %s: %s\n", code, safe != NULL ? safe : "");
	free(safe);
}

/* Report a local failure (code "io", ...); returns exit status 3. */
int
credctl_local_error(struct credctl *ctx, const char *code, const char *fmt,
    ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	credctl_print_error(ctx, code, msg);
	return CREDCTL_EXIT_LOCAL;
}

/* Start packing params into a wiping buffer. */
void
credctl_pack_init(struct credctl_pack *p)
{
	memset(p, 0, sizeof(*p));
	msgpack_packer_init(&p->pk, &p->buf, secbuf_msgpack_write);
}

/* Wipe and free a pack. */
void
credctl_pack_free(struct credctl_pack *p)
{
	secbuf_free(&p->buf);
}

/*
 * The group whose members may reach the socket at path: the socket's own
 * group, or, when a directory on the way cannot be searched, that
 * directory's group.  Returns false when it cannot be told.
 */
static bool
credctl_socket_group(const char *path, char *name, size_t sz)
{
	struct stat	 st;
	struct group	*gr;
	char		*p, *slash;
	bool		 found = false;

	if ((p = strdup(path)) == NULL)
		return false;
	while (stat(p, &st) == -1) {
		if (errno != EACCES || (slash = strrchr(p, '/')) == NULL ||
		    slash == p)
			goto done;
		*slash = '\0';
	}
	if ((gr = getgrgid(st.st_gid)) != NULL)
		snprintf(name, sz, "%s", gr->gr_name);
	else
		snprintf(name, sz, "%u", (unsigned)st.st_gid);
	found = true;
done:
	free(p);
	return found;
}

/*
 * Permission denied on the socket: name the group that grants access, so
 * that the user knows whom to ask.  Returns exit status 3.
 */
static int
credctl_connect_denied(struct credctl *ctx, const char *path)
{
	char	group[256], msg[512];

	if (credctl_socket_group(path, group, sizeof(group)))
		snprintf(msg, sizeof(msg), "%s: permission denied (the socket "
		    "is for group %s: ask to be added to it)", path, group);
	else
		snprintf(msg, sizeof(msg), "%s: permission denied", path);
	if (ctx->json)
		credctl_json_error(stdout, CREDBROKER_ERR_CONNECT, msg);
	else
		fprintf(stderr, "credctl: connect %s\n", msg);
	return CREDCTL_EXIT_LOCAL;
}

/* Open the connection if it is not open yet; 0 or exit status 3. */
int
credctl_connect(struct credctl *ctx)
{
	struct credbroker_error	 err;
	const char		*path = ctx->socket;

	if (ctx->conn != NULL)
		return 0;
	if (credbroker_connect(ctx->socket, &ctx->conn, &err) != 0) {
		/* The library's choice of socket, to name it. */
		if (path == NULL && ((path = secure_getenv(
		    CREDBROKER_SOCKET_ENV)) == NULL || *path == '\0'))
			path = CREDBROKER_DEFAULT_SOCKET;
		if (strcmp(err.code, CREDBROKER_ERR_CONNECT) == 0 &&
		    access(path, W_OK) == -1 && errno == EACCES)
			return credctl_connect_denied(ctx, path);
		credctl_print_error(ctx, err.code, err.message);
		return CREDCTL_EXIT_LOCAL;
	}
	return 0;
}

/*
 * Call method with the params in p (NULL: none).  Returns 0 with *out
 * set, or the exit status after reporting the error.
 */
int
credctl_call(struct credctl *ctx, const char *method, struct credctl_pack *p,
    struct credbroker_reply **out)
{
	struct credbroker_error	err;
	int			rc;

	*out = NULL;
	if (p != NULL && secbuf_failed(&p->buf))
		return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
	if ((rc = credctl_connect(ctx)) != 0)
		return rc;
	rc = credbroker_call(ctx->conn, method,
	    p != NULL ? (const char *)p->buf.data : NULL,
	    p != NULL ? p->buf.len : 0, out, &err);
	if (rc == 0)
		return CREDCTL_EXIT_OK;
	credctl_print_error(ctx, err.code, err.message);
	return rc == CREDBROKER_EBROKER ? CREDCTL_EXIT_BROKER :
	    CREDCTL_EXIT_LOCAL;
}

/*
 * Report an error about what the broker answered, in the broker's terms
 * (code "not_found" for a version the answer does not hold); returns exit
 * status 1.
 */
int
credctl_broker_error(struct credctl *ctx, const char *code, const char *fmt,
    ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	credctl_print_error(ctx, code, msg);
	return CREDCTL_EXIT_BROKER;
}

/* --json: print the result as JSON on stdout. */
int
credctl_output(struct credctl *ctx, const msgpack_object *result)
{
	if (credctl_json_print(stdout, result) != 0)
		return credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "cannot convert the result to JSON");
	return CREDCTL_EXIT_OK;
}

/* Report a getopt error without echoing an option's argument. */
static int
credctl_bad_option(struct credctl *ctx, int ch, char **argv)
{
	const char	*arg = argv[optind - 1];
	int		 n;

	/*
	 * "--value=secret": show only up to the '='; and only the characters
	 * of an option name, so that text given by mistake where an option
	 * goes (a PEM key starts with "-----BEGIN") is not echoed either.
	 */
	n = (int)strspn(arg, "-abcdefghijklmnopqrstuvwxyz0123456789");
	if (n > 64)
		n = 64;
	if (optopt > 0 && optopt < 256) {
		if (ch == ':')
			return credctl_usage(ctx,
			    "option -%c needs an argument", optopt);
		return credctl_usage(ctx, "unknown option -%c", optopt);
	}
	if (ch == ':')
		return credctl_usage(ctx, "option %.*s needs an argument", n,
		    arg);
	if (optopt >= 256)
		return credctl_usage(ctx, "option %.*s takes no argument", n,
		    arg);
	return credctl_usage(ctx, "unknown option %.*s", n, arg);
}

/* Record a single-use string option, refusing a repeat. */
static int
credctl_set_once(struct credctl *ctx, const char **slot, const char *name)
{
	if (*slot != NULL)
		return credctl_usage(ctx, "option --%s given twice", name);
	*slot = optarg;
	return 0;
}

/*
 * Parse the options and arguments after the command words.  argv[0] is
 * the last command word.  Returns 0, -1 when --help was handled (exit 0),
 * or exit status 2.
 */
static int
credctl_parse(struct credctl *ctx, const struct credctl_cmd *cmd, int argc,
    char **argv, struct credctl_args *args)
{
	struct option	 opts[CREDCTL_NCOMMON + CREDCTL_NCMDOPTS + 1];
	const char	**d;
	size_t		 i, n = 0;
	int		 ch, rc;

	memset(opts, 0, sizeof(opts));
	for (i = 0; i < CREDCTL_NCOMMON; i++)
		opts[n++] = credctl_common_opts[i];
	for (i = 0; i < CREDCTL_NCMDOPTS; i++)
		if (cmd->opts & credctl_cmd_opts[i].bit)
			opts[n++] = credctl_cmd_opts[i].opt;

	optind = 0;		/* glibc: full re-initialisation */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":s:h", opts, NULL)) != -1) {
		rc = 0;
		switch (ch) {
		case 's':
			ctx->socket = optarg;
			break;
		case OPTV_JSON:
			ctx->json = true;
			break;
		case 'h':
			credctl_cmd_usage(stdout, cmd, false);
			printf("\t%s\n", cmd->about);
			return -1;
		case OPTV_NAME:
			rc = credctl_set_once(ctx, &args->name, "name");
			break;
		case OPTV_DESCRIPTION:
			rc = credctl_set_once(ctx, &args->description,
			    "description");
			break;
		case OPTV_STORAGE:
			rc = credctl_set_once(ctx, &args->storage, "storage");
			if (rc == 0 && strcmp(optarg, "db") != 0 &&
			    strcmp(optarg, "vault") != 0)
				rc = credctl_usage(ctx,
				    "--storage must be db or vault");
			break;
		case OPTV_DESTINATION:
			d = reallocarray(args->destinations,
			    args->ndestinations + 1, sizeof(*d));
			if (d == NULL)
				return credctl_usage(ctx, "out of memory");
			args->destinations = d;
			d[args->ndestinations++] = optarg;
			break;
		case OPTV_NO_DESTINATIONS:
			args->no_destinations = true;
			break;
		case OPTV_FORCE:
			args->force = true;
			break;
		case OPTV_RAW:
			args->raw = true;
			break;
		case OPTV_DRY_RUN:
			args->dry_run = true;
			break;
		case OPTV_FILE:
			rc = credctl_set_once(ctx, &args->file, "file");
			break;
		case OPTV_URL:
			rc = credctl_set_once(ctx, &args->url, "url");
			break;
		case OPTV_PATH:
			rc = credctl_set_once(ctx, &args->path, "path");
			break;
		case OPTV_ENABLE:
			args->enable = true;
			break;
		case OPTV_DISABLE:
			args->disable = true;
			break;
		case OPTV_ROLE_ID:
			rc = credctl_set_once(ctx, &args->role_id, "role-id");
			break;
		case OPTV_ROLE_ID_STDIN:
			args->role_id_stdin = true;
			break;
		case OPTV_SECRET_ID_STDIN:
			args->secret_id_stdin = true;
			break;
		case OPTV_SECRET_ID_PROMPT:
			args->secret_id_prompt = true;
			break;
		case OPTV_CA_FILE:
			rc = credctl_set_once(ctx, &args->ca_file, "ca-file");
			break;
		case OPTV_NAMESPACE:
			rc = credctl_set_once(ctx, &args->namespace,
			    "namespace");
			break;
		case OPTV_TIMEOUT_MS:
			rc = credctl_set_once(ctx, &args->timeout_ms,
			    "timeout-ms");
			break;
		case OPTV_CACHE_SECONDS:
			rc = credctl_set_once(ctx, &args->cache_seconds,
			    "cache-seconds");
			break;
		case OPTV_HEAD:
			rc = credctl_set_once(ctx, &args->head, "head");
			break;
		case OPTV_WAIT:
			args->wait = true;
			break;
		case OPTV_PEM:
			args->pem = true;
			break;
		case OPTV_BASE64:
			args->base64 = true;
			break;
		case OPTV_KEY_VERSION:
			rc = credctl_set_once(ctx, &args->key_version,
			    "version");
			break;
		case OPTV_ACCOUNT:
			rc = credctl_set_once(ctx, &args->account, "account");
			break;
		case OPTV_DEFAULT_ACCOUNT:
			rc = credctl_set_once(ctx, &args->default_account,
			    "default-account");
			break;
		case OPTV_NO_DEFAULT_ACCOUNT:
			args->no_default_account = true;
			break;
		case OPTV_TYPE:
			rc = credctl_set_once(ctx, &args->type, "type");
			break;
		case OPTV_UUID:
			rc = credctl_set_once(ctx, &args->uuid, "uuid");
			break;
		case OPTV_TIMEOUT:
			rc = credctl_set_once(ctx, &args->timeout, "timeout");
			break;
		case OPTV_MAX_RESPONSE_BYTES:
			rc = credctl_set_once(ctx, &args->max_response_bytes,
			    "max-response-bytes");
			break;
		case OPTV_FOLLOW_REDIRECTS:
			args->follow_redirects = true;
			break;
		default:
			return credctl_bad_option(ctx, ch, argv);
		}
		if (rc != 0)
			return rc;
	}
	args->argc = argc - optind;
	args->argv = argv + optind;
	if (args->argc < cmd->min_args)
		return credctl_usage(ctx, "%s: missing argument", cmd->name);
	if (args->argc > cmd->max_args)
		return credctl_usage(ctx, "%s: too many arguments", cmd->name);
	if (args->no_destinations && args->ndestinations > 0)
		return credctl_usage(ctx, "--destination and --no-destinations "
		    "exclude each other");
	if (args->no_default_account && args->default_account != NULL)
		return credctl_usage(ctx, "--default-account and "
		    "--no-default-account exclude each other");
	return 0;
}

/*
 * Print a word given where a command was expected, for an error message:
 * at most 64 characters, control characters made visible.
 */
static void
credctl_print_word(FILE *f, const char *word)
{
	char	*safe;

	safe = credctl_sanitize(word, strnlen(word, 64));
	fprintf(f, "'%s'%s", safe != NULL ? safe : "?",
	    strlen(word) > 64 ? "..." : "");
	free(safe);
}

/*
 * No command matched argv: "GROUP --help" prints the group's commands
 * (exit 0); otherwise say which word is not a command and exit 2.
 */
static int
credctl_no_command(int argc, char **argv)
{
	if (credctl_list_matching(NULL, argv, 1) == 0) {
		fprintf(stderr, "credctl: unknown command ");
		credctl_print_word(stderr, argv[0]);
		fprintf(stderr, "\nsee 'credctl help' for the commands\n");
		return CREDCTL_EXIT_USAGE;
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)) {
		printf("The %s commands:\n", argv[0]);
		credctl_list_matching(stdout, argv, 1);
		if (credctl_alias_rm(argv[0]))
			printf("'%s delete' is another name of '%s rm'.\n",
			    argv[0], argv[0]);
		return CREDCTL_EXIT_OK;
	}
	if (argc == 1)
		fprintf(stderr, "credctl %s: missing command\n", argv[0]);
	else if (argv[1][0] == '-')
		fprintf(stderr, "credctl %s: missing command before the "
		    "options\n", argv[0]);
	else {
		fprintf(stderr, "credctl %s: unknown command ", argv[0]);
		credctl_print_word(stderr, argv[1]);
		fputc('\n', stderr);
	}
	fprintf(stderr, "The %s commands:\n", argv[0]);
	credctl_list_matching(stderr, argv, 1);
	return CREDCTL_EXIT_USAGE;
}

/* Parse global options, find the command, parse its options, run it. */
int
main(int argc, char **argv)
{
	static const struct option gopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, OPTV_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPTV_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	struct credctl		 ctx;
	struct credctl_args	 args;
	const struct credctl_cmd *cmd;
	int			 ch, nwords, rc;

	memset(&ctx, 0, sizeof(ctx));
	memset(&args, 0, sizeof(args));

	/* Global options stop at the first word: the command. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:s:h", gopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			ctx.socket = optarg;
			break;
		case OPTV_JSON:
			ctx.json = true;
			break;
		case 'h':
			credctl_full_help(stdout);
			return CREDCTL_EXIT_OK;
		case OPTV_VERSION:
			printf("credctl %s (protocol %d)\n", CB_VERSION,
			    CREDBROKER_PROTOCOL_VERSION);
			return CREDCTL_EXIT_OK;
		default:
			return credctl_bad_option(&ctx, ch, argv);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		return credctl_usage(&ctx, "no command given; see 'credctl "
		    "help'");

	/* "GROUP delete" is another name of "GROUP rm". */
	if (argc >= 2 && strcmp(argv[1], "delete") == 0 &&
	    credctl_alias_rm(argv[0]))
		argv[1] = credctl_rm_word;
	if ((cmd = credctl_find(argc, argv, &nwords)) == NULL)
		return credctl_no_command(argc, argv);
	ctx.cmd = cmd;
	rc = credctl_parse(&ctx, cmd, argc - nwords + 1, argv + nwords - 1,
	    &args);
	if (rc == 0)
		rc = cmd->exec(&ctx, &args);
	else if (rc < 0)
		rc = CREDCTL_EXIT_OK;

	credbroker_close(ctx.conn);
	free(args.destinations);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "credctl: standard output: %s\n",
		    strerror(errno));
		if (rc == CREDCTL_EXIT_OK)
			rc = CREDCTL_EXIT_LOCAL;
	}
	return rc;
}
