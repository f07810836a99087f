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

int spec_text_valid(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++)
		if (*p < ' ' || *p == 0x7f)
			return 0;
	return 1;
}

int spec_token_valid(const char *s)
{
	const unsigned char *p;

	if (!s[0])
		return 0;
	for (p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return 0;
	return 1;
}

int spec_bucket_valid(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 3 || n > SPEC_BUCKET_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

int spec_label_key_valid(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > SPEC_LABEL_KEY_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '/'))
			return 0;
	}
	return 1;
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

	if (!rc && !spec_token_valid(p->asg_name))
		rc = err_set(e, SP_EINVAL, "asgName: must be non-empty printable text without spaces");
	if (!rc && !spec_token_valid(p->region))
		rc = err_set(e, SP_EINVAL, "region: must be non-empty printable text without spaces");
	if (!rc && p->default_image[0] && !spec_token_valid(p->default_image))
		rc = err_set(e, SP_EINVAL, "defaultImage: must be printable text without spaces");
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
	int i, j;

	if (!rc && (!w->owner[0] || !spec_text_valid(w->owner)))
		rc = err_set(e, SP_EINVAL, "owner: must be non-empty text without control characters");
	if (!rc && spec_name_valid(w->pool, e))
		rc = err_prefix(e, "pool");
	if (!rc && w->template_name[0] && spec_name_valid(w->template_name, e))
		rc = err_prefix(e, "template");
	if (!rc && w->image[0] && !spec_token_valid(w->image))
		rc = err_set(e, SP_EINVAL, "image: must be printable text without spaces");
	if (!rc && w->bucket[0] && !spec_bucket_valid(w->bucket))
		rc = err_set(e, SP_EINVAL, "storage.bucket: '%s' is not a valid S3 bucket name", w->bucket);
	if (!rc && !spec_text_valid(w->prefix))
		rc = err_set(e, SP_EINVAL, "storage.prefix: must not contain control characters");
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
	for (i = 0; !rc && i < w->nlabels; i++) {
		if (!spec_label_key_valid(w->labels[i].key))
			rc = err_set(e, SP_EINVAL, "labels: invalid key '%s'", w->labels[i].key);
		else if (!spec_text_valid(w->labels[i].value))
			rc = err_set(e, SP_EINVAL, "labels.%s: must not contain control characters",
				     w->labels[i].key);
		for (j = 0; !rc && j < i; j++)
			if (!strcmp(w->labels[i].key, w->labels[j].key))
				rc = err_set(e, SP_EINVAL, "labels: duplicate key '%s'", w->labels[i].key);
	}
	return rc;
}
