/*
 * credbroker-example-runner: how a runner uses libcredbroker, end to end.
 *
 *	credbroker-example-runner [-s SOCKET] --kind KIND
 *	    [--initiator UUID] [--run-as UUID] [--system-account UUID]
 *	    [--cred ID=TYPE]... [--service-cred ID=TYPE]...
 *	    [--header 'Name: value template']... [--data 'body template']
 *	    [--timeout SECONDS] [--via-broker [--follow-redirects]]
 *	    METHOD URL
 *
 * It describes a component (KIND is action, widget, data_source or
 * status_check; --cred declares a credential the component uses,
 * --service-cred one of its external service), sends the request
 * template to the broker, performs the substituted request with libcurl,
 * and prints "HTTP STATUS" and then the response body on standard output.
 * A status check that the broker skips prints "skipped: REASON".
 *
 * With --via-broker the runner makes no HTTP request itself: it hands the
 * template to the broker's "request" method (credbroker_request()), and
 * the broker substitutes, sends the request and returns the response with
 * every echo of a used value replaced by "[REDACTED:ID]".  The runner
 * then prints "HTTP STATUS TEXT", the response headers as "Name: value" lines,
 * a blank line and the body; no credential value is ever in its memory.
 * --follow-redirects lets the broker follow redirects (each hop checked).
 *
 *	credbroker-example-runner --kind action --initiator "$USER_UUID" \
 *	    --cred gh=github_token \
 *	    --header 'Authorization: Bearer <<.credentials.gh>>' \
 *	    GET 'https://api.github.com/user'
 *
 * Exit status: 0 the request was made (whatever its HTTP status) or the
 * check was skipped; 1 the broker refused (not_found, forbidden, ...);
 * 2 usage error; 3 cannot talk to the broker; 4 the HTTP transfer failed
 * (with --via-broker the broker reports that as "unavailable": 1).
 *
 * Lifetime rules for runner authors.  What credbroker_substitute()
 * returns is not "a request": it is the user's secrets, spliced into a
 * request.  So:
 *
 *  1. Use it immediately, for exactly the request it was made for.  Ask
 *     again for the next request; never cache a substituted URL, header
 *     or body.
 *  2. Never log it.  Not the URL (query strings carry tokens), not a
 *     header, not the body, not in an error message, not with
 *     CURLOPT_VERBOSE or a debug callback.  This program reports HTTP
 *     failures with curl_easy_strerror() only, never with the URL.
 *  3. Wipe every copy.  credbroker_substituted_free() wipes the result.
 *     Copies the runner makes are its own to wipe: here, each "Name:
 *     value" line is wiped right after curl_slist_append() has copied it,
 *     and the list's entries are wiped before curl_slist_free_all().
 *     libcurl also copies the URL and headers into buffers of its own;
 *     this program gives libcurl allocation functions that wipe every
 *     block before freeing it (curl_global_init_mem), so those copies do
 *     not outlive the transfer either.  (For https, OpenSSL's record
 *     buffers are outside libcurl's allocator.)
 *  4. Do not follow redirects: a Location to another origin would carry
 *     the credential past the broker's destination check.  libcurl does
 *     not follow them unless asked; this program says so explicitly, and
 *     allows only http and https.
 *  5. Keep secrets out of core dumps: RLIMIT_CORE 0 and not dumpable.
 *
 * The response body is not a credential, but it may well be sensitive
 * too; it is wiped after it has been printed.
 */
#include <sys/prctl.h>
#include <sys/resource.h>

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "credbroker.h"

#define RUNNER_EXIT_OK		0
#define RUNNER_EXIT_BROKER	1
#define RUNNER_EXIT_USAGE	2
#define RUNNER_EXIT_LOCAL	3
#define RUNNER_EXIT_HTTP	4

/* Largest response body kept, in bytes. */
#define RUNNER_RESPONSE_MAX	(16 * 1024 * 1024)

/* The response body as it arrives. */
struct runner_response {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

/* Print the usage message; returns exit status 2. */
static int
runner_usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "credbroker-example-runner: %s\n", why);
	fprintf(stderr, "usage: credbroker-example-runner [-s SOCKET] "
	    "--kind KIND [--initiator UUID]\n"
	    "\t[--run-as UUID] [--system-account UUID] "
	    "[--cred ID=TYPE]...\n"
	    "\t[--service-cred ID=TYPE]... [--header 'Name: value']...\n"
	    "\t[--data BODY] [--timeout SECONDS] "
	    "[--via-broker [--follow-redirects]]\n"
	    "\tMETHOD URL\n");
	return RUNNER_EXIT_USAGE;
}

/* Free a block after wiping all of it (libcurl's free). */
static void
runner_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

/* libcurl's malloc. */
static void *
runner_malloc(size_t n)
{
	return malloc(n);
}

/* libcurl's realloc: copy to a new block and wipe the old one. */
static void *
runner_realloc(void *p, size_t n)
{
	size_t	 old;
	void	*q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		runner_free(p);
		return NULL;
	}
	if ((q = malloc(n)) == NULL)
		return NULL;
	old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	runner_free(p);
	return q;
}

/* libcurl's strdup. */
static char *
runner_strdup(const char *s)
{
	return strdup(s);
}

/* libcurl's calloc. */
static void *
runner_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

/* Split "ID=TYPE" into a declaration (id is malloc'd); 0 or -1. */
static int
runner_parse_decl(char *arg, struct credbroker_cred_decl *d)
{
	char	*eq;

	if ((eq = strchr(arg, '=')) == NULL || eq == arg || eq[1] == '\0')
		return -1;
	if ((d->id = strndup(arg, (size_t)(eq - arg))) == NULL)
		return -1;
	d->type = eq + 1;
	return 0;
}

/* Split "Name: value" into a header (name is malloc'd); 0 or -1. */
static int
runner_parse_header(char *arg, struct credbroker_header *h)
{
	char	*colon, *v;

	if ((colon = strchr(arg, ':')) == NULL || colon == arg)
		return -1;
	if ((h->name = strndup(arg, (size_t)(colon - arg))) == NULL)
		return -1;
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	h->value = v;
	h->value_len = 0;		/* strlen(value) */
	return 0;
}

/* libcurl write callback: keep the response body, up to a limit. */
static size_t
runner_on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct runner_response	*r = arg;
	size_t			 n = size * nmemb, ncap;
	char			*nd;

	if (n > RUNNER_RESPONSE_MAX - r->len)
		return 0;			/* CURLE_WRITE_ERROR */
	if (r->len + n > r->cap) {
		ncap = r->cap != 0 ? r->cap : 4096;
		while (ncap < r->len + n)
			ncap *= 2;
		if ((nd = runner_realloc(r->data, ncap)) == NULL)
			return 0;
		r->data = nd;
		r->cap = ncap;
	}
	memcpy(r->data + r->len, p, n);
	r->len += n;
	return n;
}

/*
 * Turn the substituted headers into a curl_slist.  Each "Name: value"
 * line is built in a temporary buffer, copied by curl_slist_append(),
 * and wiped at once.  An empty value is sent as "Name;" (libcurl's way of
 * sending an empty header; "Name:" would remove it).  NULL on failure.
 */
static struct curl_slist *
runner_headers(const struct credbroker_substituted *s, int *failed)
{
	struct curl_slist	*list = NULL, *n;
	size_t			 i, nlen, len;
	char			*line;

	*failed = 0;
	for (i = 0; i < s->nheaders; i++) {
		nlen = strlen(s->headers[i].name);
		len = nlen + 2 + s->headers[i].value_len + 1;
		if ((line = malloc(len)) == NULL)
			goto fail;
		memcpy(line, s->headers[i].name, nlen);
		if (s->headers[i].value_len == 0)
			memcpy(line + nlen, ";", 2);
		else {
			memcpy(line + nlen, ": ", 2);
			memcpy(line + nlen + 2, s->headers[i].value,
			    s->headers[i].value_len + 1);
		}
		n = curl_slist_append(list, line);
		explicit_bzero(line, len);
		free(line);
		if (n == NULL)
			goto fail;
		list = n;
	}
	return list;
fail:
	*failed = 1;
	return list;
}

/* Wipe every entry of a curl_slist, then free the list. */
static void
runner_slist_free(struct curl_slist *list)
{
	struct curl_slist	*e;

	for (e = list; e != NULL; e = e->next)
		explicit_bzero(e->data, strlen(e->data));
	curl_slist_free_all(list);
}

/*
 * Perform the substituted request.  Returns 0 with the HTTP status in
 * *status and the body in resp, or exit status 3 or 4 after reporting.
 */
static int
runner_perform(const struct credbroker_substituted *s, long timeout,
    long *status, struct runner_response *resp)
{
	struct curl_slist	*headers = NULL;
	CURL			*easy;
	CURLcode		 cc = CURLE_OK;
	int			 failed, rc = RUNNER_EXIT_OK;

	if ((easy = curl_easy_init()) == NULL) {
		fprintf(stderr, "credbroker-example-runner: cannot initialise "
		    "libcurl\n");
		return RUNNER_EXIT_LOCAL;
	}
	headers = runner_headers(s, &failed);
	if (failed) {
		fprintf(stderr, "credbroker-example-runner: out of memory\n");
		rc = RUNNER_EXIT_LOCAL;
		goto done;
	}
	/* Never CURLOPT_VERBOSE: it prints the request headers. */
	if ((cc = curl_easy_setopt(easy, CURLOPT_URL, s->url)) != CURLE_OK ||
	    (cc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR,
	    "http,https")) != CURLE_OK ||
	    (cc = curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L)) !=
	    CURLE_OK ||
	    (cc = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (cc = curl_easy_setopt(easy, CURLOPT_TIMEOUT, timeout)) !=
	    CURLE_OK ||
	    (cc = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, s->method)) !=
	    CURLE_OK ||
	    (cc = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers)) !=
	    CURLE_OK ||
	    (cc = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
	    runner_on_body)) != CURLE_OK ||
	    (cc = curl_easy_setopt(easy, CURLOPT_WRITEDATA, resp)) != CURLE_OK)
		goto curl_failed;
	/* A HEAD response has no body; without NOBODY curl waits for one. */
	if (strcmp(s->method, "HEAD") == 0 &&
	    (cc = curl_easy_setopt(easy, CURLOPT_NOBODY, 1L)) != CURLE_OK)
		goto curl_failed;
	/*
	 * POSTFIELDS is not copied: libcurl reads the body straight from
	 * the result, which therefore must live until the transfer is over.
	 */
	if (s->has_body &&
	    ((cc = curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)s->body_len)) != CURLE_OK ||
	    (cc = curl_easy_setopt(easy, CURLOPT_POSTFIELDS, s->body)) !=
	    CURLE_OK))
		goto curl_failed;
	if ((cc = curl_easy_perform(easy)) != CURLE_OK)
		goto curl_failed;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
	goto done;

curl_failed:
	/* The message is curl's generic text: it never includes the URL. */
	fprintf(stderr, "credbroker-example-runner: the request failed: %s\n",
	    curl_easy_strerror(cc));
	rc = RUNNER_EXIT_HTTP;
done:
	curl_easy_cleanup(easy);
	runner_slist_free(headers);
	return rc;
}

/*
 * --via-broker: have the broker send the request and print its response.
 * The connection's call timeout leaves the broker 5 s beyond the
 * request's own limit to answer.  Returns the exit status.
 */
static int
runner_via_broker(const char *sock, const struct credbroker_component *comp,
    const struct credbroker_request *req, long timeout, int follow)
{
	struct credbroker_request_options	 ro;
	struct credbroker_response		*r = NULL;
	struct credbroker_error			 err;
	struct credbroker			*c = NULL;
	size_t					 i;
	int					 rc;

	memset(&ro, 0, sizeof(ro));
	ro.timeout_ms = (unsigned long)timeout * 1000;
	ro.follow_redirects = follow;
	if ((rc = credbroker_connect(sock, &c, &err)) == 0) {
		credbroker_set_timeout(c, (int)(timeout * 1000 + 5000));
		rc = credbroker_request(c, comp, req, &ro, &r, &err);
	}
	credbroker_close(c);
	if (rc != 0) {
		/* Broker messages never contain a value. */
		fprintf(stderr, "credbroker-example-runner: %s: %s\n",
		    err.code, err.message);
		return rc == CREDBROKER_EBROKER ? RUNNER_EXIT_BROKER :
		    RUNNER_EXIT_LOCAL;
	}
	if (r->skipped)
		printf("skipped: %s\n", r->reason);
	else {
		printf("HTTP %d%s%s\n", r->status, r->reason != NULL &&
		    *r->reason != '\0' ? " " : "",
		    r->reason != NULL ? r->reason : "");
		for (i = 0; i < r->nheaders; i++) {
			printf("%s: ", r->headers[i].name);
			fwrite(r->headers[i].value, 1, r->headers[i].value_len,
			    stdout);
			fputc('\n', stdout);
		}
		fputc('\n', stdout);
		fwrite(r->body, 1, r->body_len, stdout);
	}
	rc = fflush(stdout) != 0 ? RUNNER_EXIT_LOCAL : RUNNER_EXIT_OK;
	credbroker_response_free(r);
	return rc;
}

/* Parse the command line, substitute, perform, print, wipe. */
int
main(int argc, char **argv)
{
	enum { O_KIND = 256, O_INITIATOR, O_RUN_AS, O_SYSTEM_ACCOUNT, O_CRED,
	    O_SERVICE_CRED, O_HEADER, O_DATA, O_TIMEOUT, O_VIA_BROKER,
	    O_FOLLOW_REDIRECTS };
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "kind", required_argument, NULL, O_KIND },
		{ "initiator", required_argument, NULL, O_INITIATOR },
		{ "run-as", required_argument, NULL, O_RUN_AS },
		{ "system-account", required_argument, NULL,
		    O_SYSTEM_ACCOUNT },
		{ "cred", required_argument, NULL, O_CRED },
		{ "service-cred", required_argument, NULL, O_SERVICE_CRED },
		{ "header", required_argument, NULL, O_HEADER },
		{ "data", required_argument, NULL, O_DATA },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "via-broker", no_argument, NULL, O_VIA_BROKER },
		{ "follow-redirects", no_argument, NULL, O_FOLLOW_REDIRECTS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct rlimit			 nocore = { 0, 0 };
	struct credbroker_component	 comp;
	struct credbroker_request	 req;
	struct credbroker_cred_decl	*creds, *screds;
	struct credbroker_header	*hdrs;
	struct credbroker_substituted	*s = NULL;
	struct credbroker_error		 err;
	struct credbroker		*c = NULL;
	struct runner_response		 resp = { NULL, 0, 0 };
	const char			*sock = NULL;
	char				*end;
	long				 timeout = 30, status = 0;
	size_t				 i;
	int				 ch, rc, via_broker = 0, follow = 0;

	/* Rule 5, first of all. */
	(void)setrlimit(RLIMIT_CORE, &nocore);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	memset(&comp, 0, sizeof(comp));
	memset(&req, 0, sizeof(req));
	creds = calloc((size_t)argc, sizeof(*creds));
	screds = calloc((size_t)argc, sizeof(*screds));
	hdrs = calloc((size_t)argc, sizeof(*hdrs));
	if (creds == NULL || screds == NULL || hdrs == NULL) {
		fprintf(stderr, "credbroker-example-runner: out of memory\n");
		return RUNNER_EXIT_LOCAL;
	}
	comp.credentials = creds;
	comp.service_credentials = screds;
	req.headers = hdrs;

	rc = RUNNER_EXIT_OK;
	while (rc == RUNNER_EXIT_OK &&
	    (ch = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case O_KIND:
			comp.kind = optarg;
			break;
		case O_INITIATOR:
			comp.initiator = optarg;
			break;
		case O_RUN_AS:
			comp.run_as = optarg;
			break;
		case O_SYSTEM_ACCOUNT:
			comp.system_account = optarg;
			break;
		case O_CRED:
			if (runner_parse_decl(optarg,
			    &creds[comp.ncredentials]) != 0)
				rc = runner_usage("--cred wants ID=TYPE");
			else
				comp.ncredentials++;
			break;
		case O_SERVICE_CRED:
			if (runner_parse_decl(optarg,
			    &screds[comp.nservice_credentials]) != 0)
				rc = runner_usage("--service-cred wants "
				    "ID=TYPE");
			else
				comp.nservice_credentials++;
			break;
		case O_HEADER:
			if (runner_parse_header(optarg,
			    &hdrs[req.nheaders]) != 0)
				rc = runner_usage("--header wants "
				    "'Name: value'");
			else
				req.nheaders++;
			break;
		case O_DATA:
			req.body = optarg;
			req.body_len = strlen(optarg);
			req.has_body = 1;
			break;
		case O_TIMEOUT:
			timeout = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || timeout <= 0 ||
			    timeout > 3600)
				rc = runner_usage("--timeout wants 1 to 3600 "
				    "seconds");
			break;
		case O_VIA_BROKER:
			via_broker = 1;
			break;
		case O_FOLLOW_REDIRECTS:
			follow = 1;
			break;
		case 'h':
			runner_usage(NULL);
			rc = -1;
			break;
		default:
			rc = runner_usage(NULL);
			break;
		}
	}
	if (rc == RUNNER_EXIT_OK && argc - optind != 2)
		rc = runner_usage("METHOD and URL are required");
	if (rc == RUNNER_EXIT_OK && comp.kind == NULL)
		rc = runner_usage("--kind is required");
	if (rc == RUNNER_EXIT_OK && follow && !via_broker)
		rc = runner_usage("--follow-redirects needs --via-broker: "
		    "this runner never follows a redirect itself");
	if (rc != RUNNER_EXIT_OK) {
		rc = rc < 0 ? RUNNER_EXIT_OK : rc;
		goto done;
	}
	req.method = argv[optind];
	req.url = argv[optind + 1];
	if (via_broker) {
		rc = runner_via_broker(sock, &comp, &req, timeout, follow);
		goto done;
	}

	/* Before any other libcurl call: every block libcurl frees is wiped. */
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, runner_malloc,
	    runner_free, runner_realloc, runner_strdup, runner_calloc) != 0) {
		fprintf(stderr, "credbroker-example-runner: cannot initialise "
		    "libcurl\n");
		rc = RUNNER_EXIT_LOCAL;
		goto done;
	}

	/* Connect and substitute; the broker decides whose values apply. */
	if ((rc = credbroker_connect(sock, &c, &err)) == 0) {
		credbroker_set_timeout(c, 30 * 1000);
		rc = credbroker_substitute(c, &comp, &req, &s, &err);
	}
	credbroker_close(c);
	if (rc != 0) {
		/* Broker messages never contain a value. */
		fprintf(stderr, "credbroker-example-runner: %s: %s\n",
		    err.code, err.message);
		rc = rc == CREDBROKER_EBROKER ? RUNNER_EXIT_BROKER :
		    RUNNER_EXIT_LOCAL;
		goto cleanup;
	}
	if (s->skipped) {
		printf("skipped: %s\n", s->reason);
		goto cleanup;
	}

	/* Rule 1: use it at once.  Rule 3: wipe it right after. */
	rc = runner_perform(s, timeout, &status, &resp);
	credbroker_substituted_free(s);
	s = NULL;
	if (rc == RUNNER_EXIT_OK) {
		printf("HTTP %ld\n", status);
		if (resp.len > 0)
			fwrite(resp.data, 1, resp.len, stdout);
		if (fflush(stdout) != 0)
			rc = RUNNER_EXIT_LOCAL;
	}

cleanup:
	credbroker_substituted_free(s);
	runner_free(resp.data);
	curl_global_cleanup();
done:
	for (i = 0; i < comp.ncredentials; i++)
		free((char *)creds[i].id);
	for (i = 0; i < comp.nservice_credentials; i++)
		free((char *)screds[i].id);
	for (i = 0; i < req.nheaders; i++)
		free((char *)hdrs[i].name);
	free(creds);
	free(screds);
	free(hdrs);
	return rc;
}
