/*
 * manifest.c - YAML manifests into pool_spec / workspace_spec.
 *
 * libyaml's document API loads one document at a time into a node tree;
 * a small field table per kind walks it. Every problem becomes a diag with
 * the node's position, and decoding goes on, so one run reports every
 * error in a file. A document is added to the set only when it had none.
 * The format is documented in manifests/README.md.
 */
#include "manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "err.h"
#include "banned.h"

/* ------------------------------------------------------------ diagnostics */

void diag_list_init(struct diag_list *d)
{
	memset(d, 0, sizeof(*d));
}

void diag_list_release(struct diag_list *d)
{
	if (!d)
		return;
	free(d->v);
	memset(d, 0, sizeof(*d));
}

int diag_add(struct diag_list *d, const char *file, int line, int col, const char *field,
	     const char *fmt, ...)
{
	struct diag *g;
	va_list ap;

	if (d->n >= MANIFEST_MAX_DIAGS) {
		d->dropped++;
		return 0;
	}
	if (d->n == d->alloc) {
		size_t na = d->alloc ? d->alloc * 2 : 16;
		struct diag *nv = realloc(d->v, na * sizeof(*nv));
		if (!nv)
			return SP_ENOMEM;
		d->v = nv;
		d->alloc = na;
	}
	g = &d->v[d->n++];
	memset(g, 0, sizeof(*g));
	str_copy(g->file, sizeof(g->file), file ? file : "");
	g->line = line;
	g->col = col;
	str_copy(g->field, sizeof(g->field), field ? field : "");
	va_start(ap, fmt);
	vsnprintf(g->msg, sizeof(g->msg), fmt, ap);
	va_end(ap);
	return 0;
}

int diag_list_format(const struct diag_list *d, struct strbuf *out)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < d->n && !rc; i++) {
		const struct diag *g = &d->v[i];
		rc = strbuf_addstr(out, g->file);
		if (!rc && g->line > 0)
			rc = strbuf_addf(out, ":%d:%d", g->line, g->col);
		if (!rc)
			rc = strbuf_addstr(out, ": ");
		if (!rc && g->field[0])
			rc = strbuf_addf(out, "%s: ", g->field);
		if (!rc)
			rc = strbuf_addf(out, "%s\n", g->msg);
	}
	if (!rc && d->dropped)
		rc = strbuf_addf(out, "... and %zu more errors\n", d->dropped);
	return rc;
}

/* ------------------------------------------------------------ sets */

const char *manifest_kind_name(enum manifest_kind k)
{
	static const char *const names[MANIFEST_KIND_MAX] = { "Pool", "Workspace" };

	if ((int)k < 0 || k >= MANIFEST_KIND_MAX)
		return NULL;
	return names[k];
}

void manifest_set_init(struct manifest_set *s)
{
	memset(s, 0, sizeof(*s));
}

void manifest_set_release(struct manifest_set *s)
{
	if (!s)
		return;
	free(s->docs);
	memset(s, 0, sizeof(*s));
}

static int set_push(struct manifest_set *s, const struct manifest_doc *doc)
{
	if (s->n == s->alloc) {
		size_t na = s->alloc ? s->alloc * 2 : 8;
		struct manifest_doc *nv = realloc(s->docs, na * sizeof(*nv));
		if (!nv)
			return SP_ENOMEM;
		s->docs = nv;
		s->alloc = na;
	}
	s->docs[s->n++] = *doc;
	return 0;
}

/* ------------------------------------------------------------ decoding */

/* One decode run over a file. */
struct dec {
	const char *file;
	yaml_document_t *doc;
	struct diag_list *diags;
	int nerr;        /* errors in the current document */
	int oom;
};

static void derr(struct dec *d, const yaml_node_t *n, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void derr(struct dec *d, const yaml_node_t *n, const char *field, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->nerr++;
	if (diag_add(d->diags, d->file, n ? (int)n->start_mark.line + 1 : 0,
		     n ? (int)n->start_mark.column + 1 : 0, field, "%s", msg))
		d->oom = 1;
}

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_SCALAR_NODE:
		return "a scalar";
	default:
		return "nothing";
	}
}

static int is_null(const yaml_node_t *n)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	v = (const char *)n->data.scalar.value;
	return !strcmp(v, "") || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

/* A scalar's text, or NULL after reporting the wrong type. */
static const char *scalar(struct dec *d, const yaml_node_t *n, const char *field)
{
	if (n->type != YAML_SCALAR_NODE) {
		derr(d, n, field, "expected a scalar, found %s", node_kind(n));
		return NULL;
	}
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length) {
		derr(d, n, field, "contains a NUL byte");
		return NULL;
	}
	return (const char *)n->data.scalar.value;
}

static void path_join(char *out, size_t size, const char *parent, const char *key)
{
	if (parent[0])
		snprintf(out, size, "%s.%s", parent, key);
	else
		snprintf(out, size, "%s", key);
}

enum ftype {
	F_STR,      /* any text up to size-1 bytes */
	F_NAME,     /* DNS label */
	F_TOKEN,    /* non-empty, printable, no spaces (image, region, asg) */
	F_BUCKET,   /* S3 bucket name */
	F_INT,      /* plain integer in [min,max] */
	F_CPU,      /* "500m", "2", 1.5 -> millicores */
	F_STATE,    /* Running | Stopped */
	F_LABELS,   /* mapping of label keys to values */
	F_MAP,      /* nested mapping described by sub */
	F_SERVER    /* set by the server (`spinctl get -o yaml`): accepted, ignored */
};

struct field {
	const char *key;
	enum ftype type;
	size_t off;          /* into the target struct */
	size_t size;         /* F_STR/F_NAME/...: buffer size */
	long min, max;       /* F_INT/F_CPU */
	int required;
	uint32_t bit;        /* present bit */
	const struct field *sub;  /* F_MAP */
};

#define END_FIELDS { NULL, F_STR, 0, 0, 0, 0, 0, 0, NULL }

#define PSTR(k, t, m, req, bit) \
	{ k, t, offsetof(struct pool_spec, m), sizeof(((struct pool_spec *)0)->m), 0, 0, req, bit, NULL }
#define PINT(k, m, lo, hi, bit) \
	{ k, F_INT, offsetof(struct pool_spec, m), sizeof(int), lo, hi, 0, bit, NULL }
#define WSTR(k, t, m, req, bit) \
	{ k, t, offsetof(struct workspace_spec, m), sizeof(((struct workspace_spec *)0)->m), 0, 0, req, bit, NULL }
#define WINT(k, t, m, lo, hi, bit) \
	{ k, t, offsetof(struct workspace_spec, m), sizeof(int), lo, hi, 0, bit, NULL }

static const struct field pool_spec_fields[] = {
	PSTR("asgName", F_TOKEN, asg_name, 1, MF_POOL_ASG),
	PSTR("region", F_TOKEN, region, 1, MF_POOL_REGION),
	PINT("instanceSlots", slots_per_instance, SPEC_SLOTS_MIN, SPEC_SLOTS_MAX, MF_POOL_SLOTS),
	PINT("warmInstances", warm_instances, 0, SPEC_WARM_MAX, MF_POOL_WARM),
	PINT("minInstances", min_instances, 0, SPEC_INSTANCES_MAX, MF_POOL_MIN),
	PINT("maxInstances", max_instances, 0, SPEC_INSTANCES_MAX, MF_POOL_MAX),
	PINT("agentPort", agent_port, 1, 65535, MF_POOL_PORT),
	PSTR("defaultImage", F_TOKEN, default_image, 0, MF_POOL_IMAGE),
	END_FIELDS
};

static const struct field ws_resources_fields[] = {
	WINT("cpu", F_CPU, cpu_milli, SPEC_CPU_MILLI_MIN, SPEC_CPU_MILLI_MAX, MF_WS_CPU),
	WINT("memoryMiB", F_INT, memory_mib, SPEC_MEMORY_MIB_MIN, SPEC_MEMORY_MIB_MAX, MF_WS_MEMORY),
	END_FIELDS
};

static const struct field ws_storage_fields[] = {
	WSTR("bucket", F_BUCKET, bucket, 0, MF_WS_BUCKET),
	WSTR("prefix", F_STR, prefix, 0, MF_WS_PREFIX),
	END_FIELDS
};

static const struct field ws_spec_fields[] = {
	WSTR("owner", F_STR, owner, 1, MF_WS_OWNER),
	WSTR("pool", F_NAME, pool, 1, MF_WS_POOL),
	{ "state", F_STATE, offsetof(struct workspace_spec, state), 0, 0, 0, 0, MF_WS_STATE, NULL },
	WSTR("template", F_NAME, template_name, 0, MF_WS_TEMPLATE),
	WSTR("image", F_TOKEN, image, 0, MF_WS_IMAGE),
	{ "resources", F_MAP, 0, 0, 0, 0, 0, 0, ws_resources_fields },
	{ "storage", F_MAP, 0, 0, 0, 0, 0, 0, ws_storage_fields },
	WINT("idleTimeoutSeconds", F_INT, idle_timeout_s, SPEC_IDLE_TIMEOUT_MIN_S,
	     SPEC_IDLE_TIMEOUT_MAX_S, MF_WS_IDLE),
	{ "labels", F_LABELS, 0, 0, 0, 0, 0, MF_WS_LABELS, NULL },
	END_FIELDS
};

/* Edit distance for "did you mean", bounded to short keys. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t cost = (a[i - 1] == b[j - 1] ? 0 : 1);
			size_t best = prev + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

static void unknown_key(struct dec *d, const yaml_node_t *k, const char *path,
			const char *key, const char *const *known, size_t nknown)
{
	char list[200] = "";
	const char *best = NULL;
	size_t i, bestd = 3, used = 0;

	for (i = 0; i < nknown; i++) {
		size_t dist = distance(key, known[i]);
		int w;
		if (dist < bestd) {
			bestd = dist;
			best = known[i];
		}
		w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", known[i]);
		if (w > 0 && (size_t)w < sizeof(list) - used)
			used += (size_t)w;
	}
	if (best)
		derr(d, k, path, "unknown field (did you mean '%s'?)", best);
	else
		derr(d, k, path, "unknown field; known fields: %s", list);
}

static int parse_long(const char *s, long *out)
{
	char *end;
	long v;

	if (!s[0] || (s[0] != '-' && s[0] != '+' && (s[0] < '0' || s[0] > '9')))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* "500m" -> 500, "2" -> 2000, "1.5" -> 1500 (at most 3 decimals). */
static int parse_cpu(const char *s, long *out)
{
	size_t n = strlen(s);
	long whole = 0, frac = 0;
	int digits = 0;
	const char *p = s;

	if (n > 1 && s[n - 1] == 'm') {
		char buf[32];
		if (n >= sizeof(buf))
			return -1;
		memcpy(buf, s, n - 1);
		buf[n - 1] = 0;
		if (parse_long(buf, out) || buf[0] == '-' || buf[0] == '+')
			return -1;
		return 0;
	}
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		if (whole > 100000)
			return -1;
		whole = whole * 10 + (*p++ - '0');
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			if (++digits > 3)
				return -1;
			frac = frac * 10 + (*p++ - '0');
		}
		if (!digits)
			return -1;
		while (digits++ < 3)
			frac *= 10;
	}
	if (*p)
		return -1;
	*out = whole * 1000 + frac;
	return 0;
}

static void check_duplicates(struct dec *d, const yaml_node_t *map, const char *path);

static void decode_labels(struct dec *d, const yaml_node_t *n, const char *path,
			  struct workspace_spec *w)
{
	yaml_node_pair_t *pair;

	if (n->type != YAML_MAPPING_NODE) {
		if (!is_null(n))
			derr(d, n, path, "expected a mapping of labels, found %s", node_kind(n));
		return;
	}
	check_duplicates(d, n, path);
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(d->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(d->doc, pair->value);
		const char *ks, *vs;
		char fp[128];
		int i;

		if (!k || !v)
			continue;
		ks = scalar(d, k, path);
		if (!ks)
			continue;
		path_join(fp, sizeof(fp), path, ks);
		if (!spec_label_key_valid(ks)) {
			derr(d, k, fp, "invalid label key: 1-%d characters of letters, digits, '-', '_', '.', '/'",
			     SPEC_LABEL_KEY_MAX);
			continue;
		}
		vs = scalar(d, v, fp);
		if (!vs)
			continue;
		if (strlen(vs) > SPEC_LABEL_VALUE_MAX || !spec_text_valid(vs)) {
			derr(d, v, fp, "label value must be at most %d printable characters",
			     SPEC_LABEL_VALUE_MAX);
			continue;
		}
		for (i = 0; i < w->nlabels; i++)
			if (!strcmp(w->labels[i].key, ks))
				break;
		if (i < w->nlabels)
			continue;   /* reported by check_duplicates() above */
		if (w->nlabels >= SPEC_LABELS_MAX) {
			derr(d, k, fp, "too many labels: at most %d", SPEC_LABELS_MAX);
			return;
		}
		str_copy(w->labels[w->nlabels].key, sizeof(w->labels[0].key), ks);
		str_copy(w->labels[w->nlabels].value, sizeof(w->labels[0].value), vs);
		w->nlabels++;
	}
}

/* Report duplicate keys in a mapping (YAML says keys are unique). */
static void check_duplicates(struct dec *d, const yaml_node_t *map, const char *path)
{
	yaml_node_pair_t *a, *b;
	size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);

	if (n > 64)   /* only our small fixed mappings are checked pairwise */
		n = 64;
	for (a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.start + n; a++) {
		yaml_node_t *ka = yaml_document_get_node(d->doc, a->key);
		if (!ka || ka->type != YAML_SCALAR_NODE)
			continue;
		for (b = map->data.mapping.pairs.start; b < a; b++) {
			yaml_node_t *kb = yaml_document_get_node(d->doc, b->key);
			char fp[128];
			if (!kb || kb->type != YAML_SCALAR_NODE)
				continue;
			if (strcmp((const char *)ka->data.scalar.value,
				   (const char *)kb->data.scalar.value))
				continue;
			path_join(fp, sizeof(fp), path, (const char *)ka->data.scalar.value);
			derr(d, ka, fp, "duplicate field (first at line %d)",
			     (int)kb->start_mark.line + 1);
			break;
		}
	}
}

static void decode_fields(struct dec *d, const yaml_node_t *map, const char *path,
			  const struct field *fields, void *target, uint32_t *present);

static void decode_value(struct dec *d, const struct field *f, const yaml_node_t *v,
			 const char *fp, void *target, uint32_t *present)
{
	char *dst = (char *)target + f->off;
	const char *s;
	long num;
	enum ws_state st;
	struct err e;

	switch (f->type) {
	case F_SERVER:
		return;
	case F_MAP:
		if (v->type != YAML_MAPPING_NODE) {
			if (!is_null(v))
				derr(d, v, fp, "expected a mapping, found %s", node_kind(v));
			return;
		}
		decode_fields(d, v, fp, f->sub, target, present);
		return;
	case F_LABELS:
		decode_labels(d, v, fp, target);
		*present |= f->bit;
		return;
	default:
		break;
	}
	s = scalar(d, v, fp);
	if (!s)
		return;
	switch (f->type) {
	case F_STR:
	case F_NAME:
	case F_TOKEN:
	case F_BUCKET:
		if (strlen(s) >= f->size) {
			derr(d, v, fp, "is %zu bytes long, at most %zu allowed", strlen(s), f->size - 1);
			return;
		}
		if (f->type == F_STR && !spec_text_valid(s)) {
			derr(d, v, fp, "must not contain control characters");
			return;
		}
		if (f->type == F_NAME && spec_name_valid(s, &e)) {
			derr(d, v, fp, "%s", e.msg);
			return;
		}
		if (f->type == F_TOKEN && !spec_token_valid(s)) {
			derr(d, v, fp, "must be non-empty printable text without spaces");
			return;
		}
		if (f->type == F_BUCKET && !spec_bucket_valid(s)) {
			derr(d, v, fp, "'%s' is not a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')",
			     s);
			return;
		}
		if (f->required && !s[0]) {
			derr(d, v, fp, "must not be empty");
			return;
		}
		str_copy(dst, f->size, s);
		break;
	case F_INT:
		if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || parse_long(s, &num)) {
			derr(d, v, fp, "expected an integer, found '%.40s'", s);
			return;
		}
		if (num < f->min || num > f->max) {
			derr(d, v, fp, "%ld is out of range %ld..%ld", num, f->min, f->max);
			return;
		}
		*(int *)(void *)dst = (int)num;
		break;
	case F_CPU:
		if (parse_cpu(s, &num)) {
			derr(d, v, fp, "expected cores (\"2\", 1.5) or millicores (\"500m\"), found '%.40s'", s);
			return;
		}
		if (num < f->min || num > f->max) {
			derr(d, v, fp, "%ldm is out of range %ldm..%ldm", num, f->min, f->max);
			return;
		}
		*(int *)(void *)dst = (int)num;
		break;
	case F_STATE:
		if (ws_state_parse(s, &st)) {
			derr(d, v, fp, "must be Running or Stopped, not '%.40s'", s);
			return;
		}
		*(enum ws_state *)(void *)dst = st;
		break;
	default:
		return;
	}
	*present |= f->bit;
}

static void decode_fields(struct dec *d, const yaml_node_t *map, const char *path,
			  const struct field *fields, void *target, uint32_t *present)
{
	const char *known[16];
	const yaml_node_pair_t *pair;
	unsigned seen = 0;
	size_t nknown = 0, i;

	check_duplicates(d, map, path);
	for (i = 0; fields[i].key && nknown < 16; i++)
		known[nknown++] = fields[i].key;
	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(d->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(d->doc, pair->value);
		const char *ks;
		char fp[128];

		if (!k || !v)
			continue;
		ks = scalar(d, k, path);
		if (!ks)
			continue;
		path_join(fp, sizeof(fp), path, ks);
		for (i = 0; i < nknown; i++)
			if (!strcmp(ks, known[i]))
				break;
		if (i == nknown) {
			unknown_key(d, k, fp, ks, known, nknown);
			continue;
		}
		if (seen & (1u << i))
			continue;   /* duplicate, already reported */
		seen |= 1u << i;
		decode_value(d, &fields[i], v, fp, target, present);
	}
	for (i = 0; i < nknown; i++) {
		char fp[128];
		if (!fields[i].required || (seen & (1u << i)))
			continue;
		path_join(fp, sizeof(fp), path, fields[i].key);
		derr(d, map, fp, "required field is missing");
	}
}

/* Find key in a mapping node; NULL when absent. */
static yaml_node_t *map_get(struct dec *d, const yaml_node_t *map, const char *key,
			    yaml_node_t **keynode)
{
	const yaml_node_pair_t *pair;

	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(d->doc, pair->key);
		if (k && k->type == YAML_SCALAR_NODE &&
		    !strcmp((const char *)k->data.scalar.value, key)) {
			if (keynode)
				*keynode = k;
			return yaml_document_get_node(d->doc, pair->value);
		}
	}
	return NULL;
}

#define SERVER(k) { k, F_SERVER, 0, 0, 0, 0, 0, 0, NULL }

/*
 * metadata: the name, and the read-only fields `spinctl get -o yaml` prints,
 * so its output applies back unchanged (pausing is `spinctl pause`, not an
 * edit of pausedUntil; these are ignored, like the document's status).
 */
static const struct field metadata_fields[] = {
	{ "name", F_NAME, 0, SPEC_NAME_MAX + 1, 0, 0, 1, 0, NULL },
	SERVER("pool"), SERVER("id"), SERVER("generation"), SERVER("createdAt"),
	SERVER("deletionRequestedAt"), SERVER("pausedUntil"), SERVER("reconcileRequestedAt"),
	SERVER("observeOnly"),
	END_FIELDS
};

static void decode_document(struct dec *d, const yaml_node_t *root, struct manifest_doc *out)
{
	static const char *const top_known[] = { "apiVersion", "kind", "metadata", "spec", "status" };
	yaml_node_t *api, *kind, *meta, *spec;
	const yaml_node_pair_t *pair;
	const char *s;
	char name[SPEC_NAME_MAX + 1] = "";
	uint32_t ignored = 0;
	int kind_ok = 0;

	out->line = (int)root->start_mark.line + 1;
	out->col = (int)root->start_mark.column + 1;
	if (root->type != YAML_MAPPING_NODE) {
		derr(d, root, "", "a document must be a mapping with apiVersion, kind, metadata, spec; found %s",
		     node_kind(root));
		return;
	}
	check_duplicates(d, root, "");
	for (pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(d->doc, pair->key);
		const char *ks;
		size_t i;
		if (!k)
			continue;
		ks = scalar(d, k, "");
		if (!ks)
			continue;
		for (i = 0; i < 5; i++)
			if (!strcmp(ks, top_known[i]))
				break;
		if (i == 5)
			unknown_key(d, k, ks, ks, top_known, 4);   /* status is not suggested */
	}

	api = map_get(d, root, "apiVersion", NULL);
	if (!api)
		derr(d, root, "apiVersion", "required field is missing (use %s)", MANIFEST_API_VERSION);
	else if ((s = scalar(d, api, "apiVersion")) && strcmp(s, MANIFEST_API_VERSION))
		derr(d, api, "apiVersion", "unsupported apiVersion '%.60s' (supported: %s)", s,
		     MANIFEST_API_VERSION);

	kind = map_get(d, root, "kind", NULL);
	if (!kind) {
		derr(d, root, "kind", "required field is missing (Pool or Workspace)");
	} else if ((s = scalar(d, kind, "kind"))) {
		if (!strcmp(s, "Pool")) {
			out->kind = MANIFEST_POOL;
			kind_ok = 1;
		} else if (!strcmp(s, "Workspace")) {
			out->kind = MANIFEST_WORKSPACE;
			kind_ok = 1;
		} else {
			derr(d, kind, "kind", "unsupported kind '%.60s' (supported: Pool, Workspace)", s);
		}
	}

	meta = map_get(d, root, "metadata", NULL);
	if (!meta)
		derr(d, root, "metadata", "required field is missing");
	else if (meta->type != YAML_MAPPING_NODE)
		derr(d, meta, "metadata", "expected a mapping, found %s", node_kind(meta));
	else
		decode_fields(d, meta, "metadata", metadata_fields, name, &ignored);
	out->name_line = out->line;
	out->name_col = out->col;
	if (meta && meta->type == YAML_MAPPING_NODE) {
		yaml_node_t *nn = map_get(d, meta, "name", NULL);
		if (nn) {
			out->name_line = (int)nn->start_mark.line + 1;
			out->name_col = (int)nn->start_mark.column + 1;
		}
	}

	spec = map_get(d, root, "spec", NULL);
	if (!spec) {
		derr(d, root, "spec", "required field is missing");
		return;
	}
	if (spec->type != YAML_MAPPING_NODE) {
		derr(d, spec, "spec", "expected a mapping, found %s", node_kind(spec));
		return;
	}
	if (!kind_ok)
		return;
	if (out->kind == MANIFEST_POOL) {
		pool_spec_defaults(&out->pool);
		str_copy(out->pool.name, sizeof(out->pool.name), name);
		decode_fields(d, spec, "spec", pool_spec_fields, &out->pool, &out->present);
		if (out->pool.min_instances > out->pool.max_instances) {
			yaml_node_t *k = NULL;
			map_get(d, spec, "minInstances", &k);
			derr(d, k ? k : spec, "spec.minInstances", "%d is greater than maxInstances %d",
			     out->pool.min_instances, out->pool.max_instances);
		}
	} else {
		workspace_spec_defaults(&out->ws);
		str_copy(out->ws.name, sizeof(out->ws.name), name);
		decode_fields(d, spec, "spec", ws_spec_fields, &out->ws, &out->present);
	}
}

static void parser_error(struct dec *d, const yaml_parser_t *p)
{
	const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->context_mark;
	char msg[200];

	if (p->context)
		snprintf(msg, sizeof(msg), "malformed YAML: %s %s", p->problem ? p->problem : "error",
			 p->context);
	else
		snprintf(msg, sizeof(msg), "malformed YAML: %s", p->problem ? p->problem : "error");
	d->nerr++;
	if (diag_add(d->diags, d->file, (int)m->line + 1, (int)m->column + 1, "", "%s", msg))
		d->oom = 1;
}

int manifest_decode(const char *file, const char *buf, size_t len, struct manifest_set *set,
		    struct diag_list *diags)
{
	yaml_parser_t parser;
	struct dec d;
	int rc = 0, ndocs = 0, any_err = 0;

	memset(&d, 0, sizeof(d));
	d.file = file;
	d.diags = diags;
	if (len > MANIFEST_MAX_BYTES) {
		/* callers may stop reading at the limit + 1: say "over", not a size */
		if (diag_add(diags, file, 0, 0, "", "file is over the limit of %zu bytes (%zu MiB)",
			     (size_t)MANIFEST_MAX_BYTES, (size_t)MANIFEST_MAX_BYTES >> 20))
			return SP_ENOMEM;
		return SP_ELIMIT;
	}
	if (!yaml_parser_initialize(&parser))
		return SP_ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	for (;;) {
		yaml_document_t doc;
		yaml_node_t *root;
		struct manifest_doc md;

		if (!yaml_parser_load(&parser, &doc)) {
			parser_error(&d, &parser);
			any_err = 1;
			break;
		}
		root = yaml_document_get_root_node(&doc);
		if (!root) {   /* end of stream */
			yaml_document_delete(&doc);
			break;
		}
		if (is_null(root)) {   /* an empty document ("---" alone): skipped */
			yaml_document_delete(&doc);
			continue;
		}
		if (++ndocs > MANIFEST_MAX_DOCS) {
			int line = (int)root->start_mark.line + 1;
			yaml_document_delete(&doc);
			if (diag_add(diags, file, line, 1, "",
				     "more than %d documents in one file", MANIFEST_MAX_DOCS))
				d.oom = 1;
			rc = SP_ELIMIT;
			break;
		}
		memset(&md, 0, sizeof(md));
		str_copy(md.file, sizeof(md.file), file);
		d.doc = &doc;
		d.nerr = 0;
		decode_document(&d, root, &md);
		yaml_document_delete(&doc);
		if (d.nerr)
			any_err = 1;
		else if (set_push(set, &md))
			d.oom = 1;
		if (d.oom)
			break;
	}
	yaml_parser_delete(&parser);
	if (d.oom)
		return SP_ENOMEM;
	if (rc)
		return rc;
	return any_err ? SP_EINVAL : 0;
}

/* ------------------------------------------------------------ cross-document checks */

struct keyed {
	const struct manifest_doc *doc;
	size_t index;
};

static int keyed_cmp(const void *pa, const void *pb)
{
	const struct keyed *a = pa, *b = pb;
	int c;

	if (a->doc->kind != b->doc->kind)
		return a->doc->kind < b->doc->kind ? -1 : 1;
	if (a->doc->kind == MANIFEST_WORKSPACE) {
		c = strcmp(a->doc->ws.pool, b->doc->ws.pool);
		if (!c)
			c = strcmp(a->doc->ws.name, b->doc->ws.name);
	} else {
		c = strcmp(a->doc->pool.name, b->doc->pool.name);
	}
	if (c)
		return c;
	return a->index < b->index ? -1 : (a->index > b->index);
}

int manifest_check_set(const struct manifest_set *set, struct diag_list *diags)
{
	struct keyed *k;
	size_t i;
	int rc = 0;

	if (set->n < 2)
		return 0;
	k = malloc(set->n * sizeof(*k));
	if (!k)
		return SP_ENOMEM;
	for (i = 0; i < set->n; i++) {
		k[i].doc = &set->docs[i];
		k[i].index = i;
	}
	qsort(k, set->n, sizeof(*k), keyed_cmp);
	for (i = 1; i < set->n; i++) {
		const struct manifest_doc *a = k[i - 1].doc, *b = k[i].doc;
		int same;
		if (a->kind != b->kind)
			continue;
		if (a->kind == MANIFEST_WORKSPACE)
			same = !strcmp(a->ws.pool, b->ws.pool) && !strcmp(a->ws.name, b->ws.name);
		else
			same = !strcmp(a->pool.name, b->pool.name);
		if (!same)
			continue;
		/* Sorted by index within equal keys: k[i] is the later one; point at it. */
		if (diag_add(diags, b->file, b->name_line, b->name_col, "metadata.name",
			     "duplicate %s '%s'%s%s, first declared at %s:%d",
			     manifest_kind_name(b->kind),
			     b->kind == MANIFEST_WORKSPACE ? b->ws.name : b->pool.name,
			     b->kind == MANIFEST_WORKSPACE ? " in pool " : "",
			     b->kind == MANIFEST_WORKSPACE ? b->ws.pool : "", a->file, a->name_line)) {
			rc = SP_ENOMEM;
			break;
		}
		rc = SP_EINVAL;
	}
	free(k);
	return rc;
}
