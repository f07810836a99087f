/*
 * lc_call - one SigV4-signed Query API call, for trying the local provider
 * by hand and from shell tests (signed with drivers/sigv4, sent with curl).
 *
 *   build/tools/lc_call URL SERVICE 'Action=...&Version=...'
 *
 * Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, region from
 * AWS_REGION (default us-east-1). Prints the HTTP status on the first line,
 * then the body. Exit 0 when the call was made (whatever the status), 1 on
 * a transport or usage error. -n N repeats the call N times and prints only
 * the last answer and, on stderr, calls and milliseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "drivers/sigv4.h"
#include "model/strbuf.h"
#include "model/banned.h"

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	return strbuf_add(ud, p, sz * n) ? 0 : sz * n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One signed POST; status into *status and the body into out. 0 or -1. */
static int call(CURL *h, const char *url, const char *service, const char *body,
		const struct sigv4_creds *cr, const char *region, long *status, struct strbuf *out)
{
	struct sigv4_header hd[3];
	struct sigv4_req req;
	struct sigv4_scope sc;
	struct sigv4_out so;
	struct strbuf authz = STRBUF_INIT, line = STRBUF_INIT;
	struct curl_slist *sl = NULL;
	char host[256], date[32];
	const char *p = strstr(url, "://");
	time_t t = time(NULL);
	struct tm tm;
	int rc = -1;

	snprintf(host, sizeof(host), "%s", p ? p + 3 : url);
	host[strcspn(host, "/")] = '\0';
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
	hd[0].name = "Host";
	hd[0].value = host;
	hd[1].name = "X-Amz-Date";
	hd[1].value = date;
	hd[2].name = "Content-Type";
	hd[2].value = "application/x-www-form-urlencoded; charset=utf-8";
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = "/";
	req.query = "";
	req.headers = hd;
	req.nheaders = 3;
	req.payload = body;
	req.payload_len = strlen(body);
	sc.region = region;
	sc.service = service;
	sc.amz_date = date;
	memset(&so, 0, sizeof(so));
	so.authorization = &authz;
	if (sigv4_sign(&req, cr, &sc, &so, NULL))
		goto out;
	strbuf_addf(&line, "X-Amz-Date: %s", date);
	sl = curl_slist_append(sl, line.buf);
	strbuf_reset(&line);
	strbuf_addf(&line, "Authorization: %s", authz.buf);
	sl = curl_slist_append(sl, line.buf);
	sl = curl_slist_append(sl, "Content-Type: application/x-www-form-urlencoded; charset=utf-8");
	strbuf_reset(out);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, sl);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(h) == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
		rc = 0;
	}
out:
	curl_slist_free_all(sl);
	strbuf_release(&authz);
	strbuf_release(&line);
	return rc;
}

int main(int argc, char **argv)
{
	struct sigv4_creds cr = { getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"),
				  NULL };
	const char *region = getenv("AWS_REGION");
	struct strbuf out = STRBUF_INIT;
	long status = 0, n = 1, i;
	int64_t t0;
	CURL *h;
	int rc = 0, a = 1;

	if (argc > 2 && !strcmp(argv[1], "-n")) {
		n = strtol(argv[2], NULL, 10);
		a = 3;
	}
	if (argc - a != 3 || !cr.access_key_id || !cr.secret_access_key || n < 1) {
		fprintf(stderr, "usage: lc_call [-n N] URL SERVICE FORM-BODY "
			"(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION in the env)\n");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	h = curl_easy_init();
	t0 = now_ms();
	for (i = 0; i < n && !rc; i++)
		rc = call(h, argv[a], argv[a + 1], argv[a + 2], &cr, region ? region : "us-east-1",
			  &status, &out);
	if (n > 1)
		fprintf(stderr, "calls %ld ms %lld\n", i, (long long)(now_ms() - t0));
	if (rc)
		fprintf(stderr, "lc_call: request to %s failed\n", argv[a]);
	else
		printf("%ld\n%s\n", status, out.buf);
	strbuf_release(&out);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return rc ? 1 : 0;
}
