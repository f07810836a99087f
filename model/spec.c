#include "spec.h"

#include <string.h>

#include "err.h"
#include "banned.h"

const char *ws_state_name(enum ws_state s)
{
	static const char *const names[WS_STATE_MAX] = { "Running", "Stopped" };

	if ((int)s < 0 || s >= WS_STATE_MAX)
		return NULL;
	return names[s];
}

int ws_state_parse(const char *s, enum ws_state *out)
{
	int i;

	for (i = 0; i < WS_STATE_MAX; i++) {
		if (!strcmp(s, ws_state_name((enum ws_state)i))) {
			*out = (enum ws_state)i;
			return 0;
		}
	}
	return SP_EINVAL;
}

void pool_spec_defaults(struct pool_spec *p)
{
	memset(p, 0, sizeof(*p));
	p->slots_per_instance = 4;
	p->warm_instances = 0;
	p->min_instances = 0;
	p->max_instances = 10;
	p->agent_port = 7070;
}

void workspace_spec_defaults(struct workspace_spec *w)
{
	memset(w, 0, sizeof(*w));
	w->state = WS_STATE_RUNNING;
	w->cpu_milli = 1000;
	w->memory_mib = 2048;
	w->idle_timeout_s = 3600;
}

int spec_name_valid(const char *name, struct err *e)
{
	size_t i, n = strlen(name);

	if (n == 0)
		return err_set(e, SP_EINVAL, "name is empty");
	if (n > SPEC_NAME_MAX)
		return err_set(e, SP_EINVAL, "name is %zu characters, at most %d allowed",
			       n, SPEC_NAME_MAX);
	for (i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return err_set(e, SP_EINVAL,
				       "'%s' is not a DNS label: only lowercase letters, digits and '-' are allowed",
				       name);
	}
	if (name[0] == '-' || name[n - 1] == '-')
		return err_set(e, SP_EINVAL,
			       "'%s' is not a DNS label: it must start and end with a letter or digit",
			       name);
	return 0;
}

static int range(struct err *e, const char *field, long v, long lo, long hi)
{
	if (v < lo || v > hi)
		return err_set(e, SP_EINVAL, "%s: %ld is out of range %ld..%ld",
			       field, v, lo, hi);
	return 0;
}

int pool_spec_validate(const struct pool_spec *p, struct err *e)
{
	int rc = spec_name_valid(p->name, e);

	if (!rc && !p->asg_name[0])
		rc = err_set(e, SP_EINVAL, "asgName: required");
	if (!rc && !p->region[0])
		rc = err_set(e, SP_EINVAL, "region: required");
	if (!rc)
		rc = range(e, "instanceSlots", p->slots_per_instance, SPEC_SLOTS_MIN, SPEC_SLOTS_MAX);
	if (!rc)
		rc = range(e, "warmInstances", p->warm_instances, 0, SPEC_WARM_MAX);
	if (!rc)
		rc = range(e, "minInstances", p->min_instances, 0, SPEC_INSTANCES_MAX);
	if (!rc)
		rc = range(e, "maxInstances", p->max_instances, 0, SPEC_INSTANCES_MAX);
	if (!rc && p->min_instances > p->max_instances)
		rc = err_set(e, SP_EINVAL, "minInstances: %d is greater than maxInstances %d",
			     p->min_instances, p->max_instances);
	if (!rc)
		rc = range(e, "agentPort", p->agent_port, 1, 65535);
	return rc;
}

int workspace_spec_validate(const struct workspace_spec *w, struct err *e)
{
	int rc = spec_name_valid(w->name, e);

	if (!rc && !w->owner[0])
		rc = err_set(e, SP_EINVAL, "owner: required");
	if (!rc && spec_name_valid(w->pool, e))
		rc = err_prefix(e, "pool");
	if (!rc && (int)w->state >= WS_STATE_MAX)
		rc = err_set(e, SP_EINVAL, "state: must be Running or Stopped");
	if (!rc)
		rc = range(e, "resources.cpu", w->cpu_milli, SPEC_CPU_MILLI_MIN, SPEC_CPU_MILLI_MAX);
	if (!rc)
		rc = range(e, "resources.memoryMiB", w->memory_mib, SPEC_MEMORY_MIB_MIN,
			   SPEC_MEMORY_MIB_MAX);
	if (!rc)
		rc = range(e, "idleTimeoutSeconds", w->idle_timeout_s, SPEC_IDLE_TIMEOUT_MIN_S,
			   SPEC_IDLE_TIMEOUT_MAX_S);
	if (!rc)
		rc = range(e, "labels", w->nlabels, 0, SPEC_LABELS_MAX);
	return rc;
}
