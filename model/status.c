#include "status.h"

#include <string.h>

#include "strbuf.h"
#include "banned.h"

static const char *const cond_names[COND_MAX] = {
	"Scheduled", "InstanceReady", "ContainerReady", "FilesRestored", "FilesSynced", "Ready",
};
static const char *const cstat_names[CSTAT_MAX] = { "Unknown", "True", "False" };
static const char *const phase_names[PHASE_MAX] = {
	"PENDING", "ALLOCATING_VM", "BOOTING_CONTAINER", "READY", "STOPPING",
	"STOPPED", "DELETING", "DELETED", "FAILED",
};

const char *cond_type_name(enum cond_type t)
{
	return ((int)t >= 0 && t < COND_MAX) ? cond_names[t] : "Unknown";
}

const char *cond_status_name(enum cond_status s)
{
	return ((int)s >= 0 && s < CSTAT_MAX) ? cstat_names[s] : "Unknown";
}

const char *ws_phase_name(enum ws_phase p)
{
	return ((int)p >= 0 && p < PHASE_MAX) ? phase_names[p] : "UNKNOWN";
}

static int parse_in(const char *const *names, int n, const char *s, int *out)
{
	int i;

	for (i = 0; i < n; i++) {
		if (!strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	}
	return SP_EINVAL;
}

int cond_type_parse(const char *s, enum cond_type *out)
{
	int v, rc = parse_in(cond_names, COND_MAX, s, &v);

	if (!rc)
		*out = (enum cond_type)v;
	return rc;
}

int cond_status_parse(const char *s, enum cond_status *out)
{
	int v, rc = parse_in(cstat_names, CSTAT_MAX, s, &v);

	if (!rc)
		*out = (enum cond_status)v;
	return rc;
}

int ws_phase_parse(const char *s, enum ws_phase *out)
{
	int v, rc = parse_in(phase_names, PHASE_MAX, s, &v);

	if (!rc)
		*out = (enum ws_phase)v;
	return rc;
}

void workspace_status_init(struct workspace_status *st, int64_t workspace_id, int64_t now)
{
	int i;

	memset(st, 0, sizeof(*st));
	st->workspace_id = workspace_id;
	st->phase = PHASE_PENDING;
	st->phase_since = now;
	for (i = 0; i < COND_MAX; i++) {
		st->conds[i].status = CSTAT_UNKNOWN;
		str_copy(st->conds[i].reason, sizeof(st->conds[i].reason), "NotYetObserved");
		st->conds[i].last_transition = now;
	}
}

int status_set_cond(struct workspace_status *st, enum cond_type t, enum cond_status s,
		    const char *reason, const char *message, int64_t now)
{
	struct condition *c = &st->conds[t];
	int changed = 0;

	if (c->status != s) {
		c->status = s;
		c->last_transition = now;
		changed = 1;
	}
	if (strcmp(c->reason, reason)) {
		str_copy(c->reason, sizeof(c->reason), reason);
		changed = 1;
	}
	if (strcmp(c->message, message ? message : "")) {
		str_copy(c->message, sizeof(c->message), message ? message : "");
		changed = 1;
	}
	return changed;
}

static int cond_differs(const struct condition *a, const struct condition *b)
{
	return a->status != b->status || a->last_transition != b->last_transition ||
	       strcmp(a->reason, b->reason) || strcmp(a->message, b->message);
}

int workspace_status_differs(const struct workspace_status *a, const struct workspace_status *b)
{
	int i;

	if (a->workspace_id != b->workspace_id ||
	    a->observed_generation != b->observed_generation || a->phase != b->phase ||
	    strcmp(a->instance_id, b->instance_id) || strcmp(a->address, b->address) ||
	    strcmp(a->url, b->url) || a->error_class != b->error_class ||
	    a->attempts != b->attempts || a->next_attempt_at != b->next_attempt_at ||
	    a->phase_since != b->phase_since ||
	    a->reconcile_handled_at != b->reconcile_handled_at ||
	    a->last_sync_at != b->last_sync_at || a->restore_failed != b->restore_failed ||
	    a->has_snapshot != b->has_snapshot)
		return 1;
	for (i = 0; i < COND_MAX; i++)
		if (cond_differs(&a->conds[i], &b->conds[i]))
			return 1;
	return 0;
}
