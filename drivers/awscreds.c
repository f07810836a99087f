/*
 * awscreds.c - the credentials chain (see awscreds.h).
 */
#include "awscreds.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "log.h"
#include "../model/banned.h"

#define AWSCREDS_PATH_MAX 1024
#define AWSCREDS_PROFILE_MAX 128
#define AWSCREDS_REGION_MAX 64
#define AWSCREDS_ENDPOINT_MAX 256
#define AWSCREDS_LINE_MAX 4096
#define AWSCREDS_ROLE_MAX 128
#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"

/* One set of credentials; wiped whenever replaced or freed. */
struct credset {
	char akid[AWSCREDS_KEY_MAX + 1];
	char secret[AWSCREDS_SECRET_MAX + 1];
	char token[AWSCREDS_TOKEN_MAX + 1];
	int64_t expiration;            /* 0: never */
	enum awscreds_source source;
};

struct awscreds {
	struct credset cur;
	struct credset fixed;          /* env or config-given credentials */
	char profile[AWSCREDS_PROFILE_MAX + 1];
	char region[AWSCREDS_REGION_MAX + 1];
	char creds_file[AWSCREDS_PATH_MAX];
	char config_file[AWSCREDS_PATH_MAX];
	char imds_endpoint[AWSCREDS_ENDPOINT_MAX + 1];
	char imds_token[AWSCREDS_TOKEN_MAX + 1];
	int64_t imds_token_expires;
	int imds_disabled;
	int tried;                     /* resolve() has run at least once */
	int64_t last_try;              /* now_s of its last run */
	struct err last_err;           /* what it failed with; code 0 when it did not */
	long connect_timeout_ms, timeout_ms;
};

static void credset_wipe(struct credset *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
	s->source = AWSCREDS_NONE;
}

const char *awscreds_source_name(enum awscreds_source s)
{
	static const char *const names[] = { "none", "env", "shared-file", "imds", "static" };

	return s < AWSCREDS_SOURCE_MAX ? names[s] : "unknown";
}

/*
 * Replace *s with the given strings. They are copied into a temporary
 * first: a value too long (SP_ELIMIT, naming which) leaves *s as it was,
 * so a bad answer during a refresh never discards still-valid credentials.
 * The temporary is wiped on every path.
 */
static int credset_fill(struct credset *s, const char *akid, const char *secret,
			const char *token, int64_t expiration, enum awscreds_source src,
			struct err *e)
{
	struct credset t;
	int rc = 0;

	memset(&t, 0, sizeof(t));
	if (str_copy(t.akid, sizeof(t.akid), akid))
		rc = err_set(e, SP_ELIMIT, "access key id from %s is longer than %d bytes",
			     awscreds_source_name(src), AWSCREDS_KEY_MAX);
	else if (str_copy(t.secret, sizeof(t.secret), secret))
		rc = err_set(e, SP_ELIMIT, "secret access key from %s is longer than %d bytes",
			     awscreds_source_name(src), AWSCREDS_SECRET_MAX);
	else if (token && str_copy(t.token, sizeof(t.token), token))
		rc = err_set(e, SP_ELIMIT, "session token from %s is longer than %d bytes",
			     awscreds_source_name(src), AWSCREDS_TOKEN_MAX);
	if (!rc) {
		t.expiration = expiration;
		t.source = src;
		credset_wipe(s);
		*s = t;
	}
	credset_wipe(&t);
	return rc;
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int copy_setting(char *dst, size_t dsz, const char *v, const char *what, struct err *e)
{
	if (str_copy(dst, dsz, v ? v : ""))
		return err_set(e, SP_EINVAL, "%s is longer than %zu bytes", what, dsz - 1);
	return 0;
}

/* ~/.aws/NAME unless the variable names a path. */
static int file_path(char *dst, size_t dsz, const char *var, const char *name, struct err *e)
{
	const char *v = env_nonempty(var), *home = env_nonempty("HOME");

	if (v)
		return copy_setting(dst, dsz, v, var, e);
	dst[0] = '\0';
	if (home && snprintf(dst, dsz, "%s/.aws/%s", home, name) >= (int)dsz)
		return err_set(e, SP_EINVAL, "path of ~/.aws/%s is too long", name);
	return 0;
}

static int read_env(struct awscreds *c, const struct awscreds_config *cfg, struct err *e)
{
	const char *akid = env_nonempty("AWS_ACCESS_KEY_ID");
	const char *secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
	const char *dis = env_nonempty("AWS_EC2_METADATA_DISABLED");
	const char *region = cfg->region ? cfg->region : env_nonempty("AWS_REGION");
	int rc = 0;

	if (!region)
		region = env_nonempty("AWS_DEFAULT_REGION");
	rc = copy_setting(c->profile, sizeof(c->profile),
			  cfg->profile ? cfg->profile :
			  env_nonempty("AWS_PROFILE") ? env_nonempty("AWS_PROFILE") : "default",
			  "AWS_PROFILE", e);
	if (!rc)
		rc = copy_setting(c->region, sizeof(c->region), region, "AWS_REGION", e);
	if (!rc)
		rc = file_path(c->creds_file, sizeof(c->creds_file),
			       "AWS_SHARED_CREDENTIALS_FILE", "credentials", e);
	if (!rc)
		rc = file_path(c->config_file, sizeof(c->config_file), "AWS_CONFIG_FILE",
			       "config", e);
	if (!rc)
		rc = copy_setting(c->imds_endpoint, sizeof(c->imds_endpoint),
				  env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT") ?
				  env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT") :
				  IMDS_DEFAULT_ENDPOINT, "AWS_EC2_METADATA_SERVICE_ENDPOINT", e);
	c->imds_disabled = dis && !strcasecmp(dis, "true");
	if (!rc && cfg->access_key_id && cfg->secret_access_key)
		rc = credset_fill(&c->fixed, cfg->access_key_id, cfg->secret_access_key,
				  cfg->session_token, 0, AWSCREDS_STATIC, e);
	else if (!rc && akid && secret)
		rc = credset_fill(&c->fixed, akid, secret, env_nonempty("AWS_SESSION_TOKEN"), 0,
				  AWSCREDS_ENV, e);
	return rc;
}

static int config_region(struct awscreds *c, struct err *e);

int awscreds_new(const struct awscreds_config *cfg, struct awscreds **out, struct err *e)
{
	static const struct awscreds_config none;
	struct awscreds *c;
	int rc;

	if (!cfg)
		cfg = &none;
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, SP_ENOMEM, "out of memory allocating credentials");
	c->connect_timeout_ms = cfg->imds_connect_timeout_ms > 0 ? cfg->imds_connect_timeout_ms
								  : 1000;
	c->timeout_ms = cfg->imds_timeout_ms > 0 ? cfg->imds_timeout_ms : 2000;
	rc = read_env(c, cfg, e);
	if (!rc && !c->region[0])
		rc = config_region(c, e);
	if (rc) {
		awscreds_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* ---- shared files ---- */

/* Values found in one file for one profile. */
struct ini_vals {
	char akid[AWSCREDS_KEY_MAX + 1];
	char secret[AWSCREDS_SECRET_MAX + 1];
	char token[AWSCREDS_TOKEN_MAX + 1];
	char region[AWSCREDS_REGION_MAX + 1];
};

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Whether "[...]" names our profile: [NAME] in credentials, [profile NAME] or [default] in config. */
static int section_matches(const char *sec, const char *profile, int is_config)
{
	if (!is_config || !strcmp(profile, "default"))
		if (!strcmp(sec, profile))
			return 1;
	if (is_config && !strncmp(sec, "profile", 7) && isspace((unsigned char)sec[7]))
		return !strcmp(trim((char *)sec + 8), profile);
	return 0;
}

static void ini_assign(struct ini_vals *v, const char *key, const char *val)
{
	if (!strcmp(key, "aws_access_key_id"))
		str_copy(v->akid, sizeof(v->akid), val);
	else if (!strcmp(key, "aws_secret_access_key"))
		str_copy(v->secret, sizeof(v->secret), val);
	else if (!strcmp(key, "aws_session_token"))
		str_copy(v->token, sizeof(v->token), val);
	else if (!strcmp(key, "region"))
		str_copy(v->region, sizeof(v->region), val);
}

/* Parse INI text for profile. */
static void ini_parse(char *text, const char *profile, int is_config, struct ini_vals *v)
{
	char *save = NULL, *line;
	int in = 0;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *l = trim(line), *eq;

		if (*l == '#' || *l == ';' || *l == '\0')
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']');

			if (end)
				*end = '\0';
			in = end && section_matches(trim(l + 1), profile, is_config);
			continue;
		}
		eq = strchr(l, '=');
		if (!in || !eq)
			continue;
		*eq = '\0';
		ini_assign(v, trim(l), trim(eq + 1));
	}
}

/*
 * Read path into a buffer (caller wipes and frees). 1 when absent, 0 when
 * read, negative on error.
 */
static int read_small_file(const char *path, char **out, size_t *len, int *others_read,
			   struct err *e)
{
	struct stat st;
	FILE *f;
	char *buf;
	size_t n;

	if (!*path || stat(path, &st) != 0)
		return 1;
	if (!S_ISREG(st.st_mode))
		return err_set(e, SP_EINVAL, "credentials file '%s' is not a regular file", path);
	if (st.st_size > AWSCREDS_FILE_MAX)
		return err_set(e, SP_ELIMIT, "credentials file '%s' is larger than %d bytes",
			       path, AWSCREDS_FILE_MAX);
	f = fopen(path, "r");
	if (!f)
		return err_set(e, SP_EIO, "could not open credentials file '%s': %s", path,
			       strerror(errno));
	buf = calloc(1, (size_t)st.st_size + 1);
	if (!buf) {
		fclose(f);
		return err_set(e, SP_ENOMEM, "out of memory reading '%s'", path);
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = (size_t)st.st_size + 1;
	*others_read = (st.st_mode & S_IROTH) != 0;
	return 0;
}

static int load_ini(const char *path, const char *profile, int is_config, int check_perm,
		    struct ini_vals *v, struct err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int others = 0, rc;

	rc = read_small_file(path, &buf, &len, &others, e);
	if (rc)
		return rc > 0 ? 0 : rc;
	ini_parse(buf, profile, is_config, v);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (check_perm && others && v->secret[0]) {
		OPENSSL_cleanse(v, sizeof(*v));
		return err_set(e, SP_EDENIED, "refusing credentials in '%s': the file is "
			       "readable by others (chmod 600 it)", path);
	}
	return 0;
}

/* The profile's region from the config file, when the environment named none. */
static int config_region(struct awscreds *c, struct err *e)
{
	struct ini_vals cf;
	int rc;

	memset(&cf, 0, sizeof(cf));
	rc = load_ini(c->config_file, c->profile, 1, 0, &cf, e);
	if (!rc)
		str_copy(c->region, sizeof(c->region), cf.region);
	OPENSSL_cleanse(&cf, sizeof(cf));
	return rc;
}

/* Credentials file first, then config file; region only from config. */
static int from_files(struct awscreds *c, struct err *e)
{
	struct ini_vals cr, cf;
	int rc;

	memset(&cr, 0, sizeof(cr));
	memset(&cf, 0, sizeof(cf));
	rc = load_ini(c->creds_file, c->profile, 0, 1, &cr, e);
	if (!rc)
		rc = load_ini(c->config_file, c->profile, 1, 1, &cf, e);
	if (!rc && !c->region[0] && cf.region[0])
		str_copy(c->region, sizeof(c->region), cf.region);
	if (!rc && cr.akid[0] && cr.secret[0])
		rc = credset_fill(&c->cur, cr.akid, cr.secret, cr.token, 0, AWSCREDS_FILE, e);
	else if (!rc && cf.akid[0] && cf.secret[0])
		rc = credset_fill(&c->cur, cf.akid, cf.secret, cf.token, 0, AWSCREDS_FILE, e);
	else if (!rc)
		rc = 1;
	OPENSSL_cleanse(&cr, sizeof(cr));
	OPENSSL_cleanse(&cf, sizeof(cf));
	return rc;
}

/* ---- IMDSv2 ---- */

struct body {
	char *buf;
	size_t len, cap;
	int over;
};

static size_t body_write(char *p, size_t sz, size_t nm, void *ud)
{
	struct body *b = ud;
	size_t n = sz * nm;

	if (b->len + n + 1 > b->cap) {
		b->over = 1;
		return 0;
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return n;
}

/* One IMDS call; the body (wiped by the caller) goes into b. */
static int imds_call(struct awscreds *c, int put, const char *path, struct body *b,
		     struct err *e)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL, *tmp;
	char url[AWSCREDS_ENDPOINT_MAX + 256], hv[AWSCREDS_TOKEN_MAX + 64];
	long status = 0;
	CURLcode cc;
	int rc = 0;

	if (!h)
		return err_set(e, SP_ENOMEM, "could not create curl handle for imds");
	snprintf(url, sizeof(url), "%s%s", c->imds_endpoint, path);
	if (put)
		snprintf(hv, sizeof(hv), "X-aws-ec2-metadata-token-ttl-seconds: %d",
			 AWSCREDS_IMDS_TOKEN_TTL_S);
	else
		snprintf(hv, sizeof(hv), "X-aws-ec2-metadata-token: %s", c->imds_token);
	tmp = curl_slist_append(hdrs, hv);
	OPENSSL_cleanse(hv, sizeof(hv));
	if (!tmp) {
		curl_easy_cleanup(h);
		return err_set(e, SP_ENOMEM, "out of memory building imds request");
	}
	hdrs = tmp;
	b->len = 0;
	b->over = 0;
	b->buf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	if (put) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (b->over)
		rc = err_set(e, SP_ELIMIT, "imds response for %s is larger than %d bytes", path,
			     AWSCREDS_IMDS_BODY_MAX);
	else if (cc == CURLE_OPERATION_TIMEDOUT)
		rc = err_set(e, SP_ETIMEOUT, "imds %s timed out after %ld ms", path,
			     c->timeout_ms);
	else if (cc != CURLE_OK)
		rc = err_set(e, SP_EIO, "imds %s failed: %s", path, curl_easy_strerror(cc));
	else if (status == 401 || status == 403)
		rc = err_set(e, SP_EDENIED, "imds %s refused with http %ld", path, status);
	else if (status == 404)
		rc = err_set(e, SP_ENOTFOUND, "imds %s not found (no instance role?)", path);
	else if (status != 200)
		rc = err_set(e, status >= 500 ? SP_EUNAVAIL : SP_EPROTO,
			     "imds %s answered http %ld", path, status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

static int imds_token(struct awscreds *c, int64_t now, struct body *b, struct err *e)
{
	int rc;

	if (c->imds_token[0] && now < c->imds_token_expires)
		return 0;
	rc = imds_call(c, 1, "/latest/api/token", b, e);
	if (!rc && (b->len == 0 || str_copy(c->imds_token, sizeof(c->imds_token), trim(b->buf))))
		rc = err_set(e, SP_EPROTO, "imds returned an empty or oversized session token");
	if (!rc)
		c->imds_token_expires = now + AWSCREDS_IMDS_TOKEN_TTL_S - 60;
	return rc;
}

/* "2026-11-23T08:00:00Z" -> seconds, or -1. */
static int64_t parse_iso8601(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec;
	char z = 0;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &z) != 7 ||
	    z != 'Z')
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (int64_t)timegm(&tm);
}

/* Wipe a string inside a jansson value before it is freed. */
static void json_wipe(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

static int imds_parse_creds(struct awscreds *c, const struct body *b, struct err *e)
{
	json_error_t je;
	json_t *o = json_loadb(b->buf, b->len, 0, &je);
	const char *code, *akid, *secret, *token, *exp;
	int64_t t;
	int rc = 0;

	if (!json_is_object(o)) {
		json_decref(o);
		return err_set(e, SP_EPROTO, "imds credentials are not a json object");
	}
	code = json_string_value(json_object_get(o, "Code"));
	akid = json_string_value(json_object_get(o, "AccessKeyId"));
	secret = json_string_value(json_object_get(o, "SecretAccessKey"));
	token = json_string_value(json_object_get(o, "Token"));
	exp = json_string_value(json_object_get(o, "Expiration"));
	t = parse_iso8601(exp);
	if (code && strcmp(code, "Success") != 0)
		rc = err_set(e, SP_EUNAVAIL, "imds credentials code is '%.64s'", code);
	else if (!akid || !secret || !*akid || !*secret)
		rc = err_set(e, SP_EPROTO, "imds credentials lack AccessKeyId or SecretAccessKey");
	else if (t < 0)
		rc = err_set(e, SP_EPROTO, "imds credentials have no valid Expiration");
	else
		rc = credset_fill(&c->cur, akid, secret, token, t, AWSCREDS_IMDS, e);
	json_wipe(o, "SecretAccessKey");
	json_wipe(o, "Token");
	json_decref(o);
	return rc;
}

static int from_imds(struct awscreds *c, int64_t now, struct err *e)
{
	static const char base[] = "/latest/meta-data/iam/security-credentials/";
	char role[AWSCREDS_ROLE_MAX + 1], path[sizeof(base) + AWSCREDS_ROLE_MAX + 1];
	char *buf = calloc(1, AWSCREDS_IMDS_BODY_MAX);
	struct body b = { buf, 0, AWSCREDS_IMDS_BODY_MAX, 0 };
	char *nl;
	int rc;

	if (!buf)
		return err_set(e, SP_ENOMEM, "out of memory for imds response");
	rc = imds_token(c, now, &b, e);
	if (!rc)
		rc = imds_call(c, 0, base, &b, e);
	if (rc == SP_EDENIED) /* token revoked or expired early: fetch a new one next time */
		c->imds_token[0] = '\0';
	if (!rc) {
		nl = strchr(b.buf, '\n');
		if (nl)
			*nl = '\0';
		if (!*trim(b.buf) || str_copy(role, sizeof(role), trim(b.buf)))
			rc = err_set(e, SP_EPROTO, "imds returned no usable role name");
	}
	if (!rc) {
		snprintf(path, sizeof(path), "%s%s", base, role);
		rc = imds_call(c, 0, path, &b, e);
	}
	if (!rc)
		rc = imds_parse_creds(c, &b, e);
	OPENSSL_cleanse(buf, AWSCREDS_IMDS_BODY_MAX);
	free(buf);
	return rc;
}

int awscreds_resolve_region(struct awscreds *c, int64_t now_s, struct err *e)
{
	char *buf;
	struct body b;
	int rc;

	if (c->region[0])
		return 0;
	if (c->imds_disabled)
		return err_set(e, SP_ENOTFOUND, "no aws region: AWS_REGION is unset, profile '%s' "
			       "in '%s' has none, and imds is disabled", c->profile, c->config_file);
	buf = calloc(1, AWSCREDS_IMDS_BODY_MAX);
	if (!buf)
		return err_set(e, SP_ENOMEM, "out of memory for imds response");
	memset(&b, 0, sizeof(b));
	b.buf = buf;
	b.cap = AWSCREDS_IMDS_BODY_MAX;
	rc = imds_token(c, now_s, &b, e);
	if (!rc)
		rc = imds_call(c, 0, "/latest/meta-data/placement/region", &b, e);
	if (!rc && (!*trim(b.buf) || str_copy(c->region, sizeof(c->region), trim(b.buf)))) {
		c->region[0] = '\0';
		rc = err_set(e, SP_EPROTO, "imds returned no usable region");
	}
	if (rc)
		err_prefix(e, "no aws region: AWS_REGION is unset, profile '%s' in '%s' has none, "
			   "and imds at %s failed", c->profile, c->config_file, c->imds_endpoint);
	OPENSSL_cleanse(buf, AWSCREDS_IMDS_BODY_MAX);
	free(buf);
	return rc;
}

/* ---- the chain ---- */

static void lend(const struct credset *s, struct sigv4_creds *out)
{
	out->access_key_id = s->akid;
	out->secret_access_key = s->secret;
	out->session_token = s->token[0] ? s->token : NULL;
}

static int cur_usable(const struct awscreds *c, int64_t now, int64_t margin)
{
	return c->cur.source != AWSCREDS_NONE &&
	       (c->cur.expiration == 0 || now < c->cur.expiration - margin);
}

static int resolve(struct awscreds *c, int64_t now, struct err *e)
{
	int rc;

	if (c->fixed.source != AWSCREDS_NONE) {
		c->cur = c->fixed;
		return 0;
	}
	rc = from_files(c, e);
	if (rc <= 0)
		return rc;
	if (c->imds_disabled)
		return err_set(e, SP_ENOTFOUND, "no aws credentials: none in the environment "
			       "(AWS_ACCESS_KEY_ID), none for profile '%s' in '%s' or '%s', and "
			       "imds is disabled", c->profile, c->creds_file, c->config_file);
	rc = from_imds(c, now, e);
	if (rc)
		err_prefix(e, "no aws credentials: none in the environment (AWS_ACCESS_KEY_ID), "
			   "none for profile '%s' in '%s' or '%s', and imds at %s failed",
			   c->profile, c->creds_file, c->config_file, c->imds_endpoint);
	return rc;
}

/* Whether resolve() last ran less than interval seconds before now (a clock gone back: no). */
static int tried_within(const struct awscreds *c, int64_t now, int64_t interval)
{
	return c->tried && now >= c->last_try && now - c->last_try < interval;
}

/*
 * Serve without asking the sources again: the held credentials are outside
 * the refresh margin, or a refresh ran too recently (REFRESH_INTERVAL while
 * they are still valid, RETRY_INTERVAL when they are not).
 */
static int too_soon(const struct awscreds *c, int64_t now)
{
	if (cur_usable(c, now, AWSCREDS_REFRESH_MARGIN_S))
		return 1;
	if (cur_usable(c, now, 0))
		return tried_within(c, now, AWSCREDS_REFRESH_INTERVAL_S);
	return tried_within(c, now, AWSCREDS_RETRY_INTERVAL_S);
}

int awscreds_get(struct awscreds *c, int64_t now_s, struct sigv4_creds *out, struct err *e)
{
	struct err le = ERR_INIT;
	int rc;

	if (too_soon(c, now_s)) {
		if (c->last_err.code && !cur_usable(c, now_s, 0)) {
			if (e)
				*e = c->last_err;
			return c->last_err.code;
		}
		lend(&c->cur, out);
		return 0;
	}
	c->tried = 1;
	c->last_try = now_s;
	rc = resolve(c, now_s, &le);
	if (rc)
		c->last_err = le;
	else
		err_clear(&c->last_err);
	if (rc && cur_usable(c, now_s, 0)) {
		log_debug("awscreds: refresh failed, keeping credentials valid until %lld, next "
			  "try in %d s: %s", (long long)c->cur.expiration,
			  AWSCREDS_REFRESH_INTERVAL_S, le.msg);
		rc = 0;
	} else if (rc) {
		if (e)
			*e = le;
		return rc;
	}
	log_debug("awscreds: credentials source=%s expiration=%lld",
		  awscreds_source_name(c->cur.source), (long long)c->cur.expiration);
	lend(&c->cur, out);
	return 0;
}

const char *awscreds_region(const struct awscreds *c)
{
	return c->region;
}

enum awscreds_source awscreds_source(const struct awscreds *c)
{
	return c->cur.source;
}

int64_t awscreds_expiration(const struct awscreds *c)
{
	return c->cur.expiration;
}

void awscreds_free(struct awscreds *c)
{
	if (!c)
		return;
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}
