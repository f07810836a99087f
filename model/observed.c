#include "observed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "banned.h"

const char *inst_lifecycle_name(enum inst_lifecycle lc)
{
	static const char *const names[LC_MAX] = {
		"Pending", "InService", "Terminating", "Terminated", "Other",
	};

	if ((int)lc < 0 || lc >= LC_MAX)
		return "Other";
	return names[lc];
}

enum inst_lifecycle inst_lifecycle_parse(const char *aws)
{
	if (!strncmp(aws, "Pending", 7))
		return LC_PENDING;
	if (!strcmp(aws, "InService"))
		return LC_IN_SERVICE;
	if (!strcmp(aws, "Terminated"))
		return LC_TERMINATED;
	if (!strncmp(aws, "Terminating", 11))
		return LC_TERMINATING;
	return LC_OTHER;
}

#define GROW(arr, n, alloc)                                                  \
	do {                                                                 \
		if ((n) == (alloc)) {                                        \
			size_t na_ = (alloc) ? (alloc) * 2 : 16;             \
			void *p_ = realloc((arr), na_ * sizeof(*(arr)));     \
			if (!p_)                                             \
				return NULL;                                 \
			(arr) = p_;                                          \
			(alloc) = na_;                                       \
		}                                                            \
	} while (0)

void obs_group_init(struct obs_group *g)
{
	memset(g, 0, sizeof(*g));
}

void obs_group_release(struct obs_group *g)
{
	if (!g)
		return;
	free(g->instances);
	obs_group_init(g);
}

struct obs_instance *obs_group_add(struct obs_group *g)
{
	struct obs_instance *i;

	GROW(g->instances, g->ninstances, g->alloc);
	i = &g->instances[g->ninstances++];
	memset(i, 0, sizeof(*i));
	return i;
}

const struct obs_instance *obs_group_find(const struct obs_group *g, const char *id)
{
	size_t i;

	for (i = 0; i < g->ninstances; i++)
		if (!strcmp(g->instances[i].id, id))
			return &g->instances[i];
	return NULL;
}

const char *container_state_name(enum container_state s)
{
	static const char *const names[CS_MAX] = {
		"created", "running", "stopped", "exited", "failed",
	};

	if ((int)s < 0 || s >= CS_MAX)
		return "unknown";
	return names[s];
}

int container_state_parse(const char *s, enum container_state *out)
{
	int i;

	for (i = 0; i < CS_MAX; i++) {
		if (!strcmp(s, container_state_name((enum container_state)i))) {
			*out = (enum container_state)i;
			return 0;
		}
	}
	return SP_EINVAL;
}

const char *sync_result_name(enum sync_result r)
{
	static const char *const names[SYNC_MAX] = { "none", "ok", "failed", "running" };

	if ((int)r < 0 || r >= SYNC_MAX)
		return "unknown";
	return names[r];
}

int sync_result_parse(const char *s, enum sync_result *out)
{
	int i;

	for (i = 0; i < SYNC_MAX; i++) {
		if (!strcmp(s, sync_result_name((enum sync_result)i))) {
			*out = (enum sync_result)i;
			return 0;
		}
	}
	return SP_EINVAL;
}

const char *container_op_name(enum container_op o)
{
	static const char *const names[COP_MAX] = { "none", "sync", "stop", "remove" };

	if ((int)o < 0 || o >= COP_MAX)
		return "unknown";
	return names[o];
}

int container_op_parse(const char *s, enum container_op *out)
{
	int i;

	for (i = 0; i < COP_MAX; i++) {
		if (!strcmp(s, container_op_name((enum container_op)i))) {
			*out = (enum container_op)i;
			return 0;
		}
	}
	return SP_EINVAL;
}

void obs_agent_init(struct obs_agent *a)
{
	memset(a, 0, sizeof(*a));
}

void obs_agent_release(struct obs_agent *a)
{
	if (!a)
		return;
	free(a->containers);
	obs_agent_init(a);
}

struct obs_container *obs_agent_add(struct obs_agent *a)
{
	struct obs_container *c;

	GROW(a->containers, a->ncontainers, a->alloc);
	c = &a->containers[a->ncontainers++];
	memset(c, 0, sizeof(*c));
	return c;
}

int container_name_for(int64_t workspace_id, char *out, size_t outsz)
{
	int n = snprintf(out, outsz, "spinup-%lld", (long long)workspace_id);

	return (n < 0 || (size_t)n >= outsz) ? SP_ELIMIT : 0;
}
