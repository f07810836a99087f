/*
 * awsq.c - the AWS Query API client (see awsq.h).
 */
#include "awsq.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <openssl/crypto.h>

#include "log.h"
#include "sigv4.h"
#include "../model/banned.h"

#define AWSQ_URL_MAX 512
#define AWSQ_HOST_MAX 256
#define AWSQ_SNIPPET 64

struct awsq {
	CURL *curl;
	char service[32];
	char version[16];
	char region[64];
	char endpoint[AWSQ_URL_MAX];
	char host[AWSQ_HOST_MAX];
	char path[AWSQ_URL_MAX];
	struct awscreds *creds;
	long timeout_ms, connect_timeout_ms;
	int max_attempts;
	int64_t backoff_base_ms, backoff_cap_ms;
	size_t max_response;
	struct awsq_bucket read, write;
	int one_bucket;              /* mutating calls take from read too */
	struct awsq_clock clock;
	uint64_t rng;
	unsigned long requests, retries;
};

/* ---- token bucket and backoff ---- */

void awsq_bucket_init(struct awsq_bucket *b, double burst, double rate_per_s, int64_t now_ms)
{
	b->burst = burst > 0 ? burst : 1;
	b->rate = rate_per_s > 0 ? rate_per_s : 1;
	b->tokens = b->burst;
	b->last_ms = now_ms;
}

int64_t awsq_bucket_take(struct awsq_bucket *b, int64_t now_ms)
{
	double need;

	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ms = now_ms;
	}
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	need = (1.0 - b->tokens) * 1000.0 / b->rate;
	return (int64_t)need + 1;
}

int64_t awsq_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t r)
{
	int64_t ceil = base_ms;
	int i;

	for (i = 0; i < attempt && ceil < cap_ms; i++)
		ceil *= 2;
	if (ceil > cap_ms)
		ceil = cap_ms;
	if (ceil <= 0)
		return 0;
	return (int64_t)(r % (uint64_t)(ceil + 1));
}

/* ---- error mapping ---- */

static int in_set(const char *code, const char *const *set)
{
	for (; *set; set++)
		if (!strcmp(code, *set))
			return 1;
	return 0;
}

static int has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && !strcmp(s + n - m, suf);
}

int awsq_map_error(long http_status, const char *aws_code, const char *aws_msg)
{
	static const char *const throttled[] = {
		"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
		"RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
		"SlowDown", "EC2ThrottledException", "BandwidthLimitExceeded",
		"PriorRequestNotComplete", NULL,
	};
	static const char *const busy[] = {
		"ScalingActivityInProgress", "ScalingActivityInProgressFault", "ResourceInUse",
		"ResourceInUseFault", NULL,
	};
	static const char *const denied[] = {
		"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure",
		"InvalidClientTokenId", "SignatureDoesNotMatch", "MissingAuthenticationToken",
		"IncompleteSignature", "OptInRequired", "Blocked", "UnrecognizedClientException",
		"InvalidAccessKeyId", "ExpiredToken", "ExpiredTokenException", "RequestExpired",
		"ServiceLinkedRoleFailure", NULL,
	};
	static const char *const unavailable[] = {
		"InternalError", "InternalFailure", "InternalServiceError", "ServiceUnavailable",
		"Unavailable", "ResourceContention", "ResourceContentionFault", NULL,
	};
	const char *c = aws_code;

	if (c && *c) {
		if (!strncmp(c, "Client.", 7) || !strncmp(c, "Server.", 7))
			c += 7;
		if (in_set(c, throttled))
			return SP_ETHROTTLED;
		if (in_set(c, busy))
			return SP_EBUSY;
		if (in_set(c, denied))
			return SP_EDENIED;
		if (in_set(c, unavailable))
			return SP_EUNAVAIL;
		if (has_suffix(c, ".NotFound") || !strcmp(c, "NotFound"))
			return SP_ENOTFOUND;
		if (!strcmp(c, "ValidationError") && aws_msg && strcasestr(aws_msg, "not found"))
			return SP_ENOTFOUND;
		if (http_status >= 500)
			return SP_EUNAVAIL;
		return SP_EINVAL;
	}
	if (http_status == 429)
		return SP_ETHROTTLED;
	if (http_status >= 500)
		return SP_EUNAVAIL;
	if (http_status == 401 || http_status == 403)
		return SP_EDENIED;
	return SP_EPROTO;
}

static int retryable(int rc)
{
	return rc == SP_ETHROTTLED || rc == SP_EUNAVAIL || rc == SP_EIO || rc == SP_ETIMEOUT;
}

/* ---- XML helpers ---- */

static int named(xmlNodePtr n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

xmlNodePtr awsq_child(xmlNodePtr n, const char *name)
{
	xmlNodePtr c;

	if (!n)
		return NULL;
	for (c = n->children; c; c = c->next)
		if (named(c, name))
			return c;
	return NULL;
}

xmlNodePtr awsq_next(xmlNodePtr n, const char *name)
{
	for (n = n ? n->next : NULL; n; n = n->next)
		if (named(n, name))
			return n;
	return NULL;
}

xmlNodePtr awsq_path(xmlNodePtr n, const char *path)
{
	char seg[128];
	const char *p = path;

	while (n && *p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (len >= sizeof(seg))
			return NULL;
		memcpy(seg, p, len);
		seg[len] = '\0';
		n = awsq_child(n, seg);
		p += len;
		if (*p == '/')
			p++;
	}
	return n;
}

int awsq_text(xmlNodePtr n, const char *path, char *out, size_t outsz)
{
	xmlNodePtr t = *path ? awsq_path(n, path) : n;
	xmlNodePtr c;
	size_t len = 0;

	if (outsz)
		out[0] = '\0';
	if (!t)
		return 0;
	for (c = t->children; c && outsz; c = c->next) {
		size_t l;

		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
			continue;
		l = strlen((const char *)c->content);
		if (len + l >= outsz)
			l = outsz - 1 - len;
		memcpy(out + len, c->content, l);
		len += l;
		out[len] = '\0';
	}
	return 1;
}

/* ---- parameters ---- */

void awsq_params_init(struct awsq_params *p, const char *action)
{
	strbuf_init(&p->body, 0);
	awsq_params_add(p, "Action", action);
}

void awsq_params_release(struct awsq_params *p)
{
	strbuf_release(&p->body);
}

static int form_encode(struct strbuf *sb, const char *s)
{
	static const char HEX[] = "0123456789ABCDEF";
	int rc = 0;

	for (; *s && !rc; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
			rc = strbuf_addch(sb, c);
		} else {
			char enc[3] = { '%', HEX[c >> 4], HEX[c & 15] };

			rc = strbuf_add(sb, enc, 3);
		}
	}
	return rc;
}

int awsq_params_add(struct awsq_params *p, const char *name, const char *value)
{
	int rc = 0;

	if (p->body.len)
		rc = strbuf_addch(&p->body, '&');
	if (!rc)
		rc = form_encode(&p->body, name);
	if (!rc)
		rc = strbuf_addch(&p->body, '=');
	if (!rc)
		rc = form_encode(&p->body, value ? value : "");
	return rc;
}

int awsq_params_addf(struct awsq_params *p, const char *value, const char *namefmt, ...)
{
	char name[256];
	va_list ap;
	int n;

	va_start(ap, namefmt);
	n = vsnprintf(name, sizeof(name), namefmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(name))
		return SP_ELIMIT;
	return awsq_params_add(p, name, value);
}

/* ---- default clock ---- */

static int64_t real_now_ms(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void real_sleep_ms(void *ctx, int64_t ms)
{
	struct timespec ts;

	(void)ctx;
	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* xorshift64*; the real rand32 when none is injected. */
static uint32_t real_rand32(struct awsq *q)
{
	q->rng ^= q->rng >> 12;
	q->rng ^= q->rng << 25;
	q->rng ^= q->rng >> 27;
	return (uint32_t)((q->rng * 2685821657736338717ULL) >> 32);
}

static int64_t q_now(struct awsq *q)
{
	return q->clock.now_ms ? q->clock.now_ms(q->clock.ctx) : real_now_ms(NULL);
}

static void q_sleep(struct awsq *q, int64_t ms)
{
	if (q->clock.sleep_ms)
		q->clock.sleep_ms(q->clock.ctx, ms);
	else
		real_sleep_ms(NULL, ms);
}

static uint32_t q_rand(struct awsq *q)
{
	return q->clock.rand32 ? q->clock.rand32(q->clock.ctx) : real_rand32(q);
}

/* ---- construction ---- */

/* AWS_ENDPOINT_URL_<SERVICE ID>, then AWS_ENDPOINT_URL, then AWS's own. */
static int resolve_endpoint(struct awsq *q, const char *cfg_endpoint, struct err *e)
{
	const char *svc_var = !strcmp(q->service, "autoscaling") ? "AWS_ENDPOINT_URL_AUTO_SCALING"
			      : !strcmp(q->service, "ec2")       ? "AWS_ENDPOINT_URL_EC2"
								 : NULL;
	const char *v = cfg_endpoint;
	const char *h, *slash;
	size_t hlen;

	if (!v || !*v)
		v = svc_var ? getenv(svc_var) : NULL;
	if (!v || !*v)
		v = getenv("AWS_ENDPOINT_URL");
	if (v && *v) {
		if (str_copy(q->endpoint, sizeof(q->endpoint), v))
			return err_set(e, SP_EINVAL, "endpoint url for %s is too long", q->service);
	} else {
		snprintf(q->endpoint, sizeof(q->endpoint), "https://%s.%s.amazonaws.com%s",
			 q->service, q->region, !strncmp(q->region, "cn-", 3) ? ".cn" : "");
	}
	h = strstr(q->endpoint, "://");
	if (!h || (strncmp(q->endpoint, "http://", 7) && strncmp(q->endpoint, "https://", 8)))
		return err_set(e, SP_EINVAL, "endpoint '%s' for %s is not an http(s) url",
			       q->endpoint, q->service);
	h += 3;
	slash = strchr(h, '/');
	hlen = slash ? (size_t)(slash - h) : strlen(h);
	if (hlen == 0 || hlen >= sizeof(q->host))
		return err_set(e, SP_EINVAL, "endpoint '%s' for %s has no usable host",
			       q->endpoint, q->service);
	memcpy(q->host, h, hlen);
	q->host[hlen] = '\0';
	str_copy(q->path, sizeof(q->path), slash ? slash : "/");
	return 0;
}

static size_t write_body(char *p, size_t sz, size_t nm, void *ud)
{
	struct strbuf *b = ud;

	if (strbuf_add(b, p, sz * nm))
		return 0;
	return sz * nm;
}

int awsq_new(const struct awsq_config *cfg, struct awsq **out, struct err *e)
{
	struct awsq *q;
	int64_t now;
	int rc = 0;

	if (!cfg || !cfg->service || !cfg->version || !cfg->creds)
		return err_set(e, SP_EINVAL, "awsq: service, version and credentials are required");
	if (!cfg->region || !*cfg->region)
		return err_set(e, SP_EINVAL, "no aws region configured for %s (set AWS_REGION)",
			       cfg->service);
	q = calloc(1, sizeof(*q));
	if (!q)
		return err_set(e, SP_ENOMEM, "out of memory creating %s client", cfg->service);
	if (str_copy(q->service, sizeof(q->service), cfg->service) ||
	    str_copy(q->version, sizeof(q->version), cfg->version) ||
	    str_copy(q->region, sizeof(q->region), cfg->region))
		rc = err_set(e, SP_EINVAL, "service, version or region name is too long");
	if (!rc)
		rc = resolve_endpoint(q, cfg->endpoint, e);
	if (!rc && !(q->curl = curl_easy_init()))
		rc = err_set(e, SP_ENOMEM, "could not create curl handle for %s", cfg->service);
	if (rc) {
		awsq_free(q);
		return rc;
	}
	xmlInitParser();
	q->creds = cfg->creds;
	q->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : AWSQ_DEFAULT_TIMEOUT_MS;
	q->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
							    : AWSQ_DEFAULT_CONNECT_TIMEOUT_MS;
	q->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : AWSQ_DEFAULT_ATTEMPTS;
	q->backoff_base_ms = cfg->backoff_base_ms > 0 ? cfg->backoff_base_ms
						      : AWSQ_DEFAULT_BACKOFF_BASE_MS;
	q->backoff_cap_ms = cfg->backoff_cap_ms > 0 ? cfg->backoff_cap_ms
						    : AWSQ_DEFAULT_BACKOFF_CAP_MS;
	q->max_response = cfg->max_response > 0 ? cfg->max_response : AWSQ_MAX_RESPONSE;
	if (cfg->clock)
		q->clock = *cfg->clock;
	if (getrandom(&q->rng, sizeof(q->rng), 0) != (ssize_t)sizeof(q->rng) || !q->rng)
		q->rng = (uint64_t)real_now_ms(NULL) | 1;
	now = q_now(q);
	awsq_bucket_init(&q->read, cfg->read_burst > 0 ? cfg->read_burst : 20,
			 cfg->read_rate > 0 ? cfg->read_rate : 2, now);
	awsq_bucket_init(&q->write, cfg->write_burst > 0 ? cfg->write_burst : 20,
			 cfg->write_rate > 0 ? cfg->write_rate : 2, now);
	q->one_bucket = cfg->one_bucket;
	curl_easy_setopt(q->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(q->curl, CURLOPT_TIMEOUT_MS, q->timeout_ms);
	curl_easy_setopt(q->curl, CURLOPT_CONNECTTIMEOUT_MS, q->connect_timeout_ms);
	curl_easy_setopt(q->curl, CURLOPT_WRITEFUNCTION, write_body);
	curl_easy_setopt(q->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(q->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(q->curl, CURLOPT_URL, q->endpoint);
	*out = q;
	return 0;
}

void awsq_free(struct awsq *q)
{
	if (!q)
		return;
	if (q->curl)
		curl_easy_cleanup(q->curl);
	free(q);
}

const char *awsq_endpoint(const struct awsq *q)
{
	return q->endpoint;
}

unsigned long awsq_requests(const struct awsq *q)
{
	return q->requests;
}

unsigned long awsq_retries(const struct awsq *q)
{
	return q->retries;
}

/* ---- one attempt ---- */

static void amz_date(int64_t now_ms, char out[17])
{
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static void slist_wipe_free(struct curl_slist *l)
{
	struct curl_slist *n;

	for (n = l; n; n = n->next)
		OPENSSL_cleanse(n->data, strlen(n->data));
	curl_slist_free_all(l);
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
	struct strbuf sb = STRBUF_INIT;
	struct curl_slist *n;
	int rc = strbuf_addf(&sb, "%s: %s", name, value);

	if (!rc) {
		n = curl_slist_append(*l, sb.buf);
		if (n)
			*l = n;
		else
			rc = SP_ENOMEM;
	}
	OPENSSL_cleanse(sb.buf, sb.len);
	strbuf_release(&sb);
	return rc;
}

/* Sign the request for this attempt and build its header list. */
static int sign_headers(struct awsq *q, const struct awsq_params *p, int64_t now_ms,
			struct curl_slist **hl, struct err *e)
{
	static const char ctype[] = "application/x-www-form-urlencoded; charset=utf-8";
	struct sigv4_header h[4];
	struct sigv4_creds cr;
	struct sigv4_scope scope;
	struct sigv4_req req;
	struct strbuf authz = STRBUF_INIT;
	struct sigv4_out out = { NULL, NULL, &authz, NULL };
	char date[17];
	size_t n = 0;
	int rc;

	rc = awscreds_get(q->creds, now_ms / 1000, &cr, e);
	if (rc)
		return rc;
	amz_date(now_ms, date);
	h[n++] = (struct sigv4_header){ "Host", q->host };
	h[n++] = (struct sigv4_header){ "Content-Type", ctype };
	h[n++] = (struct sigv4_header){ "X-Amz-Date", date };
	if (cr.session_token)
		h[n++] = (struct sigv4_header){ "X-Amz-Security-Token", cr.session_token };
	req.method = "POST";
	req.path = q->path;
	req.query = "";
	req.headers = h;
	req.nheaders = n;
	req.payload = p->body.buf;
	req.payload_len = p->body.len;
	scope.region = q->region;
	scope.service = q->service;
	scope.amz_date = date;
	rc = sigv4_sign(&req, &cr, &scope, &out, e);
	while (!rc && n > 0) {
		n--;
		rc = add_header(hl, h[n].name, h[n].value);
	}
	if (!rc)
		rc = add_header(hl, "Authorization", authz.buf);
	if (!rc)
		rc = add_header(hl, "Expect", "");
	if (rc && e && !e->code)
		err_set(e, rc, "could not build request headers for %s", q->service);
	strbuf_release(&authz);
	return rc;
}

/* Printable prefix of a body, for error messages. */
static void snippet(const struct strbuf *b, char *out, size_t outsz)
{
	size_t i, n = b->len < outsz - 1 ? b->len : outsz - 1;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b->buf[i];

		out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
	}
	out[n] = '\0';
}

static const char *action_of(const struct awsq_params *p, char *out, size_t outsz)
{
	const char *a = p->body.buf + strlen("Action=");
	size_t n = strcspn(a, "&");

	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, a, n);
	out[n] = '\0';
	return out;
}

/* Parse without network access or entity substitution; AWS never sends a DTD, so refuse one. */
static xmlDocPtr parse_xml(const struct strbuf *b)
{
	xmlDocPtr d;

	if (b->len == 0 || b->len > (size_t)0x7fffffff)
		return NULL;
	d = xmlReadMemory(b->buf, (int)b->len, "response.xml", NULL,
			  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
				  XML_PARSE_NOBLANKS);
	if (d && (d->intSubset || d->extSubset)) {
		xmlFreeDoc(d);
		d = NULL;
	}
	return d;
}

/* Turn an HTTP answer into a document or a mapped error. */
static int judge(const char *action, long status, const struct strbuf *b, xmlDocPtr *doc,
		 struct err *e)
{
	char code[128], msg[256], want[96], snip[AWSQ_SNIPPET + 1];
	xmlDocPtr d = parse_xml(b);
	xmlNodePtr root = d ? xmlDocGetRootElement(d) : NULL;
	xmlNodePtr errn = NULL;
	int rc;

	if (root && named(root, "ErrorResponse"))
		errn = awsq_child(root, "Error");
	else if (root && named(root, "Response"))
		errn = awsq_path(root, "Errors/Error");
	snprintf(want, sizeof(want), "%sResponse", action);
	if (status == 200 && root && !errn && named(root, want)) {
		*doc = d;
		return 0;
	}
	if (errn) {
		awsq_text(errn, "Code", code, sizeof(code));
		awsq_text(errn, "Message", msg, sizeof(msg));
		rc = awsq_map_error(status, code, msg);
		err_set(e, rc, "%s failed: %s: %s (http %ld)", action, code[0] ? code : "unknown",
			msg, status);
	} else if (status == 200) {
		snippet(b, snip, sizeof(snip));
		rc = err_set(e, SP_EPROTO, "%s answered http 200 with %s (%zu bytes: '%s')", action,
			     root ? "an unexpected xml document" : "a body that is not xml",
			     b->len, snip);
	} else {
		snippet(b, snip, sizeof(snip));
		rc = awsq_map_error(status, NULL, NULL);
		err_set(e, rc, "%s failed: http %ld without an aws error document "
			"(%zu bytes: '%s')", action, status, b->len, snip);
	}
	xmlFreeDoc(d);
	return rc;
}

static int attempt_once(struct awsq *q, const struct awsq_params *p, const char *action,
			xmlDocPtr *doc, struct err *e)
{
	struct curl_slist *hl = NULL;
	struct strbuf body;
	long status = 0;
	CURLcode cc;
	int rc;

	strbuf_init(&body, q->max_response + 1);
	rc = sign_headers(q, p, q_now(q), &hl, e);
	if (rc)
		goto out;
	curl_easy_setopt(q->curl, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(q->curl, CURLOPT_POSTFIELDS, p->body.buf);
	curl_easy_setopt(q->curl, CURLOPT_POSTFIELDSIZE, (long)p->body.len);
	curl_easy_setopt(q->curl, CURLOPT_WRITEDATA, &body);
	q->requests++;
	cc = curl_easy_perform(q->curl);
	curl_easy_getinfo(q->curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(q->curl, CURLOPT_HTTPHEADER, NULL);
	if (cc == CURLE_WRITE_ERROR)
		rc = err_set(e, SP_ELIMIT, "%s: response from %s is larger than %zu bytes", action,
			     q->endpoint, q->max_response);
	else if (cc == CURLE_OPERATION_TIMEDOUT)
		rc = err_set(e, SP_ETIMEOUT, "%s: %s timed out after %ld ms", action, q->endpoint,
			     q->timeout_ms);
	else if (cc != CURLE_OK)
		rc = err_set(e, SP_EIO, "%s: request to %s failed: %s", action, q->endpoint,
			     curl_easy_strerror(cc));
	else
		rc = judge(action, status, &body, doc, e);
out:
	slist_wipe_free(hl);
	strbuf_release(&body);
	return rc;
}

int awsq_call(struct awsq *q, const struct awsq_params *p, int mutating, xmlDocPtr *doc,
	      struct err *e)
{
	struct awsq_bucket *b = mutating && !q->one_bucket ? &q->write : &q->read;
	char action[64];
	int64_t wait;
	int attempt, rc = 0;

	action_of(p, action, sizeof(action));
	for (attempt = 0; attempt < q->max_attempts; attempt++) {
		if (attempt > 0) {
			wait = awsq_backoff_ms(attempt - 1, q->backoff_base_ms, q->backoff_cap_ms,
					       q_rand(q));
			log_debug("awsq: %s %s retry=%d backoff_ms=%lld cause=%s", q->service,
				  action, attempt, (long long)wait, sp_code_name(rc));
			q->retries++;
			q_sleep(q, wait);
		}
		while ((wait = awsq_bucket_take(b, q_now(q))) > 0)
			q_sleep(q, wait);
		err_clear(e);
		rc = attempt_once(q, p, action, doc, e);
		if (!retryable(rc))
			break;
	}
	if (rc && retryable(rc) && attempt >= q->max_attempts && e)
		err_prefix(e, "gave up after %d attempts", q->max_attempts);
	return rc;
}
