/*
 * awsq.h - a client for one AWS Query API service (Auto Scaling, EC2):
 * form-encoded POSTs signed with SigV4, XML answers parsed with libxml2.
 *
 * One struct awsq per service endpoint. It owns one CURL handle (the
 * connection is reused across calls), two token buckets (describe calls and
 * mutating calls; or one for both, for a service that throttles every call
 * of an account from one bucket), and the retry policy: throttling (Throttling,
 * RequestLimitExceeded, ...), HTTP 5xx and transport failures are retried
 * with capped exponential backoff and full jitter, each attempt signed
 * anew. Every call is bounded by CURLOPT_CONNECTTIMEOUT_MS and
 * CURLOPT_TIMEOUT_MS, and its response by max_response bytes.
 *
 * Error mapping (awsq_map_error):
 *   Throttling, ThrottlingException, RequestLimitExceeded, ...  SP_ETHROTTLED (retried)
 *   HTTP 5xx, InternalError, ServiceUnavailable, ResourceContention  SP_EUNAVAIL (retried)
 *   ScalingActivityInProgress, ResourceInUse                     SP_EBUSY (next pass)
 *   *.NotFound, ValidationError "...not found..."                SP_ENOTFOUND
 *   AccessDenied, UnauthorizedOperation, AuthFailure, ...       SP_EDENIED (no retry)
 *   other 4xx codes                                              SP_EINVAL
 *   a body that is not the expected XML (HTML, empty, truncated) SP_EPROTO
 * e->msg names the action, the AWS code and message; never a secret.
 *
 * Time and randomness are injectable (struct awsq_clock) so tests can
 * check bucket and backoff arithmetic without sleeping. Not thread-safe:
 * one client per thread. Calls block (bucket waits, backoff sleeps,
 * network) for at most roughly max_attempts * (timeout + backoff cap).
 */
#ifndef SPINUP_AWSQ_H
#define SPINUP_AWSQ_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "../model/err.h"
#include "../model/strbuf.h"
#include "awscreds.h"

#define AWSQ_MAX_RESPONSE (16u << 20)   /* bytes of one response body */
#define AWSQ_MAX_PAGES 1000             /* pages followed in one describe */
#define AWSQ_DEFAULT_ATTEMPTS 5
#define AWSQ_DEFAULT_TIMEOUT_MS 10000
#define AWSQ_DEFAULT_CONNECT_TIMEOUT_MS 3000
#define AWSQ_DEFAULT_BACKOFF_BASE_MS 100
#define AWSQ_DEFAULT_BACKOFF_CAP_MS 5000

/* Clock and randomness; NULL members fall back to the real ones. */
struct awsq_clock {
	int64_t (*now_ms)(void *ctx);            /* wall clock, ms since the epoch */
	void (*sleep_ms)(void *ctx, int64_t ms);
	uint32_t (*rand32)(void *ctx);
	void *ctx;
};

/* A token bucket: burst tokens, refilled at rate per second. */
struct awsq_bucket {
	double tokens;
	double burst;
	double rate;
	int64_t last_ms;
};

void awsq_bucket_init(struct awsq_bucket *b, double burst, double rate_per_s, int64_t now_ms);
/*
 * Take one token at now_ms: returns 0 and consumes it when available, else
 * the milliseconds until one will be (nothing consumed).
 */
int64_t awsq_bucket_take(struct awsq_bucket *b, int64_t now_ms);

/* Full-jitter backoff for attempt (0-based): uniform in [0, min(cap, base * 2^attempt)]. */
int64_t awsq_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t r);

/* Map an HTTP status and AWS error code (may be NULL) to an SP_E* code. */
int awsq_map_error(long http_status, const char *aws_code, const char *aws_msg);

struct awsq_config {
	const char *service;        /* "autoscaling", "ec2" (the SigV4 service name) */
	const char *version;        /* "2011-01-01", "2016-11-15" */
	const char *region;
	const char *endpoint;       /* NULL: from AWS_ENDPOINT_URL_* / AWS_ENDPOINT_URL or AWS's */
	struct awscreds *creds;     /* lent; must outlive the client */
	long timeout_ms;            /* 0: AWSQ_DEFAULT_TIMEOUT_MS */
	long connect_timeout_ms;    /* 0: AWSQ_DEFAULT_CONNECT_TIMEOUT_MS */
	int max_attempts;           /* 0: AWSQ_DEFAULT_ATTEMPTS */
	int64_t backoff_base_ms;    /* 0: AWSQ_DEFAULT_BACKOFF_BASE_MS */
	int64_t backoff_cap_ms;     /* 0: AWSQ_DEFAULT_BACKOFF_CAP_MS */
	size_t max_response;        /* 0: AWSQ_MAX_RESPONSE */
	double read_burst, read_rate;    /* describe calls; 0: 20 and 2/s */
	double write_burst, write_rate;  /* mutating calls; 0: 20 and 2/s */
	int one_bucket;             /* 1: mutating calls share the read bucket (write_* unused) */
	const struct awsq_clock *clock;  /* NULL: real clock; copied */
};

struct awsq;

/* 0, SP_EINVAL (no region/service/credentials), SP_ENOMEM. */
int awsq_new(const struct awsq_config *cfg, struct awsq **out, struct err *e);
void awsq_free(struct awsq *q);
/* The endpoint URL in use ("https://ec2.us-east-1.amazonaws.com"). */
const char *awsq_endpoint(const struct awsq *q);
/* HTTP requests sent (attempts, retries included). */
unsigned long awsq_requests(const struct awsq *q);
/* Retries performed (throttled, 5xx, transport). */
unsigned long awsq_retries(const struct awsq *q);

/* Request parameters: the form body, "Action=...&Version=..." first. */
struct awsq_params {
	struct strbuf body;
};

void awsq_params_init(struct awsq_params *p, const char *action);
void awsq_params_release(struct awsq_params *p);
/* Append name=value, both URL-encoded. 0 or SP_ENOMEM/SP_ELIMIT. */
int awsq_params_add(struct awsq_params *p, const char *name, const char *value);
/* Name from a printf format ("InstanceIds.member.%zu"). */
int awsq_params_addf(struct awsq_params *p, const char *value, const char *namefmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Call action with params; mutating selects the write bucket. On success
 * *doc is the parsed response (caller frees with xmlFreeDoc). On failure
 * *doc is untouched and e says why (see the mapping above).
 */
int awsq_call(struct awsq *q, const struct awsq_params *p, int mutating, xmlDocPtr *doc,
	      struct err *e);

/* ---- XML helpers (local names; namespaces ignored) ---- */

/* First child element of n named name, or NULL. */
xmlNodePtr awsq_child(xmlNodePtr n, const char *name);
/* Follow a '/'-separated path of child names from n. */
xmlNodePtr awsq_path(xmlNodePtr n, const char *path);
/* Text of the child at path into out (truncated to outsz); "" if absent. 1 if present. */
int awsq_text(xmlNodePtr n, const char *path, char *out, size_t outsz);
/* Next sibling element named name after n, or NULL. */
xmlNodePtr awsq_next(xmlNodePtr n, const char *name);

#endif
