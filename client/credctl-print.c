/*
 * credctl output: broker results rendered for humans (aligned tables,
 * "key: value" lines, nested maps indented) or, with --json, converted
 * generically from msgpack to JSON with jansson.
 *
 * Human output is escaped: control characters, invalid UTF-8 and
 * bidirectional overrides coming from the broker (a type's name is
 * whatever an administrator typed) are shown as \xNN or \u{NNNN}, so
 * nothing in a result can drive the terminal.  JSON output keeps the
 * data: strings are UTF-8 (invalid sequences become U+FFFD; on a terminal
 * all non-ASCII is \u-escaped), bins and exts become base64 strings, nil
 * becomes null.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "credctl.h"
#include "proto.h"

struct credctl_table {
	size_t		  ncols;
	const char *const *headers;
	char		**cells;	/* nrows * ncols, row-major */
	size_t		  nrows;
	size_t		  cap;		/* rows allocated */
	bool		  failed;	/* out of memory: print what we have */
};

/*
 * Decode one UTF-8 sequence at p (n bytes left).  Returns its length and
 * the code point in *cp, or 0 for an invalid, overlong, surrogate or out
 * of range sequence.
 */
static size_t
credctl_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t		len, i;
	uint32_t	c, min;

	if (n == 0)
		return 0;
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2; c = p[0] & 0x1f; min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3; c = p[0] & 0x0f; min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4; c = p[0] & 0x07; min = 0x10000;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Is the whole buffer valid UTF-8? */
bool
credctl_utf8_valid(const unsigned char *p, size_t n)
{
	size_t		l;
	uint32_t	cp;

	while (n > 0) {
		if ((l = credctl_utf8_decode(p, n, &cp)) == 0)
			return false;
		p += l;
		n -= l;
	}
	return true;
}

/* Does this code point need escaping on a terminal? */
static bool
credctl_cp_unsafe(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) ||
	    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* A malloc'd copy of the n bytes at s that is safe to print. */
char *
credctl_sanitize(const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	char			*out = NULL;
	size_t			 outlen = 0, l;
	uint32_t		 cp;
	FILE			*f;

	if ((f = open_memstream(&out, &outlen)) == NULL)
		return NULL;
	while (n > 0) {
		if ((l = credctl_utf8_decode(p, n, &cp)) == 0) {
			fprintf(f, "\\x%02x", *p);
			l = 1;
		} else if (cp < 0x80 && credctl_cp_unsafe(cp))
			fprintf(f, "\\x%02x", (unsigned)cp);
		else if (credctl_cp_unsafe(cp))
			fprintf(f, "\\u{%04" PRIx32 "}", cp);
		else
			fwrite(p, 1, l, f);
		p += l;
		n -= l;
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Write the display form of a scalar or array to f. */
static void
credctl_text_to(FILE *f, const msgpack_object *o)
{
	char		*s;
	uint32_t	 i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("-", f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "yes" : "no", f);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%" PRIu64, o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%" PRId64, o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		fprintf(f, "%g", o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		if ((s = credctl_sanitize(o->via.str.ptr,
		    o->via.str.size)) != NULL)
			fputs(s, f);
		free(s);
		break;
	case MSGPACK_OBJECT_BIN:
		fprintf(f, "<%" PRIu32 " bytes>", o->via.bin.size);
		break;
	case MSGPACK_OBJECT_EXT:
		fprintf(f, "<ext %d, %" PRIu32 " bytes>", o->via.ext.type,
		    o->via.ext.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		if (o->via.array.size == 0)
			fputs("-", f);
		for (i = 0; i < o->via.array.size; i++) {
			if (i > 0)
				fputs(", ", f);
			credctl_text_to(f, &o->via.array.ptr[i]);
		}
		break;
	case MSGPACK_OBJECT_MAP:
		fprintf(f, "<map of %" PRIu32 ">", o->via.map.size);
		break;
	}
}

/* The display form of o as a malloc'd string (NULL: out of memory). */
char *
credctl_text(const msgpack_object *o)
{
	char	*out = NULL;
	size_t	 outlen = 0;
	FILE	*f;

	if ((f = open_memstream(&out, &outlen)) == NULL)
		return NULL;
	if (o == NULL)
		fputs("-", f);
	else
		credctl_text_to(f, o);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Is o printed on the same line as its key? */
static bool
credctl_is_inline(const msgpack_object *o)
{
	uint32_t	i;

	if (o->type == MSGPACK_OBJECT_MAP)
		return o->via.map.size == 0;
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		for (i = 0; i < o->via.array.size; i++)
			if (!credctl_is_inline(&o->via.array.ptr[i]) ||
			    o->via.array.ptr[i].type == MSGPACK_OBJECT_ARRAY)
				return false;
	}
	return true;
}

static void	credctl_print_value(FILE *, const msgpack_object *, int, int);

/* Print "key:" padded to width, then the value. */
static void
credctl_print_pair(FILE *f, const msgpack_object *k, const msgpack_object *v,
    int indent, int width)
{
	char	*ks;
	int	 klen;

	ks = credctl_text(k);
	klen = ks != NULL ? (int)strlen(ks) : 0;
	fprintf(f, "%*s%s:", indent, "", ks != NULL ? ks : "?");
	free(ks);
	credctl_print_value(f, v, indent, width > klen ? width - klen : 0);
}

/*
 * Print a value after its key: scalars and flat arrays on the same line
 * (after pad spaces), maps and nested arrays on the following lines,
 * indented two more columns.
 */
static void
credctl_print_value(FILE *f, const msgpack_object *v, int indent, int pad)
{
	char		*s;
	uint32_t	 i;

	if (credctl_is_inline(v)) {
		s = credctl_text(v);
		if (v->type == MSGPACK_OBJECT_MAP)
			fprintf(f, "%*s {}\n", pad, "");
		else
			fprintf(f, "%*s %s\n", pad, "", s != NULL ? s : "?");
		free(s);
		return;
	}
	fputc('\n', f);
	if (v->type == MSGPACK_OBJECT_MAP) {
		credctl_print_kv(f, v, indent + 2);
		return;
	}
	for (i = 0; i < v->via.array.size; i++) {
		fprintf(f, "%*s-", indent + 2, "");
		credctl_print_value(f, &v->via.array.ptr[i], indent + 2, 0);
	}
}

/* Width of the longest key of a map, as displayed. */
static int
credctl_key_width(const msgpack_object *map)
{
	char		*ks;
	uint32_t	 i;
	int		 w = 0, l;

	for (i = 0; i < map->via.map.size; i++) {
		if ((ks = credctl_text(&map->via.map.ptr[i].key)) == NULL)
			continue;
		l = (int)strlen(ks);
		if (l > w)
			w = l;
		free(ks);
	}
	return w;
}

/* Print a map as "key: value" lines at indent, nested maps indented. */
void
credctl_print_kv(FILE *f, const msgpack_object *map, int indent)
{
	uint32_t	i;
	int		w;

	if (map->type != MSGPACK_OBJECT_MAP) {
		fprintf(f, "%*s", indent, "");
		credctl_print_value(f, map, indent, 0);
		return;
	}
	w = credctl_key_width(map);
	for (i = 0; i < map->via.map.size; i++)
		credctl_print_pair(f, &map->via.map.ptr[i].key,
		    &map->via.map.ptr[i].val, indent, w);
}

/* Is the map key k one of the names in list? */
static bool
credctl_key_in(const msgpack_object *k, const char *const *list)
{
	for (; list != NULL && *list != NULL; list++)
		if (k->type == MSGPACK_OBJECT_STR &&
		    k->via.str.size == strlen(*list) &&
		    memcmp(k->via.str.ptr, *list, k->via.str.size) == 0)
			return true;
	return false;
}

/*
 * Print the fields of a map: those named in order first, in that order
 * (absent ones as "-"), then any others the broker added, skipping the
 * names in skip.  Labels are aligned.
 */
void
credctl_print_fields(FILE *f, const msgpack_object *map,
    const char *const *order, const char *const *skip)
{
	const msgpack_object	*v;
	msgpack_object		 k, nil;
	uint32_t		 i;
	size_t			 j;
	int			 w;

	if (map->type != MSGPACK_OBJECT_MAP) {
		credctl_print_kv(f, map, 0);
		return;
	}
	w = credctl_key_width(map);
	for (j = 0; order[j] != NULL; j++)
		if ((int)strlen(order[j]) > w)
			w = (int)strlen(order[j]);
	memset(&nil, 0, sizeof(nil));
	nil.type = MSGPACK_OBJECT_NIL;
	for (j = 0; order[j] != NULL; j++) {
		memset(&k, 0, sizeof(k));
		k.type = MSGPACK_OBJECT_STR;
		k.via.str.ptr = order[j];
		k.via.str.size = (uint32_t)strlen(order[j]);
		if ((v = proto_map_get(map, order[j])) == NULL)
			v = &nil;
		credctl_print_pair(f, &k, v, 0, w);
	}
	for (i = 0; i < map->via.map.size; i++) {
		if (credctl_key_in(&map->via.map.ptr[i].key, order) ||
		    credctl_key_in(&map->via.map.ptr[i].key, skip))
			continue;
		credctl_print_pair(f, &map->via.map.ptr[i].key,
		    &map->via.map.ptr[i].val, 0, w);
	}
}

/* A new table with the given NULL-terminated column headers. */
struct credctl_table *
credctl_table_new(const char *const *headers)
{
	struct credctl_table	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->headers = headers;
	while (headers[t->ncols] != NULL)
		t->ncols++;
	return t;
}

/* Room for one more row; -1 when out of memory. */
static int
credctl_table_grow(struct credctl_table *t)
{
	char	**cells;
	size_t	  ncap;

	if (t->nrows == t->cap) {
		ncap = t->cap ? t->cap * 2 : 16;
		cells = reallocarray(t->cells, ncap * t->ncols,
		    sizeof(*cells));
		if (cells == NULL) {
			t->failed = true;
			return -1;
		}
		t->cells = cells;
		t->cap = ncap;
	}
	return 0;
}

/* Add a row made of the values of keys (one per column) in map. */
int
credctl_table_add(struct credctl_table *t, const msgpack_object *map,
    const char *const *keys)
{
	char	**cells;
	size_t	  j;

	if (credctl_table_grow(t) != 0)
		return -1;
	cells = t->cells + t->nrows * t->ncols;
	for (j = 0; j < t->ncols; j++)
		cells[j] = credctl_text(proto_map_get(map, keys[j]));
	t->nrows++;
	return 0;
}

/*
 * Add a row of ready-made cells (one per column, sanitized, malloc'd); the
 * table takes them, and frees them itself when out of memory.
 */
int
credctl_table_add_cells(struct credctl_table *t, char **row)
{
	size_t	j;

	if (credctl_table_grow(t) != 0) {
		for (j = 0; j < t->ncols; j++)
			free(row[j]);
		return -1;
	}
	memcpy(t->cells + t->nrows * t->ncols, row, t->ncols * sizeof(*row));
	t->nrows++;
	return 0;
}

/* Display width of a sanitized string: its number of code points. */
static size_t
credctl_width(const char *s)
{
	size_t	w = 0;

	for (; s != NULL && *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* Print a cell padded to width (no padding in the last column). */
static void
credctl_table_cell(FILE *f, const char *s, size_t width, bool last)
{
	fputs(s != NULL ? s : "?", f);
	if (!last)
		fprintf(f, "%*s", (int)(width - credctl_width(s) + 2), "");
}

/* Print the table with columns aligned. */
void
credctl_table_print(FILE *f, struct credctl_table *t)
{
	size_t	*w, i, j, n;

	if ((w = calloc(t->ncols, sizeof(*w))) == NULL)
		return;
	for (j = 0; j < t->ncols; j++)
		w[j] = credctl_width(t->headers[j]);
	for (i = 0; i < t->nrows; i++)
		for (j = 0; j < t->ncols; j++) {
			n = credctl_width(t->cells[i * t->ncols + j]);
			if (n > w[j])
				w[j] = n;
		}
	for (j = 0; j < t->ncols; j++)
		credctl_table_cell(f, t->headers[j], w[j], j + 1 == t->ncols);
	fputc('\n', f);
	for (i = 0; i < t->nrows; i++) {
		for (j = 0; j < t->ncols; j++)
			credctl_table_cell(f, t->cells[i * t->ncols + j], w[j],
			    j + 1 == t->ncols);
		fputc('\n', f);
	}
	if (t->failed)
		fprintf(stderr, "credctl: out of memory: table truncated\n");
	free(w);
}

/* Free a table and its cells. */
void
credctl_table_free(struct credctl_table *t)
{
	size_t	i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* An unsigned integer field of map, 0 when absent or of another type. */
static uint64_t
credctl_stats_u64(const msgpack_object *map, const char *key)
{
	const msgpack_object	*v = proto_map_get(map, key);

	return v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ?
	    v->via.u64 : 0;
}

/* A latency in microseconds as "850us", "12.3ms" or "4.50s". */
static char *
credctl_stats_time(const msgpack_object *map, const char *key)
{
	uint64_t	 us = credctl_stats_u64(map, key);
	char		*s = NULL;

	if (us < 1000)
		(void)asprintf(&s, "%" PRIu64 "us", us);
	else if (us < 1000000)
		(void)asprintf(&s, "%.1fms", (double)us / 1000);
	else
		(void)asprintf(&s, "%.2fs", (double)us / 1000000);
	return s;
}

/*
 * The non-zero counts of an outcome map as "NAME=N NAME=N", skipping ok
 * unless with_ok; "-" when there are none.
 */
static char *
credctl_stats_outcomes(const msgpack_object *map, bool with_ok)
{
	const msgpack_object_kv	*kv;
	char			*out = NULL, *k;
	size_t			 outlen = 0;
	uint32_t		 i;
	FILE			*f;
	bool			 any = false;

	if ((f = open_memstream(&out, &outlen)) == NULL)
		return NULL;
	for (i = 0; map != NULL && map->type == MSGPACK_OBJECT_MAP &&
	    i < map->via.map.size; i++) {
		kv = &map->via.map.ptr[i];
		if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    kv->val.via.u64 == 0 || (!with_ok &&
		    kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == 2 &&
		    memcmp(kv->key.via.str.ptr, "ok", 2) == 0))
			continue;
		k = credctl_text(&kv->key);
		fprintf(f, "%s%s=%" PRIu64, any ? " " : "",
		    k != NULL ? k : "?", kv->val.via.u64);
		free(k);
		any = true;
	}
	if (!any)
		fputs("-", f);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/*
 * The stats result for humans: connections and refused requests, one
 * table row per method (calls, ok, the other outcomes that occurred,
 * latency percentiles), then the store's, Vault's and the audit's
 * figures.
 */
void
credctl_print_stats(FILE *f, const msgpack_object *res)
{
	static const char *const headers[] = {
		"METHOD", "CALLS", "OK", "ERRORS", "P50", "P90", "P99",
		"P99.9", "MAX", NULL
	};
	static const char *const quantiles[] = {
		"p50", "p90", "p99", "p99_9", "max"
	};
	const msgpack_object	*conns, *methods, *m, *lat, *sec;
	struct credctl_table	*t;
	char			*row[9], *s;
	uint32_t		 i;
	size_t			 j;

	if (res->type != MSGPACK_OBJECT_MAP) {
		credctl_print_kv(f, res, 0);
		return;
	}
	fprintf(f, "uptime: %" PRIu64 "s\n", credctl_stats_u64(res,
	    "uptime"));
	conns = proto_map_get(res, "connections");
	fprintf(f, "connections: %" PRIu64 " open, %" PRIu64 " accepted, %"
	    PRIu64 " refused\n", credctl_stats_u64(conns, "open"),
	    credctl_stats_u64(conns, "accepted"),
	    credctl_stats_u64(conns, "refused"));
	s = credctl_stats_outcomes(proto_map_get(res, "refused"), false);
	fprintf(f, "refused requests: %s\n", s != NULL ? s : "?");
	free(s);
	fprintf(f, "notifications ignored: %" PRIu64 "\n\n",
	    credctl_stats_u64(res, "notifications"));

	methods = proto_map_get(res, "methods");
	if (methods != NULL && methods->type == MSGPACK_OBJECT_ARRAY &&
	    (t = credctl_table_new(headers)) != NULL) {
		for (i = 0; i < methods->via.array.size; i++) {
			m = &methods->via.array.ptr[i];
			lat = proto_map_get(m, "latency_us");
			row[0] = credctl_text(proto_map_get(m, "method"));
			row[1] = credctl_text(proto_map_get(m, "calls"));
			row[2] = credctl_text(proto_map_get(proto_map_get(m,
			    "outcomes"), "ok"));
			row[3] = credctl_stats_outcomes(proto_map_get(m,
			    "outcomes"), false);
			for (j = 0; j < 5; j++)
				row[4 + j] = credctl_stats_u64(m, "calls") == 0 ?
				    strdup("-") : credctl_stats_time(lat,
				    quantiles[j]);
			credctl_table_add_cells(t, row);
		}
		credctl_table_print(f, t);
		credctl_table_free(t);
	}
	if ((sec = proto_map_get(res, "store")) != NULL) {
		fputs("\nstore:\n", f);
		credctl_print_kv(f, sec, 2);
	}
	if ((sec = proto_map_get(res, "vault")) != NULL) {
		fputs("\nvault:\n", f);
		credctl_print_kv(f, sec, 2);
	}
	if ((sec = proto_map_get(res, "audit")) != NULL) {
		fputs("\naudit:\n", f);
		credctl_print_kv(f, sec, 2);
	}
}

/* A JSON string from bytes, invalid UTF-8 (and NUL if nonul) as U+FFFD. */
static json_t *
credctl_json_str(const char *s, size_t n, bool nonul)
{
	const unsigned char	*p = (const unsigned char *)s;
	json_t			*j;
	char			*buf;
	size_t			 len = 0, l;
	uint32_t		 cp;

	if (credctl_utf8_valid(p, n) && (!nonul || memchr(s, '\0', n) == NULL))
		return json_stringn(s, n);
	if (n > SIZE_MAX / 3 || (buf = malloc(n * 3 + 1)) == NULL)
		return NULL;
	while (n > 0) {
		l = credctl_utf8_decode(p, n, &cp);
		if (l == 0 || (nonul && cp == 0)) {
			memcpy(buf + len, "\xef\xbf\xbd", 3);
			len += 3;
			l = l == 0 ? 1 : l;
		} else {
			memcpy(buf + len, p, l);
			len += l;
		}
		p += l;
		n -= l;
	}
	j = json_stringn(buf, len);
	free(buf);
	return j;
}

/* A JSON string holding the standard base64 of n bytes. */
static json_t *
credctl_json_base64(const char *p, size_t n)
{
	json_t	*j;
	char	*b;

	if (n > INT32_MAX / 2 || (b = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)b, (const unsigned char *)p, (int)n);
	j = json_string(b);
	free(b);
	return j;
}

static json_t	*credctl_to_json(const msgpack_object *);

/* The JSON object key for a msgpack key: strings as such, else its JSON. */
static char *
credctl_json_key(const msgpack_object *k)
{
	json_t	*j;
	char	*s;

	if (k->type == MSGPACK_OBJECT_STR)
		j = credctl_json_str(k->via.str.ptr, k->via.str.size, true);
	else
		j = credctl_to_json(k);
	if (j == NULL)
		return NULL;
	if (json_is_string(j))
		s = strdup(json_string_value(j));
	else
		s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(j);
	return s;
}

/* Convert a msgpack object to a new JSON value (NULL on failure). */
static json_t *
credctl_to_json(const msgpack_object *o)
{
	json_t		*j, *v;
	char		*k;
	uint32_t	 i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 <= INT64_MAX)
			return json_integer((json_int_t)o->via.u64);
		return json_real((double)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		/* jansson refuses NaN and infinities. */
		if ((j = json_real(o->via.f64)) == NULL)
			return json_null();
		return j;
	case MSGPACK_OBJECT_STR:
		return credctl_json_str(o->via.str.ptr, o->via.str.size, false);
	case MSGPACK_OBJECT_BIN:
		return credctl_json_base64(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_EXT:
		return credctl_json_base64(o->via.ext.ptr, o->via.ext.size);
	case MSGPACK_OBJECT_ARRAY:
		if ((j = json_array()) == NULL)
			return NULL;
		for (i = 0; i < o->via.array.size; i++) {
			v = credctl_to_json(&o->via.array.ptr[i]);
			/* append_new drops v itself when it fails. */
			if (v == NULL || json_array_append_new(j, v) != 0) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	case MSGPACK_OBJECT_MAP:
		if ((j = json_object()) == NULL)
			return NULL;
		for (i = 0; i < o->via.map.size; i++) {
			k = credctl_json_key(&o->via.map.ptr[i].key);
			v = credctl_to_json(&o->via.map.ptr[i].val);
			if (k == NULL || v == NULL ||
			    json_object_set_new(j, k, v) != 0) {
				if (k != NULL && v != NULL)
					v = NULL;	/* set_new took it */
				json_decref(v);
				free(k);
				json_decref(j);
				return NULL;
			}
			free(k);
		}
		return j;
	}
	return NULL;
}

/*
 * On a terminal, escape everything that is not ASCII as well: jansson
 * escapes C0 controls but passes C1 controls and bidi overrides through.
 * Pipes get plain UTF-8.
 */
static size_t
credctl_json_tty_flags(FILE *f)
{
	return isatty(fileno(f)) ? JSON_ENSURE_ASCII : 0;
}

/* Print o as indented JSON followed by a newline; 0 or -1. */
int
credctl_json_print(FILE *f, const msgpack_object *o)
{
	json_t	*j;
	int	 rc;

	if ((j = credctl_to_json(o)) == NULL)
		return -1;
	rc = json_dumpf(j, f, JSON_INDENT(2) | JSON_ENCODE_ANY |
	    credctl_json_tty_flags(f));
	json_decref(j);
	if (rc != 0)
		return -1;
	fputc('\n', f);
	return 0;
}

/* Print {"error": {"code": code, "message": msg}} and a newline. */
void
credctl_json_error(FILE *f, const char *code, const char *msg)
{
	json_t	*j;

	j = json_pack("{s:{s:o,s:o}}", "error",
	    "code", credctl_json_str(code, strlen(code), true),
	    "message", credctl_json_str(msg, strlen(msg), true));
	if (j == NULL || json_dumpf(j, f, JSON_INDENT(2) |
	    credctl_json_tty_flags(f)) != 0)
		fprintf(f, "{\"error\": {\"code\": \"internal\", "
		    "\"message\": \"cannot format the error\"}}");
	fputc('\n', f);
	json_decref(j);
}
