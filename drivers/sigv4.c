/*
 * sigv4.c - AWS Signature Version 4 (see sigv4.h).
 *
 * Signing follows the published algorithm step by step: canonical request
 * (method, normalised and URI-encoded path, sorted canonical query,
 * canonical headers, signed header list, payload hash), string to sign,
 * key derivation (date, region, service, "aws4_request"), HMAC signature.
 * Verification parses the Authorization header, checks scope and date skew,
 * re-signs with the secret of the named key and compares in constant time.
 *
 * Key material (the "AWS4" + secret seed and every derived key) lives on
 * the stack and is wiped with OPENSSL_cleanse before returning.
 */
#include "sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../model/banned.h"

#define SIGV4_ALGO "AWS4-HMAC-SHA256"
/* Limits on what a request we verify may carry. */
#define SIGV4_MAX_QUERY_PARAMS 512
#define SIGV4_MAX_PATH_SEGMENTS 256
#define SIGV4_MAX_AUTH_LEN 4096
#define SIGV4_MAX_SECRET_LEN 256

static const char hexdig[] = "0123456789abcdef";

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		memset(out, '0', 64);
		out[64] = '\0';
		return;
	}
	hex_encode(md, 32, out);
}

static int is_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Percent-encode s[0..n) as AWS does (upper-case hex, unreserved kept). */
static int uri_encode(struct strbuf *sb, const char *s, size_t n, int keep_slash)
{
	static const char HEX[] = "0123456789ABCDEF";
	size_t i;
	int rc = 0;

	for (i = 0; i < n && !rc; i++) {
		unsigned char c = (unsigned char)s[i];

		if (is_unreserved(c) || (keep_slash && c == '/')) {
			rc = strbuf_addch(sb, c);
		} else {
			char enc[3] = { '%', HEX[c >> 4], HEX[c & 15] };

			rc = strbuf_add(sb, enc, 3);
		}
	}
	return rc;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into sb ("%zz" kept literally). */
static int uri_decode(struct strbuf *sb, const char *s, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n && !rc; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			rc = strbuf_addch(sb, hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			rc = strbuf_addch(sb, s[i]);
		}
	}
	return rc;
}

/*
 * Canonical URI: remove empty and "." segments, resolve "..", keep a
 * trailing slash, then URI-encode each segment (non-S3 normalisation).
 */
static int canonical_path(struct strbuf *out, const char *path, struct err *e)
{
	const char *seg[SIGV4_MAX_PATH_SEGMENTS];
	size_t seglen[SIGV4_MAX_PATH_SEGMENTS];
	size_t nseg = 0, i;
	const char *p = path && *path ? path : "/";
	size_t plen = strlen(p);
	int trailing = plen > 1 && p[plen - 1] == '/';
	int rc = 0;

	while (*p) {
		const char *s = p;
		size_t n;

		while (*p && *p != '/')
			p++;
		n = (size_t)(p - s);
		if (*p == '/')
			p++;
		if (n == 0 || (n == 1 && s[0] == '.'))
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (nseg > 0)
				nseg--;
			continue;
		}
		if (nseg == SIGV4_MAX_PATH_SEGMENTS)
			return err_set(e, SP_ELIMIT, "request path has more than %d segments",
				       SIGV4_MAX_PATH_SEGMENTS);
		seg[nseg] = s;
		seglen[nseg++] = n;
	}
	for (i = 0; i < nseg && !rc; i++) {
		rc = strbuf_addch(out, '/');
		if (!rc)
			rc = uri_encode(out, seg[i], seglen[i], 0);
	}
	if (!rc && (nseg == 0 || trailing))
		rc = strbuf_addch(out, '/');
	if (rc)
		err_set(e, rc, "could not build canonical path: %s", sp_code_name(rc));
	return rc;
}

struct qparam {
	char *key;   /* encoded */
	char *val;   /* encoded */
};

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : strcmp(x->val, y->val);
}

/* Decode then re-encode one key or value: normalises either spelling. */
static int query_part(const char *s, size_t n, char **out)
{
	struct strbuf dec = STRBUF_INIT, enc = STRBUF_INIT;
	int rc = uri_decode(&dec, s, n);

	if (!rc)
		rc = uri_encode(&enc, dec.buf, dec.len, 0);
	if (!rc) {
		*out = strbuf_detach(&enc, NULL);
		if (!*out)
			rc = SP_ENOMEM;
	}
	strbuf_release(&dec);
	strbuf_release(&enc);
	return rc;
}

/* Canonical query string: pairs decoded, re-encoded, sorted by key then value. */
static int canonical_query(struct strbuf *out, const char *query, struct err *e)
{
	struct qparam *qp = NULL;
	size_t n = 0, i;
	const char *p = query ? query : "";
	int rc = 0;

	qp = calloc(SIGV4_MAX_QUERY_PARAMS, sizeof(*qp));
	if (!qp)
		return err_set(e, SP_ENOMEM, "out of memory building canonical query");
	while (*p && !rc) {
		const char *s = p, *eq;
		size_t len;

		while (*p && *p != '&')
			p++;
		len = (size_t)(p - s);
		if (*p == '&')
			p++;
		if (len == 0)
			continue;
		if (n == SIGV4_MAX_QUERY_PARAMS) {
			rc = err_set(e, SP_ELIMIT, "query string has more than %d parameters",
				     SIGV4_MAX_QUERY_PARAMS);
			break;
		}
		eq = memchr(s, '=', len);
		rc = query_part(s, eq ? (size_t)(eq - s) : len, &qp[n].key);
		if (!rc)
			rc = query_part(eq ? eq + 1 : "", eq ? len - (size_t)(eq - s) - 1 : 0,
					&qp[n].val);
		n++;
		if (rc)
			err_set(e, rc, "could not build canonical query: %s", sp_code_name(rc));
	}
	if (!rc)
		qsort(qp, n, sizeof(*qp), qparam_cmp);
	for (i = 0; i < n && !rc; i++)
		rc = strbuf_addf(out, "%s%s=%s", i ? "&" : "", qp[i].key, qp[i].val);
	if (rc && e && !e->code)
		err_set(e, rc, "could not build canonical query: %s", sp_code_name(rc));
	for (i = 0; i < n; i++) {
		free(qp[i].key);
		free(qp[i].val);
	}
	free(qp);
	return rc;
}

struct chdr {
	char name[128];       /* lower-case */
	const char *value;
	size_t order;
};

static int chdr_cmp(const void *a, const void *b)
{
	const struct chdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Append value trimmed, with every run of whitespace collapsed to one space. */
static int add_trimmed(struct strbuf *sb, const char *v)
{
	int pending = 0, rc = 0;

	while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
		v++;
	for (; *v && !rc; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
			pending = 1;
			continue;
		}
		if (pending)
			rc = strbuf_addch(sb, ' ');
		pending = 0;
		if (!rc)
			rc = strbuf_addch(sb, *v);
	}
	return rc;
}

static int has_header(const struct sigv4_req *req, const char *lname)
{
	size_t i;

	for (i = 0; i < req->nheaders; i++)
		if (req->headers[i].name && !strcasecmp(req->headers[i].name, lname))
			return 1;
	return 0;
}

/*
 * Canonical headers and the signed header list. A session token not
 * already among the headers is signed as X-Amz-Security-Token (the caller
 * sends it with that name).
 */
static int canonical_headers(struct strbuf *ch, struct strbuf *sh, const struct sigv4_req *req,
			     const char *token, struct err *e)
{
	struct chdr h[SIGV4_MAX_HEADERS + 1];
	size_t n = 0, i, j;
	int rc = 0;

	if (req->nheaders > SIGV4_MAX_HEADERS)
		return err_set(e, SP_ELIMIT, "request has more than %d headers",
			       SIGV4_MAX_HEADERS);
	for (i = 0; i < req->nheaders; i++) {
		const char *nm = req->headers[i].name;

		if (!nm || !req->headers[i].value)
			return err_set(e, SP_EINVAL, "request header %zu has no name or value", i);
		if (strlen(nm) >= sizeof(h[n].name))
			return err_set(e, SP_ELIMIT, "request header name is too long");
		for (j = 0; nm[j]; j++)
			h[n].name[j] = (char)tolower((unsigned char)nm[j]);
		h[n].name[j] = '\0';
		h[n].value = req->headers[i].value;
		h[n].order = n;
		n++;
	}
	if (token && *token && !has_header(req, "x-amz-security-token")) {
		str_copy(h[n].name, sizeof(h[n].name), "x-amz-security-token");
		h[n].value = token;
		h[n].order = n;
		n++;
	}
	qsort(h, n, sizeof(h[0]), chdr_cmp);
	for (i = 0; i < n && !rc; i++) {
		int first = i == 0 || strcmp(h[i].name, h[i - 1].name) != 0;

		if (first) {
			if (i > 0)
				rc = strbuf_addch(ch, '\n');
			if (!rc)
				rc = strbuf_addf(ch, "%s:", h[i].name);
			if (!rc)
				rc = strbuf_addf(sh, "%s%s", sh->len ? ";" : "", h[i].name);
		} else {
			rc = strbuf_addch(ch, ',');
		}
		if (!rc)
			rc = add_trimmed(ch, h[i].value);
	}
	if (!rc && n > 0)
		rc = strbuf_addch(ch, '\n');
	if (rc)
		err_set(e, rc, "could not build canonical headers: %s", sp_code_name(rc));
	return rc;
}

static int hmac256(const void *key, size_t klen, const char *msg, size_t mlen,
		   unsigned char out[32])
{
	unsigned int olen = 0;

	if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out, &olen) ||
	    olen != 32)
		return SP_EINTERNAL;
	return 0;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static int derive_key(const char *secret, const char *date, const char *region,
		      const char *service, unsigned char k[32])
{
	char seed[SIGV4_MAX_SECRET_LEN + 5];
	unsigned char a[32], b[32];
	size_t slen = strlen(secret);
	int rc;

	if (slen > SIGV4_MAX_SECRET_LEN)
		return SP_ELIMIT;
	memcpy(seed, "AWS4", 4);
	memcpy(seed + 4, secret, slen);
	rc = hmac256(seed, slen + 4, date, strlen(date), a);
	if (!rc)
		rc = hmac256(a, 32, region, strlen(region), b);
	if (!rc)
		rc = hmac256(b, 32, service, strlen(service), a);
	if (!rc)
		rc = hmac256(a, 32, "aws4_request", 12, k);
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return rc;
}

static int valid_amz_date(const char *d)
{
	size_t i;

	if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
		return 0;
	for (i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)d[i]))
			return 0;
	return 1;
}

/* Everything up to the signature: canonical request and string to sign. */
static int build_sts(const struct sigv4_req *req, const char *token,
		     const struct sigv4_scope *scope, struct strbuf *creq, struct strbuf *sts,
		     struct strbuf *sh, struct err *e)
{
	struct strbuf ch = STRBUF_INIT;
	char phash[65], chash[65], date[9];
	int rc = 0;

	if (!req->method || !*req->method)
		return err_set(e, SP_EINVAL, "request has no method");
	if (!valid_amz_date(scope->amz_date))
		return err_set(e, SP_EINVAL, "invalid X-Amz-Date '%s'",
			       scope->amz_date ? scope->amz_date : "");
	memcpy(date, scope->amz_date, 8);
	date[8] = '\0';
	rc = strbuf_addf(creq, "%s\n", req->method);
	if (!rc)
		rc = canonical_path(creq, req->path, e);
	if (!rc)
		rc = strbuf_addch(creq, '\n');
	if (!rc)
		rc = canonical_query(creq, req->query, e);
	if (!rc)
		rc = strbuf_addch(creq, '\n');
	if (!rc)
		rc = canonical_headers(&ch, sh, req, token, e);
	sigv4_sha256_hex(req->payload, req->payload_len, phash);
	if (!rc)
		rc = strbuf_addf(creq, "%s\n%s\n%s", ch.buf, sh->buf, phash);
	if (!rc) {
		sigv4_sha256_hex(creq->buf, creq->len, chash);
		rc = strbuf_addf(sts, SIGV4_ALGO "\n%s\n%s/%s/%s/aws4_request\n%s",
				 scope->amz_date, date, scope->region, scope->service, chash);
	}
	if (rc && e && !e->code)
		err_set(e, rc, "could not build string to sign: %s", sp_code_name(rc));
	strbuf_release(&ch);
	return rc;
}

static int compute_signature(const char *secret, const struct sigv4_scope *scope,
			     const struct strbuf *sts, char sig[65], struct err *e)
{
	unsigned char k[32], mac[32];
	char date[9];
	int rc;

	memcpy(date, scope->amz_date, 8);
	date[8] = '\0';
	rc = derive_key(secret, date, scope->region, scope->service, k);
	if (!rc)
		rc = hmac256(k, 32, sts->buf, sts->len, mac);
	if (!rc)
		hex_encode(mac, 32, sig);
	else
		err_set(e, rc, "could not derive signing key (secret key too long or hmac failed)");
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

static int copy_out(struct strbuf *dst, const struct strbuf *src)
{
	if (!dst)
		return 0;
	strbuf_reset(dst);
	return strbuf_add(dst, src->buf, src->len);
}

int sigv4_sign(const struct sigv4_req *req, const struct sigv4_creds *creds,
	       const struct sigv4_scope *scope, struct sigv4_out *out, struct err *e)
{
	struct strbuf creq = STRBUF_INIT, sts = STRBUF_INIT, sh = STRBUF_INIT,
		      authz = STRBUF_INIT;
	char sig[65], date[9];
	int rc = 0;

	err_clear(e);
	if (!req || !creds || !scope || !creds->access_key_id || !*creds->access_key_id ||
	    !creds->secret_access_key || !scope->region || !*scope->region ||
	    !scope->service || !*scope->service)
		return err_set(e, SP_EINVAL, "sigv4: missing request, credentials or scope");
	rc = build_sts(req, creds->session_token, scope, &creq, &sts, &sh, e);
	if (!rc)
		rc = compute_signature(creds->secret_access_key, scope, &sts, sig, e);
	if (!rc) {
		memcpy(date, scope->amz_date, 8);
		date[8] = '\0';
		rc = strbuf_addf(&authz,
				 SIGV4_ALGO " Credential=%s/%s/%s/%s/aws4_request, "
				 "SignedHeaders=%s, Signature=%s",
				 creds->access_key_id, date, scope->region, scope->service,
				 sh.buf, sig);
	}
	if (!rc && out) {
		rc = copy_out(out->canonical_request, &creq);
		if (!rc)
			rc = copy_out(out->string_to_sign, &sts);
		if (!rc)
			rc = copy_out(out->authorization, &authz);
		if (!rc)
			rc = copy_out(out->signed_headers, &sh);
	}
	if (rc && e && !e->code)
		err_set(e, rc, "sigv4: could not sign request: %s", sp_code_name(rc));
	OPENSSL_cleanse(sig, sizeof(sig));
	strbuf_release(&creq);
	strbuf_release(&sts);
	strbuf_release(&sh);
	strbuf_release(&authz);
	return rc;
}

/* ---- verification ---- */

struct authz_parts {
	char akid[129];
	char date[9];
	char region[64];
	char service[64];
	char signed_headers[1024];
	char signature[65];
};

/* Copy the value of "Key=" up to ',' (or end) into dst. */
static int authz_field(const char *s, const char *key, char *dst, size_t dstsz)
{
	const char *p = s, *end;
	size_t klen = strlen(key), n;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == s || p[-1] == ' ' || p[-1] == ',') && p[klen] == '=')
			break;
		p += klen;
	}
	if (!p)
		return -1;
	p += klen + 1;
	end = strchr(p, ',');
	n = end ? (size_t)(end - p) : strlen(p);
	while (n > 0 && p[n - 1] == ' ')
		n--;
	if (n == 0 || n >= dstsz)
		return -1;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

/* Credential=AKID/DATE/REGION/SERVICE/aws4_request */
static int split_credential(const char *cred, struct authz_parts *a)
{
	char *f[5];
	char buf[512];
	char *save = NULL, *t;
	int n = 0;

	if (str_copy(buf, sizeof(buf), cred))
		return -1;
	for (t = strtok_r(buf, "/", &save); t && n < 5; t = strtok_r(NULL, "/", &save))
		f[n++] = t;
	if (n != 5 || t || strcmp(f[4], "aws4_request") != 0 || strlen(f[1]) != 8)
		return -1;
	if (str_copy(a->akid, sizeof(a->akid), f[0]) || str_copy(a->date, sizeof(a->date), f[1]) ||
	    str_copy(a->region, sizeof(a->region), f[2]) ||
	    str_copy(a->service, sizeof(a->service), f[3]))
		return -1;
	return 0;
}

static int parse_authz(const char *v, struct authz_parts *a)
{
	char cred[512];
	size_t alen = strlen(SIGV4_ALGO);

	if (strlen(v) > SIGV4_MAX_AUTH_LEN || strncmp(v, SIGV4_ALGO, alen) != 0 || v[alen] != ' ')
		return -1;
	v += alen + 1;
	if (authz_field(v, "Credential", cred, sizeof(cred)) ||
	    authz_field(v, "SignedHeaders", a->signed_headers, sizeof(a->signed_headers)) ||
	    authz_field(v, "Signature", a->signature, sizeof(a->signature)) ||
	    strlen(a->signature) != 64)
		return -1;
	return split_credential(cred, a);
}

static const char *header_get(const struct sigv4_req *req, const char *lname)
{
	size_t i;

	for (i = 0; i < req->nheaders; i++)
		if (req->headers[i].name && !strcasecmp(req->headers[i].name, lname))
			return req->headers[i].value;
	return NULL;
}

/* Whether lname appears in the ';'-separated list. */
static int in_list(const char *list, const char *lname)
{
	size_t n = strlen(lname);
	const char *p = list;

	while (*p) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && !strncasecmp(p, lname, n))
			return 1;
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

/* Seconds since the epoch of "YYYYMMDDTHHMMSSZ" (UTC), or -1. */
static int64_t amz_date_epoch(const char *d)
{
	struct tm tm;
	int v[6], i;
	static const int off[6] = { 0, 4, 6, 9, 11, 13 }, len[6] = { 4, 2, 2, 2, 2, 2 };

	if (!valid_amz_date(d))
		return -1;
	for (i = 0; i < 6; i++) {
		int j, x = 0;

		for (j = 0; j < len[i]; j++)
			x = x * 10 + (d[off[i] + j] - '0');
		v[i] = x;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	return (int64_t)timegm(&tm);
}

/* The headers the client signed, in the order received. */
static int signed_subset(const struct sigv4_req *req, const char *list, struct sigv4_header *out,
			 size_t *n)
{
	size_t i;

	*n = 0;
	for (i = 0; i < req->nheaders && i < SIGV4_MAX_HEADERS; i++)
		if (req->headers[i].name && in_list(list, req->headers[i].name))
			out[(*n)++] = req->headers[i];
	return 0;
}

int sigv4_verify(const struct sigv4_req *req, const char *region, const char *service,
		 const char *(*lookup_secret)(void *ctx, const char *access_key_id), void *ctx,
		 int64_t now_s, int64_t max_skew_s, struct err *e)
{
	struct authz_parts a;
	struct sigv4_header hs[SIGV4_MAX_HEADERS];
	struct sigv4_req sub;
	struct sigv4_scope scope;
	struct strbuf creq = STRBUF_INIT, sts = STRBUF_INIT, sh = STRBUF_INIT;
	const char *authz, *amz_date, *secret;
	char sig[65];
	int64_t t;
	int rc = 0;

	err_clear(e);
	memset(&a, 0, sizeof(a));
	authz = header_get(req, "authorization");
	amz_date = header_get(req, "x-amz-date");
	if (!authz || parse_authz(authz, &a))
		return err_set(e, SP_EDENIED, "IncompleteSignature authorization header is "
			       "missing or malformed");
	if (!amz_date || (t = amz_date_epoch(amz_date)) < 0)
		return err_set(e, SP_EDENIED, "IncompleteSignature missing or invalid X-Amz-Date");
	if (!in_list(a.signed_headers, "host") || !in_list(a.signed_headers, "x-amz-date"))
		return err_set(e, SP_EDENIED, "IncompleteSignature host and x-amz-date must "
			       "be signed");
	if (strncmp(amz_date, a.date, 8) != 0 || strcmp(a.region, region) != 0 ||
	    strcmp(a.service, service) != 0)
		return err_set(e, SP_EDENIED, "SignatureDoesNotMatch credential scope "
			       "%s/%s/%s does not match request date, region or service",
			       a.date, a.region, a.service);
	if (t < now_s - max_skew_s || t > now_s + max_skew_s)
		return err_set(e, SP_EDENIED, "RequestExpired request date %s is outside "
			       "the allowed skew of %lld s", amz_date, (long long)max_skew_s);
	secret = lookup_secret ? lookup_secret(ctx, a.akid) : NULL;
	if (!secret)
		return err_set(e, SP_EDENIED, "InvalidClientTokenId unknown access key id '%s'",
			       a.akid);
	sub = *req;
	signed_subset(req, a.signed_headers, hs, &sub.nheaders);
	sub.headers = hs;
	scope.region = region;
	scope.service = service;
	scope.amz_date = amz_date;
	rc = build_sts(&sub, NULL, &scope, &creq, &sts, &sh, e);
	if (!rc && strcmp(sh.buf, a.signed_headers) != 0)
		rc = err_set(e, SP_EDENIED, "SignatureDoesNotMatch signed headers '%s' are "
			     "not all present or not in canonical order", a.signed_headers);
	if (!rc)
		rc = compute_signature(secret, &scope, &sts, sig, e);
	if (!rc && CRYPTO_memcmp(sig, a.signature, 64) != 0)
		rc = err_set(e, SP_EDENIED, "SignatureDoesNotMatch the request signature "
			     "does not match");
	if (rc && rc != SP_EDENIED)
		rc = err_set(e, SP_EDENIED, "IncompleteSignature could not canonicalise the "
			     "request: %s", sp_code_name(rc));
	OPENSSL_cleanse(sig, sizeof(sig));
	strbuf_release(&creq);
	strbuf_release(&sts);
	strbuf_release(&sh);
	return rc;
}
