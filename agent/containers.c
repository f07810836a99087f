/*
 * containers.c - container records, their restore and sync jobs, the ops queued on
 * them (sync, stop, remove), readiness probes and supervision.
 */
#include "agentd_int.h"

#include "../model/banned.h"

static const char *const phase_names[PH_MAX] = {
	"restoring", "running", "backoff", "stopped", "failed",
};

const char *agentd_phase_name(enum phase p)
{
	return (int)p >= 0 && p < PH_MAX ? phase_names[p] : "unknown";
}

int64_t agentd_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t agentd_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *agentd_op_name(enum op_kind k)
{
	static const char *const names[OP_MAX] = { "sync", "stop", "remove" };

	return (int)k >= 0 && k < OP_MAX ? names[k] : "unknown";
}

/* The strongest op queued on c (remove > stop > sync): what callers wait for. */
static enum container_op ct_pending(const struct ct *c)
{
	static const enum container_op map[OP_MAX] = { COP_SYNC, COP_STOP, COP_REMOVE };
	enum container_op k = COP_NONE;
	const struct reqctx *r;

	for (r = c->ops; r; r = r->next)
		if (r->op < OP_MAX && map[r->op] > k)
			k = map[r->op];
	return k;
}

static const char *job_name(enum job_kind k)
{
	return k == JOB_RESTORE ? "restore" : k == JOB_SYNC ? "sync" : k == JOB_PREPARE ?
	       "prepare" : "none";
}

/* ---- containers ---------------------------------------------------------------- */

struct ct *agentd_ct_find(struct agentd *a, int64_t id)
{
	size_t i;

	for (i = 0; i < a->nct; i++)
		if (a->cts[i]->req.workspace_id == id)
			return a->cts[i];
	return NULL;
}

void agentd_ct_spec(struct agentd *a, struct ct *c, struct rt_spec *s, char *log, size_t logsz)
{
	snprintf(log, logsz, "%s/logs/%lld.log", a->cfg.data_dir, (long long)c->req.workspace_id);
	s->workspace_id = c->req.workspace_id;
	s->name = c->name;
	s->dir = c->dir;
	s->addr = a->addr;
	s->port = c->port;
	s->log_path = log;
	s->req = &c->req;
}

static void ct_message(struct ct *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ct_message(struct ct *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
}

static void ct_set_phase(struct ct *c, enum phase p, const char *why)
{
	if (c->phase != p)
		log_info("container %s phase %s -> %s (%s)", c->name, agentd_phase_name(c->phase),
			 agentd_phase_name(p), why);
	c->phase = p;
}

static enum container_state ct_state(const struct ct *c)
{
	static const enum container_state map[PH_MAX] = {
		CS_CREATED, CS_RUNNING, CS_EXITED, CS_STOPPED, CS_FAILED,
	};

	return map[c->phase];
}

json_t *agentd_ct_json(const struct ct *c)
{
	struct obs_container o;
	json_t *j;

	memset(&o, 0, sizeof(o));
	str_copy(o.name, sizeof(o.name), c->name);
	o.workspace_id = c->req.workspace_id;
	o.state = ct_state(c);
	o.ready = c->phase == PH_RUNNING && c->ready;
	o.port = c->port;
	o.started_at = c->started_at;
	o.last_sync_at = c->last_sync_at;
	o.last_sync = c->last_sync;
	o.pending = ct_pending(c);
	o.restore_failed = c->restore_failed;
	o.restarts = c->restarts;
	str_copy(o.message, sizeof(o.message), c->message);
	j = agentwire_container_encode(&o);
	if (j) {
		json_object_set_new(j, "workspace_name", json_string(c->req.workspace_name));
		json_object_set_new(j, "phase", json_string(agentd_phase_name(c->phase)));
		json_object_set_new(j, "dirty", json_boolean(c->dirty));
		json_object_set_new(j, "job", json_string(c->job.pid ? job_name(c->job.kind) :
							     "none"));
	}
	return j;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void probe_cancel(struct agentd *a, struct ct *c)
{
	if (!c->probe)
		return;
	curl_multi_remove_handle(a->multi, c->probe);
	curl_easy_cleanup(c->probe);
	c->probe = NULL;
}

void agentd_ct_free(struct agentd *a, struct ct *c)
{
	size_t i;

	for (i = 0; i < a->nct; i++) {
		if (a->cts[i] == c) {
			a->cts[i] = a->cts[--a->nct];
			break;
		}
	}
	probe_cancel(a, c);
	free(c);
}

/* ---- jobs: restore and sync commands ----------------------------------------------- */

static void job_log_path(struct agentd *a, const struct ct *c, char *out, size_t n)
{
	snprintf(out, n, "%s/logs/%lld.job.log", a->cfg.data_dir, (long long)c->req.workspace_id);
}

/* The last line of a job's output, for messages (bounded, printable). */
static void job_tail(struct agentd *a, const struct ct *c, char *out, size_t n)
{
	char path[PATH_MAX], buf[JOB_TAIL_MAX + 1];
	ssize_t got = 0;
	off_t size;
	char *p;
	int fd;

	out[0] = '\0';
	job_log_path(a, c, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > 0 && lseek(fd, size > JOB_TAIL_MAX ? size - JOB_TAIL_MAX : 0, SEEK_SET) >= 0)
		got = read(fd, buf, JOB_TAIL_MAX);
	close(fd);
	if (got <= 0)
		return;
	buf[got] = '\0';
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		buf[--got] = '\0';
	p = strrchr(buf, '\n');
	p = p ? p + 1 : buf;
	for (char *q = p; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = ' ';
	snprintf(out, n, "%s", p);
}

static int write_marker(const struct ct *c, struct err *e)
{
	char path[PATH_MAX + 32], text[32];
	int fd, n, rc = 0;

	snprintf(path, sizeof(path), "%s/" SNAPSHOT_MARKER, c->dir);
	n = snprintf(text, sizeof(text), "%lld\n", (long long)agentd_wall_ms());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, (size_t)n) != n)
		rc = err_set(e, SP_EIO, "could not write snapshot marker in %s: %s", c->dir,
			     strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Run cmd as c's job (output to its job log, killed after --sync-timeout). */
static int job_spawn(struct agentd *a, struct ct *c, enum job_kind kind, const char *cmd,
		     struct reqctx *op, struct err *e)
{
	char log[PATH_MAX];
	int rc;

	job_log_path(a, c, log, sizeof(log));
	unlink(log);
	rc = rt_spawn_shell(cmd, c->dir, log, NULL, &c->job.pid, e);   /* the agent's environment */
	if (rc)
		return rc;
	c->job.kind = kind;
	c->job.deadline = agentd_mono_ms() + (int64_t)a->cfg.sync_timeout_s * 1000;
	c->job.timed_out = 0;
	c->job.op = op;
	if (kind == JOB_SYNC)
		c->last_sync = SYNC_RUNNING;
	log_info("container %s %s started pid=%d", c->name, job_name(kind), (int)c->job.pid);
	return 0;
}

/* Start the restore or sync command of c. */
static int job_start(struct agentd *a, struct ct *c, enum job_kind kind, struct reqctx *op,
		     struct err *e)
{
	const char *tpl = kind == JOB_RESTORE ? a->cfg.restore_cmd : a->cfg.sync_cmd;
	struct strbuf cmd = STRBUF_INIT;
	char id[24];
	int rc = 0;

	snprintf(id, sizeof(id), "%lld", (long long)c->req.workspace_id);
	{
		const struct cmdtpl_var vars[] = {
			{ "dir", c->dir }, { "bucket", c->req.bucket }, { "prefix", c->req.prefix },
			{ "id", id }, { "name", c->req.workspace_name },
		};

		rc = cmdtpl_expand(tpl, vars, sizeof(vars) / sizeof(vars[0]), &cmd, e);
	}
	if (!rc && kind == JOB_SYNC)
		rc = write_marker(c, e);
	if (!rc)
		rc = job_spawn(a, c, kind, cmd.buf, op, e);
	strbuf_release(&cmd);
	return rc;
}

static int marker_present(const struct ct *c)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/" SNAPSHOT_MARKER, c->dir);
	return access(path, F_OK) == 0;
}

/* Start the workspace itself (files are in place). */
void agentd_ct_start_workspace(struct agentd *a, struct ct *c)
{
	struct rt_spec s;
	struct err e = ERR_INIT;
	char log[PATH_MAX];

	agentd_ct_spec(a, c, &s, log, sizeof(log));
	if (a->rt->ops->start(a->rt->state, &s, &c->h, &e) < 0) {
		ct_message(c, "could not start workspace: %s", e.msg);
		ct_set_phase(c, PH_FAILED, "runtime start failed");
		log_warnx("could not start container %s: %s", c->name, e.msg);
		return;
	}
	c->started_at = agentd_wall_ms();
	c->run_since = agentd_mono_ms();
	c->ready = 0;
	c->next_probe = agentd_mono_ms() + PROBE_FIRST_MS;
	c->probe_tries = 0;
	c->next_sync = agentd_mono_ms() + (int64_t)a->cfg.sync_interval_s * 1000;
	c->kill_at = 0;
	c->dirty = 1;
	c->message[0] = '\0';
	ct_set_phase(c, PH_RUNNING, "workspace started");
}

/* Whether a stop or remove waits on c. */
static int stop_queued(const struct ct *c)
{
	const struct reqctx *r;

	for (r = c->ops; r; r = r->next)
		if (r->op == OP_STOP || r->op == OP_REMOVE)
			return 1;
	return 0;
}

/* Restore finished (or was not needed): guard against a missing snapshot, then start. */
static void restore_finished(struct agentd *a, struct ct *c, int ok, const char *why)
{
	if (ok && c->req.expect_snapshot && !marker_present(c)) {
		ok = 0;
		why = "expected a snapshot but none was found";
	}
	if (!ok) {
		c->restore_failed = 1;
		ct_message(c, "restore from '%s/%s' failed: %s", c->req.bucket, c->req.prefix, why);
		ct_set_phase(c, PH_FAILED, "restore failed");
		log_warnx("container %s: %s; sync-back is forbidden until a good restore",
			  c->name, c->message);
		return;
	}
	c->restore_failed = 0;
	agentd_ct_launch(a, c);
}

/* The prepare job (or none) finished: start, unless a stop or remove waits. */
static void prepare_finished(struct agentd *a, struct ct *c, int ok, const char *why)
{
	if (!ok) {
		ct_message(c, "could not prepare workspace: %s", why);
		ct_set_phase(c, PH_FAILED, "prepare failed");
		log_warnx("container %s: %s", c->name, c->message);
		return;
	}
	if (stop_queued(c)) {
		ct_set_phase(c, PH_STOPPED, "not started, a stop or remove is queued");
		return;
	}
	agentd_ct_start_workspace(a, c);
}

void agentd_ct_launch(struct agentd *a, struct ct *c)
{
	struct strbuf cmd = STRBUF_INIT;
	struct rt_spec s;
	struct err e = ERR_INIT;
	char log[PATH_MAX];
	int rc = 0;

	agentd_ct_spec(a, c, &s, log, sizeof(log));
	if (a->rt->ops->prepare)
		rc = a->rt->ops->prepare(a->rt->state, &s, &cmd, &e);
	if (!rc && cmd.len) {
		ct_set_phase(c, PH_RESTORING, "preparing the runtime");
		rc = job_spawn(a, c, JOB_PREPARE, cmd.buf, NULL, &e);
		if (!rc) {
			strbuf_release(&cmd);
			return;
		}
	}
	strbuf_release(&cmd);
	prepare_finished(a, c, rc == 0, e.msg);
}

/* Begin restoring files into c->dir (first start, or retry after a failed restore). */
void agentd_ct_restore(struct agentd *a, struct ct *c)
{
	struct err e = ERR_INIT;

	ct_set_phase(c, PH_RESTORING, "restoring files");
	if (!a->cfg.restore_cmd) {
		restore_finished(a, c, 1, "");
		return;
	}
	if (job_start(a, c, JOB_RESTORE, NULL, &e) < 0)
		restore_finished(a, c, 0, e.msg);
}

/* ---- ops: sync, stop, remove requests waiting on a container --------------------------- */

/* A detached op finished: nobody waits for the answer, the log says how it went. */
static void op_detached_done(struct reqctx *r, unsigned status, json_t *body)
{
	const char *msg = json_string_value(json_object_get(body, "message"));

	if (status < 300)
		log_info("container spinup-%lld %s (accepted earlier) done", (long long)r->wsid,
			 agentd_op_name(r->op));
	else
		log_warnx("container spinup-%lld %s (accepted earlier) failed status=%u: %s",
			  (long long)r->wsid, agentd_op_name(r->op), status, msg ? msg : "");
	json_decref(body);
	free(r);
}

void agentd_op_respond(struct reqctx *r, unsigned status, json_t *body)
{
	if (r->detached) {
		op_detached_done(r, status, body);
		return;
	}
	r->status = status;
	r->resp = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (!r->resp)
		r->resp = strdup("{\"code\":\"internal\",\"message\":\"out of memory\"}");
	json_decref(body);
	if (r->suspended) {
		r->suspended = 0;
		MHD_resume_connection(r->conn);
	}
}

json_t *agentd_err_json(const char *code, const char *msg)
{
	return json_pack("{ss ss}", "code", code, "message", msg);
}

void agentd_op_fail(struct reqctx *r, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	agentd_op_respond(r, status, agentd_err_json(code, msg));
}

struct reqctx *agentd_op_pop(struct ct *c)
{
	struct reqctx *r = c->ops;

	if (r) {
		c->ops = r->next;
		r->next = NULL;
	}
	return r;
}

struct reqctx *agentd_op_detach(struct ct *c, struct reqctx *r)
{
	struct reqctx *d = calloc(1, sizeof(*d)), **p;

	if (!d)
		return NULL;
	d->a = r->a;
	d->op = r->op;
	d->wsid = r->wsid;
	d->sync_first = r->sync_first;
	d->synced = r->synced;
	d->sync_passed = r->sync_passed;
	d->detached = 1;
	for (p = &c->ops; *p && *p != r; p = &(*p)->next)
		;
	assert(*p == r);
	d->next = r->next;
	*p = d;
	r->next = NULL;
	if (c->job.op == r)
		c->job.op = d;
	return d;
}

static int op_needs_sync(const struct ct *c, const struct reqctx *r)
{
	if (r->op == OP_SYNC)
		return 1;
	return r->sync_first && c->dirty;
}

/* Stop the workspace (graceful; SIGKILL after the grace period). 0 or the runtime's error. */
static int ct_stop_workspace(struct agentd *a, struct ct *c, struct err *e)
{
	struct rt_spec s;
	char log[PATH_MAX];

	agentd_ct_spec(a, c, &s, log, sizeof(log));
	if (c->phase == PH_RUNNING && a->rt->ops->stop(a->rt->state, &s, &c->h, 0, e) < 0)
		return e ? e->code : SP_EIO;
	c->kill_at = agentd_mono_ms() + (int64_t)a->cfg.stop_grace_s * 1000;
	c->ready = 0;
	probe_cancel(a, c);
	ct_set_phase(c, PH_STOPPED, "stop requested");
	return 0;
}

/*
 * Remove c (its workspace, its files) and answer every op still queued on
 * it. When the runtime cannot remove the workspace, nothing is dropped:
 * 0 or the runtime's error, c then still exists.
 */
static int ct_remove(struct agentd *a, struct ct *c, struct err *e)
{
	struct rt_spec s;
	char log[PATH_MAX], jlog[PATH_MAX];
	struct reqctx *r;

	agentd_ct_spec(a, c, &s, log, sizeof(log));
	if (a->rt->ops->remove(a->rt->state, &s, &c->h, e) < 0)
		return e ? e->code : SP_EIO;
	nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	job_log_path(a, c, jlog, sizeof(jlog));
	unlink(jlog);
	unlink(log);
	log_info("container %s removed", c->name);
	while ((r = agentd_op_pop(c)) != NULL) {
		if (r->op == OP_REMOVE)
			agentd_op_respond(r, 200, json_pack("{sb sb}", "removed", 1, "existed", 0));
		else
			agentd_op_fail(r, 404, "not_found", "container %s was removed", c->name);
	}
	agentd_ct_free(a, c);
	return 0;
}

/* Carry out an op whose sync (if it needed one) is done. Returns 1 if c was freed. */
static int op_perform(struct agentd *a, struct ct *c, struct reqctx *r)
{
	struct err e = ERR_INIT;
	int synced = r->synced;

	agentd_op_pop(c);
	switch (r->op) {
	case OP_SYNC:
		agentd_op_respond(r, 200, json_pack("{so}", "container", agentd_ct_json(c)));
		return 0;
	case OP_STOP:
		if (c->phase != PH_STOPPED && ct_stop_workspace(a, c, &e) < 0) {
			agentd_op_fail(r, 502, "runtime_failed", "could not stop container %s: %s",
				       c->name, e.msg);
			return 0;
		}
		if (synced)
			c->dirty = 0;
		agentd_op_respond(r, 200, json_pack("{sb so}", "synced", synced, "container",
						    agentd_ct_json(c)));
		return 0;
	case OP_REMOVE:
		if (ct_remove(a, c, &e) < 0) {
			agentd_op_fail(r, 502, "runtime_failed", "could not remove container %s: %s",
				       c->name, e.msg);
			return 0;
		}
		agentd_op_respond(r, 200, json_pack("{sb sb sb}", "removed", 1, "existed", 1,
						    "synced", synced));
		return 1;
	default:
		break;
	}
	return 0;
}

/* Work through c's queued ops until one has to wait for a sync job. */
void agentd_ct_advance(struct agentd *a, struct ct *c)
{
	struct reqctx *r;
	struct err e = ERR_INIT;

	while ((r = c->ops) != NULL && c->job.pid == 0) {
		if (op_needs_sync(c, r) && !r->sync_passed) {
			if (c->restore_failed) {
				agentd_op_pop(c);
				agentd_op_fail(r, 409, "restore_failed",
					"container %s: restore failed, sync-back is forbidden "
					"(it would overwrite the good copy); retry with {\"sync\":false} "
					"to discard local files", c->name);
				continue;
			}
			if (a->cfg.sync_cmd) {
				if (job_start(a, c, JOB_SYNC, r, &e) < 0) {
					agentd_op_pop(c);
					agentd_op_fail(r, 500, "sync_failed", "container %s: %s", c->name,
						e.msg);
					continue;
				}
				return;
			}
			r->sync_passed = 1;   /* no sync command configured: nothing to copy */
		}
		if (op_perform(a, c, r))
			return;
	}
}

/* A sync or restore command exited with status. */
static void job_done(struct agentd *a, struct ct *c, int status)
{
	char tail[JOB_TAIL_MAX + 1], why[OBS_MSG_MAX + 1];
	struct job j = c->job;
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && !j.timed_out;

	memset(&c->job, 0, sizeof(c->job));
	job_tail(a, c, tail, sizeof(tail));
	if (j.timed_out)
		snprintf(why, sizeof(why), "command timed out after %d s", a->cfg.sync_timeout_s);
	else if (WIFEXITED(status))
		snprintf(why, sizeof(why), "command exited with status %d%s%s",
			 WEXITSTATUS(status), tail[0] ? ": " : "", tail);
	else
		snprintf(why, sizeof(why), "command killed by signal %d",
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	log_info("container %s %s finished ok=%d%s%s", c->name, job_name(j.kind), ok,
		 ok ? "" : " reason=", ok ? "" : why);
	if (j.kind == JOB_RESTORE) {
		restore_finished(a, c, ok, why);
	} else if (j.kind == JOB_PREPARE) {
		prepare_finished(a, c, ok, why);
	} else {
		c->last_sync = ok ? SYNC_OK : SYNC_FAILED;
		c->last_sync_at = agentd_wall_ms();
		if (!ok)
			ct_message(c, "sync to '%s/%s' failed: %s", c->req.bucket, c->req.prefix, why);
		else if (!strncmp(c->message, "sync to", 7))
			c->message[0] = '\0';
		if (ok && c->phase != PH_RUNNING && c->phase != PH_BACKOFF)
			c->dirty = 0;
		if (j.op && ok) {
			j.op->synced = 1;
			j.op->sync_passed = 1;
		} else if (j.op) {
			if (agentd_op_pop(c) == j.op)
				agentd_op_fail(j.op, 502, "sync_failed", "container %s: %s; not stopped",
					c->name, c->message);
		}
	}
	agentd_ct_advance(a, c);
	agentd_state_save(a);
}

/* ---- supervision --------------------------------------------------------------------- */

static size_t probe_write(char *ptr, size_t size, size_t n, void *ud)
{
	(void)ptr;
	(void)ud;
	return size * n;
}

static void probe_start(struct agentd *a, struct ct *c)
{
	char url[128];
	CURL *h = curl_easy_init();

	if (!h)
		return;
	snprintf(url, sizeof(url), "http://%s:%d/", a->addr, c->port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)PROBE_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, probe_write);
	curl_easy_setopt(h, CURLOPT_PRIVATE, c);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	if (curl_multi_add_handle(a->multi, h) != CURLM_OK) {
		curl_easy_cleanup(h);
		return;
	}
	c->probe = h;
}

void agentd_probes_collect(struct agentd *a)
{
	CURLMsg *m;
	int left, running;

	curl_multi_perform(a->multi, &running);
	while ((m = curl_multi_info_read(a->multi, &left)) != NULL) {
		struct ct *c = NULL;
		long code = 0;
		int ready;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		ready = m->data.result == CURLE_OK && code > 0;
		if (!c)
			continue;
		probe_cancel(a, c);
		if (ready != c->ready)
			log_info("container %s ready %d -> %d", c->name, c->ready, ready);
		c->ready = ready;
		if (ready) {
			c->next_probe = agentd_mono_ms() + PROBE_READY_MS;
		} else {
			int64_t wait = (int64_t)PROBE_FIRST_MS << (c->probe_tries < 5 ?
								   c->probe_tries : 5);

			c->probe_tries++;
			c->next_probe = agentd_mono_ms() + (wait < PROBE_NOT_READY_MS ? wait :
							     PROBE_NOT_READY_MS);
		}
	}
}

int64_t agentd_probes_start(struct agentd *a, int64_t now)
{
	int64_t next = INT64_MAX;
	size_t i;

	for (i = 0; i < a->nct; i++) {
		struct ct *c = a->cts[i];

		if (c->phase != PH_RUNNING || c->probe)
			continue;
		if (now >= c->next_probe)
			probe_start(a, c);
		else if (c->next_probe < next)
			next = c->next_probe;
	}
	return next;
}

static void ct_crashed(struct ct *c, const struct rt_status *st, int64_t now)
{
	int64_t backoff;

	c->restarts++;
	c->streak++;
	backoff = (int64_t)BACKOFF_MIN_MS << (c->streak > 6 ? 6 : c->streak - 1);
	if (backoff > BACKOFF_MAX_MS)
		backoff = BACKOFF_MAX_MS;
	c->next_restart = now + backoff;
	c->ready = 0;
	ct_message(c, "%s; restart %d in %lld ms", st->message[0] ? st->message : "workspace exited",
		   c->restarts, (long long)backoff);
	ct_set_phase(c, PH_BACKOFF, c->message);
}

static void ct_supervise(struct agentd *a, struct ct *c, int64_t now)
{
	struct rt_status st;
	struct rt_spec s;
	struct err e = ERR_INIT;
	char log[PATH_MAX];

	agentd_ct_spec(a, c, &s, log, sizeof(log));
	if (c->job.pid && !c->job.timed_out && now >= c->job.deadline) {
		c->job.timed_out = 1;
		kill(-c->job.pid, SIGKILL);
	}
	if (c->phase == PH_RUNNING) {
		if (a->rt->ops->status(a->rt->state, &s, &c->h, &st, &e) < 0) {
			ct_message(c, "could not inspect workspace: %s", e.msg);
		} else if (st.state != RT_RUNNING) {
			probe_cancel(a, c);
			ct_crashed(c, &st, now);
			agentd_state_save(a);
		} else if (now - c->run_since > STABLE_AFTER_MS) {
			c->streak = 0;
		}
	}
	if (c->phase == PH_BACKOFF && !c->ops && now >= c->next_restart) {
		agentd_ct_start_workspace(a, c);
		agentd_state_save(a);
	}
	if (c->phase == PH_STOPPED && c->kill_at && now >= c->kill_at) {
		a->rt->ops->stop(a->rt->state, &s, &c->h, 1, &e);
		c->kill_at = 0;
	}
	if (c->phase == PH_RUNNING && a->cfg.sync_cmd && a->cfg.sync_interval_s > 0 &&
	    !c->job.pid && !c->ops && !c->restore_failed && now >= c->next_sync) {
		c->next_sync = now + (int64_t)a->cfg.sync_interval_s * 1000;
		if (job_start(a, c, JOB_SYNC, NULL, &e) < 0)
			log_warnx("container %s: periodic sync: %s", c->name, e.msg);
	}
}

void agentd_supervise(struct agentd *a)
{
	int64_t now = agentd_mono_ms();
	size_t i;

	for (i = 0; i < a->nct; i++)
		ct_supervise(a, a->cts[i], now);
}

/* Reap every exited child: jobs finish, workspaces are marked exited. */
void agentd_reap(struct agentd *a)
{
	pid_t pid;
	int status;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < a->nct; i++) {
			struct ct *c = a->cts[i];

			if (c->job.pid == pid) {
				job_done(a, c, status);
				break;
			}
			if (c->h.pid == pid && !c->h.adopted) {
				c->h.exited = 1;
				c->h.exit_status = status;
				break;
			}
		}
	}
}

