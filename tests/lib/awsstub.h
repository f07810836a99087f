/*
 * awsstub.h - a tiny HTTP server for tests of the AWS driver (IMDS, Query
 * API stubs), on libmicrohttpd, bound to 127.0.0.1 on a free port.
 *
 * The test supplies one handler called once per request, with the whole
 * body collected, in the server's thread (one thread per connection, so a
 * handler may sleep to provoke client timeouts). The handler fills the
 * response; the server counts requests. awsstub_stop always stops it.
 */
#ifndef SPINUP_TESTS_AWSSTUB_H
#define SPINUP_TESTS_AWSSTUB_H

#include <stddef.h>

#include "drivers/sigv4.h"
#include "model/strbuf.h"

struct awsstub;

struct awsstub_req {
	const char *method;
	const char *url;                 /* path only */
	const char *query;               /* raw query string, "" if none */
	const char *body;                /* NUL-terminated */
	size_t body_len;
	struct sigv4_header headers[SIGV4_MAX_HEADERS];
	size_t nheaders;
};

struct awsstub_resp {
	int status;                      /* default 200 */
	const char *content_type;        /* default text/xml */
	struct strbuf body;              /* the handler appends */
	int delay_ms;                    /* sleep before answering */
	int drop;                        /* close without answering */
};

typedef void (*awsstub_fn)(void *ctx, const struct awsstub_req *rq, struct awsstub_resp *rs);

/* Start on 127.0.0.1:<free port>. 0 or -1. */
int awsstub_start(awsstub_fn fn, void *ctx, struct awsstub **out);
int awsstub_port(const struct awsstub *s);
/* "http://127.0.0.1:PORT" */
const char *awsstub_url(const struct awsstub *s);
unsigned awsstub_requests(const struct awsstub *s);
/* Case-insensitive header lookup; NULL if absent. */
const char *awsstub_header(const struct awsstub_req *rq, const char *name);
void awsstub_stop(struct awsstub *s);

#endif
