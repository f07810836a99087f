#include "agentwire.h"

#include <string.h>

#include "../model/strbuf.h"
#include "../model/banned.h"

json_t *agentwire_req_encode(const struct container_req *r)
{
	return json_pack("{sI ss ss si si ss ss sb}",
			 "workspace_id", (json_int_t)r->workspace_id,
			 "workspace_name", r->workspace_name,
			 "image", r->image,
			 "cpu_milli", r->cpu_milli,
			 "memory_mib", r->memory_mib,
			 "bucket", r->bucket,
			 "prefix", r->prefix,
			 "expect_snapshot", r->expect_snapshot ? 1 : 0);
}

/* Copy an optional string field into a fixed array. */
static int get_str(const json_t *j, const char *key, char *dst, size_t dstsz, int required,
		   struct err *e)
{
	const json_t *v = json_object_get(j, key);

	if (!v || json_is_null(v)) {
		if (required)
			return err_set(e, SP_EINVAL, "field '%s' is missing", key);
		dst[0] = '\0';
		return 0;
	}
	if (!json_is_string(v))
		return err_set(e, SP_EINVAL, "field '%s' is not a string", key);
	if (json_string_length(v) >= dstsz || strlen(json_string_value(v)) != json_string_length(v))
		return err_set(e, SP_ELIMIT, "field '%s' is longer than %zu bytes or holds NUL",
			       key, dstsz - 1);
	return str_copy(dst, dstsz, json_string_value(v));
}

static int get_int(const json_t *j, const char *key, int64_t lo, int64_t hi, int64_t *out,
		   int required, struct err *e)
{
	const json_t *v = json_object_get(j, key);

	if (!v || json_is_null(v)) {
		if (required)
			return err_set(e, SP_EINVAL, "field '%s' is missing", key);
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v))
		return err_set(e, SP_EINVAL, "field '%s' is not an integer", key);
	if (json_integer_value(v) < lo || json_integer_value(v) > hi)
		return err_set(e, SP_EINVAL, "field '%s' is out of range", key);
	*out = json_integer_value(v);
	return 0;
}

static int get_bool(const json_t *j, const char *key, int *out, struct err *e)
{
	const json_t *v = json_object_get(j, key);

	if (!v || json_is_null(v)) {
		*out = 0;
		return 0;
	}
	if (!json_is_boolean(v))
		return err_set(e, SP_EINVAL, "field '%s' is not a boolean", key);
	*out = json_is_true(v);
	return 0;
}

int agentwire_req_decode(const json_t *j, struct container_req *out, struct err *e)
{
	struct container_req r;
	int64_t id = 0, cpu = 0, mem = 0;
	int rc;

	memset(&r, 0, sizeof(r));
	if (!json_is_object(j))
		return err_set(e, SP_EINVAL, "container request is not a JSON object");
	rc = get_int(j, "workspace_id", 1, INT64_MAX, &id, 1, e);
	if (!rc)
		rc = get_str(j, "workspace_name", r.workspace_name, sizeof(r.workspace_name), 0, e);
	if (!rc)
		rc = get_str(j, "image", r.image, sizeof(r.image), 0, e);
	if (!rc)
		rc = get_int(j, "cpu_milli", 0, 1000000, &cpu, 0, e);
	if (!rc)
		rc = get_int(j, "memory_mib", 0, 16 * 1024 * 1024, &mem, 0, e);
	if (!rc)
		rc = get_str(j, "bucket", r.bucket, sizeof(r.bucket), 0, e);
	if (!rc)
		rc = get_str(j, "prefix", r.prefix, sizeof(r.prefix), 0, e);
	if (!rc)
		rc = get_bool(j, "expect_snapshot", &r.expect_snapshot, e);
	if (rc)
		return rc;
	r.workspace_id = id;
	r.cpu_milli = (int)cpu;
	r.memory_mib = (int)mem;
	*out = r;
	return 0;
}

json_t *agentwire_container_encode(const struct obs_container *c)
{
	return json_pack("{ss sI ss sb si sI sI ss ss sb si ss}",
			 "name", c->name,
			 "workspace_id", (json_int_t)c->workspace_id,
			 "state", container_state_name(c->state),
			 "ready", c->ready ? 1 : 0,
			 "port", c->port,
			 "started_at", (json_int_t)c->started_at,
			 "last_sync_at", (json_int_t)c->last_sync_at,
			 "last_sync", sync_result_name(c->last_sync),
			 "pending", container_op_name(c->pending),
			 "restore_failed", c->restore_failed ? 1 : 0,
			 "restarts", c->restarts,
			 "message", c->message);
}

int agentwire_container_decode(const json_t *j, struct obs_container *out, struct err *e)
{
	struct obs_container c;
	char state[16], sync[16], pending[16];
	int64_t id = 0, port = 0, restarts = 0;
	int rc;

	memset(&c, 0, sizeof(c));
	if (!json_is_object(j))
		return err_set(e, SP_EINVAL, "container is not a JSON object");
	rc = get_str(j, "name", c.name, sizeof(c.name), 1, e);
	if (!rc)
		rc = get_int(j, "workspace_id", 0, INT64_MAX, &id, 1, e);
	if (!rc)
		rc = get_str(j, "state", state, sizeof(state), 1, e);
	if (!rc && container_state_parse(state, &c.state) < 0)
		rc = err_set(e, SP_EINVAL, "field 'state' has unknown value '%s'", state);
	if (!rc)
		rc = get_bool(j, "ready", &c.ready, e);
	if (!rc)
		rc = get_int(j, "port", 0, 65535, &port, 0, e);
	if (!rc)
		rc = get_int(j, "started_at", 0, INT64_MAX, &c.started_at, 0, e);
	if (!rc)
		rc = get_int(j, "last_sync_at", 0, INT64_MAX, &c.last_sync_at, 0, e);
	if (!rc)
		rc = get_str(j, "last_sync", sync, sizeof(sync), 0, e);
	if (!rc && !sync[0])
		c.last_sync = SYNC_NONE;
	else if (!rc && sync_result_parse(sync, &c.last_sync) < 0)
		rc = err_set(e, SP_EINVAL, "field 'last_sync' has unknown value '%s'", sync);
	if (!rc)   /* absent (an older agent): nothing pending */
		rc = get_str(j, "pending", pending, sizeof(pending), 0, e);
	if (!rc && !pending[0])
		c.pending = COP_NONE;
	else if (!rc && container_op_parse(pending, &c.pending) < 0)
		rc = err_set(e, SP_EINVAL, "field 'pending' has unknown value '%s'", pending);
	if (!rc)
		rc = get_bool(j, "restore_failed", &c.restore_failed, e);
	if (!rc)
		rc = get_int(j, "restarts", 0, INT32_MAX, &restarts, 0, e);
	if (!rc)
		rc = get_str(j, "message", c.message, sizeof(c.message), 0, e);
	if (rc)
		return rc;
	c.workspace_id = id;
	c.port = (int)port;
	c.restarts = (int)restarts;
	*out = c;
	return 0;
}

int agentwire_error_code(long http_status, const char *code)
{
	static const struct {
		const char *code;
		int sp;
	} map[] = {
		{ "stale_epoch", SP_EFENCED },   { "not_found", SP_ENOTFOUND },
		{ "busy", SP_EBUSY },            { "at_capacity", SP_EBUSY },
		{ "restore_failed", SP_ECONFLICT }, { "conflict", SP_ECONFLICT },
		{ "sync_failed", SP_EUNAVAIL },  { "runtime_failed", SP_EUNAVAIL },
		{ "invalid", SP_EINVAL },        { "too_large", SP_ELIMIT },
		{ "bad_signature", SP_EDENIED }, { "clock_skew", SP_EDENIED },
		{ "replay", SP_EDENIED },        { "missing_auth", SP_EDENIED },
		{ "draining", SP_EUNAVAIL },     { "internal", SP_EINTERNAL },
	};
	size_t i;

	for (i = 0; code && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(code, map[i].code))
			return map[i].sp;
	if (http_status == 409)
		return SP_ECONFLICT;
	if (http_status == 401 || http_status == 403)
		return SP_EDENIED;
	if (http_status == 404)
		return SP_ENOTFOUND;
	if (http_status == 413)
		return SP_ELIMIT;
	if (http_status == 429)
		return SP_ETHROTTLED;
	if (http_status >= 500)
		return SP_EUNAVAIL;
	if (http_status >= 400)
		return SP_EINVAL;
	return SP_EPROTO;
}
