/*
 * coord.c - Redis coordination (see coord.h): lease and runtime mirror.
 */
#include "drivers/coord.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis.h>

#include "model/strbuf.h"
#include "model/banned.h"

#define HOST_MAX 255
#define PASS_MAX 255

struct coord {
	char host[HOST_MAX + 1];
	int port;
	int db;
	char password[PASS_MAX + 1];
	char holder[COORD_HOLDER_MAX + 1];
	int timeout_ms;
	redisContext *ctx;
	int needs_rebuild;
};

/* Renew: extend only when the value is ours. */
static const char RENEW_LUA[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then"
	" return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
/* Release: delete only when the value is ours. */
static const char RELEASE_LUA[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then"
	" return redis.call('del', KEYS[1]) else return 0 end";

/* ------------------------------------------------------------ url */

static int parse_port(const char *s, size_t n, int *out)
{
	char buf[8];
	char *end;
	long v;

	if (n == 0 || n >= sizeof(buf))
		return SP_EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	v = strtol(buf, &end, 10);
	if (*end || v < 0 || v > 65535)
		return SP_EINVAL;
	*out = (int)v;
	return 0;
}

static int parse_url(struct coord *c, const char *url, struct err *e)
{
	const char *p = url, *at, *slash, *colon;
	size_t hl;

	if (!url || strncmp(url, "redis://", 8))
		return err_set(e, SP_EINVAL, "invalid redis address: expected redis://host:port/db");
	p += 8;
	slash = strchr(p, '/');
	at = strchr(p, '@');
	if (at && (!slash || at < slash)) {
		const char *pw = memchr(p, ':', (size_t)(at - p));
		pw = pw ? pw + 1 : p;
		if ((size_t)(at - pw) > PASS_MAX)
			return err_set(e, SP_EINVAL, "invalid redis address: password too long");
		memcpy(c->password, pw, (size_t)(at - pw));
		c->password[at - pw] = '\0';
		p = at + 1;
	}
	hl = slash ? (size_t)(slash - p) : strlen(p);
	colon = memchr(p, ':', hl);
	c->port = 6379;
	if (colon && parse_port(colon + 1, hl - (size_t)(colon - p) - 1, &c->port))
		return err_set(e, SP_EINVAL, "invalid redis address: bad port");
	if (colon)
		hl = (size_t)(colon - p);
	if (hl == 0 || hl > HOST_MAX)
		return err_set(e, SP_EINVAL, "invalid redis address: bad host");
	memcpy(c->host, p, hl);
	c->host[hl] = '\0';
	if (slash && slash[1] && parse_port(slash + 1, strlen(slash + 1), &c->db))
		return err_set(e, SP_EINVAL, "invalid redis address: bad database number");
	return 0;
}

int coord_new(const char *url, const char *holder, int timeout_ms, struct coord **out,
	      struct err *e)
{
	struct coord *c = calloc(1, sizeof(*c));
	int rc = c ? 0 : err_set(e, SP_ENOMEM, "out of memory");

	if (!rc)
		rc = parse_url(c, url, e);
	if (!rc && str_copy(c->holder, sizeof(c->holder), holder ? holder : ""))
		rc = err_set(e, SP_EINVAL, "lease holder id longer than %d bytes", COORD_HOLDER_MAX);
	if (rc) {
		free(c);
		return rc;
	}
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : COORD_TIMEOUT_MS_DEFAULT;
	c->needs_rebuild = 1;
	*out = c;
	return 0;
}

static void drop(struct coord *c)
{
	if (c->ctx)
		redisFree(c->ctx);
	c->ctx = NULL;
}

void coord_free(struct coord *c)
{
	if (!c)
		return;
	drop(c);
	memset(c->password, 0, sizeof(c->password));
	free(c);
}

int coord_connected(const struct coord *c)
{
	return c->ctx != NULL;
}

int coord_needs_rebuild(const struct coord *c)
{
	return c->needs_rebuild;
}

/* Map a context error; drops the connection. */
static int ctx_err(struct coord *c, const char *what, struct err *e)
{
	int code = SP_EIO;
	char msg[128];

	str_copy(msg, sizeof(msg), c->ctx ? c->ctx->errstr : "not connected");
	if (c->ctx && c->ctx->err == REDIS_ERR_IO &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || strstr(msg, "temporarily unavailable")))
		code = SP_ETIMEOUT;
	if (c->ctx && c->ctx->err == REDIS_ERR_OOM)
		code = SP_ENOMEM;
	drop(c);
	if (code == SP_ETIMEOUT)
		return err_set(e, code, "redis %s:%d: %s timed out after %d ms", c->host, c->port,
			       what, c->timeout_ms);
	return err_set(e, code, "redis %s:%d: %s failed: %s", c->host, c->port, what,
		       msg[0] ? msg : "connection lost");
}

/* One command, reply checked: error replies are SP_EUNAVAIL. */
static int command(struct coord *c, const char *what, int argc, const char **argv,
		   redisReply **out, struct err *e)
{
	redisReply *r;

	if (coord_connect(c, e))
		return e ? e->code : SP_EUNAVAIL;
	r = redisCommandArgv(c->ctx, argc, argv, NULL);
	if (!r)
		return ctx_err(c, what, e);
	if (r->type == REDIS_REPLY_ERROR) {
		int rc = err_set(e, SP_EUNAVAIL, "redis %s: %s", what, r->str);
		freeReplyObject(r);
		return rc;
	}
	if (out)
		*out = r;
	else
		freeReplyObject(r);
	return 0;
}

static int setup_session(struct coord *c, struct err *e)
{
	char db[16];
	int rc = 0;

	if (c->password[0]) {
		const char *argv[2] = { "AUTH", c->password };
		rc = command(c, "auth", 2, argv, NULL, e);
	}
	if (!rc && c->db) {
		const char *argv[2] = { "SELECT", db };
		snprintf(db, sizeof(db), "%d", c->db);
		rc = command(c, "select", 2, argv, NULL, e);
	}
	return rc;
}

int coord_connect(struct coord *c, struct err *e)
{
	struct timeval tv = { c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000 };
	redisContext *x;

	if (c->ctx)
		return 0;
	x = redisConnectWithTimeout(c->host, c->port, tv);
	if (!x)
		return err_set(e, SP_ENOMEM, "redis: out of memory");
	if (x->err) {
		int rc = err_set(e, SP_EUNAVAIL, "could not connect to redis %s:%d: %s", c->host,
				 c->port, x->errstr);
		redisFree(x);
		return rc;
	}
	if (redisSetTimeout(x, tv) != REDIS_OK) {
		redisFree(x);
		return err_set(e, SP_EIO, "redis %s:%d: could not set the timeout", c->host, c->port);
	}
	c->ctx = x;
	c->needs_rebuild = 1;
	if (setup_session(c, e)) {
		drop(c);
		return e ? e->code : SP_EUNAVAIL;
	}
	return 0;
}

/* ------------------------------------------------------------ lease */

int coord_lease_acquire(struct coord *c, const char *key, int ttl_ms, int *held, struct err *e)
{
	char ttl[16];
	const char *argv[6] = { "SET", key, c->holder, "NX", "PX", ttl };
	redisReply *r = NULL;
	int rc;

	snprintf(ttl, sizeof(ttl), "%d", ttl_ms > 0 ? ttl_ms : 1);
	rc = command(c, "lease acquire", 6, argv, &r, e);
	if (rc)
		return rc;
	if (r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK")) {
		*held = 1;
	} else if (r->type == REDIS_REPLY_NIL) {
		char cur[COORD_HOLDER_MAX + 1];
		freeReplyObject(r);
		r = NULL;
		/* already ours (a restart with the same id): renew instead */
		rc = coord_lease_holder(c, key, cur, sizeof(cur), e);
		if (!rc && !strcmp(cur, c->holder))
			return coord_lease_renew(c, key, ttl_ms, held, e);
		if (!rc)
			*held = 0;
	} else {
		rc = err_set(e, SP_EPROTO, "redis lease acquire: unexpected reply type %d", r->type);
	}
	freeReplyObject(r);
	return rc;
}

static int script(struct coord *c, const char *what, const char *lua, const char *key,
		  const char *arg2, long long *out, struct err *e)
{
	const char *argv[6] = { "EVAL", lua, "1", key, c->holder, arg2 };
	redisReply *r = NULL;
	int rc = command(c, what, arg2 ? 6 : 5, argv, &r, e);

	if (rc)
		return rc;
	if (r->type == REDIS_REPLY_INTEGER)
		*out = r->integer;
	else
		rc = err_set(e, SP_EPROTO, "redis %s: unexpected reply type %d", what, r->type);
	freeReplyObject(r);
	return rc;
}

int coord_lease_renew(struct coord *c, const char *key, int ttl_ms, int *held, struct err *e)
{
	char ttl[16];
	long long v = 0;
	int rc;

	snprintf(ttl, sizeof(ttl), "%d", ttl_ms > 0 ? ttl_ms : 1);
	rc = script(c, "lease renew", RENEW_LUA, key, ttl, &v, e);
	if (!rc)
		*held = v == 1;
	return rc;
}

int coord_lease_release(struct coord *c, const char *key, int *released, struct err *e)
{
	long long v = 0;
	int rc = script(c, "lease release", RELEASE_LUA, key, NULL, &v, e);

	if (!rc && released)
		*released = v == 1;
	return rc;
}

int coord_lease_holder(struct coord *c, const char *key, char *out, size_t outsz,
		       struct err *e)
{
	const char *argv[2] = { "GET", key };
	redisReply *r = NULL;
	int rc = command(c, "lease holder", 2, argv, &r, e);

	if (rc)
		return rc;
	if (r->type == REDIS_REPLY_NIL)
		out[0] = '\0';
	else if (r->type == REDIS_REPLY_STRING)
		str_copy(out, outsz, r->str);
	else
		rc = err_set(e, SP_EPROTO, "redis lease holder: unexpected reply type %d", r->type);
	freeReplyObject(r);
	return rc;
}

/* ------------------------------------------------------------ mirror */

/* A pipeline: commands appended, replies read in chunks of COORD_PIPELINE_MAX. */
struct pipe {
	struct coord *c;
	int pending;
	int rc;
	struct err *e;
};

/*
 * Read every pending reply, even after an error reply: one left unread would
 * answer the next command on this connection (a lease renewal, say). Any
 * failure, an error reply included, marks the mirror for a rebuild: some
 * write of this pipeline may be missing.
 */
static void pipe_flush(struct pipe *p)
{
	while (p->pending > 0) {
		void *r = NULL;
		if (redisGetReply(p->c->ctx, &r) != REDIS_OK) {
			int rc = ctx_err(p->c, "mirror write", p->rc ? NULL : p->e);
			if (!p->rc)
				p->rc = rc;
			p->pending = 0;
			break;
		}
		if (r && ((redisReply *)r)->type == REDIS_REPLY_ERROR && !p->rc)
			p->rc = err_set(p->e, SP_EUNAVAIL, "redis mirror write: %s",
					((redisReply *)r)->str);
		freeReplyObject(r);
		p->pending--;
	}
	if (p->rc)
		p->c->needs_rebuild = 1;
}

static void pipe_add(struct pipe *p, int argc, const char **argv)
{
	if (p->rc)
		return;
	if (redisAppendCommandArgv(p->c->ctx, argc, argv, NULL) != REDIS_OK) {
		p->rc = err_set(p->e, SP_ENOMEM, "redis mirror: out of memory");
		return;
	}
	if (++p->pending >= COORD_PIPELINE_MAX)
		pipe_flush(p);
}

static void put_one(struct pipe *p, const struct coord_ws *w)
{
	char key[48], id[24], upd[24], msg[256];
	const char *hset[12] = { "HSET", key, "phase", w->phase ? w->phase : "",
				 "instance", w->instance ? w->instance : "", "ip", w->ip ? w->ip : "",
				 "url", w->url ? w->url : "", "updated", upd };
	const char *sadd[3] = { "SADD", COORD_WS_INDEX, id };
	const char *pub[3] = { "PUBLISH", COORD_PHASE_CHANNEL, msg };

	snprintf(key, sizeof(key), COORD_WS_PREFIX "%" PRId64, w->workspace_id);
	snprintf(id, sizeof(id), "%" PRId64, w->workspace_id);
	snprintf(upd, sizeof(upd), "%" PRId64, w->updated);
	pipe_add(p, 12, hset);
	pipe_add(p, 3, sadd);
	if (w->phase_changed) {
		snprintf(msg, sizeof(msg), "{\"workspace_id\":%" PRId64 ",\"phase\":\"%s\","
			 "\"instance\":\"%s\",\"at\":%" PRId64 "}", w->workspace_id,
			 w->phase ? w->phase : "", w->instance ? w->instance : "", w->updated);
		pipe_add(p, 3, pub);
	}
}

int coord_mirror_put(struct coord *c, const struct coord_ws *v, size_t n, struct err *e)
{
	struct pipe p = { c, 0, 0, e };
	size_t i;

	if (!n)
		return 0;
	if (coord_connect(c, e))
		return e ? e->code : SP_EUNAVAIL;
	for (i = 0; i < n && !p.rc; i++)
		put_one(&p, &v[i]);
	pipe_flush(&p);
	return p.rc;
}

static void del_key(struct pipe *p, int64_t wid)
{
	char key[48];
	const char *del[2] = { "DEL", key };

	snprintf(key, sizeof(key), COORD_WS_PREFIX "%" PRId64, wid);
	pipe_add(p, 2, del);
}

static void del_one(struct pipe *p, int64_t wid)
{
	char id[24];
	const char *srem[3] = { "SREM", COORD_WS_INDEX, id };

	snprintf(id, sizeof(id), "%" PRId64, wid);
	del_key(p, wid);
	pipe_add(p, 3, srem);
}

int coord_mirror_del(struct coord *c, const int64_t *ids, size_t n, struct err *e)
{
	struct pipe p = { c, 0, 0, e };
	size_t i;

	if (!n)
		return 0;
	if (coord_connect(c, e))
		return e ? e->code : SP_EUNAVAIL;
	for (i = 0; i < n && !p.rc; i++)
		del_one(&p, ids[i]);
	pipe_flush(&p);
	return p.rc;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The ids of v, sorted, for the stale-id sweep of a rebuild. NULL on allocation failure. */
static int64_t *sorted_ids(const struct coord_ws *v, size_t n)
{
	int64_t *ids = calloc(n + 1, sizeof(*ids));
	size_t i;

	for (i = 0; ids && i < n; i++)
		ids[i] = v[i].workspace_id;
	if (ids)
		qsort(ids, n, sizeof(*ids), cmp_id);
	return ids;
}

int coord_mirror_rebuild(struct coord *c, const struct coord_ws *v, size_t n, struct err *e)
{
	const char *argv[2] = { "SMEMBERS", COORD_WS_INDEX };
	struct pipe p = { c, 0, 0, e };
	redisReply *r = NULL;
	int64_t *ids;
	size_t i;
	int rc;

	if (n > COORD_MIRROR_MAX)
		return err_set(e, SP_ELIMIT, "redis mirror: more than %d workspaces", COORD_MIRROR_MAX);
	if (!(ids = sorted_ids(v, n)))
		return err_set(e, SP_ENOMEM, "redis mirror: out of memory");
	rc = command(c, "mirror index", 2, argv, &r, e);
	if (rc) {
		free(ids);
		return rc;
	}
	for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && !p.rc; i++) {
		const redisReply *m = r->element[i];
		char *end;
		long long id;
		if (m->type != REDIS_REPLY_STRING)
			continue;
		errno = 0;
		id = strtoll(m->str, &end, 10);
		if (!errno && end != m->str && !*end &&
		    !bsearch(&(int64_t){ id }, ids, n, sizeof(*ids), cmp_id))
			del_one(&p, id);
	}
	freeReplyObject(r);
	free(ids);
	for (i = 0; i < n && !p.rc; i++) {
		struct coord_ws w = v[i];
		w.phase_changed = 0;
		del_key(&p, w.workspace_id);   /* from scratch: a key of the wrong type goes too */
		put_one(&p, &w);
	}
	pipe_flush(&p);
	if (!p.rc)
		c->needs_rebuild = 0;
	return p.rc;
}
