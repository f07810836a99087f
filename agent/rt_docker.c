/*
 * The "docker" runtime: Docker Engine API over its unix socket (libcurl,
 * CURLOPT_UNIX_SOCKET_PATH). Containers are addressed by their deterministic
 * name "spinup-<workspace id>" and carry the label spinup.workspace-id, so a
 * restarted agent finds them again; create of an existing name (409) adopts
 * the container when its label matches.
 *
 * Each Engine call blocks for at most opts.timeout_ms, except two: a
 * graceful stop allows DK_STOP_GRACE_S more (the Engine waits that long
 * before it kills), and the inline pull after a create that still answers
 * 404 allows 10 * timeout_ms. The agent's loop accepts that for a local
 * socket. A pull before a start, which can take minutes, runs as a child
 * process ("spinup-agent docker-pull", see prepare) instead.
 */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cmdtpl.h"
#include "../model/strbuf.h"
#include "../model/banned.h"

#define DK_RESPONSE_MAX (1 << 20)   /* bytes of an Engine API response we keep */
#define DK_LABEL "spinup.workspace-id"
#define DK_STOP_GRACE_S 10           /* stop?t=: the Engine's SIGTERM-to-SIGKILL wait */
#define DK_INLINE_PULL_FACTOR 10     /* the inline pull's timeout, in call timeouts */

struct rt_docker {
	char *self_exe;
	char *socket_path;
	char *base_url;
	int container_port;
	char *mount_point;
	long timeout_ms;
};

static size_t dk_write(char *ptr, size_t size, size_t n, void *ud)
{
	struct strbuf *sb = ud;

	if (strbuf_add(sb, ptr, size * n) < 0)
		return 0;
	return size * n;
}

/*
 * One Engine API call. body may be NULL. Fills *status and *out (parsed JSON
 * or NULL when the body is empty or not JSON). 0, or SP_EIO/SP_ETIMEOUT when
 * there was no HTTP answer.
 */
static int dk_call(struct rt_docker *d, const char *method, const char *path, json_t *body,
		   long timeout_ms, long *status, json_t **out, struct err *e)
{
	struct strbuf url = STRBUF_INIT, resp;
	struct curl_slist *hdrs = NULL;
	char *text = NULL;
	CURLcode cc;
	CURL *h;
	int rc = 0;

	*out = NULL;
	strbuf_init(&resp, DK_RESPONSE_MAX);
	h = curl_easy_init();
	if (!h || strbuf_addf(&url, "%s%s", d->base_url, path) < 0) {
		rc = err_set(e, SP_ENOMEM, "docker: out of memory");
		goto out;
	}
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, text ? text : "{}");
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	if (d->socket_path)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->socket_path);
	curl_easy_setopt(h, CURLOPT_URL, url.buf);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dk_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		rc = err_set(e, cc == CURLE_OPERATION_TIMEDOUT ? SP_ETIMEOUT : SP_EIO,
			     "docker %s %s: %s", method, path, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (resp.len)
		*out = json_loadb(resp.buf, resp.len, 0, NULL);
out:
	curl_slist_free_all(hdrs);
	free(text);
	if (h)
		curl_easy_cleanup(h);
	strbuf_release(&url);
	strbuf_release(&resp);
	return rc;
}

/* Turn a non-success Engine API answer into an error naming its message. */
static int dk_fail(long status, json_t *body, const char *what, const char *name, struct err *e)
{
	const char *msg = json_string_value(json_object_get(body, "message"));
	int code = status == 404 ? SP_ENOTFOUND : status == 409 ? SP_ECONFLICT :
		   status >= 500 ? SP_EUNAVAIL : SP_EINVAL;

	return err_set(e, code, "docker could not %s container %s: HTTP %ld%s%.200s", what, name,
		       status, msg ? ": " : "", msg ? msg : "");
}

static json_t *dk_create_body(struct rt_docker *d, const struct rt_spec *s)
{
	char portkey[32], hostport[16], bind[4200], id[24];
	json_t *j;

	snprintf(portkey, sizeof(portkey), "%d/tcp", d->container_port);
	snprintf(hostport, sizeof(hostport), "%d", s->port);
	snprintf(bind, sizeof(bind), "%s:%s", s->dir, d->mount_point);
	snprintf(id, sizeof(id), "%lld", (long long)s->workspace_id);
	j = json_pack("{ss s{ss ss} s{s{}} s{s[s] s{s[{ss ss}]} sI sI s{ss}}}",
		      "Image", s->req ? s->req->image : "",
		      "Labels", DK_LABEL, id, "spinup.workspace-name",
		      s->req ? s->req->workspace_name : "",
		      "ExposedPorts", portkey,
		      "HostConfig", "Binds", bind, "PortBindings", portkey, "HostIp", s->addr,
		      "HostPort", hostport,
		      "NanoCpus", (json_int_t)(s->req ? s->req->cpu_milli : 0) * 1000000,
		      "Memory", (json_int_t)(s->req ? s->req->memory_mib : 0) * 1024 * 1024,
		      "RestartPolicy", "Name", "no");
	return j;
}

static int dk_pull_image(struct rt_docker *d, const char *image, long timeout_ms,
			 struct err *e)
{
	struct strbuf path = STRBUF_INIT;
	char *img = curl_easy_escape(NULL, image, 0);
	json_t *out = NULL;
	long status = 0;
	int rc;

	if (!img || strbuf_addf(&path, "/images/create?fromImage=%s", img) < 0) {
		rc = err_set(e, SP_ENOMEM, "docker: out of memory");
		goto out;
	}
	rc = dk_call(d, "POST", path.buf, NULL, timeout_ms, &status, &out, e);
	if (!rc && status != 200)
		rc = dk_fail(status, out, "pull the image for", image, e);
out:
	curl_free(img);
	json_decref(out);
	strbuf_release(&path);
	return rc;
}

/* An existing container of that name: ours if its label carries our workspace id. */
static int dk_adopt(struct rt_docker *d, const struct rt_spec *s, struct rt_handle *h,
		    struct err *e)
{
	char path[128], id[24];
	json_t *out = NULL;
	const char *label, *cid;
	long status = 0;
	int rc;

	snprintf(path, sizeof(path), "/containers/%s/json", s->name);
	snprintf(id, sizeof(id), "%lld", (long long)s->workspace_id);
	rc = dk_call(d, "GET", path, NULL, d->timeout_ms, &status, &out, e);
	if (!rc && status != 200)
		rc = dk_fail(status, out, "inspect", s->name, e);
	if (!rc) {
		label = json_string_value(json_object_get(json_object_get(json_object_get(out,
			"Config"), "Labels"), DK_LABEL));
		cid = json_string_value(json_object_get(out, "Id"));
		if (!label || strcmp(label, id) || !cid)
			rc = err_set(e, SP_ECONFLICT, "docker container %s exists and is not "
				     "workspace %s's", s->name, id);
		else
			str_copy(h->id, sizeof(h->id), cid);
	}
	json_decref(out);
	return rc;
}

static int dk_create(struct rt_docker *d, const struct rt_spec *s, struct rt_handle *h,
		     struct err *e)
{
	char path[128];
	json_t *body = dk_create_body(d, s), *out = NULL;
	long status = 0;
	int rc, tries;

	if (!body)
		return err_set(e, SP_ENOMEM, "docker: out of memory");
	snprintf(path, sizeof(path), "/containers/create?name=%s", s->name);
	for (tries = 0; tries < 2; tries++) {
		json_decref(out);
		out = NULL;
		rc = dk_call(d, "POST", path, body, d->timeout_ms, &status, &out, e);
		if (rc || status != 404 || tries > 0)
			break;
		/* 404 on create: no such image here (removed since prepare) */
		rc = dk_pull_image(d, s->req ? s->req->image : "",
				   d->timeout_ms * DK_INLINE_PULL_FACTOR, e);
		if (rc)
			break;
	}
	if (!rc && status == 201 && json_is_string(json_object_get(out, "Id")))
		str_copy(h->id, sizeof(h->id), json_string_value(json_object_get(out, "Id")));
	else if (!rc && status == 409)
		rc = dk_adopt(d, s, h, e);
	else if (!rc)
		rc = dk_fail(status, out, "create", s->name, e);
	json_decref(out);
	json_decref(body);
	return rc;
}

static int dk_start(void *st, const struct rt_spec *s, struct rt_handle *h, struct err *e)
{
	struct rt_docker *d = st;
	char path[128];
	json_t *out = NULL;
	long status = 0;
	int rc;

	memset(h, 0, sizeof(*h));
	rc = dk_create(d, s, h, e);
	if (!rc) {
		snprintf(path, sizeof(path), "/containers/%s/start", s->name);
		rc = dk_call(d, "POST", path, NULL, d->timeout_ms, &status, &out, e);
	}
	if (!rc && status != 204 && status != 304)
		rc = dk_fail(status, out, "start", s->name, e);
	json_decref(out);
	return rc;
}

static int dk_status(void *st, const struct rt_spec *s, struct rt_handle *h,
		     struct rt_status *o, struct err *e)
{
	struct rt_docker *d = st;
	char path[128];
	json_t *out = NULL, *state;
	const char *txt;
	long status = 0;
	int rc;

	(void)h;
	memset(o, 0, sizeof(*o));
	o->exit_code = -1;
	snprintf(path, sizeof(path), "/containers/%s/json", s->name);
	rc = dk_call(d, "GET", path, NULL, d->timeout_ms, &status, &out, e);
	if (!rc && status == 404) {
		o->state = RT_GONE;
		snprintf(o->message, sizeof(o->message), "docker container %s is gone", s->name);
	} else if (!rc && status == 200) {
		state = json_object_get(out, "State");
		txt = json_string_value(json_object_get(state, "Status"));
		if (json_is_true(json_object_get(state, "Running"))) {
			o->state = RT_RUNNING;
		} else {
			o->state = RT_EXITED;
			if (json_is_integer(json_object_get(state, "ExitCode")))
				o->exit_code = (int)json_integer_value(json_object_get(state,
										   "ExitCode"));
			snprintf(o->message, sizeof(o->message),
				 "docker container %s is %s (exit code %d)", s->name,
				 txt ? txt : "not running", o->exit_code);
		}
	} else if (!rc) {
		rc = dk_fail(status, out, "inspect", s->name, e);
	}
	json_decref(out);
	return rc;
}

static int dk_stop(void *st, const struct rt_spec *s, struct rt_handle *h, int force,
		   struct err *e)
{
	struct rt_docker *d = st;
	char path[128];
	json_t *out = NULL;
	long status = 0;
	int rc;

	(void)h;
	if (force)
		snprintf(path, sizeof(path), "/containers/%s/kill", s->name);
	else
		snprintf(path, sizeof(path), "/containers/%s/stop?t=%d", s->name, DK_STOP_GRACE_S);
	/* the Engine answers a stop only after the container exited: up to the grace more */
	rc = dk_call(d, "POST", path, NULL, d->timeout_ms + (force ? 0 : DK_STOP_GRACE_S * 1000L),
		     &status, &out, e);
	/* 304 already stopped, 404 gone, 409 (kill) not running: all mean stopped */
	if (!rc && status != 204 && status != 304 && status != 404 && status != 409)
		rc = dk_fail(status, out, "stop", s->name, e);
	json_decref(out);
	return rc;
}

static int dk_remove(void *st, const struct rt_spec *s, struct rt_handle *h, struct err *e)
{
	struct rt_docker *d = st;
	char path[128];
	json_t *out = NULL;
	long status = 0;
	int rc;

	(void)h;
	snprintf(path, sizeof(path), "/containers/%s?force=true", s->name);
	rc = dk_call(d, "DELETE", path, NULL, d->timeout_ms, &status, &out, e);
	if (!rc && status != 204 && status != 404)
		rc = dk_fail(status, out, "remove", s->name, e);
	json_decref(out);
	return rc;
}

/* Image missing: a "spinup-agent docker-pull" job pulls it outside the agent's loop. */
static int dk_prepare(void *st, const struct rt_spec *s, struct strbuf *cmd, struct err *e)
{
	struct rt_docker *d = st;
	struct strbuf path = STRBUF_INIT;
	char tmo[24];
	json_t *out = NULL;
	long status = 0;
	int rc;

	if (!d->self_exe || !s->req || !s->req->image[0])
		return 0;
	rc = strbuf_addf(&path, "/images/%s/json", s->req->image) < 0 ?
		err_set(e, SP_ELIMIT, "image name too long") : 0;
	if (!rc)
		rc = dk_call(d, "GET", path.buf, NULL, d->timeout_ms, &status, &out, e);
	if (!rc && status == 404) {
		const struct cmdtpl_var vars[] = {
			{ "self", d->self_exe }, { "sock", d->socket_path ? d->socket_path : "" },
			{ "url", d->base_url }, { "tmo", tmo }, { "image", s->req->image },
		};

		snprintf(tmo, sizeof(tmo), "%ld", d->timeout_ms * 20);
		rc = cmdtpl_expand("exec {self} docker-pull --docker-socket {sock} --docker-url {url} "
				   "--timeout-ms {tmo} {image}", vars, 5, cmd, e);
	} else if (!rc && status != 200) {
		rc = dk_fail(status, out, "inspect the image for", s->name, e);
	}
	json_decref(out);
	strbuf_release(&path);
	return rc;
}

static void dk_free(void *st)
{
	struct rt_docker *d = st;

	if (!d)
		return;
	free(d->self_exe);
	free(d->socket_path);
	free(d->base_url);
	free(d->mount_point);
	free(d);
}

static const struct runtime_ops dk_ops = {
	.name = "docker",
	.start = dk_start,
	.status = dk_status,
	.stop = dk_stop,
	.remove = dk_remove,
	.prepare = dk_prepare,
	.free = dk_free,
};

int rt_docker_pull(const struct rt_docker_opts *o, const char *image, long timeout_ms,
		   struct err *e)
{
	struct rt_docker d;

	memset(&d, 0, sizeof(d));
	d.socket_path = (char *)o->socket_path;
	d.base_url = (char *)o->base_url;
	if (!d.base_url || !image || !*image)
		return err_set(e, SP_EINVAL, "docker pull: no engine url or no image");
	return dk_pull_image(&d, image, timeout_ms, e);
}

struct runtime *rt_docker_new(const struct rt_docker_opts *o, struct err *e)
{
	struct runtime *r = calloc(1, sizeof(*r));
	struct rt_docker *d = calloc(1, sizeof(*d));

	if (!r || !d)
		goto nomem;
	if (!o->base_url || o->container_port < 1 || o->container_port > 65535 ||
	    o->timeout_ms <= 0) {
		err_set(e, SP_EINVAL, "docker runtime: base url, container port and timeout "
			"are required");
		goto fail;
	}
	d->base_url = strdup(o->base_url);
	d->mount_point = strdup(o->mount_point ? o->mount_point : "/home/coder/project");
	d->socket_path = o->socket_path ? strdup(o->socket_path) : NULL;
	d->self_exe = o->self_exe ? strdup(o->self_exe) : NULL;
	if (!d->base_url || !d->mount_point || (o->socket_path && !d->socket_path) ||
	    (o->self_exe && !d->self_exe))
		goto nomem;
	d->container_port = o->container_port;
	d->timeout_ms = o->timeout_ms;
	r->ops = &dk_ops;
	r->state = d;
	return r;
nomem:
	err_set(e, SP_ENOMEM, "docker runtime: out of memory");
fail:
	dk_free(d);
	free(r);
	return NULL;
}
