/*
 * The wire contract shared by credbrokerd and its clients: method and
 * permission tables generated from the .def files, msgpack-rpc envelope
 * parsing and packing, and typed readers for named parameters.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb_error.h"
#include "proto.h"

const struct cb_method_info cb_methods[CB_M_COUNT] = {
#define CB_METHODDEF(sym, name, perm, flags) [sym] = { name, perm, flags },
#include "methods.def"
#undef CB_METHODDEF
};

static const char *const cb_perm_names[CB_PERM_COUNT] = {
#define CB_PERMDEF(sym, name) [sym] = name,
#include "perms.def"
#undef CB_PERMDEF
};

static const char *const cb_error_names[CB_ERR_MAX] = {
	[CB_OK] = "ok",
#define CB_ERRDEF(sym, name) [sym] = name,
#include "errors.def"
#undef CB_ERRDEF
};

int
cb_error_set(struct cb_error *err, int code, const char *fmt, ...)
{
	va_list	ap;

	if (code <= 0 || code >= CB_ERR_MAX)
		code = CB_EINTERNAL;
	if (err != NULL) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -code;
}

void
cb_error_clear(struct cb_error *err)
{
	if (err != NULL) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

const char *
cb_error_name(int code)
{
	if (code < 0)
		code = -code;
	if (code <= 0 || code >= CB_ERR_MAX)
		return "internal";
	return cb_error_names[code];
}

int
cb_error_from_name(const char *name, size_t len)
{
	int	i;

	for (i = 1; i < CB_ERR_MAX; i++)
		if (strlen(cb_error_names[i]) == len &&
		    memcmp(cb_error_names[i], name, len) == 0)
			return i;
	return 0;
}

/* The length of each method's name: every request looks one up. */
static const size_t cb_method_len[CB_M_COUNT] = {
#define CB_METHODDEF(sym, name, perm, flags) [sym] = sizeof(name) - 1,
#include "methods.def"
#undef CB_METHODDEF
};

int
proto_method_lookup(const char *name, size_t len)
{
	int	i;

	for (i = 0; i < CB_M_COUNT; i++)
		if (cb_method_len[i] == len &&
		    memcmp(cb_methods[i].name, name, len) == 0)
			return i;
	return -1;
}

const char *
proto_perm_name(int perm)
{
	if (perm < 0 || perm >= CB_PERM_COUNT)
		return NULL;
	return cb_perm_names[perm];
}

int
proto_perm_lookup(const char *name, size_t len)
{
	int	i;

	for (i = 0; i < CB_PERM_COUNT; i++)
		if (strlen(cb_perm_names[i]) == len &&
		    memcmp(cb_perm_names[i], name, len) == 0)
			return i;
	return -1;
}

int
proto_parse_request(const msgpack_object *obj, struct proto_request *req,
    bool *msgid_ok, struct cb_error *err)
{
	const msgpack_object	*a, *p;
	static const msgpack_object empty_map = { .type = MSGPACK_OBJECT_MAP };

	*msgid_ok = false;
	memset(req, 0, sizeof(*req));
	if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 4)
		return cb_error_set(err, CB_EBADREQ,
		    "a request must be an array of 4 elements");
	a = obj->via.array.ptr;
	if (a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    a[1].via.u64 <= UINT32_MAX) {
		req->msgid = (uint32_t)a[1].via.u64;
		*msgid_ok = true;
	}
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[0].via.u64 != CB_MSG_REQUEST)
		return cb_error_set(err, CB_EBADREQ,
		    "message type must be 0 (request)");
	if (!*msgid_ok)
		return cb_error_set(err, CB_EBADREQ,
		    "msgid must be an unsigned 32-bit integer");
	if (a[2].type != MSGPACK_OBJECT_STR)
		return cb_error_set(err, CB_EBADREQ,
		    "method must be a string");
	req->method = a[2].via.str.ptr;
	req->method_len = a[2].via.str.size;

	p = &a[3];
	if (p->type == MSGPACK_OBJECT_NIL ||
	    (p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 0))
		req->params = &empty_map;
	else if (p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 1 &&
	    p->via.array.ptr[0].type == MSGPACK_OBJECT_MAP)
		req->params = &p->via.array.ptr[0];
	else
		return cb_error_set(err, CB_EBADREQ,
		    "params must be an array holding one map");
	return 0;
}

int
proto_parse_notification(const msgpack_object *obj, struct proto_request *req,
    struct cb_error *err)
{
	const msgpack_object	*a;

	memset(req, 0, sizeof(*req));
	if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size != 3)
		return 0;
	a = obj->via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[0].via.u64 != CB_MSG_NOTIFICATION)
		return 0;
	/*
	 * The method is a String, which msgpack's first format had only one
	 * kind of (raw): clients that pack names as bytes send a bin, as
	 * pynvim does.  Both are names.
	 */
	if (a[1].type != MSGPACK_OBJECT_STR && a[1].type != MSGPACK_OBJECT_BIN)
		return cb_error_set(err, CB_EBADREQ,
		    "notification method must be a string");
	if (a[2].type != MSGPACK_OBJECT_ARRAY)
		return cb_error_set(err, CB_EBADREQ,
		    "notification params must be an array");
	if (a[1].type == MSGPACK_OBJECT_STR) {
		req->method = a[1].via.str.ptr;
		req->method_len = a[1].via.str.size;
	} else {
		req->method = a[1].via.bin.ptr;
		req->method_len = a[1].via.bin.size;
	}
	return 1;
}

/* Where a key check stands: "params" and the steps below it. */
#define PROTO_PATH_MAX	96

/* Append a step to path; a path that does not fit ends in "...". */
static void
proto_path_add(char *path, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
proto_path_add(char *path, size_t at, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (at >= PROTO_PATH_MAX - 4)
		return;
	va_start(ap, fmt);
	n = vsnprintf(path + at, PROTO_PATH_MAX - 3 - at, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= PROTO_PATH_MAX - 3 - at)
		memcpy(path + PROTO_PATH_MAX - 4, "...", 4);
}

/* What a key of type t is, for a message: "a binary key", ... */
static const char *
proto_key_kind(msgpack_object_type t)
{
	switch (t) {
	case MSGPACK_OBJECT_BIN:
		return "a binary key";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return "an integer key";
	case MSGPACK_OBJECT_NIL:
		return "a nil key";
	case MSGPACK_OBJECT_BOOLEAN:
		return "a boolean key";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return "a float key";
	case MSGPACK_OBJECT_ARRAY:
		return "an array as a key";
	case MSGPACK_OBJECT_MAP:
		return "a map as a key";
	default:
		return "an extension type key";
	}
}

/*
 * proto_check_key_types() below obj, whose place is path (at bytes long).
 * The depth is bounded by the unpacker's own nesting limit.
 */
static int
proto_check_keys_at(const msgpack_object *obj, char *path, size_t at,
    struct cb_error *err)
{
	const msgpack_object	*k;
	char			 name[40];
	uint32_t		 i;
	int			 rc;

	if (obj->type == MSGPACK_OBJECT_ARRAY) {
		for (i = 0; i < obj->via.array.size; i++) {
			path[at] = '\0';
			proto_path_add(path, at, "[%" PRIu32 "]", i);
			if ((rc = proto_check_keys_at(&obj->via.array.ptr[i],
			    path, strlen(path), err)) != 0)
				return rc;
		}
		return 0;
	}
	if (obj->type != MSGPACK_OBJECT_MAP)
		return 0;
	for (i = 0; i < obj->via.map.size; i++) {
		k = &obj->via.map.ptr[i].key;
		path[at] = '\0';
		if (k->type == MSGPACK_OBJECT_BIN)
			return cb_error_set(err, CB_EBADREQ, "parameter keys "
			    "must be strings: got a binary key '%s' in %s "
			    "(send map keys as msgpack str, not bin)",
			    proto_quote(k->via.bin.ptr, k->via.bin.size, name,
			    sizeof(name), false), path);
		if (k->type != MSGPACK_OBJECT_STR)
			return cb_error_set(err, CB_EBADREQ, "parameter keys "
			    "must be strings: got %s in %s",
			    proto_key_kind(k->type), path);
		proto_path_add(path, at, ".%s", proto_quote(k->via.str.ptr,
		    k->via.str.size, name, sizeof(name), false));
		if ((rc = proto_check_keys_at(&obj->via.map.ptr[i].val, path,
		    strlen(path), err)) != 0)
			return rc;
	}
	return 0;
}

/*
 * Are all map keys below obj strings?  The common case, checked without
 * building the path that only a message needs.  The depth is bounded by
 * the unpacker's own nesting limit.
 */
static bool
proto_keys_all_str(const msgpack_object *obj)
{
	uint32_t	i;

	if (obj->type == MSGPACK_OBJECT_ARRAY) {
		for (i = 0; i < obj->via.array.size; i++)
			if (!proto_keys_all_str(&obj->via.array.ptr[i]))
				return false;
		return true;
	}
	if (obj->type != MSGPACK_OBJECT_MAP)
		return true;
	for (i = 0; i < obj->via.map.size; i++)
		if (obj->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR ||
		    !proto_keys_all_str(&obj->via.map.ptr[i].val))
			return false;
	return true;
}

int
proto_check_key_types(const msgpack_object *obj, struct cb_error *err)
{
	char	path[PROTO_PATH_MAX] = "params";

	if (proto_keys_all_str(obj))
		return 0;
	return proto_check_keys_at(obj, path, strlen(path), err);
}

/* A few bytes of msgpack packed on the stack, then written at once. */
struct proto_stage {
	char	buf[16];
	size_t	len;
};

static int
proto_stage_write(void *data, const char *p, size_t n)
{
	struct proto_stage	*st = data;

	if (n > sizeof(st->buf) - st->len)
		return -1;
	memcpy(st->buf + st->len, p, n);
	st->len += n;
	return 0;
}

void
proto_pack_cstr(msgpack_packer *pk, const char *s)
{
	char	b[1 + PROTO_FIXSTR_MAX];
	size_t	n;

	if (s == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	n = strlen(s);
	/*
	 * A short string (a fixstr) in one write, not two: this packs every
	 * key of every reply.  It is never a secret (proto.h), so staging
	 * it on the stack is fine.
	 */
	if (n <= PROTO_FIXSTR_MAX) {
		b[0] = (char)(0xa0 | n);
		memcpy(b + 1, s, n);
		pk->callback(pk->data, b, n + 1);
		return;
	}
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void
proto_pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	proto_pack_cstr(pk, k);
	proto_pack_cstr(pk, v);
}

void
proto_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
	proto_pack_cstr(pk, k);
	msgpack_pack_int64(pk, v);
}

void
proto_pack_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
	proto_pack_cstr(pk, k);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void
proto_pack_response_head(msgpack_packer *pk, uint32_t msgid,
    const struct cb_error *err)
{
	struct proto_stage	st = { .len = 0 };
	msgpack_packer		sp;

	if (err == NULL || err->code == 0) {
		/* Staged and written at once: every reply starts so. */
		msgpack_packer_init(&sp, &st, proto_stage_write);
		msgpack_pack_array(&sp, 4);
		msgpack_pack_uint8(&sp, CB_MSG_RESPONSE);
		msgpack_pack_uint32(&sp, msgid);
		msgpack_pack_nil(&sp);
		pk->callback(pk->data, st.buf, st.len);
		return;
	}
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint8(pk, CB_MSG_RESPONSE);
	msgpack_pack_uint32(pk, msgid);
	msgpack_pack_map(pk, 2);
	proto_pack_kv_str(pk, "code", cb_error_name(err->code));
	proto_pack_kv_str(pk, "message", err->msg);
}

void
proto_pack_error_response(msgpack_packer *pk, uint32_t msgid,
    const struct cb_error *err)
{
	proto_pack_response_head(pk, msgid, err);
	msgpack_pack_nil(pk);
}

void
proto_pack_request_head(msgpack_packer *pk, uint32_t msgid, const char *method)
{
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint8(pk, CB_MSG_REQUEST);
	msgpack_pack_uint32(pk, msgid);
	proto_pack_cstr(pk, method);
	msgpack_pack_array(pk, 1);
}

const msgpack_object *
proto_map_get(const msgpack_object *map, const char *key)
{
	size_t		 klen = strlen(key);
	uint32_t	 i;

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
		    memcmp(k->via.str.ptr, key, klen) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

static int
proto_absent(const char *key, bool required, struct cb_error *err)
{
	if (required)
		return cb_error_set(err, CB_EBADREQ,
		    "missing required parameter '%s'", key);
	return 1;
}

int
proto_get_strref(const msgpack_object *map, const char *key, bool required,
    const char **out, size_t *len, struct cb_error *err)
{
	const msgpack_object	*v;

	*out = NULL;
	*len = 0;
	if ((v = proto_map_get(map, key)) == NULL ||
	    v->type == MSGPACK_OBJECT_NIL)
		return proto_absent(key, required, err);
	if (v->type != MSGPACK_OBJECT_STR)
		return cb_error_set(err, CB_EBADREQ,
		    "parameter '%s' must be a string", key);
	if (memchr(v->via.str.ptr, '\0', v->via.str.size) != NULL)
		return cb_error_set(err, CB_EBADREQ,
		    "parameter '%s' must not contain NUL bytes", key);
	*out = v->via.str.ptr;
	*len = v->via.str.size;
	return 0;
}

int
proto_get_str(const msgpack_object *map, const char *key, bool required,
    char **out, struct cb_error *err)
{
	const char	*p;
	char		*s;
	size_t		 len;
	int		 rc;

	*out = NULL;
	if ((rc = proto_get_strref(map, key, required, &p, &len, err)) != 0)
		return rc;
	if ((s = malloc(len + 1)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	memcpy(s, p, len);
	s[len] = '\0';
	*out = s;
	return 0;
}

int
proto_get_bool(const msgpack_object *map, const char *key, bool required,
    bool *out, struct cb_error *err)
{
	const msgpack_object	*v;

	if ((v = proto_map_get(map, key)) == NULL ||
	    v->type == MSGPACK_OBJECT_NIL)
		return proto_absent(key, required, err);
	if (v->type != MSGPACK_OBJECT_BOOLEAN)
		return cb_error_set(err, CB_EBADREQ,
		    "parameter '%s' must be a boolean", key);
	*out = v->via.boolean;
	return 0;
}

int
proto_get_int(const msgpack_object *map, const char *key, bool required,
    int64_t *out, struct cb_error *err)
{
	const msgpack_object	*v;

	if ((v = proto_map_get(map, key)) == NULL ||
	    v->type == MSGPACK_OBJECT_NIL)
		return proto_absent(key, required, err);
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
		*out = (int64_t)v->via.u64;
	else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		*out = v->via.i64;
	else
		return cb_error_set(err, CB_EBADREQ,
		    "parameter '%s' must be an integer", key);
	return 0;
}

int
proto_check_keys(const msgpack_object *map, const char *const *allowed,
    struct cb_error *err)
{
	uint32_t	 i;
	size_t		 j;

	if (map->type != MSGPACK_OBJECT_MAP)
		return cb_error_set(err, CB_EBADREQ, "params must be a map");
	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		bool found = false;

		if (k->type != MSGPACK_OBJECT_STR)
			return cb_error_set(err, CB_EBADREQ,
			    "parameter names must be strings");
		for (j = 0; allowed[j] != NULL; j++)
			if (strlen(allowed[j]) == k->via.str.size &&
			    memcmp(allowed[j], k->via.str.ptr,
			    k->via.str.size) == 0) {
				found = true;
				break;
			}
		if (!found)
			return cb_error_set(err, CB_EBADREQ,
			    "unknown parameter '%.*s'",
			    (int)(k->via.str.size > 64 ? 64 : k->via.str.size),
			    k->via.str.ptr);
	}
	return 0;
}

void
proto_scan_reset(struct proto_scan *s)
{
	s->off = 0;
	s->need = 1;
}

/* Big-endian unsigned of n bytes at p. */
static uint64_t
proto_be(const uint8_t *p, int n)
{
	uint64_t	v = 0;
	int		i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

int
proto_scan(struct proto_scan *s, const uint8_t *buf, size_t len, size_t max)
{
	uint8_t		b;
	size_t		hdr;
	uint64_t	payload, children;
	int		lenbytes;

	while (s->need > 0) {
		if (s->off >= len)
			return PROTO_SCAN_MORE;
		b = buf[s->off];
		hdr = 1;
		payload = children = 0;
		lenbytes = 0;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 ||
		    b == 0xc3)
			;				/* fixint, nil, bool */
		else if (b <= 0x8f)
			children = 2ULL * (b & 0x0f);	/* fixmap */
		else if (b <= 0x9f)
			children = b & 0x0f;		/* fixarray */
		else if (b <= 0xbf)
			payload = b & 0x1f;		/* fixstr */
		else {
			switch (b) {
			case 0xc4: case 0xd9: lenbytes = 1; break; /* bin8 str8 */
			case 0xc5: case 0xda: lenbytes = 2; break;
			case 0xc6: case 0xdb: lenbytes = 4; break;
			case 0xc7: lenbytes = 1; hdr = 2; break;   /* ext8 + type */
			case 0xc8: lenbytes = 2; hdr = 2; break;
			case 0xc9: lenbytes = 4; hdr = 2; break;
			case 0xca: hdr = 5; break;		/* float32 */
			case 0xcb: hdr = 9; break;		/* float64 */
			case 0xcc: case 0xd0: hdr = 2; break;
			case 0xcd: case 0xd1: hdr = 3; break;
			case 0xce: case 0xd2: hdr = 5; break;
			case 0xcf: case 0xd3: hdr = 9; break;
			case 0xd4: hdr = 3; break;		/* fixext1 */
			case 0xd5: hdr = 4; break;
			case 0xd6: hdr = 6; break;
			case 0xd7: hdr = 10; break;
			case 0xd8: hdr = 18; break;
			case 0xdc: case 0xde: lenbytes = 2; break;
			case 0xdd: case 0xdf: lenbytes = 4; break;
			default:
				return PROTO_SCAN_BAD;		/* 0xc1 */
			}
		}
		if (lenbytes > 0) {
			if (len - s->off < 1 + (size_t)lenbytes)
				return PROTO_SCAN_MORE;
			payload = proto_be(buf + s->off + 1, lenbytes);
			hdr += (size_t)lenbytes;
			if (b >= 0xdc) {		/* array/map 16/32 */
				children = b >= 0xde ? 2 * payload : payload;
				payload = 0;
			}
		}
		if (hdr + payload > max || children > max ||
		    s->off + hdr + payload > max)
			return PROTO_SCAN_TOOBIG;
		if (len - s->off < hdr + payload)
			return PROTO_SCAN_MORE;
		s->off += hdr + (size_t)payload;
		s->need += children;
		s->need--;
		if (s->need > max)
			return PROTO_SCAN_TOOBIG;
	}
	return PROTO_SCAN_DONE;
}

const char *
proto_quote(const char *s, size_t len, char *buf, size_t bufsz, bool space)
{
	unsigned char	ch;
	size_t		i, n = 0;

	for (i = 0; i < len && n + 4 < bufsz; i++) {
		ch = (unsigned char)s[i];
		buf[n++] = ((ch > 0x20 || (space && ch == 0x20)) && ch < 0x7f) ?
		    (char)ch : '?';
	}
	if (i < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}
