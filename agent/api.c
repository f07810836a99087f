/*
 * api.c - the agent's HTTP API (agent/API.md): authentication, routing and
 * the handlers. Requests that wait for a sync are suspended, not blocking.
 */
#include "agentd_int.h"

#include "../model/banned.h"

/* ---- HTTP ---------------------------------------------------------------------------- */

/* Queue body (taken) as the answer; close_conn asks MHD to close the connection after it. */
static enum MHD_Result queue_json(struct MHD_Connection *conn, unsigned status, json_t *body,
				  int close_conn)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	json_decref(body);
	if (!text) {
		text = strdup("{\"code\":\"internal\",\"message\":\"out of memory\"}");
		status = 500;
		if (!text)
			return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	if (close_conn)
		MHD_add_response_header(resp, "Connection", "close");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *body)
{
	return queue_json(conn, status, body, 0);
}

static enum MHD_Result send_err(struct MHD_Connection *conn, unsigned status, const char *code,
				const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_err(struct MHD_Connection *conn, unsigned status, const char *code,
				const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return send_json(conn, status, agentd_err_json(code, msg));
}

static void peer_name(struct MHD_Connection *conn, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	str_copy(out, n, "?");
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, out,
			  (socklen_t)n);
}

/* A printable, bounded copy of untrusted text for logs. */
static void log_safe(const char *in, char *out, size_t n)
{
	size_t i;

	for (i = 0; in && in[i] && i + 1 < n; i++)
		out[i] = (unsigned char)in[i] < 0x21 || (unsigned char)in[i] > 0x7e ? '?' : in[i];
	out[i] = '\0';
}

/* Check signature, clock, replay and epoch. 0, or a response was queued (*ret). */
static int authorize(struct agentd *a, struct reqctx *r, const char *method, const char *url,
		     enum MHD_Result *ret)
{
	struct MHD_Connection *conn = r->conn;
	struct agentsig_hdrs h;
	struct err e = ERR_INIT;
	enum agentsig_why why = AGENTSIG_OK;
	int64_t ts = 0, epoch = 0, now = agentd_wall_ms() / 1000;
	char peer[INET_ADDRSTRLEN], spath[101], smethod[17];
	int rc;

	log_safe(url, spath, sizeof(spath));
	log_safe(method, smethod, sizeof(smethod));
	h.timestamp = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, AGENTSIG_HDR_TIMESTAMP);
	h.nonce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, AGENTSIG_HDR_NONCE);
	h.epoch = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, AGENTSIG_HDR_EPOCH);
	h.signature = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, AGENTSIG_HDR_SIGNATURE);
	rc = agentsig_verify(&a->key, method, url, &h, r->body.buf, r->body.len, now, &ts, &epoch,
			     &why, &e);
	if (!rc && agentsig_replay_check(a->replay, h.signature, ts, now, &e) < 0) {
		rc = SP_EDENIED;
		why = AGENTSIG_REPLAY;
	}
	peer_name(conn, peer, sizeof(peer));
	if (rc) {
		log_warnx("refused request method=%s path=%s peer=%s reason=%s", smethod, spath,
			  peer, agentsig_why_name(why));
		*ret = send_err(conn, 401, agentsig_why_name(why), "%s", e.msg);
		return -1;
	}
	if (epoch < a->max_epoch) {
		log_warnx("refused request method=%s path=%s peer=%s reason=stale_epoch "
			  "epoch=%lld max_epoch=%lld", smethod, spath, peer, (long long)epoch,
			  (long long)a->max_epoch);
		*ret = send_err(conn, 409, "stale_epoch",
				"fencing epoch %lld is older than %lld, seen already",
				(long long)epoch, (long long)a->max_epoch);
		return -1;
	}
	if (epoch > a->max_epoch) {
		log_info("fencing epoch %lld -> %lld (from %s)", (long long)a->max_epoch,
			 (long long)epoch, peer);
		a->max_epoch = epoch;
		agentd_state_save(a);
	}
	return 0;
}

static enum MHD_Result handle_health(struct agentd *a, struct MHD_Connection *conn)
{
	struct statvfs vfs;
	json_int_t free_mib = -1;
	size_t i, running = 0;

	if (statvfs(a->cfg.data_dir, &vfs) == 0)
		free_mib = (json_int_t)((unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20);
	for (i = 0; i < a->nct; i++)
		running += a->cts[i]->phase == PH_RUNNING;
	return send_json(conn, 200, json_pack("{ss ss ss ss si si si sI sI sI sb}",
		"status", "ok", "version", AGENTD_VERSION, "agent_id", a->cfg.id,
		"runtime", a->rt->ops->name, "capacity", a->cfg.capacity,
		"containers", (int)a->nct, "running", (int)running,
		"free_disk_mib", free_mib, "max_epoch_seen", (json_int_t)a->max_epoch,
		"time", (json_int_t)agentd_wall_ms(), "draining", a->draining));
}

static enum MHD_Result handle_list(struct agentd *a, struct MHD_Connection *conn)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < a->nct; i++)
		json_array_append_new(arr, agentd_ct_json(a->cts[i]));
	return send_json(conn, 200, json_pack("{so sI si}", "containers", arr, "max_epoch_seen",
					      (json_int_t)a->max_epoch, "capacity",
					      a->cfg.capacity));
}

size_t agentd_active_count(const struct agentd *a)
{
	size_t i, n = 0;

	for (i = 0; i < a->nct; i++)
		n += a->cts[i]->phase != PH_STOPPED && a->cts[i]->phase != PH_FAILED;
	return n;
}

/* A free workspace port: not used by another container and bindable now. */
static int port_pick(struct agentd *a)
{
	struct sockaddr_in sin;
	int p, fd, one = 1;
	size_t i;

	for (p = a->cfg.port_lo; p <= a->cfg.port_hi; p++) {
		int used = 0;

		for (i = 0; i < a->nct; i++)
			used |= a->cts[i]->port == p;
		if (used)
			continue;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)p);
		inet_pton(AF_INET, a->addr, &sin.sin_addr);
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
			close(fd);
			return p;
		}
		close(fd);
	}
	return -1;
}

static enum MHD_Result ensure_new(struct agentd *a, struct MHD_Connection *conn,
				  const struct container_req *req)
{
	char log[PATH_MAX];
	struct ct *c;
	int port;

	if (a->nct >= AGENTD_CAPACITY_MAX || (int)agentd_active_count(a) >= a->cfg.capacity)
		return send_err(conn, 409, "at_capacity", "agent runs %zu of %d workspaces",
				agentd_active_count(a), a->cfg.capacity);
	port = port_pick(a);
	if (port < 0)
		return send_err(conn, 409, "at_capacity", "no free port in %d-%d",
				a->cfg.port_lo, a->cfg.port_hi);
	c = calloc(1, sizeof(*c));
	if (!c)
		return send_err(conn, 500, "internal", "out of memory");
	c->req = *req;
	c->port = port;
	container_name_for(req->workspace_id, c->name, sizeof(c->name));
	snprintf(c->dir, sizeof(c->dir), "%s/workspaces/%lld", a->cfg.data_dir,
		 (long long)req->workspace_id);
	snprintf(log, sizeof(log), "%s/logs/%lld.log", a->cfg.data_dir,
		 (long long)req->workspace_id);
	unlink(log);
	if (mkdir(c->dir, 0700) < 0 && errno != EEXIST) {
		free(c);
		return send_err(conn, 500, "internal", "could not create %s: %s", c->dir,
				strerror(errno));
	}
	a->cts[a->nct++] = c;
	log_info("container %s created port=%d dir=%s", c->name, c->port, c->dir);
	agentd_ct_restore(a, c);
	agentd_state_save(a);
	return send_json(conn, 201, json_pack("{ss so}", "action", "created",
					      "container", agentd_ct_json(c)));
}

/*
 * Bucket and prefix end up in file paths of sync commands (a local folder
 * as the bucket): no control characters, no absolute prefix, no ".."
 * segment, and an S3-style bucket name.
 */
static int req_check(const struct container_req *r, struct err *e)
{
	const char *p;
	size_t i;

	for (i = 0; r->bucket[i]; i++)
		if (!((r->bucket[i] >= 'a' && r->bucket[i] <= 'z') || r->bucket[i] == '-' ||
		      r->bucket[i] == '.' || (r->bucket[i] >= '0' && r->bucket[i] <= '9')))
			return err_set(e, SP_EINVAL, "bucket '%s' is not a bucket name", r->bucket);
	if (r->prefix[0] == '/')
		return err_set(e, SP_EINVAL, "prefix must not start with '/'");
	for (p = r->prefix; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return err_set(e, SP_EINVAL, "prefix holds a control character");
		if ((p == r->prefix || p[-1] == '/') && p[0] == '.' && p[1] == '.' &&
		    (p[2] == '/' || p[2] == '\0'))
			return err_set(e, SP_EINVAL, "prefix must not hold a '..' segment");
	}
	return 0;
}

static enum MHD_Result handle_ensure(struct agentd *a, struct reqctx *r, int64_t id)
{
	struct container_req req;
	struct err e = ERR_INIT;
	json_error_t jerr;
	const char *action = "kept";
	json_t *body;
	struct ct *c;

	body = json_loadb(r->body.buf, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!body)
		return send_err(r->conn, 400, "invalid", "body is not JSON: %s", jerr.text);
	if (agentwire_req_decode(body, &req, &e) < 0) {
		json_decref(body);
		return send_err(r->conn, 400, "invalid", "container request: %s", e.msg);
	}
	json_decref(body);
	if (req_check(&req, &e) < 0)
		return send_err(r->conn, 400, "invalid", "container request: %s", e.msg);
	if (req.workspace_id != id)
		return send_err(r->conn, 400, "invalid", "body workspace_id %lld does not match "
				"path %lld", (long long)req.workspace_id, (long long)id);
	c = agentd_ct_find(a, id);
	if (!c)
		return ensure_new(a, r->conn, &req);
	if (c->ops)
		return send_err(r->conn, 409, "busy", "container %s has a %s in progress", c->name,
				agentd_op_name(c->ops->op));
	if (c->phase == PH_STOPPED || c->phase == PH_FAILED) {
		if ((int)agentd_active_count(a) >= a->cfg.capacity)
			return send_err(r->conn, 409, "at_capacity", "agent runs %zu of %d "
					"workspaces", agentd_active_count(a), a->cfg.capacity);
		c->req = req;
		if (c->phase == PH_STOPPED && !c->h.exited && c->h.pid > 0) {
			struct rt_spec s;
			char log[PATH_MAX];

			agentd_ct_spec(a, c, &s, log, sizeof(log));
			a->rt->ops->stop(a->rt->state, &s, &c->h, 1, &e);
		}
		if (c->restore_failed) {
			action = "restoring";
			agentd_ct_restore(a, c);
		} else {
			action = "started";
			agentd_ct_launch(a, c);
		}
		agentd_state_save(a);
	}
	return send_json(r->conn, 200, json_pack("{ss so}", "action", action,
						 "container", agentd_ct_json(c)));
}

/* A boolean field of an op's body: *out keeps its default when absent. */
static int body_flag(json_t *body, const char *name, int *out, struct err *e)
{
	json_t *v = json_object_get(body, name);

	if (v && !json_is_boolean(v))
		return err_set(e, SP_EINVAL, "field '%s' is not a boolean", name);
	if (v)
		*out = json_is_true(v);
	return 0;
}

/* Optional {"sync": bool, "wait": bool} body of sync, stop and remove; both default true. */
static int parse_op_body(struct reqctx *r, struct err *e)
{
	json_error_t jerr;
	json_t *body;
	int rc;

	r->sync_first = 1;
	r->wait = 1;
	if (r->body.len == 0)
		return 0;
	body = json_loadb(r->body.buf, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!body || !json_is_object(body)) {
		json_decref(body);
		return err_set(e, SP_EINVAL, "body is not a JSON object");
	}
	rc = body_flag(body, "sync", &r->sync_first, e);
	if (!rc)
		rc = body_flag(body, "wait", &r->wait, e);
	json_decref(body);
	return rc;
}

/*
 * An op that must wait for a sync, sent with {"wait": false}: 202 and the
 * container now, the op goes on detached (agent/API.md).
 */
static enum MHD_Result answer_accepted(struct agentd *a, struct reqctx *r, struct ct *c)
{
	if (!agentd_op_detach(c, r)) {   /* out of memory: answer when done instead */
		r->suspended = 1;
		MHD_suspend_connection(r->conn);
		return MHD_YES;
	}
	log_info("container %s %s accepted, finishing in the background", c->name,
		 agentd_op_name(r->op));
	agentd_state_save(a);
	return send_json(r->conn, 202, json_pack("{sb so}", "accepted", 1, "container",
						 agentd_ct_json(c)));
}

static enum MHD_Result handle_op(struct agentd *a, struct reqctx *r, enum op_kind op, int64_t id)
{
	struct err e = ERR_INIT;
	struct reqctx **tail;
	struct ct *c = agentd_ct_find(a, id);

	if (parse_op_body(r, &e) < 0)
		return send_err(r->conn, 400, "invalid", "%s", e.msg);
	if (!c) {
		if (op == OP_REMOVE)
			return send_json(r->conn, 200, json_pack("{sb sb}", "removed", 0,
								 "existed", 0));
		return send_err(r->conn, 404, "not_found", "no container for workspace %lld",
				(long long)id);
	}
	r->op = op;
	r->wsid = id;
	for (tail = &c->ops; *tail; tail = &(*tail)->next)
		;
	*tail = r;
	agentd_ct_advance(a, c);
	if (r->resp)
		return send_json(r->conn, r->status, json_loads(r->resp, 0, NULL));
	if (!r->wait)
		return answer_accepted(a, r, c);
	r->suspended = 1;
	MHD_suspend_connection(r->conn);
	agentd_state_save(a);
	return MHD_YES;
}

/* "/v1/containers/<id>[/<verb>]": the id and the verb ("" when none); -1 if malformed. */
static int parse_ct_path(const char *url, int64_t *id, const char **verb)
{
	const char *p = url + strlen(AGENTWIRE_API "/containers/");
	char *end;
	long long v;

	if (*p < '1' || *p > '9')
		return -1;
	errno = 0;
	v = strtoll(p, &end, 10);
	if (errno || v <= 0 || (*end && *end != '/'))
		return -1;
	*id = v;
	*verb = *end ? end + 1 : "";
	return 0;
}

static enum MHD_Result route(struct agentd *a, struct reqctx *r, const char *url,
			     const char *method)
{
	struct MHD_Connection *conn = r->conn;
	const char *verb;
	int64_t id;

	if (!strcmp(url, AGENTWIRE_API "/health"))
		return strcmp(method, "GET") ? send_err(conn, 405, "method_not_allowed", "use GET")
					     : handle_health(a, conn);
	if (!strcmp(url, AGENTWIRE_API "/containers"))
		return strcmp(method, "GET") ? send_err(conn, 405, "method_not_allowed", "use GET")
					     : handle_list(a, conn);
	if (strncmp(url, AGENTWIRE_API "/containers/", strlen(AGENTWIRE_API "/containers/")) ||
	    parse_ct_path(url, &id, &verb) < 0)
		return send_err(conn, 404, "not_found", "no such endpoint");
	if (!*verb && !strcmp(method, "GET")) {
		struct ct *c = agentd_ct_find(a, id);

		return c ? send_json(conn, 200, json_pack("{so}", "container", agentd_ct_json(c)))
			 : send_err(conn, 404, "not_found", "no container for workspace %lld",
				    (long long)id);
	}
	if (!*verb && !strcmp(method, "PUT"))
		return handle_ensure(a, r, id);
	if (!*verb && !strcmp(method, "DELETE"))
		return handle_op(a, r, OP_REMOVE, id);
	if (!strcmp(verb, "sync") && !strcmp(method, "POST"))
		return handle_op(a, r, OP_SYNC, id);
	if (!strcmp(verb, "stop") && !strcmp(method, "POST"))
		return handle_op(a, r, OP_STOP, id);
	if (!strcmp(verb, "sync") || !strcmp(verb, "stop") || !*verb)
		return send_err(conn, 405, "method_not_allowed", "method %s not allowed here",
				method);
	return send_err(conn, 404, "not_found", "no such endpoint");
}

/*
 * A request that arrived after SIGTERM, on a connection kept alive from
 * before (spinupd reuses its connections): a draining agent takes no new
 * work. 503 and close, so the client's next request finds the listening
 * socket closed.
 */
static enum MHD_Result refuse_draining(struct MHD_Connection *conn, const char *method,
				       const char *url)
{
	char spath[101], smethod[17];

	log_safe(url, spath, sizeof(spath));
	log_safe(method, smethod, sizeof(smethod));
	log_info("refused request method=%s path=%s reason=draining", smethod, spath);
	return queue_json(conn, 503, agentd_err_json("draining", "agent is shutting down and "
						     "takes no new requests"), 1);
}

enum MHD_Result agentd_on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_size, void **con_cls)
{
	struct agentd *a = cls;
	struct reqctx *r = *con_cls;
	enum MHD_Result ret;

	(void)version;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->a = a;
		r->conn = conn;
		strbuf_init(&r->body, AGENTWIRE_REQUEST_MAX + 1);
		r->late = a->draining;
		*con_cls = r;
		a->live_reqs++;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_large && strbuf_add(&r->body, upload, *upload_size) < 0)
			r->too_large = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->resp)   /* resumed after a sync: the answer is ready */
		return send_json(conn, r->status, json_loads(r->resp, 0, NULL));
	if (r->late)
		return refuse_draining(conn, method, url);
	if (r->too_large)
		return send_err(conn, 413, "too_large", "request body is larger than %d bytes",
				AGENTWIRE_REQUEST_MAX);
	if (authorize(a, r, method, url, &ret) < 0)
		return ret;
	return route(a, r, url, method);
}

void agentd_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct agentd *a = cls;
	struct reqctx *r = *con_cls;

	(void)conn;
	(void)toe;
	if (!r)
		return;
	strbuf_release(&r->body);
	free(r->resp);
	free(r);
	*con_cls = NULL;
	a->live_reqs--;
}

