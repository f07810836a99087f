/*
 * state.c - <data-dir>/state.json: every container record and the highest
 * fencing epoch, rewritten atomically after each change and loaded (with
 * re-adoption of live workspaces) at start.
 */
#include "agentd_int.h"

#include "../model/banned.h"

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
			"phase", agentd_phase_name(c->phase),
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
void agentd_state_save(struct agentd *a)
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
		if (!strcmp(s, agentd_phase_name(i))) {
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
	c->run_since = agentd_mono_ms();
	c->next_sync = agentd_mono_ms() + (int64_t)a->cfg.sync_interval_s * 1000;
	a->cts[a->nct++] = c;
	return 0;
}

/* Load the state file if there is one; containers found are re-adopted. */
int agentd_state_load(struct agentd *a, struct err *e)
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
	if (json_integer_value(json_object_get(root, "version")) != 1) {
		rc = err_set(e, SP_ESCHEMA, "state file %s has an unknown version", a->state_path);
		goto out;
	}
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


int agentd_kill_workspaces(const char *data_dir, int *killed, struct err *e)
{
	struct agentd *a = calloc(1, sizeof(*a));
	int rc;

	*killed = 0;
	if (!a)
		return err_set(e, SP_ENOMEM, "out of memory");
	a->cfg.data_dir = data_dir;
	snprintf(a->state_path, sizeof(a->state_path), "%s/" STATE_FILE, data_dir);
	rc = agentd_state_load(a, e);
	while (a->nct) {
		struct ct *c = a->cts[0];
		pid_t pid = c->h.pid;

		/* only a group leader of its own session: never a recycled pid */
		if (!rc && pid > 0 && !c->h.exited && kill(pid, 0) == 0 && getpgid(pid) == pid &&
		    getsid(pid) == pid && kill(-pid, SIGKILL) == 0)
			(*killed)++;
		agentd_ct_free(a, c);
	}
	free(a);
	return rc;
}
