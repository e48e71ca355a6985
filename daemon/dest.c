/*
 * dest: validation and normalisation of destination origins.
 */
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb_error.h"
#include "dest.h"

#define DEST_MAX	512

/* A DNS label: letters, digits, hyphens, not starting/ending in '-'. */
static int
dest_label_ok(const char *s, size_t n)
{
	size_t	i;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

int
dest_normalize(const char *in, char **out, struct cb_error *err)
{
	char		 buf[DEST_MAX + 1], *host, *p, *port = NULL, *end;
	const char	*scheme;
	unsigned long	 portnum = 0;
	size_t		 i, n, hlen;
	int		 defport;

	*out = NULL;
	if ((n = strlen(in)) == 0 || n > DEST_MAX)
		return cb_error_set(err, CB_EBADREQ,
		    "destination must be 1 to %d characters", DEST_MAX);
	for (i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)in[i]);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
	if (strncmp(buf, "https://", 8) == 0) {
		scheme = "https";
		defport = 443;
		host = buf + 8;
	} else if (strncmp(buf, "http://", 7) == 0) {
		scheme = "http";
		defport = 80;
		host = buf + 7;
	} else
		goto bad;
	if (strpbrk(host, "/?#@ \t\\") != NULL)
		goto bad;
	if (*host == '[') {
		struct in6_addr	 a6;
		char		 lit[INET6_ADDRSTRLEN + 2];

		/* An IPv6 literal, in its standard short form. */
		if ((p = strchr(host, ']')) == NULL ||
		    (size_t)(p - host - 1) >= sizeof(lit) - 2)
			goto bad;
		memcpy(lit, host + 1, (size_t)(p - host - 1));
		lit[p - host - 1] = '\0';
		if (inet_pton(AF_INET6, lit, &a6) != 1)
			goto bad;
		if (p[1] == ':')
			port = p + 2;
		else if (p[1] != '\0')
			goto bad;
		lit[0] = '[';
		if (inet_ntop(AF_INET6, &a6, lit + 1, sizeof(lit) - 2) == NULL)
			goto bad;
		strcat(lit, "]");
		memcpy(host, lit, strlen(lit) + 1);
	} else {
		if ((p = strchr(host, ':')) != NULL) {
			*p = '\0';
			port = p + 1;
		}
		hlen = strlen(host);
		if (hlen > 0 && host[hlen - 1] == '.')
			host[--hlen] = '\0';
		p = host;
		/* A wildcard must leave at least two labels: no "*.com". */
		if (strncmp(p, "*.", 2) == 0 && strchr((p += 2), '.') == NULL)
			goto bad;
		if (*p == '\0')
			goto bad;
		while (*p != '\0') {
			char *dot = strchr(p, '.');
			size_t l = dot ? (size_t)(dot - p) : strlen(p);
			if (!dest_label_ok(p, l))
				goto bad;
			p += l + (dot ? 1 : 0);
			if (dot && *p == '\0')
				goto bad;
		}
	}
	if (port != NULL) {
		if (*port == '\0' || !isdigit((unsigned char)*port))
			goto bad;
		portnum = strtoul(port, &end, 10);
		if (*end != '\0' || portnum == 0 || portnum > 65535)
			goto bad;
	}
	if (port == NULL || (int)portnum == defport) {
		if (asprintf(out, "%s://%s", scheme, host) < 0)
			goto oom;
	} else if (asprintf(out, "%s://%s:%lu", scheme, host, portnum) < 0)
		goto oom;
	return 0;
oom:
	*out = NULL;
	return cb_error_set(err, CB_EINTERNAL, "out of memory");
bad:
	return cb_error_set(err, CB_EBADREQ, "destination '%.*s' is not an "
	    "origin of the form https://host[:port] (host may start with "
	    "'*.')", (int)(n > 100 ? 100 : n), in);
}
