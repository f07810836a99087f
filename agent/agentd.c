/*
 * agentd.c - the spinup-agent core: containers, their restore/sync jobs,
 * supervision, readiness probes, the state file, and the HTTP API.
 */
#include "agentd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>

#include "cmdtpl.h"
#include "runtime.h"
#include "../drivers/agentsig.h"
#include "../drivers/agentwire.h"
#include "../drivers/log.h"
#include "../model/strbuf.h"
#include "../model/banned.h"

#define STATE_FILE "state.json"
#define STATE_MAX (4 << 20)               /* bytes of the state file */
#define SNAPSHOT_MARKER ".spinup-snapshot"  /* written before every sync-back */
#define TICK_MS 1000
#define PROBE_TIMEOUT_MS 2000
#define PROBE_NOT_READY_MS 500
#define PROBE_READY_MS 5000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define STABLE_AFTER_MS 60000             /* a run this long resets the backoff */
#define JOB_TAIL_MAX 160                  /* bytes of a failed command's output in messages */

enum phase { PH_RESTORING, PH_RUNNING, PH_BACKOFF, PH_STOPPED, PH_FAILED, PH_MAX };
enum job_kind { JOB_NONE, JOB_RESTORE, JOB_SYNC };
enum op_kind { OP_SYNC, OP_STOP, OP_REMOVE };

static const char *const phase_names[PH_MAX] = {
	"restoring", "running", "backoff", "stopped", "failed",
};

/* One HTTP request; the connection's con_cls. Ops wait in a container's queue. */
struct reqctx {
	struct agentd *a;
	struct MHD_Connection *conn;
	struct strbuf body;
	int too_large;
	int in_handler;
	int suspended;
	unsigned status;
	char *resp;             /* the response to send, once decided */
	enum op_kind op;
	int64_t wsid;
	int sync_first;
	int synced;             /* this op's sync ran and succeeded */
	struct reqctx *next;
};

struct job {
	pid_t pid;
	enum job_kind kind;
	int64_t deadline;       /* mono ms */
	int timed_out;
	struct reqctx *op;      /* the request waiting for this sync, or NULL */
};

struct ct {
	struct container_req req;
	char name[OBS_CONTAINER_NAME_MAX + 1];
	char dir[PATH_MAX];
	int port;
	enum phase phase;
	struct rt_handle h;
	int ready, restarts, streak, dirty, restore_failed;
	int64_t started_at, last_sync_at;         /* wall ms */
	enum sync_result last_sync;
	char message[OBS_MSG_MAX + 1];
	int64_t run_since, next_restart, next_sync, next_probe, kill_at;   /* mono ms */
	struct job job;
	struct reqctx *ops;
	CURL *probe;
};

struct agentd {
	struct agentd_config cfg;
	char addr[INET_ADDRSTRLEN];
	int port;
	char state_path[PATH_MAX];
	char builtin_cmd[PATH_MAX + 128];
	struct agentsig_key key;
	struct agentsig_replay *replay;
	int64_t max_epoch;
	struct runtime *rt;
	struct MHD_Daemon *mhd;
	CURLM *multi;
	struct ct *cts[AGENTD_CAPACITY_MAX];
	size_t nct;
	int live_reqs;
	int draining;
	int64_t drain_deadline;
};

/* Signal state: the only file-scope variables besides the log's. */
static int sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t sig_term, sig_chld;

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void agentd_config_defaults(struct agentd_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = "127.0.0.1:7070";
	c->id = "";
	c->data_dir = "/var/lib/spinup-agent";
	c->secret_file = "/etc/spinup/agent.secret";
	c->runtime = "process";
	c->port_lo = 20000;
	c->port_hi = 20999;
	c->capacity = 8;
	c->sync_interval_s = 300;
	c->sync_timeout_s = 600;
	c->drain_timeout_s = 30;
	c->stop_grace_s = 10;
	c->docker_socket = "/var/run/docker.sock";
	c->docker_url = "http://localhost/v1.43";
	c->docker_port = 8080;
}

/* ---- containers ---------------------------------------------------------------- */

static struct ct *ct_find(struct agentd *a, int64_t id)
{
	size_t i;

	for (i = 0; i < a->nct; i++)
		if (a->cts[i]->req.workspace_id == id)
			return a->cts[i];
	return NULL;
}

static void ct_spec(struct agentd *a, struct ct *c, struct rt_spec *s, char *log, size_t logsz)
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
		log_info("container %s phase %s -> %s (%s)", c->name, phase_names[c->phase],
			 phase_names[p], why);
	c->phase = p;
}

static enum container_state ct_state(const struct ct *c)
{
	static const enum container_state map[PH_MAX] = {
		CS_CREATED, CS_RUNNING, CS_EXITED, CS_STOPPED, CS_FAILED,
	};

	return map[c->phase];
}

static json_t *ct_json(const struct ct *c)
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
	o.restore_failed = c->restore_failed;
	o.restarts = c->restarts;
	str_copy(o.message, sizeof(o.message), c->message);
	j = agentwire_container_encode(&o);
	if (j) {
		json_object_set_new(j, "workspace_name", json_string(c->req.workspace_name));
		json_object_set_new(j, "phase", json_string(phase_names[c->phase]));
		json_object_set_new(j, "dirty", json_boolean(c->dirty));
		json_object_set_new(j, "job", json_string(c->job.pid == 0 ? "none" :
			c->job.kind == JOB_RESTORE ? "restore" : "sync"));
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

static void ct_free(struct agentd *a, struct ct *c)
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

/* ---- state file ---------------------------------------------------------------- */

static json_t *state_json(struct agentd *a)
{
	json_t *root = json_object(), *arr = json_array();
	size_t i;

	json_object_set_new(root, "version", json_integer(1));
	json_object_set_new(root, "max_epoch", json_integer(a->max_epoch));
	for (i = 0; i < a->nct; i++) {
		struct ct *c = a->cts[i];

		json_array_append_new(arr, json_pack("{so si ss si ss sb si sI sI ss sb sb ss}",
			"req", agentwire_req_encode(&c->req),
			"port", c->port,
			"phase", phase_names[c->phase],
			"pid", (int)(c->h.exited ? 0 : c->h.pid),
			"rt_id", c->h.id,
			"exited", c->h.exited,
			"restarts", c->restarts,
			"started_at", (json_int_t)c->started_at,
			"last_sync_at", (json_int_t)c->last_sync_at,
			"last_sync", sync_result_name(c->last_sync == SYNC_RUNNING ? SYNC_NONE :
						      c->last_sync),
			"restore_failed", c->restore_failed,
			"dirty", c->dirty,
			"message", c->message));
	}
	json_object_set_new(root, "containers", arr);
	return root;
}

/* Rewrite the state file atomically; failures are logged (the agent keeps serving). */
static void state_save(struct agentd *a)
{
	char tmp[PATH_MAX + 8];
	json_t *root = state_json(a);
	int fd = -1, ok = 0;
	char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;

	snprintf(tmp, sizeof(tmp), "%s.tmp", a->state_path);
	if (text) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text) &&
		    fsync(fd) == 0)
			ok = 1;
		if (fd >= 0)
			close(fd);
		if (ok && rename(tmp, a->state_path) < 0)
			ok = 0;
	}
	if (!ok)
		log_warn("could not write state file %s", a->state_path);
	free(text);
	json_decref(root);
}

static int phase_parse(const char *s, enum phase *p)
{
	int i;

	for (i = 0; i < PH_MAX; i++) {
		if (!strcmp(s, phase_names[i])) {
			*p = (enum phase)i;
			return 0;
		}
	}
	return -1;
}

static int state_load_ct(struct agentd *a, json_t *j, struct err *e)
{
	struct ct *c;
	const char *phase = "", *sync = "none", *msg = "", *rtid = "";
	json_t *req = NULL;
	int port = 0, pid = 0, exited = 0, restarts = 0, rf = 0, dirty = 0;
	json_int_t started = 0, synced = 0;
	int rc;

	if (a->nct >= AGENTD_CAPACITY_MAX)
		return err_set(e, SP_ELIMIT, "more than %d containers", AGENTD_CAPACITY_MAX);
	if (json_unpack(j, "{so si ss si ss sb si sI sI ss sb sb ss}", "req", &req, "port", &port,
			"phase", &phase, "pid", &pid, "rt_id", &rtid, "exited", &exited,
			"restarts", &restarts, "started_at", &started, "last_sync_at", &synced,
			"last_sync", &sync, "restore_failed", &rf, "dirty", &dirty,
			"message", &msg) < 0)
		return err_set(e, SP_EINVAL, "container entry has missing or mistyped fields");
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, SP_ENOMEM, "out of memory");
	rc = agentwire_req_decode(req, &c->req, e);
	if (!rc && phase_parse(phase, &c->phase) < 0)
		rc = err_set(e, SP_EINVAL, "unknown phase '%s'", phase);
	if (!rc && sync_result_parse(sync, &c->last_sync) < 0)
		rc = err_set(e, SP_EINVAL, "unknown sync result '%s'", sync);
	if (rc) {
		free(c);
		return rc;
	}
	container_name_for(c->req.workspace_id, c->name, sizeof(c->name));
	snprintf(c->dir, sizeof(c->dir), "%s/workspaces/%lld", a->cfg.data_dir,
		 (long long)c->req.workspace_id);
	c->port = port;
	c->h.pid = pid;
	c->h.adopted = pid > 0;
	c->h.exited = exited;
	str_copy(c->h.id, sizeof(c->h.id), rtid);
	c->restarts = restarts;
	c->started_at = started;
	c->last_sync_at = synced;
	c->restore_failed = rf;
	c->dirty = dirty;
	str_copy(c->message, sizeof(c->message), msg);
	if (c->phase == PH_BACKOFF)
		c->phase = PH_RUNNING;   /* status() decides on the next tick */
	c->run_since = mono_ms();
	c->next_sync = mono_ms() + (int64_t)a->cfg.sync_interval_s * 1000;
	a->cts[a->nct++] = c;
	return 0;
}

/* Load the state file if there is one; containers found are re-adopted. */
static int state_load(struct agentd *a, struct err *e)
{
	json_error_t jerr;
	json_t *root, *arr, *it;
	json_int_t epoch = 0;
	size_t i;
	struct stat st;
	int rc = 0;

	if (stat(a->state_path, &st) < 0)
		return errno == ENOENT ? 0 : err_set(e, SP_EIO, "could not stat %s: %s",
						     a->state_path, strerror(errno));
	if (st.st_size > STATE_MAX)
		return err_set(e, SP_ELIMIT, "state file %s is larger than %d bytes",
			       a->state_path, STATE_MAX);
	root = json_load_file(a->state_path, 0, &jerr);
	if (!root)
		return err_set(e, SP_EINVAL, "state file %s:%d:%d: %s", a->state_path, jerr.line,
			       jerr.column, jerr.text);
	if (json_unpack(root, "{sI so}", "max_epoch", &epoch, "containers", &arr) < 0 ||
	    !json_is_array(arr)) {
		rc = err_set(e, SP_EINVAL, "state file %s: missing max_epoch or containers",
			     a->state_path);
		goto out;
	}
	a->max_epoch = epoch;
	json_array_foreach(arr, i, it) {
		rc = state_load_ct(a, it, e);
		if (rc) {
			err_prefix(e, "state file %s: container %zu", a->state_path, i);
			goto out;
		}
	}
	log_info("state loaded path=%s containers=%zu max_epoch=%lld", a->state_path, a->nct,
		 (long long)a->max_epoch);
out:
	json_decref(root);
	return rc;
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
	n = snprintf(text, sizeof(text), "%lld\n", (long long)wall_ms());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, (size_t)n) != n)
		rc = err_set(e, SP_EIO, "could not write snapshot marker in %s: %s", c->dir,
			     strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

static int job_start(struct agentd *a, struct ct *c, enum job_kind kind, struct reqctx *op,
		     struct err *e)
{
	const char *tpl = kind == JOB_RESTORE ? a->cfg.restore_cmd : a->cfg.sync_cmd;
	struct strbuf cmd = STRBUF_INIT;
	char id[24], log[PATH_MAX];
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
	job_log_path(a, c, log, sizeof(log));
	unlink(log);
	if (!rc)
		rc = rt_spawn_shell(cmd.buf, c->dir, log, &c->job.pid, e);
	if (!rc) {
		c->job.kind = kind;
		c->job.deadline = mono_ms() + (int64_t)a->cfg.sync_timeout_s * 1000;
		c->job.timed_out = 0;
		c->job.op = op;
		if (kind == JOB_SYNC)
			c->last_sync = SYNC_RUNNING;
		log_info("container %s %s started pid=%d", c->name,
			 kind == JOB_RESTORE ? "restore" : "sync", (int)c->job.pid);
	}
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
static void ct_start_workspace(struct agentd *a, struct ct *c)
{
	struct rt_spec s;
	struct err e = ERR_INIT;
	char log[PATH_MAX];

	ct_spec(a, c, &s, log, sizeof(log));
	if (a->rt->ops->start(a->rt->state, &s, &c->h, &e) < 0) {
		ct_message(c, "could not start workspace: %s", e.msg);
		ct_set_phase(c, PH_FAILED, "runtime start failed");
		log_warnx("could not start container %s: %s", c->name, e.msg);
		return;
	}
	c->started_at = wall_ms();
	c->run_since = mono_ms();
	c->ready = 0;
	c->next_probe = mono_ms();
	c->next_sync = mono_ms() + (int64_t)a->cfg.sync_interval_s * 1000;
	c->kill_at = 0;
	c->dirty = 1;
	c->message[0] = '\0';
	ct_set_phase(c, PH_RUNNING, "workspace started");
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
	ct_start_workspace(a, c);
}

/* Begin restoring files into c->dir (first start, or retry after a failed restore). */
static void ct_restore(struct agentd *a, struct ct *c)
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

static void op_respond(struct reqctx *r, unsigned status, json_t *body)
{
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

static json_t *err_json(const char *code, const char *msg)
{
	return json_pack("{ss ss}", "code", code, "message", msg);
}

static void op_fail(struct reqctx *r, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void op_fail(struct reqctx *r, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	op_respond(r, status, err_json(code, msg));
}

static struct reqctx *op_pop(struct ct *c)
{
	struct reqctx *r = c->ops;

	if (r) {
		c->ops = r->next;
		r->next = NULL;
	}
	return r;
}

static int op_needs_sync(const struct ct *c, const struct reqctx *r)
{
	if (r->op == OP_SYNC)
		return 1;
	return r->sync_first && c->dirty;
}

static void ct_stop_workspace(struct agentd *a, struct ct *c)
{
	struct rt_spec s;
	struct err e = ERR_INIT;
	char log[PATH_MAX];

	ct_spec(a, c, &s, log, sizeof(log));
	if (c->phase == PH_RUNNING && a->rt->ops->stop(a->rt->state, &s, &c->h, 0, &e) < 0)
		log_warnx("container %s: %s", c->name, e.msg);
	c->kill_at = mono_ms() + (int64_t)a->cfg.stop_grace_s * 1000;
	c->ready = 0;
	probe_cancel(a, c);
	ct_set_phase(c, PH_STOPPED, "stop requested");
}

/* Remove c (its workspace, its files) and answer every op still queued on it. */
static void ct_remove(struct agentd *a, struct ct *c)
{
	struct rt_spec s;
	struct err e = ERR_INIT;
	char log[PATH_MAX], jlog[PATH_MAX];
	struct reqctx *r;

	ct_spec(a, c, &s, log, sizeof(log));
	if (a->rt->ops->remove(a->rt->state, &s, &c->h, &e) < 0)
		log_warnx("container %s: %s", c->name, e.msg);
	nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	job_log_path(a, c, jlog, sizeof(jlog));
	unlink(jlog);
	unlink(log);
	log_info("container %s removed", c->name);
	while ((r = op_pop(c)) != NULL) {
		if (r->op == OP_REMOVE)
			op_respond(r, 200, json_pack("{sb sb}", "removed", 1, "existed", 0));
		else
			op_fail(r, 404, "not_found", "container %s was removed", c->name);
	}
	ct_free(a, c);
}

/* Carry out an op whose sync (if it needed one) is done. Returns 1 if c was freed. */
static int op_perform(struct agentd *a, struct ct *c, struct reqctx *r)
{
	int synced = r->synced;

	op_pop(c);
	switch (r->op) {
	case OP_SYNC:
		op_respond(r, 200, json_pack("{so}", "container", ct_json(c)));
		return 0;
	case OP_STOP:
		if (c->phase != PH_STOPPED)
			ct_stop_workspace(a, c);
		if (synced)
			c->dirty = 0;
		op_respond(r, 200, json_pack("{sb so}", "synced", synced, "container", ct_json(c)));
		return 0;
	case OP_REMOVE:
		op_respond(r, 200, json_pack("{sb sb sb}", "removed", 1, "existed", 1,
					     "synced", synced));
		ct_remove(a, c);
		return 1;
	}
	return 0;
}

/* Work through c's queued ops until one has to wait for a sync job. */
static void ct_advance(struct agentd *a, struct ct *c)
{
	struct reqctx *r;
	struct err e = ERR_INIT;

	while ((r = c->ops) != NULL && c->job.pid == 0) {
		if (op_needs_sync(c, r) && !r->synced) {
			if (c->restore_failed) {
				op_pop(c);
				op_fail(r, 409, "restore_failed",
					"container %s: restore failed, sync-back is forbidden "
					"(it would overwrite the good copy); retry with {\"sync\":false} "
					"to discard local files", c->name);
				continue;
			}
			if (a->cfg.sync_cmd) {
				if (job_start(a, c, JOB_SYNC, r, &e) < 0) {
					op_pop(c);
					op_fail(r, 500, "sync_failed", "container %s: %s", c->name,
						e.msg);
					continue;
				}
				return;
			}
			r->synced = 1;   /* no sync command configured: nothing to copy */
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
	log_info("container %s %s finished ok=%d%s%s", c->name,
		 j.kind == JOB_RESTORE ? "restore" : "sync", ok, ok ? "" : " reason=", ok ? "" : why);
	if (j.kind == JOB_RESTORE) {
		restore_finished(a, c, ok, why);
	} else {
		c->last_sync = ok ? SYNC_OK : SYNC_FAILED;
		c->last_sync_at = wall_ms();
		if (!ok)
			ct_message(c, "sync to '%s/%s' failed: %s", c->req.bucket, c->req.prefix, why);
		else if (!strncmp(c->message, "sync to", 7))
			c->message[0] = '\0';
		if (ok && c->phase != PH_RUNNING && c->phase != PH_BACKOFF)
			c->dirty = 0;
		if (j.op && ok) {
			j.op->synced = 1;
		} else if (j.op) {
			if (op_pop(c) == j.op)
				op_fail(j.op, 502, "sync_failed", "container %s: %s; not stopped",
					c->name, c->message);
		}
	}
	ct_advance(a, c);
	state_save(a);
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

static void probes_collect(struct agentd *a)
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
		c->next_probe = mono_ms() + (ready ? PROBE_READY_MS : PROBE_NOT_READY_MS);
	}
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

	ct_spec(a, c, &s, log, sizeof(log));
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
			state_save(a);
		} else if (now - c->run_since > STABLE_AFTER_MS) {
			c->streak = 0;
		}
	}
	if (c->phase == PH_BACKOFF && !c->ops && now >= c->next_restart) {
		ct_start_workspace(a, c);
		state_save(a);
	}
	if (c->phase == PH_STOPPED && c->kill_at && now >= c->kill_at) {
		a->rt->ops->stop(a->rt->state, &s, &c->h, 1, &e);
		c->kill_at = 0;
	}
	if (c->phase == PH_RUNNING && !c->probe && now >= c->next_probe)
		probe_start(a, c);
	if (c->phase == PH_RUNNING && a->cfg.sync_cmd && a->cfg.sync_interval_s > 0 &&
	    !c->job.pid && !c->ops && !c->restore_failed && now >= c->next_sync) {
		c->next_sync = now + (int64_t)a->cfg.sync_interval_s * 1000;
		if (job_start(a, c, JOB_SYNC, NULL, &e) < 0)
			log_warnx("container %s: periodic sync: %s", c->name, e.msg);
	}
}

static void supervise(struct agentd *a)
{
	int64_t now = mono_ms();
	size_t i;

	for (i = 0; i < a->nct; i++)
		ct_supervise(a, a->cts[i], now);
}

/* Reap every exited child: jobs finish, workspaces are marked exited. */
static void reap(struct agentd *a)
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

/* ---- HTTP ---------------------------------------------------------------------------- */

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *body)
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
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
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
	return send_json(conn, status, err_json(code, msg));
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

/* Check signature, clock, replay and epoch. 0, or a response was queued (*ret). */
static int authorize(struct agentd *a, struct reqctx *r, const char *method, const char *url,
		     enum MHD_Result *ret)
{
	struct MHD_Connection *conn = r->conn;
	struct agentsig_hdrs h;
	struct err e = ERR_INIT;
	enum agentsig_why why = AGENTSIG_OK;
	int64_t ts = 0, epoch = 0, now = wall_ms() / 1000;
	char peer[INET_ADDRSTRLEN];
	int rc;

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
		log_warnx("refused request method=%s path=%.100s peer=%s reason=%s", method, url,
			  peer, agentsig_why_name(why));
		*ret = send_err(conn, 401, agentsig_why_name(why), "%s", e.msg);
		return -1;
	}
	if (epoch < a->max_epoch) {
		log_warnx("refused request method=%s path=%.100s peer=%s reason=stale_epoch "
			  "epoch=%lld max_epoch=%lld", method, url, peer, (long long)epoch,
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
		state_save(a);
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
		"time", (json_int_t)wall_ms(), "draining", a->draining));
}

static enum MHD_Result handle_list(struct agentd *a, struct MHD_Connection *conn)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < a->nct; i++)
		json_array_append_new(arr, ct_json(a->cts[i]));
	return send_json(conn, 200, json_pack("{so sI si}", "containers", arr, "max_epoch_seen",
					      (json_int_t)a->max_epoch, "capacity",
					      a->cfg.capacity));
}

static size_t active_count(const struct agentd *a)
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

	if (a->nct >= AGENTD_CAPACITY_MAX || (int)active_count(a) >= a->cfg.capacity)
		return send_err(conn, 409, "at_capacity", "agent runs %zu of %d workspaces",
				active_count(a), a->cfg.capacity);
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
	ct_restore(a, c);
	state_save(a);
	return send_json(conn, 201, json_pack("{ss so}", "action", "created",
					      "container", ct_json(c)));
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
	if (req.workspace_id != id)
		return send_err(r->conn, 400, "invalid", "body workspace_id %lld does not match "
				"path %lld", (long long)req.workspace_id, (long long)id);
	c = ct_find(a, id);
	if (!c)
		return ensure_new(a, r->conn, &req);
	if (c->ops)
		return send_err(r->conn, 409, "busy", "container %s has a stop or remove in "
				"progress", c->name);
	if (c->phase == PH_STOPPED || c->phase == PH_FAILED) {
		if ((int)active_count(a) >= a->cfg.capacity)
			return send_err(r->conn, 409, "at_capacity", "agent runs %zu of %d "
					"workspaces", active_count(a), a->cfg.capacity);
		c->req = req;
		if (c->phase == PH_STOPPED && !c->h.exited && c->h.pid > 0) {
			struct rt_spec s;
			char log[PATH_MAX];

			ct_spec(a, c, &s, log, sizeof(log));
			a->rt->ops->stop(a->rt->state, &s, &c->h, 1, &e);
		}
		if (c->restore_failed) {
			action = "restoring";
			ct_restore(a, c);
		} else {
			action = "started";
			ct_start_workspace(a, c);
		}
		state_save(a);
	}
	return send_json(r->conn, 200, json_pack("{ss so}", "action", action,
						 "container", ct_json(c)));
}

/* Optional {"sync": bool} body of stop and remove; default true. */
static int parse_sync_flag(struct reqctx *r, struct err *e)
{
	json_error_t jerr;
	json_t *body, *v;

	r->sync_first = 1;
	if (r->body.len == 0)
		return 0;
	body = json_loadb(r->body.buf, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!body || !json_is_object(body)) {
		json_decref(body);
		return err_set(e, SP_EINVAL, "body is not a JSON object");
	}
	v = json_object_get(body, "sync");
	if (v && !json_is_boolean(v)) {
		json_decref(body);
		return err_set(e, SP_EINVAL, "field 'sync' is not a boolean");
	}
	if (v)
		r->sync_first = json_is_true(v);
	json_decref(body);
	return 0;
}

static enum MHD_Result handle_op(struct agentd *a, struct reqctx *r, enum op_kind op, int64_t id)
{
	struct err e = ERR_INIT;
	struct reqctx **tail;
	struct ct *c = ct_find(a, id);

	if (parse_sync_flag(r, &e) < 0)
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
	ct_advance(a, c);
	if (r->resp)
		return send_json(r->conn, r->status, json_loads(r->resp, 0, NULL));
	r->suspended = 1;
	MHD_suspend_connection(r->conn);
	state_save(a);
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
		struct ct *c = ct_find(a, id);

		return c ? send_json(conn, 200, json_pack("{so}", "container", ct_json(c)))
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
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
	if (r->too_large)
		return send_err(conn, 413, "too_large", "request body is larger than %d bytes",
				AGENTWIRE_REQUEST_MAX);
	if (authorize(a, r, method, url, &ret) < 0)
		return ret;
	r->in_handler = 1;
	ret = route(a, r, url, method);
	r->in_handler = 0;
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
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

/* ---- lifecycle ----------------------------------------------------------------------- */

static int parse_listen(const char *s, char *addr, size_t addrsz, int *port, struct err *e)
{
	const char *colon = strrchr(s, ':');
	struct in_addr ia;
	char host[INET_ADDRSTRLEN];
	char *end;
	long p;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return err_set(e, SP_EINVAL, "listen address '%s' is not ADDR:PORT", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 0 || p > 65535 ||
	    inet_pton(AF_INET, host, &ia) != 1)
		return err_set(e, SP_EINVAL, "listen address '%s' is not IPv4ADDR:PORT", s);
	str_copy(addr, addrsz, host);
	*port = (int)p;
	return 0;
}

static int mkdirs(const char *base, struct err *e)
{
	static const char *const subs[] = { "", "/workspaces", "/logs" };
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", base, subs[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return err_set(e, SP_EIO, "could not create %s: %s", path, strerror(errno));
	}
	return 0;
}

static int validate(const struct agentd_config *c, struct err *e)
{
	static const char *const job_names[] = { "dir", "bucket", "prefix", "id", "name", NULL };

	if (c->capacity < 1 || c->capacity > AGENTD_CAPACITY_MAX)
		return err_set(e, SP_EINVAL, "capacity must be 1..%d", AGENTD_CAPACITY_MAX);
	if (c->port_lo < 1 || c->port_hi > 65535 || c->port_lo > c->port_hi)
		return err_set(e, SP_EINVAL, "port range %d-%d is not valid", c->port_lo, c->port_hi);
	if (c->sync_interval_s < 0 || c->sync_timeout_s < 1 || c->drain_timeout_s < 0 ||
	    c->stop_grace_s < 0)
		return err_set(e, SP_EINVAL, "intervals and timeouts must be positive");
	if (!c->data_dir || !*c->data_dir || strlen(c->data_dir) > PATH_MAX - 64)
		return err_set(e, SP_EINVAL, "data dir is empty or too long");
	if (c->sync_cmd && cmdtpl_check(c->sync_cmd, job_names, e) < 0)
		return err_prefix(e, "sync command");
	if (c->restore_cmd && cmdtpl_check(c->restore_cmd, job_names, e) < 0)
		return err_prefix(e, "restore command");
	return 0;
}

static int runtime_open(struct agentd *a, struct err *e)
{
	if (!strcmp(a->cfg.runtime, "process")) {
		struct rt_process_opts po;

		if (!a->cfg.workspace_cmd) {
			if (!a->cfg.self_exe)
				return err_set(e, SP_EINVAL, "no workspace command and no path to self");
			snprintf(a->builtin_cmd, sizeof(a->builtin_cmd),
				 "exec '%s' workspace --listen {addr}:{port} --dir {dir}",
				 a->cfg.self_exe);
			po.command = a->builtin_cmd;
		} else {
			po.command = a->cfg.workspace_cmd;
		}
		a->rt = rt_process_new(&po, e);
	} else if (!strcmp(a->cfg.runtime, "docker")) {
		struct rt_docker_opts d;

		memset(&d, 0, sizeof(d));
		d.socket_path = a->cfg.docker_socket && *a->cfg.docker_socket ?
			a->cfg.docker_socket : NULL;
		d.base_url = a->cfg.docker_url;
		d.container_port = a->cfg.docker_port;
		d.mount_point = "/home/coder/project";
		d.timeout_ms = 30000;
		a->rt = rt_docker_new(&d, e);
	} else {
		return err_set(e, SP_EINVAL, "unknown runtime '%s' (process or docker)",
			       a->cfg.runtime);
	}
	return a->rt ? 0 : e ? e->code : SP_EINVAL;
}

static int mhd_open(struct agentd *a, int port, struct err *e)
{
	struct sockaddr_in sin;
	const union MHD_DaemonInfo *di;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, a->addr, &sin.sin_addr);
	a->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)port,
				  NULL, NULL, on_request, a,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)AGENTD_CONNECTIONS_MAX,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
				  MHD_OPTION_END);
	if (!a->mhd)
		return err_set(e, SP_EIO, "could not listen on %s:%d (in use?)", a->addr, port);
	di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
	a->port = di ? di->port : port;
	return 0;
}

struct agentd *agentd_new(const struct agentd_config *c, struct err *e)
{
	struct agentd *a = calloc(1, sizeof(*a));
	int port = 0, rc;

	if (!a) {
		err_set(e, SP_ENOMEM, "out of memory");
		return NULL;
	}
	a->cfg = *c;
	rc = validate(c, e);
	if (!rc)
		rc = parse_listen(c->listen, a->addr, sizeof(a->addr), &port, e);
	if (!rc)
		rc = agentsig_key_load(&a->key, c->secret_file, e);
	if (!rc)
		rc = mkdirs(c->data_dir, e);
	if (!rc && !(a->replay = agentsig_replay_new(AGENTSIG_REPLAY_MAX)))
		rc = err_set(e, SP_ENOMEM, "out of memory");
	if (!rc && !(a->multi = curl_multi_init()))
		rc = err_set(e, SP_ENOMEM, "could not create curl multi handle");
	if (!rc)
		rc = runtime_open(a, e);
	if (!rc) {
		snprintf(a->state_path, sizeof(a->state_path), "%s/" STATE_FILE, c->data_dir);
		rc = state_load(a, e);
	}
	if (!rc)
		rc = mhd_open(a, port, e);
	if (rc) {
		agentd_free(a);
		return NULL;
	}
	return a;
}

int agentd_port(const struct agentd *a)
{
	return a->port;
}

void agentd_free(struct agentd *a)
{
	if (!a)
		return;
	if (a->mhd)
		MHD_stop_daemon(a->mhd);
	while (a->nct)
		ct_free(a, a->cts[0]);
	if (a->multi)
		curl_multi_cleanup(a->multi);
	runtime_free(a->rt);
	agentsig_replay_free(a->replay);
	agentsig_key_wipe(&a->key);
	free(a);
}

static void on_signal(int sig)
{
	int saved = errno;
	char b = (char)sig;

	if (sig == SIGCHLD)
		sig_chld = 1;
	else
		sig_term = 1;
	if (sig_pipe[1] >= 0 && write(sig_pipe[1], &b, 1) < 0) {
		/* the pipe is full: the loop wakes up anyway */
	}
	errno = saved;
}

static int signals_install(struct err *e)
{
	struct sigaction sa;

	if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return err_set(e, SP_EIO, "could not create signal pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void drain_begin(struct agentd *a)
{
	MHD_socket ls;

	if (a->draining)
		return;
	a->draining = 1;
	a->drain_deadline = mono_ms() + (int64_t)a->cfg.drain_timeout_s * 1000;
	ls = MHD_quiesce_daemon(a->mhd);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	log_info("draining: no new connections, finishing %d in-flight requests",
		 a->live_reqs);
}

static int jobs_running(const struct agentd *a)
{
	size_t i;

	for (i = 0; i < a->nct; i++)
		if (a->cts[i]->job.pid)
			return 1;
	return 0;
}

/* Drain deadline passed: answer every waiting op so MHD can stop. */
static void drain_abort(struct agentd *a)
{
	struct reqctx *r;
	size_t i;

	for (i = 0; i < a->nct; i++)
		while ((r = op_pop(a->cts[i])) != NULL)
			op_fail(r, 503, "draining", "agent is shutting down");
}

static long loop_timeout(struct agentd *a, int64_t next_tick)
{
	MHD_UNSIGNED_LONG_LONG mt;
	int64_t t = next_tick - mono_ms();

	if (MHD_get_timeout(a->mhd, &mt) == MHD_YES && (int64_t)mt < t)
		t = (int64_t)mt;
	return t < 0 ? 0 : (long)t;
}

int agentd_run(struct agentd *a, struct err *e)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	struct curl_waitfd fds[2];
	int64_t next_tick = 0;
	char buf[64];
	size_t i;
	int rc;

	rc = signals_install(e);
	if (rc)
		return rc;
	if (!di)
		return err_set(e, SP_EINTERNAL, "libmicrohttpd has no epoll descriptor");
	log_info("listening addr=%s port=%d runtime=%s capacity=%d containers=%zu",
		 a->addr, a->port, a->rt->ops->name, a->cfg.capacity, a->nct);
	for (i = 0; i < a->nct; i++)
		if (a->cts[i]->phase == PH_RESTORING)
			ct_restore(a, a->cts[i]);
	for (;;) {
		fds[0].fd = di->epoll_fd;
		fds[0].events = CURL_WAIT_POLLIN;
		fds[0].revents = 0;
		fds[1].fd = sig_pipe[0];
		fds[1].events = CURL_WAIT_POLLIN;
		fds[1].revents = 0;
		curl_multi_poll(a->multi, fds, 2, (int)loop_timeout(a, next_tick), NULL);
		while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
			;
		if (sig_chld) {
			sig_chld = 0;
			reap(a);
		}
		if (sig_term)
			drain_begin(a);
		probes_collect(a);
		if (mono_ms() >= next_tick) {
			supervise(a);
			next_tick = mono_ms() + TICK_MS;
		}
		MHD_run(a->mhd);
		if (a->draining && a->live_reqs == 0 && !jobs_running(a))
			break;
		if (a->draining && mono_ms() >= a->drain_deadline) {
			log_warnx("drain deadline passed with %d requests in flight", a->live_reqs);
			drain_abort(a);
			MHD_run(a->mhd);
			break;
		}
	}
	state_save(a);
	log_info("stopped; %zu workspaces left running", active_count(a));
	return 0;
}
