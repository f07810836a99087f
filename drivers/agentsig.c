#include "agentsig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "../model/strbuf.h"
#include "../model/banned.h"

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode exactly 2*n lowercase hex chars; 0 or -1. */
static int hex_decode(const char *in, unsigned char *out, size_t n)
{
	size_t i;

	if (strlen(in) != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		int hi = hex_digit((unsigned char)in[2 * i]);
		int lo = hex_digit((unsigned char)in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int read_secret_fd(int fd, struct agentsig_key *k, const char *path, struct err *e)
{
	unsigned char buf[AGENTSIG_SECRET_MAX + 2];
	size_t len = 0;
	ssize_t n;
	int rc = 0;

	for (;;) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err_set(e, SP_EIO, "could not read secret file '%s': %s", path,
				     strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf))
			break;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
			   buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (len > AGENTSIG_SECRET_MAX) {
		rc = err_set(e, SP_ELIMIT, "secret file '%s' is longer than %d bytes", path,
			     AGENTSIG_SECRET_MAX);
		goto out;
	}
	if (len < AGENTSIG_SECRET_MIN) {
		rc = err_set(e, SP_EINVAL, "secret file '%s' holds fewer than %d bytes", path,
			     AGENTSIG_SECRET_MIN);
		goto out;
	}
	memcpy(k->bytes, buf, len);
	k->len = len;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

int agentsig_key_load(struct agentsig_key *k, const char *path, struct err *e)
{
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return err_set(e, SP_EIO, "could not open secret file '%s': %s", path,
			       strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = err_set(e, SP_EIO, "could not stat secret file '%s': %s", path,
			     strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = err_set(e, SP_EDENIED, "secret file '%s' is not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = err_set(e, SP_EDENIED,
			     "secret file '%s' is readable by group or others (mode %04o), "
			     "refusing it: chmod 600 it",
			     path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	rc = read_secret_fd(fd, k, path, e);
out:
	close(fd);
	return rc;
}

void agentsig_key_wipe(struct agentsig_key *k)
{
	if (!k)
		return;
	OPENSSL_cleanse(k->bytes, sizeof(k->bytes));
	k->len = 0;
}

int agentsig_nonce(char out[AGENTSIG_NONCE_LEN + 1], struct err *e)
{
	unsigned char raw[AGENTSIG_NONCE_LEN / 2];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return err_set(e, SP_EINTERNAL, "could not draw a random nonce");
	hex_encode(raw, sizeof(raw), out);
	return 0;
}

static int valid_nonce(const char *nonce)
{
	unsigned char raw[AGENTSIG_NONCE_LEN / 2];

	return nonce && hex_decode(nonce, raw, sizeof(raw)) == 0;
}

/* The raw 32-byte MAC for the request. */
static int sign_raw(const struct agentsig_key *k, const char *method, const char *path,
		    int64_t ts, const char *nonce, int64_t epoch, const void *body,
		    size_t len, unsigned char mac[32], struct err *e)
{
	struct strbuf sts;
	unsigned char bh[SHA256_DIGEST_LENGTH];
	char bhex[2 * SHA256_DIGEST_LENGTH + 1];
	unsigned int maclen = 32;
	int rc = 0;

	if (!k || k->len == 0 || !method || !path || !valid_nonce(nonce) || epoch < 0 ||
	    (!body && len))
		return err_set(e, SP_EINVAL, "agent request signature: bad input");
	strbuf_init(&sts, 8192);
	SHA256(body ? (const unsigned char *)body : (const unsigned char *)"", len, bh);
	hex_encode(bh, sizeof(bh), bhex);
	if (strbuf_addf(&sts, "SPINUP-HMAC-SHA256\n%s\n%s\n%lld\n%s\n%lld\n%s", method, path,
			(long long)ts, nonce, (long long)epoch, bhex) < 0) {
		rc = err_set(e, SP_ELIMIT, "agent request signature: path too long");
		goto out;
	}
	if (!HMAC(EVP_sha256(), k->bytes, (int)k->len, (const unsigned char *)sts.buf, sts.len,
		  mac, &maclen) || maclen != 32)
		rc = err_set(e, SP_EINTERNAL, "agent request signature: hmac failed");
out:
	strbuf_release(&sts);
	return rc;
}

int agentsig_sign(const struct agentsig_key *k, const char *method, const char *path,
		  int64_t ts, const char *nonce, int64_t epoch, const void *body, size_t len,
		  char out[AGENTSIG_HEX_LEN + 1], struct err *e)
{
	unsigned char mac[32];
	int rc;

	rc = sign_raw(k, method, path, ts, nonce, epoch, body, len, mac, e);
	if (!rc)
		hex_encode(mac, sizeof(mac), out);
	return rc;
}

const char *agentsig_why_name(enum agentsig_why w)
{
	static const char *const names[AGENTSIG_WHY_MAX] = {
		"ok", "missing_auth", "bad_signature", "clock_skew", "replay",
	};

	if ((int)w < 0 || w >= AGENTSIG_WHY_MAX)
		return "unknown";
	return names[w];
}

/* A decimal int64 with nothing around it; 0 or -1. */
static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s || strlen(s) > 20)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s)
		return -1;
	*out = v;
	return 0;
}

static int refuse(enum agentsig_why *why, enum agentsig_why w, struct err *e, const char *msg)
{
	if (why)
		*why = w;
	return err_set(e, SP_EDENIED, "request refused: %s", msg);
}

int agentsig_verify(const struct agentsig_key *k, const char *method, const char *path,
		    const struct agentsig_hdrs *h, const void *body, size_t len, int64_t now,
		    int64_t *ts, int64_t *epoch, enum agentsig_why *why, struct err *e)
{
	unsigned char want[32], got[32];
	int64_t t, ep;

	if (why)
		*why = AGENTSIG_OK;
	if (!h->timestamp || !h->nonce || !h->epoch || !h->signature)
		return refuse(why, AGENTSIG_MISSING, e, "signature headers missing");
	if (parse_i64(h->timestamp, &t) < 0 || parse_i64(h->epoch, &ep) < 0 || ep < 0 ||
	    !valid_nonce(h->nonce) || hex_decode(h->signature, got, sizeof(got)) < 0)
		return refuse(why, AGENTSIG_MISSING, e, "signature headers malformed");
	if (sign_raw(k, method, path, t, h->nonce, ep, body, len, want, NULL) < 0)
		return refuse(why, AGENTSIG_MISSING, e, "request cannot be signed");
	if (CRYPTO_memcmp(want, got, sizeof(want)) != 0)
		return refuse(why, AGENTSIG_BAD_SIGNATURE, e, "bad signature");
	if (t > now + AGENTSIG_SKEW_MAX_S || t < now - AGENTSIG_SKEW_MAX_S)
		return refuse(why, AGENTSIG_SKEW, e, "timestamp outside the allowed clock skew");
	*ts = t;
	*epoch = ep;
	return 0;
}

struct replay_entry {
	unsigned char sig[32];
	int64_t ts;
};

struct agentsig_replay {
	struct replay_entry *ring;   /* insertion order, head = oldest */
	size_t max, head, n;
	int64_t floor;               /* timestamps <= floor are refused (evicted live entries) */
};

struct agentsig_replay *agentsig_replay_new(size_t max)
{
	struct agentsig_replay *r;

	if (max == 0 || max > AGENTSIG_REPLAY_MAX)
		max = AGENTSIG_REPLAY_MAX;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->ring = calloc(max, sizeof(*r->ring));
	if (!r->ring) {
		free(r);
		return NULL;
	}
	r->max = max;
	r->floor = INT64_MIN;
	return r;
}

void agentsig_replay_free(struct agentsig_replay *r)
{
	if (!r)
		return;
	free(r->ring);
	free(r);
}

static void replay_expire(struct agentsig_replay *r, int64_t now)
{
	while (r->n > 0 && r->ring[r->head].ts < now - AGENTSIG_SKEW_MAX_S) {
		r->head = (r->head + 1) % r->max;
		r->n--;
	}
}

int agentsig_replay_check(struct agentsig_replay *r, const char *sig, int64_t ts, int64_t now,
			  struct err *e)
{
	unsigned char raw[32];
	size_t i;

	if (hex_decode(sig, raw, sizeof(raw)) < 0)
		return err_set(e, SP_EDENIED, "request refused: signature malformed");
	if (ts <= r->floor)
		return err_set(e, SP_EDENIED,
			       "request refused: too many recent requests to rule out a replay");
	replay_expire(r, now);
	for (i = 0; i < r->n; i++) {
		const struct replay_entry *x = &r->ring[(r->head + i) % r->max];

		if (!memcmp(x->sig, raw, sizeof(raw)))
			return err_set(e, SP_EDENIED, "request refused: replayed signature");
	}
	if (r->n == r->max) {
		if (r->ring[r->head].ts > r->floor)
			r->floor = r->ring[r->head].ts;
		r->head = (r->head + 1) % r->max;
		r->n--;
	}
	memcpy(r->ring[(r->head + r->n) % r->max].sig, raw, sizeof(raw));
	r->ring[(r->head + r->n) % r->max].ts = ts;
	r->n++;
	return 0;
}
