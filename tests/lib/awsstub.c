/* awsstub.c - see awsstub.h. */
#include "awsstub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "model/banned.h"

#define AWSSTUB_MAX_BODY (8u << 20)

struct awsstub {
	struct MHD_Daemon *d;
	awsstub_fn fn;
	void *ctx;
	int port;
	char url[64];
	volatile unsigned requests;
};

struct conn_state {
	struct strbuf uri;
	struct strbuf body;
	struct awsstub_req rq;
	int started;
	char *names[SIGV4_MAX_HEADERS];
	char *values[SIGV4_MAX_HEADERS];
};

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct conn_state *cs = calloc(1, sizeof(*cs));

	(void)cls;
	(void)c;
	if (!cs)
		return NULL;
	strbuf_init(&cs->uri, 0);
	strbuf_init(&cs->body, AWSSTUB_MAX_BODY);
	strbuf_addstr(&cs->uri, uri);
	return cs;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *k,
				      const char *v)
{
	struct conn_state *cs = cls;
	size_t n = cs->rq.nheaders;

	(void)kind;
	if (n >= SIGV4_MAX_HEADERS)
		return MHD_NO;
	cs->names[n] = strdup(k);
	cs->values[n] = strdup(v ? v : "");
	cs->rq.headers[n].name = cs->names[n];
	cs->rq.headers[n].value = cs->values[n];
	cs->rq.nheaders++;
	return MHD_YES;
}

static void conn_free(struct conn_state *cs)
{
	size_t i;

	if (!cs)
		return;
	for (i = 0; i < cs->rq.nheaders; i++) {
		free(cs->names[i]);
		free(cs->values[i]);
	}
	strbuf_release(&cs->uri);
	strbuf_release(&cs->body);
	free(cs);
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	conn_free(*req_cls);
	*req_cls = NULL;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **req_cls)
{
	struct awsstub *s = cls;
	struct conn_state *cs = *req_cls;
	struct awsstub_resp rs;
	struct MHD_Response *resp;
	enum MHD_Result r;
	char *q;

	(void)version;
	if (!cs)
		return MHD_NO;
	if (!cs->started) { /* first call: headers only, the body follows */
		cs->started = 1;
		return MHD_YES;
	}
	if (*upload_size) {
		if (strbuf_add(&cs->body, upload, *upload_size))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, cs);
	q = strchr(cs->uri.buf, '?');
	cs->rq.method = method;
	cs->rq.url = url;
	cs->rq.query = q ? q + 1 : "";
	cs->rq.body = cs->body.buf;
	cs->rq.body_len = cs->body.len;
	memset(&rs, 0, sizeof(rs));
	rs.status = 200;
	rs.content_type = "text/xml;charset=UTF-8";
	strbuf_init(&rs.body, 0);
	__atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
	s->fn(s->ctx, &cs->rq, &rs);
	if (rs.delay_ms)
		sleep_ms(rs.delay_ms);
	if (rs.drop) {
		strbuf_release(&rs.body);
		return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(rs.body.len, rs.body.buf, MHD_RESPMEM_MUST_COPY);
	strbuf_release(&rs.body);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", rs.content_type);
	r = MHD_queue_response(c, (unsigned)rs.status, resp);
	MHD_destroy_response(resp);
	return r;
}

int awsstub_start(awsstub_fn fn, void *ctx, struct awsstub **out)
{
	struct awsstub *s = calloc(1, sizeof(*s));
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;

	if (!s)
		return -1;
	s->fn = fn;
	s->ctx = ctx;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = 0;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
				MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_URI_LOG_CALLBACK, uri_log, (void *)s,
				MHD_OPTION_NOTIFY_COMPLETED, completed, (void *)s,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				MHD_OPTION_END);
	if (!s->d) {
		free(s);
		return -1;
	}
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
	*out = s;
	return s->port > 0 ? 0 : -1;
}

int awsstub_port(const struct awsstub *s)
{
	return s->port;
}

const char *awsstub_url(const struct awsstub *s)
{
	return s->url;
}

unsigned awsstub_requests(const struct awsstub *s)
{
	return __atomic_load_n(&s->requests, __ATOMIC_SEQ_CST);
}

const char *awsstub_header(const struct awsstub_req *rq, const char *name)
{
	size_t i;

	for (i = 0; i < rq->nheaders; i++)
		if (!strcasecmp(rq->headers[i].name, name))
			return rq->headers[i].value;
	return NULL;
}

void awsstub_stop(struct awsstub *s)
{
	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	free(s);
}
