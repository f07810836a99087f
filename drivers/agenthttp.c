#include "agenthttp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "agentsig.h"
#include "agentwire.h"
#include "../model/banned.h"

struct agenthttp {
	struct agentsig_key key;
	long connect_ms, observe_ms, call_ms, max_conns;
	CURLM *multi;   /* observe: kept for connection reuse across passes */
	CURL *easy;     /* mutations: kept for connection reuse */
};

/* One HTTP exchange, in flight or done. */
struct xfer {
	CURL *h;
	struct curl_slist *hdrs;
	struct strbuf url;
	struct strbuf resp;
	char *body;
	CURLcode res;
	long status;
	int overflow;
};

static size_t on_write(char *ptr, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;

	if (strbuf_add(&x->resp, ptr, size * n) < 0) {
		x->overflow = 1;
		return 0;
	}
	return size * n;
}

static void xfer_release(struct xfer *x)
{
	if (!x)
		return;
	x->h = NULL;     /* handles belong to run_observation or the driver (s->easy) */
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	strbuf_release(&x->url);
	strbuf_release(&x->resp);
	free(x->body);
	x->body = NULL;
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
	char line[256];
	struct curl_slist *n;

	snprintf(line, sizeof(line), "%s: %s", name, value);
	n = curl_slist_append(*l, line);
	if (!n)
		return SP_ENOMEM;
	*l = n;
	return 0;
}

/* Sign and set up x for method path body against t; h is a fresh or reused easy handle. */
static int xfer_setup(struct agenthttp *s, struct xfer *x, CURL *h, const struct agent_target *t,
		      int64_t epoch, const char *method, const char *path, const char *body,
		      const struct agenthttp_raw *raw, long timeout_ms, struct err *e)
{
	char sig[AGENTSIG_HEX_LEN + 1], nonce[AGENTSIG_NONCE_LEN + 1], num[32];
	int64_t ts = raw && raw->timestamp ? raw->timestamp : (int64_t)time(NULL);
	size_t blen = body ? strlen(body) : 0;
	int rc = 0;

	strbuf_init(&x->url, 512);
	strbuf_init(&x->resp, AGENTWIRE_RESPONSE_MAX);
	x->h = h;
	if (raw && raw->nonce)
		rc = str_copy(nonce, sizeof(nonce), raw->nonce);
	else
		rc = agentsig_nonce(nonce, e);
	if (!rc)
		rc = agentsig_sign(&s->key, method, path, ts, nonce, epoch, body, blen, sig, e);
	if (!rc && strbuf_addf(&x->url, strchr(t->address, ':') ? "http://[%s]:%d%s" :
			       "http://%s:%d%s", t->address, t->port, path) < 0)
		rc = err_set(e, SP_ELIMIT, "agent url too long");
	snprintf(num, sizeof(num), "%" PRId64, ts);
	if (!rc)
		rc = add_header(&x->hdrs, AGENTSIG_HDR_TIMESTAMP, num);
	snprintf(num, sizeof(num), "%" PRId64, epoch);
	if (!rc)
		rc = add_header(&x->hdrs, AGENTSIG_HDR_EPOCH, num);
	if (!rc)
		rc = add_header(&x->hdrs, AGENTSIG_HDR_NONCE, nonce);
	if (!rc)
		rc = add_header(&x->hdrs, AGENTSIG_HDR_SIGNATURE, sig);
	if (!rc)
		rc = add_header(&x->hdrs, "Expect", "");
	if (!rc && body)
		rc = add_header(&x->hdrs, "Content-Type", "application/json");
	if (!rc && body && !(x->body = strdup(body)))
		rc = SP_ENOMEM;
	if (rc)
		return err_set(e, rc, "could not prepare agent request %s %s", method, path);
	curl_easy_setopt(h, CURLOPT_URL, x->url.buf);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)blen);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	/*
	 * Agents are addressed by IP: nothing to cache, and libcurl walks its
	 * whole name cache on every lookup, one entry per agent - quadratic
	 * over a pass (10,000 agents: seconds of CPU).
	 */
	curl_easy_setopt(h, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_PRIVATE, x);
	return 0;
}

static int curl_code(CURLcode c)
{
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		return SP_ETIMEOUT;
	case CURLE_OUT_OF_MEMORY:
		return SP_ENOMEM;
	case CURLE_WRITE_ERROR:
		return SP_ELIMIT;
	default:
		return SP_EIO;
	}
}

/* A transfer that ended without an HTTP answer: its error. */
static int xfer_transport_err(const struct xfer *x, const struct agent_target *t,
			      struct err *e)
{
	if (x->overflow)
		return err_set(e, SP_ELIMIT, "agent %s (%s:%d): response larger than %d bytes",
			       t->instance_id, t->address, t->port, AGENTWIRE_RESPONSE_MAX);
	return err_set(e, curl_code(x->res), "agent %s (%s:%d): %s", t->instance_id, t->address,
		       t->port, curl_easy_strerror(x->res));
}

/* An HTTP answer other than 2xx: the agent's {"code","message"} as an SP_E* error. */
static int xfer_http_err(const struct xfer *x, const struct agent_target *t, struct err *e)
{
	json_t *j = json_loadb(x->resp.buf, x->resp.len, 0, NULL);
	const char *code = json_string_value(json_object_get(j, "code"));
	const char *msg = json_string_value(json_object_get(j, "message"));
	int rc = agentwire_error_code(x->status, code);

	err_set(e, rc, "agent %s (%s:%d): HTTP %ld %s: %.300s", t->instance_id, t->address,
		t->port, x->status, code ? code : "error", msg ? msg : "no detail");
	json_decref(j);
	return rc;
}

/* ---- observe ----------------------------------------------------------------------- */

static int parse_health(const struct xfer *x, struct obs_agent *o, struct err *e)
{
	json_t *j = json_loadb(x->resp.buf, x->resp.len, 0, NULL), *v;
	int rc = 0;

	if (!json_is_object(j)) {
		rc = err_set(e, SP_EPROTO, "health answer is not a JSON object");
		goto out;
	}
	v = json_object_get(j, "status");
	o->healthy = json_is_string(v) && !strcmp(json_string_value(v), "ok");
	v = json_object_get(j, "capacity");
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000) {
		rc = err_set(e, SP_EPROTO, "health answer has no valid capacity");
		goto out;
	}
	o->capacity = (int)json_integer_value(v);
	v = json_object_get(j, "max_epoch_seen");
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		rc = err_set(e, SP_EPROTO, "health answer has no valid max_epoch_seen");
		goto out;
	}
	o->max_epoch_seen = json_integer_value(v);
out:
	json_decref(j);
	return rc;
}

static int parse_list(const struct xfer *x, struct obs_agent *o, struct err *e)
{
	json_t *j = json_loadb(x->resp.buf, x->resp.len, 0, NULL), *arr, *it;
	struct obs_container c;
	size_t i;
	int rc = 0;

	arr = json_object_get(j, "containers");
	if (!json_is_array(arr)) {
		rc = err_set(e, SP_EPROTO, "list answer has no containers array");
		goto out;
	}
	if (json_array_size(arr) > AGENTWIRE_CONTAINERS_MAX) {
		rc = err_set(e, SP_ELIMIT, "list answer has more than %d containers",
			     AGENTWIRE_CONTAINERS_MAX);
		goto out;
	}
	json_array_foreach(arr, i, it) {
		struct obs_container *slot;

		rc = agentwire_container_decode(it, &c, e);
		if (rc) {
			err_prefix(e, "list answer, container %zu", i);
			goto out;
		}
		slot = obs_agent_add(o);
		if (!slot) {
			rc = err_set(e, SP_ENOMEM, "out of memory");
			goto out;
		}
		*slot = c;
	}
out:
	json_decref(j);
	return rc;
}

/* Fill out from the two finished transfers of one target. Returns 1 if fenced. */
static int observe_one(const struct agent_target *t, struct xfer *hx, struct xfer *lx,
		       struct obs_agent *out)
{
	struct err e = ERR_INIT;
	struct xfer *xs[2] = { hx, lx };
	int i, rc = 0;

	obs_agent_release(out);
	str_copy(out->instance_id, sizeof(out->instance_id), t->instance_id);
	for (i = 0; i < 2 && !rc; i++) {
		if (xs[i]->res != CURLE_OK)
			rc = xfer_transport_err(xs[i], t, &e);
		else if (xs[i]->status != 200)
			rc = xfer_http_err(xs[i], t, &e);
	}
	if (!rc)
		rc = parse_health(hx, out, &e);
	if (!rc)
		rc = parse_list(lx, out, &e);
	if (rc) {
		obs_agent_release(out);
		str_copy(out->instance_id, sizeof(out->instance_id), t->instance_id);
		str_copy(out->error, sizeof(out->error), e.msg);
		out->observed = 0;
		return rc == SP_EFENCED;
	}
	out->observed = 1;
	return 0;
}

/* Set up transfer i of an observation: GET health (even i) or list (odd i) of targets[i / 2]. */
static int observe_setup(struct agenthttp *s, struct xfer *x, CURL *h, const struct agent_target *t,
			 int64_t epoch, size_t i, struct err *e)
{
	return xfer_setup(s, x, h, t, epoch, "GET",
			  i % 2 ? AGENTWIRE_API "/containers" : AGENTWIRE_API "/health",
			  NULL, NULL, s->observe_ms, e);
}

/* Take the finished transfers off the multi handle, their easy handles back into pool. */
static void reap(struct agenthttp *s, CURL **pool, size_t *npool, size_t *inflight)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
		struct xfer *x = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		x->res = m->data.result;
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
		curl_multi_remove_handle(s->multi, x->h);
		pool[(*npool)++] = x->h;
		x->h = NULL;
		(*inflight)--;
	}
}

/*
 * Run the 2n transfers of an observation with at most max_conns in flight,
 * reusing easy handles. Handing libcurl (7.88) every transfer at once makes
 * it walk its queue of transfers waiting for a connection over and over:
 * 10,000 unreachable agents took 4.2 s that way, 0.9 s windowed (loopback,
 * 2 cores). On an error the transfers in flight are taken off and their
 * handles freed.
 */
static int run_observation(struct agenthttp *s, const struct agent_target *targets,
			   struct xfer *xs, size_t total, int64_t epoch, struct err *e)
{
	size_t window = (size_t)s->max_conns, next = 0, inflight = 0, npool = 0, i;
	CURL **pool = calloc(window, sizeof(*pool));
	int rc = 0, running;

	if (!pool)
		return err_set(e, SP_ENOMEM, "out of memory observing agents");
	while (!rc && (next < total || inflight > 0)) {
		while (!rc && next < total && inflight < window) {
			CURL *h = npool ? pool[--npool] : curl_easy_init();
			if (!h) {
				rc = err_set(e, SP_ENOMEM, "out of memory observing agents");
				break;
			}
			curl_easy_reset(h);
			rc = observe_setup(s, &xs[next], h, &targets[next / 2], epoch, next, e);
			if (!rc && curl_multi_add_handle(s->multi, h) != CURLM_OK)
				rc = err_set(e, SP_EINTERNAL, "could not add an agent transfer");
			if (rc) {
				curl_easy_cleanup(h);
				xs[next].h = NULL;
				break;
			}
			next++;
			inflight++;
		}
		if (!rc && curl_multi_perform(s->multi, &running) != CURLM_OK)
			rc = err_set(e, SP_EINTERNAL, "agent transfers failed");
		if (!rc)
			reap(s, pool, &npool, &inflight);
		if (!rc && inflight && (next == total || inflight == window) &&
		    curl_multi_poll(s->multi, NULL, 0, 1000, NULL) != CURLM_OK)
			rc = err_set(e, SP_EINTERNAL, "agent transfers failed");
	}
	for (i = 0; i < next; i++) {
		if (!xs[i].h)
			continue;
		curl_multi_remove_handle(s->multi, xs[i].h);
		curl_easy_cleanup(xs[i].h);
		xs[i].h = NULL;
	}
	while (npool)
		curl_easy_cleanup(pool[--npool]);
	free(pool);
	return rc;
}

static int ah_observe(void *st, const struct agent_target *targets, size_t n, int64_t epoch,
		      struct obs_agent *out, struct err *e)
{
	struct agenthttp *s = st;
	struct xfer *xs = n ? calloc(2 * n, sizeof(*xs)) : NULL;
	size_t i;
	int rc = 0, fenced = 0;

	if (n && !xs)
		return err_set(e, SP_ENOMEM, "out of memory observing %zu agents", n);
	if (n)
		rc = run_observation(s, targets, xs, 2 * n, epoch, e);
	for (i = 0; !rc && i < n; i++)
		fenced |= observe_one(&targets[i], &xs[2 * i], &xs[2 * i + 1], &out[i]);
	for (i = 0; rc && i < n; i++) {   /* could not try: every agent is unknown */
		obs_agent_release(&out[i]);
		str_copy(out[i].instance_id, sizeof(out[i].instance_id), targets[i].instance_id);
		str_copy(out[i].error, sizeof(out[i].error), e ? e->msg : "observe failed");
	}
	for (i = 0; i < 2 * n; i++)
		xfer_release(&xs[i]);
	free(xs);
	if (!rc && fenced)
		rc = err_set(e, SP_EFENCED, "an agent has seen a fencing epoch newer than %lld",
			     (long long)epoch);
	return rc;
}

/* ---- single calls ---------------------------------------------------------------------- */

static int do_request(struct agenthttp *s, const struct agent_target *t, int64_t epoch,
		      const char *method, const char *path, const char *body,
		      const struct agenthttp_raw *raw, struct xfer *x, struct err *e)
{
	int rc;

	if (!s->easy && !(s->easy = curl_easy_init()))
		return err_set(e, SP_ENOMEM, "out of memory");
	curl_easy_reset(s->easy);
	rc = xfer_setup(s, x, s->easy, t, epoch, method, path, body, raw, s->call_ms, e);
	if (rc)
		return rc;
	x->res = curl_easy_perform(s->easy);
	if (x->res != CURLE_OK)
		return xfer_transport_err(x, t, e);
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &x->status);
	return 0;
}

/*
 * A mutation: 2xx is success - 202 included, an op the agent accepted and
 * finishes in the background (agenthttp.h) - anything else an error mapped
 * from the agent's code.
 */
static int call(struct agenthttp *s, const struct agent_target *t, int64_t epoch,
		const char *method, const char *path, const char *body, struct err *e)
{
	struct xfer x;
	int rc;

	memset(&x, 0, sizeof(x));
	rc = do_request(s, t, epoch, method, path, body, NULL, &x, e);
	if (!rc && (x.status < 200 || x.status > 299))
		rc = xfer_http_err(&x, t, e);
	xfer_release(&x);
	return rc;
}

static int ah_ensure(void *st, const struct agent_target *t, int64_t epoch,
		     const struct container_req *req, struct err *e)
{
	char path[64];
	json_t *j = agentwire_req_encode(req);
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int rc;

	snprintf(path, sizeof(path), AGENTWIRE_API "/containers/%lld",
		 (long long)req->workspace_id);
	rc = body ? call(st, t, epoch, "PUT", path, body, e)
		  : err_set(e, SP_ENOMEM, "out of memory");
	free(body);
	json_decref(j);
	return rc;
}

static int ah_sync(void *st, const struct agent_target *t, int64_t epoch, int64_t ws,
		   struct err *e)
{
	char path[64];

	snprintf(path, sizeof(path), AGENTWIRE_API "/containers/%lld/sync", (long long)ws);
	return call(st, t, epoch, "POST", path, "{\"wait\":false}", e);
}

static int ah_stop(void *st, const struct agent_target *t, int64_t epoch, int64_t ws,
		   int sync_first, struct err *e)
{
	char path[64];

	snprintf(path, sizeof(path), AGENTWIRE_API "/containers/%lld/stop", (long long)ws);
	return call(st, t, epoch, "POST", path, sync_first ? "{\"sync\":true,\"wait\":false}" :
		    "{\"sync\":false,\"wait\":false}", e);
}

static int ah_remove(void *st, const struct agent_target *t, int64_t epoch, int64_t ws,
		     int sync_first, struct err *e)
{
	char path[64];

	snprintf(path, sizeof(path), AGENTWIRE_API "/containers/%lld", (long long)ws);
	return call(st, t, epoch, "DELETE", path, sync_first ? "{\"sync\":true,\"wait\":false}" :
		    "{\"sync\":false,\"wait\":false}", e);
}

static void ah_free(void *st)
{
	struct agenthttp *s = st;

	if (!s)
		return;
	if (s->multi)
		curl_multi_cleanup(s->multi);
	if (s->easy)
		curl_easy_cleanup(s->easy);
	agentsig_key_wipe(&s->key);
	free(s);
}

static const struct agentc_ops agenthttp_ops = {
	.name = "http",
	.observe = ah_observe,
	.ensure = ah_ensure,
	.sync = ah_sync,
	.stop = ah_stop,
	.remove = ah_remove,
	.free = ah_free,
};

int agenthttp_request(struct agentc *a, const struct agent_target *t, int64_t epoch,
		      const char *method, const char *path, const char *body,
		      const struct agenthttp_raw *raw, long *status, struct strbuf *resp,
		      struct err *e)
{
	struct xfer x;
	int rc;

	if (!a || a->ops != &agenthttp_ops)
		return err_set(e, SP_EINVAL, "not an http agent client");
	memset(&x, 0, sizeof(x));
	a->calls++;
	rc = do_request(a->state, t, epoch, method, path, body, raw, &x, e);
	if (!rc) {
		*status = x.status;
		if (strbuf_add(resp, x.resp.buf, x.resp.len) < 0)
			rc = err_set(e, SP_ELIMIT, "response does not fit");
	}
	xfer_release(&x);
	return rc;
}

struct agentc *agenthttp_new(const struct agenthttp_opts *o, struct err *e)
{
	struct agentc *a = calloc(1, sizeof(*a));
	struct agenthttp *s = calloc(1, sizeof(*s));
	int rc = 0;

	if (!a || !s)
		rc = err_set(e, SP_ENOMEM, "out of memory");
	if (!rc && (!o || !o->secret_file))
		rc = err_set(e, SP_EINVAL, "http agent client: no secret file");
	if (!rc)
		rc = agentsig_key_load(&s->key, o->secret_file, e);
	if (!rc && !(s->multi = curl_multi_init()))
		rc = err_set(e, SP_ENOMEM, "could not create a curl multi handle");
	if (rc) {
		ah_free(s);
		free(a);
		return NULL;
	}
	s->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
	s->observe_ms = o->observe_timeout_ms > 0 ? o->observe_timeout_ms : 5000;
	s->call_ms = o->call_timeout_ms > 0 ? o->call_timeout_ms : AGENTHTTP_CALL_TIMEOUT_MS;
	s->max_conns = o->max_connections > 0 ? o->max_connections : 128;
	curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, s->max_conns);
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, s->max_conns);
	a->ops = &agenthttp_ops;
	a->state = s;
	return a;
}
